"""The ``grpc-timeout`` header codec (grpc/grpc doc/PROTOCOL-HTTP2.md).

On the wire a timeout is ``TimeoutValue TimeoutUnit``: a positive integer of at
most 8 ASCII digits followed by one unit letter::

    H  hours     M  minutes   S  seconds
    m  millis    u  micros    n  nanos

Encoding picks the *finest* unit whose value still fits in 8 digits, so short
deadlines keep their precision and long ones still fit; the value is rounded
*up* so a deadline is never sent shorter than the caller asked for.
"""

from __future__ import annotations

from ._errors import LocalProtocolError, RemoteProtocolError
from ._status import StatusCode

#: The largest value the 8 digits of ``TimeoutValue`` can carry.
MAX_TIMEOUT_VALUE = 99_999_999

# Units from finest to coarsest, with their length in nanoseconds.
_UNITS_NS: tuple[tuple[str, int], ...] = (
    ("n", 1),
    ("u", 1_000),
    ("m", 1_000_000),
    ("S", 1_000_000_000),
    ("M", 60 * 1_000_000_000),
    ("H", 3600 * 1_000_000_000),
)
_UNIT_SECONDS: dict[int, float] = {ord(unit): ns / 1e9 for unit, ns in _UNITS_NS}


def encode_timeout(seconds: float) -> str:
    """Encode a timeout in seconds as a ``grpc-timeout`` header value.

    A timeout of zero or less encodes as ``0n`` (already expired), which the
    peer treats as an immediate DEADLINE_EXCEEDED. A timeout too long for even
    hours (over ~11,000 years) raises :class:`LocalProtocolError`.
    """
    if seconds != seconds:  # NaN compares unequal to itself.
        raise LocalProtocolError("timeout must be a number, got NaN")
    if seconds <= 0:
        return "0n"
    nanos = max(1, round(seconds * 1e9))
    for unit, unit_ns in _UNITS_NS:
        value = -(-nanos // unit_ns)  # ceil(nanos / unit_ns) in integer arithmetic
        if value <= MAX_TIMEOUT_VALUE:
            return f"{value}{unit}"
    raise LocalProtocolError(f"timeout of {seconds} s is too long for grpc-timeout")


def decode_timeout(value: str | bytes) -> float:
    """Decode a ``grpc-timeout`` header value into seconds.

    Raises :class:`RemoteProtocolError` (status INTERNAL) for anything that is
    not 1-8 ASCII digits followed by one of ``HMSmun``; a server answers such a
    request with that status instead of running the handler.
    """
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if not 2 <= len(raw) <= 9:
        raise RemoteProtocolError(
            f"malformed grpc-timeout {raw!r}: expected 1-8 digits and a unit", StatusCode.INTERNAL
        )
    digits = raw[:-1]
    unit_seconds = _UNIT_SECONDS.get(raw[-1])
    if unit_seconds is None:
        raise RemoteProtocolError(
            f"malformed grpc-timeout {raw!r}: unit must be one of H M S m u n",
            StatusCode.INTERNAL,
        )
    if not digits.isdigit() or not digits.isascii():
        raise RemoteProtocolError(
            f"malformed grpc-timeout {raw!r}: value must be ASCII digits", StatusCode.INTERNAL
        )
    return int(digits) * unit_seconds
