"""The gRPC connection state machine shared by both roles, over h2.

Theory of operation
===================

A :class:`GrpcConnection` owns one h2 connection (:mod:`._h2_connection`)
and the gRPC state of every call on it. It does no I/O: the driver feeds it
the bytes it read (:meth:`receive_data`, which returns :mod:`events
<._events>`), calls its methods to act (start a call, send a message,
consume a message, end or reset a call), and writes out whatever
:meth:`data_to_send` returns, as **one** socket write per batch. It reads no
clock either: timeouts arrive as relative seconds and the driver owns the
deadline.

h2 keeps the HTTP/2 stream states and HPACK; this layer adds what gRPC needs
on top, each piece in its own module:

* the call lifecycle - both directions' states and the transition table
  (:mod:`._lifecycle`, whose :class:`Call` is the one record of a call);
* inbound flow control - credit goes back only as messages are consumed
  (:mod:`._inbound_flow`);
* outbound flow control - send queues, coalescing, blocked streams
  (:mod:`._outbound_flow`);
* message framing, compression, and the header, status and metadata codecs,
  including the validation h2 would do (switched off there for speed).

Every way a call can end produces exactly one :class:`CallEnded` event with
its :class:`EndCause`, built here (:meth:`_end`) and nowhere else; the one
exception is the server's own ``end_call``, whose caller knows. The role
subclasses (:mod:`._client_connection`, :mod:`._server_connection`) add the
call verbs of their side and decide what the peer's END_STREAM, a protocol
failure and the end of our own sending side mean for their role.
"""

from __future__ import annotations

from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ._compression import IDENTITY, compress, decompress
from ._config import RFC_INITIAL_WINDOW, ConnectionConfig
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    CallEnded,
    ConnectionClosed,
    EndCause,
    Event,
    MessageReceived,
    PingAcknowledged,
    PingReceived,
    SettingsChanged,
)
from ._h2_connection import H2Connection
from ._inbound_flow import InboundFlow
from ._lifecycle import Call, CallAction, CallState
from ._metadata import Metadata
from ._outbound_flow import OutboundFlow
from ._preface import PeerPreface
from ._statistics import (
    ConnectionStatistics,
    ConnectionTotals,
    StreamStatistics,
    flow_fields,
    stream_windows,
)
from ._status import Status, StatusCode
from ._status_codec import h2_error_name, status_from_h2_reset
from ._trace import (
    FRAME_TYPE_NAMES,
    NULL_TRACER,
    FrameScanner,
    Tracer,
    TraceRecord,
    next_connection_id,
)

#: Consecutive empty DATA frames (no payload, no END_STREAM) tolerated before
#: the connection is closed with ENHANCE_YOUR_CALM (CVE-2019-9518).
MAX_EMPTY_DATA_FRAMES = 100
#: The status of a call reset by the driver without saying why.
CANCELLED_LOCALLY = Status(code=StatusCode.CANCELLED, details="the call was cancelled")


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
        # cost per call in profiles (PERF-NOTES), and the header codecs validate what
        # gRPC needs itself, including what h2 would have rejected.
        self._h2 = H2Connection(
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
        # checked by the header codecs so that an oversized call fails alone.
        self._h2.decoder.max_header_list_size = max(65_536, 4 * cfg.max_header_list_size)
        self._h2.initiate_connection()
        if cfg.connection_window > RFC_INITIAL_WINDOW:
            self._h2.increment_flow_control_window(cfg.connection_window - RFC_INITIAL_WINDOW)
        #: Empty DATA frames received in a row (see MAX_EMPTY_DATA_FRAMES).
        self._empty_data_frames = 0
        #: Every call that has not ended, by stream id.
        self._calls: dict[int, Call] = {}
        #: What the connection has carried so far (read it; channelz reports it).
        self.totals = ConnectionTotals()
        self._closed = False
        #: True after a connection error: receive_data ignores further bytes.
        self._failed = False
        #: Checks the peer's preface and first frame; None once they passed.
        self._preface: PeerPreface | None = PeerPreface(client_preface=not self._client_side)
        self._tracer: Tracer | None = tracer if tracer.enabled else None
        self._trace_id = next_connection_id() if self._tracer is not None else 0
        self._scan_in = FrameScanner(expect_preface=not self._client_side)
        self._scan_out = FrameScanner(expect_preface=self._client_side)
        trace = self._trace if self._tracer is not None else None
        self._inbound = InboundFlow(self._h2, cfg, trace)
        self._outbound = OutboundFlow(self._h2, on_end_sent=self._sent_end, trace=trace)
        #: Frames a message onto its call's queue: the native framing; a
        #: subclass serving another body format for some calls (gRPC-Web's
        #: base64 text mode) replaces it. An attribute, not a method, so that
        #: the native path pays no extra call per message.
        self._queue_message: Callable[[Call, bytes | memoryview, bool], bool] = (
            self._outbound.queue_message
        )
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
        on the next read (:attr:`wants_write` says whether there are any).
        """
        if self._failed:
            # A connection error ended everything: later bytes mean nothing,
            # and h2 would only answer each batch with one more GOAWAY.
            return []
        if self._tracer is not None:
            self._trace_frames(self._scan_in.feed(data), "frame_in")
        if self._preface is not None:
            violation = self._preface.feed(data, self._h2.max_inbound_frame_size)
            if violation is not None:
                # No call was processed on a connection that never started
                # (RFC 9113 §3.4): they end UNAVAILABLE, as if it could not be made.
                error_code, problem = violation
                self._h2.send_goaway(error_code, 0, problem.encode())
                message = f"HTTP/2 protocol error from peer: {problem}"
                return self._connection_failed(error_code, message, StatusCode.UNAVAILABLE)
            if self._preface.done:
                self._preface = None
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
        if self._inbound.awaiting:
            self._inbound.settle(self._calls)
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
        if self._outbound.pending:
            self._outbound.flush_pending(self._calls)
        data = self._h2.data_to_send()
        if self._tracer is not None and data:
            self._trace_frames(self._scan_out.feed(data), "frame_out")
        return data

    @property
    def wants_write(self) -> bool:
        """True when :meth:`data_to_send` has something to return.

        Lets a driver skip waking its writer after a read that produced
        nothing to answer (most reads of a busy stream).
        """
        return bool(self._outbound.pending) or self._h2.has_data_to_send()

    def connection_lost(self, reason: str = "connection closed") -> list[Event]:
        """The transport closed: end every open call with UNAVAILABLE.

        Returns one :class:`CallEnded` (CONNECTION_LOST) per call that was
        still open, its status details saying ``reason``, so the driver fails
        them all through the same path as any other end.
        """
        if self._preface is not None and self._calls:
            reason = f"{reason}: {self._preface.unfinished()}"
        self._failed = True  # nothing more is read or sent
        return self._end_all(Status(code=StatusCode.UNAVAILABLE, details=reason))

    # ------------------------------------------------------------ call API

    def send_message(
        self, stream_id: int, payload: bytes | memoryview, *, compress_message: bool = True
    ) -> bool:
        """Frame ``payload`` as one gRPC message and send as much as windows allow.

        The message is compressed when the call's send encoding is not
        ``identity`` and ``compress_message`` is true. What does not fit the
        flow-control windows stays queued: the call is *blocked*, and this
        returns True. While :meth:`is_blocked` is true the driver should wait
        for :class:`WindowOpened` before sending more. A
        ``memoryview`` payload is copied when it is queued: the caller may
        reuse its buffer at once.
        Raises :class:`LocalProtocolError` if the call cannot send (ended,
        reset, or never started), or with code RESOURCE_EXHAUSTED for a
        message over ``max_send_message_size`` (nothing is sent then).
        """
        call = self._call_for_send(stream_id)
        if call.send_state is CallState.IDLE:
            self._send_default_headers(call)
        if call.send_state is not CallState.OPEN:
            call.advance_send(CallAction.MESSAGE)  # raises: not a state to send in
        compressed = compress_message and call.send_encoding != IDENTITY
        if compressed:
            payload = compress(call.send_encoding, payload)
        limit = self.config.max_send_message_size
        if limit is not None and len(payload) > limit:
            raise LocalProtocolError(
                f"trying to send message larger than max ({len(payload)} vs. {limit})",
                StatusCode.RESOURCE_EXHAUSTED,
            )
        call.messages_sent += 1
        self.totals.messages_sent += 1
        if self._tracer is not None:
            self._trace(
                "message_out",
                stream_id,
                seq=call.messages_sent,
                length=len(payload),
                compressed=compressed,
                payload=payload,
                **flow_fields(self._h2, call),
            )
        return self._queue_message(call, payload, compressed)

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
            self._trace("consume", stream_id, length=wire_length, **flow_fields(self._h2, call))
        return self._inbound.credit(call)

    def reset(
        self,
        stream_id: int,
        error_code: int = h2.errors.ErrorCodes.CANCEL,
        *,
        status: Status = CANCELLED_LOCALLY,
    ) -> CallEnded | None:
        """Abort a call with RST_STREAM (CANCEL by default) and return its end.

        ``status`` is what the call ends with on our side (a cancellation, a
        deadline). Returns the :class:`CallEnded` (LOCAL_CANCEL) to deliver to
        whoever waits on the call, or ``None`` when the call had already ended.
        """
        call = self._calls.get(stream_id)
        if call is None:
            return None
        self._reset_stream(stream_id, error_code)
        return self._end(call, EndCause.LOCAL_CANCEL, status, reset=error_code)

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
        return self._outbound.is_blocked(stream_id)

    def is_open(self, stream_id: int) -> bool:
        """True while the call on ``stream_id`` has not ended."""
        return stream_id in self._calls

    # ------------------------------------------------------ connection API

    def ping(self, data: bytes) -> None:
        """Send a PING with 8 bytes of opaque ``data``; a PingAcknowledged follows.

        A no-op after a connection error: nothing more goes out then.
        """
        if len(data) != 8:
            raise LocalProtocolError(f"PING data must be 8 bytes, got {len(data)}")
        if not self._failed:
            self._h2.ping(data)
            self.totals.pings_sent += 1

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
            ungranted_bytes=self._inbound.connection_grant.pending,
            open_streams=len(self._calls),
            blocked_streams=self._outbound.blocked_count,
            max_frame_size=self._h2.max_outbound_frame_size,
        )

    def stream_statistics(self, stream_id: int) -> StreamStatistics:
        """A frozen snapshot of one call's flow-control state.

        Raises :class:`LocalProtocolError` for a call that has ended.
        """
        call = self._calls.get(stream_id)
        if call is None:
            raise LocalProtocolError(f"no open call on stream {stream_id}")
        send_window, receive_window = stream_windows(self._h2, stream_id)
        return StreamStatistics(
            stream_id=stream_id,
            send_window=send_window,
            receive_window=receive_window,
            queued_bytes=call.queued,
            unconsumed_bytes=call.credit.unconsumed,
            ungranted_bytes=call.grant.pending,
            blocked=self._outbound.is_blocked(stream_id),
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
            self._inbound.credit_connection(flow_length)
            return
        padding = flow_length - len(data)
        if padding:
            self._inbound.padding(call, padding)
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
                    # compression.md: an unsupported encoding is UNIMPLEMENTED
                    # for a server, INTERNAL for a client.
                    code = exc.code
                    if code is StatusCode.UNIMPLEMENTED and self._client_side:
                        code = StatusCode.INTERNAL
                    self._fail_call(call, code, str(exc), events)
                    return
            call.messages_received += 1
            self.totals.messages_received += 1
            if self._tracer is not None:
                self._trace(
                    "message_in",
                    stream_id,
                    seq=call.messages_received,
                    length=len(raw.data),
                    compressed=raw.compressed,
                    payload=payload,
                    **flow_fields(self._h2, call),
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
        self._inbound.received(call)

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
        call = self._calls.get(event.stream_id or 0)
        if call is None:
            return
        error_code = int(event.error_code or 0)
        if not event.remote_reset:
            # h2 reset the stream itself: the peer sent a frame the stream's
            # state forbids (RFC 9113 §5.1, a stream error), and h2 has
            # already answered with RST_STREAM.
            status = Status(
                code=StatusCode.INTERNAL,
                details="the peer sent a frame this stream's state forbids; "
                f"we reset it with {h2_error_name(error_code)}",
            )
            events.append(self._end(call, EndCause.PROTOCOL_ERROR, status, reset=error_code))
            return
        status = status_from_h2_reset(error_code)
        events.append(self._end(call, EndCause.PEER_RESET, status, reset=error_code))

    def _on_window_updated(self, event: h2.events.WindowUpdated, events: list[Event]) -> None:
        stream_id = event.stream_id or 0
        if self._tracer is not None:
            self._trace("window_update", stream_id, increment=event.delta)
        self._outbound.window_updated(stream_id, events)

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
        if codes.INITIAL_WINDOW_SIZE in changed:
            self._outbound.flush_blocked(events)

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

    def _remote_ended(self, call: Call, events: list[Event]) -> None:
        """The peer sent END_STREAM on a call we still know (role-specific)."""
        raise NotImplementedError

    def _send_default_headers(self, call: Call) -> None:
        """Send headers before a first message when none were sent (role-specific)."""
        raise LocalProtocolError(f"stream {call.stream_id} has not sent its headers")

    def _fail_call(self, call: Call, code: StatusCode, message: str, events: list[Event]) -> None:
        """The peer broke the protocol for this call: end it locally (role-specific)."""
        raise NotImplementedError

    def _sent_end(self, call: Call) -> None:
        """END_STREAM went out on ``call`` (role hook; default: nothing more)."""

    # ------------------------------------------------------- call endings

    def _call_for_send(self, stream_id: int) -> Call:
        call = self._calls.get(stream_id)
        if call is None:
            raise LocalProtocolError(f"no open call on stream {stream_id}: it ended or never began")
        if call.send_state > CallState.OPEN:  # not Call.can_send: this runs per message
            raise LocalProtocolError(f"stream {stream_id} has already ended its sending side")
        return call

    def _end(
        self,
        call: Call,
        cause: EndCause,
        status: Status,
        trailing: Metadata | None = None,
        *,
        reset: int | None = None,
    ) -> CallEnded:
        """Forget ``call`` and build its one :class:`CallEnded` event.

        ``reset`` is the RST_STREAM error code involved, if any (the peer's,
        for PEER_RESET; ours, for LOCAL_CANCEL).
        """
        self._forget(call, succeeded=cause is EndCause.TRAILERS or cause is EndCause.TRAILERS_ONLY)
        if self._tracer is not None:
            fields: dict[str, object] = {"code": status.code.name, "message": status.details}
            if reset is not None:
                fields["reset"] = reset
            self._trace("call_end", call.stream_id, **fields)
        return CallEnded(
            stream_id=call.stream_id,
            status=status,
            trailing_metadata=trailing if trailing is not None else Metadata(),
            cause=cause,
            reset_code=reset if cause is EndCause.PEER_RESET else None,
        )

    def _end_all(self, status: Status) -> list[Event]:
        """The connection is gone: end every open call (CONNECTION_LOST) with ``status``."""
        self._closed = True
        if self._tracer is not None:
            self._trace("connection_end", 0, open_calls=len(self._calls))
        events: list[Event] = []
        for call in list(self._calls.values()):
            self._forget(call)
            events.append(
                CallEnded(
                    stream_id=call.stream_id,
                    status=status,
                    trailing_metadata=Metadata(),
                    cause=EndCause.CONNECTION_LOST,
                )
            )
        return events

    def _forget(self, call: Call, *, succeeded: bool = False) -> None:
        """Drop ``call``: its queue is discarded and its unconsumed credit returned.

        ``succeeded``: the stream ended with END_STREAM where channelz counts
        success (a client received the server's, a server sent its own).
        """
        if self._calls.pop(call.stream_id, None) is not None:
            self.totals.stream_ended(succeeded)
        self._outbound.drop(call)
        call.close()
        if not self._failed:  # after a connection error h2 sends nothing more
            self._inbound.release(call)

    def _reset_stream(self, stream_id: int, error_code: int) -> None:
        try:
            self._h2.reset_stream(stream_id, error_code)
        except h2.exceptions.StreamClosedError:
            pass  # the peer closed it first; nothing left to reset

    def _connection_failed(
        self, error_code: int, message: str, code: StatusCode = StatusCode.INTERNAL
    ) -> list[Event]:
        self._failed = True
        events = self._end_all(Status(code=code, details=message))
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
