"""InteractiveQuery on PostgreSQL: a read-only role, one read-only transaction per query.

The contract is the SQLite sessions' (:mod:`.query`): SELECT only, the
dataset table only (an administrator's session: any table), bounded in rows,
bytes and time, every refusal a :class:`~.base.QueryError` with the same
status codes, the stream usable after it.

Theory of operation:

* **The role.** Queries connect as a role of their own,
  ``puregrpc_query_<database>``, that may log in and read the ``dataset``
  table and nothing else of ours (``SELECT`` granted on it alone; every
  other table, ``kv``, ``metrics``, ``query_role``, is ``permission denied``;
  of the catalogs it reads what PostgreSQL grants to ``PUBLIC``, and nothing
  more: ``pg_authid``, ``pg_read_file()`` and the like are denied). At start
  :func:`prepare_query_role` creates it, when the service's own user may
  create roles, with a generated password kept in the ``query_role`` table
  (which only the service's user can read), so every instance logs in with
  the same one; otherwise the operator creates a role and passes its URL
  (``query_url``, see ``docs/postgres.md``), which is checked at start: a
  role that could read another table is refused. An administrator's
  session connects as the service's own user, read-only all the same.
* **One transaction per query**: ``BEGIN READ ONLY``, the statement
  declared as a server-side cursor (the extended protocol: one statement
  only), rows fetched a batch at a time, then ``ROLLBACK`` whatever
  happened, which also undoes every setting a query changed with
  ``set_config``; session advisory locks a query took are released.
* **Time.** ``statement_timeout`` is set, before each statement of the
  query, to what is left of its time budget, so the limit counts the
  database's work across fetches, not the time the client takes to read;
  the role's connections also start with it set as a backstop.
* **Bytes.** The statement runs wrapped, ``SELECT octet_length(q::text),
  CASE WHEN <that> <= <guard> THEN q.c1 END, ... FROM (<statement>) q(c1,
  ...)``: a row whose text form is over about twice the row limit arrives
  as its size alone, so a 100 MB value never crosses the socket; every
  other row is encoded to JSON here and checked against the limit exactly,
  as SQLite's are. The first batch is one row; batches double up to
  :data:`FETCH_ROWS` rows while they stay within about :data:`FETCH_BYTES`,
  and shrink when rows are large.
* **Threads.** psycopg's synchronous connection, one per session, its
  statements in worker threads under InteractiveQuery's own limiter. A
  cancelled call (client cancel, deadline, disconnect) sends PostgreSQL a
  cancel request for its running statement (:mod:`.interruptible`), so the
  thread is free at once, not when ``statement_timeout`` ends it.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as daytime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import trio
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from .base import DatasetCounters, QueryError, QueryLimits, StoreUnavailable
from .interruptible import run_interruptible
from .postgres import PostgresDatabase, PostgresSettings
from .query import DATASET_TABLE, MAX_COLUMNS, statement_kind
from .query import row_to_json as _sqlite_row_to_json

__all__ = [
    "PostgresQueryCursor",
    "PostgresQuerySession",
    "QueryCredentials",
    "pg_row_to_json",
    "prepare_query_role",
    "query_role_name",
]

T = TypeVar("T")

logger = logging.getLogger("puregrpc_streaming.backends")

#: Most rows per fetch (one worker-thread hop)...
FETCH_ROWS = 64
#: ...and about this many bytes of JSON.
FETCH_BYTES = 1 << 20
#: The advisory lock key that serialises the role's setup across instances.
_ROLE_LOCK = 0x7075726567727071  # "puregrpq"
#: Statements that are never a query, refused before PostgreSQL sees them
#: (anything else that is not a query is a syntax error to DECLARE ... CURSOR).
_NOT_QUERIES = frozenset({
    "ABORT", "ALTER", "ANALYZE", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "CLOSE",
    "CLUSTER", "COMMENT", "COMMIT", "COPY", "CREATE", "DEALLOCATE", "DECLARE", "DELETE",
    "DETACH", "DISCARD", "DO", "DROP", "END", "EXECUTE", "EXPLAIN", "FETCH", "GRANT",
    "IMPORT", "INSERT", "LISTEN", "LOAD", "LOCK", "MERGE", "MOVE", "NOTIFY", "PRAGMA",
    "PREPARE", "REASSIGN", "REFRESH", "REINDEX", "RELEASE", "REPLACE", "RESET", "REVOKE",
    "ROLLBACK", "SAVEPOINT", "SECURITY", "SET", "SHOW", "START", "TRUNCATE", "UNLISTEN",
    "UPDATE", "VACUUM"
})  # fmt: skip
_DENIED = re.compile(r"permission denied for (table|view|materialized view|function|schema|"
                     r"sequence|relation|large object|database) (\S+)")  # fmt: skip
_VERBS = {
    "function": "calling function",
    "schema": "using schema",
    "sequence": "using sequence",
    "database": "using database",
}


def query_role_name(database: str) -> str:
    """The read-only role of ``database``: ``puregrpc_query_<database>`` (roles span databases)."""
    tail = re.sub(r"[^a-z0-9_]", "_", database.lower())
    return f"puregrpc_query_{tail}"[:63]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryCredentials:
    """How query sessions log in."""

    #: The service's URL (or ``query_url``)...
    url: str
    #: ...with this user and password instead of its own (empty: the URL's).
    user: str = ""
    password: str = ""

    def connect(self, settings: PostgresSettings) -> psycopg.Connection[Any]:
        """A new autocommit connection (``statement_timeout`` as the settings' to begin with)."""
        conninfo = self.url
        if self.user:
            conninfo = make_conninfo(self.url, user=self.user, password=self.password)
        return psycopg.connect(
            conninfo,
            connect_timeout=max(1, int(settings.timeout)),
            options=f"-c statement_timeout={max(1, int(settings.timeout * 1000))}",
            application_name="puregrpc-streaming-query",
            autocommit=True,
        )


# ------------------------------------------------------------------- the role


def _check_role(conn: psycopg.Connection[Any]) -> str | None:
    """Why the role ``conn`` logged in as must not run queries (None: it may)."""
    row = conn.execute(
        "SELECT current_user, rolsuper OR rolbypassrls, "
        "has_table_privilege('kv', 'SELECT'), has_table_privilege('metrics', 'SELECT'), "
        "has_table_privilege('dataset', 'SELECT') FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row is not None  # current_user is a role
    user, mighty, kv, metrics, dataset = row
    if mighty:
        return f"role {user} is a superuser or bypasses row security"
    if kv or metrics:
        return f"role {user} may read the {'kv' if kv else 'metrics'} table"
    if not dataset:
        return f"role {user} may not read the {DATASET_TABLE} table"
    return None


def _set_up_role(conn: psycopg.Connection[Any], timeout: float) -> QueryCredentials | str:
    """Create or refresh the query role, in one transaction; its credentials, or why not."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ROLE_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS query_role (name TEXT PRIMARY KEY, password TEXT NOT NULL)"
        )
        role = query_role_name(conn.info.dbname)
        found = conn.execute(
            "SELECT r.rolname IS NOT NULL, q.password FROM (SELECT 1) one "
            "LEFT JOIN pg_roles r ON r.rolname = %s LEFT JOIN query_role q ON q.name = %s",
            (role, role),
        ).fetchone()
        assert found is not None
        exists, password = found
        mine = conn.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not (mine and mine[0]):
            if exists and password is not None:
                return QueryCredentials(url="", user=role, password=password)
            return (
                f"the user {conn.info.user} may not create roles, and role {role} "
                "is not set up (see docs/postgres.md: query_url)"
            )
        name = sql.Identifier(role)
        if password is None or not exists:
            password = secrets.token_urlsafe(24)
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(
                    "{} ROLE {} LOGIN NOSUPERUSER NOINHERIT NOCREATEDB NOCREATEROLE "
                    "NOREPLICATION NOBYPASSRLS PASSWORD {}"
                ).format(sql.SQL(verb), name, sql.Literal(password))
            )
            conn.execute(
                "INSERT INTO query_role (name, password) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET password = EXCLUDED.password",
                (role, password),
            )
        ms = sql.Literal(f"{max(1, int(timeout * 1000))}ms")
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(name, ms))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(name))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), name
            )
        )
        schema = conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = 'dataset'::regclass"
        ).fetchone()
        assert schema is not None
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema[0]), name)
        )
        conn.execute(sql.SQL("GRANT SELECT ON dataset TO {}").format(name))
    return QueryCredentials(url="", user=role, password=password)


async def prepare_query_role(db: PostgresDatabase) -> QueryCredentials | str:
    """Make sure queries can log in as a read-only role; how they do, or why they cannot.

    With ``db``'s ``query_url`` the operator's role is used, once checked
    (a role that may read more than the dataset raises :class:`ValueError`);
    otherwise the service sets up its own (see the module), its default
    ``statement_timeout`` the database's statement timeout. The dataset
    table must exist (seed first). StoreUnavailable if PostgreSQL cannot be
    reached.
    """
    settings = db.settings
    timeout = settings.timeout
    if settings.query_url is not None:
        credentials = QueryCredentials(url=settings.query_url)
    else:
        made = await db.run(lambda conn: _set_up_role(conn, timeout))
        if isinstance(made, str):
            return made
        credentials = QueryCredentials(url=settings.url, user=made.user, password=made.password)

    def check() -> str | None:
        try:
            conn = credentials.connect(settings)
        except psycopg.OperationalError as exc:
            if settings.query_url is not None:
                raise
            return f"cannot log in as {credentials.user}: {' '.join(str(exc).split())}"
        try:
            return _check_role(conn)
        finally:
            conn.close()

    why = await db.run_blocking(check)
    if why is not None and settings.query_url is not None:
        raise ValueError(f"query_url: {why}; it must read the {DATASET_TABLE} table only")
    return credentials if why is None else why


# ------------------------------------------------------------------ sessions


def _plain(value: Any) -> Any:
    """A value psycopg returned, as something :func:`json.dumps` writes."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date, daytime)):
        return value.isoformat()
    if isinstance(value, (timedelta, UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def pg_row_to_json(columns: Sequence[str], row: Sequence[Any]) -> bytes:
    """One result row as compact JSON, as :func:`.query.row_to_json` writes SQLite's.

    ``bytea`` as text (or base64 if not UTF-8), ``numeric`` as a number,
    times as ISO 8601 strings, ``json`` as itself, NaN as null.
    """
    return _sqlite_row_to_json(columns, [_plain(v) for v in row])


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size < 1 << 20 else f"{size / (1 << 20):,.1f} MiB"


def _not_a_select(sql_text: str) -> QueryError:
    kind = statement_kind(sql_text)
    if kind in ("SELECT", "VALUES", "TABLE", "WITH"):
        return QueryError(
            "only SELECT statements are allowed: this one writes or changes the database"
        )
    return QueryError(f"only SELECT statements are allowed, not {kind}")


def _failure(exc: psycopg.Error, sql_text: str, limits: QueryLimits) -> QueryError | None:
    """The :class:`QueryError` for what PostgreSQL said (None: the connection failed)."""
    diag = exc.diag
    message = diag.message_primary or " ".join(str(exc).split())
    if isinstance(exc, errors.QueryCanceled):
        return QueryError(
            f"query exceeded its time limit of {limits.time_limit:g} s", "DEADLINE_EXCEEDED"
        )
    if isinstance(exc, errors.InsufficientPrivilege):
        denied = _DENIED.search(message)
        if denied is None:
            return QueryError(message, "PERMISSION_DENIED")
        kind, name = denied.groups()
        verb = _VERBS.get(kind, "reading table")
        return QueryError(
            f"{verb} {name!r} is not allowed: queries read the {DATASET_TABLE} table only",
            "PERMISSION_DENIED",
        )
    if isinstance(exc, (errors.ReadOnlySqlTransaction, errors.FeatureNotSupported)):
        return _not_a_select(sql_text)
    if "cannot insert multiple commands" in message:
        return QueryError("only one statement may be run at a time")
    if isinstance(exc, (errors.ProgramLimitExceeded, errors.OutOfMemory)):
        return QueryError(message, "RESOURCE_EXHAUSTED")
    if diag.sqlstate is None or isinstance(exc, errors.AdminShutdown):
        return None
    return QueryError(message)


#: Cancel requests sent for one cancelled statement at most, one per
#: :data:`_CANCEL_PAUSE` seconds while it runs (a request that arrives between
#: two statements of a fetch cancels nothing, so it is sent again).
_CANCEL_TRIES = 50
_CANCEL_PAUSE = 0.1


def _cancel_until(conn: psycopg.Connection[Any], finished: threading.Event) -> None:
    """Ask PostgreSQL to cancel ``conn``'s statement until ``finished`` (bounded)."""
    for _ in range(_CANCEL_TRIES):
        try:
            conn.cancel_safe(timeout=5.0)
        except (psycopg.Error, OSError):
            return  # the connection is gone: the statement ends with it
        if finished.wait(_CANCEL_PAUSE):
            return


def _ignore(_: object) -> None:
    """The outcome of a cancel thread (nothing waits for it)."""


class PostgresQueryCursor:
    """One running SELECT (a :class:`~.base.QueryCursor`)."""

    def __init__(
        self,
        session: PostgresQuerySession,
        cursor: psycopg.ServerCursor[Any],
        columns: Sequence[str],
        limits: QueryLimits,
    ) -> None:
        self._session = session
        self._cursor: psycopg.ServerCursor[Any] | None = cursor
        self._columns = tuple(columns)
        self._limits = limits
        self._sent = 0
        #: Rows the next fetch asks for: from 1, doubling while rows are small.
        self._batch = 1
        self._truncated = False
        #: An oversized row, raised by the fetch after the rows before it.
        self._failed: QueryError | None = None

    @property
    def truncated(self) -> bool:
        """True once ``max_rows`` cut the result short."""
        return self._truncated

    async def fetch(self) -> list[bytes]:
        """The next batch of rows as JSON; empty at the end (see the module docstring).

        A row over the limit is a :class:`QueryError` once the rows before it are taken.
        """
        if self._failed is not None:
            raise self._failed
        cursor = self._cursor
        if cursor is None:
            return []
        limits = self._limits
        left = limits.max_rows - self._sent
        # One row past max_rows says whether the result was cut short.
        wanted = min(self._batch, left + 1)

        def run() -> list[bytes]:
            found = cursor.fetchmany(wanted)
            rows: list[bytes] = []
            for number, (size, *values) in enumerate(found, self._sent + 1):
                if len(rows) == left:
                    self._truncated = True
                    break
                encoded = b"" if size > _guard(limits) else pg_row_to_json(self._columns, values)
                if not encoded or len(encoded) > limits.max_row_bytes:
                    shown = f"{_kib(len(encoded))} as JSON" if encoded else f"{_kib(size)} as text"
                    # The rows before it are sent; the next fetch fails.
                    self._failed = QueryError(
                        f"row {number} is {shown}, "
                        f"more than the limit of {_kib(limits.max_row_bytes)} per row",
                        "RESOURCE_EXHAUSTED",
                    )
                    if not rows:
                        raise self._failed
                    break
                rows.append(encoded)
            if len(found) < wanted or self._truncated or self._failed:
                self._cursor = None
            return rows

        rows = await self._session.in_thread(run)
        self._sent += len(rows)
        largest = max((len(r) for r in rows), default=1)
        self._batch = max(1, min(FETCH_ROWS, 2 * self._batch, FETCH_BYTES // largest))
        return rows

    def close(self) -> None:
        """Forget the cursor (the query's ROLLBACK closes it in the database)."""
        self._cursor = None


def _guard(limits: QueryLimits) -> int:
    """Largest text form of a row that is fetched at all (JSON is rarely under half of it)."""
    return 2 * limits.max_row_bytes + 1024


def _wrapped(statement: str, columns: Sequence[str], limits: QueryLimits) -> sql.Composed:
    """``statement`` with each row's size first and values over the guard left out."""
    names = [sql.Identifier(f"c{i}") for i in range(len(columns))]
    guard = sql.Literal(_guard(limits))
    values = [sql.SQL(", CASE WHEN s.n <= {} THEN s.{} END").format(guard, name) for name in names]
    alias = sql.SQL("q({})").format(sql.SQL(", ").join(names)) if names else sql.SQL("q")
    # The newline ends a trailing ``--`` comment; OFFSET 0 keeps ``n``
    # computed once per row (the subquery is not flattened).
    return sql.SQL(
        "SELECT s.n{} FROM (SELECT octet_length(q::text) AS n, q.* "
        "FROM (\n{}\n) AS {} OFFSET 0) AS s"
    ).format(sql.SQL("").join(values), sql.SQL(statement), alias)


class PostgresQuerySession:
    """A read-only connection for one InteractiveQuery stream (see the module)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        counters: DatasetCounters,
        limiter: trio.CapacityLimiter,
        retry_after: float,
    ) -> None:
        self._conn: psycopg.Connection[Any] | None = conn
        self._counters = counters
        self._limiter = limiter
        self._retry_after = retry_after
        self._sql = ""
        self._limits = QueryLimits(max_rows=1, time_limit=1.0, max_row_bytes=1)
        #: Seconds of database work the current query has left.
        self._budget = math.inf
        #: Server-side cursors of the current query (its ROLLBACK closes them).
        self._cursors: list[psycopg.ServerCursor[Any]] = []

    @classmethod
    async def open(
        cls,
        credentials: QueryCredentials,
        settings: PostgresSettings,
        counters: DatasetCounters,
        limiter: trio.CapacityLimiter,
    ) -> PostgresQuerySession:
        """Log in (StoreUnavailable if PostgreSQL cannot be reached)."""
        try:
            conn = await trio.to_thread.run_sync(
                lambda: credentials.connect(settings), limiter=limiter
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"the database (PostgreSQL) is unavailable: {' '.join(str(exc).split())}",
                retry_after=settings.retry_after,
            ) from None
        return cls(conn, counters, limiter, settings.retry_after)

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in a worker thread, within what is left of the query's time budget."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("query session is closed")
        limits = self._limits

        def run() -> T:
            if self._budget <= 0:
                raise QueryError(
                    f"query exceeded its time limit of {limits.time_limit:g} s",
                    "DEADLINE_EXCEEDED",
                )
            started = time.monotonic()
            try:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (str(max(1, math.ceil(self._budget * 1000))),),
                )
                return fn()
            except psycopg.Error as exc:
                failure = _failure(exc, self._sql, limits)
                if failure is None or conn.broken:
                    raise StoreUnavailable(
                        "the database (PostgreSQL) is unavailable: " + " ".join(str(exc).split()),
                        retry_after=self._retry_after,
                    ) from None
                raise failure from None
            finally:
                self._budget -= time.monotonic() - started

        finished = threading.Event()
        cancelling: list[bool] = []

        def run_once() -> T:
            try:
                return run()
            finally:
                finished.set()

        def interrupt() -> None:
            if not cancelling:
                cancelling.append(True)
                # A cancel request needs a connection of its own: not on the event loop.
                trio.lowlevel.start_thread_soon(lambda: _cancel_until(conn, finished), _ignore)

        return await run_interruptible(run_once, limiter=self._limiter, interrupt=interrupt)

    @asynccontextmanager
    async def execute(
        self, sql_text: str, limits: QueryLimits
    ) -> AsyncIterator[PostgresQueryCursor]:
        """Start ``sql_text`` for the block (see :meth:`~.base.QuerySession.execute`)."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("query session is closed")
        statement = sql_text.strip()
        while statement.endswith(";"):
            statement = statement[:-1].rstrip()
        if not statement:
            raise QueryError("empty query")
        if statement_kind(statement).split()[0] in _NOT_QUERIES:
            raise _not_a_select(statement)
        self._sql, self._limits, self._budget = statement, limits, limits.time_limit

        def start() -> PostgresQueryCursor:
            probe = conn.cursor(name="puregrpc_probe")
            self._cursors.append(probe)
            # DECLARE: parsed and planned, not run; the extended protocol
            # refuses a second statement.
            probe.execute(sql.SQL(statement))
            columns = [column.name for column in probe.description or ()]
            if len(columns) > MAX_COLUMNS:
                raise QueryError(f"a result may have at most {MAX_COLUMNS} columns")
            rows = conn.cursor(name="puregrpc_rows")
            self._cursors.append(rows)
            rows.execute(_wrapped(statement, columns, limits))
            return PostgresQueryCursor(self, rows, columns, limits)

        self._counters.queries_run += 1
        await self._in_transaction()
        try:
            cursor = await self.in_thread(start)
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            await self._end_transaction()

    async def _in_transaction(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            await trio.to_thread.run_sync(
                lambda: conn.execute("BEGIN TRANSACTION READ ONLY"), limiter=self._limiter
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"the database (PostgreSQL) is unavailable: {' '.join(str(exc).split())}",
                retry_after=self._retry_after,
            ) from None

    async def _end_transaction(self) -> None:
        """ROLLBACK (the query's settings too) and drop advisory locks it took."""
        conn = self._conn
        if conn is None:
            return

        def run() -> None:
            cursors, self._cursors = self._cursors, []
            try:
                if not conn.broken:
                    conn.execute("ROLLBACK")
                    conn.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                conn.close()  # the next query reports it
            for cursor in cursors:
                cursor.close()  # gone with the transaction: nothing is sent

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def aclose(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(conn.close, limiter=self._limiter)
