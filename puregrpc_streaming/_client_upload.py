"""upload_file: uploads with progress, resumable over dropped connections."""

from __future__ import annotations

import hashlib
import io
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import trio

from puregrpc import RpcError

from ._client_common import _HASH_BLOCK, DEFAULT_CHUNK_SIZE, RetryPolicy, TransferError
from .progress import Progress
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub

#: The request metadata of a resumable upload, and the server's answer.
UPLOAD_ID = "upload-id"
UPLOAD_OFFSET = "upload-offset"


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadResult:
    """The server's answer to :func:`upload_file`, checked against the local file."""

    file_id: str
    size: int
    #: Lowercase hex sha256, as computed by both ends.
    checksum: str
    chunks: int
    elapsed: float
    #: The resumable session's id ("" for a plain upload).
    upload_id: str = ""
    #: Calls reopened after a transient failure, and the bytes the server
    #: already held the last time one did.
    reconnects: int = 0
    resumed_from: int = 0


class _Chunks:
    """The chunks of a file from an offset, hashing what is read."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        size: int,
        chunk_size: int,
        hasher: hashlib._Hash,
        progress: Progress | None,
    ) -> None:
        self.path = path
        self.name = name
        self.size = size
        self.chunk_size = chunk_size
        self.hasher = hasher
        self.progress = progress
        #: Chunks produced so far (over every attempt).
        self.count = 0

    async def from_offset(self, offset: int) -> AsyncGenerator[streaming_pb2.FileChunk, None]:
        """Chunks with contiguous offsets from ``offset``; an empty file is one empty chunk."""
        chunk_size = self.chunk_size
        # Read many chunks per worker-thread round trip: a hop per 64 KiB
        # would cost more than the read itself.
        block_size = max(chunk_size, _HASH_BLOCK // chunk_size * chunk_size)
        begin = offset
        hasher = self.hasher

        # One buffer for every block: a fresh megabyte per read is a new
        # mmap'd buffer whose pages fault in again each time.
        buffer = memoryview(bytearray(block_size))

        def read_and_hash(file: io.BufferedReader) -> memoryview:
            # One thread hop reads and hashes a block (both release the GIL):
            # the event loop never waits for the disk or for sha256.
            filled = 0
            while filled < block_size:
                n = file.readinto(buffer[filled:])
                if not n:
                    break
                filled += n
            block = buffer[:filled]
            hasher.update(block)
            return block

        def open_file() -> io.BufferedReader:
            return open(self.path, "rb")

        file = await trio.to_thread.run_sync(open_file)
        try:
            await trio.to_thread.run_sync(file.seek, offset)
            while True:
                block = await trio.to_thread.run_sync(read_and_hash, file)
                # Nothing left to read: done, unless this call has sent nothing
                # yet (an empty file, or a session holding it all already):
                # then one empty chunk names the file.
                if not block and not (offset == begin == self.size):
                    return
                # Each chunk is a copy (bytes) of the buffer, which the next
                # block overwrites only once these have all been yielded.
                for start in range(0, max(len(block), 1), chunk_size):
                    content = bytes(block[start : start + chunk_size])
                    yield streaming_pb2.FileChunk(
                        content=content,
                        offset=offset,
                        total_size=self.size,
                        # The first chunk of each call names the file.
                        filename=self.name if offset == begin else "",
                    )
                    self.count += 1
                    offset += len(content)
                    if self.progress is not None:
                        self.progress.advance(len(content))
                if not block:
                    return
        finally:
            file.close()  # a file only read: closing it does not wait for the disk


async def _hash_of_prefix(path: Path, length: int) -> hashlib._Hash:
    """sha256 state of the first ``length`` bytes of ``path``."""

    def run() -> hashlib._Hash:
        hasher = hashlib.sha256()
        left = length
        with path.open("rb") as file:
            while left and (block := file.read(min(_HASH_BLOCK, left))):
                hasher.update(block)
                left -= len(block)
        return hasher

    return await trio.to_thread.run_sync(run)


async def upload_file(
    stub: StreamingServiceStub,
    path: Path,
    *,
    filename: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    call_timeout: float | None = None,
    progress: Progress | None = None,
    retry: RetryPolicy | None = None,
    upload_id: str | None = None,
    on_retry: Callable[[RpcError, float], None] | None = None,
) -> UploadResult:
    """Upload the file at ``path`` as ``filename`` (default: its name).

    Chunks carry contiguous offsets and the total size and filename;
    ``call_timeout`` is each call's gRPC deadline. The response must report
    the size sent and the sha256 computed locally while reading, or
    :class:`TransferError` is raised.

    With ``retry`` (or an ``upload_id``) the upload is *resumable*: it names
    an upload session (``upload_id``, random by default) in metadata
    ``upload-id``, starts from the offset the server answers in
    ``upload-offset``, and after a transient failure (``retry.retryable``;
    ``on_retry(error, delay)`` is told first) reopens the call after a
    backoff and sends only what the server does not hold yet.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk size must be positive, not {chunk_size}")
    name = filename if filename is not None else path.name
    size = (await trio.Path(path).stat()).st_size
    if progress is not None:
        progress.total = size
    began = time.perf_counter()
    chunks = _Chunks(
        path,
        name=name,
        size=size,
        chunk_size=chunk_size,
        hasher=hashlib.sha256(),
        progress=progress,
    )
    resumable = retry is not None or upload_id is not None
    if not resumable:
        response = await stub.UploadFile(chunks.from_offset(0), timeout=call_timeout)
        return _checked(response, chunks, began)
    policy = retry if retry is not None else RetryPolicy()
    session = upload_id if upload_id is not None else secrets.token_urlsafe(18)
    failures = reconnects = resumed_from = 0
    while True:
        try:
            call = stub.UploadFile(metadata=[(UPLOAD_ID, session)], timeout=call_timeout)
            async with call:
                offset = _offset((await call.initial_metadata()).get(UPLOAD_OFFSET), size)
                if offset > resumed_from:
                    failures = 0  # the server kept more than last time: progress
                resumed_from = offset
                chunks.hasher = await _hash_of_prefix(path, offset)
                if progress is not None:
                    progress.resume_at(offset)
                async with aclosing(chunks.from_offset(offset)) as sending:
                    async for chunk in sending:
                        await call.send(chunk)
                response = await call.response()
            break
        except RpcError as exc:
            failures += 1
            if exc.code not in policy.retryable or failures > policy.attempts:
                raise
            delay = policy.delay(failures)
            if on_retry is not None:
                on_retry(exc, delay)
            reconnects += 1
            await trio.sleep(delay)
    result = _checked(response, chunks, began)
    return UploadResult(
        file_id=result.file_id,
        size=result.size,
        checksum=result.checksum,
        chunks=result.chunks,
        elapsed=result.elapsed,
        upload_id=session,
        reconnects=reconnects,
        resumed_from=resumed_from,
    )


def _offset(value: object, size: int) -> int:
    text = value if isinstance(value, str) else "0"
    if not text.isdigit() or int(text) > size:
        raise TransferError(
            f"the server holds {text!r} bytes of this upload, but the file has {size:,}: "
            "it is not this file's session"
        )
    return int(text)


def _checked(response: streaming_pb2.UploadResponse, chunks: _Chunks, began: float) -> UploadResult:
    checksum = chunks.hasher.hexdigest()
    if response.size != chunks.size or response.checksum != checksum:
        raise TransferError(
            f"the server stored {response.size:,} bytes with sha256 {response.checksum}, "
            f"but {chunks.size:,} bytes with sha256 {checksum} were sent"
        )
    if chunks.progress is not None:
        chunks.progress.finish("(sha256 verified)")
    return UploadResult(
        file_id=response.file_id,
        size=chunks.size,
        checksum=checksum,
        chunks=chunks.count,
        elapsed=time.perf_counter() - began,
    )
