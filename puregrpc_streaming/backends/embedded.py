"""The embedded defaults wired together: what ``serve`` uses out of the box.

Everything lives under one data directory::

    <data_dir>/files/           uploads (LocalFileStore)
    <data_dir>/streaming.sqlite3  dataset, key-value records, metrics,
                                  the event log and chat room membership

and the event bus is in-process, over the durable event log; or, given
:class:`~.redis_events.RedisSettings`, the bus is a Redis stream shared with
every other instance on it (:mod:`.redis_events`; its module, and the
``redis`` package, load only then); given
:class:`~.postgres.PostgresSettings`, the records and metrics are in
PostgreSQL (:mod:`.postgres`, :mod:`.postgres_metrics`, with ``psycopg``), and
ListLargeDataset and InteractiveQuery read the dataset there
(:mod:`.postgres_dataset`, :mod:`.postgres_query`).
:func:`open_embedded_backends` prepares them (directories, schema, the
dataset seeded on first start, leftovers of a crash removed, retention
applied to the log) and closes them at the end of its block.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .base import DatasetStore, EventBus, KeyValueStore, MetricsStore, Retention
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

if TYPE_CHECKING:
    from .postgres import PostgresSettings
    from .redis_events import RedisSettings

__all__ = ["DataDirectoryError", "EmbeddedBackends", "open_embedded_backends"]

logger = logging.getLogger("puregrpc_streaming.backends")


class DataDirectoryError(OSError):
    """The data directory (or its database) cannot be used; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddedBackends:
    """The embedded implementation of every backend interface."""

    files: LocalFileStore
    #: An :class:`~.events.InProcessEventBus`, or a :class:`~.redis_events.RedisEventBus`.
    events: EventBus
    #: A :class:`~.sqlite.SqliteDatasetStore`, or a
    #: :class:`~.postgres_dataset.PostgresDataset`.
    dataset: DatasetStore
    #: A :class:`~.sqlite.SqliteKeyValueStore`, or a :class:`~.postgres.PostgresKeyValueStore`.
    kv: KeyValueStore
    #: A :class:`~.sqlite.SqliteMetricsStore`, or a
    #: :class:`~.postgres_metrics.PostgresMetricsStore`.
    metrics: MetricsStore
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
    redis: RedisSettings | None = None,
    postgres: PostgresSettings | None = None,
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
    directory is changed then. With ``redis``, events live in its stream
    (retention as ``redis.retention`` says) and the SQLite event log is not used.
    With ``postgres``, the records (GetData, SyncData) and the metrics
    (CollectMetrics) live in PostgreSQL.
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
            embedded, rooms = await _open_stores(database, dataset_rows, query_threads)
            log, last = (
                (None, 0) if redis is not None else await _open_log(writer, database, retention)
            )
        except sqlite3.OperationalError as exc:
            raise DataDirectoryError(
                f"database {database.path} cannot be used: {exc}"
                + (" (held by another process?)" if "locked" in str(exc) else "")
            ) from None
        async with (
            _open_records(database, postgres, embedded, dataset_rows) as (kv, metrics, dataset),
            _open_bus(log, last, redis, watch_queue_bytes) as events,
        ):
            yield EmbeddedBackends(
                files=files,
                events=events,
                dataset=dataset,
                kv=kv,
                metrics=metrics,
                rooms=rooms,
                database=database,
            )
    finally:
        await writer.close()
        await database.close()
        await files.close()


async def _open_stores(
    database: SqliteDatabase, dataset_rows: int, query_threads: int
) -> tuple[SqliteDatasetStore, RoomDirectory]:
    """Schema, seed and rooms, in that order (SQLite errors pass through)."""
    await database.open()
    dataset = SqliteDatasetStore(database, query_threads=query_threads)
    seeded = await dataset.ensure_seeded(dataset_rows)
    if seeded is not None:
        rows, seconds = seeded
        logger.info("seeded the dataset with %d rows in %.2f s", rows, seconds)
    rooms = RoomDirectory(database)
    await rooms.load()
    return dataset, rooms


async def _open_log(
    writer: SqliteDatabase, database: SqliteDatabase, retention: Retention | None
) -> tuple[SqliteEventLog, int]:
    """The SQLite event log, open, and its last position."""
    log = SqliteEventLog(writer, database, retention)
    return log, await log.open()


@asynccontextmanager
async def _open_records(
    database: SqliteDatabase,
    postgres: PostgresSettings | None,
    embedded: SqliteDatasetStore,
    dataset_rows: int,
) -> AsyncIterator[tuple[KeyValueStore, MetricsStore, DatasetStore]]:
    """The records, metrics and dataset stores: SQLite's, or PostgreSQL's with ``postgres``."""
    if postgres is None:
        yield SqliteKeyValueStore(database), SqliteMetricsStore(database), embedded
        return
    from .base import StoreUnavailable
    from .postgres import PostgresDatabase, PostgresKeyValueStore
    from .postgres_dataset import PostgresDataset
    from .postgres_metrics import PostgresMetricsStore

    shared = PostgresDatabase(postgres)
    try:
        try:
            await shared.open()
            dataset = PostgresDataset(shared, queries=embedded)
            seeded = await dataset.ensure_seeded(dataset_rows)
            if seeded is not None:
                logger.info("seeded the PostgreSQL dataset with %d rows in %.2f s", *seeded)
            why_not = await dataset.enable_queries()
        except (StoreUnavailable, ValueError) as exc:
            raise ConnectionError(f"cannot open the records database: {exc}") from None
        if why_not is None:
            assert dataset.query_credentials is not None
            logger.info(
                "InteractiveQuery runs on PostgreSQL as role %s",
                dataset.query_credentials.user or "of the query URL",
            )
        else:
            logger.warning(
                "InteractiveQuery runs on this instance's SQLite copy of the dataset: %s", why_not
            )
        yield PostgresKeyValueStore(shared), PostgresMetricsStore(shared), dataset
    finally:
        await shared.close()


def _open_bus(
    log: SqliteEventLog | None,
    last: int,
    redis: RedisSettings | None,
    watch_queue_bytes: int,
) -> AbstractAsyncContextManager[EventBus]:
    if redis is not None:
        from .redis_events import open_redis_event_bus

        return open_redis_event_bus(redis, queue_bytes=watch_queue_bytes)
    assert log is not None
    return _in_process_bus(log, last, watch_queue_bytes)


@asynccontextmanager
async def _in_process_bus(
    log: SqliteEventLog, last: int, watch_queue_bytes: int
) -> AsyncIterator[EventBus]:
    events = InProcessEventBus(log, last_position=last, queue_bytes=watch_queue_bytes)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(events.follow_log)
            try:
                yield events
            finally:
                events.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The follower never fails: what left the nursery came from the
        # block, and leaves it as it was raised there.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
