"""The server's per-connection policies on a fake clock: abuse limits, age and idleness."""

from __future__ import annotations

import math
from typing import Any

import pytest

from puregrpc.server import AbuseGuard, ConnectionLifetime, LifetimeEnd, RateLimit, ServerOptions


def guard(
    *,
    min_ping_interval: float = 300.0,
    permit_pings_without_calls: bool = False,
    max_ping_strikes: int = 2,
) -> AbuseGuard:
    """3 resets and 4 control frames a second; grpc-go's ping policy by default."""
    return AbuseGuard(
        max_resets_per_second=3,
        max_control_frames_per_second=4,
        min_ping_interval=min_ping_interval,
        permit_pings_without_calls=permit_pings_without_calls,
        max_ping_strikes=max_ping_strikes,
    )


def test_rate_limit_counts_per_second_of_the_given_clock() -> None:
    limit = RateLimit(2)
    assert [limit.exceeded(10.1), limit.exceeded(10.5), limit.exceeded(10.9)] == [
        False,
        False,
        True,
    ]
    # A new second, a new budget.
    assert not limit.exceeded(11.0)


def test_rapid_reset_is_cut_off_past_the_limit() -> None:
    policy = guard()
    assert [policy.on_reset(5.0) for _ in range(3)] == [None, None, None]
    assert policy.on_reset(5.5) == "too many stream resets (rapid reset)"
    assert policy.on_reset(6.0) is None


def test_control_frames_share_one_budget() -> None:
    policy = guard()
    assert policy.on_settings(1.0) is None
    assert policy.on_refused(1.1) is None
    assert policy.on_settings(1.2) is None
    assert policy.on_refused(1.3) is None
    assert policy.on_settings(1.4) == "too many SETTINGS frames"
    assert policy.on_refused(2.0) is None


def test_pings_without_calls_are_strikes_unless_permitted() -> None:
    policy = guard()
    verdicts = [policy.on_ping(float(t), traffic=0, open_calls=0) for t in range(3)]
    assert verdicts == [None, None, "too_many_pings"]
    permitted = guard(permit_pings_without_calls=True, min_ping_interval=1.0)
    assert all(permitted.on_ping(float(t) * 2, traffic=0, open_calls=0) is None for t in range(10))


def test_pings_sooner_than_the_interval_without_our_traffic_are_strikes() -> None:
    policy = guard(min_ping_interval=10.0)
    assert policy.on_ping(0.0, traffic=5, open_calls=1) is None  # the first: no strike
    assert policy.on_ping(1.0, traffic=5, open_calls=1) is None
    assert policy.ping_strikes == 1
    assert policy.on_ping(2.0, traffic=5, open_calls=1) is None
    assert policy.on_ping(3.0, traffic=5, open_calls=1) == "too_many_pings"


def test_our_traffic_between_pings_clears_the_strikes() -> None:
    # grpc-go's BDP probes: a PING after nearly every DATA frame we send.
    policy = guard(min_ping_interval=10.0)
    for step in range(50):
        assert policy.on_ping(step * 0.01, traffic=step, open_calls=1) is None
    assert policy.ping_strikes == 0


def test_pings_at_the_interval_are_fine() -> None:
    policy = guard(min_ping_interval=10.0)
    assert all(policy.on_ping(t * 10.0, traffic=0, open_calls=1) is None for t in range(20))
    assert policy.ping_strikes == 0


def test_a_ping_flood_without_traffic_spends_the_control_budget() -> None:
    policy = guard(min_ping_interval=0.0, max_ping_strikes=100)
    verdicts = [policy.on_ping(7.0, traffic=1, open_calls=1) for _ in range(6)]
    # One free ping for our one message, then the budget of 4 a second.
    assert verdicts == [None, None, None, None, None, "too many PING frames"]


def test_pings_bunched_after_our_messages_are_not_a_flood() -> None:
    # Two reads with data on the client, two probes, arriving in one of ours:
    # the second sees no new traffic, but our two messages paid for both.
    policy = guard(min_ping_interval=0.0, max_ping_strikes=100)
    for step in range(1, 200):
        assert policy.on_ping(3.0, traffic=2 * step, open_calls=1) is None
        assert policy.on_ping(3.0, traffic=2 * step, open_calls=1) is None


def test_free_pings_are_saved_up_only_to_a_seconds_budget() -> None:
    policy = guard(min_ping_interval=0.0, max_ping_strikes=1000)
    assert policy.on_ping(1.0, traffic=10_000, open_calls=1) is None  # 4 credits kept, 1 spent
    verdicts = [policy.on_ping(1.0, traffic=10_000, open_calls=1) for _ in range(8)]
    # 3 credits left, then the budget of 4, then a flood.
    assert verdicts == [None] * 7 + ["too many PING frames"]


def test_age_is_jittered_and_ends_the_connection() -> None:
    lifetime = ConnectionLifetime(opened_at=100.0, max_age=60.0, max_idle=None, jitter=1.1)
    assert lifetime.max_age == 66.0
    assert lifetime.due(165.9, open_calls=3, last_call_end=100.0) is None
    assert lifetime.due(166.0, open_calls=3, last_call_end=100.0) is LifetimeEnd.AGE
    assert lifetime.next_check(120.0, open_calls=3, last_call_end=100.0) == 166.0


def test_idleness_counts_only_without_open_calls() -> None:
    lifetime = ConnectionLifetime(opened_at=0.0, max_age=None, max_idle=30.0)
    assert lifetime.due(100.0, open_calls=1, last_call_end=10.0) is None
    assert lifetime.due(39.9, open_calls=0, last_call_end=10.0) is None
    assert lifetime.due(40.0, open_calls=0, last_call_end=10.0) is LifetimeEnd.IDLE
    assert lifetime.next_check(20.0, open_calls=0, last_call_end=10.0) == 40.0
    # With calls open, the clock starts when the last one ends: look again soon.
    assert lifetime.next_check(20.0, open_calls=2, last_call_end=10.0) == 27.5


def test_no_limits_never_end_a_connection() -> None:
    lifetime = ConnectionLifetime(opened_at=0.0, max_age=None, max_idle=None)
    assert lifetime.due(1e9, open_calls=0, last_call_end=0.0) is None
    assert lifetime.next_check(5.0, open_calls=0, last_call_end=0.0) == math.inf


def test_stream_errors_share_the_reset_budget() -> None:
    policy = guard()
    assert policy.on_reset(9.0) is None
    assert policy.on_stream_error(9.1) is None
    assert policy.on_stream_error(9.2) is None
    assert policy.on_stream_error(9.3) == "too many stream errors"


@pytest.mark.parametrize(
    "bad",
    [
        {"keepalive_time": 0.0},
        {"keepalive_timeout": 0.0},
        {"max_connection_idle": -1.0},
        {"max_connection_age": 0.0},
        {"max_resets_per_second": -1},
    ],
)
def test_bad_server_options_fail_where_they_are_made(bad: dict[str, Any]) -> None:
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        ServerOptions(**bad)
