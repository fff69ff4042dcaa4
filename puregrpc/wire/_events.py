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
    CallEnded             x       x       the call is over: its final status and why
    WindowOpened          x       x       a stream blocked on flow control drained
    PingAcknowledged      x       x       the peer answered one of our PINGs
    PingReceived          x       x       the peer pinged us (already answered)
    SettingsChanged       x       x       the peer's SETTINGS took effect
    ConnectionClosed      x       x       GOAWAY received, or the connection failed
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._metadata import Metadata
from ._status import Status

#: RFC 9113 §7: the peer refused the stream before processing it.
_REFUSED_STREAM = 0x7


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every event the connection state machine reports."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(Event):
    """Server side: a client opened a call with valid request headers.

    Requests the state machine refused itself (wrong content-type, bad path,
    unsupported encoding, malformed headers) never produce this event: they
    were answered already and show up as :class:`CallEnded` with
    ``cause=EndCause.REFUSED`` so the driver can log (and rate-limit) them.
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
    #: How the call travels: ``grpc`` (native), ``grpc-web`` or ``grpc-web-text``
    #: (PROTOCOL-WEB.md: unary and server-streaming calls only).
    protocol: str = "grpc"


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


class EndCause(enum.Enum):
    """Why a call ended: the one place a driver learns how a call's stream finished."""

    #: Client: the server's trailers, after its response headers.
    TRAILERS = "trailers"
    #: Client: a trailers-only response (one HEADERS frame with END_STREAM).
    TRAILERS_ONLY = "trailers-only"
    #: Either side: the peer sent RST_STREAM (its code is ``reset_code``).
    PEER_RESET = "peer reset"
    #: Server: a request refused before it became a call (malformed or
    #: non-gRPC headers, opened after our final GOAWAY). Client: the server
    #: never processed the call (opened above a GOAWAY's last stream id); it
    #: may be retried.
    REFUSED = "refused"
    #: Either side: the peer broke the protocol for this call (an oversized,
    #: truncated or badly compressed message, malformed response headers);
    #: the state machine ended it and told the peer.
    PROTOCOL_ERROR = "protocol error"
    #: Either side: the connection ended under the call (transport closed, a
    #: connection error, a GOAWAY with an error code).
    CONNECTION_LOST = "connection lost"
    #: Either side: the driver reset the call itself (cancel, deadline).
    LOCAL_CANCEL = "local cancel"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(Event):
    """The call is over: no more events will arrive for this stream.

    Built by the state machine only, for every way a call can end (see
    :class:`EndCause`): from the peer's trailers, a reset either way, a
    refusal, a protocol failure, or the connection going away. The one end
    that produces no event is the server's own ``end_call``: the driver that
    called it knows.
    """

    stream_id: int
    #: The final status of the call (received, or synthesized locally).
    status: Status
    #: Trailing metadata (empty unless the peer sent trailers).
    trailing_metadata: Metadata
    #: Why the call ended.
    cause: EndCause
    #: The HTTP/2 error code of the peer's RST_STREAM (PEER_RESET only).
    reset_code: int | None = None

    @property
    def trailers_only(self) -> bool:
        """True when the response had no separate headers (trailers-only)."""
        return self.cause is EndCause.TRAILERS_ONLY

    @property
    def completed(self) -> bool:
        """True when the peer finished the call cleanly with its trailers.

        Any other end cut the call short: a server handler is cancelled, and
        a stream of messages must not look complete to whoever reads it.
        """
        return self.cause is EndCause.TRAILERS or self.cause is EndCause.TRAILERS_ONLY

    @property
    def never_processed(self) -> bool:
        """True when the peer provably never processed the call (safe to retry).

        A REFUSED end, or RST_STREAM(REFUSED_STREAM) (RFC 9113 §8.7).
        """
        return self.cause is EndCause.REFUSED or self.reset_code == _REFUSED_STREAM


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowOpened(Event):
    """A stream that was blocked on flow control has sent all it had queued.

    A driver that parks a sender while ``connection.is_blocked(stream_id)``
    (``send_message`` returned True) resumes it on this event. Bytes that
    only wait for the next ``data_to_send`` (coalescing) never block.
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
