"""CollectMetrics stores a call's samples all or nothing, under keys that cannot collide.

Before issue #14 a call that failed on a NaN at sample 1,001 had already
stored the first 1,000 (a retry counted them twice), and a metric named
``cpu.count`` overwrote the derived count of ``cpu``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from service_support import running, stored_metrics, wait_until

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.protos import streaming_pb2 as pb


def samples(count: int, *, nan_at: int | None = None) -> list[pb.Metric]:
    """``count`` samples of ``m`` with value 1, one NaN at ``nan_at``."""
    return [pb.Metric(name="m", value=math.nan if n == nan_at else 1.0) for n in range(count)]


async def test_a_failed_call_stores_nothing_and_a_retry_counts_once(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await served.stub.CollectMetrics(samples(1_500, nan_at=1_200), timeout=30)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert "metric #1200 (m) has a non-finite value nan" in caught.value.details
        assert await stored_metrics(served) == []
        summary = await served.stub.CollectMetrics(samples(1_500), timeout=30)
        assert summary.total_count == 1_500
        assert len(await stored_metrics(served)) == 1_500


async def test_a_cancelled_call_stores_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        sent = trio.Event()

        async def metrics() -> AsyncIterator[pb.Metric]:
            for metric in samples(1_200):
                yield metric
            sent.set()
            await trio.sleep_forever()  # never half-closes

        async with trio.open_nursery() as nursery:

            async def call() -> None:
                await served.stub.CollectMetrics(metrics(), timeout=30)

            nursery.start_soon(call)
            with trio.fail_after(10):
                await sent.wait()
                # Received (and staged) on the server, then the client goes away.
                await wait_until(lambda: served.running.service.metrics.received >= 1_200)
            nursery.cancel_scope.cancel()
        await wait_until(lambda: served.running.service.active_calls["CollectMetrics"] == 0)
        assert await stored_metrics(served) == []


async def test_aggregate_keys_do_not_collide_with_metric_names(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        summary = await served.stub.CollectMetrics(
            [
                pb.Metric(name="cpu", value=1.0),
                pb.Metric(name="cpu", value=3.0),
                pb.Metric(name="cpu.count", value=40.0),
            ]
        )
        assert summary.aggregates["cpu"] == 4.0
        assert summary.aggregates["cpu#count"] == 2.0  # the count of cpu...
        assert summary.aggregates["cpu.count"] == 40.0  # ...and the sum of cpu.count
        assert summary.aggregates["cpu.count#count"] == 1.0
        with pytest.raises(RpcError) as caught:
            await served.stub.CollectMetrics([pb.Metric(name="cpu#count", value=1.0)])
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert "names may not contain '#'" in caught.value.details


async def test_a_summary_too_large_to_send_fails_before_storing_anything(tmp_path: Path) -> None:
    # 5,000 names of 195 characters: five aggregates each make a 5.3 MB
    # summary, more than a client accepts. Before, every sample was stored
    # and the client then failed on its message limit (a retry counted twice).
    def named(count: int) -> list[pb.Metric]:
        return [pb.Metric(name=f"{n:05d}" + "x" * 190, value=1.0) for n in range(count)]

    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await served.stub.CollectMetrics(named(5_000), timeout=60)
        assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
        assert "distinct names would take the summary past" in caught.value.details
        assert "nothing was stored" in caught.value.details
        assert await stored_metrics(served) == []
        summary = await served.stub.CollectMetrics(named(3_000), timeout=60)
        assert summary.total_count == 3_000
        assert 3 << 20 < summary.ByteSize() <= 4 << 20
        assert len(await stored_metrics(served)) == 3_000
