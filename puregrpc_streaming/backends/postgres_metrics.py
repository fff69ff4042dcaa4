"""CollectMetrics on PostgreSQL: each call's samples in one transaction, or none.

A call's staging area (:meth:`PostgresMetricsStore.staging`) is a connection
of its own with a transaction open from the first sample: :meth:`~.add`
inserts each batch into ``metrics`` inside it (invisible to every other
session until it commits), :meth:`~.commit` commits it. A call that fails
(a bad sample, a cancel, a disconnect) closes the connection without
committing: PostgreSQL rolls the whole call back and nothing of it is
stored, as with the embedded store (:class:`~.sqlite.SqliteMetricsStore`).
Nothing is held in memory; the open transaction holds no lock another
writer waits for (inserts only).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from .base import MetricSample
from .postgres import PostgresDatabase

__all__ = ["PostgresMetricsStaging", "PostgresMetricsStore"]


class PostgresMetricsStaging:
    """One call's samples, in a transaction of its own connection."""

    def __init__(self, store: PostgresMetricsStore, conn: psycopg.Connection[Any]) -> None:
        self._store = store
        self._conn = conn
        self._count = 0

    async def add(self, samples: Sequence[MetricSample]) -> None:
        """Insert ``samples`` inside the call's transaction (not visible yet)."""
        if not samples:
            return
        rows = [
            (s.name, s.value, json.dumps(dict(s.labels), sort_keys=True), s.timestamp)
            for s in samples
        ]

        def run(conn: psycopg.Connection[Any]) -> None:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                conn.execute("BEGIN")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO metrics (name, value, labels, timestamp) "
                    "VALUES (%s, %s, %s::jsonb, %s)",
                    rows,
                )

        await self._store.db.run_on(self._conn, run)
        self._count += len(rows)

    async def commit(self) -> int:
        """Commit the call's transaction; returns how many samples it stored."""

        def run(conn: psycopg.Connection[Any]) -> None:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("COMMIT")

        with trio.CancelScope(shield=True):  # half a commit is no commit: let it finish
            await self._store.db.run_on(self._conn, run)
        committed, self._count = self._count, 0
        self._store.stored += committed
        return committed


class PostgresMetricsStore:
    """Received metrics in PostgreSQL's ``metrics`` table (a :class:`~.base.MetricsStore`)."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Keep samples in ``db`` (opened: the table exists)."""
        self.db = db
        #: Samples this instance committed since start.
        self.stored = 0

    @asynccontextmanager
    async def staging(self) -> AsyncIterator[PostgresMetricsStaging]:
        """A staging area for one call (see the module docstring)."""
        conn = await self.db.dedicated()
        try:
            yield PostgresMetricsStaging(self, conn)
        finally:
            with trio.CancelScope(shield=True):
                await self.db.close_dedicated(conn)  # uncommitted: rolled back
