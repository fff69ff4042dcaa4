"""Connection backoff, fail-fast and wait_for_ready (doc/connection-backoff.md)."""

from __future__ import annotations

import random
import socket

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import Backoff, BackoffPolicy, Channel, ChannelOptions
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

ECHO = raw_method("/reconnect.Test/Echo", Cardinality.UNARY_UNARY)
FAST = ChannelOptions(backoff=BackoffPolicy(initial_backoff=0.1, max_backoff=0.4))


async def echo(request: bytes, context: ServicerContext) -> bytes:
    return request


def free_port() -> int:
    """A loopback port with nothing listening on it (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_backoff_grows_by_the_multiplier_with_bounded_jitter_up_to_the_cap() -> None:
    policy = BackoffPolicy(initial_backoff=1.0, multiplier=1.6, jitter=0.2, max_backoff=5.0)
    backoff = Backoff(policy, random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    nominal = [min(1.0 * 1.6**n, 5.0) for n in range(8)]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * 0.8 <= delay <= expected * 1.2
    assert len(set(delays)) == len(delays), "jitter should make every delay different"
    backoff.reset()
    assert 0.8 <= backoff.next_delay() <= 1.2


def test_connect_timeout_is_at_least_the_minimum() -> None:
    backoff = Backoff(BackoffPolicy(initial_backoff=1.0, min_connect_timeout=20.0))
    assert backoff.connect_timeout() == 20.0


async def test_fail_fast_without_a_server_names_the_problem() -> None:
    async with Channel(f"127.0.0.1:{free_port()}", options=FAST) as channel:
        with trio.fail_after(5), pytest.raises(RpcError) as caught:
            await channel.unary_unary(ECHO, b"x")
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert "cannot connect" in caught.value.details


async def test_calls_during_backoff_fail_at_once_without_a_new_attempt() -> None:
    options = ChannelOptions(backoff=BackoffPolicy(initial_backoff=30, jitter=0))
    async with Channel(f"127.0.0.1:{free_port()}", options=options) as channel:
        with pytest.raises(RpcError):
            await channel.unary_unary(ECHO, b"x")
        started = trio.current_time()
        with trio.fail_after(1), pytest.raises(RpcError) as caught:
            await channel.unary_unary(ECHO, b"x")
        assert trio.current_time() - started < 0.5
    assert caught.value.code is StatusCode.UNAVAILABLE


async def test_wait_for_ready_waits_for_the_server_to_come_up() -> None:
    port = free_port()
    server = Server([MethodHandler(method=ECHO, func=echo)])
    async with (
        trio.open_nursery() as nursery,
        Channel(f"127.0.0.1:{port}", options=FAST) as channel,
    ):

        async def start_later() -> None:
            await trio.sleep(0.3)
            await nursery.start(server.serve, "127.0.0.1", port)

        nursery.start_soon(start_later)
        with trio.fail_after(10):
            answer = await channel.unary_unary(ECHO, b"ready", wait_for_ready=True, timeout=8)
        assert answer == b"ready"
        await server.stop(grace=1)


async def test_wait_for_ready_is_still_bounded_by_the_deadline() -> None:
    async with Channel(f"127.0.0.1:{free_port()}", options=FAST) as channel:
        started = trio.current_time()
        with trio.fail_after(5), pytest.raises(RpcError) as caught:
            await channel.unary_unary(ECHO, b"x", wait_for_ready=True, timeout=0.5)
        elapsed = trio.current_time() - started
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
    assert 0.4 < elapsed < 3
