"""Events: what the peer did, as the connection state machine reports it.

``GrpcConnection.receive_data(bytes)`` returns a list of these. Each is a
frozen, slotted, keyword-only dataclass named in gRPC terms rather than HTTP/2
terms: the driver reacts to "a call started" or "a message arrived", never to
"a HEADERS frame". Events carry everything the driver needs; the driver never
reaches into h2.

Which side sees which event::

    event               server  client   meaning
    CallStarted           x               a client opened a call (request headers)
    ResponseHeaders               x       the server's initial metadata
    MessageReceived       x       x       one whole gRPC message (decompressed)
    HalfClosed            x               the client will send no more messages
    CallEnded             x       x       the call is over, with its final status
    StreamReset           x       x       the peer sent RST_STREAM
    WindowOpened          x       x       a stream blocked on flow control drained
    PingAcknowledged      x       x       the peer answered one of our PINGs
    PingReceived          x       x       the peer pinged us (already answered)
    SettingsChanged       x       x       the peer's SETTINGS took effect
    ConnectionClosed      x       x       GOAWAY received, or the connection failed
"""

from __future__ import annotations

from dataclasses import dataclass

from ._metadata import Metadata
from ._status import Status


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every event the connection state machine reports."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(Event):
    """Server side: a client opened a call with valid request headers.

    Requests the state machine refused itself (wrong content-type, bad path,
    unsupported encoding, malformed headers) never produce this event: they
    were answered already and show up as :class:`CallEnded` with
    ``locally_ended=True`` so the driver can log them.
    """

    #: The HTTP/2 stream carrying the call.
    stream_id: int
    #: ``/package.Service/Method``.
    path: str
    #: ``package.Service``.
    service: str
    #: ``Method``.
    method: str
    #: The client's custom metadata.
    metadata: Metadata
    #: Seconds until the deadline (from ``grpc-timeout``), ``None`` for none.
    #: A relative value: the driver turns it into a deadline on its own clock.
    timeout: float | None
    #: ``:authority`` of the request.
    authority: str
    #: ``user-agent`` of the client, if it sent one.
    user_agent: str | None
    #: The ``grpc-encoding`` of the client's messages.
    encoding: str
    #: The encodings the client accepts for responses.
    accept_encoding: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHeaders(Event):
    """Client side: the server sent its response headers (initial metadata)."""

    stream_id: int
    #: The server's initial metadata.
    metadata: Metadata
    #: The ``grpc-encoding`` of the server's messages.
    encoding: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(Event):
    """One complete gRPC message arrived on a call.

    The flow-control credit for it is *not* returned to the peer yet: the
    driver calls ``connection.consume(stream_id, wire_length)`` when the
    application has taken the message. Until then the bytes count against the
    peer's window, which is what makes a slow reader slow its sender down.
    """

    stream_id: int
    #: The message payload, already decompressed.
    data: bytes
    #: Bytes the message occupied on the wire (5-byte prefix + payload as
    #: sent, i.e. compressed size): the amount to pass to ``consume``.
    wire_length: int
    #: True when the message arrived compressed (its Compressed-Flag was set).
    compressed: bool = False

    def __repr__(self) -> str:
        return (
            f"MessageReceived(stream_id={self.stream_id}, {len(self.data)} bytes, "
            f"wire_length={self.wire_length})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HalfClosed(Event):
    """Server side: the client ended its request stream (END_STREAM)."""

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(Event):
    """The call is over: no more events will arrive for this stream.

    Client side, normally from the server's trailers (or a trailers-only
    response). Either side, with ``locally_ended=True``, when the state machine
    itself ended the call because the peer broke the protocol for it (an
    oversized or truncated message, bad compression, malformed headers); it
    already told the peer (trailers with the status, or RST_STREAM).
    """

    stream_id: int
    #: The final status of the call.
    status: Status
    #: Trailing metadata (empty when the call ended locally).
    trailing_metadata: Metadata
    #: True when the response had no separate headers (trailers-only).
    trailers_only: bool = False
    #: True when this state machine ended the call, not the peer.
    locally_ended: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset(Event):
    """The peer reset the stream (RST_STREAM): the call is over."""

    stream_id: int
    #: The HTTP/2 error code the peer sent (CANCEL = 8 for a cancelled call).
    error_code: int
    #: The status the call ends with (doc/PROTOCOL-HTTP2.md "Errors").
    status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowOpened(Event):
    """A stream that could not send everything queued has sent it all.

    A driver that waits after ``send_message`` while
    ``connection.queued_bytes(stream_id)`` is non-zero resumes on this event.
    """

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PingReceived(Event):
    """The peer sent a PING; h2 has already queued the ACK."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PingAcknowledged(Event):
    """The peer answered one of our PINGs."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsChanged(Event):
    """The peer's SETTINGS frame took effect.

    Only the values gRPC drivers care about are carried; ``None`` means the
    peer's SETTINGS frame did not change that value.
    """

    max_concurrent_streams: int | None
    initial_window_size: int | None
    max_frame_size: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The connection is closing or closed.

    From a GOAWAY the peer sent (``remote=True``): calls on streams above
    ``last_stream_id`` were never processed and may be retried elsewhere;
    calls at or below it may still finish. From a connection-level protocol
    error found locally (``remote=False``): we queued a GOAWAY; every call on
    the connection is over.
    """

    #: HTTP/2 error code (0 = NO_ERROR for a graceful shutdown).
    error_code: int
    #: The highest stream id the sender of the GOAWAY may have processed.
    last_stream_id: int
    #: Opaque debug data from the GOAWAY frame, or our own error text.
    debug_data: bytes
    #: True when the peer sent the GOAWAY, False when we closed.
    remote: bool
