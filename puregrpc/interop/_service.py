"""The interop ``grpc.testing.TestService``: the server features of the interop suite.

Implements what grpc/grpc ``doc/interop-test-descriptions.md`` calls the
server features: EmptyCall, UnaryCall, StreamingOutputCall,
StreamingInputCall, FullDuplexCall, HalfDuplexCall, Echo Status, Echo
Metadata, CompressedResponse and CompressedRequest.

``UnimplementedCall`` is deliberately left out of the handler table (and
``grpc.testing.UnimplementedService`` is never registered): the
``unimplemented_method`` and ``unimplemented_service`` cases need the server
to answer UNIMPLEMENTED exactly as it does for any unknown method.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from ..server import MethodHandler, RequestIterator, ServicerContext
from ..wire import Metadata, RpcError, StatusCode
from .protos import empty_pb2, messages_pb2
from .protos.test_puregrpc import TestServiceServicer

#: Client metadata echoed back in the response headers (Echo Metadata).
ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
#: Client metadata echoed back in the trailers (Echo Metadata).
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"

#: The encoding used when a request asks for compressed responses; every
#: gRPC implementation ships gzip.
RESPONSE_ENCODING = "gzip"

#: The methods this server answers; everything else is UNIMPLEMENTED.
SERVED_METHODS = frozenset(
    {
        "/grpc.testing.TestService/EmptyCall",
        "/grpc.testing.TestService/UnaryCall",
        "/grpc.testing.TestService/StreamingOutputCall",
        "/grpc.testing.TestService/StreamingInputCall",
        "/grpc.testing.TestService/FullDuplexCall",
        "/grpc.testing.TestService/HalfDuplexCall",
    }
)

#: Largest payload a request may ask for: a bound so a bad request gets a
#: clear INVALID_ARGUMENT instead of the server allocating gigabytes.
MAX_RESPONSE_SIZE = 16 * 1024 * 1024


def _payload(size: int) -> messages_pb2.Payload:
    """A COMPRESSABLE payload of ``size`` zero bytes (the interop convention)."""
    if not 0 <= size <= MAX_RESPONSE_SIZE:
        raise RpcError(
            StatusCode.INVALID_ARGUMENT,
            f"response size {size} is out of range (0..{MAX_RESPONSE_SIZE})",
        )
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _check_response_type(response_type: int) -> None:
    # "If the server does not support the response_type, then it should fail
    # the RPC with INVALID_ARGUMENT" (UnaryCall feature).
    if response_type != messages_pb2.COMPRESSABLE:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"unsupported response_type {response_type}")


def _check_expect_compressed(expected: bool, context: ServicerContext) -> None:
    """The CompressedRequest feature: fail unless the request came compressed.

    The doc specifies only the ``true`` direction ("if it's not [compressed],
    it fails the RPC with INVALID_ARGUMENT"), so ``false`` is never checked.
    """
    if expected and not context.request_compressed:
        raise RpcError(
            StatusCode.INVALID_ARGUMENT,
            "expect_compressed is set but the request message was not compressed",
        )


def _echo_status(status: messages_pb2.EchoStatus) -> None:
    """Echo Status: end the call with the code and message the client sent."""
    if status.code == 0:
        return
    try:
        code = StatusCode(status.code)
    except ValueError:
        code = StatusCode.UNKNOWN
    raise RpcError(code, status.message)


class TestService(TestServiceServicer):
    """``grpc.testing.TestService`` with the interop server features.

    The streaming methods are coroutines that send through
    ``context.send(..., compress=...)`` (per-message compression) where the
    generated base declares async generators; the server runs both shapes,
    hence their ``type: ignore[override]``.
    """

    # pytest collects classes named Test*; this one is not a test.
    __test__ = False

    def __puregrpc_handlers__(self) -> Mapping[str, MethodHandler]:
        """The served methods only: the rest answer UNIMPLEMENTED as unknown methods."""
        handlers = super().__puregrpc_handlers__()
        return {path: handler for path, handler in handlers.items() if path in SERVED_METHODS}

    async def EmptyCall(
        self, request: empty_pb2.Empty, context: ServicerContext
    ) -> empty_pb2.Empty:
        """Answer the empty message at once."""
        await _echo_metadata(context)
        return empty_pb2.Empty()

    async def UnaryCall(
        self, request: messages_pb2.SimpleRequest, context: ServicerContext
    ) -> messages_pb2.SimpleResponse:
        """A payload of ``response_size`` bytes, compressed if asked."""
        if request.response_compressed.value:
            context.set_compression(RESPONSE_ENCODING)
        await _echo_metadata(context)
        _check_expect_compressed(request.expect_compressed.value, context)
        _check_response_type(request.response_type)
        _echo_status(request.response_status)
        response = messages_pb2.SimpleResponse()
        if request.response_size:
            response.payload.CopyFrom(_payload(request.response_size))
        return response

    async def StreamingOutputCall(  # type: ignore[override]
        self, request: messages_pb2.StreamingOutputCallRequest, context: ServicerContext
    ) -> None:
        """One response per ResponseParameters, each compressed as it asks."""
        context.set_compression(RESPONSE_ENCODING)
        await _echo_metadata(context)
        await _respond(request, context)

    async def StreamingInputCall(
        self,
        requests: RequestIterator[messages_pb2.StreamingInputCallRequest],
        context: ServicerContext,
    ) -> messages_pb2.StreamingInputCallResponse:
        """After the half-close, the total size of the request payloads."""
        await _echo_metadata(context)
        total = 0
        async for request in requests:
            _check_expect_compressed(request.expect_compressed.value, context)
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(  # type: ignore[override]
        self,
        requests: RequestIterator[messages_pb2.StreamingOutputCallRequest],
        context: ServicerContext,
    ) -> None:
        """Answer each request as it arrives; end after the half-close."""
        context.set_compression(RESPONSE_ENCODING)
        await _echo_metadata(context)
        async for request in requests:
            await _respond(request, context)

    async def HalfDuplexCall(  # type: ignore[override]
        self,
        requests: RequestIterator[messages_pb2.StreamingOutputCallRequest],
        context: ServicerContext,
    ) -> None:
        """Buffer every request until the half-close, then answer them in order."""
        context.set_compression(RESPONSE_ENCODING)
        await _echo_metadata(context)
        buffered = [request async for request in requests]
        for request in buffered:
            await _respond(request, context)


async def _echo_metadata(context: ServicerContext) -> None:
    """Echo Metadata: send the echo-initial value now, keep echo-trailing for the end."""
    metadata = context.invocation_metadata()
    initial = metadata.get(ECHO_INITIAL_KEY)
    trailing = metadata.get(ECHO_TRAILING_KEY)
    if trailing is not None:
        context.set_trailing_metadata(Metadata([(ECHO_TRAILING_KEY, trailing)]))
    if initial is not None:
        await context.send_initial_metadata(Metadata([(ECHO_INITIAL_KEY, initial)]))


async def _respond(
    request: messages_pb2.StreamingOutputCallRequest, context: ServicerContext
) -> None:
    """Answer one streaming request: Echo Status first, then one message per parameter."""
    _echo_status(request.response_status)
    _check_response_type(request.response_type)
    for parameters in request.response_parameters:
        if parameters.interval_us > 0:
            # Observe ResponseParameters.interval_us: a pause before each response.
            await trio.sleep(parameters.interval_us / 1e6)
        response = messages_pb2.StreamingOutputCallResponse(payload=_payload(parameters.size))
        # Per-message control (CompressedResponse): the call's encoding is
        # gzip, and each message is compressed only when its parameters say.
        await context.send(response, compress=parameters.compressed.value)
