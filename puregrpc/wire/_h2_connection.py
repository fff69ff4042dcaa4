"""puregrpc's subclass of h2's connection, and the h2 internals it relies on.

h2 is the HTTP/2 state machine of record: stream states, flow-control
windows, HPACK, frame parsing. What gRPC needs differs from what h2
does here, and changing it means overriding private methods of
``h2.connection.H2Connection``:

* GOAWAY does not end the connection (RFC 9113 §6.8 only stops *new*
  streams; gRPC's two-step graceful shutdown keeps frames flowing after it).
* No ``repr()`` of every received frame for a trace log that is discarded.
* A cheap "is anything queued?" test, so a driver skips waking its writer.
* HPACK that codes each repeated header block once (``_hpack_cache.py``):
  h2's ``encoder`` and ``decoder`` are replaced by caching subclasses.
* The frames every call sends and receives (HEADERS, DATA, WINDOW_UPDATE in
  their common forms) are built and read here, feeding h2's own state
  machines, windows and stream methods exactly as h2 does; anything else
  goes through h2's code (see "the hot frames" below).

Every private name used is listed in :data:`H2_INTERNALS`, and pyproject.toml
pins h2 to :data:`SUPPORTED_H2`, the releases these were checked against.
:func:`check_h2_compatibility` reports an installed h2 outside that range, or
one that lacks an internal, naming what to re-check; the test suite runs it.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Iterable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import h2.utilities
import hpack
import hpack.table
from h2.connection import AllowedStreamIDs, ConnectionInputs
from h2.frame_buffer import FrameBuffer
from h2.stream import StreamState
from hyperframe.exceptions import InvalidDataError, InvalidFrameError
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame, SettingsFrame

from ._hpack_cache import CachingDecoder, CachingEncoder

#: The h2 releases this module was checked against (pyproject.toml pins the same).
SUPPORTED_H2 = ">=4.1,<4.5"
_SUPPORTED_RANGE = ((4, 1), (4, 5))

#: The private parts of h2 this module uses: re-check each against a new h2
#: release before widening :data:`SUPPORTED_H2`.
H2_INTERNALS: tuple[tuple[str, str], ...] = (
    ("H2Connection._receive_frame", "overridden: dispatch without repr(frame); error handling"),
    ("H2Connection._receive_goaway_frame", "overridden: GOAWAY leaves the state machine open"),
    ("H2Connection._frame_dispatch_table", "frame class -> handler, used by _receive_frame"),
    ("H2Connection._prepare_for_sending", "queues serialized frames (GOAWAY, RST_STREAM)"),
    ("H2Connection._stream_is_closed_by_reset", "a frame for a stream we reset: RST_STREAM"),
    ("H2Connection._stream_is_closed_by_end", "a frame for a stream ended cleanly: error"),
    ("H2Connection._data_to_send", "the outbound buffer: peeked, appended to, handed over"),
    ("StreamClosedError._events", "events h2 still reports for a late frame"),
    ("Settings._settings", "setting -> queue of values (popleft, append, [0], len)"),
    ("H2Connection.encoder", "replaced by _hpack_cache.CachingEncoder"),
    ("H2Connection.decoder", "replaced by _hpack_cache.CachingDecoder"),
    ("HeaderTable.resized", "hpack: a table size change is pending (the encoder's cache waits)"),
    ("HeaderTable.dynamic_entries", "hpack: its length and front entry tell a block changed it"),
    ("Decoder._assert_valid_table_size", "hpack: checked again on a decoder cache hit"),
    ("H2Connection.state_machine", "the connection's state machine, fed SEND_HEADERS/SEND_DATA"),
    ("H2Stream.state_machine", "a stream's state machine, fed the inputs of a sent frame"),
    ("H2StreamStateMachine.trailers_sent", "trailers without END_STREAM are refused"),
    ("H2Stream.outbound_flow_control_window", "a stream's send window, charged per DATA"),
    ("FrameBuffer._data", "received bytes not yet parsed: the fast receive path needs none"),
    ("FrameBuffer._preamble_len", "the client preface still expected (server side)"),
    ("FrameBuffer._headers_buffer", "a header block waiting for CONTINUATION frames"),
    ("H2Connection.incoming_buffer", "the FrameBuffer of received bytes"),
    ("H2Connection._decode_headers", "module function h2.connection._decode_headers"),
    ("H2Connection._get_or_create_stream", "opens a stream for received HEADERS"),
    ("H2Connection._inbound_flow_control_window_manager", "charged per received DATA"),
    ("H2Connection._terminate_connection", "queues GOAWAY on a protocol error"),
    ("H2Stream.receive_headers", "a stream's handling of received HEADERS"),
    ("H2Stream.receive_data", "a stream's handling of received DATA"),
    ("H2Stream.receive_window_update", "a stream's handling of a received WINDOW_UPDATE"),
    ("H2Stream._authority", "set from a client's first request headers, as h2 does"),
    ("H2Stream.request_method", "set from a client's request headers, as h2 does"),
    ("H2Connection.open_outbound_streams", "a client's limit check before a new stream"),
)

#: Streams held beyond twice the open ones before room_for_stream counts again.
_COUNT_SLACK = 32
#: Stream states in which h2 takes HEADERS and DATA without an error.
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)
#: Stream states in which h2 takes a WINDOW_UPDATE as a window change.
_WINDOWED = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE)
#: Whether this h2's frame buffer is the one the fast receive path knows.
_FAST_RECEIVE = all(
    hasattr(FrameBuffer(server=True), name)
    for name in ("_data", "_preamble_len", "_headers_buffer")
)

#: A frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id.
_FRAME_HEADER = struct.Struct(">HBBBL")
_DATA = 0x0
_HEADERS = 0x1
_CONTINUATION = 0x9
_END_STREAM = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY = 0x20
_WINDOW_UPDATE = 0x8
_MAX_WINDOW = 2**31 - 1


class _SettingValues(list[int]):
    """A setting's current value and any not yet acknowledged, in a list.

    h2 keeps each one in a ``collections.deque``, whose first block costs
    about 600 bytes: some 10 KB for the two ``Settings`` of every connection,
    a quarter of an idle connection's memory. A setting rarely holds more
    than two values, so a list with ``popleft`` does the same job in ~70.
    """

    __slots__ = ()

    def popleft(self) -> int:
        """Remove and return the oldest value (what ``deque.popleft`` does)."""
        return self.pop(0)


def _compact_settings(settings: h2.settings.Settings) -> None:
    """Swap h2's per-setting deques for :class:`_SettingValues` lists.

    Done when the connection is made and after each SETTINGS frame: h2 makes
    a deque for every setting first set in between (MAX_CONCURRENT_STREAMS,
    MAX_HEADER_LIST_SIZE...), and only appends to it until then.
    """
    values: dict[object, object] = settings._settings  # type: ignore[assignment]
    for key, queue in values.items():
        if isinstance(queue, collections.deque):
            values[key] = _SettingValues(queue)


def _window_updated(stream_id: int, delta: int) -> h2.events.WindowUpdated:
    """h2's WindowUpdated event (a keyword-built dataclass from h2 4.2 on, bare before)."""
    try:
        return h2.events.WindowUpdated(stream_id=stream_id, delta=delta)  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # pragma: no cover - h2 4.1
        event = h2.events.WindowUpdated()  # type: ignore[call-arg,unused-ignore]
        event.stream_id = stream_id
        event.delta = delta
        return event


def _rst_stream(stream_id: int, error_code: int) -> RstStreamFrame:
    frame = RstStreamFrame(stream_id)
    frame.error_code = error_code
    return frame


def _header_refused(data: bytes | bytearray | memoryview, pos: int) -> bool:
    """Whether h2 refuses the frame header at ``data[pos:pos + 9]`` before the frame's body arrives.

    h2 parses a frame's header as soon as its 9 bytes are in (a HEADERS
    frame on stream 0, say, is a protocol error then): a frame held back
    until it is whole must be refused as early.
    """
    try:
        Frame.parse_frame_header(memoryview(bytes(data[pos : pos + 9])))
    except (InvalidDataError, InvalidFrameError):
        return True
    return False


def error_code(code: int) -> h2.errors.ErrorCodes | int:
    """An HTTP/2 error code as h2's enum when it is a known one, else the int."""
    try:
        return h2.errors.ErrorCodes(code)
    except ValueError:
        return code


class H2Connection(h2.connection.H2Connection):
    """h2's connection, with GOAWAY handled the way gRPC needs it.

    h2 treats a GOAWAY, sent or received, as the end of the connection: it
    moves to CLOSED, drops what it had queued to send, and refuses every frame
    after it. But a GOAWAY only says "no *new* streams above this id"
    (RFC 9113 §6.8): calls already running must be able to finish, and the
    two-step graceful shutdown of gRPC servers (GOAWAY, PING, GOAWAY) needs
    frames to keep flowing. So GOAWAY frames bypass h2's connection state
    machine here, in both directions; the gRPC layer refuses new calls itself.
    """

    def __init__(self, config: h2.config.H2Configuration | None = None) -> None:
        super().__init__(config)
        _compact_settings(self.local_settings)
        _compact_settings(self.remote_settings)
        self.encoder = CachingEncoder()
        self.decoder = CachingDecoder(self.DEFAULT_MAX_HEADER_LIST_SIZE)
        #: Outbound headers go out as given (no validation or normalization
        #: asked of h2): the only case the direct HEADERS path serves.
        self._plain_headers = not (
            self.config.validate_outbound_headers or self.config.normalize_outbound_headers
        )
        #: Streams held (open or closed, h2 prunes the closed ones only
        #: while it counts) at which :meth:`room_for_stream` counts again.
        self._count_at = _COUNT_SLACK
        #: The start of a frame that the last read cut (the fast receive
        #: path's own, so that bulk DATA, whose frames reads cut all the time,
        #: stays on it); empty between whole frames.
        self._partial = bytearray()

    def room_for_stream(self, inbound: bool) -> bool:
        """Whether one more stream opened by the peer (``inbound``) or by us fits the limit.

        The limit is MAX_CONCURRENT_STREAMS (RFC 9113 §5.1.2): ours for the
        peer's streams, the peer's for ours. h2 answers by counting, walking
        every stream it holds and pruning the closed ones, which is
        O(streams) for every new stream: at 64 calls in flight the walk was a
        tenth of a client's unary call. Open streams never outnumber the
        streams held, so while fewer are held than the limit and than a
        counting mark, the answer is yes without a walk. Once the held
        streams reach the mark, h2 counts (and prunes) and the mark moves to
        twice the streams left plus some slack: the cost per stream is
        constant on average, and the closed streams held stay fewer than
        the open ones plus the slack. The answer is always exactly h2's.
        """
        if inbound:
            limit = self.local_settings.max_concurrent_streams
        else:
            limit = self.remote_settings.max_concurrent_streams
        held = len(self.streams)
        if held < limit and held < self._count_at:
            return True
        count = self.open_inbound_streams if inbound else self.open_outbound_streams
        self._count_at = 2 * len(self.streams) + _COUNT_SLACK
        return count < limit

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[object], list[object]]:  # type: ignore[override]
        event = h2.events.ConnectionTerminated()
        event.error_code = error_code(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _receive_frame(self, frame: Frame) -> list[h2.events.Event]:
        """Dispatch one received frame, as h2 does, minus its trace formatting.

        h2's own version starts with ``logger.trace("...", repr(frame))``: the
        repr is built for every frame received even though the default logger
        discards it, a measurable cost per frame. The error handling is h2's:
        a frame for a stream we reset earns a RST_STREAM, and a frame for a
        stream closed by END_STREAM, or closed implicitly, is a connection error.
        """
        events: list[h2.events.Event]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as exc:
            if not self._stream_is_closed_by_reset(exc.stream_id):
                raise
            self._prepare_for_sending([_rst_stream(exc.stream_id, exc.error_code)])
            late_events: list[h2.events.Event] = exc._events
            return late_events
        except h2.exceptions.StreamIDTooLowError as exc:
            if self._stream_is_closed_by_reset(exc.stream_id):
                closed = h2.errors.ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([_rst_stream(exc.stream_id, closed)])
                return []
            if self._stream_is_closed_by_end(exc.stream_id):
                raise h2.exceptions.StreamClosedError(exc.stream_id) from exc
            raise
        self._prepare_for_sending(frames)
        if frame.__class__ is SettingsFrame:
            # Settings first set since the last exchange got fresh deques.
            _compact_settings(self.local_settings)
            _compact_settings(self.remote_settings)
        return events

    # ------------------------------------------ the hot frames received, ours

    # h2 parses every received frame into a hyperframe object through its
    # FrameBuffer (a copy of the bytes, a header parse, a flags set) and
    # dispatches it. For the frames every call brings - HEADERS opening a
    # stream or on an open one, DATA on an open stream, no padding, no
    # priority, the header block in one frame - and WINDOW_UPDATE on the
    # connection or an open stream, receive_data below reads the
    # frame header itself and calls the same h2 methods h2's handlers call,
    # in the same order, under the same error handling. Any other whole
    # frame (a PING, SETTINGS, RST_STREAM, one h2 would refuse) is handed to h2's
    # own receive_data by itself, so frame order, every error and every limit
    # stay h2's; from a partial frame on, or while a header block waits for
    # CONTINUATION, the rest is h2's entirely. A frame that a read cuts (in
    # bulk transfers, most reads end inside a DATA frame) waits in
    # ``_partial`` and is completed from the front of the next read, so the
    # frames after it stay on this path; only a frame header announcing more
    # than the frame size limit goes to h2 as it is, for h2 to refuse. Bytes
    # h2 buffered with the preface are taken over the same way. The
    # differential test in tests/wire checks events, errors, states and
    # windows against plain h2, with the bytes cut at random.

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[h2.events.Event]:  # type: ignore[override]
        """Take received bytes: the common frames directly, the rest through h2."""
        buffer = self.incoming_buffer
        if not _FAST_RECEIVE or buffer._preamble_len or buffer._headers_buffer:
            return super().receive_data(data)
        if buffer._data:
            # What came after the preface in its read, cut inside a frame.
            self._partial += buffer._data
            buffer._data = bytearray()
        events: list[h2.events.Event] = []
        pos = 0
        if self._partial:
            completed, pos = self._complete_partial(data)
            if completed is None:
                return events  # still cut: wait for more
            if pos < 0:  # too long: h2 refuses it
                return super().receive_data(completed)
            events += self._receive_whole_frame(completed, 0, len(completed))
            if buffer._headers_buffer:
                return events + super().receive_data(data[pos:])
        size = len(data)
        while size - pos >= 9:
            length = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]
            end = pos + 9 + length
            if length > self.max_inbound_frame_size:
                break  # too long: h2's to refuse
            if end > size:
                if _header_refused(data, pos):
                    break  # h2 refuses it before its body arrives
                self._partial += data[pos:]  # cut: completed by the next read
                return events
            events += self._receive_whole_frame(data, pos, end)
            pos = end
            if buffer._headers_buffer:
                break  # CONTINUATION frames follow: h2's from here
        if pos < size:
            if size - pos < 9 and not buffer._headers_buffer:
                self._partial += data[pos:]  # a cut frame header
                return events
            events += super().receive_data(data[pos:] if pos else data)
        return events

    def _complete_partial(self, data: bytes | bytearray | memoryview) -> tuple[bytes | None, int]:
        """The cut frame completed from the front of ``data``, and where ``data``'s rest starts.

        ``(None, 0)`` while the frame is still incomplete (all of ``data``
        joined it); ``(bytes, -1)`` for a header announcing a frame over the
        size limit (the bytes so far and ``data``, for h2 to refuse).
        """
        partial = self._partial
        pos = 0
        if len(partial) < 9:
            pos = min(9 - len(partial), len(data))
            partial += data[:pos]
            if len(partial) < 9:
                return None, 0
        length = partial[0] << 16 | partial[1] << 8 | partial[2]
        if length > self.max_inbound_frame_size:
            whole = bytes(partial) + bytes(data[pos:])
            partial.clear()
            return whole, -1
        need = 9 + length - len(partial)
        if len(data) - pos < need:
            partial += data[pos:]
            if _header_refused(partial, 0):
                whole = bytes(partial)
                partial.clear()
                return whole, -1
            return None, 0
        frame = bytes(partial) + bytes(data[pos : pos + need])
        partial.clear()
        return frame, pos + need

    def _receive_whole_frame(
        self, data: bytes | bytearray | memoryview, pos: int, end: int
    ) -> list[h2.events.Event]:
        """The events of the whole frame at ``data[pos:end]``: ours if common, else h2's."""
        try:
            handled = self._receive_common_frame(data, pos, end)
        except h2.exceptions.ProtocolError as exc:
            self._terminate_connection(exc.error_code)
            raise
        if handled is None:
            handled = super().receive_data(data[pos:end])
        return handled

    def _receive_common_frame(
        self, data: bytes | bytearray | memoryview, pos: int, end: int
    ) -> list[h2.events.Event] | None:
        """The events of the whole frame at ``data[pos:end]``; None if it is not a common one."""
        kind = data[pos + 3]
        flags = data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        stream = self.streams.get(stream_id)
        if kind == _DATA:
            if flags & _PADDED or stream is None:
                return None
            if stream.state_machine.state not in _RECEIVING:
                return None
            length = end - pos - 9
            events = self.state_machine.process_input(ConnectionInputs.RECV_DATA)
            self._inbound_flow_control_window_manager.window_consumed(length)
            frames, stream_events = stream.receive_data(
                bytes(data[pos + 9 : end]), bool(flags & _END_STREAM), length
            )
        elif kind == _HEADERS:
            if flags & (_PADDED | _PRIORITY) or not flags & _END_HEADERS:
                return None
            if stream is None:
                if (
                    self.config.client_side
                    or not stream_id & 1
                    or stream_id <= self.highest_inbound_stream_id
                    or not self.room_for_stream(inbound=True)
                ):
                    return None
            elif stream.state_machine.state not in _RECEIVING:
                return None
            headers = h2.connection._decode_headers(self.decoder, bytes(data[pos + 9 : end]))
            events = self.state_machine.process_input(ConnectionInputs.RECV_HEADERS)
            if stream is None:
                stream = self._get_or_create_stream(
                    stream_id, AllowedStreamIDs(not self.config.client_side)
                )
            frames, stream_events = stream.receive_headers(
                headers, bool(flags & _END_STREAM), self.config.header_encoding
            )
        elif kind == _WINDOW_UPDATE:
            if end - pos != 13:
                return None
            increment = int.from_bytes(data[pos + 9 : end], "big")
            if not 1 <= increment <= _MAX_WINDOW:
                return None  # h2 (hyperframe) refuses it
            if stream_id:
                if stream is None or stream.state_machine.state not in _WINDOWED:
                    return None
                events = self.state_machine.process_input(ConnectionInputs.RECV_WINDOW_UPDATE)
                frames, stream_events = stream.receive_window_update(increment)
            else:
                events = self.state_machine.process_input(ConnectionInputs.RECV_WINDOW_UPDATE)
                self.outbound_flow_control_window = h2.utilities.guard_increment_window(
                    self.outbound_flow_control_window, increment
                )
                frames = []
                stream_events = [_window_updated(0, increment)]
        else:
            return None
        if frames:
            self._prepare_for_sending(frames)
        events.extend(stream_events)
        return events

    def send_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        """Queue a GOAWAY frame without closing h2's state machine."""
        frame = GoAwayFrame(0)
        frame.error_code = error_code
        frame.last_stream_id = last_stream_id
        frame.additional_data = debug_data
        self._prepare_for_sending([frame])

    # ------------------------------------------------- the hot frames, ours

    # h2's send_headers and send_data build a hyperframe object per frame,
    # make about ten debug-log calls, re-encode every header name and value,
    # and serialize through a generic path: a large share of a unary call.
    # For the frames every call sends (headers, trailers and DATA on a
    # stream h2 already knows), the two methods below feed h2's state
    # machines exactly the inputs h2 would, charge the same windows, and
    # append the same bytes to the same buffer, but build the bytes
    # themselves. Anything else (a new stream, priority, padding,
    # informational headers, str headers, a frame h2 would refuse) goes to
    # h2's own method, so every error is h2's. The differential tests in
    # tests/wire check byte-for-byte and state-for-state agreement with h2.

    def send_headers(
        self,
        stream_id: int,
        headers: Iterable[Any],
        end_stream: bool = False,
        priority_weight: int | None = None,
        priority_depends_on: int | None = None,
        priority_exclusive: bool | None = None,
    ) -> None:
        """Queue a HEADERS block: h2's method, done directly (a client's new stream too)."""
        stream = self.streams.get(stream_id)
        client = self.config.client_side
        if (
            priority_weight is not None
            or priority_depends_on is not None
            or priority_exclusive is not None
            or type(headers) is not list
            or not self._plain_headers
            or (stream is None and not client)
            or (not client and _informational(headers))
        ):
            super().send_headers(
                stream_id,
                headers,
                end_stream,
                priority_weight=priority_weight,
                priority_depends_on=priority_depends_on,
                priority_exclusive=priority_exclusive,
            )
            return
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                super().send_headers(stream_id, headers, end_stream)
                return
        if stream is None:
            # A client's new stream, opened as h2 opens it.
            if not self.room_for_stream(inbound=False):
                super().send_headers(stream_id, headers, end_stream)  # h2 refuses it
                return
            self.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
            stream = self._get_or_create_stream(stream_id, AllowedStreamIDs(client))
        else:
            self.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
        machine = stream.state_machine
        machine.process_input(h2.stream.StreamInputs.SEND_HEADERS)
        block = self.encoder.encode(headers)
        if end_stream:
            machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
        elif machine.trailers_sent:
            raise h2.exceptions.ProtocolError("Trailers must have END_STREAM set.")
        if client:
            # What h2's stream keeps of a request (a server's response
            # headers carry neither, so h2 leaves a server stream's at None).
            if machine.client and stream._authority is None:
                stream._authority = h2.utilities.authority_from_headers(headers)
            stream.request_method = h2.utilities.extract_method_header(headers)
        flags = _END_STREAM if end_stream else 0
        out = self._data_to_send
        size = len(block)
        max_frame = self.max_outbound_frame_size
        if size <= max_frame:
            out += _FRAME_HEADER.pack(
                size >> 8, size & 0xFF, _HEADERS, flags | _END_HEADERS, stream_id
            )
            out += block
            return
        # A block over the frame size: HEADERS, then CONTINUATION frames.
        view = memoryview(block)
        kind = _HEADERS
        for start in range(0, size, max_frame):
            piece = view[start : start + max_frame]
            if start + max_frame >= size:
                flags |= _END_HEADERS
            n = len(piece)
            out += _FRAME_HEADER.pack(n >> 8, n & 0xFF, kind, flags, stream_id)
            out += piece
            kind, flags = _CONTINUATION, 0

    def send_data(
        self,
        stream_id: int,
        data: bytes | memoryview,
        end_stream: bool = False,
        pad_length: Any = None,
    ) -> None:
        """Queue a DATA frame: h2's method, done directly when h2 would accept it."""
        stream = self.streams.get(stream_id)
        size = len(data)
        if (
            stream is None
            or pad_length is not None
            or size > self.outbound_flow_control_window
            or size > stream.outbound_flow_control_window
            or size > self.max_outbound_frame_size
        ):
            super().send_data(stream_id, data, end_stream, pad_length)
            return
        self.state_machine.process_input(ConnectionInputs.SEND_DATA)
        machine = stream.state_machine
        machine.process_input(h2.stream.StreamInputs.SEND_DATA)
        flags = 0
        if end_stream:
            machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
            flags = _END_STREAM
        stream.outbound_flow_control_window -= size
        self.outbound_flow_control_window -= size
        out = self._data_to_send
        out += _FRAME_HEADER.pack(size >> 8, size & 0xFF, _DATA, flags, stream_id)
        out += data

    def end_stream(self, stream_id: int) -> None:
        """Queue an empty DATA frame with END_STREAM: h2's method, done directly."""
        stream = self.streams.get(stream_id)
        if stream is None:
            super().end_stream(stream_id)
            return
        self.state_machine.process_input(ConnectionInputs.SEND_DATA)
        stream.state_machine.process_input(h2.stream.StreamInputs.SEND_END_STREAM)
        self._data_to_send += _FRAME_HEADER.pack(0, 0, _DATA, _END_STREAM, stream_id)

    def data_to_send(self, amount: int | None = None) -> bytes:
        """Everything queued for the peer: h2's buffer itself, handed over, not copied.

        h2 returns ``bytes(buffer)``, a copy of every byte sent (a 64 KiB
        message's payload is copied into the buffer, then again out of it).
        The buffer is a ``bytearray`` that nothing touches once a new one
        takes its place, so it goes to the writer as it is.
        """
        if amount is not None:
            return super().data_to_send(amount)
        data = self._data_to_send
        if not data:
            return b""
        self._data_to_send = bytearray()
        # A bytearray where h2 promises bytes: it is never changed again, and
        # every consumer (a socket write, the tracer's frame scan) takes any buffer.
        return cast(bytes, data)

    def has_data_to_send(self) -> bool:
        """True when :meth:`data_to_send` would return bytes (h2 has no public peek)."""
        return bool(self._data_to_send)


def _informational(headers: list[Any]) -> bool:
    """h2's test for a 1xx response: a ``:status`` among the leading pseudo-headers, 1xx."""
    for name, value in headers:
        if name[:1] != b":":
            return False
        if name == b":status":
            return bool(value[:1] == b"1")
    return False


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_h2_compatibility(version: str | None = None) -> list[str]:
    """Problems with the installed h2 (or ``version``), or an empty list.

    A release outside :data:`SUPPORTED_H2` may have changed any of
    :data:`H2_INTERNALS`; each problem names what to re-check before widening
    the pin in pyproject.toml.
    """
    installed = h2.__version__ if version is None else version
    problems: list[str] = []
    low, high = _SUPPORTED_RANGE
    if not low <= _version_tuple(installed)[:2] < high:
        internals = "; ".join(f"{name} ({why})" for name, why in H2_INTERNALS)
        problems.append(
            f"h2 {installed} is installed but puregrpc.wire was checked against "
            f"h2{SUPPORTED_H2}: re-check these h2 internals in its source, then widen "
            f"SUPPORTED_H2 and the pin in pyproject.toml: {internals}"
        )
    for name, why in H2_INTERNALS:
        owner_name, _, attribute = name.partition(".")
        owners: dict[str, object] = {
            "StreamClosedError": h2.exceptions.StreamClosedError(0),
            "Settings": h2.settings.Settings(),
            "HeaderTable": hpack.table.HeaderTable(),
            "Decoder": hpack.Decoder(),
            "H2Stream": h2.stream.H2Stream(1, h2.config.H2Configuration(), 65535, 65535),
            "H2StreamStateMachine": h2.stream.H2StreamStateMachine(1),
            "FrameBuffer": FrameBuffer(server=True),
        }
        owner = owners.get(owner_name) or H2Connection()
        if name == "H2Connection._decode_headers":
            owner = h2.connection
        if not hasattr(owner, attribute):
            problems.append(f"h2 {installed} has no {name}, which puregrpc.wire uses: {why}")
    return problems
