"""Keepalive pings (gRFC A8, doc/keepalive.md): when to ping, and when a peer is dead.

A plain object told the time, so its decisions are testable without trio or
a socket. The driver owns the clock and the PING: it asks :meth:`ping_due`
with the time of the last read, sends the PING and reports
:meth:`ping_sent`, reports :meth:`ping_acknowledged` when the ACK comes, and
closes the connection once :meth:`expired` says the ACK is overdue.
:meth:`next_check` says when to look again.

Reads count as liveness: a connection that receives anything (data, an
ACK, a SETTINGS frame) in the interval needs no ping. A driver that also
counts bytes read *after* the PING as an answer (A8: the timeout is "the time
between sending a PING and not receiving any bytes") reports them with
:meth:`heard_from_peer`; the server only waits for the ACK.
"""

from __future__ import annotations

import math


class KeepalivePolicy:
    """Ping after ``interval`` quiet seconds; the peer is dead ``timeout`` after an unanswered ping.

    ``interval=None`` disables keepalive: nothing is ever due.
    """

    __slots__ = ("_sent_at", "interval", "timeout")

    def __init__(self, interval: float | None, timeout: float) -> None:
        if interval is not None and interval <= 0:
            raise ValueError(f"keepalive interval must be positive, got {interval}")
        if timeout <= 0:
            raise ValueError(f"keepalive timeout must be positive, got {timeout}")
        #: Seconds of quiet before a ping (None: never ping).
        self.interval = interval
        #: Seconds an unanswered ping may wait for its ACK.
        self.timeout = timeout
        self._sent_at: float | None = None

    @property
    def awaiting_ack(self) -> bool:
        """True while a keepalive PING is unanswered."""
        return self._sent_at is not None

    def ping_due(self, now: float, last_read: float) -> bool:
        """True when a PING should go out now (quiet for ``interval``, none outstanding)."""
        return (
            self.interval is not None and self._sent_at is None and now - last_read >= self.interval
        )

    def ping_sent(self, now: float) -> None:
        """The driver sent the keepalive PING at ``now``."""
        self._sent_at = now

    def ping_acknowledged(self) -> None:
        """The peer answered the keepalive PING: it is alive."""
        self._sent_at = None

    def heard_from_peer(self, at: float) -> None:
        """Bytes arrived at ``at``: if that is after the outstanding PING, the peer is alive."""
        if self._sent_at is not None and at > self._sent_at:
            self._sent_at = None

    def expired(self, now: float) -> bool:
        """True when the outstanding PING went unanswered for ``timeout``: the peer is dead."""
        return self._sent_at is not None and now - self._sent_at >= self.timeout

    def next_check(self, now: float, last_read: float) -> float:
        """The time of the next decision (``inf`` when keepalive is off)."""
        if self._sent_at is not None:
            return self._sent_at + self.timeout
        if self.interval is None:
            return math.inf
        return max(now, last_read + self.interval)
