"""Tests for the grpc-timeout header codec (puregrpc/wire/_timeout.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from puregrpc.wire import LocalProtocolError, RemoteProtocolError, StatusCode
from puregrpc.wire.codecs import MAX_TIMEOUT_VALUE, decode_timeout, encode_timeout

UNIT_SECONDS = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "S": 1.0, "M": 60.0, "H": 3600.0}
UNITS_FINEST_FIRST = "numSMH"
# 99,999,999 hours: the longest timeout the header can express.
MAX_SECONDS = MAX_TIMEOUT_VALUE * 3600


# -- encode_timeout -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1, "1000000u"),
        (1.0, "1000000u"),
        (0.001, "1000000n"),  # float noise in 0.001 must not add a nanosecond
        (100_000, "100000S"),
        (1e-9, "1n"),
        (0.099999999, "99999999n"),  # largest value in nanoseconds
        (0.1, "100000u"),  # 100,000,000 ns is 9 digits: step up to micros
        (99.999999, "99999999u"),
        (100.0, "100000m"),
        (99_999.999, "99999999m"),
        (99_999_999, "99999999S"),
        (100_000_000, "1666667M"),  # ceil(1e8 / 60)
        (6_000_000_000, "1666667H"),  # 100,000,000 minutes is 9 digits: hours
        (1e11, "27777778H"),
        (MAX_SECONDS, "99999999H"),
    ],
)
def test_encode_picks_finest_unit_that_fits(seconds: float, expected: str) -> None:
    assert encode_timeout(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1.0000000004, "1000001u"),  # 1,000,000,000.4 ns -> 1,000,000,001 ns -> 1,000,001 us
        (1.5e-9, "2n"),
        (0.4e-9, "1n"),  # anything positive is at least 1 ns
        (5e-324, "1n"),  # the smallest positive float
        (100_000.5, "100001S"),
        (100_000_000.5, "1666667M"),
        (60 * 99_999_999 + 1, "1666667H"),
        (17.622510000000002, "17622511u"),  # one ulp above 17.62251: still up
    ],
)
def test_encode_rounds_up(seconds: float, expected: str) -> None:
    assert encode_timeout(seconds) == expected
    assert decode_timeout(expected) >= seconds


@pytest.mark.parametrize("seconds", [0, 0.0, -0.0, -1, -1e-12, -math.inf])
def test_encode_zero_or_negative_is_already_expired(seconds: float) -> None:
    assert encode_timeout(seconds) == "0n"


def test_encode_nan_refused() -> None:
    with pytest.raises(LocalProtocolError, match="NaN"):
        encode_timeout(math.nan)


@pytest.mark.parametrize(
    "seconds", [math.inf, 1e300, MAX_SECONDS + 1, math.nextafter(MAX_SECONDS, math.inf)]
)
def test_encode_absurdly_long_refused(seconds: float) -> None:
    with pytest.raises(LocalProtocolError, match="too long for grpc-timeout"):
        encode_timeout(seconds)


# -- decode_timeout -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1H", 3600.0),
        ("2M", 120.0),
        ("3S", 3.0),
        ("4m", 0.004),
        ("5u", 5e-6),
        ("6n", 6e-9),
        ("0n", 0.0),
        ("00000001S", 1.0),  # leading zeros are still at most 8 digits
        ("99999999H", 99_999_999 * 3600.0),
        ("1000000n", 0.001),  # exactly the float 0.001, not 0.0010000000000000002
        ("3m", 0.003),
        (b"7S", 7.0),
        (b"250m", 0.25),
    ],
)
def test_decode_all_units(value: str | bytes, expected: float) -> None:
    assert decode_timeout(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "expected 1-8 digits and a unit"),
        ("1", "expected 1-8 digits and a unit"),
        ("S", "expected 1-8 digits and a unit"),
        ("123456789S", "expected 1-8 digits and a unit"),  # 9 digits
        ("1x", "unit must be one of H M S m u n"),
        ("1s", "unit must be one of H M S m u n"),  # units are case-sensitive
        ("-1S", "value must be ASCII digits"),
        ("+1S", "value must be ASCII digits"),
        ("1.5S", "value must be ASCII digits"),
        (" 1S", "value must be ASCII digits"),
        ("1 S", "value must be ASCII digits"),
        ("1S ", "unit must be one of H M S m u n"),
        ("\u0661S", "must be ASCII"),  # ARABIC-INDIC DIGIT ONE
        ("1\u00e9", "must be ASCII"),
        (b"\xd9\xa1S", "value must be ASCII digits"),  # the same digit as UTF-8 bytes
        (b"\xb9S", "value must be ASCII digits"),  # Latin-1 superscript one
    ],
)
def test_decode_malformed(value: str | bytes, problem: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_timeout(value)
    assert info.value.code == StatusCode.INTERNAL
    assert "malformed grpc-timeout" in str(info.value)
    assert problem in str(info.value)


# -- properties ---------------------------------------------------------------------


@given(st.floats(min_value=0, max_value=MAX_SECONDS, exclude_min=True))
@example(1.0000000004)
@example(5e-324)
@example(0.099999999)
@example(float(MAX_SECONDS))
@example(359_999_996_399.99994)
# The float product seconds * 1e9 rounds *down* to a whole number for these
# (one ulp above a decimal), so only exact arithmetic rounds them up correctly.
@example(17.622510000000002)
@example(43940.393000000004)
def test_round_trip_never_shortens_and_stays_within_one_unit(seconds: float) -> None:
    encoded = encode_timeout(seconds)
    value, unit = encoded[:-1], encoded[-1]
    assert value.isdigit()
    assert 1 <= len(value) <= 8
    decoded = decode_timeout(encoded)
    # Never sends a deadline shorter than asked for...
    assert decoded >= seconds
    # ...and overshoots by less than one unit (plus the 1 ns granularity and
    # the float rounding of ``seconds * 1e9``).
    assert decoded - seconds <= UNIT_SECONDS[unit] + 1e-9 + seconds * 1e-15
    # The unit is the finest that fits: one step finer would need 9 digits.
    if unit != "n":
        finer = UNIT_SECONDS[UNITS_FINEST_FIRST[UNITS_FINEST_FIRST.index(unit) - 1]]
        assert seconds > MAX_TIMEOUT_VALUE * finer * (1 - 1e-12) - 1e-9


@given(
    value=st.integers(min_value=0, max_value=MAX_TIMEOUT_VALUE),
    unit=st.sampled_from(UNITS_FINEST_FIRST),
    as_bytes=st.booleans(),
)
def test_decode_any_valid_value(value: int, unit: str, as_bytes: bool) -> None:
    text = f"{value}{unit}"
    decoded = decode_timeout(text.encode() if as_bytes else text)
    assert math.isclose(decoded, value * UNIT_SECONDS[unit], rel_tol=1e-15)
