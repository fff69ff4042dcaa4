"""The gRPC connection state machine shared by both roles, over h2.

Theory of operation
===================

A :class:`GrpcConnection` owns one ``h2.connection.H2Connection`` and the gRPC
state of every call on it. It does no I/O: the driver feeds it the bytes it
read (:meth:`receive_data`, which returns :mod:`events <._events>`), calls its
methods to act (start a call, send a message, consume a message, end a call),
and writes out whatever :meth:`data_to_send` returns, as **one** socket write
per batch. It reads no clock either: timeouts arrive as relative seconds and
the driver owns the deadline.

h2 keeps the HTTP/2 stream states and HPACK; this layer adds what gRPC needs
on top: message framing, compression, status and metadata codecs, header
validation (h2's own is switched off for speed, so ours must be complete),
and explicit flow control (:mod:`._flow`).

Per call, two small state machines, one per direction::

    send side                         receive side
    ---------                         ------------
    IDLE --headers--> OPEN            IDLE --headers--> OPEN
    IDLE --end------> CLOSED          IDLE --end------> CLOSED  (trailers-only)
    OPEN --message--> OPEN            OPEN --message--> OPEN
    OPEN --end------> CLOSED          OPEN --end------> CLOSED

A client call starts with send OPEN (request headers go out at once) and
receive IDLE (waiting for response headers). A server call starts with send
IDLE (response headers not sent yet) and receive OPEN. A reset closes both.
Any other transition is a bug in the caller and raises
:class:`LocalProtocolError` naming the state and the action.

Outbound flow control: :meth:`send_message` frames the message and sends as
much as ``min(stream window, connection window)`` allows, in DATA frames no
larger than the peer's SETTINGS_MAX_FRAME_SIZE. The rest stays queued on the
call; :meth:`queued_bytes` tells the driver to wait, and a
:class:`WindowOpened` event tells it when the queue has drained. Trailers and
END_STREAM queue behind the data. A driver that waits while anything is
queued holds at most one message per call in memory: no unbounded buffer.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

from ._compression import IDENTITY, compress, decompress
from ._errors import LocalProtocolError, RemoteProtocolError, RpcError
from ._events import (
    CallEnded,
    ConnectionClosed,
    Event,
    MessageReceived,
    PingAcknowledged,
    PingReceived,
    SettingsChanged,
    StreamReset,
    WindowOpened,
)
from ._flow import ConnectionStatistics, GrantBatcher, ReceiveCredit, StreamStatistics
from ._framing import (
    DEFAULT_MAX_RECEIVE_MESSAGE_SIZE,
    PREFIX_LENGTH,
    MessageDecoder,
    encode_prefix,
    frame_message,
)
from ._metadata import DEFAULT_MAX_METADATA_SIZE, Metadata
from ._status import Status, StatusCode, status_from_h2_reset
from ._trace import (
    FRAME_TYPE_NAMES,
    NULL_TRACER,
    FrameScanner,
    Tracer,
    TraceRecord,
    next_connection_id,
)

#: Default receive window we advertise per stream (SETTINGS_INITIAL_WINDOW_SIZE).
DEFAULT_STREAM_WINDOW = 1024 * 1024
#: Default receive window for the whole connection (raised by WINDOW_UPDATE on
#: stream 0 right after the preface, as grpc-go and grpcio do, so that one
#: stream's unconsumed bytes cannot starve the others).
DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024
#: Queued bytes at which send_message flushes a call at once instead of
#: waiting for data_to_send() (bounds what a producer queues between writes).
COALESCE_LIMIT = 64 * 1024
#: Consecutive empty DATA frames (no payload, no END_STREAM) tolerated before
#: the connection is closed with ENHANCE_YOUR_CALM (CVE-2019-9518).
MAX_EMPTY_DATA_FRAMES = 100
#: Messages at least this large are queued without copying them into a framed
#: buffer (smaller ones are framed in one copy and may share DATA frames).
LARGE_MESSAGE = 16 * 1024
#: RFC 9113 §6.9.2: every connection starts with this window, whatever SETTINGS say.
_RFC_INITIAL_WINDOW = 65_535
#: RFC 9113 §6.9.1: the largest window a peer may hold.
MAX_WINDOW = 2**31 - 1


class CallState(enum.IntEnum):
    """The state of one direction of a call.

    An IntEnum so that transition lookups hash as ints (Enum's hash is a
    Python-level call, paid on every message).
    """

    IDLE = 0
    OPEN = 1
    CLOSED = 2


class CallAction(enum.IntEnum):
    """What happens to one direction of a call."""

    HEADERS = 0
    MESSAGE = 1
    END = 2


#: The legal transitions of either direction of a call.
_TRANSITIONS: dict[tuple[CallState, CallAction], CallState] = {
    (CallState.IDLE, CallAction.HEADERS): CallState.OPEN,
    (CallState.IDLE, CallAction.END): CallState.CLOSED,
    (CallState.OPEN, CallAction.MESSAGE): CallState.OPEN,
    (CallState.OPEN, CallAction.END): CallState.CLOSED,
}


def _advance(state: CallState, action: CallAction, stream_id: int, side: str) -> CallState:
    """Return the state after ``action``, or raise naming the impossible move."""
    new_state = _TRANSITIONS.get((state, action))
    if new_state is None:
        raise LocalProtocolError(
            f"cannot {action.name.lower()} on the {side} side of stream {stream_id} "
            f"in state {state.name}"
        )
    return new_state


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionConfig:
    """Limits and window sizes of one connection; the defaults suit most users."""

    #: Receive window per stream we advertise (SETTINGS_INITIAL_WINDOW_SIZE).
    stream_window: int = DEFAULT_STREAM_WINDOW
    #: Receive window of the whole connection.
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    #: Largest DATA frame payload we accept (SETTINGS_MAX_FRAME_SIZE).
    max_frame_size: int = 16_384
    #: Calls the peer may open at once (SETTINGS_MAX_CONCURRENT_STREAMS);
    #: meaningful for servers.
    max_concurrent_streams: int = 1024
    #: Largest metadata block we accept per call (SETTINGS_MAX_HEADER_LIST_SIZE);
    #: a call over it ends with RESOURCE_EXHAUSTED.
    max_header_list_size: int = DEFAULT_MAX_METADATA_SIZE
    #: Largest message we accept, after decompression; larger ones end the call
    #: with RESOURCE_EXHAUSTED.
    max_receive_message_size: int = DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
    #: Largest message we agree to send; ``None`` for no limit.
    max_send_message_size: int | None = None
    #: Fraction of a window that must be consumed before we grant it back:
    #: 0.5 means one WINDOW_UPDATE per half window.
    grant_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.stream_window <= MAX_WINDOW:
            raise ValueError(f"stream_window must be 1..{MAX_WINDOW}, got {self.stream_window}")
        if not _RFC_INITIAL_WINDOW <= self.connection_window <= MAX_WINDOW:
            raise ValueError(
                f"connection_window must be {_RFC_INITIAL_WINDOW}..{MAX_WINDOW}, "
                f"got {self.connection_window}"
            )
        if not 16_384 <= self.max_frame_size <= 16_777_215:
            raise ValueError(f"max_frame_size must be 16384..16777215, got {self.max_frame_size}")
        if not 0 < self.grant_ratio <= 1:
            raise ValueError(f"grant_ratio must be in (0, 1], got {self.grant_ratio}")


class _Call:
    """Everything the state machine knows about one call (one HTTP/2 stream)."""

    __slots__ = (
        "credit",
        "decoder",
        "end_headers",
        "end_pending",
        "grant",
        "messages_received",
        "messages_sent",
        "queue",
        "queued",
        "recv_encoding",
        "recv_state",
        "reset_after_end",
        "send_encoding",
        "send_state",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: int,
        *,
        send_state: CallState,
        recv_state: CallState,
        max_message_size: int,
        grant_threshold: int,
    ) -> None:
        self.stream_id = stream_id
        self.send_state = send_state
        self.recv_state = recv_state
        self.decoder = MessageDecoder(max_message_size)
        self.credit = ReceiveCredit()
        self.grant = GrantBatcher(grant_threshold)
        #: Encoding of messages we receive / send on this call.
        self.recv_encoding = IDENTITY
        self.send_encoding = IDENTITY
        #: Framed bytes waiting for window, oldest first.
        self.queue: deque[memoryview] = deque()
        self.queued = 0
        #: True once END_STREAM must follow the queued data.
        self.end_pending = False
        #: Trailers to send with END_STREAM (None: END_STREAM on the last DATA).
        self.end_headers: list[tuple[bytes, bytes]] | None = None
        #: Server: reset with NO_ERROR after the trailers, to stop a client
        #: that is still sending (RFC 9113 §8.1).
        self.reset_after_end = False
        self.messages_sent = 0
        self.messages_received = 0


def _rst_stream(stream_id: int, error_code: int) -> RstStreamFrame:
    frame = RstStreamFrame(stream_id)
    frame.error_code = error_code
    return frame


def ended_locally(stream_id: int, status: Status) -> CallEnded:
    """The :class:`CallEnded` of a call this state machine ended itself."""
    return CallEnded(
        stream_id=stream_id, status=status, trailing_metadata=Metadata(), locally_ended=True
    )


class _H2Connection(h2.connection.H2Connection):
    """h2's connection, with GOAWAY handled the way gRPC needs it.

    h2 treats a GOAWAY, sent or received, as the end of the connection: it
    moves to CLOSED, drops what it had queued to send, and refuses every frame
    after it. But a GOAWAY only says "no *new* streams above this id"
    (RFC 9113 §6.8): calls already running must be able to finish, and the
    two-step graceful shutdown of gRPC servers (GOAWAY, PING, GOAWAY) needs
    frames to keep flowing. So GOAWAY frames bypass h2's connection state
    machine here, in both directions; the gRPC layer refuses new calls itself.
    """

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[object], list[object]]:  # type: ignore[override]
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors._error_code_from_int(frame.error_code)
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
        return events

    def send_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        """Queue a GOAWAY frame without closing h2's state machine."""
        frame = GoAwayFrame(0)
        frame.error_code = error_code
        frame.last_stream_id = last_stream_id
        frame.additional_data = debug_data
        self._prepare_for_sending([frame])


class GrpcConnection:
    """The role-independent part of a gRPC connection state machine.

    Use :class:`ClientConnection` or :class:`ServerConnection`. After
    construction :meth:`data_to_send` already holds the connection preface and
    our SETTINGS: write it out first.
    """

    _client_side: bool = True

    def __init__(self, config: ConnectionConfig | None = None, *, tracer: Tracer = NULL_TRACER):
        self.config = config if config is not None else ConnectionConfig()
        cfg = self.config
        # h2's header validation and normalisation are off: they were the top
        # cost per call in profiles (PERF-NOTES), and _headers validates what
        # gRPC needs itself, including what h2 would have rejected.
        self._h2 = _H2Connection(
            h2.config.H2Configuration(
                client_side=self._client_side,
                header_encoding=None,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        settings = {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: cfg.stream_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: cfg.max_frame_size,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: cfg.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: cfg.max_header_list_size,
        }
        if self._client_side:
            settings[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        self._h2.local_settings = h2.settings.Settings(
            client=self._client_side, initial_values=settings
        )
        self._h2.max_inbound_frame_size = cfg.max_frame_size
        # HPACK's own limit guards memory only; the per-call metadata limit is
        # checked by _headers so that an oversized call fails alone.
        self._h2.decoder.max_header_list_size = max(65_536, 4 * cfg.max_header_list_size)
        self._h2.initiate_connection()
        if cfg.connection_window > _RFC_INITIAL_WINDOW:
            self._h2.increment_flow_control_window(cfg.connection_window - _RFC_INITIAL_WINDOW)
        #: Empty DATA frames received in a row (see MAX_EMPTY_DATA_FRAMES).
        self._empty_data_frames = 0
        self._calls: dict[int, _Call] = {}
        #: Calls with small messages queued since the last data_to_send().
        self._unflushed: dict[int, _Call] = {}
        #: Calls with queued data and a closed window, in the order they stalled.
        self._blocked: dict[int, _Call] = {}
        #: Calls left waiting for a partial message during one receive_data batch.
        self._awaiting: dict[int, _Call] = {}
        self._conn_grant = GrantBatcher(int(cfg.connection_window * cfg.grant_ratio))
        self._stream_grant_threshold = int(cfg.stream_window * cfg.grant_ratio)
        self._closed = False
        #: True after a connection error: receive_data ignores further bytes.
        self._failed = False
        self._tracer: Tracer | None = tracer if tracer.enabled else None
        self._trace_id = next_connection_id() if self._tracer is not None else 0
        self._scan_in = FrameScanner(expect_preface=not self._client_side)
        self._scan_out = FrameScanner(expect_preface=self._client_side)
        self._dispatch: dict[type, Callable[[h2.events.Event, list[Event]], None]] = {
            h2.events.DataReceived: self._on_data,  # type: ignore[dict-item]
            h2.events.StreamEnded: self._on_stream_ended,  # type: ignore[dict-item]
            h2.events.StreamReset: self._on_stream_reset,  # type: ignore[dict-item]
            h2.events.WindowUpdated: self._on_window_updated,  # type: ignore[dict-item]
            h2.events.RemoteSettingsChanged: self._on_settings,  # type: ignore[dict-item]
            h2.events.PingReceived: self._on_ping,  # type: ignore[dict-item]
            h2.events.PingAckReceived: self._on_ping_ack,  # type: ignore[dict-item]
            h2.events.ConnectionTerminated: self._on_goaway,  # type: ignore[dict-item]
        }

    # ------------------------------------------------------------------ I/O

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the transport; return what the peer did.

        After this call, :meth:`data_to_send` may hold frames to write (PING
        and SETTINGS acknowledgements, WINDOW_UPDATEs, responses the state
        machine sent on its own): the driver writes them out before it blocks
        on the next read.
        """
        if self._failed:
            # A connection error ended everything: later bytes mean nothing,
            # and h2 would only answer each batch with one more GOAWAY.
            return []
        if self._tracer is not None:
            self._trace_frames(self._scan_in.feed(data), "frame_in")
        try:
            h2_events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            error_code = int(getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR))
            if self._h2.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                # h2 checks the client preface before its state machine runs
                # and queues no GOAWAY for a bad one; every other error queued
                # one already. RFC 9113 §3.4 lets us omit it, but the driver
                # is told a GOAWAY went out, so send one.
                self._h2.send_goaway(error_code, self._h2.highest_inbound_stream_id, b"")
            return self._connection_failed(error_code, f"HTTP/2 protocol error from peer: {exc}")
        events: list[Event] = []
        dispatch = self._dispatch
        for h2_event in h2_events:
            handler = dispatch.get(type(h2_event))
            if handler is not None:
                handler(h2_event, events)
        if self._awaiting:
            # Partial messages are judged against the windows only now: h2
            # counted every DATA frame of the batch against them before we saw
            # the first, so mid-batch the windows read too low (see _flow).
            for call in self._awaiting.values():
                if self._calls.get(call.stream_id) is call:
                    self._credit(call)
            self._awaiting.clear()
        if self._empty_data_frames > MAX_EMPTY_DATA_FRAMES:
            self._h2.send_goaway(
                h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                self._h2.highest_inbound_stream_id,
                b"too many empty DATA frames",
            )
            return events + self._connection_failed(
                h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "too many empty DATA frames"
            )
        return events

    def data_to_send(self) -> bytes:
        """Return every byte queued for the peer, as one chunk to write at once."""
        if self._unflushed:
            unflushed = self._unflushed
            self._unflushed = {}
            for call in unflushed.values():
                if call.queue and call.stream_id in self._calls:
                    self._flush(call, None)
        data = self._h2.data_to_send()
        if self._tracer is not None and data:
            self._trace_frames(self._scan_out.feed(data), "frame_out")
        return data

    def connection_lost(self) -> list[Event]:
        """The transport closed: end every open call with UNAVAILABLE.

        Returns one :class:`CallEnded` per call that was still open, so the
        driver can fail them all through the same path as any other end.
        """
        self._closed = True
        if self._tracer is not None:
            self._trace("connection_end", 0, open_calls=len(self._calls))
        events: list[Event] = []
        status = Status(code=StatusCode.UNAVAILABLE, message="connection closed")
        for call in list(self._calls.values()):
            self._forget(call)
            events.append(ended_locally(call.stream_id, status))
        return events

    # ------------------------------------------------------------ call API

    def send_message(
        self, stream_id: int, payload: bytes, *, compress_message: bool = True
    ) -> None:
        """Frame ``payload`` as one gRPC message and send as much as windows allow.

        The message is compressed when the call's send encoding is not
        ``identity`` and ``compress_message`` is true. What does not fit the
        flow-control windows stays queued: while :meth:`queued_bytes` is
        non-zero the driver should wait for :class:`WindowOpened` before
        sending more. Raises :class:`RpcError` (RESOURCE_EXHAUSTED) for a
        message over ``max_send_message_size``, and :class:`LocalProtocolError`
        if the call cannot send (ended, reset, or never started).
        """
        call = self._call_for_send(stream_id)
        if call.send_state is CallState.IDLE:
            self._send_default_headers(call)
        if call.send_state is not CallState.OPEN:
            call.send_state = _advance(call.send_state, CallAction.MESSAGE, stream_id, "send")
        compressed = compress_message and call.send_encoding != IDENTITY
        if compressed:
            payload = compress(call.send_encoding, payload)
        limit = self.config.max_send_message_size
        if limit is not None and len(payload) > limit:
            raise RpcError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"trying to send message larger than max ({len(payload)} vs. {limit})",
            )
        call.messages_sent += 1
        if self._tracer is not None:
            self._trace(
                "message_out",
                stream_id,
                seq=call.messages_sent,
                length=len(payload),
                compressed=compressed,
                payload=payload,
                **self._flow(call),
            )
        if len(payload) < LARGE_MESSAGE:
            framed = frame_message(payload, compressed)
            call.queue.append(memoryview(framed))
            call.queued += len(framed)
        else:
            # A large message is not copied into a framed buffer: its prefix
            # and the payload itself are queued, and DATA frames are cut from
            # them (only the first frame, prefix + head, is joined).
            if type(payload) is not bytes:
                payload = bytes(payload)  # it must not change while queued
            call.queue.append(memoryview(encode_prefix(len(payload), compressed)))
            call.queue.append(memoryview(payload))
            call.queued += PREFIX_LENGTH + len(payload)
        if call.queued >= COALESCE_LIMIT or call.stream_id in self._blocked:
            self._flush(call, None)
        else:
            # Small messages wait for data_to_send(), so that a burst of them
            # shares DATA frames instead of costing one frame (and one trip
            # through h2) each.
            self._unflushed[call.stream_id] = call

    def consume(self, stream_id: int, wire_length: int) -> bool:
        """The application took a message of ``wire_length`` bytes: return its credit.

        Pass :attr:`MessageReceived.wire_length`. Credit is batched: a
        WINDOW_UPDATE goes out once enough has been consumed. Consuming on a
        call that has ended is a no-op (its credit was returned when it ended).

        Returns True when a WINDOW_UPDATE was queued, i.e. when the driver has
        something to write; most calls return False and need no write.
        """
        call = self._calls.get(stream_id)
        if call is None:
            return False
        if call.credit.consumed + wire_length > call.credit.completed:
            # Granting bytes never received would hand the peer window we do
            # not have, and in the end overflow it (RFC 9113 §6.9.1).
            raise LocalProtocolError(
                f"consume of {wire_length} bytes on stream {stream_id} exceeds the "
                f"{call.credit.completed - call.credit.consumed} bytes of received messages"
            )
        call.credit.consumed += wire_length
        if self._tracer is not None:
            self._trace("consume", stream_id, length=wire_length, **self._flow(call))
        return self._credit(call)

    def reset(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Abort a call with RST_STREAM (CANCEL by default); forget it.

        A no-op for a call that already ended. No event follows: the caller
        knows the call is over.
        """
        call = self._calls.get(stream_id)
        if call is None:
            return
        self._reset_stream(stream_id, error_code)
        self._forget(call)
        if self._tracer is not None:
            self._trace("call_end", stream_id, reset=error_code)

    @property
    def wants_write(self) -> bool:
        """True when :meth:`data_to_send` has something to return.

        Lets a driver skip waking its writer after a read that produced
        nothing to answer (most reads of a busy stream).
        """
        return bool(self._unflushed) or bool(self._h2._data_to_send)

    def queued_bytes(self, stream_id: int) -> int:
        """Bytes of this call not yet in DATA frames (0 when unknown).

        Small messages wait for :meth:`data_to_send` to share frames; the rest
        waits for flow-control window (see :meth:`is_blocked`).
        """
        call = self._calls.get(stream_id)
        return call.queued if call is not None else 0

    def is_blocked(self, stream_id: int) -> bool:
        """True while this call has data waiting for the peer's window.

        A driver parks a sender while this is true and wakes it on
        :class:`WindowOpened`.
        """
        return stream_id in self._blocked

    def is_open(self, stream_id: int) -> bool:
        """True while the call on ``stream_id`` has not ended."""
        return stream_id in self._calls

    # ------------------------------------------------------ connection API

    def ping(self, data: bytes) -> None:
        """Send a PING with 8 bytes of opaque ``data``; a PingAcknowledged follows."""
        if len(data) != 8:
            raise LocalProtocolError(f"PING data must be 8 bytes, got {len(data)}")
        self._h2.ping(data)

    def close(
        self, error_code: int = 0, debug_data: bytes = b"", last_stream_id: int | None = None
    ) -> None:
        """Send GOAWAY; no new calls are accepted or started afterwards.

        ``last_stream_id`` defaults to the highest stream the peer opened.
        Calls already running may finish; the driver closes the transport
        when it is done with them.
        """
        if last_stream_id is None:
            last_stream_id = self._h2.highest_inbound_stream_id
        self._closed = True
        self._h2.send_goaway(error_code, last_stream_id, debug_data)

    @property
    def closed(self) -> bool:
        """True once GOAWAY was sent or received, or the transport was lost."""
        return self._closed

    @property
    def open_calls(self) -> int:
        """Calls that have not ended."""
        return len(self._calls)

    def statistics(self) -> ConnectionStatistics:
        """A frozen snapshot of the connection's flow-control state."""
        return ConnectionStatistics(
            send_window=self._h2.outbound_flow_control_window,
            receive_window=self._h2.inbound_flow_control_window,
            queued_bytes=sum(call.queued for call in self._calls.values()),
            ungranted_bytes=self._conn_grant.pending,
            open_streams=len(self._calls),
            blocked_streams=len(self._blocked),
            max_frame_size=self._h2.max_outbound_frame_size,
        )

    def stream_statistics(self, stream_id: int) -> StreamStatistics:
        """A frozen snapshot of one call's flow-control state.

        Raises :class:`LocalProtocolError` for a call that has ended.
        """
        call = self._calls.get(stream_id)
        if call is None:
            raise LocalProtocolError(f"no open call on stream {stream_id}")
        send_window, receive_window = self._stream_windows(stream_id)
        return StreamStatistics(
            stream_id=stream_id,
            send_window=send_window,
            receive_window=receive_window,
            queued_bytes=call.queued,
            unconsumed_bytes=call.credit.unconsumed,
            ungranted_bytes=call.grant.pending,
            blocked=stream_id in self._blocked,
            messages_sent=call.messages_sent,
            messages_received=call.messages_received,
        )

    # ------------------------------------------------- inbound: h2 events

    def _on_data(self, event: h2.events.DataReceived, events: list[Event]) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.data is not None
        data = event.data
        flow_length = event.flow_controlled_length or 0
        if flow_length or event.stream_ended:
            self._empty_data_frames = 0
        else:
            # An empty DATA frame without END_STREAM carries nothing and costs
            # the receiver work: a stream of them is a known attack
            # (CVE-2019-9518). A few are legal; a long run is not.
            self._empty_data_frames += 1
        call = self._calls.get(stream_id)
        if call is None:
            # The call already ended on our side (we reset it, or sent the
            # response and forgot it): nobody will consume these bytes, so
            # their connection credit goes back at once.
            self._credit_connection(flow_length)
            return
        padding = flow_length - len(data)
        if padding:
            # Padding holds no message: credit it now, on both levels.
            self._credit_connection(padding)
            self._grant_stream(call, call.grant.add(padding))
        call.credit.received += len(data)
        failure: RemoteProtocolError | None = None
        try:
            raw_messages = call.decoder.feed(data)
        except RemoteProtocolError as exc:
            # Messages before the fault in the same DATA frame were sent in
            # good faith: deliver them, then end the call.
            raw_messages = call.decoder.completed_before_error
            failure = exc
        for raw in raw_messages:
            call.credit.completed += raw.wire_length
            payload = raw.data
            if raw.compressed:
                encoding = call.recv_encoding
                if encoding == IDENTITY:
                    self._fail_call(
                        call,
                        StatusCode.INTERNAL,
                        "compressed flag set on a message but no grpc-encoding was negotiated",
                        events,
                    )
                    return
                try:
                    payload = decompress(encoding, payload, self.config.max_receive_message_size)
                except RemoteProtocolError as exc:
                    self._fail_call(call, exc.code, str(exc), events)
                    return
            call.messages_received += 1
            if self._tracer is not None:
                self._trace(
                    "message_in",
                    stream_id,
                    seq=call.messages_received,
                    length=len(raw.data),
                    compressed=raw.compressed,
                    payload=payload,
                    **self._flow(call),
                )
            events.append(
                MessageReceived(
                    stream_id=stream_id,
                    data=payload,
                    wire_length=raw.wire_length,
                    compressed=raw.compressed,
                )
            )
        if failure is not None:
            self._fail_call(call, failure.code, str(failure), events)
            return
        self._credit(call, check_window=False)
        if call.credit.awaiting_partial:
            self._awaiting[stream_id] = call

    def _on_stream_ended(self, event: h2.events.StreamEnded, events: list[Event]) -> None:
        call = self._calls.get(event.stream_id or 0)
        if call is None:
            return
        try:
            call.decoder.close()
        except RemoteProtocolError as exc:
            self._fail_call(call, exc.code, str(exc), events)
            return
        self._remote_ended(call, events)

    def _on_stream_reset(self, event: h2.events.StreamReset, events: list[Event]) -> None:
        stream_id = event.stream_id or 0
        call = self._calls.get(stream_id)
        if call is None:
            return
        self._forget(call)
        error_code = int(event.error_code or 0)
        status = status_from_h2_reset(error_code)
        if self._tracer is not None:
            self._trace("call_end", stream_id, reset=error_code, code=status.code.name)
        events.append(StreamReset(stream_id=stream_id, error_code=error_code, status=status))

    def _on_window_updated(self, event: h2.events.WindowUpdated, events: list[Event]) -> None:
        stream_id = event.stream_id or 0
        if self._tracer is not None:
            self._trace("window_update", stream_id, increment=event.delta)
        if not self._blocked:
            return
        if stream_id == 0:
            self._flush_blocked(events)
        else:
            call = self._blocked.get(stream_id)
            if call is not None:
                self._flush(call, events)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged, events: list[Event]) -> None:
        changed = event.changed_settings
        codes = h2.settings.SettingCodes

        def new_value(code: h2.settings.SettingCodes) -> int | None:
            setting = changed.get(code)
            return None if setting is None else int(setting.new_value)

        events.append(
            SettingsChanged(
                max_concurrent_streams=new_value(codes.MAX_CONCURRENT_STREAMS),
                initial_window_size=new_value(codes.INITIAL_WINDOW_SIZE),
                max_frame_size=new_value(codes.MAX_FRAME_SIZE),
            )
        )
        # A larger initial window (RFC 9113 §6.9.2) opens every stream's window.
        if self._blocked and codes.INITIAL_WINDOW_SIZE in changed:
            self._flush_blocked(events)

    def _on_ping(self, event: h2.events.PingReceived, events: list[Event]) -> None:
        events.append(PingReceived(data=bytes(event.ping_data or b"")))

    def _on_ping_ack(self, event: h2.events.PingAckReceived, events: list[Event]) -> None:
        events.append(PingAcknowledged(data=bytes(event.ping_data or b"")))

    def _on_goaway(self, event: h2.events.ConnectionTerminated, events: list[Event]) -> None:
        self._closed = True
        events.append(
            ConnectionClosed(
                error_code=int(event.error_code or 0),
                last_stream_id=int(event.last_stream_id or 0),
                debug_data=bytes(event.additional_data or b""),
                remote=True,
            )
        )

    # ----------------------------------------------------- role hooks

    def _remote_ended(self, call: _Call, events: list[Event]) -> None:
        """The peer sent END_STREAM on a call we still know (role-specific)."""
        raise NotImplementedError

    def _send_default_headers(self, call: _Call) -> None:
        """Send headers before a first message when none were sent (role-specific)."""
        raise LocalProtocolError(f"stream {call.stream_id} has not sent its headers")

    def _fail_call(self, call: _Call, code: StatusCode, message: str, events: list[Event]) -> None:
        """The peer broke the protocol for this call: end it locally (role-specific)."""
        raise NotImplementedError

    # ------------------------------------------------ outbound flow control

    def _call_for_send(self, stream_id: int) -> _Call:
        call = self._calls.get(stream_id)
        if call is None:
            raise LocalProtocolError(f"no open call on stream {stream_id}: it ended or never began")
        if call.end_pending:
            raise LocalProtocolError(f"stream {stream_id} has already ended its sending side")
        return call

    def _flush(self, call: _Call, events: list[Event] | None) -> None:
        """Send as much of ``call``'s queue as the windows allow.

        ``events`` is the list to report :class:`WindowOpened` into when a
        blocked call drains; ``None`` when called from ``send_message`` (the
        caller learns the outcome from :meth:`queued_bytes`).
        """
        h2conn = self._h2
        stream_id = call.stream_id
        stream = h2conn.streams.get(stream_id)
        if stream is None or stream.closed:
            # The peer closed the stream in a later frame of the batch being
            # dispatched (h2 reads a whole batch before we see its first
            # event): nothing may be sent, and that frame's event ends the
            # call and drops the queue.
            return
        queue = call.queue
        max_frame = h2conn.max_outbound_frame_size
        while queue:
            window = h2conn.local_flow_control_window(stream_id)
            if window <= 0:
                break
            limit = min(window, max_frame)
            chunk = queue[0]
            if len(chunk) >= limit:
                data: bytes | memoryview = chunk[:limit]
                if len(chunk) == limit:
                    queue.popleft()
                else:
                    queue[0] = chunk[limit:]
            else:
                # Several small messages (and the head of the next) share
                # one DATA frame: one trip through h2 for the lot.
                queue.popleft()
                parts = [chunk]
                size = len(chunk)
                while queue and size < limit:
                    chunk = queue[0]
                    room = limit - size
                    if len(chunk) <= room:
                        parts.append(queue.popleft())
                        size += len(chunk)
                    else:
                        parts.append(chunk[:room])
                        queue[0] = chunk[room:]
                        size = limit
                data = parts[0] if len(parts) == 1 else b"".join(parts)
            call.queued -= len(data)
            # END_STREAM rides on the last DATA frame when no trailers follow.
            end_now = not queue and call.end_pending and call.end_headers is None
            h2conn.send_data(stream_id, data, end_stream=end_now)
            if end_now:
                call.end_pending = False
                self._sent_end(call)
        if queue:
            if stream_id not in self._blocked:
                self._blocked[stream_id] = call
                if self._tracer is not None:
                    self._trace("stall", stream_id, **self._flow(call))
            return
        was_blocked = self._blocked.pop(stream_id, None) is not None
        if call.end_pending:
            call.end_pending = False
            if call.end_headers is not None:
                h2conn.send_headers(stream_id, call.end_headers, end_stream=True)
            else:
                h2conn.end_stream(stream_id)
            self._sent_end(call)
        if was_blocked:
            if self._tracer is not None:
                self._trace("resume", stream_id)
            if events is not None:
                events.append(WindowOpened(stream_id=stream_id))

    def _flush_blocked(self, events: list[Event]) -> None:
        """Share newly opened connection window among stalled calls, in stall order."""
        for call in list(self._blocked.values()):
            if self._h2.outbound_flow_control_window <= 0:
                break
            self._flush(call, events)

    def _queue_end(self, call: _Call, headers: list[tuple[bytes, bytes]] | None) -> None:
        """End our side of ``call`` after its queued data: trailers, or bare END_STREAM."""
        call.end_pending = True
        call.end_headers = headers
        self._flush(call, None)

    def _sent_end(self, call: _Call) -> None:
        """END_STREAM went out on ``call`` (role hook; default: nothing more)."""

    # ------------------------------------------------- inbound flow control

    def _credit(self, call: _Call, *, check_window: bool = True) -> bool:
        """Grant back whatever the call's consumption made grantable.

        ``check_window`` false leaves a partial message uncredited whatever
        the windows say (the caller checks again once the windows are exact).
        Returns True when a WINDOW_UPDATE was queued.
        """
        # A caught-up reader's partial message is credited only once a window
        # runs low (see _flow): checked only in that case, off the fast path.
        window_low = check_window and call.credit.awaiting_partial and self._window_low(call)
        credit = call.credit.take(window_low=window_low)
        if not credit:
            return False
        granted = self._grant_stream(call, call.grant.add(credit))
        return self._credit_connection(credit) or granted

    def _window_low(self, call: _Call) -> bool:
        """True when the peer's window to us, on the stream or the connection, runs low."""
        if self._h2.inbound_flow_control_window < self._conn_grant.threshold:
            return True
        _, receive_window = self._stream_windows(call.stream_id)
        return receive_window < call.grant.threshold

    def _grant_stream(self, call: _Call, increment: int) -> bool:
        # A stream whose peer has ended its side needs no more window.
        if not increment or call.recv_state is CallState.CLOSED:
            return False
        self._h2.increment_flow_control_window(increment, call.stream_id)
        if self._tracer is not None:
            self._trace("window_grant", call.stream_id, increment=increment)
        return True

    def _credit_connection(self, credit: int) -> bool:
        increment = self._conn_grant.add(credit)
        if not increment:
            return False
        self._h2.increment_flow_control_window(increment)
        if self._tracer is not None:
            self._trace("window_grant", 0, increment=increment)
        return True

    def _forget(self, call: _Call) -> None:
        """Drop ``call``: its queue is discarded and its unconsumed credit returned."""
        self._calls.pop(call.stream_id, None)
        self._blocked.pop(call.stream_id, None)
        self._unflushed.pop(call.stream_id, None)
        call.queue.clear()
        call.queued = 0
        call.send_state = call.recv_state = CallState.CLOSED
        leftover = call.credit.release_all()
        if leftover:
            self._credit_connection(leftover)

    def _reset_stream(self, stream_id: int, error_code: int) -> None:
        try:
            self._h2.reset_stream(stream_id, error_code)
        except h2.exceptions.StreamClosedError:
            pass  # the peer closed it first; nothing left to reset

    def _connection_failed(self, error_code: int, message: str) -> list[Event]:
        self._closed = self._failed = True
        events = self.connection_lost()
        for index, event in enumerate(events):
            if isinstance(event, CallEnded):
                events[index] = CallEnded(
                    stream_id=event.stream_id,
                    status=Status(code=StatusCode.INTERNAL, message=message),
                    trailing_metadata=event.trailing_metadata,
                    locally_ended=True,
                )
        events.append(
            ConnectionClosed(
                error_code=error_code,
                last_stream_id=self._h2.highest_inbound_stream_id,
                debug_data=message.encode("utf-8", "replace"),
                remote=False,
            )
        )
        return events

    # ------------------------------------------------------------- tracing

    def _stream_windows(self, stream_id: int) -> tuple[int, int]:
        stream = self._h2.streams.get(stream_id)
        if stream is None:
            return 0, 0
        return stream.outbound_flow_control_window, stream.inbound_flow_control_window

    def _flow(self, call: _Call) -> dict[str, object]:
        """The flow-control fields attached to trace records about ``call``."""
        send_window, receive_window = self._stream_windows(call.stream_id)
        return {
            "send_window": send_window,
            "receive_window": receive_window,
            "conn_send_window": self._h2.outbound_flow_control_window,
            "conn_receive_window": self._h2.inbound_flow_control_window,
            "queued": call.queued,
            "unconsumed": call.credit.unconsumed,
            "ungranted": call.grant.pending,
        }

    def _trace(self, kind: str, stream_id: int, **fields: object) -> None:
        assert self._tracer is not None
        self._tracer.record(
            TraceRecord(
                kind=kind,
                stream_id=stream_id,
                fields=fields,
                connection=self._trace_id,
                role="client" if self._client_side else "server",
            )
        )

    def _trace_frames(self, frames: list[tuple[int, int, int, int, bytes]], kind: str) -> None:
        for frame_type, flags, stream_id, length, body in frames:
            self._trace(
                kind,
                stream_id,
                type=FRAME_TYPE_NAMES.get(frame_type, f"0x{frame_type:x}"),
                flags=flags,
                length=length,
                body=body,
            )
