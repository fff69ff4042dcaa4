"""WatchEvents end to end: types, filters, heartbeats, resume, slow watchers, cleanup."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trio
from service_support import (
    Served,
    grpcio_stub,
    grpcio_stubs,
    in_thread,
    running,
    upload,
    wait_until,
)

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions
from puregrpc.wire import ConnectionConfig
from puregrpc_streaming.handlers.events import EVENT_TYPES
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

__all__ = ["grpcio_stubs"]


async def _collect(
    served: Served,
    request: pb.WatchRequest,
    count: int,
    *,
    metadata: dict[str, str] | None = None,
    skip_heartbeats: bool = True,
) -> list[pb.Event]:
    events: list[pb.Event] = []
    with trio.fail_after(10):
        async with served.stub.WatchEvents(request, metadata=metadata) as call:
            async for event in call:
                if skip_heartbeats and event.type == "heartbeat":
                    continue
                events.append(event)
                if len(events) == count:
                    break
    return events


async def _watching(served: Served, n: int = 1) -> None:
    await wait_until(lambda: served.running.backends.events.subscriber_count == n)


async def test_file_uploaded_event(tmp_path: Path) -> None:
    async with running(tmp_path) as served, trio.open_nursery() as nursery:
        got: list[pb.Event] = []

        async def watch() -> None:
            got.extend(await _collect(served, pb.WatchRequest(), 1))

        nursery.start_soon(watch)
        await _watching(served)
        file_id = await upload(served.stub, b"hello world", "hello.txt")
    (event,) = got
    assert event.type == "file.uploaded"
    assert json.loads(event.payload) == {
        "file_id": file_id,
        "filename": "hello.txt",
        "size": 11,
        "checksum": "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
        "user_id": "",  # anonymous: open development mode
    }
    assert event.id
    assert abs(event.timestamp.ToNanoseconds() / 1e9 - time.time()) < 60


async def test_types_and_filter_select_events(tmp_path: Path) -> None:
    async with running(tmp_path) as served, trio.open_nursery() as nursery:
        csv_only: list[pb.Event] = []
        metrics_only: list[pb.Event] = []

        async def watch_csv() -> None:
            request = pb.WatchRequest(filter='filename ~ "*.csv" and size > 1000')
            csv_only.extend(await _collect(served, request, 1))

        async def watch_metrics() -> None:
            request = pb.WatchRequest(event_types=["metrics.collected"])
            metrics_only.extend(await _collect(served, request, 1))

        nursery.start_soon(watch_csv)
        nursery.start_soon(watch_metrics)
        await _watching(served, 2)
        await upload(served.stub, b"x" * 10, "small.csv")
        await upload(served.stub, b"x" * 5000, "big.txt")
        await upload(served.stub, b"x" * 2000, "big.csv")
        await served.stub.CollectMetrics([pb.Metric(name="cpu", value=1.0)])
    assert [json.loads(e.payload)["filename"] for e in csv_only] == ["big.csv"]
    assert [e.type for e in metrics_only] == ["metrics.collected"]
    assert json.loads(metrics_only[0].payload)["total_count"] == 1


@pytest.mark.parametrize(
    ("request_", "metadata", "needle"),
    [
        (pb.WatchRequest(filter="size >"), None, "expected a value"),
        (pb.WatchRequest(filter='filename ~ "*.csv" and'), None, "expected a field"),
        (pb.WatchRequest(filter="(size > 1"), None, "expected ')'"),
        (pb.WatchRequest(event_types=["file.deleted"]), None, "unknown event type"),
        (pb.WatchRequest(), {"last-event-id": "abc"}, "last-event-id"),
    ],
)
async def test_bad_watch_requests(
    tmp_path: Path, request_: pb.WatchRequest, metadata: dict[str, str] | None, needle: str
) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await _collect(served, request_, 1, metadata=metadata)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert needle in caught.value.details
        assert served.running.backends.events.subscriber_count == 0


async def test_heartbeats_on_an_idle_stream(tmp_path: Path) -> None:
    async with running(tmp_path, heartbeat_interval=0.1) as served:
        started = trio.current_time()
        beats = await _collect(
            served, pb.WatchRequest(event_types=["file.uploaded"]), 3, skip_heartbeats=False
        )
        assert [e.type for e in beats] == ["heartbeat"] * 3
        assert json.loads(beats[0].payload) == {}
        assert len({e.id for e in beats}) == 3  # distinct ids...
        # ...each resuming exactly: an event published now follows the last one.
        published = await served.running.backends.events.publish("file.uploaded", {"n": 1})
        (after,) = await _collect(
            served, pb.WatchRequest(), 1, metadata={"last-event-id": beats[-1].id}
        )
        assert after.id == published.id
        assert trio.current_time() - started >= 0.25  # paced by the interval


async def test_resume_replays_missed_events_then_live_ones(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        bus = served.running.backends.events
        published = [await bus.publish("batch.processed", {"n": n}) for n in range(5)]
        resume_from = published[1].id
        async with trio.open_nursery() as nursery:
            got: list[pb.Event] = []

            async def watch() -> None:
                got.extend(
                    await _collect(
                        served, pb.WatchRequest(), 5, metadata={"last-event-id": str(resume_from)}
                    )
                )

            nursery.start_soon(watch)
            await _watching(served)
            await bus.publish("batch.processed", {"n": 5})
            await bus.publish("batch.processed", {"n": 6})
    assert [json.loads(e.payload)["n"] for e in got] == [2, 3, 4, 5, 6]
    assert got[0].id == published[2].id


async def test_at_least_ten_thousand_events_are_retained(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        bus = served.running.backends.events
        published = [await bus.publish("sync.changed", {"n": n}) for n in range(10_050)]
        after = published[49].id  # the 10,000 most recent events follow it
        got = await _collect(
            served, pb.WatchRequest(), 10_000, metadata={"last-event-id": str(after)}
        )
        assert [json.loads(e.payload)["n"] for e in got] == list(range(50, 10_050))


async def test_slow_watcher_is_cut_off_and_resumes_without_gaps(tmp_path: Path) -> None:
    async with running(tmp_path) as served, trio.open_nursery() as nursery:
        bus = served.running.backends.events
        total = 3_000  # well past the 1,024-event queue plus the 64 KiB window
        padding = "p" * 1000  # ~1 KB events: the slow client's window fills fast
        fast: list[int] = []
        fast_done = trio.Event()

        async def fast_watcher() -> None:
            async for event in served.stub.WatchEvents(
                pb.WatchRequest(event_types=["batch.processed"])
            ):
                if event.type == "heartbeat":  # comes through any filter, when it is due
                    continue
                fast.append(json.loads(event.payload)["n"])
                if len(fast) == total:
                    fast_done.set()
                    return

        # The slow watcher: a small HTTP/2 window, and it reads nothing yet.
        small = ChannelOptions(connection=ConnectionConfig(stream_window=64 * 1024))
        async with Channel(served.address, options=small) as slow_channel:
            slow_stub = StreamingServiceStub(slow_channel)
            slow_call = slow_stub.WatchEvents(pb.WatchRequest(event_types=["batch.processed"]))
            await slow_call.initial_metadata()
            nursery.start_soon(fast_watcher)
            await _watching(served, 2)

            # The slow watcher reads nothing meanwhile: publishing that waited
            # for it would never finish (bounded here, not timed).
            with trio.fail_after(60):
                for n in range(total):
                    await bus.publish("batch.processed", {"n": n, "pad": padding})
                    if n % 200 == 199:
                        await trio.sleep(0.01)  # let the fast watcher drain
            with trio.fail_after(10):
                await fast_done.wait()
            assert fast == list(range(total))
            assert bus.cut_off == 1

            # The slow watcher reads what reached it, then the resume hint.
            slow: list[int] = []
            last_id = ""
            with pytest.raises(RpcError) as caught, trio.fail_after(10):
                async for event in slow_call:
                    last_id = event.id
                    if event.type != "heartbeat":  # sent before the flood began
                        slow.append(json.loads(event.payload)["n"])
            assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
            assert (
                caught.value.details == f"subscriber too slow; resume from last-event-id {last_id}"
            )
            assert 0 < len(slow) < total
            # Resuming from the hint replays the rest: nothing lost, nothing twice.
            rest = await _collect(
                served,
                pb.WatchRequest(event_types=["batch.processed"]),
                total - len(slow),
                metadata={"last-event-id": last_id},
            )
            assert slow + [json.loads(e.payload)["n"] for e in rest] == list(range(total))
    assert bus.subscriber_count == 0


async def test_cancelled_watchers_leave_no_subscription(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        bus = served.running.backends.events
        for _ in range(3):
            with trio.move_on_after(0.2):
                async for _event in served.stub.WatchEvents(pb.WatchRequest()):
                    pass
        await wait_until(lambda: bus.subscriber_count == 0, limit=1.0)
        assert served.running.service.active_calls["WatchEvents"] == 0


async def test_watch_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:
        bus = served.running.backends.events
        # Published to everyone: this test is about grpcio, not rooms.
        first = await bus.publish("chat.message", {"room_id": "a", "content": "one"})
        await bus.publish("chat.message", {"room_id": "b", "content": "two"})
        await bus.publish("chat.message", {"room_id": "b", "content": "three"})

        def watch() -> list[pb.Event]:
            call = stub.WatchEvents(
                pb.WatchRequest(event_types=["chat.message"], filter='room_id = "b"'),
                metadata=[("last-event-id", first.id)],
            )
            got = [next(call)]
            call.cancel()
            return got

        (event,) = await in_thread(watch)
        assert json.loads(event.payload)["content"] == "two"

        def bad_filter() -> None:
            next(stub.WatchEvents(pb.WatchRequest(filter="room_id ==")))

        with pytest.raises(grpc.RpcError) as caught:
            await in_thread(bad_filter)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        await wait_until(lambda: bus.subscriber_count == 0, limit=2.0)


def test_event_types_are_exactly_the_documented_ones() -> None:
    assert set(EVENT_TYPES) == {
        "file.uploaded",
        "chat.message",
        "metrics.collected",
        "batch.processed",
        "sync.changed",
        "heartbeat",
        "gap",
    }
