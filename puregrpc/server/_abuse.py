"""Abuse limits of one client connection: rates of resets, control frames and pings.

A plain object told the time: each ``on_*`` method counts one event and
returns the reason to cut the client off (GOAWAY ENHANCE_YOUR_CALM), or
``None``. The server driver owns the clock and the GOAWAY.

* Rapid reset (CVE-2023-44487): RST_STREAMs from the client per second,
  and calls it breaks (which we reset or fail: the same work for us).
* Control-frame floods (PING, SETTINGS, refused requests; CVE-2019-9512,
  -9515): one shared budget per second.
* grpc-go's keepalive enforcement: a PING sooner than ``min_ping_interval``
  after the previous one, with none of our traffic in between, is a strike;
  so is any PING while no call is open, unless that is permitted; more than
  ``max_ping_strikes`` earn ``too_many_pings``. Pings that follow our
  traffic never count: grpc-go's clients send a bandwidth probe with nearly
  every DATA frame they receive. Each message we send earns the client one
  such free ping (at most a second's control budget saved up), so a client
  whose pings arrive bunched together - two reads with data, two pings, in
  one of our reads - is not mistaken for a flood.
"""

from __future__ import annotations

import math


class RateLimit:
    """Counts events per one-second bucket of the caller's clock."""

    __slots__ = ("_bucket", "_count", "limit")

    def __init__(self, limit: int) -> None:
        #: Events allowed per second.
        self.limit = limit
        self._bucket = -1
        self._count = 0

    def exceeded(self, now: float) -> bool:
        """Count one event at ``now``; True when this second's count passes the limit."""
        bucket = int(now)
        if bucket != self._bucket:
            self._bucket = bucket
            self._count = 0
        self._count += 1
        return self._count > self.limit


class AbuseGuard:
    """The limits one client connection is held to, told the time."""

    __slots__ = (
        "_control",
        "_last_ping",
        "_ping_credit",
        "_resets",
        "_strikes",
        "_traffic_at_last_ping",
        "_traffic_seen",
        "max_ping_strikes",
        "min_ping_interval",
        "permit_pings_without_calls",
    )

    def __init__(
        self,
        *,
        max_resets_per_second: int,
        max_control_frames_per_second: int,
        min_ping_interval: float,
        permit_pings_without_calls: bool,
        max_ping_strikes: int,
    ) -> None:
        self._resets = RateLimit(max_resets_per_second)
        self._control = RateLimit(max_control_frames_per_second)
        #: A ping sooner than this after the previous one (no traffic between) is a strike.
        self.min_ping_interval = min_ping_interval
        #: Whether pings while no call is open are allowed.
        self.permit_pings_without_calls = permit_pings_without_calls
        #: Strikes tolerated before ``too_many_pings``.
        self.max_ping_strikes = max_ping_strikes
        self._strikes = 0
        self._last_ping = -math.inf
        self._traffic_at_last_ping = -1
        #: Our traffic already turned into free pings, and the free pings left.
        self._traffic_seen = 0
        self._ping_credit = 0

    @property
    def ping_strikes(self) -> int:
        """Strikes counted since the last traffic."""
        return self._strikes

    def on_reset(self, now: float) -> str | None:
        """The client reset a stream."""
        return "too many stream resets (rapid reset)" if self._resets.exceeded(now) else None

    def on_stream_error(self, now: float) -> str | None:
        """A call of the client's broke the protocol (we reset it or failed it).

        It costs what a reset costs, and shares the reset budget: a client
        must not get around the rapid-reset limit by making us reset.
        """
        return "too many stream errors" if self._resets.exceeded(now) else None

    def on_refused(self, now: float) -> str | None:
        """A request was refused before it became a call."""
        return "too many refused requests" if self._control.exceeded(now) else None

    def on_settings(self, now: float) -> str | None:
        """The client sent a SETTINGS frame."""
        return "too many SETTINGS frames" if self._control.exceeded(now) else None

    def on_ping(self, now: float, *, traffic: int, open_calls: int) -> str | None:
        """The client sent a PING; ``traffic`` counts the messages we sent so far."""
        fresh = traffic - self._traffic_seen
        if fresh > 0:
            self._traffic_seen = traffic
            self._ping_credit = min(self._ping_credit + fresh, self._control.limit)
        if traffic != self._traffic_at_last_ping:
            self._strikes = 0
        if self._ping_credit > 0:
            self._ping_credit -= 1  # a ping that follows our traffic: never a flood
        elif self._control.exceeded(now):
            return "too many PING frames"
        if open_calls == 0 and not self.permit_pings_without_calls:
            strike = True
        else:
            strike = (
                now - self._last_ping < self.min_ping_interval
                and traffic == self._traffic_at_last_ping
            )
        self._last_ping = now
        self._traffic_at_last_ping = traffic
        if strike:
            self._strikes += 1
            if self._strikes > self.max_ping_strikes:
                return "too_many_pings"
        return None
