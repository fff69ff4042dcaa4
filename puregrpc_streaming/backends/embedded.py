"""The embedded defaults wired together: what ``serve`` uses out of the box.

Everything lives under one data directory::

    <data_dir>/files/           uploads (LocalFileStore)
    <data_dir>/streaming.sqlite3  dataset, key-value records, metrics,
                                  the event log and chat room membership

and the event bus is in-process, over the durable event log.
:func:`open_embedded_backends` prepares them (directories, schema, the
dataset seeded on first start, leftovers of a crash removed, retention
applied to the log) and closes them at the end of its block.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from .base import Retention
from .event_log import SqliteEventLog
from .events import DEFAULT_QUEUE_BYTES, InProcessEventBus
from .files import LocalFileStore
from .rooms import RoomDirectory
from .sqlite import (
    BUSY_TIMEOUT,
    CACHE_KIB,
    SqliteDatabase,
    SqliteDatasetStore,
    SqliteKeyValueStore,
    SqliteMetricsStore,
)
from .upload_sessions import SessionPolicy

__all__ = ["DataDirectoryError", "EmbeddedBackends", "open_embedded_backends"]

logger = logging.getLogger("puregrpc_streaming.backends")


class DataDirectoryError(OSError):
    """The data directory (or its database) cannot be used; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedBackends:
    """The embedded implementation of every backend interface."""

    files: LocalFileStore
    events: InProcessEventBus
    dataset: SqliteDatasetStore
    kv: SqliteKeyValueStore
    metrics: SqliteMetricsStore
    rooms: RoomDirectory
    database: SqliteDatabase


@asynccontextmanager
async def open_embedded_backends(
    data_dir: Path,
    *,
    dataset_rows: int,
    retention: Retention | None = None,
    sql_threads: int = 4,
    query_threads: int = 4,
    file_threads: int = 8,
    sessions: SessionPolicy | None = None,
    watch_queue_bytes: int = DEFAULT_QUEUE_BYTES,
    sql_busy_timeout: float = BUSY_TIMEOUT,
    sql_cache_kib: int = CACHE_KIB,
) -> AsyncIterator[EmbeddedBackends]:
    """Open (creating if needed) the backends under ``data_dir`` for the block.

    ``retention`` bounds the event log (default :class:`~.base.Retention`).
    Worker threads come from three separate capacity limiters, so one kind
    of work cannot take the others' threads: ``sql_threads`` for the stores'
    statements, ``query_threads`` for InteractiveQuery, ``file_threads`` for
    file I/O (and one more thread appends to the event log). ``sessions``
    bounds resumable uploads, ``watch_queue_bytes`` each watcher's queue,
    ``sql_busy_timeout`` how long a statement waits for another process's
    lock on the database, ``sql_cache_kib`` each connection's page cache.

    A data directory that cannot be written, or a database another process
    keeps locked, is a :class:`DataDirectoryError` naming it; nothing in the
    directory is changed then.
    """
    files = LocalFileStore(data_dir / "files", threads=file_threads, sessions=sessions)
    try:
        await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
        removed = await files.prepare()
    except OSError as exc:
        raise DataDirectoryError(
            f"data directory {data_dir} is not usable: {exc.strerror or exc}"
            + (" (read-only?)" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "")
        ) from None
    if removed:
        logger.info("removed %d unfinished upload(s) left by instances now gone", removed)
    database = SqliteDatabase(
        data_dir / "streaming.sqlite3",
        max_connections=sql_threads,
        busy_timeout=sql_busy_timeout,
        cache_kib=sql_cache_kib,
    )
    # The log appends through a connection of its own: publishing never
    # waits behind the pool's readers.
    writer = SqliteDatabase(
        database.path, max_connections=1, busy_timeout=sql_busy_timeout, cache_kib=sql_cache_kib
    )
    try:
        try:
            dataset, rooms, log, last = await _open_stores(
                database, writer, dataset_rows, query_threads, retention
            )
        except sqlite3.OperationalError as exc:
            raise DataDirectoryError(
                f"database {database.path} cannot be used: {exc}"
                + (" (held by another process?)" if "locked" in str(exc) else "")
            ) from None
        events = InProcessEventBus(log, last_position=last, queue_bytes=watch_queue_bytes)
        try:
            yield EmbeddedBackends(
                files=files,
                events=events,
                dataset=dataset,
                kv=SqliteKeyValueStore(database),
                metrics=SqliteMetricsStore(database),
                rooms=rooms,
                database=database,
            )
        finally:
            events.close()
    finally:
        await writer.close()
        await database.close()
        await files.close()


async def _open_stores(
    database: SqliteDatabase,
    writer: SqliteDatabase,
    dataset_rows: int,
    query_threads: int,
    retention: Retention | None,
) -> tuple[SqliteDatasetStore, RoomDirectory, SqliteEventLog, int]:
    """Schema, seed, rooms and event log, in that order (SQLite errors pass through)."""
    await database.open()
    dataset = SqliteDatasetStore(database, query_threads=query_threads)
    seeded = await dataset.ensure_seeded(dataset_rows)
    if seeded is not None:
        rows, seconds = seeded
        logger.info("seeded the dataset with %d rows in %.2f s", rows, seconds)
    rooms = RoomDirectory(database)
    await rooms.load()
    log = SqliteEventLog(writer, database, retention)
    last = await log.open()
    return dataset, rooms, log, last
