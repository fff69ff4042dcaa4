"""The channel: one multiplexed HTTP/2 connection to a target, reopened as needed.

``async with Channel("127.0.0.1:50051") as channel:`` owns a nursery in which
the connection's reader and writer tasks (and request feeders of streaming
calls) run; leaving the block closes the connection and ends them all.

The connection opens on the first call, over TCP or a Unix socket named by
the target, or over whatever stream a ``connect`` factory returns (one end
of ``trio.testing.memory_stream_pair()`` in a test without sockets). If it
is lost, the next call opens a new one; failed attempts are spaced by
exponential backoff with jitter (doc/connection-backoff.md). A call made
while the channel is backing off fails at once with UNAVAILABLE, unless it
asked ``wait_for_ready=True``, in which case it waits for the next attempt
(bounded by its deadline).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar

import trio

from ..runtime import ClientCallStream, Method, Transport, tracer_or_environment
from ..wire import (
    NULL_TRACER,
    CallEnded,
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    Event,
    LocalProtocolError,
    Metadata,
    RpcError,
    SettingsChanged,
    StatusCode,
    Tracer,
)
from ._backoff import Backoff, BackoffPolicy
from ._call import ClientCall

logger = logging.getLogger("puregrpc.client")

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

#: Opens the byte stream of a new connection (TLS, if any, is added on top).
StreamFactory = Callable[[], Awaitable[trio.abc.Stream]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOptions:
    """How a channel connects and what its calls default to."""

    #: Windows and limits of the HTTP/2 connection.
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    #: Backoff between failed connection attempts.
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    #: Compress requests with this encoding by default ("gzip", "deflate").
    compression: str | None = None
    #: Metadata added to every call.
    metadata: Metadata | None = None
    #: Default for calls that do not say: wait for a connection or fail fast.
    wait_for_ready: bool = False
    #: The ``:authority`` to send (default: the target's host:port).
    authority: str | None = None
    #: Receives trace records of the connection.
    tracer: Tracer = NULL_TRACER


def parse_target(target: str) -> tuple[str, str, int]:
    """Split a target into ``(kind, host_or_path, port)``.

    Accepted: ``host:port``, ``[v6]:port``, ``dns:host:port``,
    ``ipv4:a.b.c.d:port``, ``ipv6:[addr]:port``, ``unix:path``,
    ``unix:///abs/path``. Raises :class:`ValueError` naming the problem.
    """
    if target.startswith("unix:"):
        path = target[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"target {target!r} has no socket path")
        return "unix", path, 0
    for prefix in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(prefix):
            target = target[len(prefix) :]
            break
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"target {target!r}: expected [address]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep:
            raise ValueError(f"target {target!r} has no port (expected host:port)")
    if not host:
        raise ValueError(f"target {target!r} has no host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"target {target!r} has an invalid port {port_text!r}")
    return "tcp", host, int(port_text)


def _connect_error_text(exc: OSError) -> str:
    """Why a connection attempt failed, in the words of the innermost error.

    trio reports a failed ``open_tcp_stream`` as "all attempts to connect to
    ... failed", with the reasons (ECONNREFUSED...) in an exception group in
    ``__cause__``: name those.
    """
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = []
        for inner in cause.exceptions:
            text = inner.strerror if isinstance(inner, OSError) and inner.strerror else str(inner)
            if text and text not in reasons:
                reasons.append(text)
        if reasons:
            return f"{exc}: {'; '.join(reasons)}"
    return str(exc) or type(exc).__name__


class _ClientTransport:
    """One connection of a channel: its transport, and the calls waiting for a stream slot."""

    def __init__(self, transport: Transport[ClientConnection]) -> None:
        self.transport = transport
        self.slots = trio.lowlevel.ParkingLot()

    @property
    def usable(self) -> bool:
        return not self.transport.closed and not self.transport.connection.closed


class Channel:
    """A client connection to one gRPC server, shared by all calls made on it.

    ``target`` names the server (``host:port``, ``unix:path``... see
    :func:`parse_target`). ``connect``, an async function returning a trio
    stream, replaces the dialling: the channel runs over whatever it returns
    (TLS on top when ``ssl_context`` is given), and ``target`` may then be
    left out (it only names the ``:authority``, ``localhost`` by default).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        options: ChannelOptions | None = None,
        server_hostname: str | None = None,
        connect: StreamFactory | None = None,
    ) -> None:
        if target is None:
            if connect is None:
                raise ValueError("a Channel needs a target, or a connect= stream factory")
            self.target = "localhost"
            self._kind, self._host, self._port = "stream", "localhost", 0
        else:
            self.target = target
            self._kind, self._host, self._port = parse_target(target)
        self._connect_stream = connect
        self.options = options if options is not None else ChannelOptions()
        # No tracer given: PUREGRPC_TRACE may ask for one.
        self.options = replace(self.options, tracer=tracer_or_environment(self.options.tracer))
        self._ssl_context = ssl_context
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        self._server_hostname = server_hostname or self._host
        default_authority = (
            "localhost"
            if self._kind in ("unix", "stream")
            else (f"[{self._host}]" if ":" in self._host else self._host) + f":{self._port}"
        )
        self._authority = self.options.authority or default_authority
        self._backoff = Backoff(self.options.backoff)
        self._retry_at = -float("inf")
        self._last_error = ""
        self._current: _ClientTransport | None = None
        self._connect_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._closed = False

    # ------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Channel:
        stack = contextlib.AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._exit_stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._exit_stack is not None
        try:
            try:
                await self.close()
            finally:
                # Always leave the nursery, even if close() was cancelled:
                # trio's cancel scopes must unwind in order.
                await self._exit_stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The channel's nursery wraps what the block raised; a caller who
            # wrote ``except RpcError`` around the block should still catch it.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return None
            raise

    async def close(self) -> None:
        """Close the connection; calls still running fail with UNAVAILABLE."""
        self._closed = True
        current = self._current
        self._current = None
        if current is not None:
            with current.transport.send_context() as connection:
                connection.close()
            # Shielded but bounded: the GOAWAY gets its chance to go out even
            # when close() runs because the caller's scope was cancelled.
            with trio.move_on_after(1.0) as drain_scope:
                drain_scope.shield = True
                await current.transport.drain()
            current.transport.abort("channel closed")
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # --------------------------------------------------------------- calls

    def unary_unary(
        self,
        method: Method[RequestT, ResponseT],
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: Metadata | Any = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> ClientCall[RequestT, ResponseT]:
        """A unary call: ``await`` it for the response (or use it as a call object)."""
        return self._call(
            method, timeout, metadata, compression, wait_for_ready, (request,), single=True
        )

    def unary_stream(
        self,
        method: Method[RequestT, ResponseT],
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: Metadata | Any = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> ClientCall[RequestT, ResponseT]:
        """A server-streaming call: ``async for response in call``."""
        return self._call(
            method, timeout, metadata, compression, wait_for_ready, (request,), single=True
        )

    def stream_unary(
        self,
        method: Method[RequestT, ResponseT],
        requests: AsyncIterable[RequestT] | Iterable[RequestT] | None = None,
        *,
        timeout: float | None = None,
        metadata: Metadata | Any = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> ClientCall[RequestT, ResponseT]:
        """A client-streaming call: ``requests``, or ``send``/``done_writing``; then ``await``."""
        return self._call(method, timeout, metadata, compression, wait_for_ready, requests)

    def stream_stream(
        self,
        method: Method[RequestT, ResponseT],
        requests: AsyncIterable[RequestT] | Iterable[RequestT] | None = None,
        *,
        timeout: float | None = None,
        metadata: Metadata | Any = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> ClientCall[RequestT, ResponseT]:
        """A bidi call: send and receive concurrently, from different tasks if you like."""
        return self._call(method, timeout, metadata, compression, wait_for_ready, requests)

    def _call(
        self,
        method: Method[RequestT, ResponseT],
        timeout: float | None,
        metadata: Metadata | Any,
        compression: str | None,
        wait_for_ready: bool | None,
        requests: AsyncIterable[RequestT] | Iterable[RequestT] | None,
        *,
        single: bool = False,
    ) -> ClientCall[RequestT, ResponseT]:
        if metadata is not None and not isinstance(metadata, Metadata):
            metadata = Metadata(metadata)
        defaults = self.options.metadata
        if defaults is not None:
            merged = defaults.copy()
            if metadata is not None:
                merged.extend(metadata)
            metadata = merged
        return ClientCall(
            method,
            open_stream=self._open_stream,
            spawn=self._spawn,
            timeout=timeout,
            metadata=metadata,
            compression=compression if compression is not None else self.options.compression,
            wait_for_ready=self.options.wait_for_ready
            if wait_for_ready is None
            else wait_for_ready,
            requests=requests,
            single_request=single,
        )

    # ------------------------------------------------------- for ClientCall

    async def _open_stream(
        self,
        path: str,
        *,
        metadata: Metadata | None,
        grpc_timeout: float | None,
        compression: str | None,
        wait_for_ready: bool,
    ) -> ClientCallStream:
        """Open a stream for a call: connect if needed, wait for a stream slot."""
        while True:
            current = await self._connection(wait_for_ready)
            if current.transport.connection.available_streams <= 0:
                # The server's MAX_CONCURRENT_STREAMS is reached: wait for a
                # call to end (or the connection to change).
                await current.slots.park()
                continue
            try:
                return ClientCallStream.open(
                    current.transport,
                    path,
                    metadata=metadata,
                    timeout=grpc_timeout,
                    encoding=compression,
                    authority=self._authority,
                )
            except LocalProtocolError as exc:
                if current.usable:
                    # Refused before anything was sent (an unsupported
                    # compression, a malformed path): the call's status.
                    raise RpcError(exc.code, str(exc)) from None
                continue  # the connection closed under us: take a new one

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self._nursery is None:
            raise RuntimeError("use the channel as 'async with Channel(...) as channel:'")
        self._nursery.start_soon(fn, *args)

    # ---------------------------------------------------------- connecting

    async def _connection(self, wait_for_ready: bool) -> _ClientTransport:
        if self._closed:
            raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
        current = self._current
        if current is not None and current.usable:
            return current
        async with self._connect_lock:
            while True:
                current = self._current
                if current is not None and current.usable:
                    return current
                wait = self._retry_at - trio.current_time()
                if wait > 0:
                    if not wait_for_ready:
                        raise RpcError(
                            StatusCode.UNAVAILABLE,
                            f"cannot connect to {self.target}: {self._last_error}",
                        )
                    await trio.sleep(wait)
                try:
                    self._current = await self._connect()
                    self._backoff.reset()
                    return self._current
                except OSError as exc:
                    self._last_error = _connect_error_text(exc)
                    self._retry_at = trio.current_time() + self._backoff.next_delay()
                    logger.info("connecting to %s failed: %s", self.target, self._last_error)
                    if not wait_for_ready:
                        raise RpcError(
                            StatusCode.UNAVAILABLE,
                            f"cannot connect to {self.target}: {self._last_error}",
                        ) from None

    async def _connect(self) -> _ClientTransport:
        if self._nursery is None:
            raise RuntimeError("use the channel as 'async with Channel(...) as channel:'")
        stream: trio.abc.Stream | None = None
        peer = {"unix": f"unix:{self._host}", "stream": "stream"}.get(
            self._kind, f"{self._host}:{self._port}"
        )
        # The attempt's time limit covers TCP and TLS; running out of it is a
        # failed attempt like any other (backoff, then UNAVAILABLE).
        with trio.move_on_after(self._backoff.connect_timeout()):
            if self._connect_stream is not None:
                stream = await self._connect_stream()
            elif self._kind == "unix":
                stream = await trio.open_unix_socket(self._host)
            else:
                stream = await trio.open_tcp_stream(self._host, self._port)
            if self._ssl_context is not None:
                try:
                    stream = await self._start_tls(stream)
                except BaseException:
                    stream = None
                    raise
        if stream is None:
            raise OSError("connection attempt timed out")
        connection = ClientConnection(
            self.options.connection,
            authority=self._authority,
            scheme="https" if self._ssl_context is not None else "http",
            tracer=self.options.tracer,
        )
        holder: list[_ClientTransport] = []

        def on_event(event: Event) -> None:
            current = holder[0]
            if isinstance(event, CallEnded | SettingsChanged):
                current.slots.unpark_all()
            elif isinstance(event, ConnectionClosed):
                # GOAWAY: calls already running go on; new ones need a new
                # connection, and those parked for a slot should look again.
                current.slots.unpark_all()
                if event.error_code:
                    logger.info("%s closed the connection: code %d", self.target, event.error_code)

        current = _ClientTransport(Transport(stream, connection, on_event=on_event, peer=peer))
        holder.append(current)
        self._nursery.start_soon(self._run_transport, current)
        return current

    async def _start_tls(self, stream: trio.abc.Stream) -> trio.SSLStream[trio.abc.Stream]:
        """Wrap ``stream`` in TLS and insist on ALPN h2; close it on any failure."""
        assert self._ssl_context is not None
        tls = trio.SSLStream(stream, self._ssl_context, server_hostname=self._server_hostname)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(tls)
            # trio wraps the ssl error; its text names the actual problem.
            reason = exc.__cause__ if exc.__cause__ is not None else exc
            raise OSError(f"TLS handshake failed: {reason}") from None
        except BaseException:
            await trio.aclose_forcefully(tls)
            raise
        if tls.selected_alpn_protocol() != "h2":
            await trio.aclose_forcefully(tls)
            raise OSError("the server did not negotiate HTTP/2 (ALPN h2)")
        return tls

    async def _run_transport(self, current: _ClientTransport) -> None:
        try:
            await current.transport.run()
        finally:
            current.slots.unpark_all()
            if self._current is current:
                self._current = None
