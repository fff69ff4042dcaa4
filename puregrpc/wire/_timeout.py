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

import math

from ._errors import LocalProtocolError, RemoteProtocolError
from ._status import StatusCode

#: The largest value the 8 digits of ``TimeoutValue`` can carry.
MAX_TIMEOUT_VALUE = 99_999_999

_NS_PER_SECOND = 1_000_000_000

# Units from finest to coarsest, with their length in nanoseconds.
_UNITS_NS: tuple[tuple[str, int], ...] = (
    ("n", 1),
    ("u", 1_000),
    ("m", 1_000_000),
    ("S", _NS_PER_SECOND),
    ("M", 60 * _NS_PER_SECOND),
    ("H", 3600 * _NS_PER_SECOND),
)
# Unit byte (as bytes[-1] yields it) -> unit length in nanoseconds, for decoding.
_UNIT_NS_BY_BYTE: dict[int, int] = {ord(unit): ns for unit, ns in _UNITS_NS}

# The longest encodable timeout: 99,999,999 hours (~11,400 years). Checked
# before any arithmetic so infinities and huge floats never reach int().
_MAX_SECONDS = MAX_TIMEOUT_VALUE * 3600


def encode_timeout(seconds: float) -> str:
    """Encode a timeout in seconds as a ``grpc-timeout`` header value.

    The result is rounded *up* to the chosen unit, so the peer's deadline is
    never earlier than ours: decoding it gives back at least ``seconds``.

    A timeout of zero or less encodes as ``0n`` (already expired), which the
    peer treats as an immediate DEADLINE_EXCEEDED. NaN, infinity and timeouts
    too long for even hours (over ~11,000 years) raise
    :class:`LocalProtocolError`; to send no deadline, omit the header instead.
    """
    if seconds != seconds:  # NaN compares unequal to itself.
        raise LocalProtocolError("timeout must be a number, got NaN")
    if seconds <= 0:
        return "0n"
    if seconds > _MAX_SECONDS:
        raise LocalProtocolError(
            f"timeout of {seconds} s is too long for grpc-timeout (max {_MAX_SECONDS} s); "
            "omit the header to send no deadline"
        )
    # Ceil of the float product, not of the exact binary value of ``seconds``:
    # 0.001 is really 0.001000000000000000020816..., and an exact ceil would
    # send "1000001n" for a plain millisecond.
    nanos = math.ceil(seconds * 1e9)
    if nanos / _NS_PER_SECOND < seconds:
        # The product rounded below the true value (possible for large or
        # sub-nanosecond inputs): fall back to exact integer arithmetic so the
        # promise "decodes to at least ``seconds``" holds. (int / int is
        # correctly rounded, the same division decode_timeout performs.)
        num, den = seconds.as_integer_ratio()
        nanos = -(-num * _NS_PER_SECOND // den)
    for unit, unit_ns in _UNITS_NS:
        value = -(-nanos // unit_ns)  # ceil(nanos / unit_ns) in integer arithmetic
        if value <= MAX_TIMEOUT_VALUE:
            return f"{value}{unit}"
    # Unreachable: _MAX_SECONDS guarantees the hours value fits.
    raise AssertionError(f"no grpc-timeout unit fits {seconds} s")  # pragma: no cover


def decode_timeout(value: str | bytes) -> float:
    """Decode a ``grpc-timeout`` header value into seconds.

    Raises :class:`RemoteProtocolError` (status INTERNAL) for anything that is
    not 1-8 ASCII digits followed by one of ``HMSmun``; a server answers such a
    request with that status instead of running the handler.
    """
    if isinstance(value, str):
        if not value.isascii():
            # str.isdigit() accepts other scripts' digits ("\u0661"); the spec
            # wants ASCII, and encoding non-Latin-1 text would raise anyway.
            raise RemoteProtocolError(
                f"malformed grpc-timeout {value!r}: must be ASCII", StatusCode.INTERNAL
            )
        raw = value.encode("ascii")
    else:
        raw = value
    if not 2 <= len(raw) <= 9:
        raise RemoteProtocolError(
            f"malformed grpc-timeout {raw!r}: expected 1-8 digits and a unit", StatusCode.INTERNAL
        )
    digits = raw[:-1]
    unit_ns = _UNIT_NS_BY_BYTE.get(raw[-1])
    if unit_ns is None:
        raise RemoteProtocolError(
            f"malformed grpc-timeout {raw!r}: unit must be one of H M S m u n",
            StatusCode.INTERNAL,
        )
    # bytes.isdigit() is ASCII-only, so signs, spaces, dots and other
    # scripts' digits are all refused here.
    if not digits.isdigit():
        raise RemoteProtocolError(
            f"malformed grpc-timeout {raw!r}: value must be ASCII digits", StatusCode.INTERNAL
        )
    # Exact integer nanoseconds, then one correctly rounded int / int division:
    # multiplying by a float unit (1e-9 is inexact) could land below the value
    # encode_timeout rounded up to.
    return int(digits) * unit_ns / _NS_PER_SECOND
