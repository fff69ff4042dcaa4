"""ListLargeDataset and InteractiveQuery end to end, and seeding a million rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trio
from service_support import (
    ROWS,
    Served,
    grpcio_stub,
    grpcio_stubs,
    in_thread,
    running,
    wait_until,
)

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions
from puregrpc.wire import ConnectionConfig
from puregrpc_streaming.handlers.dataset import decode_cursor, encode_cursor
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["grpcio_stubs"]


async def _list(served: Served, request: pb.ListRequest) -> list[pb.DataItem]:
    with trio.fail_after(30):
        return [item async for item in served.stub.ListLargeDataset(request)]


async def _query(
    call: object, query: str, max_rows: int = 0
) -> tuple[list[dict[str, object]], str]:
    """Send one query on an open InteractiveQuery call; return (rows, error)."""
    assert hasattr(call, "send") and hasattr(call, "receive")
    await call.send(pb.QueryRequest(query=query, max_rows=max_rows))
    rows: list[dict[str, object]] = []
    with trio.fail_after(10):
        while True:
            response = await call.receive()
            assert response is not None, "stream ended before complete"
            if response.error:
                assert response.complete and not rows
                return rows, response.error
            if response.complete:
                return rows, ""
            rows.append(json.loads(response.data))


# ------------------------------------------------------------------- list


async def test_list_whole_table_in_pages(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        items = await _list(served, pb.ListRequest())
        assert [item.id for item in items] == list(range(1, ROWS + 1))
        first = items[0]
        assert first.category in {"red", "green", "blue", "yellow", "purple"}
        assert 0.0 <= first.value < 1.0
        assert json.loads(first.data)["id"] == 1
        assert decode_cursor(first.cursor) == 1
        # Default pages of 100 rows: 50 full pages and the empty one that ends it.
        assert served.running.backends.dataset.counters.pages_fetched == ROWS // 100 + 1


async def test_resume_after_cursor(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        head: list[pb.DataItem] = []
        with trio.fail_after(10):
            async with served.stub.ListLargeDataset(pb.ListRequest(page_size=250)) as call:
                async for item in call:
                    head.append(item)
                    if len(head) == 1234:
                        break
        tail = await _list(served, pb.ListRequest(start_cursor=head[-1].cursor, page_size=333))
        assert [i.id for i in head + tail] == list(range(1, ROWS + 1))
        assert await _list(served, pb.ListRequest(start_cursor=tail[-1].cursor)) == []


async def test_list_filter(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        items = await _list(served, pb.ListRequest(filter='category = "red" and value >= 0.5'))
        assert items and all(i.category == "red" and i.value >= 0.5 for i in items)
        async with served.stub.InteractiveQuery() as call:
            rows, error = await _query(
                call, "SELECT count(*) AS n FROM dataset WHERE category = 'red' AND value >= 0.5"
            )
        assert not error and rows == [{"n": len(items)}]


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (pb.ListRequest(start_cursor="not-a-cursor"), "not a cursor"),
        (pb.ListRequest(start_cursor=encode_cursor(5)[:-2] + "!!"), "not a cursor"),
        (pb.ListRequest(page_size=-1), "page_size"),
        (pb.ListRequest(page_size=10_001), "page_size"),
        (pb.ListRequest(filter="colour = 'red'"), "unknown field 'colour'"),
        (pb.ListRequest(filter="value >>> 1"), "bad filter"),
    ],
)
async def test_list_bad_requests(tmp_path: Path, request_: pb.ListRequest, needle: str) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await _list(served, request_)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert needle in caught.value.details


async def test_cancel_stops_fetching_rows(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        counters = served.running.backends.dataset.counters
        # A small window, so that flow control, not the table size, bounds
        # how far the server can run ahead of this reader.
        small = ChannelOptions(connection=ConnectionConfig(stream_window=16 * 1024))
        async with Channel(served.address, options=small) as channel:
            stub = StreamingServiceStub(channel)
            received = 0
            with trio.fail_after(10):
                async with stub.ListLargeDataset(pb.ListRequest(page_size=100)) as call:
                    async for _item in call:
                        received += 1
                        await trio.sleep(0.001)
                        if received == 250:
                            break
        await wait_until(lambda: served.running.service.active_calls["ListLargeDataset"] == 0)
        pages = counters.pages_fetched
        await trio.sleep(0.3)
        assert counters.pages_fetched == pages  # nothing fetched after the cancel
        assert pages <= 8  # of 51: the server stayed about a window ahead
        assert counters.rows_fetched == pages * 100


async def test_list_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:

        def listing(request: pb.ListRequest) -> list[pb.DataItem]:
            return list(stub.ListLargeDataset(request))

        items = await in_thread(listing, pb.ListRequest(page_size=1000))
        assert len(items) == ROWS
        rest = await in_thread(listing, pb.ListRequest(start_cursor=items[4000].cursor))
        assert [i.id for i in rest] == list(range(4002, ROWS + 1))
        with pytest.raises(grpc.RpcError) as caught:
            await in_thread(listing, pb.ListRequest(start_cursor="garbage"))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


# ------------------------------------------------------------------ query


async def test_query_rows_then_complete(tmp_path: Path) -> None:
    async with running(tmp_path) as served, served.stub.InteractiveQuery() as call:
        rows, error = await _query(
            call, "SELECT id, category, data FROM dataset ORDER BY id LIMIT 3"
        )
        assert not error
        assert [r["id"] for r in rows] == [1, 2, 3]
        assert json.loads(str(rows[0]["data"]))["name"] == "item-0000001"
        # max_rows cuts the result.
        rows, error = await _query(call, "SELECT id FROM dataset", max_rows=7)
        assert not error and len(rows) == 7
        # Empty results still complete.
        rows, error = await _query(call, "SELECT id FROM dataset WHERE id < 0")
        assert (rows, error) == ([], "")


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("DELETE FROM dataset", "only SELECT"),
        (
            "INSERT INTO kv (key, value, version, updated_at) VALUES ('a', x'00', 1, 0)",
            "only SELECT",
        ),
        ("UPDATE dataset SET value = 0", "only SELECT"),
        ("DROP TABLE dataset", "only SELECT"),
        ("CREATE TABLE evil (x)", "only SELECT"),
        ("PRAGMA journal_mode=DELETE", "only SELECT"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "only SELECT"),
        ("SELECT 1; DELETE FROM dataset", "one statement"),
        ("SELEC id FROM dataset", "syntax error"),
        ("SELECT nope FROM dataset", "no such column"),
        ("   ", "empty query"),
    ],
)
async def test_refused_queries_keep_the_stream_usable(
    tmp_path: Path, query: str, needle: str
) -> None:
    async with running(tmp_path) as served, served.stub.InteractiveQuery() as call:
        rows, error = await _query(call, query)
        assert needle in error
        rows, error = await _query(call, "SELECT count(*) AS n FROM dataset")
        assert (rows, error) == ([{"n": ROWS}], "")


async def test_query_time_limit(tmp_path: Path) -> None:
    async with (
        running(tmp_path, query_timeout=0.2) as served,
        served.stub.InteractiveQuery() as call,
    ):
        started = trio.current_time()
        rows, error = await _query(
            call,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT count(*) FROM c",
        )
        assert "time limit of 0.2 s" in error
        assert trio.current_time() - started < 5
        rows, error = await _query(call, "SELECT 41 + 1 AS answer")
        assert (rows, error) == ([{"answer": 42}], "")


async def test_query_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:

        def session() -> list[pb.QueryResponse]:
            requests = iter(
                [
                    pb.QueryRequest(query="SELECT id FROM dataset WHERE id <= 2"),
                    pb.QueryRequest(query="DELETE FROM dataset"),
                ]
            )
            return list(stub.InteractiveQuery(requests))

        responses = await in_thread(session)
        assert [json.loads(r.data) for r in responses[:2]] == [{"id": 1}, {"id": 2}]
        assert responses[2].complete and not responses[2].error
        assert "only SELECT" in responses[3].error and responses[3].complete
        assert len(responses) == 4


# ---------------------------------------------------------------- seeding


async def test_seeding_a_million_rows_is_quick(tmp_path: Path) -> None:
    started = time.perf_counter()
    async with running(tmp_path, dataset_rows=1_000_000) as served:
        seconds = time.perf_counter() - started
        assert seconds < 20, f"seeding took {seconds:.1f} s"
        tail = await _list(served, pb.ListRequest(start_cursor=encode_cursor(999_990)))
        assert [i.id for i in tail] == list(range(999_991, 1_000_001))
        assert await served.running.backends.dataset.row_count() == 1_000_000
    # A restart does not seed again.
    started = time.perf_counter()
    async with running(tmp_path, dataset_rows=1_000_000):
        assert time.perf_counter() - started < seconds
