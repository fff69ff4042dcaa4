"""The durable event log: history across restarts, explicit gaps, ids owned by the bus.

Before issue #14 the replay buffer lived in memory (gone on restart), a resume
from further back than retained replayed what was left and said nothing, and
ids came from the start time, so two instances handed out the same ones.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest
import trio
from service_support import Served, running

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.backends import Retention, open_embedded_backends
from puregrpc_streaming.client_helpers import EventGap, EventsLost, EventWatcher
from puregrpc_streaming.protos import streaming_pb2 as pb


async def collect(served: Served, after: str, count: int) -> list[pb.Event]:
    """``count`` events (heartbeats skipped) of a watch resuming after ``after``."""
    got: list[pb.Event] = []
    with trio.fail_after(10):
        call = served.stub.WatchEvents(pb.WatchRequest(), metadata=[("last-event-id", after)])
        async with call:
            async for event in call:
                if event.type != "heartbeat":
                    got.append(event)
                    if len(got) == count:
                        break
    return got


def numbers(events: list[pb.Event]) -> list[int]:
    """The ``n`` of each non-gap event's payload."""
    return [json.loads(e.payload)["n"] for e in events if e.type != "gap"]


async def test_history_and_resume_survive_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        bus = served.running.backends.events
        before = [await bus.publish("batch.processed", {"n": n}) for n in range(5)]
    async with running(tmp_path) as served:
        bus = served.running.backends.events
        after = [await bus.publish("batch.processed", {"n": n}) for n in range(5, 8)]
        got = await collect(served, before[1].id, 6)
    assert numbers(got) == [2, 3, 4, 5, 6, 7]
    ids = [e.id for e in before + after]
    assert len(set(ids)) == len(ids)  # never reused across the restart
    assert [e.id for e in got] == ids[2:]


async def test_resume_from_before_the_retained_range_reports_a_gap(tmp_path: Path) -> None:
    retention = Retention(max_events=10)
    async with running(tmp_path, retention=retention) as served:
        bus = served.running.backends.events
        published = [await bus.publish("batch.processed", {"n": n}) for n in range(300)]
        got = await collect(served, published[0].id, 2)
        gap, first = got
        assert gap.type == "gap"
        payload = json.loads(gap.payload)
        assert payload["last_event_id"] == published[0].id
        assert "no longer available: retention deleted them" in payload["reason"]
        # The replay goes on right after the gap's id, with what is retained.
        assert payload["resumed_after"] == gap.id
        assert int(first.id) == int(gap.id) + 1
        assert json.loads(first.payload)["n"] > 1
        retained, _ = await bus.log.stats()
        assert retained <= 10


async def test_a_resume_across_a_restart_past_the_retained_range_reports_a_gap(
    tmp_path: Path,
) -> None:
    retention = Retention(max_events=10)
    async with running(tmp_path, retention=retention) as served:
        bus = served.running.backends.events
        published = [await bus.publish("batch.processed", {"n": n}) for n in range(300)]
    async with running(tmp_path, retention=retention) as served:
        gap, first = await collect(served, published[0].id, 2)
    assert gap.type == "gap"
    assert "retention deleted them" in json.loads(gap.payload)["reason"]
    assert json.loads(first.payload)["n"] >= 290  # what is retained follows
    assert first.id in {event.id for event in published}


async def test_an_id_newer_than_the_log_is_a_gap_too(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        bus = served.running.backends.events
        await bus.publish("batch.processed", {"n": 0})
        gap, event = await collect(served, "999999", 2)
    assert gap.type == "gap"
    assert "newer than this server's event log" in json.loads(gap.payload)["reason"]
    assert numbers([event]) == [0]  # everything retained follows


async def test_a_malformed_event_id_is_invalid(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await collect(served, "abc", 1)
    assert caught.value.code is StatusCode.INVALID_ARGUMENT
    assert "'abc' is not an event id this server issued" in caught.value.details


async def test_the_watcher_surfaces_a_gap(tmp_path: Path) -> None:
    async with running(tmp_path, retention=Retention(max_events=10)) as served:
        bus = served.running.backends.events
        published = [await bus.publish("batch.processed", {"n": n}) for n in range(300)]
        watcher = EventWatcher(served.stub, last_event_id=published[0].id)
        events = watcher.events()
        try:
            with pytest.raises(EventsLost) as lost, trio.fail_after(10):
                await events.__anext__()
        finally:
            await events.aclose()
        assert lost.value.gap.last_event_id == published[0].id
        gaps: list[EventGap] = []
        watcher = EventWatcher(served.stub, last_event_id=published[0].id, on_gap=gaps.append)
        events = watcher.events()
        try:
            with trio.fail_after(10):
                event = await events.__anext__()
        finally:
            await events.aclose()
        assert len(gaps) == 1 and gaps[0].resumed_after != published[0].id
        assert event.type == "batch.processed"
        assert int(event.id) == int(gaps[0].resumed_after) + 1


async def test_two_instances_on_one_directory_hand_out_distinct_ids(tmp_path: Path) -> None:
    async with (
        open_embedded_backends(tmp_path, dataset_rows=10) as one,
        open_embedded_backends(tmp_path, dataset_rows=10) as two,
    ):
        ids = []
        for n in range(50):
            ids.append((await one.events.publish("batch.processed", {"n": n})).id)
            ids.append((await two.events.publish("batch.processed", {"n": n})).id)
    assert len(set(ids)) == len(ids) == 100


async def test_two_instances_on_one_directory_see_each_other_s_events_in_order(
    tmp_path: Path,
) -> None:
    # Before, a watcher saw only its own instance's events live: here just
    # n=1, and a resume after it would have passed over n=0 without a gap.
    async with (
        open_embedded_backends(tmp_path, dataset_rows=10) as one,
        open_embedded_backends(tmp_path, dataset_rows=10) as two,
        one.events.subscribe(types=frozenset({"batch.processed"})) as watcher,
    ):
        published = [
            await two.events.publish("batch.processed", {"n": 0}),
            await one.events.publish("batch.processed", {"n": 1}),  # after two's, in order
            await two.events.publish("batch.processed", {"n": 2}),  # one publishes no more
        ]
        with trio.fail_after(5):
            got = [await watcher.next() for _ in range(3)]
    assert [event.payload["n"] for event in got] == [0, 1, 2]
    assert [event.id for event in got] == [event.id for event in published]


async def test_events_past_the_age_bound_go_while_nothing_is_published(tmp_path: Path) -> None:
    # Before, the age bound was applied at open and by appends only: on a
    # server that published nothing more, a chat message stayed in the log
    # (and replayable) past its retention until the next event or restart.
    retention = Retention(max_age=0.5)
    async with open_embedded_backends(tmp_path, dataset_rows=10, retention=retention) as backends:
        bus = backends.events
        said = await bus.publish("chat.message", {"content": "gone soon"}, audience=("room:r",))
        counts = [(await bus.log.stats())[0]]
        with trio.fail_after(15):
            while counts[-1]:
                await trio.sleep(0.1)
                counts.append((await bus.log.stats())[0])
        async with bus.subscribe(after_id="0") as resumed:
            with trio.fail_after(5):
                gap = await resumed.next()
    assert counts[0] == 1 and counts[-1] == 0
    assert gap.type == "gap" and gap.payload["resumed_after"] == said.id


def rss_mib() -> float:
    """This process's resident set size now, in MiB (Linux)."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


async def test_retained_events_are_bounded_in_bytes(tmp_path: Path) -> None:
    # 2,000 events of 60 kB (120 MB) into a log kept to 8 MiB: neither the
    # log nor the process keeps them (the old ring kept the last 10,000).
    retention = Retention(max_bytes=8 << 20)
    async with running(tmp_path, retention=retention) as served:
        bus = served.running.backends.events
        text = "x" * 60_000
        start = rss_mib()
        with trio.fail_after(60):
            for n in range(2_000):
                await bus.publish("chat.message", {"n": n, "content": text}, audience=("room:r",))
        grown = rss_mib() - start
        count, size = await bus.log.stats()
    assert size <= 8 << 20
    assert count < 2_000
    assert grown < 60, f"RSS grew by {grown:.0f} MiB"
