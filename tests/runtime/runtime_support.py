"""Test methods, handlers and servers shared by the runtime tests.

* :class:`Probe` records what the puregrpc test handlers saw (started,
  cancelled, their ``finally`` ran, peers, deadlines, flow statistics), so a
  test can assert on the server side of a call; :class:`GrpcioProbe` is its
  thread-safe counterpart for the grpcio server.
* :func:`running_server` serves :func:`pure_handlers` on ``127.0.0.1:0``;
  :func:`start_grpcio_server` serves the same methods from grpcio.
* :func:`in_thread` runs blocking grpcio client code from a trio test.

Every method takes and returns raw bytes (``raw_method``); the request bytes
drive the handler (a count, a size, a delay) so tests need no protobuf.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
import trio

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServerOptions, ServicerContext
from puregrpc.wire import (
    CallEnded,
    ClientConnection,
    MessageReceived,
)

T = TypeVar("T")

SERVICE = "test.Runtime"

# ---------------------------------------------------------------- methods

#: Unary: returns the request; echoes ``x-*`` metadata as initial and trailing.
ECHO = raw_method(f"/{SERVICE}/Echo", Cardinality.UNARY_UNARY)
#: Server stream: request ``b"N"`` or ``b"N:SIZE"``: N responses (``b"i"`` or SIZE bytes).
STREAM = raw_method(f"/{SERVICE}/Stream", Cardinality.UNARY_STREAM)
#: Client stream: the requests joined with ``b","``.
COLLECT = raw_method(f"/{SERVICE}/Collect", Cardinality.STREAM_UNARY)
#: Bidi: each request upper-cased, as it arrives.
BIDI = raw_method(f"/{SERVICE}/Bidi", Cardinality.STREAM_STREAM)
#: Unary: sleeps ``float(request)`` seconds, then returns ``b"slept"``.
SLEEP = raw_method(f"/{SERVICE}/Sleep", Cardinality.UNARY_UNARY)
#: Server stream: sends initial metadata (the ``x-*`` pairs) and ``b"first"``
#: (not if the request is ``b"silent"``), then waits forever.
HANG = raw_method(f"/{SERVICE}/Hang", Cardinality.UNARY_STREAM)
#: Unary: aborts with code ``int(request)`` before sending anything. From the
#: metadata: details ``x-details`` (or UTF-8 ``x-details-bin``), details_bin
#: ``x-status-bin``; ``x-*`` pairs go back as trailing metadata.
ABORT = raw_method(f"/{SERVICE}/Abort", Cardinality.UNARY_UNARY)
#: Server stream: two responses, then aborts like ABORT.
STREAM_ABORT = raw_method(f"/{SERVICE}/StreamAbort", Cardinality.UNARY_STREAM)
#: Unary: raises ValueError carrying :data:`SECRET`.
RAISE = raw_method(f"/{SERVICE}/Raise", Cardinality.UNARY_UNARY)
#: Unary: returns ``int(request)`` bytes.
SIZE = raw_method(f"/{SERVICE}/Size", Cardinality.UNARY_UNARY)
#: Unary: returns ``len(request)`` as ASCII digits.
LENGTH = raw_method(f"/{SERVICE}/Length", Cardinality.UNARY_UNARY)
#: Unary: compresses its response with gzip; returns the request.
GZIP = raw_method(f"/{SERVICE}/Gzip", Cardinality.UNARY_UNARY)
#: Unary: waits until ``probe.gate`` opens; records the peer.
GATED = raw_method(f"/{SERVICE}/Gated", Cardinality.UNARY_UNARY)
#: Not served anywhere.
MISSING = raw_method(f"/{SERVICE}/Missing", Cardinality.UNARY_UNARY)

#: Text the RAISE handler puts in its exception; must never reach a client.
SECRET = "s3cr3t-db-password-in-exception"

MIB = 1024 * 1024


def echo_metadata(metadata: Metadata) -> Metadata:
    """The ``x-*`` pairs of ``metadata``, the ones test handlers echo back."""
    return Metadata([(key, value) for key, value in metadata if key.startswith("x-")])


def parse_stream_request(request: bytes) -> tuple[int, int | None]:
    """``b"N"`` -> (N, None); ``b"N:SIZE"`` -> (N, SIZE)."""
    count, _, size = request.partition(b":")
    return int(count), int(size) if size else None


# ---------------------------------------------------------------- puregrpc side


class Probe:
    """What the puregrpc test handlers saw; one per test."""

    def __init__(self) -> None:
        #: Set when a SLEEP / HANG / GATED handler has started.
        self.started = trio.Event()
        #: Set when a SLEEP / HANG / COLLECT / STREAM handler's ``finally`` ran.
        self.finished = trio.Event()
        #: True when a SLEEP / HANG / STREAM handler saw ``trio.Cancelled``.
        self.cancelled = False
        #: SLEEP handlers running now, and the most at once.
        self.active = 0
        self.max_active = 0
        #: ``time_remaining()`` seen by SLEEP handlers.
        self.time_remaining: list[float | None] = []
        #: ``context.peer()`` of every ECHO / GATED call.
        self.peers: list[str] = []
        #: GATED handlers wait for this; ``gate_at`` arrivals open it.
        self.gate = trio.Event()
        self.gate_at = 0
        self.arrived = 0
        #: Responses STREAM has handed to ``send`` so far.
        self.sent = 0
        #: Request lists COLLECT saw end cleanly (its loop finished).
        self.collected: list[list[bytes]] = []
        #: Set once STREAM has sent 5 responses.
        self.streaming = trio.Event()
        #: The context of the last STREAM call (to sample its statistics).
        self.context: ServicerContext | None = None


def pure_handlers(probe: Probe) -> list[MethodHandler]:
    """The puregrpc handlers of every test method, reporting to ``probe``."""

    async def echo(request: bytes, context: ServicerContext) -> bytes:
        probe.peers.append(context.peer())
        echoed = echo_metadata(context.invocation_metadata())
        await context.send_initial_metadata(echoed)
        context.set_trailing_metadata(echoed)
        return request

    async def stream(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        probe.context = context
        count, size = parse_stream_request(request)
        payload = None if size is None else b"z" * size
        try:
            for i in range(count):
                yield b"%d" % i if payload is None else payload
                probe.sent += 1
                if probe.sent == 5:
                    probe.streaming.set()
        except trio.Cancelled:
            probe.cancelled = True
            raise
        finally:
            probe.finished.set()

    async def collect(requests: AsyncIterator[bytes], context: ServicerContext) -> bytes:
        received = []
        try:
            async for request in requests:
                received.append(request)
                probe.started.set()
            # Reached only when the request stream ended as a clean half-close.
            probe.collected.append(received)
        finally:
            probe.finished.set()
        return b",".join(received)

    async def bidi(requests: AsyncIterator[bytes], context: ServicerContext) -> None:
        async for request in requests:
            await context.send(request.upper())

    async def sleep(request: bytes, context: ServicerContext) -> bytes:
        probe.time_remaining.append(context.time_remaining())
        probe.started.set()
        probe.active += 1
        probe.max_active = max(probe.max_active, probe.active)
        try:
            await trio.sleep(float(request))
        except trio.Cancelled:
            probe.cancelled = True
            raise
        finally:
            probe.active -= 1
            probe.finished.set()
        return b"slept"

    async def hang(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        try:
            await context.send_initial_metadata(echo_metadata(context.invocation_metadata()))
            if request != b"silent":
                yield b"first"
            probe.started.set()
            await trio.sleep_forever()
        except trio.Cancelled:
            probe.cancelled = True
            raise
        finally:
            probe.finished.set()

    async def _abort(context: ServicerContext, request: bytes) -> None:
        metadata = context.invocation_metadata()
        context.set_trailing_metadata(echo_metadata(metadata))
        details = metadata.get("x-details", "")
        unicode_details = metadata.get("x-details-bin")
        if isinstance(unicode_details, bytes):
            details = unicode_details.decode()
        details_bin = metadata.get("x-status-bin")
        assert isinstance(details, str)
        assert details_bin is None or isinstance(details_bin, bytes)
        await context.abort(StatusCode(int(request)), details, details_bin)

    async def abort(request: bytes, context: ServicerContext) -> bytes:
        await _abort(context, request)
        raise AssertionError("abort returned")

    async def stream_abort(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"
        await _abort(context, request)

    async def raise_(request: bytes, context: ServicerContext) -> bytes:
        raise ValueError(f"cannot connect: {SECRET}")

    async def size(request: bytes, context: ServicerContext) -> bytes:
        return b"s" * int(request)

    async def length(request: bytes, context: ServicerContext) -> bytes:
        return b"%d" % len(request)

    async def gzip(request: bytes, context: ServicerContext) -> bytes:
        context.set_compression("gzip")
        return request

    async def gated(request: bytes, context: ServicerContext) -> bytes:
        probe.peers.append(context.peer())
        probe.arrived += 1
        probe.started.set()
        if probe.arrived >= probe.gate_at:
            probe.gate.set()
        await probe.gate.wait()
        return request

    table: list[tuple[Any, Callable[..., Any]]] = [
        (ECHO, echo),
        (STREAM, stream),
        (COLLECT, collect),
        (BIDI, bidi),
        (SLEEP, sleep),
        (HANG, hang),
        (ABORT, abort),
        (STREAM_ABORT, stream_abort),
        (RAISE, raise_),
        (SIZE, size),
        (LENGTH, length),
        (GZIP, gzip),
        (GATED, gated),
    ]
    return [MethodHandler(method=method, func=func) for method, func in table]


@dataclass
class Served:
    """A running puregrpc test server."""

    server: Server
    port: int
    probe: Probe

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"


@asynccontextmanager
async def running_server(
    probe: Probe | None = None, options: ServerOptions | None = None
) -> AsyncIterator[Served]:
    """Serve the test handlers on ``127.0.0.1:0`` for the block; stop at its end."""
    probe = probe if probe is not None else Probe()
    server = Server(pure_handlers(probe), options=options)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        try:
            yield Served(server=server, port=port, probe=probe)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await server.stop(grace=0)


@asynccontextmanager
async def open_channel(
    target: str, options: ChannelOptions | None = None
) -> AsyncIterator[Channel]:
    """A channel to ``target`` for the block (for tests that need options)."""
    async with Channel(target, options=options) as chan:
        yield chan


async def expect_rpc_error(awaitable: Any) -> RpcError:
    """Await ``awaitable``; return the :class:`RpcError` it must raise."""
    with pytest.raises(RpcError) as info:
        await awaitable
    return info.value


# ---------------------------------------------------------------- grpcio side


class GrpcioProbe:
    """What the grpcio test handlers saw (set from grpcio's worker threads)."""

    def __init__(self) -> None:
        #: Set when a SLEEP / HANG handler has started.
        self.started = threading.Event()
        #: Set when grpcio reports a SLEEP / HANG call terminated (callback).
        self.terminated = threading.Event()
        #: Invocation metadata of the last ECHO call.
        self.metadata: tuple[tuple[str, str | bytes], ...] = ()
        #: ``context.time_remaining()`` seen by SLEEP.
        self.time_remaining: list[float | None] = []


def _grpcio_handlers(probe: GrpcioProbe) -> grpc.GenericRpcHandler:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = tuple((m.key, m.value) for m in context.invocation_metadata())
        probe.metadata = metadata
        echoed = tuple((k, v) for k, v in metadata if k.startswith("x-"))
        context.send_initial_metadata(echoed)
        context.set_trailing_metadata(echoed)
        return request

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        count, size = parse_stream_request(request)
        for i in range(count):
            yield b"%d" % i if size is None else b"z" * size

    def collect(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return b",".join(requests)

    def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            yield request.upper()

    def _wait(seconds: float, context: grpc.ServicerContext) -> None:
        context.add_callback(probe.terminated.set)
        probe.started.set()
        probe.terminated.wait(seconds)

    def sleep(request: bytes, context: grpc.ServicerContext) -> bytes:
        probe.time_remaining.append(context.time_remaining())
        _wait(float(request), context)
        return b"slept"

    def hang(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"first"
        _wait(10.0, context)

    def _abort(request: bytes, context: grpc.ServicerContext) -> None:
        metadata = dict((m.key, m.value) for m in context.invocation_metadata())
        trailing = [(k, v) for k, v in metadata.items() if k.startswith("x-")]
        if "x-status-bin" in metadata:
            trailing.append(("grpc-status-details-bin", metadata["x-status-bin"]))
        context.set_trailing_metadata(tuple(trailing))
        details = metadata.get("x-details", "")
        if "x-details-bin" in metadata:
            details = metadata["x-details-bin"].decode()
        context.abort(grpc.StatusCode(_GRPCIO_CODES[int(request)]), details)

    def abort(request: bytes, context: grpc.ServicerContext) -> bytes:
        _abort(request, context)
        raise AssertionError("abort returned")

    def stream_abort(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"one"
        yield b"two"
        _abort(request, context)

    def size(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"s" * int(request)

    def length(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"%d" % len(request)

    def gzip(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.set_compression(grpc.Compression.Gzip)
        return request

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "Hang": grpc.unary_stream_rpc_method_handler(hang),
        "Abort": grpc.unary_unary_rpc_method_handler(abort),
        "StreamAbort": grpc.unary_stream_rpc_method_handler(stream_abort),
        "Size": grpc.unary_unary_rpc_method_handler(size),
        "Length": grpc.unary_unary_rpc_method_handler(length),
        "Gzip": grpc.unary_unary_rpc_method_handler(gzip),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


#: puregrpc code number -> grpcio's ``StatusCode`` value tuple.
_GRPCIO_CODES = {code.value[0]: code.value for code in grpc.StatusCode}


def grpcio_code(code: grpc.StatusCode) -> StatusCode:
    """A grpcio status code as puregrpc's :class:`StatusCode`."""
    return StatusCode(code.value[0])


@dataclass
class GrpcioServed:
    """A running grpcio test server."""

    server: grpc.Server
    port: int
    probe: GrpcioProbe

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"


def start_grpcio_server(**options: Any) -> GrpcioServed:
    """Start a grpcio sync server with the test handlers on 127.0.0.1, port 0."""
    from concurrent.futures import ThreadPoolExecutor

    probe = GrpcioProbe()
    server = grpc.server(
        ThreadPoolExecutor(max_workers=16),
        handlers=[_grpcio_handlers(probe)],
        options=list(options.items()),
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return GrpcioServed(server=server, port=port, probe=probe)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking (grpcio) code in a worker thread; abandon it if cancelled."""
    return await trio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=True)


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` from a worker thread until true or ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# ---------------------------------------------------------------- raw peers


class RawClient:
    """A bare gRPC client: puregrpc's sans-IO ClientConnection over a trio TCP stream.

    No deadline enforcement, no cancellation on exit: it does exactly what a
    test tells it, so a test can send a valid call and then vanish, or let the
    server alone enforce a ``grpc-timeout``.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = ClientConnection(authority="127.0.0.1")
        #: Messages received, by stream id.
        self.messages: dict[int, list[bytes]] = {}

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        """Connect to ``127.0.0.1:port`` and send the connection preface."""
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await client.flush()
        return client

    async def flush(self) -> None:
        """Write everything the state machine has queued."""
        data = self.connection.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def start(
        self, path: str, request: bytes, *, grpc_timeout: float | None = None, end: bool = True
    ) -> int:
        """Start a call, send one request (and half-close if ``end``); return its stream id."""
        stream_id = self.connection.start_call(path, timeout=grpc_timeout)
        self.connection.send_message(stream_id, request)
        if end:
            self.connection.end_stream(stream_id)
        await self.flush()
        return stream_id

    async def wait_end(self, stream_id: int) -> CallEnded:
        """Read until ``stream_id`` ends; messages are kept in :attr:`messages`."""
        while True:
            data = await self.stream.receive_some(65_536)
            events = (
                self.connection.receive_data(data) if data else self.connection.connection_lost()
            )
            for event in events:
                if isinstance(event, MessageReceived):
                    self.messages.setdefault(event.stream_id, []).append(event.data)
                    self.connection.consume(event.stream_id, event.wire_length)
                elif isinstance(event, CallEnded) and event.stream_id == stream_id:
                    return event
            await self.flush()
            if not data:
                raise AssertionError("connection closed before the call ended")

    async def aclose(self) -> None:
        """Close the socket without any HTTP/2 goodbye."""
        await self.stream.aclose()


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never sends a byte; yields its port."""

    async def swallow(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some(65_536):
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, swallow, 0)
        try:
            yield listeners[0].socket.getsockname()[1]
        finally:
            nursery.cancel_scope.cancel()
