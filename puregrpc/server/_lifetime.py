"""When a connection has lived long enough: max connection age and idleness.

A plain object told the time (gRFC A9, grpc-go's ``MaxConnectionAge`` and
``MaxConnectionIdle``). The server driver asks :meth:`ConnectionLifetime.due`
and starts a graceful shutdown when it answers; :meth:`next_check` says when
to ask again.
"""

from __future__ import annotations

import enum
import math


class LifetimeEnd(enum.Enum):
    """Why a connection's life is over."""

    #: Open longer than ``max_connection_age`` (jittered).
    AGE = "max connection age"
    #: No call for ``max_connection_idle``.
    IDLE = "max connection idle"


class ConnectionLifetime:
    """Age and idleness limits of one connection.

    ``jitter`` scales the age limit (0.9-1.1 in practice) so that connections
    opened together do not all reconnect at the same moment, as grpc-go does.
    """

    __slots__ = ("max_age", "max_idle", "opened_at")

    def __init__(
        self,
        *,
        opened_at: float,
        max_age: float | None,
        max_idle: float | None,
        jitter: float = 1.0,
    ) -> None:
        #: When the connection opened.
        self.opened_at = opened_at
        #: Seconds the connection may live (after jitter), or None.
        self.max_age = None if max_age is None else max_age * jitter
        #: Seconds without a call before the connection is closed, or None.
        self.max_idle = max_idle

    def due(self, now: float, *, open_calls: int, last_call_end: float) -> LifetimeEnd | None:
        """Whether the connection must now be shut down, and why."""
        if self.max_age is not None and now - self.opened_at >= self.max_age:
            return LifetimeEnd.AGE
        if self.max_idle is not None and not open_calls and now - last_call_end >= self.max_idle:
            return LifetimeEnd.IDLE
        return None

    def next_check(self, now: float, *, open_calls: int, last_call_end: float) -> float:
        """The time of the next decision (``inf`` with no limits)."""
        times = [math.inf]
        if self.max_age is not None:
            times.append(self.opened_at + self.max_age)
        if self.max_idle is not None:
            # While calls are open, the idle clock starts when the last one
            # ends, which may be any moment: look again a quarter period on.
            idle_from = now + self.max_idle / 4 if open_calls else last_call_end + self.max_idle
            times.append(idle_from)
        return min(times)
