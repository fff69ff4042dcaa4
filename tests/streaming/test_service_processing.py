"""CollectMetrics and BatchProcess end to end."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trio
from service_support import (
    grpcio_stub,
    grpcio_stubs,
    in_thread,
    running,
    stored_metrics,
    wait_until,
)

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.protos import streaming_pb2 as pb

__all__ = ["grpcio_stubs"]


def _metrics() -> list[pb.Metric]:
    return [
        pb.Metric(name="cpu", value=1.0, labels={"host": "a"}),
        pb.Metric(name="cpu", value=2.0, labels={"host": "b"}),
        pb.Metric(name="cpu", value=3.0, labels={"host": "a"}),
        pb.Metric(name="mem", value=10.5),
    ]


async def test_metrics_summary_and_storage(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        summary = await served.stub.CollectMetrics(_metrics())
        assert summary.total_count == 4
        assert dict(summary.aggregates) == {
            "cpu": 6.0,
            "cpu#count": 3.0,
            "cpu#min": 1.0,
            "cpu#max": 3.0,
            "cpu#mean": 2.0,
            "mem": 10.5,
            "mem#count": 1.0,
            "mem#min": 10.5,
            "mem#max": 10.5,
            "mem#mean": 10.5,
        }
        # Every sample is in SQLite, with its labels.
        rows = await stored_metrics(served)
        assert [(name, value, json.loads(labels)) for name, value, labels in rows] == [
            ("cpu", 1.0, {"host": "a"}),
            ("cpu", 2.0, {"host": "b"}),
            ("cpu", 3.0, {"host": "a"}),
            ("mem", 10.5, {}),
        ]


async def test_empty_metrics_stream(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        summary = await served.stub.CollectMetrics([])
        assert summary.total_count == 0 and not summary.aggregates


@pytest.mark.parametrize(
    ("metric", "needle"),
    [
        (pb.Metric(name="", value=1.0), "needs a name"),
        (pb.Metric(name="x" * 201, value=1.0), "needs a name"),
        (pb.Metric(name="cpu", value=math.nan), "non-finite"),
        (pb.Metric(name="cpu", value=math.inf), "non-finite"),
    ],
)
async def test_bad_metrics(tmp_path: Path, metric: pb.Metric, needle: str) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await served.stub.CollectMetrics([pb.Metric(name="ok", value=1.0), metric])
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert "metric #1" in caught.value.details and needle in caught.value.details


async def test_metrics_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:
        summary = await in_thread(stub.CollectMetrics, iter(_metrics()))
        assert summary.total_count == 4
        assert summary.aggregates["cpu#mean"] == 2.0


async def test_batch_results_and_failures(tmp_path: Path) -> None:
    items = [
        pb.ProcessRequest(item_id="up", operation="uppercase", payload=b"hello"),
        pb.ProcessRequest(item_id="rev", operation="reverse", payload=b"abc"),
        pb.ProcessRequest(item_id="h", operation="sha256", payload=b"\xff\x00"),
        pb.ProcessRequest(item_id="wc", operation="word_count", payload=b"one two  three"),
        pb.ProcessRequest(item_id="js", operation="json_validate", payload=b'{"a": [1]}'),
        pb.ProcessRequest(item_id="bad-op", operation="explode", payload=b""),
        pb.ProcessRequest(item_id="bad-text", operation="uppercase", payload=b"\xff"),
        pb.ProcessRequest(item_id="bad-json", operation="json_validate", payload=b"{"),
        pb.ProcessRequest(operation="reverse", payload=b"no id"),
    ]
    async with running(tmp_path) as served:
        response = await served.stub.BatchProcess(items)
    assert (response.total, response.succeeded, response.failed) == (9, 6, 3)
    assert dict(response.results) == {
        "up": "HELLO",
        "rev": "cba",
        "h": hashlib.sha256(b"\xff\x00").hexdigest(),
        "wc": "3",
        "js": "valid JSON dict",
        "8": "di on",  # no item_id: named by its index
    }
    failures = {(f.item_id, f.index): f.error for f in response.failures}
    assert set(failures) == {("bad-op", 5), ("bad-text", 6), ("bad-json", 7)}
    assert "unknown operation 'explode'" in failures[("bad-op", 5)]
    assert "not UTF-8" in failures[("bad-text", 6)]
    assert "invalid JSON" in failures[("bad-json", 7)]


async def test_batch_items_are_processed_as_they_arrive(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        counters = served.running.service.processing.counters
        with trio.fail_after(10):
            async with served.stub.BatchProcess() as call:
                for n in range(3):
                    await call.send(pb.ProcessRequest(item_id=str(n), operation="reverse"))
                    # Processed while the stream is still open, one by one.
                    await wait_until(lambda n=n: counters.batch_items_processed == n + 1)
                await call.done_writing()
                response = await call.response()
        assert response.succeeded == 3


async def test_batch_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:
        requests = iter(
            [pb.ProcessRequest(item_id=i, operation="uppercase", payload=b"x") for i in "abc"]
        )
        response = await in_thread(stub.BatchProcess, requests)
        assert (response.total, response.succeeded) == (3, 3)

        def too_big() -> None:
            # 5 MiB: over the server's 4 MiB default message size.
            stub.BatchProcess(iter([pb.ProcessRequest(operation="sha256", payload=bytes(5 << 20))]))

        with pytest.raises(grpc.RpcError) as caught:
            await in_thread(too_big)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
