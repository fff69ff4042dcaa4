"""Several server instances on one data directory: whose temporary files are whose.

Every instance of the file store takes an *instance id* and holds an
exclusive ``flock`` on ``tmp/<id>.lock`` for as long as it runs; the
operating system drops the lock when the process dies, however it dies.
Its temporary files are named ``tmp/<id>-<anything>``. At startup an
instance sweeps ``tmp/``: the files of an instance whose lock it can take
(so that instance is gone) are removed, with the lock file; the files of a
live instance are never touched, whatever their age. Files that name no
instance with a lock file (left by an older version) are removed only when
older than :data:`STALE_AFTER`.

Taking a lock is checked against a sweep running at the same moment in
another instance: after locking, the instance verifies that the lock file
on disk is still the one it locked (a sweeper may have removed it just
before), and starts over with a new id if not.

All of this is blocking file-system work: call it from a worker thread.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import time
from pathlib import Path

__all__ = ["STALE_AFTER", "InstanceLock", "sweep"]

#: Files of no known instance are removed once this many seconds old.
STALE_AFTER = 3600.0
_OWNED = re.compile(r"([0-9a-f]{16})[-.]")


class InstanceLock:
    """This instance's id and the lock that says it is alive."""

    def __init__(self, instance_id: str, path: Path, fd: int) -> None:
        #: 16 hex digits: the prefix of this instance's temporary files.
        self.instance_id = instance_id
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, tmp: Path) -> InstanceLock:
        """Create and lock ``tmp/<new id>.lock`` (blocking; call from a thread)."""
        while True:
            instance_id = secrets.token_hex(8)
            path = tmp / f"{instance_id}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return cls(instance_id, path, fd)
            except OSError:
                pass  # locked or removed by a sweeper in between: take another id
            os.close(fd)

    def temp_name(self, suffix: str) -> str:
        """A temporary file name of this instance (``<id>-<random><suffix>``)."""
        return f"{self.instance_id}-{secrets.token_hex(8)}{suffix}"

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _owner_is_gone(lock: Path) -> bool:
    """True if no live instance holds ``lock``; then the caller holds it until it is removed."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False  # just removed by another sweeper
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # its instance is alive
    # Locked by us: remove while holding it, so no one mistakes it for live.
    lock.unlink(missing_ok=True)
    os.close(fd)
    return True


def sweep(tmp: Path, me: InstanceLock, *, now: float | None = None) -> int:
    """Remove the temporary files of instances that are gone; returns how many files.

    ``now`` (seconds since the epoch, default the current time) decides
    what is stale among files of no known instance.
    """
    moment = time.time() if now is None else now
    owners: dict[str, list[Path]] = {}
    strays: list[Path] = []
    for path in tmp.iterdir():
        match = _OWNED.match(path.name)
        if path.suffix == ".lock" and match is not None:
            owners.setdefault(match.group(1), [])
        elif match is not None:
            owners.setdefault(match.group(1), []).append(path)
        else:
            strays.append(path)
    removed = 0
    for owner, files in owners.items():
        if owner == me.instance_id:
            continue
        lock = tmp / f"{owner}.lock"
        if lock.exists():
            if not _owner_is_gone(lock):
                continue
        else:
            strays.extend(files)
            continue
        for path in files:
            path.unlink(missing_ok=True)
            removed += 1
    for path in strays:
        try:
            if moment - path.stat().st_mtime > STALE_AFTER:
                path.unlink(missing_ok=True)
                removed += 1
        except FileNotFoundError:
            pass
    return removed
