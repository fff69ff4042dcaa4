"""Client helpers at wire speed: upload_file/download_file against a minimal client.

    .venv/bin/python bench/streaming_helpers.py [--size-mib N] [--repeats N]

Starts ``puregrpc-streaming serve`` (a subprocess, open mode, a temporary
data directory) and moves the demo's 64 MiB of random bytes (``--size-mib``)
both ways, each way twice per repeat:

* **helpers**: :func:`~puregrpc_streaming.client_helpers.upload_file` (reads
  the file, hashes it, checks the server's sha256) and
  :func:`~puregrpc_streaming.client_helpers.download_file` (writes
  ``.part``, hashes, fsyncs, renames, checks the sha256);
* **minimal**: the same transfers written as plainly as they can be, with
  the generated stub alone: the upload reads 64 KiB chunks from the file
  with blocking reads and sends them, the download writes each chunk with
  a blocking write (no hashing, no fsync, no resume, no checks); also
  ``bare``: the same without the file (chunks sliced from memory, received
  chunks dropped), the client's wire speed.

Prints MB/s (10^6 bytes / s, medians of ``--repeats``) and the helpers'
share of the minimal client's rate (the criterion of issue #14: >= 80%).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio
from streaming_server import served

from puregrpc.client import Channel
from puregrpc_streaming.client_helpers import UploadResult, download_file, upload_file
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub

CHUNK = 64 * 1024


async def minimal_upload(stub: StreamingServiceStub, source: Path | bytes, size: int) -> str:
    """Upload ``source`` (a file, or bytes in memory) of ``size`` bytes with the stub alone.

    Returns the file id.
    """

    async def chunks() -> AsyncIterator[pb.FileChunk]:
        if isinstance(source, bytes):
            view = memoryview(source)
            read = lambda offset: bytes(view[offset : offset + CHUNK])  # noqa: E731
        else:
            file = source.open("rb")
            read = lambda offset: file.read(CHUNK)  # noqa: E731
        for offset in range(0, size, CHUNK):
            yield pb.FileChunk(
                content=read(offset),
                offset=offset,
                total_size=size,
                filename="minimal.bin" if offset == 0 else "",
            )

    response = await stub.UploadFile(chunks(), timeout=600)
    return response.file_id


async def minimal_download(stub: StreamingServiceStub, file_id: str, dest: Path | None) -> int:
    """Download ``file_id`` with the stub alone (to ``dest``, or dropped); returns the size."""
    received = 0
    out = None if dest is None else dest.open("wb")
    async for chunk in stub.DownloadFile(pb.DownloadRequest(file_id=file_id), timeout=600):
        if out is not None:
            out.write(chunk.content)
        received += len(chunk.content)
    if out is not None:
        out.close()
    return received


async def measure(address: str, source: Path, repeats: int, work: Path) -> None:
    """Each transfer ``repeats`` times against the server at ``address``."""
    data = await trio.Path(source).read_bytes()
    size = len(data)
    kinds = ("helpers", "minimal", "bare", "received")
    rates: dict[tuple[str, str], list[float]] = {
        (kind, way): [] for kind in kinds for way in ("up", "down")
    }
    dest = work / "copy.bin"

    def note(kind: str, way: str, started: float) -> None:
        rates[(kind, way)].append(size / (time.perf_counter() - started) / 1e6)

    async with Channel(address) as channel:
        stub = StreamingServiceStub(channel)
        for repeat in range(repeats):
            started = time.perf_counter()
            uploaded = await upload_file(stub, source, call_timeout=600)
            note("helpers", "up", started)
            rates[("received", "up")].append(size / uploaded.elapsed / 1e6)
            started = time.perf_counter()
            await minimal_upload(stub, source, size)
            note("minimal", "up", started)
            started = time.perf_counter()
            file_id = await minimal_upload(stub, data, size)
            note("bare", "up", started)

            async def helpers_down(uploaded: UploadResult = uploaded) -> None:
                started = time.perf_counter()
                result = await download_file(
                    stub, uploaded.file_id, dest, expected_sha256=uploaded.checksum
                )
                note("helpers", "down", started)
                # The helper's own figure: receiving only (fsync and rename excluded).
                rates[("received", "down")].append(size / result.transfer_time / 1e6)
                assert result.checksum_verified
                await trio.Path(dest).unlink()

            async def minimal_down(file_id: str = file_id) -> None:
                started = time.perf_counter()
                assert await minimal_download(stub, file_id, dest) == size
                note("minimal", "down", started)
                await trio.Path(dest).unlink()

            # Alternate which goes first: the disk's state after the uploads
            # (writeback in progress) must not always fall on the same one.
            for step in (helpers_down, minimal_down)[:: 1 if repeat % 2 else -1]:
                await step()
            started = time.perf_counter()
            assert await minimal_download(stub, file_id, None) == size
            note("bare", "down", started)
    median = {key: statistics.median(values) for key, values in rates.items()}
    print(f"{size / 2**20:.0f} MiB, medians of {repeats}, MB/s:")
    for way, label in (("up", "upload"), ("down", "download")):
        helpers, minimal, bare, received = (median[(kind, way)] for kind in kinds)
        print(
            f"  {label:8} helpers {helpers:6.1f} (without fsync {received:6.1f})  minimal "
            f"{minimal:6.1f}  bare {bare:6.1f}  helpers/minimal {helpers / minimal:6.1%}"
        )


def main() -> None:
    """Parse the arguments, start the server, measure, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-helpers-") as tmp:
        work = Path(tmp)
        source = work / "source.bin"
        source.write_bytes(os.urandom(args.size_mib << 20))
        print(f"sha256 {hashlib.sha256(source.read_bytes()).hexdigest()[:16]}...")
        with served() as server:
            trio.run(measure, server.address, source, args.repeats, work)


if __name__ == "__main__":
    main()
