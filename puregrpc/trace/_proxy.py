"""The tracing proxy: forwards a gRPC connection byte for byte and decodes it.

Put it between any gRPC client and server (grpcio to grpcio, puregrpc to
grpc-go...)::

    client --h2c--> [ TraceProxy :listen ] --h2c--> upstream server

Each accepted connection opens one upstream connection; two tasks copy bytes
unchanged, one per direction, and only *after* forwarding a chunk hand it to
a passive :class:`~._decoder.WireDecoder` (``infer=True``), so decoding can
never delay, alter or stop the traffic: bytes that are not HTTP/2 end the
decoding of that direction with a ``decode_error`` event, never the
forwarding. Events are written from the client's point of view with role
``proxy`` (``frame_out`` is client to server).

Cleartext only (h2c with prior knowledge, as gRPC uses it): a TLS connection
would be forwarded but not decoded.
"""

from __future__ import annotations

import trio

from ..wire._trace import next_connection_id
from ._decoder import C2S, S2C, WireDecoder
from ._event import TraceEvent
from ._tracer import Trace

#: Bytes read per receive.
_CHUNK = 65_536


def parse_address(text: str, *, what: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too); raises :class:`ValueError` naming ``what``."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port_text)


class TraceProxy:
    """Forwards connections to ``upstream`` and traces them into ``trace``."""

    def __init__(self, upstream_host: str, upstream_port: int, trace: Trace) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.trace = trace
        #: Bytes forwarded so far, per direction (``"c2s"``, ``"s2c"``).
        self.forwarded = {C2S: 0, S2C: 0}
        #: The port bound by :meth:`serve` (useful with port 0).
        self.port = 0

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` and forward every connection until cancelled.

        Reports the bound port through ``task_status``, so
        ``port = await nursery.start(proxy.serve)`` works.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = int(listeners[0].socket.getsockname()[1])
        task_status.started(self.port)
        await trio.serve_listeners(self.handle, listeners)

    def _emit(self, conn: int, kind: str, stream: int, fields: dict[str, object]) -> None:
        self.trace.emit(
            TraceEvent(
                t=self.trace.now(), conn=conn, role="proxy", kind=kind, stream=stream, fields=fields
            )
        )

    async def handle(self, downstream: trio.abc.Stream) -> None:
        """Forward one accepted connection until both sides are done."""
        conn = next_connection_id()
        upstream_name = f"{self.upstream_host}:{self.upstream_port}"
        async with downstream:
            try:
                upstream: trio.abc.Stream = await trio.open_tcp_stream(
                    self.upstream_host, self.upstream_port
                )
            except OSError as exc:
                self._emit(conn, "decode_error", 0, {"error": f"upstream {upstream_name}: {exc}"})
                return
            self._emit(conn, "connection_start", 0, {"upstream": upstream_name})
            decoder = WireDecoder(perspective="client", infer=True)
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, downstream, upstream, C2S, decoder, conn, nursery)
                nursery.start_soon(self._pump, upstream, downstream, S2C, decoder, conn, nursery)
            self._emit(conn, "connection_end", 0, {"forwarded": dict(self.forwarded)})

    async def _pump(
        self,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        direction: str,
        decoder: WireDecoder,
        conn: int,
        nursery: trio.Nursery,
    ) -> None:
        """Copy one direction; on EOF pass the half-close on, on error end both."""
        try:
            while True:
                data = await source.receive_some(_CHUNK)
                if not data:
                    if isinstance(sink, trio.abc.HalfCloseableStream):
                        await sink.send_eof()
                    else:  # pragma: no cover - TCP streams can half-close
                        nursery.cancel_scope.cancel()
                    return
                await sink.send_all(data)
                self.forwarded[direction] += len(data)
                self._decode(decoder, direction, bytes(data), conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # One side went away: the connection is over both ways.
            nursery.cancel_scope.cancel()

    def _decode(self, decoder: WireDecoder, direction: str, data: bytes, conn: int) -> None:
        try:
            items = decoder.feed(direction, data, self.trace.now())
        except Exception as exc:  # a decoder bug must not stop the forwarding
            items = decoder.give_up(direction, f"decoder failure: {exc!r}")
        for item in items:
            self._emit(conn, item.kind, item.stream, item.fields)
