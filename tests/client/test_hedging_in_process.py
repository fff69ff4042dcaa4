"""Hedging (gRFC A6) end to end: two puregrpc servers on 127.0.0.1, one slow, one fast."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import BackoffPolicy, Channel, ChannelOptions, ConnectivityState
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, RequestIterator, Server, ServicerContext

NAME = raw_method("/hedge.Test/Name", Cardinality.UNARY_UNARY)
JOIN = raw_method("/hedge.Test/Join", Cardinality.STREAM_UNARY)
FAST_BACKOFF = BackoffPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.1)


class Backend:
    """Answers with its name after ``delay`` seconds (or fails with ``code``); sees cancels."""

    def __init__(self, name: str, delay: float = 0.0, code: StatusCode | None = None) -> None:
        self.name = name
        self.delay = delay
        self.code = code
        self.calls = 0
        self.cancelled = 0
        self.previous: list[str | None] = []
        self.joined: list[list[bytes]] = []

    async def handle(self, request: bytes, context: ServicerContext) -> bytes:
        self.calls += 1
        previous = context.invocation_metadata().get("grpc-previous-rpc-attempts")
        self.previous.append(None if previous is None else str(previous))
        try:
            await trio.sleep(self.delay)
        except trio.Cancelled:
            self.cancelled += 1  # the client reset the stream: the handler is cancelled
            raise
        if self.code is not None:
            await context.abort(self.code, f"{self.name} fails")
        return self.name.encode()

    async def join(self, requests: RequestIterator[bytes], context: ServicerContext) -> bytes:
        received = [r async for r in requests]
        self.joined.append(received)
        await self.handle(b"", context)
        return b"+".join(received) + b" from " + self.name.encode()

    def handlers(self) -> list[MethodHandler]:
        return [
            MethodHandler(method=NAME, func=self.handle),
            MethodHandler(method=JOIN, func=self.join),
        ]


def hedging(max_attempts: int, delay: str, non_fatal: tuple[str, ...] = ()) -> ChannelOptions:
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": "hedge.Test"}],
                "hedgingPolicy": {
                    "maxAttempts": max_attempts,
                    "hedgingDelay": delay,
                    "nonFatalStatusCodes": list(non_fatal),
                },
            }
        ],
    }
    return ChannelOptions(service_config=json.dumps(config), backoff=FAST_BACKOFF)


async def serve_two(
    nursery: trio.Nursery, first: Backend, second: Backend
) -> tuple[str, list[Server]]:
    servers = [Server(b.handlers()) for b in (first, second)]
    ports = [await nursery.start(server.serve, "127.0.0.1", 0) for server in servers]
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports), servers


async def all_ready(channel: Channel) -> None:
    await channel.channel_ready()
    # round_robin: wait for both subchannels (a call goes only to READY ones).
    while channel.get_state() is not ConnectivityState.READY:
        await channel.wait_for_state_change(channel.get_state())
    await trio.sleep(0.1)


async def test_the_fast_answer_wins_and_the_slow_attempt_is_cancelled() -> None:
    slow, fast = Backend("slow", delay=5.0), Backend("fast")
    async with trio.open_nursery() as nursery:
        target, _ = await serve_two(nursery, slow, fast)
        async with Channel(target, options=hedging(2, "0s")) as channel:
            with trio.fail_after(10):
                await all_ready(channel)
                answers = [await channel.unary_unary(NAME, b"", timeout=8) for _ in range(4)]
                # The losers' RST_STREAM reaches the slow server.
                while slow.cancelled < slow.calls:  # noqa: ASYNC110  (a count, polled briefly)
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert answers == [b"fast"] * 4
    # "0s": both attempts go at once, one to each server (round_robin); every
    # slow handler that ran was cancelled (one reset before it ran never shows).
    assert fast.calls == 4
    assert 1 <= slow.calls == slow.cancelled <= 4
    assert set(slow.previous + fast.previous) <= {None, "1"}
    assert "1" in slow.previous + fast.previous


async def test_a_hedge_goes_out_only_after_the_hedging_delay() -> None:
    quick, other = Backend("quick", delay=0.0), Backend("other", delay=0.0)
    async with trio.open_nursery() as nursery:
        target, _ = await serve_two(nursery, quick, other)
        async with Channel(target, options=hedging(2, "2s")) as channel:
            with trio.fail_after(10):
                await all_ready(channel)
                answers = {(await channel.unary_unary(NAME, b"", timeout=8)) for _ in range(4)}
        nursery.cancel_scope.cancel()
    # Each call was answered well within 2 s: no call was sent twice.
    assert answers == {b"quick", b"other"}
    assert quick.calls + other.calls == 4


async def test_a_non_fatal_failure_sends_the_next_hedge_at_once() -> None:
    broken, good = Backend("broken", code=StatusCode.UNAVAILABLE), Backend("good", delay=0.0)
    async with trio.open_nursery() as nursery:
        target, _ = await serve_two(nursery, broken, good)
        options = hedging(3, "30s", non_fatal=("UNAVAILABLE",))
        async with Channel(target, options=options) as channel:
            with trio.fail_after(10):
                await all_ready(channel)
                answers = [await channel.unary_unary(NAME, b"", timeout=8) for _ in range(4)]
        nursery.cancel_scope.cancel()
    # Without the shortcut, a call that went to "broken" first would wait 30 s.
    assert answers == [b"good"] * 4
    assert broken.calls >= 1


async def test_a_fatal_failure_ends_the_hedged_call() -> None:
    broken, slow = Backend("broken", code=StatusCode.PERMISSION_DENIED), Backend("slow", delay=5)
    async with trio.open_nursery() as nursery:
        target, _ = await serve_two(nursery, broken, slow)
        async with Channel(target, options=hedging(2, "0s")) as channel:
            with trio.fail_after(10):
                await all_ready(channel)
                with pytest.raises(RpcError) as caught:
                    await channel.unary_unary(NAME, b"", timeout=8)
                while slow.cancelled < slow.calls:  # noqa: ASYNC110  (a count, polled briefly)
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert caught.value.code is StatusCode.PERMISSION_DENIED
    assert slow.calls == slow.cancelled <= 1


async def test_a_hedged_client_stream_sends_every_request_to_every_attempt() -> None:
    slow, fast = Backend("slow", delay=5.0), Backend("fast")
    async with trio.open_nursery() as nursery:
        target, _ = await serve_two(nursery, slow, fast)
        async with Channel(target, options=hedging(2, "0s")) as channel:
            with trio.fail_after(10):
                await all_ready(channel)
                answer = await channel.stream_unary(JOIN, [b"x", b"y", b"z"], timeout=8)
                while slow.cancelled < slow.calls:  # noqa: ASYNC110  (a count, polled briefly)
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert answer == b"x+y+z from fast"
    assert fast.joined == [[b"x", b"y", b"z"]]
    assert slow.joined in ([], [[b"x", b"y", b"z"]])
    assert slow.calls == slow.cancelled
