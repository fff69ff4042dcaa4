"""Retries and hedging against real grpcio servers on 127.0.0.1 (three, round_robin).

The servers share one record of attempts: each call is named by its
request, and a server fails the first ``fail`` attempts of a call (with
UNAVAILABLE, or a pushback), whichever server they reach.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import BackoffPolicy, Channel, ChannelOptions, ConnectivityState
from puregrpc.runtime import Cardinality, raw_method

pytestmark = pytest.mark.interop

NAME = raw_method("/retry.Test/Name", Cardinality.UNARY_UNARY)
SLOW = raw_method("/retry.Test/Slow", Cardinality.UNARY_UNARY)
FAST = BackoffPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.1)


@dataclass
class Record:
    """What the servers saw, shared between their threads."""

    fail: int = 0
    pushback: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: call name -> [(server, grpc-previous-rpc-attempts, monotonic time)]
    attempts: dict[bytes, list[tuple[str, str | None, float]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    slow_calls: int = 0
    slow_cancelled: int = 0


class GrpcioBackend:
    def __init__(self, name: str, record: Record, slow: float = 0.0) -> None:
        self.name = name
        self.record = record
        self.slow = slow
        self._server: grpc.Server | None = None
        self.port = 0

    def _name(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        record = self.record
        metadata = dict(context.invocation_metadata())
        previous = metadata.get("grpc-previous-rpc-attempts")
        with record.lock:
            seen = record.attempts[request]
            seen.append((self.name, None if previous is None else str(previous), time.monotonic()))
            failing = len(seen) <= record.fail and not request.startswith(b"warm")
        if failing:
            if record.pushback is not None:
                context.set_trailing_metadata((("grpc-retry-pushback-ms", record.pushback),))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} fails attempt {len(seen)}")
        return self.name.encode()

    def _slow(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if self.slow:
            with self.record.lock:
                self.record.slow_calls += 1
        deadline = time.monotonic() + self.slow
        while time.monotonic() < deadline:
            if not context.is_active():  # the client reset the stream
                with self.record.lock:
                    self.record.slow_cancelled += 1
                return b""
            time.sleep(0.01)
        return self.name.encode()

    def start(self) -> None:
        handler = grpc.method_handlers_generic_handler(
            "retry.Test",
            {
                "Name": grpc.unary_unary_rpc_method_handler(self._name),
                "Slow": grpc.unary_unary_rpc_method_handler(self._slow),
            },
        )
        server = grpc.server(ThreadPoolExecutor(max_workers=8), handlers=[handler])
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self, grace: float = 0.5) -> None:
        if self._server is not None:
            self._server.stop(grace).wait(5)
            self._server = None


@contextmanager
def grpcio_backends(record: Record, *slow: float) -> Iterator[list[GrpcioBackend]]:
    backends = [GrpcioBackend(f"s{i}", record, delay) for i, delay in enumerate(slow)]
    try:
        for backend in backends:
            backend.start()
        yield backends
    finally:
        for backend in backends:
            backend.stop(0)


def target(backends: list[GrpcioBackend]) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{b.port}" for b in backends)


def config(policy: dict[str, Any] | None = None, hedging: dict[str, Any] | None = None) -> str:
    method: dict[str, Any] = {"name": [{"service": "retry.Test"}]}
    if policy is not None:
        method["retryPolicy"] = policy
    if hedging is not None:
        method["hedgingPolicy"] = hedging
    return json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method]})


RETRY_UNAVAILABLE = {
    "maxAttempts": 3,
    "initialBackoff": "0.01s",
    "maxBackoff": "0.05s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


async def all_ready(channel: Channel, servers: int = 3) -> None:
    """Until every server has answered a call (round_robin picks READY ones only)."""
    await channel.channel_ready()
    while channel.get_state() is not ConnectivityState.READY:
        await channel.wait_for_state_change(channel.get_state())
    answered: set[bytes] = set()
    for index in range(1000):
        if len(answered) == servers:
            return
        answered.add(await channel.unary_unary(NAME, b"warm-%d" % index, timeout=5))
        await trio.sleep(0.005)


async def test_three_grpcio_servers_failing_twice_each_call_succeeds_on_the_third() -> None:
    record = Record(fail=2)
    options = ChannelOptions(service_config=config(RETRY_UNAVAILABLE), backoff=FAST)
    with grpcio_backends(record, 0, 0, 0) as backends:
        async with Channel(target(backends), options=options) as channel:
            with trio.fail_after(20):
                await all_ready(channel)
                answers = [await channel.unary_unary(NAME, b"%d" % i, timeout=5) for i in range(30)]
    assert len(answers) == 30
    calls = {name: a for name, a in record.attempts.items() if not name.startswith(b"warm")}
    spread = collections.Counter(server for a in calls.values() for server, _, _ in a)
    print("90 attempts by server:", dict(sorted(spread.items())), "answers:", set(answers))
    for attempts in calls.values():
        assert [previous for _, previous, _ in attempts] == [None, "1", "2"]
        # Each attempt was a new pick: round_robin sent the three to three servers.
        assert len({server for server, _, _ in attempts}) == 3
    assert spread == {"s0": 30, "s1": 30, "s2": 30}


async def test_without_retries_the_grpcio_failure_is_the_outcome() -> None:
    record = Record(fail=2)
    options = ChannelOptions(service_config=config(), backoff=FAST)
    with grpcio_backends(record, 0) as backends:
        async with Channel(target(backends), options=options) as channel:
            with trio.fail_after(10), pytest.raises(RpcError) as caught:
                await channel.unary_unary(NAME, b"x", timeout=5)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert len(record.attempts[b"x"]) == 1


async def test_grpcio_pushback_delays_the_retry_and_a_negative_one_stops_it() -> None:
    record = Record(fail=1, pushback="300")
    options = ChannelOptions(service_config=config(RETRY_UNAVAILABLE), backoff=FAST)
    with grpcio_backends(record, 0) as backends:
        async with Channel(target(backends), options=options) as channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(NAME, b"wait", timeout=5) == b"s0"
                record.pushback = "-1"
                with pytest.raises(RpcError):
                    await channel.unary_unary(NAME, b"stop", timeout=5)
    first, second = record.attempts[b"wait"]
    assert second[2] - first[2] >= 0.3
    assert len(record.attempts[b"stop"]) == 1


async def test_hedging_over_grpcio_returns_the_fast_answer_and_cancels_the_slow() -> None:
    record = Record()
    hedging = {"maxAttempts": 2, "hedgingDelay": "0s"}
    options = ChannelOptions(service_config=config(hedging=hedging), backoff=FAST)
    with grpcio_backends(record, 5.0, 0.0) as backends:
        async with Channel(target(backends), options=options) as channel:
            with trio.fail_after(20):
                await all_ready(channel, servers=2)
                answers = [await channel.unary_unary(SLOW, b"", timeout=8) for _ in range(3)]
                # Each slow handler that ran sees its call reset; an attempt
                # reset before grpcio ran its handler never shows up at all.
                while record.slow_cancelled < record.slow_calls or not record.slow_calls:  # noqa: ASYNC110
                    await trio.sleep(0.02)
    assert answers == [b"s1"] * 3
    assert 1 <= record.slow_calls == record.slow_cancelled <= 3


@pytest.mark.parametrize("policy", ["none", "retry CANCELLED"])
async def test_a_grpcio_server_stopped_under_concurrent_calls(policy: str) -> None:
    # Calls that reach a grpcio server after its shutdown began are answered
    # CANCELLED (trailers-only): not provably unprocessed, so only a retry
    # policy that lists CANCELLED (for idempotent methods) redoes them.
    retry = {**RETRY_UNAVAILABLE, "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}
    options = ChannelOptions(
        service_config=config(retry if policy != "none" else None), backoff=FAST
    )
    record = Record()
    failures: list[RpcError] = []
    calls = 0
    for _ in range(3):
        with grpcio_backends(record, 0, 0, 0) as backends:
            async with Channel(target(backends), options=options) as channel:
                stopped = trio.Event()

                async def caller(stopped: trio.Event) -> None:
                    nonlocal calls
                    while not stopped.is_set():
                        calls += 1
                        try:
                            await channel.unary_unary(NAME, b"%d" % calls, timeout=5)
                        except RpcError as exc:
                            failures.append(exc)

                with trio.fail_after(30):
                    await all_ready(channel)
                    async with trio.open_nursery() as nursery:
                        for _ in range(8):
                            nursery.start_soon(caller, stopped)
                        await trio.sleep(0.2)
                        await trio.to_thread.run_sync(backends[1].stop)
                        stopped.set()
    print(
        f"policy {policy}: {calls} calls, {len(failures)} failed:",
        collections.Counter(exc.code.name for exc in failures),
    )
    assert all(exc.code is StatusCode.CANCELLED for exc in failures), failures
    if policy != "none":
        assert failures == []
