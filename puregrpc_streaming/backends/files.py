"""The embedded file store: uploads as files under ``<data_dir>/files``.

Layout::

    files/<file_id>.data   the content, exactly as uploaded
    files/<file_id>.json   its record (filename, size, checksum, created_at)
    files/tmp/<instance>.lock          held by each running instance (see .instances)
    files/tmp/<instance>-*.part        its uploads in progress (removed on abort)
    files/sessions/s<key>.*            resumable upload sessions, of no instance
                                       (.upload_sessions: they survive a restart)

An upload is written to a temporary file in ``tmp/`` (same file system, so
the final rename is atomic), hashed as it goes, fsynced, renamed to
``<id>.data``, and only then described by ``<id>.json`` (itself written to a
temporary name and renamed), so a crash at any point leaves either nothing
visible or a complete file. Ids are 32 random hex digits; anything else is
refused before a path is built, so no id can name a file outside the store.

Every read and write runs in a worker thread (``trio.to_thread``) under the
store's own capacity limiter: the event loop never waits for the disk, and
file I/O never waits behind slow queries for a thread.

Several instances may share the directory: each names its temporary files
after itself and, at startup, removes only those of instances that are gone
(:mod:`.instances`), so one never deletes another's upload in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from .base import (
    FileIdError,
    FileNotFound,
    StoredFile,
    UploadSessionBusy,
    UploadSessionMismatch,
    UploadSessionsFull,
)
from .instances import InstanceLock, sweep
from .upload_sessions import SessionPolicy, SessionRecord, UploadSessions

__all__ = ["FileCounters", "LocalFileStore"]

T = TypeVar("T")
logger = logging.getLogger("puregrpc_streaming.files")

_ID = re.compile(r"[0-9a-f]{32}")
#: Seconds a claim of an upload session waits for the call that holds it to end.
CLAIM_WAIT = 2.0
#: Upload bytes collected before one thread hop writes and hashes them.
_WRITE_BATCH = 1 << 20


@dataclass(slots=True)
class FileCounters:
    """What the store has done, for tests and logs."""

    #: read() calls that reached the disk.
    reads: int = 0
    bytes_read: int = 0
    #: Readers open now (a download that ended must have closed its reader).
    open_readers: int = 0
    #: Uploads in progress now.
    open_uploads: int = 0
    commits: int = 0
    aborts: int = 0


def check_file_id(file_id: str) -> None:
    """Raise :class:`FileIdError` for ids with path syntax, :class:`FileNotFound` for others."""
    if not file_id:
        raise FileIdError("file_id is required")
    if any(c in file_id for c in "/\\\0") or ".." in file_id:
        raise FileIdError(f"file_id {file_id!r} is not a valid id (it contains path syntax)")
    if not _ID.fullmatch(file_id):
        raise FileNotFound(f"no file with id {file_id!r}")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFileStore:
    """A :class:`~.base.FileStore` on a local directory."""

    def __init__(
        self, root: Path, *, threads: int = 8, sessions: SessionPolicy | None = None
    ) -> None:
        """Use ``root`` (call :meth:`prepare` before serving); ``threads`` for file I/O."""
        self.root = root
        self.tmp = root / "tmp"
        self.sessions_dir = root / "sessions"
        self.counters = FileCounters()
        #: The worker threads of file I/O (its own: slow queries cannot take them).
        self.limiter = trio.CapacityLimiter(threads)
        self._instance: InstanceLock | None = None
        self._policy = sessions if sessions is not None else SessionPolicy()
        self._sessions: UploadSessions | None = None
        #: Sessions a call holds now, each with the event its release sets.
        self._busy: dict[str, trio.Event] = {}
        #: The descriptor of each held session's lock (against other instances).
        self._locks: dict[str, int] = {}

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def prepare(self) -> int:
        """Create the directories, take this instance's lock, and remove the
        uploads that instances no longer running left behind; returns how many."""

        def run() -> tuple[InstanceLock, int]:
            self.tmp.mkdir(parents=True, exist_ok=True)
            self.sessions_dir.mkdir(exist_ok=True)
            instance = InstanceLock.acquire(self.tmp)
            return instance, sweep(self.tmp, instance)

        instance, removed = await self._thread(run)
        self._instance = instance
        self._sessions = UploadSessions(self.sessions_dir, self._policy)
        return removed

    async def close(self) -> None:
        """Release this instance's lock (its temporary files are gone by then)."""
        instance, self._instance = self._instance, None
        if instance is not None:
            with trio.CancelScope(shield=True):
                await self._thread(instance.release)

    def temp_path(self, suffix: str) -> Path:
        """A fresh temporary path of this instance (after :meth:`prepare`)."""
        if self._instance is None:
            raise RuntimeError("the file store is not prepared")
        return self.tmp / self._instance.temp_name(suffix)

    def _data_path(self, file_id: str) -> Path:
        return self.root / f"{file_id}.data"

    def _meta_path(self, file_id: str) -> Path:
        return self.root / f"{file_id}.json"

    # ---------------------------------------------------------------- upload

    async def begin_upload(self, filename: str) -> _LocalUpload:
        """Start an upload into a fresh temporary file."""

        def create() -> tuple[Path, io.BufferedWriter]:
            path = self.temp_path(".part")
            return path, open(path, "xb")  # closed by commit or abort

        path, handle = await self._thread(create)
        self.counters.open_uploads += 1
        return _LocalUpload(self, filename, path, handle)

    def _session_files(self) -> UploadSessions:
        if self._sessions is None:
            raise RuntimeError("the file store is not prepared")
        return self._sessions

    async def claim_session(self, key: str) -> int:
        """Claim upload session ``key`` for one call; returns the bytes it holds (0: none).

        A client that reconnects at once may find its previous call still
        ending on the server: the claim waits up to :data:`CLAIM_WAIT`
        seconds for it before :class:`~.base.UploadSessionBusy`.
        """
        with trio.move_on_after(CLAIM_WAIT):
            while (held := self._busy.get(key)) is not None:
                await held.wait()
        if key in self._busy:
            raise UploadSessionBusy("another call is uploading to this session now")
        sessions = self._session_files()
        self._busy[key] = trio.Event()
        try:
            fd: int | None = None
            with trio.move_on_after(CLAIM_WAIT):
                # Another instance's call may still be ending: wait for its
                # lock (a flock of another process has no event to wait on).
                while (fd := await self._thread(sessions.lock, key)) is None:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            if fd is None:
                raise UploadSessionBusy("another call is uploading to this session now")
            self._locks[key] = fd
            offset = await self._thread(sessions.offset, key, time.time())
        except BaseException:
            self.release_session(key)
            raise
        return offset or 0

    def release_session(self, key: str) -> None:
        """End the claim of :meth:`claim_session` (idempotent)."""
        fd = self._locks.pop(key, None)
        if fd is not None:
            os.close(fd)  # releases the flock at once; no disk I/O
        held = self._busy.pop(key, None)
        if held is not None:
            held.set()

    async def resume_upload(self, key: str, filename: str, total_size: int) -> _LocalUpload:
        """Continue claimed session ``key`` where it stopped, or start it (.upload_sessions)."""
        sessions = self._session_files()

        def run() -> tuple[io.BufferedWriter, Any, int, str]:
            now = time.time()
            sessions.check(key, filename, total_size)
            part = sessions.part_path(key)
            record = sessions.read(key)
            if record is None or sessions.offset(key, now) is None:
                if not filename:
                    raise UploadSessionMismatch(
                        "there is no such upload session (expired?): start again from offset 0"
                    )
                if sessions.expire(now) >= sessions.policy.max_sessions:
                    raise UploadSessionsFull(
                        f"{sessions.policy.max_sessions} upload sessions are open already"
                    )
                part.unlink(missing_ok=True)
                record = SessionRecord(filename=filename, total_size=total_size, updated_at=now)
                sessions.write(key, record)
            hasher = hashlib.sha256()
            size = 0
            with open(part, "ab+") as existing:
                existing.seek(0)
                while block := existing.read(_WRITE_BATCH):
                    hasher.update(block)
                    size += len(block)
            return open(part, "ab"), hasher, size, record.filename

        handle, hasher, size, kept_name = await self._thread(run)
        self.counters.open_uploads += 1
        upload = _LocalUpload(self, kept_name, sessions.part_path(key), handle)
        upload.resume(key, hasher, size)
        return upload

    # ------------------------------------------------------------------ read

    async def stat(self, file_id: str) -> StoredFile:
        """The record of ``file_id``."""
        check_file_id(file_id)
        return await self._thread(self._load_record, file_id)

    def _load_record(self, file_id: str) -> StoredFile:
        try:
            raw = self._meta_path(file_id).read_bytes()
        except FileNotFoundError:
            raise FileNotFound(f"no file with id {file_id!r}") from None
        meta: dict[str, Any] = json.loads(raw)
        record = StoredFile(
            file_id=file_id,
            filename=str(meta["filename"]),
            size=int(meta["size"]),
            checksum=str(meta["checksum"]),
            created_at=float(meta["created_at"]),
        )
        try:
            actual = self._data_path(file_id).stat().st_size
        except FileNotFoundError:
            raise FileNotFound(f"file {file_id!r} has lost its content") from None
        if actual != record.size:
            raise FileNotFound(
                f"file {file_id!r} is damaged ({actual} bytes, expected {record.size})"
            )
        return record

    async def open(self, file_id: str, offset: int) -> _LocalReader:
        """Open ``file_id`` positioned at ``offset``."""
        check_file_id(file_id)

        def run() -> tuple[StoredFile, io.BufferedReader]:
            record = self._load_record(file_id)
            handle = open(self._data_path(file_id), "rb")  # noqa: SIM115 - closed by aclose
            try:
                handle.seek(offset)
            except BaseException:
                handle.close()
                raise
            return record, handle

        record, handle = await self._thread(run)
        self.counters.open_readers += 1
        return _LocalReader(self, record, handle)


class _LocalUpload:
    """One upload into a temporary file (see :class:`~.base.UploadSink`)."""

    def __init__(
        self, store: LocalFileStore, filename: str, path: Path, handle: io.BufferedWriter
    ) -> None:
        self._store = store
        self._filename = filename
        self._path = path
        self._handle: io.BufferedWriter | None = handle
        self._hash = hashlib.sha256()
        self._pending = bytearray()
        self._size = 0
        self._finished = False
        #: The upload session this upload continues (None: a plain upload).
        self._session: str | None = None

    def resume(self, key: str, hasher: Any, size: int) -> None:
        """Make this the upload of session ``key``, which holds ``size`` bytes hashed so far."""
        self._session = key
        self._hash = hasher
        self._size = size

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def filename(self) -> str:
        """The name the file is uploaded as."""
        return self._filename

    async def write(self, data: bytes) -> None:
        """Append ``data``; the disk is written in batches of about 1 MiB."""
        if self._finished:
            raise RuntimeError("upload already finished")
        self._pending += data
        self._size += len(data)
        if len(self._pending) >= _WRITE_BATCH:
            await self._flush()
        else:
            await trio.lowlevel.checkpoint()

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch = bytes(self._pending)
        self._pending.clear()
        handle = self._handle
        assert handle is not None

        def run() -> None:
            # hashlib and file writes release the GIL on large buffers.
            self._hash.update(batch)
            handle.write(batch)

        await self._store._thread(run)

    async def commit(self) -> StoredFile:
        """fsync, rename into place, then write the record."""
        await self._flush()
        store = self._store
        file_id = secrets.token_hex(16)
        record = StoredFile(
            file_id=file_id,
            filename=self._filename,
            size=self._size,
            checksum=self._hash.hexdigest(),
            created_at=time.time(),
        )
        handle = self._handle
        assert handle is not None

        def run() -> None:
            data_path = store._data_path(file_id)
            meta_tmp = store.temp_path(".json.part")
            try:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
                os.replace(self._path, data_path)
                meta = {
                    "filename": record.filename,
                    "size": record.size,
                    "checksum": record.checksum,
                    "created_at": record.created_at,
                }
                with open(meta_tmp, "wb") as out:
                    out.write(json.dumps(meta).encode())
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(meta_tmp, store._meta_path(file_id))
                _fsync_directory(store.root)
            except BaseException:
                # Half a commit must not stay behind: the content without
                # its record is invisible, but it would still use the disk.
                handle.close()
                for leftover in (self._path, data_path, meta_tmp):
                    leftover.unlink(missing_ok=True)
                raise

        try:
            with trio.CancelScope(shield=True):
                # Shielded: a cancel arriving during the rename must not
                # leave the thread's work half-observed.
                await store._thread(run)
        except BaseException:
            await self.abort()
            raise
        self._handle = None
        self._finished = True
        store.counters.open_uploads -= 1
        store.counters.commits += 1
        if self._session is not None:
            sessions = store._session_files()
            with trio.CancelScope(shield=True):
                await store._thread(sessions.remove, self._session)
            store.release_session(self._session)
        return record

    async def suspend(self) -> None:
        """Keep a session's bytes (flushed, fsynced) for a later call; abort a plain upload."""
        if self._finished:
            return
        key = self._session
        if key is None:
            await self.abort()
            return
        self._finished = True
        handle, self._handle = self._handle, None
        pending, self._pending = bytes(self._pending), bytearray()
        store = self._store
        sessions = store._session_files()

        def run() -> None:
            if handle is not None:
                handle.write(pending)
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
            record = sessions.read(key)
            if record is not None:
                sessions.write(
                    key,
                    SessionRecord(
                        filename=record.filename,
                        total_size=record.total_size,
                        updated_at=time.time(),
                    ),
                )

        try:
            with trio.CancelScope(shield=True):
                await store._thread(run)
        except OSError as exc:
            # The bytes cannot be kept (a full disk, say): drop the session
            # rather than leave a .part its record does not describe.
            logger.warning("upload session %s could not be kept (%s): removed", key[:8], exc)
            self._finished = False
            self._handle = handle
            await self.abort()
            return
        store.release_session(key)
        store.counters.open_uploads -= 1

    async def abort(self) -> None:
        """Close and delete the temporary file (shielded: runs on cancelled paths too)."""
        if self._finished:
            return
        self._finished = True
        handle, self._handle = self._handle, None
        path = self._path

        key = self._session
        sessions = self._store._sessions

        def run() -> None:
            try:
                if handle is not None:
                    # Closing flushes what is buffered: after a failed write
                    # (a full disk) that fails again. The file goes anyway.
                    with contextlib.suppress(OSError):
                        handle.close()
            finally:
                path.unlink(missing_ok=True)
                if key is not None and sessions is not None:
                    sessions.remove(key)

        with trio.CancelScope(shield=True):
            await self._store._thread(run)
        if key is not None:
            self._store.release_session(key)
        self._store.counters.open_uploads -= 1
        self._store.counters.aborts += 1


#: Bytes read from disk per worker-thread hop when downloading.
READ_AHEAD = 256 * 1024


class _LocalReader:
    """An open stored file (see :class:`~.base.FileReader`)."""

    def __init__(
        self, store: LocalFileStore, record: StoredFile, handle: io.BufferedReader
    ) -> None:
        self._store = store
        self._record = record
        self._handle: io.BufferedReader | None = handle
        # Read ahead a few chunks per worker-thread hop: one hop per 64 KiB
        # chunk made the thread round trip the download's bottleneck.
        self._ahead = b""
        self._ahead_pos = 0

    @property
    def file(self) -> StoredFile:
        """The file's record."""
        return self._record

    async def read(self, max_bytes: int) -> bytes:
        """Read the next at most ``max_bytes`` bytes (the disk is read in a worker thread).

        Up to :data:`READ_AHEAD` bytes are read per thread hop and handed out
        in ``max_bytes`` pieces; a reader that stops calling stops reading.
        """
        handle = self._handle
        if handle is None:
            raise RuntimeError("reader is closed")
        if self._ahead_pos >= len(self._ahead):
            self._ahead = await self._store._thread(handle.read, max(max_bytes, READ_AHEAD))
            self._ahead_pos = 0
            counters = self._store.counters
            counters.reads += 1
            counters.bytes_read += len(self._ahead)
        else:
            await trio.lowlevel.checkpoint()
        start = self._ahead_pos
        self._ahead_pos = start + max_bytes
        return self._ahead[start : start + max_bytes]

    async def aclose(self) -> None:
        """Close the file (closing a read-only file does not touch the disk)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
            self._store.counters.open_readers -= 1
        await trio.lowlevel.checkpoint()
