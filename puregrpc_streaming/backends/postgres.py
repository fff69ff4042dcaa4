"""Records on PostgreSQL: GetData and SyncData shared by every instance on one database.

(The connections, :class:`PostgresDatabase`, serve the metrics too:
:mod:`.postgres_metrics`.)

Theory of operation:

* **The tables.** ``kv (key, value, version, deleted, updated_at)`` and
  ``metrics`` (:mod:`.postgres_metrics`), created
  at open under a transaction-scoped advisory lock (two instances starting
  at once must not race on ``CREATE TABLE IF NOT EXISTS``).
* **Compare-and-set with row versions.** :meth:`PostgresKeyValueStore.apply`
  runs one transaction: ``SELECT ... FOR UPDATE`` locks the key's row if it
  exists, :func:`.kv_rules.decide` applies the rule every store shares, then
  an ``UPDATE ... WHERE version = <read version>`` (the row is locked: it
  matches) or, for a key that does not exist yet, ``INSERT ... ON CONFLICT
  DO NOTHING``: if another instance inserted it in between, nothing is
  written and the change is answered as stale against the row that won.
  Two instances applying the same base version: one is applied, the other
  conflicts, as in one process.
* **Threads.** psycopg's synchronous connections, each statement in a worker
  thread behind a limiter of ``threads``, with as many connections kept
  open; its asyncio interface needs asyncio. A connection that fails is
  dropped and replaced on next use.
* **Down.** A connection that cannot be made, or breaks, is
  :class:`~.base.StoreUnavailable` (UNAVAILABLE with a retry delay for the
  caller); nothing was written (the transaction did not commit). The next
  call connects again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import trio

from .base import KvChange, KvOutcome, KvRecord, StoreUnavailable
from .kv_rules import decide

__all__ = ["PostgresDatabase", "PostgresKeyValueStore", "PostgresSettings"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BYTEA NOT NULL,
    version BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    labels JSONB NOT NULL,
    timestamp DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics (name, timestamp);
"""
#: The advisory lock key that serialises schema creation across instances.
_SCHEMA_LOCK = 0x70757265677270  # "puregrp"


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresSettings:
    """Where the shared records live."""

    #: ``postgresql://user[:password]@host:port/dbname`` (libpq's URI).
    url: str
    #: Connections (and worker threads).
    threads: int = 4
    #: Seconds to connect, and the longest a statement may run.
    timeout: float = 5.0
    #: Seconds a caller is told to wait before retrying while it is down.
    retry_after: float = 1.0
    #: InteractiveQuery logs in with this URL (a role that reads the dataset
    #: table only, set up as ``docs/postgres.md`` says); None: the service
    #: sets up a role of its own if its user may create roles
    #: (:mod:`.postgres_query`).
    query_url: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"postgres threads must be 1..64, got {self.threads}")
        for url in (self.url, self.query_url):
            if url is not None and not url.startswith(("postgresql://", "postgres://")):
                raise ValueError(f"a PostgreSQL URL must be postgresql://..., got {url!r}")


class PostgresDatabase:
    """A few connections, each used by one worker thread at a time."""

    def __init__(self, settings: PostgresSettings) -> None:
        self._settings = settings
        self._limiter = trio.CapacityLimiter(settings.threads)
        #: Open connections not in use (at most ``threads``: the limiter bounds use).
        self._idle: list[psycopg.Connection[Any]] = []

    @property
    def settings(self) -> PostgresSettings:
        """Where the database is, and how it is used."""
        return self._settings

    def _connect(self) -> psycopg.Connection[Any]:
        timeout_ms = int(self._settings.timeout * 1000)
        return psycopg.connect(
            self._settings.url,
            connect_timeout=max(1, int(self._settings.timeout)),
            options=f"-c statement_timeout={timeout_ms}",
            application_name="puregrpc-streaming",
            # Every statement inside an explicit ``conn.transaction()``.
            autocommit=True,
        )

    async def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn(conn)`` in a worker thread; StoreUnavailable if PostgreSQL is unreachable.

        ``fn`` commits or rolls back its own transaction (``with conn.transaction()``).
        """

        def work() -> T:
            conn = self._idle.pop() if self._idle else self._connect()
            try:
                result = fn(conn)
            except psycopg.OperationalError:
                conn.close()  # broken, or in an unknown state: never reused
                raise
            except BaseException:
                if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.close()
                else:
                    self._idle.append(conn)
                raise
            self._idle.append(conn)
            return result

        return await self._in_thread(work)

    async def run_blocking(self, work: Callable[[], T]) -> T:
        """Run ``work()`` (which opens connections of its own) in one of the worker threads.

        StoreUnavailable if it raises :class:`psycopg.OperationalError`.
        """
        return await self._in_thread(work)

    async def _in_thread(self, work: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(work, limiter=self._limiter)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                # One line: libpq's messages run over several.
                f"the database (PostgreSQL) is unavailable: {' '.join(str(exc).split())}",
                retry_after=self._settings.retry_after,
            ) from None

    async def dedicated(self) -> psycopg.Connection[Any]:
        """A new connection of the caller's own (for a transaction that spans a call).

        Use it with :meth:`run_on`; close it with :meth:`close_dedicated`.
        """
        return await self._in_thread(self._connect)

    async def run_on(
        self, conn: psycopg.Connection[Any], fn: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        """Run ``fn(conn)`` on a :meth:`dedicated` connection, in a worker thread."""
        return await self._in_thread(functools.partial(fn, conn))

    async def close_dedicated(self, conn: psycopg.Connection[Any]) -> None:
        """Close a :meth:`dedicated` connection (an open transaction is rolled back)."""
        await trio.to_thread.run_sync(conn.close)

    async def open(self) -> None:
        """Create the schema if needed (StoreUnavailable if PostgreSQL is unreachable)."""

        def create(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(_SCHEMA)

        await self.run(create)

    async def close(self) -> None:
        """Close every idle connection."""

        def close_all() -> None:
            while self._idle:
                self._idle.pop().close()

        await trio.to_thread.run_sync(close_all)


def _record(row: tuple[Any, ...]) -> KvRecord:
    return KvRecord(
        key=row[0], value=bytes(row[1]), version=row[2], deleted=row[3], updated_at=row[4]
    )


class PostgresKeyValueStore:
    """Versioned records in PostgreSQL's ``kv`` table (a :class:`~.base.KeyValueStore`)."""

    def __init__(self, db: PostgresDatabase) -> None:
        """Keep records in ``db`` (opened)."""
        self.db = db

    async def get(self, key: str) -> KvRecord | None:
        """The key's current state, tombstones included."""

        def run(conn: psycopg.Connection[Any]) -> KvRecord | None:
            with conn.transaction():
                row = conn.execute(
                    "SELECT key, value, version, deleted, updated_at FROM kv WHERE key = %s",
                    (key,),
                ).fetchone()
            return None if row is None else _record(row)

        return await self.db.run(run)

    async def apply(self, change: KvChange) -> KvOutcome:
        """Compare-and-set on the version, in one transaction (see the module)."""

        def run(conn: psycopg.Connection[Any]) -> KvOutcome:
            with conn.transaction():
                row = conn.execute(
                    "SELECT key, value, version, deleted, updated_at FROM kv "
                    "WHERE key = %s FOR UPDATE",
                    (change.key,),
                ).fetchone()
                current = None if row is None else _record(row)
                outcome = decide(current, change, time.time())
                new = outcome.current
                if not outcome.applied or new is None:
                    return outcome
                values = (new.value, new.version, new.deleted, new.updated_at, new.key)
                if current is not None:
                    conn.execute(
                        "UPDATE kv SET value = %s, version = %s, deleted = %s, updated_at = %s "
                        "WHERE key = %s AND version = %s",
                        (*values, current.version),
                    )
                    return outcome
                inserted = conn.execute(
                    "INSERT INTO kv (value, version, deleted, updated_at, key) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING key",
                    values,
                ).fetchone()
                if inserted is not None:
                    return outcome
                # Another instance created the key since our read: its row wins.
                row = conn.execute(
                    "SELECT key, value, version, deleted, updated_at FROM kv WHERE key = %s",
                    (change.key,),
                ).fetchone()
            assert row is not None  # ON CONFLICT: it exists, committed
            winner = _record(row)
            return KvOutcome(
                applied=False,
                current=winner,
                reason=f"base_version {change.base_version} is stale: "
                f"the current version is {winner.version}",
            )

        return await self.db.run(run)
