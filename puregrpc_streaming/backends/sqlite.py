"""The embedded SQLite backends: dataset, key-value and metrics stores in one file.

Every statement runs in a worker thread (``trio.to_thread.run_sync``), never
on the event loop. :class:`SqliteDatabase` holds a small pool of connections
(one per concurrent worker, at most ``max_connections``, bounded by a trio
``CapacityLimiter``) in WAL mode, so readers and the single writer do not
block each other. InteractiveQuery gets its own read-only connection per
stream (:class:`~.query.SqliteQuerySession`), restricted by an authorizer
to SELECTs of the dataset table, bounded in rows, bytes and time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from ..filter_sql import filter_to_sql, register_functions
from ..filters import Filter
from .base import (
    DATASET_COLUMNS,
    DatasetCounters,
    DatasetRow,
    KvChange,
    KvOutcome,
    KvRecord,
    MetricSample,
)
from .kv_rules import decide
from .query import SqliteQuerySession

__all__ = [
    "SqliteDatabase",
    "SqliteDatasetStore",
    "SqliteKeyValueStore",
    "SqliteMetricsStore",
]

logger = logging.getLogger("puregrpc_streaming.sqlite")

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset (
    id INTEGER PRIMARY KEY,
    category TEXT NOT NULL,
    value REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    labels TEXT NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics (name, timestamp);
CREATE TABLE IF NOT EXISTS room_members (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    joined_at REAL NOT NULL,
    PRIMARY KEY (room, user_id)
);
"""

#: Rows generated entirely inside SQLite (a recursive CTE): no Python per
#: row, so a million rows take about a second. Deterministic: the same
#: ``dataset_rows`` always gives the same table.
_SEED = """
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < ?)
INSERT INTO dataset (id, category, value, data)
SELECT
    x,
    CASE (x * 2654435761) % 5
        WHEN 0 THEN 'red' WHEN 1 THEN 'green' WHEN 2 THEN 'blue'
        WHEN 3 THEN 'yellow' ELSE 'purple' END,
    ((x * 1103515245 + 12345) % 2147483648) / 2147483648.0,
    CAST(printf('{"id":%d,"name":"item-%07d","score":%d}', x, x, (x * 7919) % 1000) AS BLOB)
FROM seq
"""


#: Seconds a statement waits for another connection's (or process's) lock by default.
BUSY_TIMEOUT = 10.0


#: KiB of page cache per connection by default. SQLite's own default is
#: 2000, but the service opens connections per call too (a query session,
#: a metrics staging area), so the caches add up with the calls in flight,
#: and the file's pages are in the OS cache anyway: listing 1,000,000 rows
#: took 6.9-8.3 s of server CPU with 2000 KiB and 7.4-8.3 s with 256
#: (``bench/streaming_list.py``, 4 runs each, a loaded machine).
CACHE_KIB = 256


def _connect(
    path: Path, busy_timeout: float = BUSY_TIMEOUT, cache_kib: int = CACHE_KIB
) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
    )
    # Negative: a size in KiB. Each connection's cache grows to this as it
    # reads and writes pages, then stays: part of the server's memory.
    conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    register_functions(conn)  # what ListLargeDataset filters may need (.filter_sql)
    return conn


class SqliteDatabase:
    """One SQLite file and a bounded pool of connections used from worker threads."""

    def __init__(
        self,
        path: Path,
        *,
        max_connections: int = 4,
        busy_timeout: float = BUSY_TIMEOUT,
        cache_kib: int = CACHE_KIB,
    ) -> None:
        """Use the database at ``path`` (created by :meth:`open`).

        ``busy_timeout``: seconds a statement waits for a lock another
        connection holds (another process, say) before "database is locked";
        ``cache_kib``: each connection's page cache.
        """
        self.path = path
        self.busy_timeout = busy_timeout
        self.cache_kib = cache_kib
        self._limiter = trio.CapacityLimiter(max_connections)
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    async def open(self) -> None:
        """Create the file and the schema."""

        def create(conn: sqlite3.Connection) -> None:
            conn.executescript(_SCHEMA)

        await self.run(create)

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _connect(self.path, self.busy_timeout, self.cache_kib)

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    async def connect(self) -> sqlite3.Connection:
        """A new connection of the caller's own (not pooled; close it with :meth:`run_on`)."""
        return await trio.to_thread.run_sync(
            _connect, self.path, self.busy_timeout, self.cache_kib, limiter=self._limiter
        )

    async def run_on(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread, for a connection from :meth:`connect`."""
        return await trio.to_thread.run_sync(fn, conn, limiter=self._limiter)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in a worker thread with a pooled connection."""
        if self._closed:
            raise RuntimeError("database is closed")

        def in_thread() -> T:
            conn = self._checkout()
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    conn.rollback()
                self._checkin(conn)

        return await trio.to_thread.run_sync(in_thread, limiter=self._limiter)

    async def close(self) -> None:
        """Close the pooled connections (call after the last :meth:`run`)."""

        def run() -> None:
            with self._lock:
                self._closed = True
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(run)

    async def meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""

        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self.run(run)


# ------------------------------------------------------------------ dataset


class SqliteDatasetStore:
    """The dataset table (a :class:`~.base.DatasetStore`)."""

    def __init__(self, db: SqliteDatabase, *, query_threads: int = 4) -> None:
        """Serve the dataset of ``db``; at most ``query_threads`` queries run at once."""
        self.db = db
        self.counters = DatasetCounters()
        #: The worker threads of InteractiveQuery (its own: see :mod:`.query`).
        self.query_limiter = trio.CapacityLimiter(query_threads)

    async def ensure_seeded(self, rows: int) -> tuple[int, float] | None:
        """Seed ``rows`` rows if the table was never seeded; returns (rows, seconds) if it did.

        One transaction: a crash mid-seed leaves an empty, unmarked table, so
        the next start seeds again.
        """

        def run(conn: sqlite3.Connection) -> tuple[int, float] | None:
            if conn.execute("SELECT 1 FROM meta WHERE key = 'dataset_rows'").fetchone():
                return None
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            # Checked again under the write lock: another instance starting
            # on the same directory may have seeded while we waited for it.
            if conn.execute("SELECT 1 FROM meta WHERE key = 'dataset_rows'").fetchone():
                conn.execute("ROLLBACK")
                return None
            conn.execute("DELETE FROM dataset")
            if rows > 0:
                conn.execute(_SEED, (rows,))
            conn.execute("INSERT INTO meta (key, value) VALUES ('dataset_rows', ?)", (str(rows),))
            conn.execute("COMMIT")
            return rows, time.perf_counter() - started

        return await self.db.run(run)

    async def page(
        self, after_id: int, limit: int, where: Filter | None = None
    ) -> list[DatasetRow]:
        """Up to ``limit`` rows after ``after_id`` matching ``where`` (a primary-key range scan).

        The filter runs inside SQLite (:mod:`..filter_sql`): rows it skips
        never reach Python.
        """
        condition, params = ("1", []) if where is None else filter_to_sql(where, DATASET_COLUMNS)
        sql = (
            "SELECT id, category, value, data FROM dataset "
            f"WHERE id > ? AND {condition} ORDER BY id LIMIT ?"
        )

        def run(conn: sqlite3.Connection) -> list[DatasetRow]:
            return list(map(DatasetRow._make, conn.execute(sql, (after_id, *params, limit))))

        rows = await self.db.run(run)
        self.counters.pages_fetched += 1
        self.counters.rows_fetched += len(rows)
        return rows

    async def row_count(self) -> int:
        """Rows in the dataset."""

        def run(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM dataset").fetchone()[0])

        return await self.db.run(run)

    @asynccontextmanager
    async def query_session(self, *, all_tables: bool = False) -> AsyncIterator[SqliteQuerySession]:
        """A read-only connection for one InteractiveQuery stream (see :mod:`.query`)."""
        session = await SqliteQuerySession.open(
            self.db.path, self.counters, self.query_limiter, all_tables=all_tables
        )
        try:
            yield session
        finally:
            await session.aclose()


# --------------------------------------------------------------- key-value


def _kv_record(row: Sequence[Any]) -> KvRecord:
    return KvRecord(
        key=row[0], value=bytes(row[1]), version=row[2], deleted=bool(row[3]), updated_at=row[4]
    )


class SqliteKeyValueStore:
    """Versioned records in the ``kv`` table (a :class:`~.base.KeyValueStore`)."""

    def __init__(self, db: SqliteDatabase) -> None:
        """Keep records in ``db``."""
        self.db = db

    async def get(self, key: str) -> KvRecord | None:
        """The key's current state, tombstones included."""

        def run(conn: sqlite3.Connection) -> KvRecord | None:
            row = conn.execute(
                "SELECT key, value, version, deleted, updated_at FROM kv WHERE key = ?", (key,)
            ).fetchone()
            return None if row is None else _kv_record(row)

        return await self.db.run(run)

    async def apply(self, change: KvChange) -> KvOutcome:
        """Compare-and-set on the version (:func:`.kv_rules.decide`), in one
        IMMEDIATE transaction."""

        def run(conn: sqlite3.Connection) -> KvOutcome:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT key, value, version, deleted, updated_at FROM kv WHERE key = ?",
                (change.key,),
            ).fetchone()
            outcome = decide(None if row is None else _kv_record(row), change, time.time())
            new = outcome.current
            if not outcome.applied or new is None:
                conn.execute("ROLLBACK")
                return outcome
            conn.execute(
                "INSERT INTO kv (key, value, version, deleted, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "version = excluded.version, deleted = excluded.deleted, "
                "updated_at = excluded.updated_at",
                (new.key, new.value, new.version, int(new.deleted), new.updated_at),
            )
            conn.execute("COMMIT")
            return outcome

        return await self.db.run(run)


# ----------------------------------------------------------------- metrics


class SqliteMetricsStaging:
    """One call's samples in a TEMP table of its own connection (:class:`SqliteMetricsStore`)."""

    def __init__(self, store: SqliteMetricsStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._db = store.db
        self._conn = conn
        self._count = 0

    async def add(self, samples: Sequence[MetricSample]) -> None:
        """Write ``samples`` to the staging table (no lock on the main database)."""
        if not samples:
            return
        rows = [
            (s.name, s.value, json.dumps(dict(s.labels), sort_keys=True), s.timestamp)
            for s in samples
        ]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO temp.staged (name, value, labels, timestamp) VALUES (?, ?, ?, ?)",
                rows,
            )

        await self._db.run_on(self._conn, run)
        self._count += len(rows)

    async def commit(self) -> int:
        """Move every staged sample into ``metrics`` in one transaction."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO main.metrics (name, value, labels, timestamp) "
                    "SELECT name, value, labels, timestamp FROM temp.staged ORDER BY rowid"
                )
                conn.execute("DELETE FROM temp.staged")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        with trio.CancelScope(shield=True):  # half a commit is no commit: let it finish
            await self._db.run_on(self._conn, run)
        committed, self._count = self._count, 0
        self._store.stored += committed
        return committed


class SqliteMetricsStore:
    """Received metrics in the ``metrics`` table (a :class:`~.base.MetricsStore`).

    Each CollectMetrics call stages its samples in a TEMP table of a
    connection of its own (temporary tables are private to a connection and
    live in a temporary file, so staging takes no lock on the database and
    no memory), then :meth:`SqliteMetricsStaging.commit` moves them into
    ``metrics`` in one transaction. Closing the connection drops whatever
    was not committed: a failed call stores nothing.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        """Keep samples in ``db``."""
        self.db = db
        #: Samples committed since start.
        self.stored = 0

    @asynccontextmanager
    async def staging(self) -> AsyncIterator[SqliteMetricsStaging]:
        """A staging area for one call (see the class docstring)."""
        conn = await self.db.connect()
        try:

            def create(conn: sqlite3.Connection) -> None:
                conn.execute(
                    "CREATE TEMP TABLE staged (name TEXT NOT NULL, value REAL NOT NULL, "
                    "labels TEXT NOT NULL, timestamp REAL NOT NULL)"
                )

            await self.db.run_on(conn, create)
            yield SqliteMetricsStaging(self, conn)
        finally:
            with trio.CancelScope(shield=True):
                await self.db.run_on(conn, lambda conn: conn.close())
