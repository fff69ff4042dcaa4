"""The arithmetic of retries and hedging (gRFC A6), with no IO and no clock.

* :func:`retry_backoff`: the wait before the n-th retry, ``random(0,
  min(initialBackoff * backoffMultiplier**(n-1), maxBackoff))``.
* :func:`parse_pushback`: a server's ``grpc-retry-pushback-ms`` trailer:
  retry after so many milliseconds, or (negative, malformed) not at all.
* :class:`RetryThrottle`: the channel's token bucket. A counted failure takes
  a token, a call that succeeds puts back ``tokenRatio``; at or below half the
  bucket, retries and hedges stop until it refills. Counted in thousandths
  of a token, as gRPC does, so that ``0.1`` adds up exactly.
* :class:`RetryBuffer`: the bytes the channel's calls hold for replay, under
  a per-channel budget (one call over its own limit, or a channel out of
  budget, commits that call: it goes on, but is no longer retried).

The retry layer (:mod:`._retry_stream`) asks these and does the waiting.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from ._service_config import RetryPolicy, RetryThrottling

#: The most attempts a policy gets, whatever it asks for (A6 "Limits on
#: Retries and Hedges": a config from DNS must not fan calls out further).
MAX_ATTEMPTS = 5

#: The trailer a server sets to say when to retry (or not at all).
PUSHBACK_KEY = "grpc-retry-pushback-ms"

#: The request header saying how many attempts came before this one.
PREVIOUS_ATTEMPTS_KEY = "grpc-previous-rpc-attempts"

#: ``parse_pushback``: the server said not to retry.
STOP = -1.0


def retry_backoff(policy: RetryPolicy, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first), drawn from ``rng``."""
    ceiling = policy.initial_backoff * policy.backoff_multiplier ** (retry - 1)
    return rng.uniform(0.0, min(ceiling, policy.max_backoff))


def parse_pushback(values: Iterable[str | bytes]) -> float | None:
    """Seconds the server asks to wait, :data:`STOP` for "do not retry", ``None`` if unsaid.

    The value is a non-negative decimal integer of milliseconds; a negative
    or unparsable one (or several) means stop (A6 "Pushback").
    """
    found = [v.decode("ascii", "replace") if isinstance(v, bytes) else v for v in values]
    if not found:
        return None
    if len(found) > 1:
        return STOP
    text = found[0].strip()
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) >= 2**31:
        return STOP
    return int(text) / 1000.0


class RetryThrottle:
    """A channel's retry token bucket (``retryThrottling``); see the module documentation."""

    __slots__ = ("_max", "_ratio", "_tokens")

    def __init__(self, config: RetryThrottling) -> None:
        self._max = round(config.max_tokens * 1000)
        self._ratio = round(config.token_ratio * 1000)
        self._tokens = self._max

    @property
    def tokens(self) -> float:
        """The tokens in the bucket now."""
        return self._tokens / 1000

    @property
    def allows(self) -> bool:
        """Whether a retry or a hedge may be sent now (more than half the bucket is left)."""
        return self._tokens * 2 > self._max

    def failed(self) -> bool:
        """Count a failed attempt (a retryable or non-fatal code, or a "stop" pushback).

        Returns whether a retry may still follow it.
        """
        self._tokens = max(0, self._tokens - 1000)
        return self.allows

    def succeeded(self) -> None:
        """Count a call that ended OK."""
        self._tokens = min(self._max, self._tokens + self._ratio)


class RetryBuffer:
    """The channel's budget for requests held for replay, in bytes."""

    __slots__ = ("_used", "per_call", "total")

    def __init__(self, total: int, per_call: int) -> None:
        #: Bytes all calls together may hold.
        self.total = total
        #: Bytes one call may hold.
        self.per_call = per_call
        self._used = 0

    @property
    def used(self) -> int:
        """Bytes held now."""
        return self._used

    def reserve(self, held: int, more: int) -> bool:
        """Take ``more`` bytes for a call that holds ``held``; False (nothing taken) if over."""
        if held + more > self.per_call or self._used + more > self.total:
            return False
        self._used += more
        return True

    def release(self, nbytes: int) -> None:
        """A call let go of ``nbytes`` (it committed or ended)."""
        self._used = max(0, self._used - nbytes)
