"""Worker threads: slow queries cannot starve file I/O, and cancelled ones let go of theirs.

Before issue #14 InteractiveQuery and file I/O shared trio's default 40
worker threads: 40 slow queries took them all, and a 3-byte download then
waited for a query to finish (4.7 s instead of 3 ms). Then, with a limiter
of its own, a cancelled query still held its thread (and its slot of that
limiter) until the statement reached its time limit: four cancelled slow
queries kept every other query waiting for seconds.

The time limit here is far longer than any test may take, so a slot that
comes back, and a query that runs, can only be the cancellation's doing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio
from service_support import Served, running, upload, wait_until

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
#: Seconds a statement may run: longer than the whole test.
LONG = 60.0


async def slow_query(stub: StreamingServiceStub, deadline: float | None = None) -> None:
    """Run SLOW until it ends (it ends only when cancelled); ``deadline``: the call's, in s."""
    async with stub.InteractiveQuery(timeout=deadline) as call:
        await call.send(pb.QueryRequest(query=SLOW))
        await call.receive()


async def quick_query(served: Served) -> list[object]:
    """The rows of a one-row query, which needs a free query thread."""
    async with served.stub.InteractiveQuery() as call:
        await call.send(pb.QueryRequest(query="SELECT 41 + 1 AS answer"))
        rows = []
        while (response := await call.receive()) is not None and not response.complete:
            rows.append(json.loads(response.data))
    return rows


async def test_forty_slow_queries_leave_downloads_fast(tmp_path: Path) -> None:
    async with running(tmp_path, query_timeout=LONG) as served:
        file_id = await upload(served.stub, b"abc", "small.txt")
        dataset = served.running.backends.dataset
        limiter = dataset.query_limiter
        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(slow_query, served.stub)
            with trio.fail_after(20):
                await wait_until(lambda: dataset.counters.queries_run == 40, limit=20)
                await wait_until(lambda: limiter.borrowed_tokens == limiter.total_tokens)
                # Every query thread is busy, for minutes, and the download completes.
                chunks = [
                    c async for c in served.stub.DownloadFile(pb.DownloadRequest(file_id=file_id))
                ]
                assert limiter.borrowed_tokens == limiter.total_tokens
                assert limiter.statistics().tasks_waiting == 40 - limiter.total_tokens
                nursery.cancel_scope.cancel()
        # The cancelled queries gave their threads back (not in 60 s).
        with trio.fail_after(20):
            await wait_until(lambda: limiter.borrowed_tokens == 0, limit=20)
    assert b"".join(c.content for c in chunks) == b"abc"


async def test_cancelled_queries_free_their_threads_at_once(tmp_path: Path) -> None:
    async with running(tmp_path, query_timeout=LONG, query_threads=2) as served:
        limiter = served.running.backends.dataset.query_limiter
        assert limiter.total_tokens == 2
        for _ in range(3):  # three rounds: more cancelled queries than threads
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    for _ in range(2):
                        nursery.start_soon(slow_query, served.stub)
                    with trio.fail_after(20):
                        await wait_until(lambda: limiter.borrowed_tokens == 2, limit=20)
                    scope.cancel()  # the client cancels both calls
            with trio.fail_after(20):
                await wait_until(lambda: limiter.borrowed_tokens == 0, limit=20)
        # Six statements were cancelled, none reached its limit: threads are free.
        with trio.fail_after(20):
            assert await quick_query(served) == [{"answer": 42}]
        assert served.running.backends.dataset.counters.queries_run == 7


async def test_a_deadline_or_a_disconnect_frees_the_thread(tmp_path: Path) -> None:
    async with running(tmp_path, query_timeout=LONG, query_threads=1) as served:
        limiter = served.running.backends.dataset.query_limiter
        # The call's deadline passes while its statement runs.
        with trio.fail_after(20):
            try:
                await slow_query(served.stub, deadline=0.5)
            except RpcError as exc:
                assert exc.code is StatusCode.DEADLINE_EXCEEDED
            else:
                raise AssertionError("a query that never ends ended before its deadline")
            await wait_until(lambda: limiter.borrowed_tokens == 0, limit=20)
        # The client goes away (its process killed: the connection drops) mid-statement.
        client = await trio.lowlevel.open_process(
            [sys.executable, "-m", "puregrpc_streaming", "query", "--target", served.address],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert client.stdin is not None
            await client.stdin.send_all(SLOW.encode() + b"\n")
            await client.stdin.aclose()
            with trio.fail_after(20):
                await wait_until(lambda: limiter.borrowed_tokens == 1, limit=20)
        finally:
            client.kill()
            await client.wait()
        with trio.fail_after(20):
            await wait_until(lambda: limiter.borrowed_tokens == 0, limit=20)
            # The one thread runs the next query (the old ones had 60 s left).
            assert await quick_query(served) == [{"answer": 42}]
