"""One UploadFile or DownloadFile with puregrpc's generated stub (see ``streaming_common``).

    python puregrpc_streaming_client.py upload HOST PORT PATH
    python puregrpc_streaming_client.py download HOST PORT FILE_ID DEST

The same work as the grpcio client around the call; file reads and writes
run in worker threads, 1 MiB at a time (as the service's own helpers do).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streaming_common as sc
import trio

from puregrpc.client import Channel
from puregrpc_streaming.protos import streaming_pb2 as pb
from puregrpc_streaming.protos.streaming_puregrpc import StreamingServiceStub


async def upload(stub: StreamingServiceStub, path: Path) -> None:
    size = (await trio.Path(path).stat()).st_size
    hasher = hashlib.sha256()

    async def chunks() -> AsyncIterator[pb.FileChunk]:
        offset = 0
        async with await trio.open_file(path, "rb") as file:
            while block := await file.read(sc.BLOCK_SIZE):
                hasher.update(block)
                view = memoryview(block)
                for start in range(0, len(block), sc.CHUNK_SIZE):
                    content = bytes(view[start : start + sc.CHUNK_SIZE])
                    yield pb.FileChunk(
                        content=content,
                        offset=offset,
                        total_size=size,
                        filename=sc.UPLOAD_NAME if offset == 0 else "",
                    )
                    offset += len(content)

    began = time.perf_counter()
    cpu_began = time.process_time()
    response = await stub.UploadFile(chunks(), timeout=600)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    checksum = hasher.hexdigest()
    if response.size != size or response.checksum != checksum:
        sc.fail(
            f"server stored {response.size} bytes, sha256 {response.checksum}; "
            f"sent {size} bytes, sha256 {checksum}"
        )
    sc.emit(bytes=size, seconds=seconds, cpu_seconds=cpu, sha256=checksum, file_id=response.file_id)


async def download(stub: StreamingServiceStub, file_id: str, dest: Path) -> None:
    hasher = hashlib.sha256()
    received = 0
    total = -1
    began = time.perf_counter()
    cpu_began = time.process_time()
    pending = bytearray()
    async with await trio.open_file(dest, "wb") as out:
        call = stub.DownloadFile(pb.DownloadRequest(file_id=file_id), timeout=600)
        async with call:
            async for chunk in call:
                if chunk.offset != received:
                    sc.fail(f"chunk at offset {chunk.offset}, expected {received}")
                total = chunk.total_size
                content = chunk.content
                hasher.update(content)
                pending += content
                received += len(content)
                if len(pending) >= sc.BLOCK_SIZE:
                    await out.write(bytes(pending))
                    pending.clear()
        await out.write(bytes(pending))
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    if received != total:
        sc.fail(f"received {received} bytes, the server announced {total}")
    sc.emit(bytes=received, seconds=seconds, cpu_seconds=cpu, sha256=hasher.hexdigest())


async def run() -> None:
    args = sc.client_args(sys.argv[1:])
    async with Channel(f"{args.host}:{args.port}") as channel:
        stub = StreamingServiceStub(channel)
        if args.command == "upload":
            await upload(stub, Path(args.path))
        else:
            await download(stub, args.file_id, Path(args.dest))


if __name__ == "__main__":
    trio.run(run)
