"""The trace event: one timestamped, decoded record, and its JSON Lines form.

Schema, version 1
=================

Every line of a JSON Lines trace is one object. Six keys are always present:

==========  =================================================================
key         meaning
==========  =================================================================
``v``       schema version, ``1``
``t``       seconds since the trace began (float, microsecond resolution)
``conn``    connection number, unique within the trace
``role``    who saw it: ``"client"``, ``"server"`` or ``"proxy"`` (a proxy
            writes from the client's point of view: *out* is client to server)
``kind``    what happened (below)
``stream``  HTTP/2 stream id; 0 for the connection as a whole
==========  =================================================================

The other keys depend on ``kind`` (all optional for readers; new keys may be
added within a version, a key never changes meaning):

``frame_in`` / ``frame_out``
    ``dir`` (``"c2s"``/``"s2c"``), ``type`` (``"DATA"``, ``"HEADERS"``...),
    ``flags`` (names), ``length``. DATA: ``end_stream``, ``parts`` (one
    ``[seq, offset, bytes, message_wire_length]`` per gRPC message the frame
    carries a piece of, ``message_wire_length`` including the 5-byte prefix,
    ``null`` until the prefix is complete), ``window`` and ``conn_window``
    (the sender's stream and connection windows after the frame),
    ``flow_dir`` (the data direction those windows govern). HEADERS:
    ``block`` (``request``, ``response``, ``trailers``, ``trailers-only``),
    ``headers`` (``[name, value]`` pairs, decoded from HPACK), ``end_stream``.
    SETTINGS: ``ack``, ``settings`` (name to value). WINDOW_UPDATE:
    ``increment``, ``window`` (the grantee's window after it), ``flow_dir``.
    PING: ``ack``, ``data`` (hex), ``rtt`` (seconds, on the ACK of a PING in
    the same trace). GOAWAY: ``last_stream_id``, ``error``, ``debug``.
    RST_STREAM: ``error``.
``call_start``
    ``path``, ``timeout`` (seconds or ``null``).
``message_in`` / ``message_out``
    ``seq`` (1-based per stream and direction, matching DATA ``parts``),
    ``length`` (payload on the wire), ``compressed``, ``value`` (the decoded
    protobuf in text form when the schema is imported, else a hex preview).
    From a client or server: ``send_window``, ``receive_window``,
    ``conn_send_window``, ``conn_receive_window``, ``queued``,
    ``unconsumed``, ``ungranted``. From a proxy: ``window``, ``conn_window``.
``consume``
    ``length`` consumed by the application, and the flow fields above.
    (The core's ``window_grant`` / ``window_update`` records are not written:
    the WINDOW_UPDATE frame records carry the same and the window after.)
``stall`` / ``resume``
    A sender blocked on a closed window, and unblocked; ``resume`` carries
    ``stalled_for`` (seconds). From a proxy they are inferred from windows
    reaching zero (``inferred: true``).
``call_end``
    ``code`` (status name), ``message``, or ``reset`` (RST_STREAM error code).
``decode_error``
    ``dir``, ``error``: the proxy could not decode one direction further (it
    still forwards every byte), or a record could not be decoded.
``connection_start`` / ``connection_end``
    From a proxy: ``upstream``; at the end ``forwarded`` (bytes each way,
    totals of the proxy). From a client or server, ``connection_end`` when the
    transport closed, with ``open_calls``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Version of the JSON Lines schema written by this module.
SCHEMA_VERSION = 1
#: Keys every JSON line has; field names never use them.
RESERVED_KEYS = frozenset({"v", "t", "conn", "role", "kind", "stream"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """One decoded, timestamped trace record."""

    #: Seconds since the trace began.
    t: float
    #: Connection number.
    conn: int
    #: ``client``, ``server`` or ``proxy``.
    role: str
    #: What happened (see the module docstring).
    kind: str
    #: HTTP/2 stream id, 0 for the connection.
    stream: int
    #: Kind-specific fields, JSON-serialisable.
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """This event as one line of JSON (no newline)."""
        obj: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "t": round(self.t, 6),
            "conn": self.conn,
            "role": self.role,
            "kind": self.kind,
            "stream": self.stream,
        }
        obj.update(self.fields)
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> TraceEvent:
        """Parse one JSON line; raises :class:`ValueError` naming what is wrong."""
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("a trace line must be a JSON object")
        version = obj.get("v")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported trace schema version {version!r} (expected 1)")
        try:
            return cls(
                t=float(obj["t"]),
                conn=int(obj["conn"]),
                role=str(obj["role"]),
                kind=str(obj["kind"]),
                stream=int(obj["stream"]),
                fields={k: v for k, v in obj.items() if k not in RESERVED_KEYS},
            )
        except KeyError as exc:
            raise ValueError(f"trace line lacks the {exc.args[0]!r} key") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad value in trace line: {exc}") from None


def read_jsonl(text: str) -> list[TraceEvent]:
    """Parse a whole JSON Lines trace; errors name the line number."""
    events: list[TraceEvent] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(TraceEvent.from_json(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return events
