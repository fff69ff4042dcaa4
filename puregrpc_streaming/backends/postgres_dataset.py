"""The dataset on PostgreSQL: ListLargeDataset's keyset pages shared by every instance.

Theory of operation:

* **The table.** ``dataset (id, category, value, data)`` with ``id`` its
  primary key, and ``dataset_seed (rows)`` marking a finished seed. Both are
  created, and the rows generated inside PostgreSQL (``generate_series``,
  the same formulas as the embedded store's, so both hold the same rows),
  in one transaction under an advisory lock: the first instance seeds, the
  others find the mark and do nothing; a seed that fails leaves no mark.
* **Keyset pages.** ``WHERE id > <last id> AND <filter> ORDER BY id LIMIT
  <page>``: one index range scan per page, so a cursor (the last id sent)
  resumes on any instance. The filter is compiled by :mod:`..filter_sql`
  with ``dialect="postgres"``.
* **InteractiveQuery** runs on PostgreSQL too, as a read-only role that
  reads the dataset table only (:mod:`.postgres_query`), once
  :meth:`PostgresDataset.enable_queries` has set it up; until then, or where
  the role cannot be had, on the instance's own SQLite copy of the same rows
  (``queries``, the embedded store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from ..filter_sql import filter_to_sql
from ..filters import Filter
from .base import DATASET_COLUMNS, DatasetCounters, DatasetRow, QuerySession
from .postgres import PostgresDatabase
from .postgres_query import PostgresQuerySession, QueryCredentials, prepare_query_role
from .sqlite import SqliteDatasetStore

__all__ = ["PostgresDataset"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset (
    id BIGINT PRIMARY KEY,
    category TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset_seed (rows BIGINT NOT NULL);
"""
# The embedded store's formulas (``sqlite._SEED``), row for row.
_SEED = """
INSERT INTO dataset (id, category, value, data)
SELECT
    x,
    (ARRAY['red', 'green', 'blue', 'yellow', 'purple'])[(x * 2654435761) %% 5 + 1],
    ((x * 1103515245 + 12345) %% 2147483648)::float8 / 2147483648.0,
    convert_to(format('{"id":%%s,"name":"item-%%s","score":%%s}', x,
        lpad(x::text, greatest(7, length(x::text)), '0'), (x * 7919) %% 1000), 'UTF8')
FROM generate_series(1::bigint, %s) AS x
"""
#: The advisory lock key that serialises seeding across instances.
_SEED_LOCK = 0x7075726567727064  # "puregrpd"


class PostgresDataset:
    """The dataset's rows in PostgreSQL, read by keyset pages."""

    def __init__(
        self,
        db: PostgresDatabase,
        queries: SqliteDatasetStore | None = None,
        *,
        query_threads: int = 4,
    ) -> None:
        """Serve the dataset kept in ``db`` (opened); ``queries`` answers InteractiveQuery
        until :meth:`enable_queries` (its limiter of threads is shared then)."""
        self.db = db
        self.queries = queries
        self.counters = DatasetCounters() if queries is None else queries.counters
        #: The worker threads of InteractiveQuery (shared with ``queries`` when given).
        self.query_limiter = (
            trio.CapacityLimiter(query_threads) if queries is None else queries.query_limiter
        )
        #: How query sessions log in (None: they run on ``queries``).
        self.query_credentials: QueryCredentials | None = None

    async def enable_queries(self) -> str | None:
        """Run InteractiveQuery on PostgreSQL from now on; None, or why it cannot.

        Sets up (or checks) the read-only role: :func:`.postgres_query.prepare_query_role`.
        Call it once the dataset is seeded.
        """
        found = await prepare_query_role(self.db)
        if isinstance(found, str):
            return found
        self.query_credentials = found
        return None

    async def ensure_seeded(self, rows: int) -> tuple[int, float] | None:
        """Seed ``rows`` rows unless the database was seeded; returns (rows, seconds) if it did."""

        def run(conn: psycopg.Connection[Any]) -> tuple[int, float] | None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK,))
                conn.execute(_SCHEMA)
                if conn.execute("SELECT 1 FROM dataset_seed").fetchone() is not None:
                    return None
                started = conn.execute("SELECT clock_timestamp()").fetchone()
                conn.execute("DELETE FROM dataset")
                if rows > 0:
                    conn.execute(_SEED, (rows,))
                conn.execute("INSERT INTO dataset_seed (rows) VALUES (%s)", (rows,))
                took = conn.execute(
                    "SELECT extract(epoch FROM clock_timestamp() - %s)",
                    (started[0] if started else None,),
                ).fetchone()
            return rows, float(took[0]) if took else 0.0

        return await self.db.run(run)

    async def page(
        self, after_id: int, limit: int, where: Filter | None = None
    ) -> list[DatasetRow]:
        """Up to ``limit`` rows after ``after_id`` matching ``where``, in id order."""
        condition, params = (
            ("TRUE", []) if where is None else filter_to_sql(where, DATASET_COLUMNS, "postgres")
        )
        sql = (
            "SELECT id, category, value, data FROM dataset "
            f"WHERE id > %s AND {condition} ORDER BY id LIMIT %s"
        )

        def run(conn: psycopg.Connection[Any]) -> list[DatasetRow]:
            with conn.transaction():
                found = conn.execute(sql, (after_id, *params, limit)).fetchall()
            return [DatasetRow(r[0], r[1], r[2], bytes(r[3])) for r in found]

        rows = await self.db.run(run)
        self.counters.pages_fetched += 1
        self.counters.rows_fetched += len(rows)
        return rows

    async def row_count(self) -> int:
        """Rows in the dataset."""

        def run(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                row = conn.execute("SELECT count(*) FROM dataset").fetchone()
            return 0 if row is None else int(row[0])

        return await self.db.run(run)

    @asynccontextmanager
    async def query_session(self, *, all_tables: bool = False) -> AsyncIterator[QuerySession]:
        """A read-only session: as the query role, or as the service's own user for
        ``all_tables``; on ``queries`` before :meth:`enable_queries` (see the module)."""
        credentials = self.query_credentials
        if credentials is None:
            if self.queries is None:
                raise RuntimeError("this dataset was opened without a store for queries")
            async with self.queries.query_session(all_tables=all_tables) as session:
                yield session
            return
        if all_tables:
            credentials = QueryCredentials(url=self.db.settings.url)
        pg = await PostgresQuerySession.open(
            credentials, self.db.settings, self.counters, self.query_limiter
        )
        try:
            yield pg
        finally:
            await pg.aclose()
