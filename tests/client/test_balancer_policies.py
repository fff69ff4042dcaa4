"""pick_first and round_robin as plain objects: fake subchannels, a clock passed in, no IO."""

from __future__ import annotations

import collections
import math
import random
from dataclasses import dataclass

import pytest

from puregrpc.client import (
    ConnectivityState,
    LoadBalancer,
    PickFirst,
    ResolutionSchedule,
    RoundRobin,
    aggregate_state,
    load_balancing_config,
)

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TRANSIENT_FAILURE = ConnectivityState.TRANSIENT_FAILURE
SHUTDOWN = ConnectivityState.SHUTDOWN


@dataclass(eq=False)
class FakeSubchannel:
    """A subchannel the test moves by hand; counts connection requests."""

    name: str
    state: ConnectivityState = IDLE
    retry_at: float = -math.inf
    last_error: str = ""
    requests: int = 0
    now: float = 0.0

    def request_connection(self) -> None:
        if self.state is IDLE or (self.state is TRANSIENT_FAILURE and self.now >= self.retry_at):
            self.requests += 1
            self.state = CONNECTING


def subchannels(count: int) -> list[FakeSubchannel]:
    return [FakeSubchannel(f"10.0.0.{i}:1") for i in range(1, count + 1)]


def move(
    balancer: LoadBalancer,
    sub: FakeSubchannel,
    state: ConnectivityState,
    now: float = 0.0,
    *,
    retry_at: float = -math.inf,
) -> None:
    sub.state = state
    if state is TRANSIENT_FAILURE:
        sub.last_error = "Connection refused"
        sub.retry_at = retry_at
    balancer.subchannel_changed(sub, now)


def at(subs: list[FakeSubchannel], now: float) -> float:
    for sub in subs:
        sub.now = now
    return now


# ------------------------------------------------------------ aggregate state


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([READY, TRANSIENT_FAILURE, CONNECTING], READY),
        ([TRANSIENT_FAILURE, CONNECTING, IDLE], CONNECTING),
        ([TRANSIENT_FAILURE, IDLE], IDLE),
        ([TRANSIENT_FAILURE, TRANSIENT_FAILURE], TRANSIENT_FAILURE),
        ([], TRANSIENT_FAILURE),
    ],
)
def test_channel_state_aggregates_subchannel_states(
    states: list[ConnectivityState], expected: ConnectivityState
) -> None:
    assert aggregate_state(states) is expected


# ----------------------------------------------------------------- pick_first


def test_pick_first_stays_idle_until_a_call_then_tries_the_first_address() -> None:
    subs = subchannels(3)
    balancer = PickFirst().build()
    balancer.update_subchannels(subs, 0.0)
    assert balancer.state is IDLE
    assert [sub.requests for sub in subs] == [0, 0, 0]
    picked = balancer.pick(0.0)
    assert picked.subchannel is None and picked.failure is None, "a call waits for the pass"
    assert balancer.state is CONNECTING
    assert [sub.requests for sub in subs] == [1, 0, 0]


def test_pick_first_moves_down_the_list_and_sticks_to_the_first_that_connects() -> None:
    subs = subchannels(3)
    balancer = PickFirst().build()
    balancer.update_subchannels(subs, 0.0)
    balancer.pick(0.0)
    move(balancer, subs[0], TRANSIENT_FAILURE, retry_at=1.0)
    assert [sub.requests for sub in subs] == [1, 1, 0]
    assert balancer.state is CONNECTING, "the pass goes on: no failure shown yet"
    move(balancer, subs[1], READY)
    assert balancer.state is READY
    assert {id(balancer.pick(float(t)).subchannel) for t in range(50)} == {id(subs[1])}
    assert [sub.requests for sub in subs] == [1, 1, 0], "no other address is tried"


def test_pick_first_fails_fast_calls_when_every_address_failed_until_a_backoff_ends() -> None:
    subs = subchannels(2)
    balancer = PickFirst().build()
    balancer.update_subchannels(subs, 0.0)
    balancer.pick(0.0)
    move(balancer, subs[0], TRANSIENT_FAILURE, retry_at=2.0)
    move(balancer, subs[1], TRANSIENT_FAILURE, retry_at=1.5)
    assert balancer.state is TRANSIENT_FAILURE
    picked = balancer.pick(at(subs, 1.0))
    assert picked.subchannel is None
    assert picked.failure == "10.0.0.1:1: Connection refused; 10.0.0.2:1: Connection refused"
    assert picked.retry_at == 1.5, "waiting calls look again when the first backoff ends"
    assert [sub.requests for sub in subs] == [1, 1], "no attempt during the backoff"
    # The first backoff over: a new pass, from the top, skipping the address still backing off.
    picked = balancer.pick(at(subs, 1.6))
    assert picked.failure is None and picked.subchannel is None
    assert balancer.state is CONNECTING
    assert [sub.requests for sub in subs] == [1, 2]


def test_pick_first_goes_idle_when_the_selected_connection_closes() -> None:
    subs = subchannels(2)
    balancer = PickFirst().build()
    balancer.update_subchannels(subs, 0.0)
    balancer.pick(0.0)
    move(balancer, subs[0], READY)
    move(balancer, subs[0], IDLE)  # GOAWAY
    assert balancer.state is IDLE
    balancer.pick(1.0)
    assert subs[0].requests == 2, "the next call starts a pass from the first address"


def test_pick_first_reports_a_dead_connection_as_transient_failure_and_retries_at_once() -> None:
    subs = subchannels(1)
    balancer = PickFirst().build()
    balancer.update_subchannels(subs, 0.0)
    balancer.pick(0.0)
    move(balancer, subs[0], READY)
    move(balancer, subs[0], TRANSIENT_FAILURE, 5.0, retry_at=-math.inf)  # keepalive: dead
    assert balancer.state is TRANSIENT_FAILURE
    assert balancer.pick(at(subs, 5.0)).failure is None
    assert subs[0].requests == 2


def test_pick_first_keeps_its_subchannel_across_updates_that_list_it() -> None:
    subs = subchannels(3)
    balancer = PickFirst().build()
    balancer.update_subchannels(subs[:2], 0.0)
    balancer.pick(0.0)
    move(balancer, subs[0], READY)
    balancer.update_subchannels([subs[2], subs[0]], 1.0)
    assert balancer.pick(1.0).subchannel is subs[0]
    # Its address removed: a new pass over the new list.
    balancer.update_subchannels([subs[2], subs[1]], 2.0)
    assert balancer.state is CONNECTING
    assert subs[2].requests == 1


def test_pick_first_asked_before_any_address_connects_once_they_come() -> None:
    subs = subchannels(2)
    balancer = PickFirst().build()
    balancer.exit_idle(0.0)
    assert balancer.pick(0.0).failure is None
    balancer.update_subchannels(subs, 0.1)
    assert [sub.requests for sub in subs] == [1, 0]


def test_pick_first_shuffles_each_new_list_only_when_asked() -> None:
    subs = subchannels(8)
    plain = PickFirst().build()
    plain.update_subchannels(subs, 0.0)
    assert list(plain.subchannels) == subs
    orders = set()
    rng = random.Random(62)
    for _ in range(5):
        shuffled = PickFirst(shuffle_address_list=True, rng=rng).build()
        shuffled.update_subchannels(subs, 0.0)
        assert sorted(sub.name for sub in shuffled.subchannels) == [sub.name for sub in subs]
        orders.add(tuple(sub.name for sub in shuffled.subchannels))
    assert len(orders) == 5


def test_pick_first_config_reads_the_service_config_form() -> None:
    config = load_balancing_config([{"pick_first": {"shuffleAddressList": True}}])
    assert config == PickFirst(shuffle_address_list=True)
    assert load_balancing_config("pick_first") == PickFirst()


# ---------------------------------------------------------------- round_robin


def ready_round_robin(count: int) -> tuple[LoadBalancer, list[FakeSubchannel]]:
    subs = subchannels(count)
    balancer = RoundRobin().build()
    balancer.update_subchannels(subs, 0.0)
    balancer.exit_idle(0.0)
    for sub in subs:
        move(balancer, sub, READY)
    return balancer, subs


def test_round_robin_connects_every_address_once_the_channel_is_used() -> None:
    subs = subchannels(3)
    balancer = RoundRobin().build()
    balancer.update_subchannels(subs, 0.0)
    assert [sub.requests for sub in subs] == [0, 0, 0]
    picked = balancer.pick(0.0)
    assert picked.subchannel is None and picked.failure is None
    assert [sub.requests for sub in subs] == [1, 1, 1]
    assert balancer.state is CONNECTING
    move(balancer, subs[2], READY)
    assert balancer.state is READY
    assert balancer.pick(0.0).subchannel is subs[2], "the first READY one takes calls at once"


def test_round_robin_spreads_picks_evenly_over_ready_subchannels() -> None:
    balancer, subs = ready_round_robin(3)
    picks = collections.Counter(balancer.pick(0.0).subchannel for _ in range(300))
    assert [picks[sub] for sub in subs] == [100, 100, 100]


def test_round_robin_skips_a_failed_subchannel_and_takes_it_back_after_its_backoff() -> None:
    balancer, subs = ready_round_robin(3)
    move(balancer, subs[1], IDLE, 1.0)  # GOAWAY: reconnected at once...
    assert subs[1].requests == 2
    move(balancer, subs[1], TRANSIENT_FAILURE, 1.0, retry_at=3.0)  # ...refused
    picks = collections.Counter(balancer.pick(at(subs, 2.0)).subchannel for _ in range(100))
    assert picks[subs[1]] == 0
    assert picks[subs[0]] == picks[subs[2]] == 50
    assert subs[1].requests == 2, "no attempt during the backoff"
    balancer.pick(at(subs, 3.0))
    assert subs[1].requests == 3, "the first pick after the backoff reconnects it"
    move(balancer, subs[1], READY, 3.1)
    picks = collections.Counter(balancer.pick(3.2).subchannel for _ in range(30))
    assert [picks[sub] for sub in subs] == [10, 10, 10]


def test_round_robin_fails_picks_only_when_every_subchannel_failed() -> None:
    subs = subchannels(2)
    balancer = RoundRobin().build()
    balancer.update_subchannels(subs, 0.0)
    balancer.pick(0.0)
    move(balancer, subs[0], TRANSIENT_FAILURE, retry_at=4.0)
    picked = balancer.pick(at(subs, 1.0))
    assert picked.failure is None and picked.subchannel is None, "one still connecting: wait"
    move(balancer, subs[1], TRANSIENT_FAILURE, retry_at=3.0)
    picked = balancer.pick(at(subs, 1.0))
    assert balancer.state is TRANSIENT_FAILURE
    assert picked.failure == "10.0.0.1:1: Connection refused; 10.0.0.2:1: Connection refused"
    assert picked.retry_at == 3.0


def test_unknown_policies_are_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ValueError, match=r"'fastest'.*pick_first, round_robin"):
        load_balancing_config("fastest")
    with pytest.raises(ValueError, match="no known load balancing policy"):
        load_balancing_config([{"grpclb": {}}])
    assert load_balancing_config([{"grpclb": {}}, {"round_robin": {}}]) == RoundRobin()


# ------------------------------------------------------ resolution schedule


def test_resolution_is_due_at_once_then_only_when_requested_and_rate_limited() -> None:
    schedule = ResolutionSchedule(min_interval=30.0)
    assert schedule.due() == -math.inf
    schedule.resolved(100.0, ok=True)
    assert schedule.due() == math.inf, "no polling without a request"
    schedule.request()
    assert schedule.due() == 130.0, "a request waits for the minimum interval"
    schedule.resolved(130.0, ok=True)
    schedule.request()
    schedule.request()
    assert schedule.due() == 160.0


def test_a_failed_resolution_is_retried_with_growing_backoff_whatever_the_requests() -> None:
    schedule = ResolutionSchedule(min_interval=30.0, rng=random.Random(1))
    schedule.resolved(0.0, ok=False)
    first = schedule.due()
    assert 0.8 <= first <= 1.2
    schedule.request()
    assert schedule.due() == first, "requests do not hurry a retry"
    schedule.resolved(first, ok=False)
    assert 1.6 * 0.8 <= schedule.due() - first <= 1.6 * 1.2
    schedule.resolved(10.0, ok=True)
    assert schedule.due() == math.inf
