"""The grpcio side of the interop matrix, written from doc/interop-test-descriptions.md.

* :class:`GrpcioTestService`: ``grpc.testing.TestService`` on a grpcio sync
  server, with the same server features as ``puregrpc.interop._service``.
* :class:`WireTap`: a loopback relay in front of that server that reads the
  Compressed-Flag of every request message on the wire. grpcio's Python API
  hides it (and strips ``grpc-encoding`` from the invocation metadata), yet
  the CompressedRequest feature needs it; the servicer asks the tap.
* :data:`GRPCIO_CASES`: the client cases for a grpcio channel.

The grpcio code is synchronous: tests run it in a worker thread.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from puregrpc.interop import SPECIAL_STATUS_MESSAGE
from puregrpc.interop.protos import empty_pb2, messages_pb2

SERVICE = "grpc.testing.TestService"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
TIMEOUT = 10.0

T = TypeVar("T")


class CaseFailed(AssertionError):
    """A grpcio-side case assertion failed."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


def _zeros(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _grpc_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


# =============================================================== the wire tap


class RequestFlags:
    """Compressed-Flags of the request messages of the latest call through the tap.

    Interop clients make one call at a time, so "the latest call" (the last
    stream that sent HEADERS) is the call a grpcio handler is serving.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: list[bool] = []

    def call_started(self) -> None:
        with self._lock:
            self._flags = []

    def message(self, compressed: bool) -> None:
        with self._lock:
            self._flags.append(compressed)

    def flag(self, index: int) -> bool | None:
        """The flag of request ``index`` of the latest call (None: not seen)."""
        with self._lock:
            return self._flags[index] if index < len(self._flags) else None


class _RequestParser:
    """Reads HTTP/2 frames client -> server and the gRPC message prefixes in DATA."""

    def __init__(self, flags: RequestFlags) -> None:
        self._flags = flags
        self._buffer = bytearray()
        self._preface = 24  # the client connection preface is not a frame
        self._messages: dict[int, bytearray] = {}

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if self._preface:
            taken = min(self._preface, len(self._buffer))
            del self._buffer[:taken]
            self._preface -= taken
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[0:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            stream_id = int.from_bytes(self._buffer[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self._buffer[9 : 9 + length])
            del self._buffer[: 9 + length]
            if kind == 0x1 and stream_id not in self._messages:  # HEADERS: a new call
                self._messages[stream_id] = bytearray()
                self._flags.call_started()
            elif kind == 0x0:  # DATA
                if flags & 0x8:  # PADDED
                    payload = payload[1 : len(payload) - payload[0]]
                self._data(stream_id, payload)

    def _data(self, stream_id: int, payload: bytes) -> None:
        pending = self._messages.setdefault(stream_id, bytearray())
        pending += payload
        while len(pending) >= 5:
            size = int.from_bytes(pending[1:5], "big")
            if len(pending) < 5 + size:
                return
            self._flags.message(bool(pending[0] & 0x1))
            del pending[: 5 + size]


class WireTap:
    """A loopback TCP relay to ``upstream_port`` that reports request flags."""

    def __init__(self, upstream_port: int) -> None:
        self.flags = RequestFlags()
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=5)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            parser = _RequestParser(self.flags)
            self._spawn(self._pump, client, upstream, parser.feed)
            self._spawn(self._pump, upstream, client, None)

    @staticmethod
    def _pump(
        source: socket.socket, sink: socket.socket, observe: Callable[[bytes], None] | None
    ) -> None:
        try:
            while data := source.recv(65536):
                if observe is not None:
                    observe(data)  # before forwarding: the flag is known before grpcio reads
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)


# ======================================================= the grpcio server


class GrpcioTestService:
    """grpc.testing.TestService for grpcio, with the interop server features."""

    def __init__(self, flags: RequestFlags) -> None:
        self._flags = flags

    # -- features

    @staticmethod
    def _echo_metadata(context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        if ECHO_INITIAL[0] in metadata:
            context.send_initial_metadata([(ECHO_INITIAL[0], metadata[ECHO_INITIAL[0]])])
        if ECHO_TRAILING[0] in metadata:
            context.set_trailing_metadata([(ECHO_TRAILING[0], metadata[ECHO_TRAILING[0]])])

    def _expect_compressed(self, expected: bool, index: int, context: grpc.ServicerContext) -> None:
        if not expected:
            return
        compressed = self._flags.flag(index)
        if not compressed:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"expected a compressed request; message {index} was not ({compressed})",
            )

    @staticmethod
    def _echo_status(status: messages_pb2.EchoStatus, context: grpc.ServicerContext) -> None:
        if status.code:
            context.abort(_grpc_code(status.code), status.message)

    @staticmethod
    def _respond(
        request: messages_pb2.StreamingOutputCallRequest, context: grpc.ServicerContext
    ) -> Iterator[messages_pb2.StreamingOutputCallResponse]:
        GrpcioTestService._echo_status(request.response_status, context)
        for parameters in request.response_parameters:
            if parameters.interval_us:
                time.sleep(parameters.interval_us / 1e6)
            if not parameters.compressed.value:
                context.disable_next_message_compression()
            yield messages_pb2.StreamingOutputCallResponse(payload=_zeros(parameters.size))

    # -- methods

    def EmptyCall(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self._echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(
        self, request: messages_pb2.SimpleRequest, context: grpc.ServicerContext
    ) -> messages_pb2.SimpleResponse:
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        self._echo_metadata(context)
        self._expect_compressed(request.expect_compressed.value, 0, context)
        self._echo_status(request.response_status, context)
        response = messages_pb2.SimpleResponse()
        if request.response_size:
            response.payload.CopyFrom(_zeros(request.response_size))
        return response

    def StreamingOutputCall(
        self, request: messages_pb2.StreamingOutputCallRequest, context: grpc.ServicerContext
    ) -> Iterator[messages_pb2.StreamingOutputCallResponse]:
        context.set_compression(grpc.Compression.Gzip)
        self._echo_metadata(context)
        yield from self._respond(request, context)

    def StreamingInputCall(
        self,
        requests: Iterator[messages_pb2.StreamingInputCallRequest],
        context: grpc.ServicerContext,
    ) -> messages_pb2.StreamingInputCallResponse:
        self._echo_metadata(context)
        total = 0
        for index, request in enumerate(requests):
            self._expect_compressed(request.expect_compressed.value, index, context)
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(
        self,
        requests: Iterator[messages_pb2.StreamingOutputCallRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[messages_pb2.StreamingOutputCallResponse]:
        context.set_compression(grpc.Compression.Gzip)
        self._echo_metadata(context)
        for request in requests:
            yield from self._respond(request, context)

    def HalfDuplexCall(
        self,
        requests: Iterator[messages_pb2.StreamingOutputCallRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[messages_pb2.StreamingOutputCallResponse]:
        context.set_compression(grpc.Compression.Gzip)
        self._echo_metadata(context)
        for request in list(requests):
            yield from self._respond(request, context)

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving these methods (UnimplementedCall left out)."""
        simple = (messages_pb2.SimpleRequest, messages_pb2.SimpleResponse)
        output = (messages_pb2.StreamingOutputCallRequest, messages_pb2.StreamingOutputCallResponse)
        upload = (messages_pb2.StreamingInputCallRequest, messages_pb2.StreamingInputCallResponse)
        empty = (empty_pb2.Empty, empty_pb2.Empty)
        table = {
            "EmptyCall": (grpc.unary_unary_rpc_method_handler, self.EmptyCall, empty),
            "UnaryCall": (grpc.unary_unary_rpc_method_handler, self.UnaryCall, simple),
            "StreamingOutputCall": (
                grpc.unary_stream_rpc_method_handler,
                self.StreamingOutputCall,
                output,
            ),
            "StreamingInputCall": (
                grpc.stream_unary_rpc_method_handler,
                self.StreamingInputCall,
                upload,
            ),
            "FullDuplexCall": (grpc.stream_stream_rpc_method_handler, self.FullDuplexCall, output),
            "HalfDuplexCall": (grpc.stream_stream_rpc_method_handler, self.HalfDuplexCall, output),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: make(
                    func,
                    request_deserializer=types[0].FromString,
                    response_serializer=types[1].SerializeToString,
                )
                for name, (make, func, types) in table.items()
            },
        )


@dataclass
class GrpcioServer:
    """A running grpcio TestService server behind a :class:`WireTap`."""

    server: grpc.Server
    tap: WireTap

    @property
    def port(self) -> int:
        """Where clients connect: the tap."""
        return self.tap.port

    def stop(self) -> None:
        self.tap.close()
        self.server.stop(grace=None).wait(timeout=5)


def start_grpcio_server() -> GrpcioServer:
    """Start the grpcio TestService server and its tap on loopback."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    tap = WireTap(server.add_insecure_port("127.0.0.1:0"))
    server.add_generic_rpc_handlers([GrpcioTestService(tap.flags).handler()])
    server.start()
    return GrpcioServer(server=server, tap=tap)


# ======================================================= the grpcio client


class _Pipe:
    """A request iterator fed from the test: blocks until a request (or the end) comes."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get(timeout=TIMEOUT)
            if item is None:
                return
            yield item

    def add(self, request: Any) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._queue.put(None)


@dataclass
class GrpcioClient:
    """A grpcio channel to a TestService server, and how to see response flags."""

    channel: grpc.Channel
    #: The Compressed-Flags of the latest call's responses, read where the
    #: server sends them (grpcio's client API cannot see them); None when the
    #: server is out of reach (a subprocess) and the check is skipped.
    response_flags: Callable[[], list[bool]] | None = None

    def method(self, name: str, kind: str, request: type, response: type) -> Any:
        factory = getattr(self.channel, kind)
        return factory(
            name if name.startswith("/") else f"/{SERVICE}/{name}",
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )

    def unary(self) -> Any:
        return self.method(
            "UnaryCall", "unary_unary", messages_pb2.SimpleRequest, messages_pb2.SimpleResponse
        )

    def output(self) -> Any:
        return self.method(
            "StreamingOutputCall",
            "unary_stream",
            messages_pb2.StreamingOutputCallRequest,
            messages_pb2.StreamingOutputCallResponse,
        )

    def upload(self) -> Any:
        return self.method(
            "StreamingInputCall",
            "stream_unary",
            messages_pb2.StreamingInputCallRequest,
            messages_pb2.StreamingInputCallResponse,
        )

    def duplex(self) -> Any:
        return self.method(
            "FullDuplexCall",
            "stream_stream",
            messages_pb2.StreamingOutputCallRequest,
            messages_pb2.StreamingOutputCallResponse,
        )


def _large(**fields: Any) -> messages_pb2.SimpleRequest:
    request = messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=314159, payload=_zeros(271828)
    )
    for name, value in fields.items():
        getattr(request, name).CopyFrom(value)
    return request


def _sizes(responses: list[messages_pb2.StreamingOutputCallResponse], sizes: list[int]) -> None:
    got = [len(r.payload.body) for r in responses]
    _check(got == sizes, f"response sizes {got}, expected {sizes}")
    _check(all(r.payload.body == bytes(len(r.payload.body)) for r in responses), "non-zero body")


def _expect_code(call: Callable[[], object], code: grpc.StatusCode) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as error:
        _check(
            error.code() == code, f"status {error.code()} ({error.details()!r}), expected {code}"
        )
        return error
    raise CaseFailed(f"call succeeded, expected {code}")


def _flags(client: GrpcioClient, expected: list[bool]) -> None:
    if client.response_flags is not None:
        got = client.response_flags()
        _check(got == expected, f"response Compressed-Flags {got}, expected {expected}")


def g_empty_unary(client: GrpcioClient) -> None:
    call = client.method("EmptyCall", "unary_unary", empty_pb2.Empty, empty_pb2.Empty)
    response = call(empty_pb2.Empty(), timeout=TIMEOUT)
    _check(isinstance(response, empty_pb2.Empty), f"response {response!r}")


def g_large_unary(client: GrpcioClient) -> None:
    response = client.unary()(_large(), timeout=TIMEOUT)
    _check(response.payload.body == bytes(314159), "payload is not 314159 zero bytes")


def g_client_compressed_unary(client: GrpcioClient) -> None:
    call = client.unary()
    probe = _large(expect_compressed=messages_pb2.BoolValue(value=True))
    _expect_code(lambda: call(probe, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT)
    for compressed in (True, False):
        request = _large(expect_compressed=messages_pb2.BoolValue(value=compressed))
        compression = grpc.Compression.Gzip if compressed else grpc.Compression.NoCompression
        response = call(request, timeout=TIMEOUT, compression=compression)
        _check(len(response.payload.body) == 314159, "payload is not 314159 bytes")


def g_server_compressed_unary(client: GrpcioClient) -> None:
    for compressed in (True, False):
        request = _large(response_compressed=messages_pb2.BoolValue(value=compressed))
        response = client.unary()(request, timeout=TIMEOUT)
        _check(len(response.payload.body) == 314159, "payload is not 314159 bytes")
        _flags(client, [compressed])


def g_client_streaming(client: GrpcioClient) -> None:
    requests = [
        messages_pb2.StreamingInputCallRequest(payload=_zeros(size))
        for size in (27182, 8, 1828, 45904)
    ]
    response = client.upload()(iter(requests), timeout=TIMEOUT)
    _check(response.aggregated_payload_size == 74922, f"aggregated {response}")


def g_client_compressed_streaming(client: GrpcioClient) -> None:
    call = client.upload()
    probe = messages_pb2.StreamingInputCallRequest(
        expect_compressed=messages_pb2.BoolValue(value=True), payload=_zeros(27182)
    )
    _expect_code(lambda: call(iter([probe]), timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT)
    requests = [
        messages_pb2.StreamingInputCallRequest(
            expect_compressed=messages_pb2.BoolValue(value=True), payload=_zeros(27182)
        ),
        # grpcio's Python API has no per-message "do not compress" write
        # option, so this one goes compressed too; the doc's server check
        # is on expect_compressed=true only, so the case still holds.
        messages_pb2.StreamingInputCallRequest(
            expect_compressed=messages_pb2.BoolValue(value=False), payload=_zeros(45904)
        ),
    ]
    response = call(iter(requests), timeout=TIMEOUT, compression=grpc.Compression.Gzip)
    _check(response.aggregated_payload_size == 73086, f"aggregated {response}")


def g_server_streaming(client: GrpcioClient) -> None:
    sizes = [31415, 9, 2653, 58979]
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=s) for s in sizes]
    )
    _sizes(list(client.output()(request, timeout=TIMEOUT)), sizes)


def g_server_compressed_streaming(client: GrpcioClient) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(
                size=31415, compressed=messages_pb2.BoolValue(value=True)
            ),
            messages_pb2.ResponseParameters(
                size=92653, compressed=messages_pb2.BoolValue(value=False)
            ),
        ]
    )
    _sizes(list(client.output()(request, timeout=TIMEOUT)), [31415, 92653])
    _flags(client, [True, False])


def g_ping_pong(client: GrpcioClient) -> None:
    pipe = _Pipe()
    responses = client.duplex()(iter(pipe), timeout=TIMEOUT)
    try:
        for response_size, payload_size in ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904)):
            pipe.add(
                messages_pb2.StreamingOutputCallRequest(
                    response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
                    payload=_zeros(payload_size),
                )
            )
            response = next(responses)
            _check(len(response.payload.body) == response_size, f"response {response_size}")
    finally:
        pipe.close()
    _check(list(responses) == [], "responses after the half-close")


def g_empty_stream(client: GrpcioClient) -> None:
    _check(list(client.duplex()(iter([]), timeout=TIMEOUT)) == [], "responses to nothing")


def g_custom_metadata(client: GrpcioClient) -> None:
    metadata = [ECHO_INITIAL, ECHO_TRAILING]

    def echoed(initial: Any, trailing: Any) -> None:
        _check(ECHO_INITIAL in list(initial), f"initial metadata {initial}")
        _check(ECHO_TRAILING in list(trailing), f"trailing metadata {trailing}")

    _, call = client.unary().with_call(_large(), timeout=TIMEOUT, metadata=metadata)
    echoed(call.initial_metadata(), call.trailing_metadata())
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=314159)],
        payload=_zeros(271828),
    )
    responses = client.duplex()(iter([request]), timeout=TIMEOUT, metadata=metadata)
    _sizes(list(responses), [314159])
    echoed(responses.initial_metadata(), responses.trailing_metadata())


def _echo_status_check(client: GrpcioClient, message: str, *, bidi: bool) -> None:
    status = messages_pb2.EchoStatus(code=2, message=message)
    if bidi:
        request = messages_pb2.StreamingOutputCallRequest(response_status=status)
        error = _expect_code(
            lambda: list(client.duplex()(iter([request]), timeout=TIMEOUT)),
            grpc.StatusCode.UNKNOWN,
        )
    else:
        simple = messages_pb2.SimpleRequest(response_status=status)
        error = _expect_code(
            lambda: client.unary()(simple, timeout=TIMEOUT), grpc.StatusCode.UNKNOWN
        )
    _check(error.details() == message, f"details {error.details()!r}, expected {message!r}")


def g_status_code_and_message(client: GrpcioClient) -> None:
    _echo_status_check(client, "test status message", bidi=False)
    _echo_status_check(client, "test status message", bidi=True)


def g_special_status_message(client: GrpcioClient) -> None:
    _echo_status_check(client, SPECIAL_STATUS_MESSAGE, bidi=False)


def g_unimplemented_method(client: GrpcioClient) -> None:
    call = client.method("UnimplementedCall", "unary_unary", empty_pb2.Empty, empty_pb2.Empty)
    _expect_code(lambda: call(empty_pb2.Empty(), timeout=TIMEOUT), grpc.StatusCode.UNIMPLEMENTED)


def g_unimplemented_service(client: GrpcioClient) -> None:
    call = client.method(
        "/grpc.testing.UnimplementedService/UnimplementedCall",
        "unary_unary",
        empty_pb2.Empty,
        empty_pb2.Empty,
    )
    _expect_code(lambda: call(empty_pb2.Empty(), timeout=TIMEOUT), grpc.StatusCode.UNIMPLEMENTED)


def g_cancel_after_begin(client: GrpcioClient) -> None:
    pipe = _Pipe()
    future = client.upload().future(iter(pipe), timeout=TIMEOUT)
    try:
        future.cancel()
        _check(future.cancelled(), "the call did not cancel")
        _check(future.code() == grpc.StatusCode.CANCELLED, f"status {future.code()}")
    finally:
        pipe.close()


def g_cancel_after_first_response(client: GrpcioClient) -> None:
    pipe = _Pipe()
    responses = client.duplex()(iter(pipe), timeout=TIMEOUT)
    try:
        pipe.add(
            messages_pb2.StreamingOutputCallRequest(
                response_parameters=[messages_pb2.ResponseParameters(size=31415)],
                payload=_zeros(27182),
            )
        )
        _check(len(next(responses).payload.body) == 31415, "first response size")
        responses.cancel()
        _expect_code(lambda: next(responses), grpc.StatusCode.CANCELLED)
    finally:
        pipe.close()


def g_timeout_on_sleeping_server(client: GrpcioClient) -> None:
    pipe = _Pipe()
    responses = client.duplex()(iter(pipe), timeout=0.001)
    try:
        pipe.add(messages_pb2.StreamingOutputCallRequest(payload=_zeros(27182)))
        _expect_code(lambda: next(responses), grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        pipe.close()


#: The grpcio client cases, by interop case name.
GRPCIO_CASES: dict[str, Callable[[GrpcioClient], None]] = {
    name[2:]: func for name, func in globals().items() if name.startswith("g_")
}


def run_grpcio_case(name: str, port: int, response_flags: Callable[[], list[bool]] | None) -> None:
    """Run grpcio client case ``name`` against ``127.0.0.1:port`` on a fresh channel."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        GRPCIO_CASES[name](GrpcioClient(channel, response_flags))
