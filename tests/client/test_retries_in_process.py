"""Retries (gRFC A6) end to end, against puregrpc servers in this process.

A flaky service fails the first ``fail`` attempts of each call (a call is
named by its first request) with a chosen code, optionally with a pushback
trailer or after its response headers, and records every attempt: when it
arrived, its ``grpc-previous-rpc-attempts`` and the requests it read.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import (
    Channel,
    ChannelOptions,
    ClientCallDetails,
    ClientContinuation,
    ClientStream,
)
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, RequestIterator, ServicerContext
from puregrpc.testing import serve_in_memory
from puregrpc.wire import Metadata

UNARY = raw_method("/flaky.Test/Unary", Cardinality.UNARY_UNARY)
CLIENT_STREAM = raw_method("/flaky.Test/ClientStream", Cardinality.STREAM_UNARY)
SERVER_STREAM = raw_method("/flaky.Test/ServerStream", Cardinality.UNARY_STREAM)
BIDI = raw_method("/flaky.Test/Bidi", Cardinality.STREAM_STREAM)


@dataclass
class Attempt:
    at: float
    previous: str | None
    requests: list[bytes] = field(default_factory=list)


class Flaky:
    """Fails the first ``fail`` attempts of every call with ``code``."""

    def __init__(
        self,
        fail: int,
        code: StatusCode = StatusCode.UNAVAILABLE,
        *,
        pushback: str | None = None,
        after_headers: bool = False,
    ) -> None:
        self.fail = fail
        self.code = code
        self.pushback = pushback
        self.after_headers = after_headers
        self.attempts: dict[bytes, list[Attempt]] = defaultdict(list)

    async def _attempt(self, requests: list[bytes], context: ServicerContext) -> None:
        previous = context.invocation_metadata().get("grpc-previous-rpc-attempts")
        key = requests[0] if requests else b""
        seen = self.attempts[key]
        seen.append(Attempt(trio.current_time(), None if previous is None else str(previous)))
        seen[-1].requests = list(requests)
        if len(seen) <= self.fail:
            if self.after_headers:
                await context.send_initial_metadata(Metadata([("stage", "headers")]))
            if self.pushback is not None:
                context.set_trailing_metadata(Metadata([("grpc-retry-pushback-ms", self.pushback)]))
            await context.abort(self.code, f"attempt {len(seen)} fails")

    async def unary(self, request: bytes, context: ServicerContext) -> bytes:
        await self._attempt([request], context)
        return b"ok:" + request

    async def client_stream(
        self, requests: RequestIterator[bytes], context: ServicerContext
    ) -> bytes:
        received = [r async for r in requests]
        await self._attempt(received, context)
        return b",".join(received)

    async def server_stream(self, request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        await self._attempt([request], context)
        for index in range(3):
            yield b"%d" % index

    async def bidi(
        self, requests: RequestIterator[bytes], context: ServicerContext
    ) -> AsyncIterator[bytes]:
        received = [r async for r in requests]
        await self._attempt(received, context)
        for request in received:
            yield request.upper()

    def __puregrpc_handlers__(self) -> dict[str, MethodHandler]:
        return {
            UNARY.path: MethodHandler(method=UNARY, func=self.unary),
            CLIENT_STREAM.path: MethodHandler(method=CLIENT_STREAM, func=self.client_stream),
            SERVER_STREAM.path: MethodHandler(method=SERVER_STREAM, func=self.server_stream),
            BIDI.path: MethodHandler(method=BIDI, func=self.bidi),
        }


def retrying(
    max_attempts: int = 3,
    codes: tuple[str, ...] = ("UNAVAILABLE",),
    *,
    throttling: dict[str, float] | None = None,
    **options: Any,
) -> ChannelOptions:
    config: dict[str, Any] = {
        "methodConfig": [
            {
                "name": [{"service": "flaky.Test"}],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.05s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": list(codes),
                },
            }
        ]
    }
    if throttling is not None:
        config["retryThrottling"] = throttling
    return ChannelOptions(service_config=json.dumps(config), **options)


async def test_a_call_failing_twice_succeeds_on_the_third_attempt_with_retries() -> None:
    service = Flaky(fail=2)
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10):
            assert await channel.unary_unary(UNARY, b"a", timeout=5) == b"ok:a"
    attempts = service.attempts[b"a"]
    assert len(attempts) == 3
    # A6: the server sees how many attempts came before.
    assert [a.previous for a in attempts] == [None, "1", "2"]


async def test_without_a_retry_policy_the_first_failure_is_the_outcome() -> None:
    service = Flaky(fail=2)
    async with serve_in_memory(service) as served, served.channel() as channel:
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"a", timeout=5)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert caught.value.details == "attempt 1 fails"
    assert len(service.attempts[b"a"]) == 1


async def test_max_attempts_bounds_the_attempts() -> None:
    service = Flaky(fail=10)
    options = retrying(max_attempts=2)
    async with serve_in_memory(service) as served, served.channel(options=options) as channel:
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"a", timeout=5)
        assert caught.value.details == "attempt 2 fails"
        # The channel caps maxAttempts at 5, whatever the config says.
        with trio.fail_after(10), pytest.raises(RpcError):
            await channel.unary_unary(UNARY, b"b", timeout=5)
    assert len(service.attempts[b"a"]) == 2
    service2 = Flaky(fail=10)
    async with (
        serve_in_memory(service2) as served,
        served.channel(options=retrying(max_attempts=9)) as channel,
    ):
        with trio.fail_after(10), pytest.raises(RpcError):
            await channel.unary_unary(UNARY, b"c", timeout=5)
    assert len(service2.attempts[b"c"]) == 5


async def test_a_code_that_is_not_retryable_is_not_retried() -> None:
    service = Flaky(fail=1, code=StatusCode.INVALID_ARGUMENT)
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"a", timeout=5)
    assert caught.value.code is StatusCode.INVALID_ARGUMENT
    assert len(service.attempts[b"a"]) == 1


async def test_a_pushback_delays_the_next_attempt_at_least_that_long() -> None:
    service = Flaky(fail=1, pushback="300")
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10):
            assert await channel.unary_unary(UNARY, b"a", timeout=5) == b"ok:a"
    first, second = service.attempts[b"a"]
    assert second.at - first.at >= 0.3


@pytest.mark.parametrize("pushback", ["-1", "soon"])
async def test_a_negative_or_malformed_pushback_stops_retries(pushback: str) -> None:
    service = Flaky(fail=1, pushback=pushback)
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"a", timeout=5)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert caught.value.trailing_metadata.get("grpc-retry-pushback-ms") == pushback
    assert len(service.attempts[b"a"]) == 1


async def test_throttling_stops_retries_once_the_bucket_drains() -> None:
    service = Flaky(fail=100)
    # 4 tokens, threshold 2: a failed attempt takes one, retries need > 2.
    options = retrying(max_attempts=5, throttling={"maxTokens": 4, "tokenRatio": 0.5})
    async with serve_in_memory(service) as served, served.channel(options=options) as channel:
        for name in (b"a", b"b", b"c"):
            with trio.fail_after(10), pytest.raises(RpcError):
                await channel.unary_unary(UNARY, name, timeout=5)
    counts = [len(service.attempts[name]) for name in (b"a", b"b", b"c")]
    # a: 4 -> 3 (retry), 3 -> 2 (stop); b and c: one attempt each.
    assert counts == [2, 1, 1]


async def test_client_streaming_requests_are_replayed_to_the_next_attempt() -> None:
    service = Flaky(fail=1)
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10):
            call = channel.stream_unary(CLIENT_STREAM, timeout=5)
            for word in (b"one", b"two", b"three"):
                await call.send(word)
            assert await call == b"one,two,three"
    first, second = service.attempts[b"one"]
    assert first.requests == second.requests == [b"one", b"two", b"three"]
    assert second.previous == "1"


async def test_bidi_and_server_streaming_calls_are_retried_too() -> None:
    service = Flaky(fail=1)
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10):
            replies = [r async for r in channel.stream_stream(BIDI, [b"x", b"y"], timeout=5)]
            ticks = [r async for r in channel.unary_stream(SERVER_STREAM, b"s", timeout=5)]
    assert replies == [b"X", b"Y"]
    assert ticks == [b"0", b"1", b"2"]
    assert [a.requests for a in service.attempts[b"x"]] == [[b"x", b"y"]] * 2
    assert len(service.attempts[b"s"]) == 2


async def test_a_call_is_committed_once_response_headers_arrived() -> None:
    service = Flaky(fail=1, after_headers=True)
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"a", timeout=5)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert len(service.attempts[b"a"]) == 1


async def test_requests_over_the_buffer_limit_commit_the_call() -> None:
    service = Flaky(fail=1)
    options = retrying(per_call_retry_buffer=20)
    async with serve_in_memory(service) as served, served.channel(options=options) as channel:
        with trio.fail_after(10):
            # 3 x 8 bytes > 20: the third request commits the call to attempt 1.
            with pytest.raises(RpcError) as caught:
                await channel.stream_unary(CLIENT_STREAM, [b"big-0001", b"big-0002", b"big-0003"])
            # Under the limit the same call is retried and succeeds.
            assert await channel.stream_unary(CLIENT_STREAM, [b"small-01", b"small-02"]) == (
                b"small-01,small-02"
            )
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert len(service.attempts[b"big-0001"]) == 1
    assert len(service.attempts[b"small-01"]) == 2


async def test_the_deadline_covers_every_attempt_and_the_waits_between() -> None:
    service = Flaky(fail=10, pushback="5000")  # would wait 5 s before the retry
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        start = trio.current_time()
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"a", timeout=0.3)
        elapsed = trio.current_time() - start
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 4  # it did not sit out the pushback
    assert len(service.attempts[b"a"]) == 1


async def test_interceptors_see_one_call_for_all_its_attempts() -> None:
    seen: list[str] = []

    class Counting:
        async def intercept(
            self, details: ClientCallDetails, proceed: ClientContinuation
        ) -> ClientStream[Any, Any]:
            seen.append(details.path)
            return await proceed(details)

    service = Flaky(fail=2)
    async with serve_in_memory(service) as served:
        channel = Channel(connect=served.connect, options=retrying(), interceptors=[Counting()])
        async with channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(UNARY, b"a", timeout=5) == b"ok:a"
    assert seen == [UNARY.path]
    assert len(service.attempts[b"a"]) == 3


async def test_retries_can_be_turned_off_by_the_channel() -> None:
    service = Flaky(fail=1)
    options = retrying(retries=False)
    async with serve_in_memory(service) as served, served.channel(options=options) as channel:
        with trio.fail_after(10), pytest.raises(RpcError):
            await channel.unary_unary(UNARY, b"a", timeout=5)
    assert len(service.attempts[b"a"]) == 1


async def test_method_config_timeout_and_message_limits_apply() -> None:
    config = {
        "methodConfig": [
            {
                "name": [{"service": "flaky.Test", "method": "Unary"}],
                "timeout": "0.2s",
                "maxRequestMessageBytes": 4,
                "maxResponseMessageBytes": 6,
            }
        ]
    }

    async def slow(request: bytes, context: ServicerContext) -> bytes:
        if request == b"slow":
            await trio.sleep(5)
        return request * 2

    handler = MethodHandler(method=UNARY, func=slow)
    options = ChannelOptions(service_config=config)
    async with serve_in_memory(handler) as served, served.channel(options=options) as channel:
        with trio.fail_after(10):
            assert await channel.unary_unary(UNARY, b"abc") == b"abcabc"
            with pytest.raises(RpcError) as too_long:
                await channel.unary_unary(UNARY, b"slow", timeout=60)  # the config's 0.2 s wins
            with pytest.raises(RpcError) as big_request:
                await channel.unary_unary(UNARY, b"12345")
            with pytest.raises(RpcError) as big_response:
                await channel.unary_unary(UNARY, b"1234")  # 8 bytes back
    assert too_long.value.code is StatusCode.DEADLINE_EXCEEDED
    assert big_request.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert "maxRequestMessageBytes" in big_request.value.details
    assert big_response.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert "maxResponseMessageBytes" in big_response.value.details


async def test_the_channel_wide_buffer_limit_commits_calls_too() -> None:
    service = Flaky(fail=1)
    options = retrying(retry_buffer_size=10)
    async with serve_in_memory(service) as served, served.channel(options=options) as channel:
        with trio.fail_after(10):
            with pytest.raises(RpcError):
                await channel.unary_unary(UNARY, b"sixteen-bytes-xx", timeout=5)
            assert await channel.unary_unary(UNARY, b"short", timeout=5) == b"ok:short"
    assert len(service.attempts[b"sixteen-bytes-xx"]) == 1  # not kept: not retried
    assert len(service.attempts[b"short"]) == 2


async def test_a_call_cancelled_while_it_waits_to_retry_makes_no_more_attempts() -> None:
    service = Flaky(fail=10, pushback="2000")
    async with serve_in_memory(service) as served, served.channel(options=retrying()) as channel:
        with trio.fail_after(10):
            call = channel.unary_unary(UNARY, b"a", timeout=30)
            with trio.move_on_after(0.3) as scope:
                await call
            assert scope.cancelled_caught
            assert call.code is StatusCode.CANCELLED
            await trio.sleep(2.2)  # past the pushback: nothing more goes out
    assert len(service.attempts[b"a"]) == 1
