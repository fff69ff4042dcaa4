"""download_file: resumable, verified downloads (see :mod:`.client_helpers`)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from puregrpc import RpcError, StatusCode

from ._client_common import _HASH_BLOCK, RetryPolicy, TransferError, part_path, unwrap_group
from .progress import Progress
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub

#: Response metadata of DownloadFile: the stored file's sha256 (see handlers.files).
FILE_SHA256 = "file-sha256"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadResult:
    """What :func:`download_file` fetched."""

    path: Path
    #: The server's name for the file (empty when no chunk was received).
    filename: str
    size: int
    #: Lowercase hex sha256 of the complete file.
    sha256: str
    #: Whether ``sha256`` matched the expected checksum or the server's
    #: record (False: neither was known, an older server).
    checksum_verified: bool
    #: Bytes found in ``PATH.part`` from an earlier, interrupted run.
    resumed_from: int
    #: Bytes received by this run.
    received: int
    #: Streams reopened after a transient failure.
    reconnects: int
    #: Seconds of the whole call, hashing an existing ``.part`` and fsync included.
    elapsed: float
    #: Seconds spent receiving (the streams and their backoffs): what a rate divides by.
    transfer_time: float


async def _hash_prefix(path: Path) -> tuple[hashlib._Hash, int]:
    """sha256 state and size of the bytes already in ``path`` (empty if missing)."""

    def run() -> tuple[hashlib._Hash, int]:
        hasher = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as file:
                while block := file.read(_HASH_BLOCK):
                    hasher.update(block)
                    size += len(block)
        except FileNotFoundError:
            pass
        return hasher, size

    return await trio.to_thread.run_sync(run)


#: Blocks waiting for the writer task (besides the one it writes): enough to
#: ride out a slow write or hash without stopping the stream.
_QUEUED_BLOCKS = 3

#: The writer syncs the ``.part`` to disk after each this many bytes, in its
#: worker thread while the stream goes on: the final fsync then waits for
#: the last few megabytes' writeback only, not the whole file's.
_SYNC_EVERY = 8 << 20


class _Flush:
    """A marker in the writer's queue: everything before it is written (and fsynced)."""

    __slots__ = ("done", "fsync")

    def __init__(self, *, fsync: bool) -> None:
        self.fsync = fsync
        self.done = trio.Event()


class _WriterGone(Exception):
    """The body's view of a failed writer task; the writer's error is the one raised."""


class _PartWriter:
    """Appends to a ``.part`` file and hashes, a large block per worker-thread hop.

    A bounded pipeline: chunks are collected until :data:`_HASH_BLOCK` bytes
    are pending; the block then goes into a memory channel of
    :data:`_QUEUED_BLOCKS`, and one writer task writes and hashes each block
    in a worker thread (both release the GIL on each 64 KiB chunk) while the
    stream goes on being received. The event loop never waits for the disk
    or the hash unless the channel is full (the disk is slower than the
    network: backpressure, as the window gives the server), and pays one
    thread round trip per megabyte. What was received is on disk once
    :meth:`flush` returns, and when the block ends, however it ends.
    """

    def __init__(self, path: Path, hasher: hashlib._Hash) -> None:
        self._path = path
        self._hasher = hasher
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        #: Bytes written since the last sync (the writer thread's).
        self._unsynced = 0
        self._file: io.BufferedWriter | None = None
        self._nursery_cm = trio.open_nursery()
        self._send, self._receive = trio.open_memory_channel[list[bytes] | _Flush](_QUEUED_BLOCKS)

    async def __aenter__(self) -> _PartWriter:
        def run() -> io.BufferedWriter:
            return open(self._path, "ab")

        self._file = file = await trio.to_thread.run_sync(run)
        nursery = await self._nursery_cm.__aenter__()
        nursery.start_soon(self._drain, file, self._receive)
        return self

    async def __aexit__(self, *exc_info: object) -> bool | None:
        file = self._file
        assert file is not None
        try:
            try:
                with trio.CancelScope(shield=True):
                    # What arrived before a failure stays: the next run resumes there.
                    if self._pending:
                        await self._send.send(self._take())
            except trio.BrokenResourceError:
                pass  # the writer failed: its error is the nursery's
            except BaseException as exc:
                # A KeyboardInterrupt gets through the shield: the nursery
                # below still waits for the writer (which has the file) and
                # raises it, beside the body's error if there is one.
                if isinstance(exc_info[1], BaseException) and exc.__context__ is None:
                    exc.__context__ = exc_info[1]
                exc_info = (type(exc), exc, exc.__traceback__)
            finally:
                self._send.close()
            # The writer (shielded) ends once it has written every block queued.
            return await self._nursery_cm.__aexit__(*exc_info)  # type: ignore[arg-type]
        except BaseExceptionGroup as group:
            # A write that found the writer gone is the writer's own error
            # seen from the body: only the writer's error is raised.
            _, rest = group.split(_WriterGone)
            group = rest if rest is not None else group
            # One error (the body's, or a failed write's): raised as itself.
            inner = unwrap_group(group)
            if inner is group:
                raise group from None
            raise inner from None
        finally:
            file.close()
            self._file = None

    async def _drain(
        self, file: io.BufferedWriter, blocks: trio.MemoryReceiveChannel[list[bytes] | _Flush]
    ) -> None:
        """The writer task: each block written and hashed in a worker thread, in order.

        Shielded: a block queued is a block written, so a cancelled download
        keeps every byte it received; it ends when the queue is closed
        (:meth:`__aexit__`, however the download ends).
        """
        with trio.CancelScope(shield=True):
            async with blocks:
                async for block in blocks:
                    if isinstance(block, _Flush):
                        if block.fsync:
                            await trio.to_thread.run_sync(_fsync, file)
                        block.done.set()
                    else:
                        await trio.to_thread.run_sync(self._write, file, block)

    def _take(self) -> list[bytes]:
        block, self._pending, self._pending_bytes = self._pending, [], 0
        return block

    def _write(self, file: io.BufferedWriter, block: list[bytes]) -> None:
        # Chunk by chunk, never joined: a joined megabyte is a fresh mmap'd
        # buffer, and faulting its pages in cost more than the hash (the
        # helper ran at 52-63% of the minimal client's rate with a join,
        # 85-99% without). sha256 and the writes release the GIL per chunk.
        update = self._hasher.update
        size = 0
        for chunk in block:
            update(chunk)
            size += len(chunk)
        file.writelines(block)
        self._unsynced += size
        if self._unsynced >= _SYNC_EVERY:
            self._unsynced = 0
            file.flush()
            os.fdatasync(file.fileno())

    async def write(self, data: bytes) -> None:
        """Append ``data``; a full block goes to the writer task (waits while its queue is full)."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= _HASH_BLOCK:
            await self._queue_pending()

    async def _queue_pending(self) -> None:
        """The pending block to the writer task; still pending if the send did not happen."""
        block = self._take()
        try:
            await self._queue(block)
        except BaseException:
            # Cancelled (or interrupted) before the writer took it: the
            # block stays pending, for __aexit__ to write.
            self._pending[:0] = block
            self._pending_bytes += sum(map(len, block))
            raise

    async def _queue(self, item: list[bytes] | _Flush) -> None:
        try:
            await self._send.send(item)
        except trio.BrokenResourceError:
            # The writer failed (a full disk, say) while this waited for room.
            raise _WriterGone from None

    async def flush(self, *, fsync: bool = False) -> None:
        """Write and hash everything received so far (and fsync, if ``fsync``)."""
        if self._pending:
            await self._queue_pending()
        marker = _Flush(fsync=fsync)
        await self._queue(marker)
        await marker.done.wait()


def _fsync(file: io.BufferedWriter) -> None:
    file.flush()
    os.fsync(file.fileno())


def _recorded_sha256(value: object) -> str | None:
    """The server's ``file-sha256`` header, if it is one (older servers send none)."""
    if isinstance(value, str) and len(value) == 64 and all(c in _HEX for c in value):
        return value
    return None


async def download_file(
    stub: StreamingServiceStub,
    file_id: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    retry: RetryPolicy | None = None,
    attempt_timeout: float | None = None,
    progress: Progress | None = None,
    on_retry: Callable[[RpcError, float], None] | None = None,
) -> DownloadResult:
    """Download ``file_id`` to ``dest``, resuming and reconnecting as needed.

    Bytes go to ``dest.part`` first; an existing ``.part`` (from an
    interrupted run) is continued from its size. Transient failures
    (``retry.retryable``) reopen the stream from the last offset after a
    backoff (``on_retry(error, delay)`` is told first); other failures raise
    :class:`RpcError` and keep the ``.part`` for a later run.
    ``attempt_timeout`` is the gRPC deadline of each attempt. When the
    stream ends, the size must equal the ``total_size`` the server announced
    and the sha256 must match ``expected_sha256`` or, when it is not given,
    the server's record of the file (response metadata ``file-sha256``);
    otherwise :class:`TransferError` is raised and the ``.part`` removed
    (its bytes are wrong, resuming would not help). An ``expected_sha256``
    the server's record contradicts is a :class:`TransferError` before any
    byte is fetched (the ``.part`` is left alone). On success the ``.part``
    is fsynced and renamed to ``dest``.
    """
    policy = retry if retry is not None else RetryPolicy()
    part = part_path(dest)
    expected = expected_sha256.lower() if expected_sha256 is not None else None
    #: Whether ``expected`` is the server's record (no expected_sha256 was given).
    from_server = False
    began = time.perf_counter()
    hasher, offset = await _hash_prefix(part)
    resumed_from = offset
    if progress is not None:
        progress.resume_at(offset)
    total: int | None = None
    filename = ""
    failures = 0
    reconnects = 0
    transfer_began = time.perf_counter()
    out = _PartWriter(part, hasher)
    try:
        async with out:
            while True:
                try:
                    call = stub.DownloadFile(
                        streaming_pb2.DownloadRequest(file_id=file_id, start_offset=offset),
                        timeout=attempt_timeout,
                    )
                    async with call:
                        headers = await call.initial_metadata()
                        recorded = _recorded_sha256(headers.get(FILE_SHA256))
                        if recorded is not None:
                            if expected is not None and recorded != expected:
                                raise TransferError(
                                    f"file {file_id} has sha256 {recorded} on the server, "
                                    f"not the expected {expected}: nothing downloaded"
                                )
                            expected = expected or recorded
                            from_server = expected_sha256 is None
                        async for chunk in call:
                            if chunk.offset != offset:
                                raise TransferError(
                                    f"server sent a chunk at offset {chunk.offset}, "
                                    f"expected {offset}"
                                )
                            if total is None or chunk.total_size != total:
                                total = chunk.total_size
                                if progress is not None:
                                    progress.total = total
                            filename = chunk.filename or filename
                            # Read once: each read of a bytes field is a copy.
                            content = chunk.content
                            await out.write(content)
                            offset += len(content)
                            failures = 0
                            if progress is not None:
                                progress.advance(len(content))
                    break
                except RpcError as exc:
                    if exc.code is StatusCode.OUT_OF_RANGE and resumed_from > 0:
                        raise TransferError(
                            f"{part} holds {resumed_from:,} bytes, more than file {file_id} has: "
                            "it is not a partial copy of this file; remove it and retry"
                        ) from None
                    failures += 1
                    if exc.code not in policy.retryable or failures > policy.attempts:
                        raise
                    delay = policy.delay(failures)
                    if on_retry is not None:
                        on_retry(exc, delay)
                    reconnects += 1
                    await out.flush()
                    await trio.sleep(delay)
            transfer_time = time.perf_counter() - transfer_began
            await out.flush(fsync=True)
    except BaseException:
        if resumed_from == 0 and offset == 0:
            # Nothing received: leave no empty .part behind (this run made it).
            with trio.CancelScope(shield=True):
                await trio.Path(part).unlink(missing_ok=True)
        raise
    sha256 = hasher.hexdigest()
    if total is not None and offset != total:
        await trio.Path(part).unlink(missing_ok=True)
        raise TransferError(
            f"download of {file_id} ended at {offset:,} bytes, the server announced {total:,}"
        )
    verified = False
    if expected is not None:
        if sha256 != expected:
            await trio.Path(part).unlink(missing_ok=True)
            whose = "the server's record" if from_server else "the expected"
            raise TransferError(
                f"checksum mismatch for {file_id}: got sha256 {sha256}, {whose} is {expected}"
            )
        verified = True
    await trio.Path(part).replace(dest)
    if progress is not None:
        progress.finish("(sha256 verified)" if verified else "")
    return DownloadResult(
        path=dest,
        filename=filename,
        size=offset,
        sha256=sha256,
        checksum_verified=verified,
        resumed_from=resumed_from,
        received=offset - resumed_from,
        reconnects=reconnects,
        elapsed=time.perf_counter() - began,
        transfer_time=transfer_time,
    )
