"""KeepalivePolicy on a fake clock: when a PING is due, and when the peer is dead."""

from __future__ import annotations

import math

import pytest

from puregrpc.runtime import KeepalivePolicy


def test_a_ping_is_due_after_the_quiet_interval_only() -> None:
    policy = KeepalivePolicy(10.0, 2.0)
    assert not policy.ping_due(now=109.9, last_read=100.0)
    assert policy.next_check(now=105.0, last_read=100.0) == 110.0
    assert policy.ping_due(now=110.0, last_read=100.0)


def test_reads_postpone_the_ping() -> None:
    policy = KeepalivePolicy(10.0, 2.0)
    assert not policy.ping_due(now=115.0, last_read=108.0)
    assert policy.next_check(now=115.0, last_read=108.0) == 118.0


def test_an_unanswered_ping_expires_after_the_timeout() -> None:
    policy = KeepalivePolicy(10.0, 2.0)
    policy.ping_sent(110.0)
    assert policy.awaiting_ack
    # One ping at a time, whatever the quiet.
    assert not policy.ping_due(now=111.0, last_read=100.0)
    assert policy.next_check(now=111.0, last_read=100.0) == 112.0
    assert not policy.expired(111.9)
    assert policy.expired(112.0)


def test_an_acknowledged_ping_means_the_peer_is_alive() -> None:
    policy = KeepalivePolicy(10.0, 2.0)
    policy.ping_sent(110.0)
    policy.ping_acknowledged()
    assert not policy.awaiting_ack
    assert not policy.expired(200.0)
    # The ACK was a read: the next ping is one interval after it.
    assert not policy.ping_due(now=115.0, last_read=110.5)
    assert policy.ping_due(now=120.5, last_read=110.5)


def test_keepalive_off_never_pings() -> None:
    policy = KeepalivePolicy(None, 20.0)
    assert not policy.ping_due(now=1e9, last_read=0.0)
    assert policy.next_check(now=5.0, last_read=0.0) == math.inf


@pytest.mark.parametrize(("interval", "timeout"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0)])
def test_nonsense_settings_are_refused(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="keepalive"):
        KeepalivePolicy(interval, timeout)
