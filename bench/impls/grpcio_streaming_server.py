"""UploadFile and DownloadFile of streaming.v1 on grpcio's sync server: the yardstick.

    python grpcio_streaming_server.py stubs OUT_DIR
    python grpcio_streaming_server.py serve --stubs OUT_DIR --data-dir DIR PORT

``stubs`` generates grpcio's modules from ``proto/streaming/v1/streaming.proto``
with ``grpc_tools.protoc`` (so nothing grpcio-specific is checked in);
``serve`` runs ``grpc.server(ThreadPoolExecutor)`` with the two RPCs written
as one would on grpcio, with the semantics of puregrpc_streaming's handlers
(``puregrpc_streaming/handlers/files.py`` and ``backends/files.py``):

* UploadFile: the first chunk names the file (plain name, checked the same
  way) and may announce ``total_size``; offsets must be contiguous from 0;
  bytes go to ``DIR/tmp/*.part``, hashed (sha256) as they arrive, then
  fsync, rename to ``DIR/<id>.data``, and a ``<id>.json`` record written to a
  temporary name, fsynced and renamed, then the directory fsynced. Any
  failure deletes the temporary file.
* DownloadFile: 64 KiB chunks from ``start_offset``, each carrying offset,
  total size and filename; one chunk is read only when grpcio asks the
  generator for the next message, so memory stays at about one chunk.

Every other RPC answers UNIMPLEMENTED (the generated servicer's default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streaming_common as sc

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
PROTO_FILE = PROTO_ROOT / "streaming" / "v1" / "streaming.proto"

#: Largest accepted upload (puregrpc_streaming's default ``max_upload_bytes``).
MAX_UPLOAD_BYTES = 1 << 30
#: Worker threads: one call at a time is measured, a few spare.
WORKERS = 8


def generate_stubs(out_dir: Path) -> None:
    """Write ``streaming/v1/streaming_pb2.py`` and ``_pb2_grpc.py`` under ``out_dir``."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/timestamp.proto
    out_dir.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO_FILE),
        ]
    )
    if code != 0:
        raise SystemExit(f"grpc_tools.protoc failed ({code}) on {PROTO_FILE}")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_servicer(stubs: Any, pb: Any, root: Path) -> Any:
    """A servicer storing files under ``root`` (``stubs``/``pb``: the generated modules)."""
    import grpc

    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)

    def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
        context.abort(code, message)
        raise AssertionError("context.abort returns only by raising")

    class Files(stubs.StreamingServiceServicer):  # type: ignore[misc]
        def UploadFile(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
            part: Path | None = None
            handle = None
            hasher = hashlib.sha256()
            size = 0
            filename = ""
            declared = 0
            try:
                for chunk in request_iterator:
                    if handle is None:
                        problem = sc.filename_problem(chunk.filename)
                        if problem is not None:
                            abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)
                        filename = chunk.filename
                        declared = chunk.total_size
                        if declared < 0:
                            abort(
                                context,
                                grpc.StatusCode.INVALID_ARGUMENT,
                                f"total_size {declared} is negative",
                            )
                        if declared > MAX_UPLOAD_BYTES:
                            abort(
                                context,
                                grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"file of {declared} bytes exceeds the upload limit",
                            )
                        part = tmp / f"{secrets.token_hex(8)}.part"
                        handle = open(part, "wb")  # noqa: SIM115 - closed in finally
                    elif chunk.filename and chunk.filename != filename:
                        abort(
                            context,
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"chunk at offset {chunk.offset} names {chunk.filename!r}, "
                            f"but this upload is {filename!r}",
                        )
                    if chunk.offset != size:
                        abort(
                            context,
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"chunk at offset {chunk.offset}, expected offset {size} "
                            "(offsets must be contiguous from 0)",
                        )
                    content = chunk.content
                    if size + len(content) > MAX_UPLOAD_BYTES:
                        abort(
                            context,
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"upload exceeds the limit of {MAX_UPLOAD_BYTES} bytes",
                        )
                    hasher.update(content)
                    handle.write(content)
                    size += len(content)
                if handle is None or part is None:
                    abort(
                        context,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "no chunks received: an upload needs at least one chunk with a filename",
                    )
                if declared and size != declared:
                    abort(
                        context,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"upload ended after {size} of the announced {declared} bytes",
                    )
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
                file_id = secrets.token_hex(16)
                os.replace(part, root / f"{file_id}.data")
                part = None
                checksum = hasher.hexdigest()
                record = {
                    "filename": filename,
                    "size": size,
                    "checksum": checksum,
                    "created_at": time.time(),
                }
                meta_tmp = tmp / f"{file_id}.json.part"
                with open(meta_tmp, "wb") as out:
                    out.write(json.dumps(record).encode())
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(meta_tmp, root / f"{file_id}.json")
                _fsync_directory(root)
                return pb.UploadResponse(file_id=file_id, size=size, checksum=checksum)
            finally:
                if handle is not None:
                    handle.close()
                if part is not None:
                    part.unlink(missing_ok=True)

        def DownloadFile(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = request.start_offset
            if start < 0:
                abort(
                    context, grpc.StatusCode.INVALID_ARGUMENT, f"start_offset {start} is negative"
                )
            file_id = request.file_id
            if not file_id or any(c in file_id for c in "/\\\0") or ".." in file_id:
                abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"file_id {file_id!r} is not a valid id",
                )
            try:
                if not sc.FILE_ID.fullmatch(file_id):
                    raise FileNotFoundError(file_id)
                record = json.loads((root / f"{file_id}.json").read_bytes())
            except FileNotFoundError:
                abort(context, grpc.StatusCode.NOT_FOUND, f"no file with id {file_id!r}")
            total = record["size"]
            if start > total:
                abort(
                    context,
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"start_offset {start} is beyond the end of the file ({total} bytes)",
                )
            with open(root / f"{file_id}.data", "rb") as handle:
                handle.seek(start)
                offset = start
                while offset < total:
                    data = handle.read(min(sc.CHUNK_SIZE, total - offset))
                    if not data:
                        abort(
                            context,
                            grpc.StatusCode.DATA_LOSS,
                            f"file {file_id} ended at {offset} of {total} bytes",
                        )
                    yield pb.FileChunk(
                        content=data, offset=offset, total_size=total, filename=record["filename"]
                    )
                    offset += len(data)

    return Files()


def serve(stubs_dir: Path, data_dir: Path, port: int) -> None:
    """Serve until killed; prints ``LISTENING PORT`` once bound."""
    import grpc

    sys.path.insert(0, str(stubs_dir))
    from streaming.v1 import streaming_pb2, streaming_pb2_grpc  # generated by ``stubs``

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    servicer = make_servicer(streaming_pb2_grpc, streaming_pb2, data_dir)
    streaming_pb2_grpc.add_StreamingServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    sc.ready(bound)
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stubs = commands.add_parser("stubs", help="generate grpcio's modules")
    stubs.add_argument("out_dir", type=Path)
    run = commands.add_parser("serve", help="serve UploadFile and DownloadFile")
    run.add_argument("--stubs", type=Path, required=True, help="where `stubs` wrote the modules")
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument("port", type=int)
    args = parser.parse_args()
    if args.command == "stubs":
        generate_stubs(args.out_dir)
    else:
        serve(args.stubs, args.data_dir, args.port)


if __name__ == "__main__":
    main()
