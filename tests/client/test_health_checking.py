"""Client-side health checking (gRFC A17): three puregrpc servers on 127.0.0.1, round_robin.

Each server answers ``/hc.Test/Name`` with its name and serves
``grpc.health.v1.Health``; the channel's service config asks for health
checks of the service ``hc.Test``.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import BackoffPolicy, Channel, ChannelOptions, ConnectivityState
from puregrpc.health import HealthService, ServingStatus
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

NAME = raw_method("/hc.Test/Name", Cardinality.UNARY_UNARY)
FAST = BackoffPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.1)


def checked(policy: str = "round_robin", service: str = "hc.Test") -> ChannelOptions:
    config = {
        "loadBalancingConfig": [{policy: {}}],
        "healthCheckConfig": {"serviceName": service},
    }
    return ChannelOptions(service_config=json.dumps(config), backoff=FAST)


def name_handler(name: str) -> MethodHandler:
    async def answer(request: bytes, context: ServicerContext) -> bytes:
        return name.encode()

    return MethodHandler(method=NAME, func=answer)


@asynccontextmanager
async def three_servers(
    *, with_health: bool = True
) -> AsyncIterator[tuple[str, dict[str, HealthService]]]:
    health = {name: HealthService() for name in "abc"}
    async with trio.open_nursery() as nursery:
        ports = []
        for name in "abc":
            services: list[object] = [name_handler(name)]
            if with_health:
                health[name].set("hc.Test", ServingStatus.SERVING)
                services.append(health[name])
            server = Server(services)  # type: ignore[arg-type]
            ports.append(await nursery.start(server.serve, "127.0.0.1", 0))
        yield "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports), health
        nursery.cancel_scope.cancel()


async def count(channel: Channel, calls: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(calls):
        seen[(await channel.unary_unary(NAME, b"", timeout=5, wait_for_ready=True)).decode()] += 1
    return seen


async def all_ready(channel: Channel, calls: int = 300) -> None:
    await channel.channel_ready()
    seen: collections.Counter[str] = collections.Counter()
    while len(seen) < 3 and calls:
        seen += await count(channel, 1)
        calls -= 1
        await trio.sleep(0.005)
    assert len(seen) == 3, seen


async def test_a_not_serving_backend_leaves_the_rotation_and_comes_back() -> None:
    async with three_servers() as (target, health), Channel(target, options=checked()) as channel:
        with trio.fail_after(30):
            await all_ready(channel)
            before = await count(channel, 90)
            health["b"].set("hc.Test", ServingStatus.NOT_SERVING)
            await trio.sleep(1.0)  # within a second, the watch has told the channel
            while_down = await count(channel, 90)
            health["b"].set("hc.Test", ServingStatus.SERVING)
            await trio.sleep(1.0)
            after = await count(channel, 90)
    print("health:", dict(before), dict(while_down), dict(after))
    assert before == {"a": 30, "b": 30, "c": 30}
    assert while_down == {"a": 45, "c": 45}
    assert after == {"a": 30, "b": 30, "c": 30}


async def test_when_no_backend_is_serving_fail_fast_calls_say_why() -> None:
    async with three_servers() as (target, health), Channel(target, options=checked()) as channel:
        with trio.fail_after(30):
            await all_ready(channel)
            for name in "abc":
                health[name].set("hc.Test", ServingStatus.NOT_SERVING)
            while channel.get_state() is ConnectivityState.READY:
                await channel.wait_for_state_change(ConnectivityState.READY)
            with pytest.raises(RpcError) as caught:
                await channel.unary_unary(NAME, b"", timeout=5)
            assert channel.get_state() is ConnectivityState.TRANSIENT_FAILURE
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert "health check: 'hc.Test' is NOT_SERVING" in caught.value.details


async def test_a_server_without_the_health_service_counts_as_healthy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="puregrpc.client")
    async with (
        three_servers(with_health=False) as (target, _),
        Channel(target, options=checked()) as channel,
    ):
        with trio.fail_after(30):
            await all_ready(channel)
            seen = await count(channel, 30)
    assert seen == {"a": 10, "b": 10, "c": 10}
    assert "does not implement /grpc.health.v1.Health/Watch" in caplog.text


async def test_pick_first_does_not_health_check() -> None:
    options = checked(policy="pick_first")
    async with three_servers() as (target, health), Channel(target, options=options) as channel:
        health["a"].set("hc.Test", ServingStatus.NOT_SERVING)
        with trio.fail_after(30):
            seen = await count(channel, 10)
        assert health["a"].watched == frozenset()  # nobody asked
    assert seen == {"a": 10}
