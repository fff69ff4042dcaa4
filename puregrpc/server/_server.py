"""The gRPC server: listeners, connections, graceful shutdown.

Usage::

    server = Server([GreeterService()])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        ...
        await server.stop(grace=5)

or ``async with Server([...]).listening("127.0.0.1", 0) as server:``.

Any trio stream can be served, not only accepted sockets:
:meth:`Server.handle_stream` serves one connection over whatever stream it is
given (``trio.serve_listeners(server.handle_stream, listeners)``, or one end
of ``trio.testing.memory_stream_pair()`` in a test without sockets).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import trio

from ..runtime import (
    CHANNELZ,
    READ_SIZE,
    CallCounts,
    ChannelzListenSocket,
    ChannelzServer,
    ServerWire,
    next_channelz_id,
    require_trio,
    socket_address,
    stream_addresses,
    tracer_or_environment,
)
from ..web import Http1ServerConnection, WebOptions, WebServerConnection, sniff
from ..web import Protocol as WebProtocol
from ._auth_context import auth_context_of
from ._connection import ServedConnection
from ._handlers import MethodHandler, ServiceLike, collect_handlers
from ._interceptor import ServerInterceptor
from ._listen import open_tcp_listeners
from ._options import ServerOptions

logger = logging.getLogger("puregrpc.server")


def _peer_name(stream: trio.abc.Stream) -> str:
    """``ipv4:host:port``, ``ipv6:[host]:port`` or ``unix:path``, as gRPC names peers."""
    local, remote = stream_addresses(stream)
    if remote.kind == "tcp":
        family = "ipv6" if ":" in remote.host else "ipv4"
        return f"{family}:{remote}"
    if remote.kind == "unix":
        # A Unix client is usually unnamed: the path it reached names it.
        return f"unix:{remote.host or local.host}"
    return "unknown"


def _remove_socket_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def _read_start(stream: trio.abc.Stream, within: float) -> tuple[WebProtocol | None, bytes]:
    """Read a connection's first bytes until they tell HTTP/2 from HTTP/1.1 (None: never)."""
    start = b""
    with trio.move_on_after(within):
        while (protocol := sniff(start)) is None:
            try:
                data = await stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return None, start
            if not data:
                return None, start
            start += data
        return protocol, start
    return None, start


class Server:
    """Serves gRPC methods over TCP (IPv4/IPv6) or Unix sockets, with optional TLS.

    ``services`` are generated servicers (or method handlers); ``interceptors``
    wrap every call, in order, the first outermost (see
    :class:`~puregrpc.server.ServerInterceptor`).
    """

    def __init__(
        self,
        services: Iterable[ServiceLike] = (),
        *,
        options: ServerOptions | None = None,
        ssl_context: ssl.SSLContext | None = None,
        interceptors: Sequence[ServerInterceptor] = (),
    ) -> None:
        #: Method path -> handler.
        self.handlers: dict[str, MethodHandler] = collect_handlers(services)
        #: Wrap every call, the first outermost (:mod:`._interceptor`).
        self.interceptors: tuple[ServerInterceptor, ...] = tuple(interceptors)
        self.options = options if options is not None else ServerOptions()
        # No tracer given: PUREGRPC_TRACE may ask for one (puregrpc.trace._env).
        self.options = replace(self.options, tracer=tracer_or_environment(self.options.tracer))
        self._ssl_context = ssl_context
        if ssl_context is not None:
            web = self.options.grpc_web
            ssl_context.set_alpn_protocols(
                ["h2", "http/1.1"] if web is not None and web.http1 else ["h2"]
            )
        self._connections: set[ServedConnection] = set()
        #: The sockets listened on now, by channelz id.
        self._listeners: dict[int, trio.SocketListener] = {}
        self._stopping = trio.Event()
        self._stopped = trio.Event()
        #: serve() / serve_unix() calls running (stop() waits for them to return).
        self._serving = 0
        self._grace = 0.0
        #: Woken whenever a call or a connection ends (shutdown waits on it).
        self._activity = trio.lowlevel.ParkingLot()
        #: The ports bound by :meth:`serve` (useful with port 0).
        self.ports: list[int] = []
        #: The server's process-wide channelz id (see :meth:`channelz`).
        self.channelz_id = next_channelz_id()
        #: Calls started, succeeded and failed over all connections.
        self.calls = CallCounts()
        CHANNELZ.add_server(self)

    def add_service(self, service: ServiceLike) -> None:
        """Register another service (before serving)."""
        for path, handler in collect_handlers([service]).items():
            if path in self.handlers:
                raise ValueError(f"method {path} is registered twice")
            self.handlers[path] = handler

    # ------------------------------------------------------------- serving

    async def serve(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` and serve until :meth:`stop` (or cancellation).

        ``host=None`` listens on every interface (IPv4 and IPv6). With
        ``nursery.start`` the bound port is returned (handy with port 0).
        ``reuse_port`` joins the port's ``SO_REUSEPORT`` group, so that
        several processes serve one port (see :func:`run_workers`).
        """
        require_trio("puregrpc.server.Server.serve()")
        listeners = await open_tcp_listeners(port, host, reuse_port=reuse_port)
        self.ports = [listener.socket.getsockname()[1] for listener in listeners]
        await self._serve_listeners(listeners, task_status, self.ports[0])

    async def serve_unix(
        self, path: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on the Unix domain socket ``path`` (replaced if it exists)."""
        require_trio("puregrpc.server.Server.serve_unix()")
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _remove_socket_file(path)
            await sock.bind(path)
            sock.listen(socket.SOMAXCONN)
        except BaseException:
            sock.close()
            raise
        try:
            await self._serve_listeners([trio.SocketListener(sock)], task_status, path)
        finally:
            _remove_socket_file(path)

    async def _serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        task_status: trio.TaskStatus[Any],
        started_value: object,
    ) -> None:
        listener_ids = [next_channelz_id() for _ in listeners]
        self._listeners.update(zip(listener_ids, listeners, strict=True))
        self._serving += 1
        try:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
                task_status.started(started_value)
                await self._stopping.wait()
                for listener in listeners:
                    await listener.aclose()
                # stop() drains the connections; they run in this nursery.
                await self._stopped.wait()
                nursery.cancel_scope.cancel()
        finally:
            for listener_id in listener_ids:
                self._listeners.pop(listener_id, None)
            for listener in listeners:
                await listener.aclose()
            self._serving -= 1
            self._note_activity()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                return
            except OSError as exc:
                # Out of file descriptors and the like: wait, do not spin.
                logger.error("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self.handle_stream, stream)

    async def handle_stream(self, stream: trio.abc.Stream, *, peer: str | None = None) -> None:
        """Serve one client connection over ``stream`` until it ends.

        ``stream`` is any trio stream: an accepted socket (this is what
        :meth:`serve` runs for each), one end of
        ``trio.testing.memory_stream_pair()``, a pipe. With the server's
        ``ssl_context`` set, a stream that is not TLS yet gets the TLS
        handshake first (ALPN h2 required). ``peer`` names the client in
        logs and :meth:`ServicerContext.peer`; by default it comes from the
        socket (``ipv4:host:port``), or ``unknown`` for streams without one.
        The stream is closed when this returns; :meth:`stop` shuts it down
        gracefully like any other connection. Never raises for what the
        client does.
        """
        require_trio("puregrpc.server.Server.handle_stream()")
        if self._stopped.is_set():
            await trio.aclose_forcefully(stream)  # stopped: nothing is served any more
            return
        if peer is None:
            peer = _peer_name(stream)
        web = self.options.grpc_web
        if self._ssl_context is not None and not isinstance(stream, trio.SSLStream):
            tls = await self._start_tls(stream, peer)
            if tls is None:
                return
            stream = tls
        if web is None:
            connection = self._served(stream, peer)
        else:
            served = await self._served_web(stream, peer, web)
            if served is None:
                return
            connection = served
        self._connections.add(connection)
        if self._stopping.is_set():
            connection.begin_shutdown()
        try:
            await connection.run()
        except Exception:
            # One connection's failure must never stop the server.
            logger.exception("connection from %s failed", peer)
        finally:
            self._connections.discard(connection)
            self._note_activity()

    def _served(
        self,
        stream: trio.abc.Stream,
        peer: str,
        connection: ServerWire | None = None,
        *,
        initial_data: bytes = b"",
        http1: Http1ServerConnection | None = None,
    ) -> ServedConnection:
        """The served connection of ``stream``: ``connection`` (native HTTP/2 by default)."""
        web = self.options.grpc_web
        return ServedConnection(
            stream,
            peer,
            auth=auth_context_of(stream),
            handlers=self.handlers,
            interceptors=self.interceptors,
            options=self.options,
            calls=self.calls,
            on_call_end=self._note_activity,
            connection=connection,
            initial_data=initial_data,
            awaiting_request=None if http1 is None else (lambda: http1.awaiting_request),
            request_head_timeout=10.0 if web is None else web.request_head_timeout,
        )

    async def _served_web(
        self, stream: trio.abc.Stream, peer: str, web: WebOptions
    ) -> ServedConnection | None:
        """The connection of a server that also speaks gRPC-Web: HTTP/2 or HTTP/1.1.

        TLS says which by ALPN; otherwise the first bytes do (the HTTP/2
        preface or an HTTP/1.1 request line), read within the request head
        timeout. None when the client sent nothing in time (the stream is
        closed then).
        """
        options = self.options
        protocol: WebProtocol | None = None
        start = b""
        if isinstance(stream, trio.SSLStream):
            alpn = stream.selected_alpn_protocol()
            protocol = {"h2": WebProtocol.HTTP2, "http/1.1": WebProtocol.HTTP1}.get(alpn or "")
        if protocol is None:
            protocol, start = await _read_start(stream, web.request_head_timeout)
        if protocol is None:
            logger.info("client %s sent nothing to tell its protocol by: closing", peer)
            await trio.aclose_forcefully(stream)
            return None
        if protocol is WebProtocol.HTTP1 and web.http1:
            scheme = "https" if isinstance(stream, trio.SSLStream) else "http"
            http1 = Http1ServerConnection(
                options.connection,
                tracer=options.tracer,
                cors=web.cors,
                scheme=scheme,
                site=web.site,
            )
            return self._served(stream, peer, http1, initial_data=start, http1=http1)
        h2 = WebServerConnection(
            options.connection, tracer=options.tracer, cors=web.cors, site=web.site
        )
        return self._served(stream, peer, h2, initial_data=start)

    async def _start_tls(self, stream: trio.abc.Stream, peer: str) -> trio.SSLStream[Any] | None:
        """The TLS handshake of an accepted stream (10 s, ALPN h2), or None after a failure."""
        assert self._ssl_context is not None
        tls = trio.SSLStream(stream, self._ssl_context, server_side=True)
        try:
            with trio.fail_after(10):
                await tls.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError, OSError) as exc:
            logger.info("TLS handshake with %s failed: %r", peer, exc)
            await trio.aclose_forcefully(stream)
            return None
        except BaseException:
            await trio.aclose_forcefully(stream)  # cancelled mid-handshake: no leak
            raise
        web = self.options.grpc_web
        alpn = tls.selected_alpn_protocol()
        if alpn != "h2" and not (web is not None and web.http1 and alpn in ("http/1.1", None)):
            logger.info("client %s did not negotiate ALPN h2", peer)
            await trio.aclose_forcefully(tls)
            return None
        return tls

    # ------------------------------------------------------------ shutdown

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop serving: close listeners, GOAWAY every connection, and wait.

        Calls in flight get ``grace`` seconds to finish (``None``: as long as
        they take); then they are cancelled and their clients get
        UNAVAILABLE. Returns when every connection has closed and every
        :meth:`serve` has returned; connections served by
        :meth:`handle_stream` are shut down the same way.
        """
        if self._stopping.is_set():
            await self._stopped.wait()  # another stop() drains; its grace applies
        else:
            self._grace = math.inf if grace is None else grace
            self._stopping.set()
            try:
                await self._drain_connections()
            finally:
                self._stopped.set()
                CHANNELZ.remove_server(self)
        while self._serving:
            await self._activity.park()

    # ------------------------------------------------------------- channelz

    def channelz(self) -> ChannelzServer:
        """A snapshot for channelz (gRFC A14): calls, listen sockets, open connections.

        ``puregrpc.channelz.enable_channelz`` serves the same data as the
        ``grpc.channelz.v1.Channelz`` service.
        """
        return ChannelzServer(
            id=self.channelz_id,
            calls=self.calls.snapshot(),
            listen_sockets=tuple(
                ChannelzListenSocket(
                    id=listener_id, local=socket_address(listener.socket, local=True)
                )
                for listener_id, listener in sorted(self._listeners.items())
            ),
            sockets=tuple(
                sorted(
                    (connection.transport.channelz() for connection in self._connections),
                    key=lambda socket_: socket_.id,
                )
            ),
        )

    def _note_activity(self) -> None:
        """A call or a connection ended: wake a shutdown waiting for quiet."""
        self._activity.unpark_all()

    async def _drain_connections(self) -> None:
        for connection in list(self._connections):
            connection.begin_shutdown()
        with trio.move_on_after(self._grace):
            while any(c.open_calls for c in self._connections):
                await self._activity.park()
        for connection in list(self._connections):
            connection.cancel_calls()
        with trio.move_on_after(2):
            while self._connections:
                await self._activity.park()
        for connection in list(self._connections):
            connection.abort("server stopped")

    @asynccontextmanager
    async def listening(
        self, host: str | None = "127.0.0.1", port: int = 0
    ) -> AsyncIterator[Server]:
        """Serve in the background for the ``async with`` block; stop at its end."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.serve, host, port)
            try:
                yield self
            finally:
                with trio.CancelScope(shield=True):
                    await self.stop(grace=self.options.max_connection_age_grace)

    @property
    def port(self) -> int:
        """The first bound port."""
        return self.ports[0]
