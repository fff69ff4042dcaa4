"""One UploadFile or DownloadFile on grpcio's blocking stub (see ``streaming_common``).

    python grpcio_streaming_client.py --stubs DIR upload HOST PORT PATH
    python grpcio_streaming_client.py --stubs DIR download HOST PORT FILE_ID DEST

``DIR`` holds the modules ``grpcio_streaming_server.py stubs`` generated.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streaming_common as sc


def upload(stub: Any, pb: Any, path: Path) -> None:
    size = path.stat().st_size
    hasher = hashlib.sha256()

    def chunks() -> Iterator[Any]:
        offset = 0
        with path.open("rb") as file:
            while block := file.read(sc.BLOCK_SIZE):
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
    response = stub.UploadFile(chunks(), timeout=600)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    checksum = hasher.hexdigest()
    if response.size != size or response.checksum != checksum:
        sc.fail(
            f"server stored {response.size} bytes, sha256 {response.checksum}; "
            f"sent {size} bytes, sha256 {checksum}"
        )
    sc.emit(bytes=size, seconds=seconds, cpu_seconds=cpu, sha256=checksum, file_id=response.file_id)


def download(stub: Any, pb: Any, file_id: str, dest: Path) -> None:
    hasher = hashlib.sha256()
    received = 0
    total = -1
    began = time.perf_counter()
    cpu_began = time.process_time()
    pending = bytearray()
    with dest.open("wb") as out:
        for chunk in stub.DownloadFile(pb.DownloadRequest(file_id=file_id), timeout=600):
            if chunk.offset != received:
                sc.fail(f"chunk at offset {chunk.offset}, expected {received}")
            total = chunk.total_size
            content = chunk.content
            hasher.update(content)
            pending += content
            received += len(content)
            if len(pending) >= sc.BLOCK_SIZE:
                out.write(pending)
                pending.clear()
        out.write(pending)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    if received != total:
        sc.fail(f"received {received} bytes, the server announced {total}")
    sc.emit(bytes=received, seconds=seconds, cpu_seconds=cpu, sha256=hasher.hexdigest())


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) < 2 or argv[0] != "--stubs":
        sc.fail("usage: grpcio_streaming_client.py --stubs DIR upload|download ...")
    sys.path.insert(0, argv[1])
    args = sc.client_args(argv[2:])

    import grpc
    from streaming.v1 import streaming_pb2, streaming_pb2_grpc  # generated at run time

    with grpc.insecure_channel(f"{args.host}:{args.port}") as channel:
        stub = streaming_pb2_grpc.StreamingServiceStub(channel)
        if args.command == "upload":
            upload(stub, streaming_pb2, Path(args.path))
        else:
            download(stub, streaming_pb2, args.file_id, Path(args.dest))


if __name__ == "__main__":
    main()
