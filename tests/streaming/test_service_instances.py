"""Two server instances on one data directory, at the same time.

Before issue #14 a second server on the same directory cleared
``files/tmp`` at startup and killed the first one's upload in progress
(UNKNOWN FileNotFoundError).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import trio
from service_support import chunks_of, running, upload

from puregrpc_streaming.backends.instances import InstanceLock
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub


async def download(stub: StreamingServiceStub, file_id: str) -> bytes:
    """The whole content of ``file_id``."""
    with trio.fail_after(20):
        return b"".join(
            [c.content async for c in stub.DownloadFile(pb.DownloadRequest(file_id=file_id))]
        )


async def test_a_second_instance_keeps_the_first_ones_upload(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    chunks = chunks_of(data, "first.bin")
    async with running(tmp_path) as first:
        with trio.fail_after(20):
            async with first.stub.UploadFile() as call:
                await call.send(chunks[0])
                parts = lambda: list((tmp_path / "files" / "tmp").glob("*.part"))  # noqa: E731
                while not parts():  # noqa: ASYNC110 - the server's file appears in a moment
                    await trio.sleep(0.01)
                async with running(tmp_path) as second:
                    assert parts(), "the second instance removed the first one's upload"
                    for chunk in chunks[1:]:
                        await call.send(chunk)
                    await call.done_writing()
                    response = await call.response()
                    assert response.checksum == hashlib.sha256(data).hexdigest()
                    # And the second instance serves what the first one stored.
                    assert await download(second.stub, response.file_id) == data


async def test_two_instances_upload_download_and_list_concurrently(tmp_path: Path) -> None:
    async with running(tmp_path) as one, running(tmp_path) as two:
        stubs = [one.stub, two.stub]
        stored: dict[str, bytes] = {}
        listed: list[int] = []

        async def uploader(n: int) -> None:
            data = os.urandom(100_000 + n)
            stored[await upload(stubs[n % 2], data, f"f{n}.bin")] = data

        async def lister(n: int) -> None:
            request = pb.ListRequest(page_size=500)
            listed.append(len([i async for i in stubs[n % 2].ListLargeDataset(request)]))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for n in range(8):
                    nursery.start_soon(uploader, n)
                    nursery.start_soon(lister, n)
            async with trio.open_nursery() as nursery:
                copies: dict[tuple[str, int], bytes] = {}

                async def fetch(file_id: str, n: int) -> None:
                    copies[(file_id, n)] = await download(stubs[n], file_id)

                for file_id in stored:
                    for n in (0, 1):  # each file from both instances
                        nursery.start_soon(fetch, file_id, n)
    assert len(stored) == 8
    assert all(copies[(file_id, n)] == data for file_id, data in stored.items() for n in (0, 1))
    assert listed == [one.config.dataset_rows] * 8
    assert list((tmp_path / "files" / "tmp").iterdir()) == []  # both cleaned up after themselves


async def test_startup_removes_only_what_dead_instances_left(tmp_path: Path) -> None:
    tmp = tmp_path / "files" / "tmp"
    tmp.mkdir(parents=True)
    dead = "0123456789abcdef"
    (tmp / f"{dead}.lock").write_bytes(b"")  # nobody holds it: its instance is gone
    (tmp / f"{dead}-aaaa.part").write_bytes(b"left by a crash")
    live = await trio.to_thread.run_sync(InstanceLock.acquire, tmp)
    (tmp / live.temp_name(".part")).write_bytes(b"an upload in progress elsewhere")
    try:
        async with running(tmp_path):
            names = sorted(p.name for p in tmp.iterdir())
    finally:
        live.release()
    assert f"{dead}-aaaa.part" not in names and f"{dead}.lock" not in names
    assert any(name.startswith(live.instance_id + "-") for name in names)
    assert f"{live.instance_id}.lock" in names


async def test_an_upload_session_begun_on_one_instance_resumes_on_the_other(
    tmp_path: Path,
) -> None:
    # Sessions belong to no instance: what one instance kept, the other
    # continues, while it serves downloads at the same time.
    data = os.urandom(2 << 20)
    chunks = chunks_of(data, "big.bin")
    session = [("upload-id", "session-across-instances")]
    async with running(tmp_path) as one, running(tmp_path) as two:
        other = os.urandom(300_000)
        other_id = await upload(two.stub, other, "other.bin")
        with trio.fail_after(20):
            async with one.stub.UploadFile(metadata=session) as call:
                assert (await call.initial_metadata())["upload-offset"] == "0"
                for chunk in chunks[:10]:
                    await call.send(chunk)
                with trio.move_on_after(0.3):
                    await trio.sleep_forever()  # the server takes what was sent
                call.cancel()
            while one.running.service.active_calls["UploadFile"]:  # noqa: ASYNC110
                await trio.sleep(0.01)
            copies: list[bytes] = []
            async with two.stub.UploadFile(metadata=session) as call:
                held = int((await call.initial_metadata())["upload-offset"])
                assert 0 < held <= 10 * 64 * 1024 and held % (64 * 1024) == 0
                async with trio.open_nursery() as nursery:

                    async def fetch() -> None:
                        copies.append(await download(one.stub, other_id))

                    nursery.start_soon(fetch)
                    for chunk in chunks[held // (64 * 1024) :]:
                        await call.send(chunk)
                response = await call.response()
        assert response.checksum == hashlib.sha256(data).hexdigest()  # the whole file
        assert await download(one.stub, response.file_id) == data
        assert copies == [other]
