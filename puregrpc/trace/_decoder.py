"""A passive, sans-IO decoder of both directions of one gRPC-over-HTTP/2 connection.

Theory of operation
===================

The decoder watches frames go by and never takes part: it parses each frame
with ``hyperframe`` (an HTTP/2 parser independent of h2), decodes header
blocks with one HPACK decoder per direction (HPACK state is per direction,
RFC 7541 §2.2, so a watcher must see every block from the start), and keeps
the flow-control state *as the peers see it* (RFC 9113 §6.9):

* each side's SETTINGS_INITIAL_WINDOW_SIZE sets the window of the data sent
  *to* it, on every stream, existing streams shifted by the change (§6.9.2);
* every connection window starts at 65,535 whatever SETTINGS say;
* a DATA frame takes its whole length (padding included) from its sender's
  stream and connection windows; a WINDOW_UPDATE from a side gives it back.

Per stream and direction it reads the gRPC length-prefixed messages out of
the DATA payloads, so every DATA frame says which messages it carried a piece
of (``parts``), which is what neither a packet capture nor a C-core trace
shows. Two uses share it:

* the in-process tracer (:class:`puregrpc.trace.Trace`) hands it the frames
  the wire core reports; the core itself reports calls, messages, stalls;
* the tracing proxy feeds it raw bytes (:meth:`WireDecoder.feed`) and asks it
  to infer calls, messages, stalls and resumes from the frames
  (``infer=True``), since no state machine stands behind it.

Time is passed in (``now``), never read: the decoder stays sans-IO. It
returns :class:`Decoded` items; callers stamp and route them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import h2.errors
import h2.settings
import hpack
import hpack.exceptions
import hyperframe.exceptions
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from ..wire import IDENTITY, StatusCode

# The frame scanner lives in the wire core, which traces with it too; this
# package is its public face (puregrpc.trace.FrameScanner).
from ..wire._trace import FRAME_TYPE_NAMES, FrameScanner
from ..wire.codecs import decode_grpc_message, decode_timeout, decompress, http_status_to_code
from ._values import describe_message, hex_preview

#: Data sent by the client to the server, and back.
C2S = "c2s"
S2C = "s2c"
_OTHER = {C2S: S2C, S2C: C2S}
#: RFC 9113 §3.4.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: RFC 9113 §6.9.2: initial windows before any SETTINGS.
_DEFAULT_WINDOW = 65_535
#: Messages larger than this are not kept for decoding (their value is not shown).
MAX_KEPT_MESSAGE = 4 * 1024 * 1024

#: Flag bits by frame type that mean something (RFC 9113 §6).
_FLAG_NAMES: dict[int, tuple[tuple[int, str], ...]] = {
    0x0: ((0x1, "END_STREAM"), (0x8, "PADDED")),
    0x1: ((0x1, "END_STREAM"), (0x4, "END_HEADERS"), (0x8, "PADDED"), (0x20, "PRIORITY")),
    0x4: ((0x1, "ACK"),),
    0x6: ((0x1, "ACK"),),
    0x9: ((0x4, "END_HEADERS"),),
}


class Decoded(NamedTuple):
    """One thing the decoder saw: a record kind, its stream, its fields."""

    kind: str
    stream: int
    fields: dict[str, Any]


class DecodeFailed(Exception):
    """The bytes of one direction are not (valid) HTTP/2; decoding stops there."""


def flag_names(frame_type: int, flags: int) -> list[str]:
    """The names of the flags set on a frame of ``frame_type``."""
    return [name for bit, name in _FLAG_NAMES.get(frame_type, ()) if flags & bit]


def error_name(code: int) -> str:
    """The RFC 9113 §7 name of an HTTP/2 error code."""
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def _setting_name(code: int) -> str:
    try:
        return h2.settings.SettingCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


class _MessageReader:
    """Reads gRPC length-prefixed messages (PROTOCOL-HTTP2.md) out of DATA payloads."""

    __slots__ = ("body", "compressed", "keep", "length", "offset", "prefix", "remaining", "seq")

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.prefix = bytearray()
        #: Body bytes still expected; -1 while reading a prefix.
        self.remaining = -1
        self.seq = 0
        self.offset = 0
        self.length = 0
        self.compressed = False
        self.body: bytearray | None = None

    def _part(self, parts: list[list[Any]]) -> list[Any]:
        if parts and parts[-1][0] == self.seq:
            return parts[-1]
        part: list[Any] = [
            self.seq,
            self.offset,
            0,
            None if self.remaining < 0 else self.length + 5,
        ]
        parts.append(part)
        return part

    def feed(
        self, data: bytes
    ) -> tuple[list[list[Any]], list[tuple[int, int, bool, bytes | None]]]:
        """Read one DATA payload: the parts it carried and the messages it completed."""
        parts: list[list[Any]] = []
        done: list[tuple[int, int, bool, bytes | None]] = []
        pos, end = 0, len(data)
        while pos < end:
            if self.remaining < 0:
                if not self.prefix:
                    self.seq += 1
                    self.offset = 0
                    self.body = bytearray() if self.keep else None
                part = self._part(parts)
                take = min(5 - len(self.prefix), end - pos)
                self.prefix += data[pos : pos + take]
                pos += take
                self.offset += take
                part[2] += take
                if len(self.prefix) < 5:
                    break
                self.compressed = bool(self.prefix[0] & 1)
                self.length = self.remaining = int.from_bytes(self.prefix[1:5], "big")
                part[3] = self.length + 5
                if self.length > MAX_KEPT_MESSAGE:
                    self.body = None
            take = min(self.remaining, end - pos)
            if take:
                part = self._part(parts)
                if self.body is not None:
                    self.body += data[pos : pos + take]
                pos += take
                self.offset += take
                part[2] += take
                self.remaining -= take
            if self.remaining == 0:
                body = bytes(self.body) if self.body is not None else None
                done.append((self.seq, self.length, self.compressed, body))
                self.prefix = bytearray()
                self.remaining = -1
        return parts, done


@dataclass
class _Stream:
    """What the decoder knows of one stream."""

    #: Windows of the data flowing each way on this stream.
    window: dict[str, int]
    path: str | None = None
    readers: dict[str, _MessageReader] = field(default_factory=dict)
    header_blocks: dict[str, int] = field(default_factory=lambda: {C2S: 0, S2C: 0})
    encoding: dict[str, str] = field(default_factory=lambda: {C2S: IDENTITY, S2C: IDENTITY})
    ended: set[str] = field(default_factory=set)
    call_ended: bool = False
    #: Inferred stalls: direction -> when the window ran out.
    stalled: dict[str, float] = field(default_factory=dict)


class _Side:
    """The frames one side sends: its HPACK encoder's state, seen from outside."""

    def __init__(self) -> None:
        self.hpack = hpack.Decoder()
        # Limits guard memory in the peer, not here: a watcher must decode
        # whatever the peers accept.
        self.hpack.max_header_list_size = 1 << 24
        self.block = bytearray()
        self.block_stream = 0
        self.block_end_stream = False
        self.broken = False


class WireDecoder:
    """Decodes both directions of one connection into trace items.

    ``perspective`` names whose point of view ``frame_in``/``frame_out`` take
    (``"client"``, ``"server"``; a proxy uses ``"client"``). ``infer`` makes
    the decoder report calls, messages and stalls itself (for a proxy); the
    in-process tracer leaves it off because the wire core reports those.
    """

    def __init__(self, *, perspective: str = "client", infer: bool = False) -> None:
        if perspective not in ("client", "server"):
            raise ValueError(f"perspective must be 'client' or 'server', got {perspective!r}")
        self._out = C2S if perspective == "client" else S2C
        self._infer = infer
        self._sides = {C2S: _Side(), S2C: _Side()}
        #: SETTINGS_INITIAL_WINDOW_SIZE governing data flowing each way.
        self._initial = {C2S: _DEFAULT_WINDOW, S2C: _DEFAULT_WINDOW}
        #: Connection windows of the data flowing each way.
        self._conn_window = {C2S: _DEFAULT_WINDOW, S2C: _DEFAULT_WINDOW}
        self._streams: dict[int, _Stream] = {}
        self._pings: dict[bytes, float] = {}
        self._scanners = {C2S: FrameScanner(), S2C: FrameScanner()}
        self._preface = bytearray()
        self._preface_done = False

    # ------------------------------------------------------------ input

    def feed(self, direction: str, data: bytes, now: float) -> list[Decoded]:
        """Decode raw bytes one side sent (the client's start with the preface).

        After a :class:`Decoded` of kind ``decode_error`` that direction is
        ignored: its bytes are not HTTP/2 as this decoder understands it.
        """
        side = self._sides[direction]
        if side.broken:
            return []
        if direction == C2S and not self._preface_done:
            need = len(PREFACE) - len(self._preface)
            self._preface += data[:need]
            data = data[need:]
            if not PREFACE.startswith(bytes(self._preface)):
                return self.give_up(direction, "the client did not send the HTTP/2 preface")
            if len(self._preface) < len(PREFACE):
                return []
            self._preface_done = True
        out: list[Decoded] = []
        for frame_type, flags, stream_id, _length, body in self._scanners[direction].feed(data):
            items = self.frame(direction, frame_type, flags, stream_id, body, now)
            out.extend(items)
            if items[-1].kind == "decode_error":
                break
        return out

    def frame(
        self, direction: str, frame_type: int, flags: int, stream_id: int, body: bytes, now: float
    ) -> list[Decoded]:
        """Decode one frame sent in ``direction`` (``"c2s"`` or ``"s2c"``)."""
        if self._sides[direction].broken:
            return []
        header = (
            len(body).to_bytes(3, "big") + bytes((frame_type, flags)) + stream_id.to_bytes(4, "big")
        )
        fields: dict[str, Any] = {
            "dir": direction,
            "type": FRAME_TYPE_NAMES.get(frame_type, f"0x{frame_type:x}"),
            "flags": flag_names(frame_type, flags),
            "length": len(body),
        }
        kind = "frame_out" if direction == self._out else "frame_in"
        after: list[Decoded] = []
        try:
            parsed, _ = Frame.parse_frame_header(memoryview(header))
            parsed.parse_body(memoryview(body))
            self._decode(direction, parsed, fields, after, now)
        except (hyperframe.exceptions.HyperframeError, DecodeFailed, ValueError) as exc:
            return [Decoded(kind, stream_id, fields), *self.give_up(direction, str(exc))]
        return [Decoded(kind, stream_id, fields), *after]

    def give_up(self, direction: str, error: str) -> list[Decoded]:
        """Stop decoding ``direction``; return the ``decode_error`` item that says why."""
        self._sides[direction].broken = True
        return [Decoded("decode_error", 0, {"dir": direction, "error": error})]

    # ---------------------------------------------------------- frames

    def _decode(
        self,
        direction: str,
        frame: Frame,
        fields: dict[str, Any],
        after: list[Decoded],
        now: float,
    ) -> None:
        """Fill ``fields`` for one parsed frame; append inferred items to ``after``."""
        if isinstance(frame, DataFrame):
            self._on_data(direction, frame, fields, after, now)
        elif isinstance(frame, HeadersFrame | ContinuationFrame):
            self._on_header_fragment(direction, frame, fields, after)
        elif isinstance(frame, SettingsFrame):
            self._on_settings(direction, frame, fields)
        elif isinstance(frame, WindowUpdateFrame):
            self._on_window_update(direction, frame, fields, after, now)
        elif isinstance(frame, PingFrame):
            data = bytes(frame.opaque_data)
            fields["ack"] = "ACK" in frame.flags
            fields["data"] = data.hex()
            if not fields["ack"]:
                self._pings[data] = now
            elif data in self._pings:
                fields["rtt"] = round(now - self._pings.pop(data), 6)
        elif isinstance(frame, GoAwayFrame):
            fields["last_stream_id"] = frame.last_stream_id
            fields["error"] = error_name(frame.error_code)
            fields["debug"] = _text(bytes(frame.additional_data))
        elif isinstance(frame, RstStreamFrame):
            fields["error"] = error_name(frame.error_code)
            self._on_reset(frame.stream_id, frame.error_code, after)

    def _stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = _Stream(window=dict(self._initial))
            self._streams[stream_id] = stream
        return stream

    def _on_data(
        self,
        direction: str,
        frame: DataFrame,
        fields: dict[str, Any],
        after: list[Decoded],
        now: float,
    ) -> None:
        stream = self._stream(frame.stream_id)
        flow_length = frame.flow_controlled_length
        stream.window[direction] -= flow_length
        self._conn_window[direction] -= flow_length
        reader = stream.readers.get(direction)
        if reader is None:
            reader = stream.readers[direction] = _MessageReader(keep=self._infer)
        parts, done = reader.feed(bytes(frame.data))
        end_stream = "END_STREAM" in frame.flags
        fields.update(
            end_stream=end_stream,
            parts=parts,
            window=stream.window[direction],
            conn_window=self._conn_window[direction],
            flow_dir=direction,
        )
        if self._infer:
            for seq, length, compressed, body in done:
                after.append(
                    Decoded(
                        "message_out" if direction == self._out else "message_in",
                        frame.stream_id,
                        {
                            "dir": direction,
                            "seq": seq,
                            "length": length,
                            "compressed": compressed,
                            "value": self._value(stream, direction, compressed, body),
                            "window": stream.window[direction],
                            "conn_window": self._conn_window[direction],
                        },
                    )
                )
            closed = stream.window[direction] <= 0 or self._conn_window[direction] <= 0
            if closed and direction not in stream.stalled:
                stream.stalled[direction] = now
                after.append(
                    Decoded(
                        "stall",
                        frame.stream_id,
                        {
                            "dir": direction,
                            "inferred": True,
                            "send_window": stream.window[direction],
                            "conn_send_window": self._conn_window[direction],
                        },
                    )
                )
        if end_stream:
            self._ended(frame.stream_id, direction)

    def _value(self, stream: _Stream, direction: str, compressed: bool, body: bytes | None) -> str:
        if body is None:
            return "(not kept: too large)"
        if compressed:
            encoding = stream.encoding[direction]
            try:
                body = decompress(encoding, body, MAX_KEPT_MESSAGE)
            except Exception:  # any codec failure: show the raw bytes instead
                return f"compressed ({encoding}) {hex_preview(body)}"
        return describe_message(stream.path, direction == C2S, body)

    def _on_header_fragment(
        self,
        direction: str,
        frame: HeadersFrame | ContinuationFrame,
        fields: dict[str, Any],
        after: list[Decoded],
    ) -> None:
        side = self._sides[direction]
        if isinstance(frame, HeadersFrame):
            if side.block:
                raise DecodeFailed("HEADERS while a header block was still open")
            side.block_stream = frame.stream_id
            side.block_end_stream = "END_STREAM" in frame.flags
            fields["end_stream"] = side.block_end_stream
        elif frame.stream_id != side.block_stream:
            raise DecodeFailed("CONTINUATION on another stream than its HEADERS")
        side.block += frame.data
        if "END_HEADERS" not in frame.flags:
            return
        block, side.block = bytes(side.block), bytearray()
        try:
            headers = [(bytes(n), bytes(v)) for n, v in side.hpack.decode(block, raw=True)]
        except hpack.exceptions.HPACKError as exc:
            raise DecodeFailed(f"HPACK: {exc}") from None
        fields["headers"] = [[_text(n), _text(v)] for n, v in headers]
        self._on_headers(
            direction, side.block_stream, headers, side.block_end_stream, fields, after
        )

    def _on_headers(
        self,
        direction: str,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool,
        fields: dict[str, Any],
        after: list[Decoded],
    ) -> None:
        stream = self._stream(stream_id)
        first = stream.header_blocks[direction] == 0
        stream.header_blocks[direction] += 1
        values = dict(headers)
        if direction == C2S:
            block = "request" if first else "trailers"
        else:
            block = ("trailers-only" if end_stream else "response") if first else "trailers"
        fields["block"] = block
        encoding = values.get(b"grpc-encoding")
        if encoding is not None:
            stream.encoding[direction] = _text(encoding)
        if block == "request":
            stream.path = _text(values.get(b":path", b""))
            if self._infer:
                after.append(
                    Decoded(
                        "call_start",
                        stream_id,
                        {"path": stream.path, "timeout": self._timeout(values)},
                    )
                )
        if self._infer and direction == S2C and end_stream and not stream.call_ended:
            stream.call_ended = True
            code, message = self._status(values)
            after.append(Decoded("call_end", stream_id, {"code": code, "message": message}))
        if end_stream:
            self._ended(stream_id, direction)

    @staticmethod
    def _timeout(values: dict[bytes, bytes]) -> float | None:
        raw = values.get(b"grpc-timeout")
        if raw is None:
            return None
        try:
            return decode_timeout(raw)
        except Exception:  # a malformed timeout is the peers' business, not ours
            return None

    @staticmethod
    def _status(values: dict[bytes, bytes]) -> tuple[str, str]:
        raw = values.get(b"grpc-status")
        if raw is not None and raw.isdigit() and int(raw) in StatusCode._value2member_map_:
            code = StatusCode(int(raw))
        elif raw is None and values.get(b":status", b"200") != b"200":
            code = http_status_to_code(int(values[b":status"]))
        else:
            code = StatusCode.UNKNOWN
        message = decode_grpc_message(values.get(b"grpc-message", b""))
        return code.name, message

    def _on_settings(self, direction: str, frame: SettingsFrame, fields: dict[str, Any]) -> None:
        fields["ack"] = "ACK" in frame.flags
        fields["settings"] = {_setting_name(k): v for k, v in frame.settings.items()}
        # The sender's settings govern what the *other* side sends to it.
        towards_sender = _OTHER[direction]
        initial = frame.settings.get(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE)
        if initial is not None:
            delta = initial - self._initial[towards_sender]
            self._initial[towards_sender] = initial
            for stream in self._streams.values():
                stream.window[towards_sender] += delta
        table = frame.settings.get(h2.settings.SettingCodes.HEADER_TABLE_SIZE)
        if table is not None:
            self._sides[towards_sender].hpack.max_allowed_table_size = table

    def _on_window_update(
        self,
        direction: str,
        frame: WindowUpdateFrame,
        fields: dict[str, Any],
        after: list[Decoded],
        now: float,
    ) -> None:
        # A grant from one side opens the window of the data sent to it.
        flow = _OTHER[direction]
        increment = frame.window_increment
        fields["increment"] = increment
        fields["flow_dir"] = flow
        if frame.stream_id == 0:
            self._conn_window[flow] += increment
            fields["window"] = self._conn_window[flow]
            candidates = list(self._streams.items())
        else:
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                fields["window"] = None
                return
            stream.window[flow] += increment
            fields["window"] = stream.window[flow]
            candidates = [(frame.stream_id, stream)]
        if not self._infer:
            return
        for stream_id, stream in candidates:
            since = stream.stalled.get(flow)
            if since is None or stream.window[flow] <= 0 or self._conn_window[flow] <= 0:
                continue
            del stream.stalled[flow]
            after.append(
                Decoded(
                    "resume",
                    stream_id,
                    {"dir": flow, "inferred": True, "stalled_for": round(now - since, 6)},
                )
            )

    def _on_reset(self, stream_id: int, error_code: int, after: list[Decoded]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if self._infer and not stream.call_ended:
            after.append(Decoded("call_end", stream_id, {"reset": error_code}))
        del self._streams[stream_id]

    def _ended(self, stream_id: int, direction: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.ended.add(direction)
        if len(stream.ended) == 2:
            # Both halves closed: nothing more can flow (a late WINDOW_UPDATE
            # is reported without a window).
            del self._streams[stream_id]

    # ------------------------------------------------------------ views

    def windows(self, stream_id: int) -> dict[str, int] | None:
        """The current stream windows each way, or ``None`` for an unknown stream."""
        stream = self._streams.get(stream_id)
        return None if stream is None else dict(stream.window)

    def connection_windows(self) -> dict[str, int]:
        """The current connection windows each way."""
        return dict(self._conn_window)
