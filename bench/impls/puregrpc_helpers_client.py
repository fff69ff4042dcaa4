"""One transfer by the streaming service's client helpers, or by a minimal client.

    python puregrpc_helpers_client.py helpers-upload   HOST PORT PATH
    python puregrpc_helpers_client.py minimal-upload   HOST PORT SIZE
    python puregrpc_helpers_client.py helpers-download HOST PORT FILE_ID DEST
    python puregrpc_helpers_client.py minimal-download HOST PORT FILE_ID

The two sides of the comparison of issue #14 ("client helpers at wire speed"):

* ``helpers-*``: :func:`puregrpc_streaming.client_helpers.upload_file` (a
  resumable session, as the demo and the ``upload`` command use it: the file
  read in blocks and hashed, the server's sha256 checked) and
  :func:`~puregrpc_streaming.client_helpers.download_file` (``DEST.part``
  written and hashed, fsynced, renamed, sha256 checked against the
  server's record), on a channel from
  :func:`~puregrpc_streaming.client_helpers.open_channel`;
* ``minimal-*``: the generated stub alone on a bare :class:`Channel`: the
  upload sends ``SIZE`` bytes from memory as 64 KiB chunks (sliced before
  the clock starts), the download receives the chunks and drops them. No
  file, no hash, no checks: what the client's wire costs.

Prints one line ``RESULT {json}``: ``bytes``, ``seconds`` (the call's wall
time: for the helpers the whole helper call, fsync and rename included),
``cpu_seconds`` (the process's CPU time over the same span, all threads),
``minor_faults``, ``voluntary_switches`` and ``involuntary_switches`` over
the same span (``getrusage``: counts that do not depend on how busy the
machine is), ``sha256`` and ``file_id`` (uploads).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streaming_common as sc
import trio

from puregrpc.client import Channel
from puregrpc_streaming.client_helpers import (
    RetryPolicy,
    download_file,
    open_channel,
    upload_file,
)
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub


async def measured(call: Callable[[], Awaitable[dict[str, object]]]) -> None:
    """Run ``call`` and print its record with the span's wall, CPU and rusage counts."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    cpu_began = time.process_time()
    record = await call()
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    after = resource.getrusage(resource.RUSAGE_SELF)
    sc.emit(
        seconds=seconds,
        cpu_seconds=cpu,
        minor_faults=after.ru_minflt - usage.ru_minflt,
        voluntary_switches=after.ru_nvcsw - usage.ru_nvcsw,
        involuntary_switches=after.ru_nivcsw - usage.ru_nivcsw,
        **record,
    )


async def helpers_upload(target: str, path: Path) -> None:
    async with open_channel(target) as channel:
        stub = StreamingServiceStub(channel)

        async def call() -> dict[str, object]:
            result = await upload_file(stub, path, call_timeout=600, retry=RetryPolicy(attempts=2))
            return {"bytes": result.size, "sha256": result.checksum, "file_id": result.file_id}

        await measured(call)


async def minimal_upload(target: str, size: int) -> None:
    data = os.urandom(size)
    view = memoryview(data)
    contents = [bytes(view[i : i + sc.CHUNK_SIZE]) for i in range(0, size, sc.CHUNK_SIZE)]
    async with Channel(target) as channel:
        stub = StreamingServiceStub(channel)

        async def chunks() -> AsyncIterator[pb.FileChunk]:
            offset = 0
            for content in contents:
                yield pb.FileChunk(
                    content=content,
                    offset=offset,
                    total_size=size,
                    filename="minimal.bin" if offset == 0 else "",
                )
                offset += len(content)

        async def call() -> dict[str, object]:
            response = await stub.UploadFile(chunks(), timeout=600)
            if response.size != size:
                sc.fail(f"the server stored {response.size} bytes of {size}")
            return {"bytes": size, "sha256": response.checksum, "file_id": response.file_id}

        await measured(call)


async def helpers_download(target: str, file_id: str, dest: Path) -> None:
    async with open_channel(target) as channel:
        stub = StreamingServiceStub(channel)

        async def call() -> dict[str, object]:
            result = await download_file(stub, file_id, dest, retry=RetryPolicy(attempts=2))
            if not result.checksum_verified:
                sc.fail("the server sent no sha256 to verify the download against")
            return {"bytes": result.size, "sha256": result.sha256}

        await measured(call)


async def minimal_download(target: str, file_id: str) -> None:
    async with Channel(target) as channel:
        stub = StreamingServiceStub(channel)

        async def call() -> dict[str, object]:
            received = 0
            async for chunk in stub.DownloadFile(pb.DownloadRequest(file_id=file_id), timeout=600):
                received += len(chunk.content)
            return {"bytes": received, "sha256": ""}

        await measured(call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, extra in (
        ("helpers-upload", ("path",)),
        ("minimal-upload", ("size",)),
        ("helpers-download", ("file_id", "dest")),
        ("minimal-download", ("file_id",)),
    ):
        command = commands.add_parser(name)
        command.add_argument("host")
        command.add_argument("port", type=int)
        for argument in extra:
            command.add_argument(argument)
    args = parser.parse_args()
    target = f"{args.host}:{args.port}"
    if args.command == "helpers-upload":
        trio.run(helpers_upload, target, Path(args.path))
    elif args.command == "minimal-upload":
        trio.run(minimal_upload, target, int(args.size))
    elif args.command == "helpers-download":
        trio.run(helpers_download, target, args.file_id, Path(args.dest))
    else:
        trio.run(minimal_download, target, args.file_id)


if __name__ == "__main__":
    main()
