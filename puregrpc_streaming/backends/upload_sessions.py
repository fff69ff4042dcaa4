"""Resumable upload sessions of the local file store.

An upload that names a session (UploadFile with metadata ``upload-id``) is
written to ``sessions/s<key>.part``, its key being a hash of the caller and
the upload id (so one caller cannot reach another's session).
When its call fails, from a dropped connection or anything else short of
the quota, the bytes received so far are flushed and fsynced and the
session is kept, described by ``sessions/s<key>.json`` (filename,
announced size, last activity). A later call with the same upload id is
told the committed offset first (response metadata ``upload-offset``) and
sends the rest; the server hashes the kept prefix again, so the checksum
covers the whole file.

Sessions are bounded: :class:`SessionPolicy` (told the time) expires those
idle longer than its ``ttl`` (one that a call holds is never idle, however
long that call takes) and caps how many exist; a session is used by
one call at a time (a second one is :class:`~.base.UploadSessionBusy`),
across instances too: a call holds an exclusive ``flock`` on
``sessions/s<key>.lock`` (:meth:`UploadSessions.lock`), which the system
drops when the process dies. A lock file is unlinked only by a holder done
with its session (a commit, an abort, an expiry), and a lock counts only if
the path still names the file locked, so two calls never hold one session.
Sessions belong to no instance, so they survive a restart (a kill -9
included): the client resumes from what the previous server had fsynced or
flushed.

All functions here block: call them from the store's worker threads.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .base import UploadSessionMismatch

__all__ = ["SessionPolicy", "SessionRecord", "UploadSessions", "session_key"]

#: Attempts at a lock whose file keeps being replaced (by holders ending their sessions).
_LOCK_TRIES = 100


def session_key(owner: str, upload_id: str) -> str:
    """The file-name-safe key of ``owner``'s session ``upload_id``."""
    return hashlib.sha256(f"{owner}\0{upload_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionPolicy:
    """How long idle sessions are kept, and how many there may be."""

    #: Seconds a session may sit idle before it expires.
    ttl: float = 3600.0
    max_sessions: int = 1000

    def __post_init__(self) -> None:
        if not self.ttl > 0 or self.max_sessions < 1:
            raise ValueError("ttl and max_sessions must be positive")

    def expired(self, updated_at: float, now: float) -> bool:
        """True if a session last active at ``updated_at`` is gone at ``now`` (seconds)."""
        return now - updated_at > self.ttl


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """What a kept session remembers."""

    filename: str
    #: The size its first chunk announced (0: not announced).
    total_size: int
    #: Seconds since the epoch of the last activity.
    updated_at: float


class UploadSessions:
    """The sessions of a store, on disk under ``directory`` (shared by its instances)."""

    def __init__(self, directory: Path, policy: SessionPolicy) -> None:
        self._tmp = directory
        self._prefix = "s"
        self.policy = policy

    def lock(self, key: str) -> int | None:
        """Take session ``key``'s lock; its file descriptor, or ``None`` if another holds it.

        Close the descriptor (:func:`os.close`) to release it. The lock file
        is unlinked only by a holder that is done with the session; a lock
        taken on a file unlinked meanwhile (opened before the unlink, locked
        after the holder let go) locks nothing anyone else sees, so it is
        taken again on the file the path names now.
        """
        path = self._lock_path(key)
        for _ in range(_LOCK_TRIES):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False  # unlinked after the open
            except BaseException:
                os.close(fd)
                raise
            if same:
                return fd
            os.close(fd)  # the file was replaced between open and flock: again
        return None

    def _lock_path(self, key: str) -> Path:
        return self._tmp / f"{self._prefix}{key}.lock"

    def part_path(self, key: str) -> Path:
        """Where session ``key`` keeps its bytes."""
        return self._tmp / f"{self._prefix}{key}.part"

    def record_path(self, key: str) -> Path:
        """Where session ``key`` keeps its :class:`SessionRecord`."""
        return self._tmp / f"{self._prefix}{key}.json"

    def read(self, key: str) -> SessionRecord | None:
        """The record of a kept session, or ``None``."""
        try:
            fields = json.loads(self.record_path(key).read_bytes())
            return SessionRecord(
                filename=str(fields["filename"]),
                total_size=int(fields["total_size"]),
                updated_at=float(fields["updated_at"]),
            )
        except (OSError, ValueError, KeyError):
            return None

    def write(self, key: str, record: SessionRecord) -> None:
        """Keep session ``key`` with ``record`` (written atomically)."""
        path = self.record_path(key)
        scratch = path.with_suffix(".json.new")
        scratch.write_text(
            json.dumps(
                {
                    "filename": record.filename,
                    "total_size": record.total_size,
                    "updated_at": record.updated_at,
                }
            )
        )
        os.replace(scratch, path)

    def remove(self, key: str) -> None:
        """Forget session ``key``, its bytes and its lock file (its holder is done with it)."""
        self._forget(key)
        self._lock_path(key).unlink(missing_ok=True)

    def _forget(self, key: str) -> None:
        self.part_path(key).unlink(missing_ok=True)
        self.record_path(key).unlink(missing_ok=True)

    def offset(self, key: str, now: float) -> int | None:
        """The bytes session ``key`` holds (``None``: no such session, or it expired).

        Call it holding the session's lock: an expired session's bytes and
        record go, its lock file stays (the caller may start the session
        again under it).
        """
        record = self.read(key)
        if record is None:
            return None
        if self.policy.expired(record.updated_at, now):
            self._forget(key)
            return None
        try:
            return self.part_path(key).stat().st_size
        except FileNotFoundError:
            self._forget(key)
            return None

    def expire(self, now: float) -> int:
        """Remove the expired sessions; returns how many are left.

        A session some call holds (its lock taken, in this process or
        another) is being written to: it is not idle, whatever its record's
        age says (the record is written when a call starts or stops it, not
        as bytes arrive), so it is counted and never removed under its writer.
        """
        left = 0
        for path in self._tmp.glob(f"{self._prefix}*.json"):
            key = path.stem.removeprefix(self._prefix)
            fd = self.lock(key)
            if fd is None:
                left += 1  # in use now
                continue
            try:
                if self.offset(key, now) is not None:
                    left += 1
                else:
                    self._lock_path(key).unlink(missing_ok=True)
            finally:
                os.close(fd)
        # Lock files of sessions never started (a call asked for the offset
        # of a new one, then went away): the sessions' own, unused.
        for path in self._tmp.glob(f"{self._prefix}*.lock"):
            key = path.stem.removeprefix(self._prefix)
            if self.record_path(key).exists() or (fd := self.lock(key)) is None:
                continue
            try:
                if not self.record_path(key).exists():
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return left

    def check(self, key: str, filename: str, total_size: int) -> None:
        """Raise :class:`UploadSessionMismatch` if a kept session is of another file."""
        record = self.read(key)
        if record is None:
            return
        if filename and filename != record.filename:
            raise UploadSessionMismatch(
                f"this upload session is for {record.filename!r}, not {filename!r}"
            )
        if total_size and record.total_size and total_size != record.total_size:
            raise UploadSessionMismatch(
                f"this upload session announced {record.total_size} bytes, not {total_size}"
            )
