"""Separate worker threads: slow queries cannot starve file I/O.

Before issue #14 InteractiveQuery and file I/O shared trio's default 40
worker threads: 40 slow queries took them all, and a 3-byte download then
waited for a query to finish (4.7 s instead of 3 ms).
"""

from __future__ import annotations

import time
from pathlib import Path

import trio
from service_support import running, upload, wait_until

from puregrpc_streaming.protos import streaming_pb2 as pb

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


async def test_forty_slow_queries_leave_downloads_fast(tmp_path: Path) -> None:
    async with running(tmp_path, query_timeout=2.0) as served:
        file_id = await upload(served.stub, b"abc", "small.txt")
        dataset = served.running.backends.dataset
        async with trio.open_nursery() as nursery:

            async def slow_query() -> None:
                async with served.stub.InteractiveQuery() as call:
                    await call.send(pb.QueryRequest(query=SLOW))
                    await call.receive()

            for _ in range(40):
                nursery.start_soon(slow_query)
            with trio.fail_after(10):
                await wait_until(lambda: dataset.counters.queries_run == 40)
                await trio.sleep(0.2)  # the first queries hold their threads now
                started = time.perf_counter()
                chunks = [
                    c async for c in served.stub.DownloadFile(pb.DownloadRequest(file_id=file_id))
                ]
                elapsed = time.perf_counter() - started
            assert dataset.query_limiter.borrowed_tokens == dataset.query_limiter.total_tokens
            nursery.cancel_scope.cancel()
    assert b"".join(c.content for c in chunks) == b"abc"
    assert elapsed < 0.75, f"a 3-byte download took {elapsed:.2f} s"
    print(f"3-byte download during 40 slow queries: {elapsed * 1000:.1f} ms")
