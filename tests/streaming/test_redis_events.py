"""Events and chat on Redis: two real service instances sharing one real redis-server."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis
import trio
from redis_support import RedisServer, redis_server
from service_support import Served, running, wait_until

from puregrpc import RpcError, StatusCode
from puregrpc.error_details import RetryInfo, details_of
from puregrpc_streaming.backends import Retention
from puregrpc_streaming.backends.event_log import event_size
from puregrpc_streaming.backends.events import encode_payload
from puregrpc_streaming.identity import Identity
from puregrpc_streaming.protos import streaming_pb2 as pb

__all__ = ["redis_server"]

STREAM_ID = re.compile(r"\d+-\d+")
#: Every client calls as user ops, so that a watcher on one connection sees
#: the metrics summaries published on another (an anonymous caller would
#: see only its own connection's).
TOKEN = "ops-token-0123456789"
AS_OPS: dict[str, Any] = {"tokens": {TOKEN: Identity(user_id="ops")}, "token": TOKEN}


@asynccontextmanager
async def two_instances(
    tmp_path: Path, redis: RedisServer, *, as_ops: bool = True
) -> AsyncIterator[tuple[Served, Served]]:
    """Instances A and B, each with its own data directory, on one Redis stream
    (``as_ops``: called as user ops; else in open mode)."""
    auth = AS_OPS if as_ops else {}
    async with (
        running(tmp_path / "a", redis_url=redis.url, **auth) as a,
        running(tmp_path / "b", redis_url=redis.url, **auth) as b,
    ):
        yield a, b


async def collect(
    served: Served, count: int, *, after: str | None = None, started: trio.Event | None = None
) -> list[pb.Event]:
    """The next ``count`` events (no heartbeats) a watcher on ``served`` is sent."""
    metadata = {"last-event-id": after} if after is not None else None
    events: list[pb.Event] = []
    with trio.fail_after(20):
        async with served.stub.WatchEvents(pb.WatchRequest(), metadata=metadata) as call:
            if started is not None:
                await call.initial_metadata()
                started.set()
            async for event in call:
                if event.type != "heartbeat":
                    events.append(event)
                    if len(events) == count:
                        break
    return events


async def resume_when_available(served: Served, count: int, *, after: str) -> list[pb.Event]:
    """:func:`collect` from ``after``, retried while the instance's bus is still reconnecting.

    Its publishes may work again before its reader does (the reader waits
    out its backoff); until then, watching is UNAVAILABLE.
    """
    with trio.fail_after(30):
        while True:
            try:
                return await collect(served, count, after=after)
            except RpcError as exc:
                assert exc.code is StatusCode.UNAVAILABLE, exc
                await trio.sleep(0.1)


async def publish_metrics(served: Served, value: float) -> None:
    """One ``metrics.collected`` event, published through ``served``'s CollectMetrics."""
    await served.stub.CollectMetrics([pb.Metric(name="cpu", value=value)], timeout=10)


async def test_a_watcher_on_a_sees_what_b_publishes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, redis_server) as (a, b), trio.open_nursery() as nursery:
        got: list[pb.Event] = []
        subscribed = trio.Event()

        async def watch() -> None:
            got.extend(await collect(a, 2, started=subscribed))

        nursery.start_soon(watch)
        await subscribed.wait()
        await publish_metrics(b, 1.0)
        await publish_metrics(a, 2.0)
    assert [e.type for e in got] == ["metrics.collected"] * 2
    assert all(STREAM_ID.fullmatch(e.id) for e in got), [e.id for e in got]
    assert got[0].id < got[1].id or len(got[0].id) < len(got[1].id)
    assert a.running.backends.events.subscriber_count == 0


async def test_resume_by_event_id_across_instances(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, redis_server) as (a, b):
        seen_on_b: list[pb.Event] = []
        subscribed = trio.Event()

        async def watch_b() -> None:
            seen_on_b.extend(await collect(b, 3, started=subscribed))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_b)
            await subscribed.wait()
            for value in (1.0, 2.0, 3.0):
                await publish_metrics(b, value)
        # Resuming on A from B's first id replays the other two, same ids, in order.
        resumed = await collect(a, 2, after=seen_on_b[0].id)
    assert [e.id for e in resumed] == [e.id for e in seen_on_b[1:]]
    assert [e.payload for e in resumed] == [e.payload for e in seen_on_b[1:]]


async def test_chat_across_instances(tmp_path: Path, redis_server: RedisServer) -> None:
    async with two_instances(tmp_path, redis_server, as_ops=False) as (a, b):
        metadata = {"user-id": "ann", "room-id": "lobby"}
        with trio.fail_after(20):
            async with a.stub.Chat(metadata=metadata) as ann:
                # Ann's own join notice comes back through Redis: she is subscribed.
                joined = await ann.receive()
                assert joined is not None and joined.content == "ann joined"
                async with b.stub.Chat(metadata={"user-id": "bob", "room-id": "lobby"}) as bob:
                    await bob.send(pb.ChatMessage(content="hello from B"))
                    contents = []
                    while len(contents) < 2:
                        message = await ann.receive()
                        assert message is not None
                        contents.append((message.user_id, message.content))
                    await bob.done_writing()
                await ann.done_writing()
    assert contents == [("system", "bob joined"), ("bob", "hello from B")]


async def test_redis_restart_while_watching_is_unavailable_then_resumes_without_gaps(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, redis_server) as (a, b):
        first: list[pb.Event] = []
        outage: list[RpcError] = []
        subscribed = trio.Event()

        async def watch_until_outage() -> None:
            try:
                first.extend(await collect(a, 2, started=subscribed))
            except RpcError as exc:
                outage.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_until_outage)
            await subscribed.wait()
            await publish_metrics(b, 1.0)
            await wait_until(lambda: a.running.backends.events.last_id != "0-0", limit=10)
            await trio.to_thread.run_sync(redis_server.stop)
        (error,) = outage
        assert error.code is StatusCode.UNAVAILABLE
        (last,) = re.findall(r"resume from last-event-id (\S+);", error.details)
        assert STREAM_ID.fullmatch(last)
        (retry,) = details_of(error, RetryInfo)
        assert retry.retry_delay.ToNanoseconds() > 0

        # While Redis is down, publishing and watching are UNAVAILABLE too.
        for call in (publish_metrics(b, 2.0), collect(a, 1)):
            try:
                await call
            except RpcError as exc:
                assert exc.code is StatusCode.UNAVAILABLE, exc
            else:
                raise AssertionError("a call succeeded while Redis was down")

        await trio.to_thread.run_sync(redis_server.start)
        published = 0
        with trio.fail_after(30):
            while published < 2:  # B recovers: its publishes go through again
                try:
                    await publish_metrics(b, 10.0 + published)
                    published += 1
                except RpcError as exc:
                    assert exc.code is StatusCode.UNAVAILABLE, exc
                    await trio.sleep(0.1)
        # A recovers, and the resume from the hint misses nothing: exactly the
        # events published after it, no gap event, as B's log has them.
        resumed = await resume_when_available(a, 2, after=last)
        from_b = await resume_when_available(b, 2, after=last)
    assert [e.type for e in resumed] == ["metrics.collected"] * 2
    assert [e.id for e in resumed] == [e.id for e in from_b]
    assert [json.loads(e.payload)["total_count"] for e in resumed] == [1, 1]
    assert a.running.backends.events.outages >= 1


async def test_retention_trims_the_stream_and_a_resume_across_it_says_gap(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    retention = Retention(max_events=3)
    async with running(
        tmp_path / "a", redis_url=redis_server.url, retention=retention, **AS_OPS
    ) as a:
        ids: list[str] = []
        subscribed = trio.Event()

        async def watch() -> None:
            ids.extend(e.id for e in await collect(a, 6, started=subscribed))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await subscribed.wait()
            for value in range(6):
                await publish_metrics(a, float(value))
        resumed = await collect(a, 4, after=ids[0])
    gap, *rest = resumed
    assert gap.type == "gap"
    assert json.loads(gap.payload)["resumed_after"] == ids[2]  # the last one trimmed
    assert [e.id for e in rest] == ids[3:]


async def test_resume_by_id_across_a_restart_of_both_instances(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    ids: list[str] = []
    async with two_instances(tmp_path, redis_server) as (a, b):
        subscribed = trio.Event()

        async def watch() -> None:
            ids.extend(e.id for e in await collect(b, 3, started=subscribed))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await subscribed.wait()
            for value in (1.0, 2.0, 3.0):
                await publish_metrics(a, value)
    # Both instances gone and started again (new processes' worth of state:
    # only Redis remembers): a resume from the first id on either misses nothing.
    async with two_instances(tmp_path, redis_server) as (a, b):
        on_a = await collect(a, 2, after=ids[0])
        on_b = await collect(b, 2, after=ids[0])
    assert [e.id for e in on_a] == [e.id for e in on_b] == ids[1:]


async def test_retention_in_bytes_trims_the_stream_and_a_resume_across_it_says_gap(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Events of about 700 bytes each (as the embedded log counts them) in a
    # stream kept to 2,100 bytes: three of them.
    payload = {"text": "x" * 600}
    size = event_size("note", encode_payload(payload), ("*",))
    retention = Retention(max_bytes=3 * size + 10)
    async with running(
        tmp_path / "a", redis_url=redis_server.url, retention=retention, **AS_OPS
    ) as a:
        ids: list[str] = []
        subscribed = trio.Event()

        async def watch() -> None:
            ids.extend(e.id for e in await collect(a, 6, started=subscribed))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await subscribed.wait()
            for _ in range(6):
                await a.running.backends.events.publish("note", payload)
        resumed = await collect(a, 4, after=ids[0])
    gap, *rest = resumed
    assert gap.type == "gap"
    assert json.loads(gap.payload)["resumed_after"] == ids[2]  # the last one trimmed
    assert [e.id for e in rest] == ids[3:]
    client = redis.Redis.from_url(redis_server.url)
    try:
        stream = "puregrpc-streaming:events"
        assert client.xlen(stream) == 3
        assert int(client.get(f"{stream}:bytes") or 0) == 3 * size
        # One event bigger than the whole bound is kept (the newest always is).
        async with running(
            tmp_path / "b", redis_url=redis_server.url, retention=retention, **AS_OPS
        ) as b:
            await b.running.backends.events.publish("note", {"text": "y" * 5000})
        assert client.xlen(stream) == 1
    finally:
        client.close()
