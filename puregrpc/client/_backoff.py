"""Connection backoff, as grpc/grpc doc/connection-backoff.md describes it."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffPolicy:
    """Exponential backoff with jitter between connection attempts."""

    #: Wait after the first failure.
    initial_backoff: float = 1.0
    #: Growth factor per failure.
    multiplier: float = 1.6
    #: Relative randomisation of each wait (0.2 = +-20%).
    jitter: float = 0.2
    #: The longest wait.
    max_backoff: float = 120.0
    #: The least time one connection attempt is given.
    min_connect_timeout: float = 20.0


class Backoff:
    """The state of the backoff between attempts of one channel."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._current = policy.initial_backoff
        self._rng = rng if rng is not None else random.Random()

    def reset(self) -> None:
        """A connection succeeded: start over from the initial backoff."""
        self._current = self.policy.initial_backoff

    def next_delay(self) -> float:
        """The wait before the next attempt; grows the backoff for the one after."""
        policy = self.policy
        delay = self._current * (1 + self._rng.uniform(-policy.jitter, policy.jitter))
        self._current = min(self._current * policy.multiplier, policy.max_backoff)
        return delay

    def connect_timeout(self) -> float:
        """How long the coming attempt may take (max of backoff and the minimum)."""
        return max(self._current, self.policy.min_connect_timeout)
