"""Client keepalive (gRFC A8, grpc/grpc doc/keepalive.md): when to ping, when to give up.

Theory of operation. A client pings its server to find out that a connection
has died without telling anyone (a NAT that forgot it, a peer that vanished):
without traffic the OS never notices, and a call waiting for a response
waits forever. Three settings, named as in A8 and grpcio's channel options:

* ``keepalive_time``: after this many seconds without reading anything, send
  a PING (``None``, the default as in grpcio: never);
* ``keepalive_timeout``: if nothing at all is read within this many seconds
  of the PING, the connection is dead: close it, fail its calls UNAVAILABLE;
* ``keepalive_without_calls``: ping even while no call is open (off by
  default: A8's guard against clients DDoSing their servers).

Two objects, both plain and told the time (no trio, no clock reads):

* :class:`ChannelKeepalive` holds a channel's settings across its
  connections. A server that finds us pinging too often sends GOAWAY
  ENHANCE_YOUR_CALM "too_many_pings"; A8 then has the client double its
  keepalive time for every *new* connection of the channel
  (:meth:`ChannelKeepalive.too_many_pings`).
* :class:`ConnectionKeepalive` decides for one connection:
  :meth:`~ConnectionKeepalive.decide` says PING, CLOSE or NOTHING, and
  :meth:`~ConnectionKeepalive.next_check` says when to ask again. The
  subchannel's keepalive task acts on the answer and reports
  :meth:`~ConnectionKeepalive.ping_sent` and the ACK.

A8 details followed here: the quiet time is measured from the last byte
read, never from the last PING sent (a server whose enforcement matches our
setting exactly must not see us as abusive); any byte read after the PING
proves the peer alive, not only its ACK; and a call that starts on a
connection quiet for longer than ``keepalive_time`` pings at once, before
its HEADERS, so a dead connection is found within ``keepalive_timeout``.
A8 also asks clients to use at least 10 seconds; puregrpc does not clamp
(tests use fractions of a second), and servers enforce their own minimum
(grpcio's default: 5 minutes while no data is sent).
"""

from __future__ import annotations

import enum
import math

import h2.errors

from ..runtime import KeepalivePolicy

#: The 8 opaque bytes of our keepalive PINGs (ACKs of other PINGs are not ours).
KEEPALIVE_PING = b"pgrpc-ck"


class KeepaliveAction(enum.Enum):
    """What a connection's keepalive asks of its driver right now."""

    #: Nothing to do until :meth:`ConnectionKeepalive.next_check`.
    NOTHING = "nothing"
    #: Send a keepalive PING, then report :meth:`ConnectionKeepalive.ping_sent`.
    PING = "ping"
    #: The PING went unanswered for ``keepalive_timeout``: close the connection.
    CLOSE = "close"


def is_too_many_pings(error_code: int, debug_data: bytes) -> bool:
    """True for the GOAWAY a server sends a client that pings too often (A8)."""
    return error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM and debug_data == b"too_many_pings"


class ConnectionKeepalive:
    """The keepalive decisions of one client connection, told the time.

    ``time`` seconds without reads make a PING due while a call is open (or
    always, with ``without_calls``); ``timeout`` seconds without any read
    after it make the connection dead.
    """

    __slots__ = ("_policy", "without_calls")

    def __init__(self, time: float, timeout: float, *, without_calls: bool) -> None:
        self._policy = KeepalivePolicy(time, timeout)
        #: Whether PINGs go out while no call is open.
        self.without_calls = without_calls

    @property
    def time(self) -> float:
        """Seconds of quiet before a PING."""
        assert self._policy.interval is not None
        return self._policy.interval

    @property
    def timeout(self) -> float:
        """Seconds a PING may go unanswered before the connection is dead."""
        return self._policy.timeout

    @property
    def awaiting_ack(self) -> bool:
        """True while a keepalive PING is outstanding."""
        return self._policy.awaiting_ack

    def active(self, *, open_calls: int, closing: bool) -> bool:
        """Whether PINGs may go out: calls are open, or pings without calls are allowed.

        A connection that is ``closing`` (GOAWAY sent or received) takes no
        new calls: with none open, pinging it serves nothing.
        """
        return open_calls > 0 or (self.without_calls and not closing)

    def decide(
        self, now: float, *, last_read: float, open_calls: int, closing: bool
    ) -> KeepaliveAction:
        """PING, CLOSE or NOTHING, at ``now``, for a connection that last read at ``last_read``.

        An outstanding PING is watched whether or not calls are open (as
        grpc-go does): a connection found dead closes even when idle.
        """
        policy = self._policy
        policy.heard_from_peer(last_read)
        if policy.expired(now):
            return KeepaliveAction.CLOSE
        if self.active(open_calls=open_calls, closing=closing) and policy.ping_due(now, last_read):
            return KeepaliveAction.PING
        return KeepaliveAction.NOTHING

    def next_check(self, now: float, *, last_read: float, open_calls: int, closing: bool) -> float:
        """When :meth:`decide` may answer differently (``inf``: not until a call starts)."""
        if not self._policy.awaiting_ack and not self.active(
            open_calls=open_calls, closing=closing
        ):
            return math.inf
        return self._policy.next_check(now, last_read)

    def ping_sent(self, now: float) -> None:
        """The driver sent the keepalive PING at ``now``."""
        self._policy.ping_sent(now)

    def ping_acknowledged(self) -> None:
        """The server answered the keepalive PING."""
        self._policy.ping_acknowledged()


class ChannelKeepalive:
    """A channel's keepalive settings, kept across its connections.

    ``time=None`` turns keepalive off. Raises :class:`ValueError` for a
    ``time`` or ``timeout`` that is not positive.
    """

    __slots__ = ("time", "timeout", "without_calls")

    def __init__(self, time: float | None, timeout: float, *, without_calls: bool) -> None:
        if time is not None and not time > 0:
            raise ValueError(f"ChannelOptions.keepalive_time must be None or positive, got {time}")
        if not timeout > 0:
            raise ValueError(f"ChannelOptions.keepalive_timeout must be positive, got {timeout}")
        #: Seconds of quiet before a PING on new connections (None: keepalive off).
        self.time = time
        #: Seconds a PING may go unanswered.
        self.timeout = timeout
        #: Whether PINGs go out while no call is open.
        self.without_calls = without_calls

    def for_connection(self) -> ConnectionKeepalive | None:
        """The keepalive of a new connection (``None`` when keepalive is off)."""
        if self.time is None:
            return None
        return ConnectionKeepalive(self.time, self.timeout, without_calls=self.without_calls)

    def too_many_pings(self) -> float | None:
        """The server said "too_many_pings": double the time for new connections (A8).

        Returns the new time (``None`` when keepalive is off: nothing to
        double; the server objected to pings we did not send for keepalive).
        """
        if self.time is not None:
            self.time *= 2
        return self.time
