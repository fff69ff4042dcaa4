"""Frozen snapshots of flow-control state, for drivers, tests and tracing."""

from __future__ import annotations

from dataclasses import dataclass

from ._h2_connection import H2Connection
from ._lifecycle import Call


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatistics:
    """A snapshot of one call's flow-control state."""

    #: The HTTP/2 stream id.
    stream_id: int
    #: Bytes we may still send on this stream (its own window, ignoring the
    #: connection window).
    send_window: int
    #: Bytes the peer may still send us on this stream.
    receive_window: int
    #: Bytes of messages accepted by ``send_message`` but not yet on the wire
    #: because a window is closed.
    queued_bytes: int
    #: Bytes received that the application has not consumed yet.
    unconsumed_bytes: int
    #: Bytes consumed (or credited) but not yet granted back by WINDOW_UPDATE.
    ungranted_bytes: int
    #: True while the stream has queued bytes and a closed window.
    blocked: bool
    #: Messages handed to ``send_message`` so far.
    messages_sent: int
    #: Complete messages received so far.
    messages_received: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStatistics:
    """A snapshot of the whole connection's flow-control state."""

    #: Bytes we may still send on the connection (all streams together).
    send_window: int
    #: Bytes the peer may still send us on the connection.
    receive_window: int
    #: Sum of queued bytes over all streams.
    queued_bytes: int
    #: Bytes credited on the connection but not yet granted.
    ungranted_bytes: int
    #: Calls currently open.
    open_streams: int
    #: Streams that have queued data and a closed window.
    blocked_streams: int
    #: The peer's SETTINGS_MAX_FRAME_SIZE.
    max_frame_size: int


class ConnectionTotals:
    """What one connection has carried so far: channelz's socket data (gRFC A14).

    Counted by the state machine as it goes, read by anyone (the runtime
    stamps the times of changes; channelz reports them). A stream
    *succeeded* when it ended with END_STREAM on the side that counts: for a
    client, the server's END_STREAM arrived; for a server, its own went out
    (trailers sent, whatever their status). Every other end (a reset either
    way, the connection lost, a call that broke the protocol first) is a
    failure. Streams still open are neither.
    """

    __slots__ = (
        "messages_received",
        "messages_sent",
        "pings_sent",
        "streams_failed",
        "streams_started",
        "streams_succeeded",
    )

    def __init__(self) -> None:
        #: Calls started on the connection (by us on a client, by the peer on a server).
        self.streams_started = 0
        #: Streams that ended with END_STREAM on the side that counts.
        self.streams_succeeded = 0
        #: Streams that ended any other way.
        self.streams_failed = 0
        #: Messages handed to ``send_message``, over all calls.
        self.messages_sent = 0
        #: Complete messages received, over all calls.
        self.messages_received = 0
        #: PINGs we sent (keepalives, shutdown probes).
        self.pings_sent = 0

    def stream_ended(self, succeeded: bool) -> None:
        """Count the end of a stream that was started."""
        if succeeded:
            self.streams_succeeded += 1
        else:
            self.streams_failed += 1

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in sorted(self.__slots__))
        return f"ConnectionTotals({fields})"


def stream_windows(h2conn: H2Connection, stream_id: int) -> tuple[int, int]:
    """(send window, receive window) of one stream; (0, 0) once h2 forgot it."""
    stream = h2conn.streams.get(stream_id)
    if stream is None:
        return 0, 0
    return stream.outbound_flow_control_window, stream.inbound_flow_control_window


def flow_fields(h2conn: H2Connection, call: Call) -> dict[str, object]:
    """The flow-control fields attached to trace records about ``call``."""
    send_window, receive_window = stream_windows(h2conn, call.stream_id)
    return {
        "send_window": send_window,
        "receive_window": receive_window,
        "conn_send_window": h2conn.outbound_flow_control_window,
        "conn_receive_window": h2conn.inbound_flow_control_window,
        "queued": call.queued,
        "unconsumed": call.credit.unconsumed,
        "ungranted": call.grant.pending,
    }
