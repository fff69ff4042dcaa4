"""Test helpers for the connection state machines: an in-memory pair and a wire log.

In the style of h11's ``tests/helpers.py``: a :class:`Pair` wires a
:class:`ClientConnection` to a :class:`ServerConnection` with no I/O, and
:meth:`Pair.pump` moves bytes both ways until both sides are quiet. Every byte
moved is also parsed with ``hyperframe`` (an independent HTTP/2 parser) into a
:class:`WireLog`, so tests can count what really went on the wire instead of
trusting the state machine's own counters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, WindowUpdateFrame

from puregrpc.wire import (
    NULL_TRACER,
    CallEnded,
    ClientConnection,
    ConnectionConfig,
    Event,
    MessageReceived,
    ServerConnection,
    Tracer,
)

#: RFC 9113 §3.4: the client connection preface, which is not a frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class WireLog:
    """The frames of one direction of a connection, parsed as bytes arrive."""

    def __init__(self, *, preface: bool) -> None:
        self._buffer = b""
        self._skip = len(PREFACE) if preface else 0
        #: Every complete frame seen so far, in order.
        self.frames: list[Frame] = []
        self._hpack = hpack.Decoder()
        self._hpack.max_header_list_size = 1 << 24
        #: Decoded header blocks, keyed by the index of their HEADERS frame.
        self.headers: dict[int, list[tuple[bytes, bytes]]] = {}

    def feed(self, data: bytes) -> None:
        """Add bytes; parse every frame they complete."""
        self._buffer += data
        if self._skip:
            if len(self._buffer) < self._skip:
                return
            assert self._buffer[: self._skip] == PREFACE
            self._buffer = self._buffer[self._skip :]
            self._skip = 0
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
            self._buffer = self._buffer[9 + length :]
            if isinstance(frame, HeadersFrame):
                # Decode every block in order: HPACK state is shared (no
                # CONTINUATION in these tests: our frames are small).
                assert "END_HEADERS" in frame.flags
                self.headers[len(self.frames)] = list(self._hpack.decode(frame.data, raw=True))
            self.frames.append(frame)

    def data_bytes(self, stream_id: int | None = None, since: int = 0) -> int:
        """Flow-controlled DATA bytes (payload + padding) on a stream, or on all."""
        return sum(
            f.flow_controlled_length
            for f in self.frames[since:]
            if isinstance(f, DataFrame) and (stream_id is None or f.stream_id == stream_id)
        )

    def window_updates(self, stream_id: int | None = None, since: int = 0) -> list[int]:
        """Increments of the WINDOW_UPDATE frames on a stream (0 = connection), or on all."""
        return [
            f.window_increment
            for f in self.frames[since:]
            if isinstance(f, WindowUpdateFrame) and (stream_id is None or f.stream_id == stream_id)
        ]

    def of_type(self, kind: type[Frame], since: int = 0) -> list[Any]:
        """The frames of one hyperframe class, in order."""
        return [f for f in self.frames[since:] if isinstance(f, kind)]

    def header_blocks(self, stream_id: int, since: int = 0) -> list[dict[bytes, bytes]]:
        """The decoded header blocks sent on a stream, as dicts, in order."""
        return [
            dict(block)
            for index, block in sorted(self.headers.items())
            if index >= since and self.frames[index].stream_id == stream_id
        ]

    def __len__(self) -> int:
        return len(self.frames)


class Pair:
    """A client and a server connection wired back to back in memory."""

    def __init__(
        self,
        client_config: ConnectionConfig | None = None,
        server_config: ConnectionConfig | None = None,
        *,
        client_tracer: Tracer = NULL_TRACER,
        server_tracer: Tracer = NULL_TRACER,
        handshake: bool = True,
        chunk: int | None = None,
    ) -> None:
        #: Feed each side at most this many bytes per receive_data (None: all).
        self.chunk = chunk
        self.client = ClientConnection(client_config, tracer=client_tracer)
        self.server = ServerConnection(server_config, tracer=server_tracer)
        #: Frames the client sent / the server sent.
        self.c2s = WireLog(preface=True)
        self.s2c = WireLog(preface=False)
        if handshake:
            self.pump()

    def to_server(self) -> list[Event]:
        """Move what the client queued to the server; return the server's events."""
        data = self.client.data_to_send()
        if not data:
            return []
        self.c2s.feed(data)
        return self._feed(self.server, data)

    def to_client(self) -> list[Event]:
        """Move what the server queued to the client; return the client's events."""
        data = self.server.data_to_send()
        if not data:
            return []
        self.s2c.feed(data)
        return self._feed(self.client, data)

    def _feed(self, conn: ClientConnection | ServerConnection, data: bytes) -> list[Event]:
        if self.chunk is None:
            return conn.receive_data(data)
        events: list[Event] = []
        for start in range(0, len(data), self.chunk):
            events += conn.receive_data(data[start : start + self.chunk])
        return events

    def pump(self) -> tuple[list[Event], list[Event]]:
        """Move bytes both ways until neither side has anything to send.

        Returns ``(client_events, server_events)``.
        """
        client_events: list[Event] = []
        server_events: list[Event] = []
        for _ in range(10_000):
            moved_server = self.to_server()
            server_events += moved_server
            moved_client = self.to_client()
            client_events += moved_client
            if not self.client_pending() and not self.server_pending():
                return client_events, server_events
        raise AssertionError("pump did not go quiet")

    def pump_consuming(self) -> tuple[list[Event], list[Event]]:
        """Like :meth:`pump`, but both applications consume each message at once."""
        client_events: list[Event] = []
        server_events: list[Event] = []
        for _ in range(10_000):
            c_events, s_events = self.pump()
            client_events += c_events
            server_events += s_events
            consumed = consume_all(self.client, c_events) + consume_all(self.server, s_events)
            if not consumed and not self.client_pending() and not self.server_pending():
                return client_events, server_events
        raise AssertionError("pump did not go quiet")

    def client_pending(self) -> bool:
        """True while the client has bytes queued in h2 for the server."""
        return self.client.wants_write

    def server_pending(self) -> bool:
        """True while the server has bytes queued in h2 for the client."""
        return self.server.wants_write


def consume_all(conn: ClientConnection | ServerConnection, events: Iterable[Event]) -> int:
    """Consume every message in ``events`` on ``conn``; return how many."""
    count = 0
    for event in events:
        if isinstance(event, MessageReceived):
            conn.consume(event.stream_id, event.wire_length)
            count += 1
    return count


def of_type(events: Iterable[Event], kind: type[Any]) -> list[Any]:
    """The events of one class, in order."""
    return [e for e in events if isinstance(e, kind)]


class ForgingH2Connection(h2.connection.H2Connection):
    """Plain h2, except that a received GOAWAY leaves the connection usable.

    h2 refuses every frame after a GOAWAY; a forged peer must go on talking
    through puregrpc's graceful shutdown (GOAWAY, PING, GOAWAY).
    """

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Any], list[Any]]:  # type: ignore[override]
        event = h2.events.ConnectionTerminated()
        event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


def raw_h2(*, client_side: bool) -> ForgingH2Connection:
    """An h2 connection with every validation off, to forge what peers may send."""
    conn = ForgingH2Connection(
        h2.config.H2Configuration(
            client_side=client_side,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
    )
    conn.initiate_connection()
    return conn


def grpc_request_headers(
    path: bytes = b"/pkg.Svc/Method", **extra: bytes
) -> list[tuple[bytes, bytes]]:
    """A valid gRPC request header block, with extra fields appended."""
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    headers += [(name.replace("_", "-").encode(), value) for name, value in extra.items()]
    return headers


class RawClient:
    """A validation-free h2 client talking to a ServerConnection."""

    def __init__(self, config: ConnectionConfig | None = None) -> None:
        self.h2 = raw_h2(client_side=True)
        self.server = ServerConnection(config)
        self.wire = WireLog(preface=False)  # what the server sent
        self.exchange()

    def exchange(self) -> tuple[list[Event], list[h2.events.Event]]:
        """Move bytes both ways until quiet; return (server events, client h2 events)."""
        server_events: list[Event] = []
        client_events: list[h2.events.Event] = []
        while True:
            out = self.h2.data_to_send()
            if out:
                server_events += self.server.receive_data(out)
            back = self.server.data_to_send()
            if back:
                self.wire.feed(back)
                client_events += self.h2.receive_data(back)
            if not out and not back:
                return server_events, client_events

    def request(
        self, headers: list[tuple[bytes, bytes]], *, data: bytes | None = None, end: bool = True
    ) -> tuple[list[Event], list[h2.events.Event], int]:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, headers, end_stream=end and data is None)
        if data is not None:
            self.h2.send_data(stream_id, data, end_stream=end)
        mark = len(self.wire)
        server_events, client_events = self.exchange()
        return server_events, client_events, mark


class RawServer:
    """A validation-free h2 server talking to a ClientConnection."""

    def __init__(self) -> None:
        self.h2 = raw_h2(client_side=False)
        self.client = ClientConnection()
        self.wire = WireLog(preface=True)  # what the client sent
        self.exchange()

    def exchange(self) -> list[Event]:
        """Move bytes both ways until quiet; return the client's events."""
        client_events: list[Event] = []
        while True:
            out = self.client.data_to_send()
            if out:
                self.wire.feed(out)
                self.h2.receive_data(out)
            back = self.h2.data_to_send()
            if back:
                client_events += self.client.receive_data(back)
            if not out and not back:
                return client_events


#: A minimal response header block.
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]


def ended_of(events: list[Event]) -> CallEnded:
    """The one CallEnded among ``events``."""
    (ended,) = of_type(events, CallEnded)
    assert isinstance(ended, CallEnded)
    return ended


def response_of(client_events: list[h2.events.Event]) -> dict[bytes, bytes]:
    """The header fields of the one response h2 received."""
    (response,) = [e for e in client_events if isinstance(e, h2.events.ResponseReceived)]
    return dict(response.headers)
