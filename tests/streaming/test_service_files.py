"""UploadFile and DownloadFile end to end: puregrpc and grpcio clients, bad inputs,
cancellation and cleanup, restart and resume, chunk sizes, backpressure."""

from __future__ import annotations

import hashlib
import os
import resource
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trio
from service_support import (
    Served,
    chunks_of,
    files_in,
    grpcio_stub,
    grpcio_stubs,
    in_thread,
    running,
    sha256,
    upload,
    wait_until,
)

from puregrpc import RpcError, StatusCode
from puregrpc_streaming.backends.files import LocalFileStore
from puregrpc_streaming.protos import streaming_pb2 as pb

__all__ = ["grpcio_stubs"]  # the fixture, imported for pytest

KIB = 1024
MIB = 1024 * 1024


def _store(served: Served) -> LocalFileStore:
    return served.running.backends.files


async def _download(served: Served, file_id: str, start: int = 0) -> list[pb.FileChunk]:
    with trio.fail_after(30):
        return [
            c
            async for c in served.stub.DownloadFile(
                pb.DownloadRequest(file_id=file_id, start_offset=start)
            )
        ]


# --------------------------------------------------------------- round trips


async def test_upload_then_download_with_puregrpc(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    async with running(tmp_path) as served:
        file_id = await upload(served.stub, data, "report.csv")
        chunks = await _download(served, file_id)
        assert b"".join(c.content for c in chunks) == data
        # 64 KiB chunks, contiguous offsets, the size and name on each.
        assert [len(c.content) for c in chunks] == [65536] * 4 + [300_000 - 4 * 65536]
        assert [c.offset for c in chunks] == [i * 65536 for i in range(5)]
        assert {(c.total_size, c.filename) for c in chunks} == {(300_000, "report.csv")}
        # Only the committed file and its record remain: no temporary files.
        assert files_in(tmp_path) == [f"{file_id}.data", f"{file_id}.json"]
        assert _store(served).counters.open_readers == 0


async def test_upload_then_download_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    data = os.urandom(200_000)
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:
        response = await in_thread(stub.UploadFile, iter(chunks_of(data, "g.bin")))
        assert response.size == len(data)
        assert response.checksum == hashlib.sha256(data).hexdigest()
        assert response.file_id

        def download() -> list[pb.FileChunk]:
            return list(stub.DownloadFile(pb.DownloadRequest(file_id=response.file_id)))

        chunks = await in_thread(download)
        assert b"".join(c.content for c in chunks) == data
        # A file uploaded by grpcio downloads the same with puregrpc.
        assert sha256(c.content for c in await _download(served, response.file_id)) == (
            response.checksum
        )


async def test_empty_file(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        file_id = await upload(served.stub, b"", "empty.txt")
        assert await _download(served, file_id) == []


@pytest.mark.parametrize("chunk_size", [16 * KIB, 32 * KIB])
async def test_configured_chunk_size(tmp_path: Path, chunk_size: int) -> None:
    data = os.urandom(100_000)
    async with running(tmp_path, chunk_size=chunk_size) as served:
        file_id = await upload(served.stub, data)
        chunks = await _download(served, file_id)
        assert {len(c.content) for c in chunks[:-1]} == {chunk_size}
        assert b"".join(c.content for c in chunks) == data


async def test_resume_from_offset(tmp_path: Path) -> None:
    data = os.urandom(150_000)
    async with running(tmp_path) as served:
        file_id = await upload(served.stub, data)
        chunks = await _download(served, file_id, start=100_001)
        assert chunks[0].offset == 100_001
        assert b"".join(c.content for c in chunks) == data[100_001:]
        # At the end: an empty, successful stream.
        assert await _download(served, file_id, start=len(data)) == []
        with pytest.raises(RpcError) as beyond:
            await _download(served, file_id, start=len(data) + 1)
        assert beyond.value.code is StatusCode.OUT_OF_RANGE
        with pytest.raises(RpcError) as negative:
            await _download(served, file_id, start=-1)
        assert negative.value.code is StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("file_id", "code"),
    [
        ("", StatusCode.INVALID_ARGUMENT),
        ("../streaming.sqlite3", StatusCode.INVALID_ARGUMENT),
        ("..", StatusCode.INVALID_ARGUMENT),
        ("/etc/passwd", StatusCode.INVALID_ARGUMENT),
        ("tmp\\x", StatusCode.INVALID_ARGUMENT),
        ("nope", StatusCode.NOT_FOUND),
        ("0" * 32, StatusCode.NOT_FOUND),
        ("streaming", StatusCode.NOT_FOUND),
    ],
)
async def test_download_bad_ids(tmp_path: Path, file_id: str, code: StatusCode) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await _download(served, file_id)
        assert caught.value.code is code
        assert caught.value.details  # a message naming the problem


async def test_download_record_name_is_not_an_id(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        file_id = await upload(served.stub, b"x" * 10)
        for probe in (f"{file_id}.json", f"{file_id}.data", file_id.upper()):
            with pytest.raises(RpcError) as caught:
                await _download(served, probe)
            assert caught.value.code is StatusCode.NOT_FOUND


async def test_download_bad_id_with_grpcio(tmp_path: Path, grpcio_stubs: ModuleType) -> None:
    async with running(tmp_path) as served, grpcio_stub(grpcio_stubs, served.address) as stub:

        def download() -> None:
            list(stub.DownloadFile(pb.DownloadRequest(file_id="f" * 32)))

        with pytest.raises(grpc.RpcError) as caught:
            await in_thread(download)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------ bad uploads


def _chunk(offset: int, content: bytes = b"abc", filename: str = "") -> pb.FileChunk:
    return pb.FileChunk(content=content, offset=offset, filename=filename)


@pytest.mark.parametrize(
    ("chunks", "needle"),
    [
        ([_chunk(0, filename="a/b.txt")], "path separator"),
        ([_chunk(0, filename="a\\b.txt")], "path separator"),
        ([_chunk(0, filename="..")], "'..'"),
        ([_chunk(0, filename="x..y")], "'..'"),
        ([_chunk(0)], "filename"),
        ([], "no chunks"),
        ([_chunk(3, filename="a.txt")], "expected offset 0"),
        ([_chunk(0, filename="a.txt"), _chunk(4)], "expected offset 3"),
        ([_chunk(0, filename="a.txt"), _chunk(0)], "expected offset 3"),
        ([_chunk(0, filename="a.txt"), _chunk(3, filename="b.txt")], "names 'b.txt'"),
        (
            [pb.FileChunk(content=b"abc", offset=0, total_size=10, filename="a.txt")],
            "after 3 of the announced 10",
        ),
    ],
)
async def test_upload_bad_input(tmp_path: Path, chunks: list[pb.FileChunk], needle: str) -> None:
    async with running(tmp_path) as served:
        with pytest.raises(RpcError) as caught:
            await served.stub.UploadFile(chunks)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert needle in caught.value.details
        await wait_until(lambda: files_in(tmp_path) == [], limit=1.0)
        assert _store(served).counters.open_uploads == 0


async def test_upload_over_quota(tmp_path: Path) -> None:
    async with running(tmp_path, max_upload_bytes=100_000) as served:
        with pytest.raises(RpcError) as streamed:
            await served.stub.UploadFile(chunks_of(os.urandom(150_000), "big.bin", 16 * KIB))
        assert streamed.value.code is StatusCode.RESOURCE_EXHAUSTED
        # Announced too big: refused on the first chunk.
        with pytest.raises(RpcError) as announced:
            await served.stub.UploadFile(
                [pb.FileChunk(content=b"x", offset=0, total_size=100_001, filename="big.bin")]
            )
        assert announced.value.code is StatusCode.RESOURCE_EXHAUSTED
        assert "100000" in announced.value.details
        await wait_until(lambda: files_in(tmp_path) == [], limit=1.0)
        # Exactly at the limit is fine.
        await upload(served.stub, os.urandom(100_000))


# ----------------------------------------------------- cancellation, cleanup


async def test_cancel_mid_upload_leaves_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        store = _store(served)
        sent = trio.Event()

        async def chunks() -> AsyncIterator[pb.FileChunk]:
            for i in range(20):
                yield pb.FileChunk(content=b"z" * 65536, offset=i * 65536, filename="part.bin")
            sent.set()
            await trio.sleep_forever()

        with trio.move_on_after(10) as scope:
            async with trio.open_nursery() as nursery:

                async def call() -> None:
                    await served.stub.UploadFile(chunks())

                nursery.start_soon(call)
                await sent.wait()
                # The server has the upload open, with a temporary file...
                await wait_until(lambda: store.counters.open_uploads == 1)
                assert any(name.endswith(".part") for name in files_in(tmp_path))
                nursery.cancel_scope.cancel()  # ...and the client cancels.
        assert not scope.cancelled_caught
        # The abort unlinks in a worker thread, then counts: wait for both.
        await wait_until(lambda: files_in(tmp_path) == [] and store.counters.aborts == 1, limit=1.0)
        assert store.counters.open_uploads == 0


async def test_grpcio_client_cancelling_mid_upload_leaves_nothing(
    tmp_path: Path, grpcio_stubs: ModuleType
) -> None:
    async with running(tmp_path) as served:
        store = _store(served)
        release = threading.Event()

        def chunks() -> Iterator[pb.FileChunk]:
            for i in range(8):
                yield pb.FileChunk(content=b"y" * 65536, offset=i * 65536, filename="g.bin")
            release.wait(10)  # grpcio's sending thread holds the upload open

        async with grpcio_stub(grpcio_stubs, served.address) as stub:
            future = stub.UploadFile.future(chunks())
            try:
                await wait_until(lambda: store.counters.open_uploads == 1)
                future.cancel()
                await wait_until(lambda: files_in(tmp_path) == [], limit=1.0)
                assert store.counters.open_uploads == 0
            finally:
                release.set()


async def test_cancel_mid_download_stops_reading(tmp_path: Path) -> None:
    async with running(tmp_path) as served:
        store = _store(served)
        file_id = await upload(served.stub, os.urandom(8 * MIB))
        reads_before = store.counters.reads
        received = 0
        with trio.fail_after(10):
            async with served.stub.DownloadFile(pb.DownloadRequest(file_id=file_id)) as call:
                async for chunk in call:
                    received += len(chunk.content)
                    if received >= 3 * 65536:
                        break
        # Leaving the block cancelled the call: the reader is closed at once...
        await wait_until(lambda: store.counters.open_readers == 0, limit=1.0)
        reads_at_cancel = store.counters.reads
        await trio.sleep(0.3)
        # ...no read happens after that, and the server read ahead no more
        # than the flow-control window (1 MiB) and a chunk or two.
        assert store.counters.reads == reads_at_cancel
        assert (reads_at_cancel - reads_before) * 65536 <= received + 1 * MIB + 2 * 65536
        assert served.running.service.active_calls["DownloadFile"] == 0


async def test_restart_mid_download_then_resume(tmp_path: Path) -> None:
    data = os.urandom(2 * MIB + 12345)
    received: list[bytes] = []
    async with running(tmp_path) as served:
        file_id = await upload(served.stub, data, "movie.mkv")
        with trio.fail_after(10):
            async with served.stub.DownloadFile(pb.DownloadRequest(file_id=file_id)) as call:
                async for chunk in call:
                    received.append(chunk.content)
                    if len(received) == 10:
                        break
    # The server is gone; a new one on the same data dir serves the file.
    offset = sum(map(len, received))
    async with running(tmp_path) as served:
        rest = await _download(served, file_id, start=offset)
        assert rest[0].offset == offset
        assert rest[0].filename == "movie.mkv"
        received.extend(c.content for c in rest)
    assert sha256(received) == hashlib.sha256(data).hexdigest()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
async def test_slow_reader_bounds_server_memory(tmp_path: Path) -> None:
    size = 200 * MIB
    async with running(tmp_path) as served:
        store = _store(served)
        # Stored through the backend directly: a 200 MiB upload over gRPC
        # would only make the test slower.
        sink = await store.begin_upload("zeros.bin")
        block = bytes(MIB)
        for _ in range(size // MIB):
            await sink.write(block)
        stored = await sink.commit()
        del block
        baseline = _rss_bytes()
        peak = baseline
        received = 0
        reads_before = store.counters.bytes_read
        with trio.fail_after(60):
            async with served.stub.DownloadFile(pb.DownloadRequest(file_id=stored.file_id)) as call:
                async for chunk in call:
                    received += len(chunk.content)
                    if received <= 4 * MIB:
                        # A slow reader: the server reads only what fits the
                        # window ahead of it, however long we take.
                        await trio.sleep(0.002)
                        ahead = store.counters.bytes_read - reads_before - received
                        assert ahead <= 1 * MIB + 3 * 65536
                    if received % (4 * MIB) == 0:
                        peak = max(peak, _rss_bytes())
        assert received == size
        peak = max(peak, _rss_bytes())
        # 200 MiB went through; the process grew by far less than that.
        assert peak - baseline < 40 * MIB, f"RSS grew by {(peak - baseline) / MIB:.1f} MiB"
