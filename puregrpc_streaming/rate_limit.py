"""Per-caller publish rates: :class:`RateLimiter`, a token bucket per key, told the time.

Each key (a caller) has a bucket of ``burst`` tokens that refills at ``rate``
tokens a second; taking a token when the bucket is empty is refused with the
seconds until one is back, which Chat sends as ``RetryInfo``. The limiter
keeps at most ``max_keys`` buckets: beyond that, the least recently used is
forgotten (a forgotten caller starts again with a full bucket, so the bound
costs at most one burst per eviction, never memory).

A plain object with no clock of its own: every call is told ``now``
(seconds, any monotonic clock), so tests drive it without sleeping.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets by key: ``rate`` per second, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000) -> None:
        """Allow ``rate`` per second with bursts of ``burst``, for at most ``max_keys`` keys."""
        if not rate > 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate, burst and max_keys must be positive")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        #: key -> (tokens, when they were counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str, now: float) -> float:
        """Take a token for ``key``: 0.0 if granted, else the seconds until one is available."""
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - then) * self.rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        """Keys with a bucket."""
        return len(self._buckets)
