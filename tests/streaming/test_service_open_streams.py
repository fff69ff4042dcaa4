"""Open-ended streams: no server default deadline ends a watch or a chat, and
the reconnecting watcher resumes after DEADLINE_EXCEEDED as after UNAVAILABLE.

The day-long test runs on trio's MockClock at real speed (``rate = 1``, so
``fail_after`` still bounds it) and jumps it forward by 25 hours: longer than
the 24 h default deadline the service used to give WatchEvents and Chat.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing
from service_support import running, wait_until

from puregrpc.testing import serve_in_memory
from puregrpc_streaming.backends import open_embedded_backends
from puregrpc_streaming.client_helpers import EventWatcher
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub
from puregrpc_streaming.service import ServiceSettings, StreamingService

DAY_AND_AN_HOUR = 25 * 3600.0


async def test_watch_and_chat_outlive_a_day_without_client_deadlines(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    mock_clock.rate = 1.0  # real time flows too: fail_after bounds the test
    async with open_embedded_backends(tmp_path, dataset_rows=10) as backends:
        # Heartbeats every 10 h: a few during the jump, not thousands.
        service = StreamingService(backends, ServiceSettings(heartbeat_interval=36_000.0))
        async with serve_in_memory(service, interceptors=service.interceptors()) as served:
            stub = served.stub(StreamingServiceStub)
            watch = stub.WatchEvents(pb.WatchRequest(event_types=["batch.processed"]))
            chat = stub.Chat(metadata=[("user-id", "ann"), ("room-id", "lobby")])
            async with watch, chat:
                await watch.initial_metadata()
                await chat.initial_metadata()
                mock_clock.jump(DAY_AND_AN_HOUR)
                await trio.sleep(0.05)  # the server's timers see the jump
                await backends.events.publish("batch.processed", {"n": 1})
                await chat.send(pb.ChatMessage(content="still here"))
                with trio.fail_after(5):
                    event = await watch.receive()
                    while event is not None and event.type == "heartbeat":
                        event = await watch.receive()
                    said = await chat.receive()
                    while said is not None and said.user_id == "system":
                        said = await chat.receive()
                assert event is not None and json.loads(event.payload) == {"n": 1}
                assert said is not None and said.content == "still here"
                await chat.done_writing()
                watch.cancel()
            await wait_until(lambda: service.active_calls["Chat"] == 0)
            assert backends.events.subscriber_count == 0


async def test_watcher_resumes_after_deadline_exceeded(tmp_path: Path) -> None:
    # The server's default deadline (overridden to 0.3 s) ends each watch.
    async with running(tmp_path, deadlines={"WatchEvents": 0.3}) as served:
        bus = served.running.backends.events
        watcher = EventWatcher(served.stub, event_types=["batch.processed"])
        got: list[int] = []
        events = watcher.events()
        try:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:

                    async def publish() -> None:
                        for n in range(3):
                            await wait_until(lambda: bus.subscriber_count == 1)
                            await bus.publish("batch.processed", {"n": n})
                            await trio.sleep(0.4)  # past the deadline: a new stream

                    nursery.start_soon(publish)
                    async for event in events:
                        got.append(json.loads(event.payload)["n"])
                        if len(got) == 3:
                            break
        finally:
            await events.aclose()
    assert got == [0, 1, 2]
    assert watcher.reconnects >= 2
