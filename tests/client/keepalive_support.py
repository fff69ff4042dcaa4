"""Helpers of the keepalive and connectivity tests: a ping-counting tracer, a proxy that stalls.

* :class:`PingLog`: a tracer for the channel that notes, with trio's clock,
  the PINGs it sends, the ACKs it receives and any GOAWAY, per connection.
* :class:`StallingProxy`: a TCP proxy on 127.0.0.1; :meth:`StallingProxy.stall`
  makes the connections open through it go silent in both directions (a
  black hole: the sockets stay open, nothing gets through), while new
  connections are forwarded normally.
* :func:`pure_server`: a puregrpc server with the methods below.

Methods (raw bytes): ``ECHO`` (unary), ``BIDI`` (echo each request),
``HOLD`` (server streaming: one ``b"first"``, then nothing until cancelled).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, RequestIterator, Server, ServerOptions, ServicerContext
from puregrpc.wire import TraceRecord

ECHO = raw_method("/keepalive.Test/Echo", Cardinality.UNARY_UNARY)
BIDI = raw_method("/keepalive.Test/Bidi", Cardinality.STREAM_STREAM)
HOLD = raw_method("/keepalive.Test/Hold", Cardinality.UNARY_STREAM)

#: A puregrpc server that lets clients ping as often as they like.
PERMISSIVE = ServerOptions(min_ping_interval=0, permit_keepalive_without_calls=True)

_PING, _GOAWAY, _HEADERS, _ACK = "PING", "GOAWAY", "HEADERS", 0x1


@dataclass
class PingLog:
    """A channel tracer that keeps the keepalive-relevant frames, timestamped."""

    enabled: bool = True
    #: (trio time, connection) of each PING we sent (not ACKs).
    sent: list[tuple[float, int]] = field(default_factory=list)
    #: (trio time, connection) of each PING ACK we received.
    acks: list[tuple[float, int]] = field(default_factory=list)
    #: (error code, debug data) of each GOAWAY we received.
    goaways: list[tuple[int, bytes]] = field(default_factory=list)
    #: Frame types we queued, in order ("PING", "HEADERS"...).
    frames_out: list[str] = field(default_factory=list)

    def record(self, record: TraceRecord) -> None:
        """Note PINGs, ACKs and GOAWAYs."""
        kind, fields = record.kind, record.fields
        if kind == "frame_out":
            self.frames_out.append(str(fields["type"]))
            if fields["type"] == _PING and not int(str(fields["flags"])) & _ACK:
                self.sent.append((trio.current_time(), record.connection))
        elif kind == "frame_in" and fields["type"] == _PING:
            if int(str(fields["flags"])) & _ACK:
                self.acks.append((trio.current_time(), record.connection))
        elif kind == "frame_in" and fields["type"] == _GOAWAY:
            body = bytes(fields["body"])  # type: ignore[call-overload]
            _last_stream, code = struct.unpack(">II", body[:8])
            self.goaways.append((code, body[8:]))

    def connections(self) -> list[int]:
        """The connections that sent pings, in the order of their first ping."""
        return list(dict.fromkeys(connection for _, connection in self.sent))

    def gaps(self, connection: int) -> list[float]:
        """Seconds between the successive pings of one connection."""
        times = [at for at, conn in self.sent if conn == connection]
        return [later - earlier for earlier, later in itertools.pairwise(times)]


class _Link:
    """One proxied connection; stalled links forward nothing."""

    def __init__(self) -> None:
        self.stalled = False


class StallingProxy:
    """A loopback TCP proxy to ``127.0.0.1:upstream_port`` whose open links can go silent."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._links: list[_Link] = []

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept and forward until cancelled (``await nursery.start(proxy.serve)``)."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._forward, listeners)

    def stall(self) -> None:
        """Every link open now stops forwarding, both ways; later links work."""
        for link in self._links:
            link.stalled = True

    async def _forward(self, client: trio.SocketStream) -> None:
        link = _Link()
        self._links.append(link)
        upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
        async with client, upstream, trio.open_nursery() as nursery:

            async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                try:
                    async for data in source:
                        if not link.stalled:
                            await sink.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                # Either side gone: the link is over (closing both ends).
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, upstream)
            nursery.start_soon(pump, upstream, client)


async def _echo(request: bytes, context: ServicerContext) -> bytes:
    return request


async def _bidi(requests: RequestIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


async def _hold(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    await trio.sleep_forever()


@asynccontextmanager
async def pure_server(options: ServerOptions = PERMISSIVE) -> AsyncIterator[int]:
    """A puregrpc server with ECHO, BIDI and HOLD on 127.0.0.1; yields its port."""
    server = Server(
        [
            MethodHandler(method=ECHO, func=_echo),
            MethodHandler(method=BIDI, func=_bidi),
            MethodHandler(method=HOLD, func=_hold),
        ],
        options=options,
    )
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(server.serve, "127.0.0.1", 0)
        try:
            yield port
        finally:
            await server.stop(grace=0)
            nursery.cancel_scope.cancel()
