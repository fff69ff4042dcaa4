"""Records and metrics on PostgreSQL: two real service instances sharing one real PostgreSQL
(and Redis)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from postgres_support import PostgresServer, postgres_server
from redis_support import RedisServer, redis_server
from service_support import Served, running

from puregrpc import RpcError, StatusCode
from puregrpc.error_details import RetryInfo, details_of
from puregrpc_streaming.protos import streaming_pb2 as pb

__all__ = ["postgres_server", "redis_server"]

ACK, CONFLICT, CHANGE = pb.SyncResponse.ACK, pb.SyncResponse.CONFLICT, pb.SyncResponse.CHANGE


@asynccontextmanager
async def two_instances(
    tmp_path: Path, postgres: PostgresServer, redis: RedisServer | None = None
) -> AsyncIterator[tuple[Served, Served]]:
    """Instances A and B, each with its own data directory, on one PostgreSQL."""
    shared = {"postgres_url": postgres.url}
    if redis is not None:
        shared["redis_url"] = redis.url
    async with running(tmp_path / "a", **shared) as a, running(tmp_path / "b", **shared) as b:
        yield a, b


async def sync_once(served: Served, key: str, value: bytes, base: int) -> pb.SyncResponse:
    """One change through a SyncData stream of its own, and its answer (ACK or CONFLICT).

    Changes other streams make meanwhile are pushed (CHANGE) before it: skipped.
    """
    with trio.fail_after(20):
        async with served.stub.SyncData() as call:
            await call.send(pb.SyncRequest(key=key, value=value, base_version=base, change_id="c"))
            async for response in call:
                if response.kind != CHANGE:
                    assert response.change_id == "c"
                    await call.done_writing()
                    return response
    raise AssertionError("SyncData ended without answering")


async def test_a_change_through_a_is_read_and_conflicts_through_b(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with two_instances(tmp_path, postgres_server) as (a, b):
        ack = await sync_once(a, "color", b"red", 0)
        got = await b.stub.GetData(pb.GetDataRequest(key="color"))
        conflict = await sync_once(b, "color", b"blue", 0)
        again = await sync_once(b, "color", b"blue", 1)
    assert (ack.kind, ack.version) == (ACK, 1)
    assert (got.value, got.version) == (b"red", 1)
    assert (conflict.kind, conflict.value, conflict.version) == (CONFLICT, b"red", 1)
    assert (again.kind, again.version) == (ACK, 2)


async def test_racing_instances_apply_each_base_version_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    kinds: dict[str, list[int]] = {}
    async with two_instances(tmp_path, postgres_server) as (a, b):

        async def change(served: Served, key: str, base: int) -> None:
            kinds.setdefault(key, []).append((await sync_once(served, key, b"x", base)).kind)

        # New keys (INSERT against INSERT) and existing ones (UPDATE against UPDATE).
        with trio.fail_after(60):
            for base in (0, 1):
                async with trio.open_nursery() as nursery:
                    for n in range(10):
                        for served in (a, b):
                            nursery.start_soon(change, served, f"k{n}", base)
    assert len(kinds) == 10
    for key, answers in kinds.items():
        assert sorted(answers) == sorted([ACK, CONFLICT] * 2), (key, answers)


async def test_a_change_through_b_is_pushed_to_a_stream_on_a(
    tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, postgres_server, redis_server) as (a, b):
        with trio.fail_after(20):
            async with a.stub.SyncData() as watching:
                await watching.initial_metadata()  # subscribed
                ack = await sync_once(b, "shared", b"from b", 0)
                pushed = await watching.receive()
                await watching.done_writing()
    assert ack.kind == ACK
    assert pushed is not None
    assert (pushed.kind, pushed.key, pushed.value, pushed.version) == (
        CHANGE,
        "shared",
        b"from b",
        1,
    )


async def test_postgres_down_is_unavailable_with_retry_info_then_recovers(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with running(tmp_path / "a", postgres_url=postgres_server.url) as a:
        await sync_once(a, "kept", b"v1", 0)
        await trio.to_thread.run_sync(postgres_server.stop)
        try:
            await a.stub.GetData(pb.GetDataRequest(key="kept"), timeout=20)
        except RpcError as exc:
            down = exc
        else:
            raise AssertionError("GetData succeeded while PostgreSQL was down")
        assert down.code is StatusCode.UNAVAILABLE, down
        assert "PostgreSQL" in down.details
        (retry,) = details_of(down, RetryInfo)
        assert retry.retry_delay.ToNanoseconds() > 0

        await trio.to_thread.run_sync(postgres_server.start)
        got: pb.GetDataResponse | None = None
        with trio.fail_after(30):
            while got is None:
                try:
                    got = await a.stub.GetData(pb.GetDataRequest(key="kept"), timeout=20)
                except RpcError as exc:
                    assert exc.code is StatusCode.UNAVAILABLE, exc
                    await trio.sleep(0.1)
    assert (got.value, got.version) == (b"v1", 1)


def metrics_rows(postgres: PostgresServer) -> list[tuple[str, float]]:
    """Every stored sample (name, value), as PostgreSQL has them committed."""
    import psycopg  # here: without it the fixture skips the tests

    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute("SELECT name, value FROM metrics ORDER BY id").fetchall()
    return [(name, value) for name, value in rows]


async def test_metrics_of_both_instances_land_in_one_table_a_call_at_a_time(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with two_instances(tmp_path, postgres_server) as (a, b):
        good = [pb.Metric(name="a", value=float(n)) for n in range(1_200)]
        bad = [pb.Metric(name="b", value=math.nan if n == 1_100 else 1.0) for n in range(1_200)]
        assert (await a.stub.CollectMetrics(good, timeout=30)).total_count == 1_200
        # Two batches of B's call were inserted before its bad sample: all rolled back.
        with pytest.raises(RpcError) as caught:
            await b.stub.CollectMetrics(bad, timeout=30)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        await b.stub.CollectMetrics([pb.Metric(name="b", value=2.0)], timeout=30)
        rows = await trio.to_thread.run_sync(metrics_rows, postgres_server)
    assert rows == [("a", float(n)) for n in range(1_200)] + [("b", 2.0)]
