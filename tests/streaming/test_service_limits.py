"""Bounded memory and responses: chat rate limits, query row limits, batch response size.

Before issue #14: a caller could publish chat as fast as it liked; three
100 MB rows through InteractiveQuery took the server from 59 to 701 MB of
RSS, a row over 4 MiB ended the query stream, and truncation at max_rows was
never sent; BatchProcess did all its work and then failed RESOURCE_EXHAUSTED
when its response passed 4 MiB, and merged items sharing an item_id.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import trio
from service_support import running

from puregrpc import RpcError, StatusCode
from puregrpc.client import StreamStreamCall
from puregrpc.error_details import RetryInfo, details_of
from puregrpc_streaming.backends import Retention
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.rate_limit import RateLimiter


def rss_mib() -> float:
    """This process's resident set size now, in MiB (Linux)."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


# --------------------------------------------------------------- chat rate


def test_rate_limiter_refills_at_its_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3, max_keys=2)
    assert [limiter.acquire("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a", 0.0) == pytest.approx(0.5)  # one token per 0.5 s
    assert limiter.acquire("b", 0.0) == 0.0  # keys are separate
    assert limiter.acquire("a", 0.6) == 0.0  # refilled
    limiter.acquire("c", 0.6)
    assert len(limiter) == 2  # bounded: the least recently used key went


async def test_chat_rate_limit_answers_retry_info(tmp_path: Path) -> None:
    async with running(tmp_path, chat_rate=2.0, chat_burst=3) as served:
        call = served.stub.Chat(metadata=[("user-id", "ann"), ("room-id", "r")])
        with pytest.raises(RpcError) as caught, trio.fail_after(5):
            async with call:
                for n in range(10):
                    await call.send(pb.ChatMessage(content=f"message {n}"))
                async for _ in call:
                    pass
        error = caught.value
        assert error.code is StatusCode.RESOURCE_EXHAUSTED
        assert "chat rate limit: at most 2 messages a second (bursts of 3)" in error.details
        (retry,) = details_of(error, RetryInfo)
        assert 0 < retry.retry_delay.ToNanoseconds() / 1e9 <= 0.5


class PeakRss:
    """The highest RSS seen while :meth:`run` samples it (every 10 ms)."""

    def __init__(self) -> None:
        self.start = self.peak = rss_mib()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.peak = max(self.peak, rss_mib())
            await trio.sleep(0.01)

    @property
    def grown(self) -> float:
        """MiB the peak is above the start."""
        return self.peak - self.start


async def test_a_chat_flood_keeps_memory_bounded(tmp_path: Path) -> None:
    # 2,000 messages of 60 kB (120 MB) through Chat, the rate limit lifted,
    # a member of the room that never reads: the log keeps 8 MiB, the silent
    # member is cut off at its queue's bound, and the peak RSS (sampled
    # while the flood runs) stays flat. The flood took 65 -> 1,233 MB.
    retention = Retention(max_bytes=8 << 20)
    settings = {"chat_rate": 1e6, "chat_burst": 1_000_000, "retention": retention}
    async with running(tmp_path, **settings) as served, trio.open_nursery() as nursery:
        rss = PeakRss()
        nursery.start_soon(rss.run)
        room = [("room-id", "flood")]
        silent = served.stub.Chat(metadata=[("user-id", "bob"), *room])
        talker = served.stub.Chat(metadata=[("user-id", "ann"), *room])
        text = "x" * 60_000
        with trio.fail_after(60):
            async with silent, talker:
                await silent.initial_metadata()
                await talker.initial_metadata()

                async def drain() -> None:
                    async for _ in talker:  # ann reads her room (her own messages)
                        pass

                async with trio.open_nursery() as reading:
                    reading.start_soon(drain)
                    for n in range(2_000):
                        await talker.send(pb.ChatMessage(content=f"{n} {text}"))
                    await talker.done_writing()  # the call ends, and drain with it
                silent.cancel()
        count, size = await served.running.backends.events.log.stats()
        nursery.cancel_scope.cancel()
    assert size <= 8 << 20 and count < 2_000
    assert rss.grown < 80, f"peak RSS {rss.grown:.0f} MiB over the start"
    print(f"chat flood of 120 MB: peak RSS {rss.start:.0f} -> {rss.peak:.0f} MiB")


# ------------------------------------------------------------------ queries


async def run_query(
    call: StreamStreamCall[pb.QueryRequest, pb.QueryResponse], sql: str, max_rows: int = 0
) -> tuple[int, pb.QueryResponse]:
    """Send ``sql``; return (rows received, the complete response)."""
    await call.send(pb.QueryRequest(query=sql, max_rows=max_rows))
    rows = 0
    with trio.fail_after(30):
        while (response := await call.receive()) is not None:
            if response.complete:
                return rows, response
            rows += 1
    raise AssertionError("the query stream ended")


async def test_huge_rows_are_refused_and_the_stream_stays_usable(tmp_path: Path) -> None:
    async with running(tmp_path) as served, served.stub.InteractiveQuery() as call:
        async with trio.open_nursery() as nursery:
            rss = PeakRss()  # sampled while the query runs
            nursery.start_soon(rss.run)
            rows, done = await run_query(
                call, "SELECT zeroblob(100000000) AS b FROM dataset LIMIT 3"
            )
            nursery.cancel_scope.cancel()
        assert (rows, done.error_code) == (0, "RESOURCE_EXHAUSTED")
        assert "larger than the limit of 1.0 MiB per row" in done.error
        assert rss.grown < 50, f"peak RSS {rss.grown:.0f} MiB over the start"
        # Values within the limit, but a row whose JSON is over it.
        rows, done = await run_query(
            call, "SELECT hex(randomblob(300000)) AS a, hex(randomblob(300000)) AS b"
        )
        assert (rows, done.error_code) == (0, "RESOURCE_EXHAUSTED")
        assert "row 1 is 1.1 MiB as JSON, more than the limit of 1.0 MiB per row" in done.error
        rows, done = await run_query(call, "SELECT 1 AS one")
        assert (rows, done.error, done.complete) == (1, "", True)


async def test_truncation_at_max_rows_is_sent(tmp_path: Path) -> None:
    async with running(tmp_path) as served, served.stub.InteractiveQuery() as call:
        rows, done = await run_query(call, "SELECT id FROM dataset ORDER BY id", max_rows=7)
        assert (rows, done.truncated) == (7, True)
        rows, done = await run_query(call, "SELECT id FROM dataset WHERE id <= 7", max_rows=7)
        assert (rows, done.truncated) == (7, False)


async def test_a_large_result_streams_in_bounded_memory(tmp_path: Path) -> None:
    # 1,000 rows of 100 kB: 100 MB of results, fetched a batch at a time.
    async with (
        running(tmp_path) as served,
        served.stub.InteractiveQuery() as call,
        trio.open_nursery() as nursery,
    ):
        rss = PeakRss()  # sampled while the rows stream
        nursery.start_soon(rss.run)
        rows, done = await run_query(
            call, "SELECT id, hex(randomblob(50000)) AS x FROM dataset LIMIT 1000", max_rows=1000
        )
        nursery.cancel_scope.cancel()
    assert (rows, done.error) == (1000, "")
    assert rss.grown < 60, f"peak RSS {rss.grown:.0f} MiB over the start"


# -------------------------------------------------------------------- batch


async def test_results_past_the_response_limit_fail_per_item(tmp_path: Path) -> None:
    # 60 results of 100 kB: 6 MB, more than a 4 MiB response can carry.
    async with running(tmp_path) as served:
        items = [
            pb.ProcessRequest(item_id=f"i{n}", operation="uppercase", payload=b"x" * 100_000)
            for n in range(60)
        ]
        response = await served.stub.BatchProcess(items, timeout=30)
    assert response.total == 60
    assert response.succeeded + response.failed == 60
    assert 30 <= response.succeeded < 60
    assert response.ByteSize() < 4 << 20
    assert set(response.results) == {f"i{n}" for n in range(response.succeeded)}
    first = response.failures[0]
    assert (first.item_id, first.index) == (f"i{response.succeeded}", response.succeeded)
    assert "would take the response past its limit" in first.error


async def test_duplicate_item_ids_are_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        items = [
            pb.ProcessRequest(item_id=item_id, operation="reverse", payload=b"ab")
            for item_id in ("a", "b", "a")
        ]
        with pytest.raises(RpcError) as caught:
            await served.stub.BatchProcess(items, timeout=10)
    assert caught.value.code is StatusCode.INVALID_ARGUMENT
    assert "item_id 'a' is used twice (items #0 and #2)" in caught.value.details


async def test_batch_still_answers_a_normal_batch(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        stub: StreamingServiceStub = served.stub
        response = await stub.BatchProcess(
            [pb.ProcessRequest(item_id="j", operation="json_validate", payload=b'{"a": 1}')],
            timeout=10,
        )
    assert dict(response.results) == {"j": "valid JSON dict"}
