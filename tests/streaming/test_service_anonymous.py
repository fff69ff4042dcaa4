"""Open development mode: each connection is an anonymous caller of its own.

Before, every anonymous caller was one and the same: an anonymous client
replaying the event log (``last-event-id: 0``) saw every other anonymous
client's ``file.uploaded`` events, file ids included (enough to download
the files), and their metrics and batch summaries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import trio
from service_support import chunks_of, running, upload, wait_until

from puregrpc.client import Channel
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub


async def replayed(stub: StreamingServiceStub) -> list[pb.Event]:
    """Every event the caller may see from the start of the log, up to the first heartbeat."""
    events: list[pb.Event] = []
    with trio.fail_after(10):
        call = stub.WatchEvents(pb.WatchRequest(), metadata=[("last-event-id", "0")])
        async with call:
            async for event in call:
                if event.type == "heartbeat":
                    break
                events.append(event)
    return events


#: Events about a caller's own work.
PRIVATE = ("file.uploaded", "metrics.collected", "batch.processed")


def private(events: list[pb.Event]) -> list[str]:
    """The types of the events that are some caller's own (everyone's skipped)."""
    return [e.type for e in events if e.type in PRIVATE]


async def offset_of(stub: StreamingServiceStub, upload_id: str) -> int:
    """The ``upload-offset`` the server answers for session ``upload_id``."""
    with trio.fail_after(10):
        call = stub.UploadFile(metadata=[("upload-id", upload_id)])
        async with call:
            offset = (await call.initial_metadata())["upload-offset"]
            call.cancel()
    return int(str(offset))


async def test_one_anonymous_client_sees_none_of_anothers_events(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        ann = served.stub
        file_id = await upload(ann, b"ann's notes", "notes.txt")
        summary = await ann.CollectMetrics(
            iter([pb.Metric(name="cpu", value=1.0), pb.Metric(name="cpu", value=3.0)])
        )
        assert summary.total_count == 2
        ann_sees = await replayed(ann)
        async with Channel(served.address) as other:
            bob_sees = await replayed(StreamingServiceStub(other))
        # A connection is a caller for as long as it is open: a new one is someone else.
        async with Channel(served.address) as later:
            later_sees = await replayed(StreamingServiceStub(later))

    uploads = [json.loads(e.payload) for e in ann_sees if e.type == "file.uploaded"]
    assert [u["file_id"] for u in uploads] == [file_id]
    assert uploads[0]["user_id"] == ""
    assert len(private(ann_sees)) == 2, [e.type for e in ann_sees]
    assert private(bob_sees) == []
    assert private(later_sees) == []
    assert all(file_id not in e.payload for e in bob_sees + later_sees)


async def test_an_anonymous_upload_session_is_reached_by_its_id_only(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    chunks = chunks_of(data, "half.bin")
    ann_id = "ann-" + os.urandom(12).hex()  # what the client helpers choose: random
    async with running(tmp_path) as served:
        with trio.fail_after(10):
            call = served.stub.UploadFile(metadata=[("upload-id", ann_id)])
            async with call:
                await call.initial_metadata()
                for chunk in chunks[:8]:  # half the file, then the client goes away
                    await call.send(chunk)
                with trio.move_on_after(0.3):
                    await trio.sleep_forever()  # the server reads what was sent
                call.cancel()
        store = served.running.backends.files
        await wait_until(lambda: not store.counters.open_uploads)
        async with Channel(served.address) as other:
            bob = StreamingServiceStub(other)
            # Another client with a session of its own starts from nothing...
            assert await offset_of(bob, "bob-" + os.urandom(12).hex()) == 0
            bob_sees = await replayed(bob)
        # ...and the uploader, back on a new connection, resumes with its id.
        async with Channel(served.address) as back:
            held = await offset_of(StreamingServiceStub(back), ann_id)
    assert 0 < held <= 8 * 64 * 1024
    assert all(ann_id not in e.payload for e in bob_sees)
