"""The interop client test cases, as grpc/grpc ``doc/interop-test-descriptions.md`` gives them.

Each case is an ``async`` function taking a :class:`CaseContext` (the
channel, a ``TestService`` stub, and a view of the compressed flags of the
messages received). It returns when the case passes and raises
:class:`InteropFailure`, naming what was expected and what came, when it
does not. :data:`CASES` maps the case names of the interop clients' ``--test_case``
flag to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass

from ..client import Channel, StreamUnaryCall
from ..wire import Metadata, RpcError, StatusCode, TraceRecord
from .protos import empty_pb2, messages_pb2
from .protos.test_puregrpc import TestServiceStub, UnimplementedServiceStub

#: Per-call timeout: generous, so a hung peer fails the case instead of the
#: client waiting forever.
CALL_TIMEOUT = 10.0

ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")

#: The special_status_message message: leading/trailing whitespace, CR LF,
#: a BMP and a non-BMP character, all of which must survive percent-encoding.
SPECIAL_STATUS_MESSAGE = (
    "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
)


class InteropFailure(Exception):
    """A case's assertion failed; the message says what was expected and what came."""


class MessageFlags:
    """A tracer recording the Compressed-Flag of each message of the latest call.

    The server_compressed cases must check the flag of the messages received,
    which the call API does not surface; the wire core reports it in its
    ``message_in`` (and ``message_out``) trace records. Interop cases run one
    call at a time, so keeping only the latest call's stream (``call_start``
    resets it) is exact and bounded.
    """

    enabled = True

    def __init__(self, *, sent: bool = False) -> None:
        #: The record kind kept: messages received, or (``sent``) sent.
        self._kind = "message_out" if sent else "message_in"
        self._stream_id: int | None = None
        self._flags: list[bool] = []

    def record(self, record: TraceRecord) -> None:
        """Keep the flags of the latest call's messages (a tracer must not raise)."""
        if record.kind == "call_start":
            self._stream_id = record.stream_id
            self._flags = []
        elif record.kind == self._kind and record.stream_id == self._stream_id:
            self._flags.append(bool(record.fields.get("compressed")))

    def last_call(self) -> list[bool]:
        """The Compressed-Flag of each message received on the latest call, in order."""
        return list(self._flags)


@dataclass(frozen=True, slots=True)
class CaseContext:
    """What a case works with."""

    channel: Channel
    stub: TestServiceStub
    #: Must be the tracer of ``channel`` (``ChannelOptions(tracer=...)``).
    flags: MessageFlags


Case = Callable[[CaseContext], Awaitable[None]]


# ------------------------------------------------------------------ helpers


def _zeros(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InteropFailure(message)


def _check_body(payload: messages_pb2.Payload, size: int, what: str) -> None:
    body = payload.body
    _check(len(body) == size, f"{what}: payload body is {len(body)} bytes, expected {size}")
    _check(body == bytes(size), f"{what}: payload body is not all zeros")


def _check_sizes(
    responses: list[messages_pb2.StreamingOutputCallResponse], sizes: list[int]
) -> None:
    got = [len(r.payload.body) for r in responses]
    _check(got == sizes, f"response payload sizes {got}, expected {sizes}")
    for index, response in enumerate(responses):
        _check_body(response.payload, sizes[index], f"response {index}")


def _check_code(error: RpcError, code: StatusCode, what: str) -> None:
    _check(
        error.code == code,
        f"{what}: status {error.code.name} ({error.details!r}), expected {code.name}",
    )


async def _expect_error(call: Awaitable[object], code: StatusCode, what: str) -> RpcError:
    """Await ``call``; it must fail with ``code``."""
    try:
        await call
    except RpcError as error:
        _check_code(error, code, what)
        return error
    raise InteropFailure(f"{what}: call succeeded, expected {code.name}")


def _large_request(**fields: object) -> messages_pb2.SimpleRequest:
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_size=314159,
        payload=_zeros(271828),
    )
    for name, value in fields.items():
        getattr(request, name).CopyFrom(value)
    return request


def _streaming_request(*sizes: int) -> messages_pb2.StreamingOutputCallRequest:
    return messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=size) for size in sizes],
    )


async def _drain(
    call: AsyncIterable[messages_pb2.StreamingOutputCallResponse],
) -> list[messages_pb2.StreamingOutputCallResponse]:
    return [response async for response in call]


# -------------------------------------------------------------------- cases


async def empty_unary(ctx: CaseContext) -> None:
    """EmptyCall with the default Empty: succeeds with a non-null response."""
    response = await ctx.stub.EmptyCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    _check(isinstance(response, empty_pb2.Empty), f"response is {type(response).__name__}")
    _check(response.ByteSize() == 0, "the Empty response did not serialize to zero bytes")


async def large_unary(ctx: CaseContext) -> None:
    """UnaryCall, 271828 bytes out, 314159 bytes back."""
    response = await ctx.stub.UnaryCall(_large_request(), timeout=CALL_TIMEOUT)
    _check_body(response.payload, 314159, "UnaryCall")


async def client_compressed_unary(ctx: CaseContext) -> None:
    """The uncompressed probe fails INVALID_ARGUMENT; compressed and plain calls succeed."""
    probe = _large_request(expect_compressed=messages_pb2.BoolValue(value=True))
    await _expect_error(
        ctx.stub.UnaryCall(probe, timeout=CALL_TIMEOUT),
        StatusCode.INVALID_ARGUMENT,
        "probe (expect_compressed=true sent uncompressed)",
    )
    for compressed in (True, False):
        request = _large_request(expect_compressed=messages_pb2.BoolValue(value=compressed))
        response = await ctx.stub.UnaryCall(
            request, timeout=CALL_TIMEOUT, compression="gzip" if compressed else None
        )
        _check_body(response.payload, 314159, f"UnaryCall (compressed={compressed})")


async def server_compressed_unary(ctx: CaseContext) -> None:
    """The response carries the Compressed-Flag exactly when response_compressed asks."""
    for compressed in (True, False):
        request = _large_request(response_compressed=messages_pb2.BoolValue(value=compressed))
        response = await ctx.stub.UnaryCall(request, timeout=CALL_TIMEOUT)
        _check_body(response.payload, 314159, f"UnaryCall (response_compressed={compressed})")
        flags = ctx.flags.last_call()
        _check(
            flags == [compressed],
            f"response_compressed={compressed}: Compressed-Flag of the response was {flags}",
        )


async def client_streaming(ctx: CaseContext) -> None:
    """StreamingInputCall with four payloads: aggregated size 74922."""
    requests = [
        messages_pb2.StreamingInputCallRequest(payload=_zeros(size))
        for size in (27182, 8, 1828, 45904)
    ]
    response = await ctx.stub.StreamingInputCall(requests, timeout=CALL_TIMEOUT)
    _check(
        response.aggregated_payload_size == 74922,
        f"aggregated_payload_size {response.aggregated_payload_size}, expected 74922",
    )


async def client_compressed_streaming(ctx: CaseContext) -> None:
    """The probe fails INVALID_ARGUMENT; then one compressed and one plain request: 73086."""
    probe = messages_pb2.StreamingInputCallRequest(
        expect_compressed=messages_pb2.BoolValue(value=True), payload=_zeros(27182)
    )
    await _expect_error(
        ctx.stub.StreamingInputCall([probe], timeout=CALL_TIMEOUT),
        StatusCode.INVALID_ARGUMENT,
        "probe (expect_compressed=true sent uncompressed)",
    )
    call = ctx.stub.StreamingInputCall(timeout=CALL_TIMEOUT, compression="gzip")
    async with call:
        await call.send(
            messages_pb2.StreamingInputCallRequest(
                expect_compressed=messages_pb2.BoolValue(value=True), payload=_zeros(27182)
            )
        )
        await _send_uncompressed(
            call,
            messages_pb2.StreamingInputCallRequest(
                expect_compressed=messages_pb2.BoolValue(value=False), payload=_zeros(45904)
            ),
        )
        response = await call.response()
    _check(
        response.aggregated_payload_size == 73086,
        f"aggregated_payload_size {response.aggregated_payload_size}, expected 73086",
    )


async def _send_uncompressed(
    call: StreamUnaryCall[
        messages_pb2.StreamingInputCallRequest, messages_pb2.StreamingInputCallResponse
    ],
    request: messages_pb2.StreamingInputCallRequest,
) -> None:
    """Send one request without compression on a call whose encoding is gzip."""
    await call.send(request, compress=False)


async def server_streaming(ctx: CaseContext) -> None:
    """StreamingOutputCall: four responses sized 31415, 9, 2653, 58979."""
    sizes = [31415, 9, 2653, 58979]
    call = ctx.stub.StreamingOutputCall(_streaming_request(*sizes), timeout=CALL_TIMEOUT)
    _check_sizes(await _drain(call), sizes)


async def server_compressed_streaming(ctx: CaseContext) -> None:
    """Two responses, the first with the Compressed-Flag, the second without."""
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[
            messages_pb2.ResponseParameters(
                size=31415, compressed=messages_pb2.BoolValue(value=True)
            ),
            messages_pb2.ResponseParameters(
                size=92653, compressed=messages_pb2.BoolValue(value=False)
            ),
        ],
    )
    call = ctx.stub.StreamingOutputCall(request, timeout=CALL_TIMEOUT)
    _check_sizes(await _drain(call), [31415, 92653])
    flags = ctx.flags.last_call()
    _check(
        flags == [True, False],
        f"Compressed-Flags of the responses were {flags}, expected [True, False]",
    )


async def ping_pong(ctx: CaseContext) -> None:
    """FullDuplexCall, one request per response, four rounds, then half-close."""
    rounds = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
    call = ctx.stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    async with call:
        for index, (response_size, payload_size) in enumerate(rounds):
            request = _streaming_request(response_size)
            request.payload.CopyFrom(_zeros(payload_size))
            await call.send(request)
            response = await call.receive()
            _check(response is not None, f"round {index}: the call ended without a response")
            assert response is not None
            _check_body(response.payload, response_size, f"round {index}")
        await call.done_writing()
        extra = await call.receive()
        _check(extra is None, "a response arrived after the last round")


async def empty_stream(ctx: CaseContext) -> None:
    """FullDuplexCall, half-closed at once: zero responses, status OK."""
    call = ctx.stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    async with call:
        await call.done_writing()
        responses = await _drain(call)
    _check(not responses, f"{len(responses)} responses, expected none")


async def custom_metadata(ctx: CaseContext) -> None:
    """Echo-initial comes back in the headers, echo-trailing-bin in the trailers."""
    metadata = Metadata([ECHO_INITIAL, ECHO_TRAILING])
    unary = ctx.stub.UnaryCall(_large_request(), timeout=CALL_TIMEOUT, metadata=metadata)
    async with unary:
        response = await unary.response()
        _check_body(response.payload, 314159, "UnaryCall")
        _check_echoed(await unary.initial_metadata(), unary.trailing_metadata, "UnaryCall")

    request = _streaming_request(314159)
    request.payload.CopyFrom(_zeros(271828))
    bidi = ctx.stub.FullDuplexCall([request], timeout=CALL_TIMEOUT, metadata=metadata)
    async with bidi:
        _check_sizes(await _drain(bidi), [314159])
        _check_echoed(await bidi.initial_metadata(), bidi.trailing_metadata, "FullDuplexCall")


def _check_echoed(initial: Metadata, trailing: Metadata, what: str) -> None:
    key, value = ECHO_INITIAL
    got = initial.get(key)
    _check(got == value, f"{what}: initial metadata {key}={got!r}, expected {value!r}")
    key, binary = ECHO_TRAILING
    got = trailing.get(key)
    _check(got == binary, f"{what}: trailing metadata {key}={got!r}, expected {binary!r}")


async def _check_echo_status(ctx: CaseContext, message: str, *, bidi: bool) -> None:
    status = messages_pb2.EchoStatus(code=StatusCode.UNKNOWN.value, message=message)
    if bidi:
        request = messages_pb2.StreamingOutputCallRequest(response_status=status)
        call: Awaitable[object] = _drain(ctx.stub.FullDuplexCall([request], timeout=CALL_TIMEOUT))
        what = "FullDuplexCall"
    else:
        call = ctx.stub.UnaryCall(
            messages_pb2.SimpleRequest(response_status=status), timeout=CALL_TIMEOUT
        )
        what = "UnaryCall"
    error = await _expect_error(call, StatusCode.UNKNOWN, what)
    _check(
        error.details == message,
        f"{what}: status message {error.details!r}, expected {message!r}",
    )


async def status_code_and_message(ctx: CaseContext) -> None:
    """Echo Status (code 2, "test status message") on UnaryCall and FullDuplexCall."""
    await _check_echo_status(ctx, "test status message", bidi=False)
    await _check_echo_status(ctx, "test status message", bidi=True)


async def special_status_message(ctx: CaseContext) -> None:
    """Echo Status with whitespace, CR LF and unicode in the message survives intact."""
    await _check_echo_status(ctx, SPECIAL_STATUS_MESSAGE, bidi=False)


async def unimplemented_method(ctx: CaseContext) -> None:
    """TestService/UnimplementedCall answers UNIMPLEMENTED."""
    await _expect_error(
        ctx.stub.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT),
        StatusCode.UNIMPLEMENTED,
        "TestService/UnimplementedCall",
    )


async def unimplemented_service(ctx: CaseContext) -> None:
    """UnimplementedService/UnimplementedCall answers UNIMPLEMENTED."""
    stub = UnimplementedServiceStub(ctx.channel)
    await _expect_error(
        stub.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_TIMEOUT),
        StatusCode.UNIMPLEMENTED,
        "UnimplementedService/UnimplementedCall",
    )


async def cancel_after_begin(ctx: CaseContext) -> None:
    """StreamingInputCall cancelled right after it started: CANCELLED."""
    call = ctx.stub.StreamingInputCall(timeout=CALL_TIMEOUT)
    async with call:  # starts the call: the request headers go out
        call.cancel()
        await _expect_error(call.response(), StatusCode.CANCELLED, "cancelled StreamingInputCall")
    _check(call.code == StatusCode.CANCELLED, f"call status {call.code}, expected CANCELLED")


async def cancel_after_first_response(ctx: CaseContext) -> None:
    """FullDuplexCall cancelled after its first response: CANCELLED."""
    request = _streaming_request(31415)
    request.payload.CopyFrom(_zeros(27182))
    call = ctx.stub.FullDuplexCall(timeout=CALL_TIMEOUT)
    async with call:
        await call.send(request)
        response = await call.receive()
        _check(response is not None, "the call ended before its first response")
        assert response is not None
        _check_body(response.payload, 31415, "first response")
        call.cancel()
        await _expect_error(call.receive(), StatusCode.CANCELLED, "cancelled FullDuplexCall")
    _check(call.code == StatusCode.CANCELLED, f"call status {call.code}, expected CANCELLED")


async def timeout_on_sleeping_server(ctx: CaseContext) -> None:
    """FullDuplexCall with a 1 ms timeout and a server that never answers: DEADLINE_EXCEEDED."""
    request = messages_pb2.StreamingOutputCallRequest(payload=_zeros(27182))
    call = ctx.stub.FullDuplexCall(timeout=0.001)

    async def exchange() -> None:
        async with call:
            # The deadline may pass while sending: that ends the call the
            # same way, so both steps sit under the one status check.
            await call.send(request)
            await call.receive()

    await _expect_error(
        exchange(), StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall with 1 ms timeout"
    )


#: Every case, by its ``--test_case`` name, in the order the issue lists them.
CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_streaming,
        server_streaming,
        ping_pong,
        empty_stream,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
        client_compressed_unary,
        client_compressed_streaming,
        server_compressed_unary,
        server_compressed_streaming,
    )
}
