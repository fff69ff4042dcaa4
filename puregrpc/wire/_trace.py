"""The tracer hook: how the wire core reports what it does, at no cost when off.

The state machine is handed a :class:`Tracer` (default :data:`NULL_TRACER`).
When ``tracer.enabled`` is false the connection keeps no reference to it and
every trace point is a single ``is not None`` test, so tracing off costs
nothing measurable. When enabled, the core calls :meth:`Tracer.record` with a
:class:`TraceRecord` for:

=================  ==========================================================
kind               when
=================  ==========================================================
``frame_in``       each HTTP/2 frame received (type, flags, stream, length,
                   and its ``body`` bytes, for sinks that decode it)
``frame_out``      each HTTP/2 frame queued for sending (same fields)
``call_start``     a call opened (path)
``message_in``     a complete gRPC message received (``seq``, length,
                   compressed, and the decoded ``payload`` bytes)
``message_out``    a gRPC message handed to the connection (same fields)
``consume``        the application consumed a message (credit returned)
``window_grant``   we sent a WINDOW_UPDATE (stream 0 = connection)
``window_update``  the peer sent a WINDOW_UPDATE (its grant to us)
``stall``          a stream could not send all it queued (window closed)
``resume``         a stalled stream sent everything it had queued
``call_end``       a call ended (status code and message)
``connection_end`` the transport closed (open calls end with it)
=================  ==========================================================

Records carry the flow-control state next to the event (``send_window``,
``receive_window``, ``queued``...) so a reader can follow backpressure without
replaying the connection. Each record names its connection (a number unique
in the process) and the role of the side that emitted it, so one tracer can
serve every connection of a server. Drivers choose where records go
(:mod:`puregrpc.trace` decodes, timestamps and formats them); the core never
formats or writes them, and never reads a clock: a sink that wants
timestamps takes them itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

#: HTTP/2 frame type numbers (RFC 9113 §6) to names, for frame records.
FRAME_TYPE_NAMES: Mapping[int, str] = {
    0x0: "DATA",
    0x1: "HEADERS",
    0x2: "PRIORITY",
    0x3: "RST_STREAM",
    0x4: "SETTINGS",
    0x5: "PUSH_PROMISE",
    0x6: "PING",
    0x7: "GOAWAY",
    0x8: "WINDOW_UPDATE",
    0x9: "CONTINUATION",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceRecord:
    """One thing the wire core did or saw."""

    #: What happened; one of the kinds in the module docstring.
    kind: str
    #: The stream it concerns; 0 for the connection as a whole.
    stream_id: int
    #: Kind-specific fields (lengths, flags, window sizes, status...).
    fields: Mapping[str, object] = field(default_factory=dict)
    #: The connection it happened on (see :func:`next_connection_id`); 0 if unknown.
    connection: int = 0
    #: ``"client"`` or ``"server"``: which side of the connection reports it.
    role: str = ""


_connection_ids = itertools.count(1)


def next_connection_id() -> int:
    """A number naming one connection in trace records, unique in this process."""
    return next(_connection_ids)


class Tracer(Protocol):
    """Where the wire core sends trace records."""

    #: When false, the core never calls :meth:`record` and builds no records.
    enabled: bool

    def record(self, record: TraceRecord) -> None:
        """Receive one record. Must not raise and must not block."""


class NullTracer:
    """The default tracer: disabled, records nothing."""

    enabled = False

    def record(self, record: TraceRecord) -> None:
        """Discard the record (never called while ``enabled`` is false)."""


class ListTracer:
    """A tracer that keeps records in a list; handy in tests and tools."""

    enabled = True

    def __init__(self) -> None:
        #: Every record received, in order.
        self.records: list[TraceRecord] = []

    def record(self, record: TraceRecord) -> None:
        """Append the record."""
        self.records.append(record)

    def kinds(self, stream_id: int | None = None) -> list[str]:
        """The kinds recorded, optionally for one stream only."""
        return [r.kind for r in self.records if stream_id is None or r.stream_id == stream_id]


#: The shared disabled tracer.
NULL_TRACER = NullTracer()


class FrameScanner:
    """Cuts the HTTP/2 frames out of a byte stream fed in arbitrary chunks.

    Used only while tracing, to report each frame with its body without
    touching h2's own parse: it buffers until a frame is complete, then
    reports it. ``expect_preface`` skips the 24-byte client connection
    preface (RFC 9113 §3.4), which is not a frame.
    """

    __slots__ = ("_buffer", "_skip")

    def __init__(self, *, expect_preface: bool = False) -> None:
        self._skip = 24 if expect_preface else 0
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, int, int, int, bytes]]:
        """Return ``(type, flags, stream_id, length, body)`` of each frame completed."""
        view = memoryview(data)
        if self._skip:
            step = min(self._skip, len(view))
            self._skip -= step
            view = view[step:]
        buffer = self._buffer
        buffer += view
        out: list[tuple[int, int, int, int, bytes]] = []
        pos = 0
        end = len(buffer)
        while end - pos >= 9:
            length = int.from_bytes(buffer[pos : pos + 3], "big")
            if end - pos < 9 + length:
                break
            stream_id = int.from_bytes(buffer[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            body = bytes(buffer[pos + 9 : pos + 9 + length])
            out.append((buffer[pos + 3], buffer[pos + 4], stream_id, length, body))
            pos += 9 + length
        if pos:
            del buffer[:pos]
        return out
