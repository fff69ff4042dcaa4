"""The in-process tracer: stamps, decodes and routes the wire core's records.

A :class:`Trace` is a :class:`puregrpc.wire.Tracer`: hand it to
``ServerOptions(tracer=...)`` or ``ChannelOptions(tracer=...)``. For each
record the core reports it

1. takes the time (``time.monotonic()`` by default) as the record arrives:
   the core never reads a clock, so this is the only timestamp;
2. decodes it (``window_grant`` and ``window_update`` are folded into the
   WINDOW_UPDATE frame records, which say the same with the resulting
   window): frames go through a :class:`~._decoder.WireDecoder` per
   connection (HPACK header lists, which DATA frame carried which message,
   windows after each frame, PING round trips); messages get their decoded
   protobuf value; a ``resume`` gets the duration of its stall;
3. hands the resulting :class:`~._event.TraceEvent` to every sink.

A tracer must never raise into the connection: a record that cannot be
decoded becomes a ``decode_error`` event instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..wire import TraceRecord
from ..wire._trace import FRAME_TYPE_NAMES
from ..wire.codecs import decompress
from ._decoder import C2S, MAX_KEPT_MESSAGE, S2C, Decoded, WireDecoder
from ._event import TraceEvent
from ._values import describe_message

logger = logging.getLogger("puregrpc.trace")

_FRAME_TYPES = {name: number for number, name in FRAME_TYPE_NAMES.items()}


class Sink(Protocol):
    """Where decoded trace events go."""

    def write(self, event: TraceEvent) -> None:
        """Take one event (must not block for long: it runs on the I/O path)."""

    def close(self) -> None:
        """Flush and release what the sink holds."""


def json_safe(value: object) -> Any:
    """``value`` with bytes as hex and tuples as lists, for JSON and text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return value


def _uncompressed(payload: bytes) -> bytes:
    """A sent message before compression, for display (the core reports it compressed).

    The encoding is not in the record; the gzip magic number tells it apart
    from deflate (zlib), the only other encoding the core sends.
    """
    encoding = "gzip" if payload[:2] == b"\x1f\x8b" else "deflate"
    try:
        return decompress(encoding, payload, MAX_KEPT_MESSAGE)
    except Exception:  # not decodable: show the compressed bytes
        return payload


class _Connection:
    """What the tracer keeps per connection."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.decoder = WireDecoder(perspective="server" if role == "server" else "client")
        #: Data we send flows this way; data we receive the other.
        self.out_dir = S2C if role == "server" else C2S
        self.in_dir = C2S if role == "server" else S2C
        self.paths: dict[int, str] = {}
        self.stalls: dict[int, float] = {}


class Trace:
    """A tracer that decodes the wire core's records and writes them to sinks."""

    #: Always on: building a Trace means you want the records.
    enabled = True

    def __init__(
        self,
        sinks: Iterable[Sink] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Where events go, in order.
        self.sinks: list[Sink] = list(sinks)
        self._clock = clock
        self._start = clock()
        self._connections: dict[int, _Connection] = {}
        # One trace may serve a server and a channel in different threads.
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since this trace began, on its clock."""
        return self._clock() - self._start

    def emit(self, event: TraceEvent) -> None:
        """Hand one already-decoded event to every sink (the proxy uses this)."""
        with self._lock:
            self._write(event)

    def _write(self, event: TraceEvent) -> None:
        """Write to every sink; a sink that fails (closed pipe, full disk) is dropped."""
        for sink in list(self.sinks):
            try:
                sink.write(event)
            except Exception as exc:  # the traced connection must go on regardless
                self.sinks.remove(sink)
                logger.warning("trace sink %r failed and was dropped: %r", sink, exc)

    def record(self, record: TraceRecord) -> None:
        """Stamp, decode and write one record of the wire core. Never raises."""
        now = self.now()
        role = record.role or "unknown"
        with self._lock:
            try:
                items = self._decode(record, now)
            except Exception as exc:  # a tracer must not break the connection it watches
                items = [Decoded("decode_error", record.stream_id, {"error": repr(exc)})]
            for item in items:
                event = TraceEvent(
                    t=now,
                    conn=record.connection,
                    role=role,
                    kind=item.kind,
                    stream=item.stream,
                    fields=item.fields,
                )
                self._write(event)
            if record.kind == "connection_end":
                self._connections.pop(record.connection, None)
            elif record.kind == "call_end":
                conn = self._connections.get(record.connection)
                if conn is not None:
                    conn.paths.pop(record.stream_id, None)
                    conn.stalls.pop(record.stream_id, None)

    def close(self) -> None:
        """Close every sink."""
        with self._lock:
            for sink in self.sinks:
                sink.close()

    def _decode(self, record: TraceRecord, now: float) -> list[Decoded]:
        conn = self._connections.get(record.connection)
        if conn is None:
            conn = self._connections[record.connection] = _Connection(record.role)
        kind, stream_id, raw = record.kind, record.stream_id, record.fields
        if kind in ("frame_in", "frame_out"):
            name = str(raw["type"])
            frame_type = _FRAME_TYPES.get(name)
            if frame_type is None:
                frame_type = int(name, 16)
            direction = conn.out_dir if kind == "frame_out" else conn.in_dir
            body = raw.get("body", b"")
            assert isinstance(body, bytes)
            flags = raw.get("flags", 0)
            assert isinstance(flags, int)
            return conn.decoder.frame(direction, frame_type, flags, stream_id, body, now)
        if kind in ("window_grant", "window_update"):
            # The WINDOW_UPDATE frame records say the same, with the window
            # it leaves, at the moment the frame crosses the wire.
            return []
        fields: dict[str, Any] = {k: json_safe(v) for k, v in raw.items() if k != "payload"}
        if kind == "call_start":
            conn.paths[stream_id] = str(raw.get("path", ""))
        elif kind in ("message_in", "message_out"):
            outgoing = kind == "message_out"
            fields["dir"] = conn.out_dir if outgoing else conn.in_dir
            payload = raw.get("payload")
            if isinstance(payload, bytes | bytearray | memoryview):
                payload = bytes(payload)
                if outgoing and raw.get("compressed"):
                    payload = _uncompressed(payload)
                request = fields["dir"] == C2S
                fields["value"] = describe_message(conn.paths.get(stream_id), request, payload)
        elif kind == "stall":
            conn.stalls[stream_id] = now
        elif kind == "resume":
            since = conn.stalls.pop(stream_id, None)
            if since is not None:
                fields["stalled_for"] = round(now - since, 6)
        return [Decoded(kind, stream_id, fields)]
