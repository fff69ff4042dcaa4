"""InteractiveQuery's SQLite sessions: read-only, SELECT-only, bounded in rows, bytes and time.

Each InteractiveQuery stream gets its own connection (:class:`SqliteQuerySession`),
opened read-only (``mode=ro``) and restricted by an authorizer callback:

* only reading, SELECT, functions and recursive CTEs are allowed (no writes,
  PRAGMA, ATTACH, transactions);
* only the ``dataset`` table may be read, unless the session is an
  administrator's: every other table of the database (``kv``, ``metrics``,
  ``events``, ``sqlite_master``...) is PERMISSION_DENIED, naming the table;
  computed rows (``SELECT 1``, CTEs) are fine;
* of the table-valued functions, the pure ones (:data:`TABLE_FUNCTIONS`:
  ``json_each``, ``json_tree``) may be used; any other (``pragma_table_info``,
  ``dbstat``...) is PERMISSION_DENIED naming the function and why.

Bounds, so that no query can make the server hold much memory:

* SQLite's own ``SQLITE_LIMIT_LENGTH`` is set to the row limit: a string or
  BLOB bigger than that is refused while SQLite builds it, before Python
  ever sees it (three 100 MB rows used to take 640 MB of memory);
  ``SQLITE_LIMIT_COLUMN`` caps the columns of a result;
* rows are fetched a batch at a time (:data:`FETCH_ROWS` rows, about
  :data:`FETCH_BYTES` bytes), encoded to JSON in the worker thread, and a
  row whose JSON is over the limit fails the query (RESOURCE_EXHAUSTED)
  without failing the stream;
* a progress handler aborts a statement that ran past its time limit; the
  limit counts the database's work across fetches, not the time the client
  takes to read;
* a call that is cancelled (the client cancels or disconnects, its deadline
  passes) interrupts its running statement (``Connection.interrupt()``,
  :mod:`.interruptible`), so the worker thread is free at once rather than
  when the time limit ends the statement.

Every statement runs in a worker thread under the sessions' own capacity
limiter, so slow queries never take the threads file I/O or the other
stores use.
"""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from .base import DatasetCounters, QueryError, QueryLimits
from .interruptible import run_interruptible

__all__ = [
    "TABLE_FUNCTIONS",
    "SqliteQueryCursor",
    "SqliteQuerySession",
    "row_to_json",
    "statement_kind",
]

T = TypeVar("T")

#: Rows per fetch (one worker-thread hop)...
FETCH_ROWS = 64
#: ...and about this many bytes of JSON.
FETCH_BYTES = 1 << 20
#: Most columns a result may have.
MAX_COLUMNS = 64
#: The one table a non-administrator may read.
DATASET_TABLE = "dataset"

#: Authorizer actions an InteractiveQuery may perform: reading, selecting,
#: calling functions, and recursive CTEs. Everything else (writes, PRAGMA,
#: ATTACH, schema changes, transactions) is denied.
_QUERY_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}

_ACTIONS = (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE",
    "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE",
    "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER",
    "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW", "INSERT", "PRAGMA", "READ", "SELECT",
    "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "CREATE_VTABLE", "DROP_VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE",
)  # fmt: skip
#: Authorizer action code -> name, for the refusal message.
_ACTION_NAMES = {getattr(sqlite3, f"SQLITE_{name}"): name for name in _ACTIONS}
#: Table-valued functions a query may use: pure functions of their
#: arguments, which read no table (``pragma_*``, ``dbstat`` and the like are
#: refused: they read the schema, every table's pages or the settings).
TABLE_FUNCTIONS = frozenset({"json_each", "json_tree"})
#: Eponymous virtual tables of common SQLite builds (with those PRAGMA module_list names).
_KNOWN_MODULES = frozenset(
    {"json_each", "json_tree", "dbstat", "sqlite_dbpage", "sqlite_stmt", "generate_series"}
    | {"carray", "bytecode", "tables_used", "completion"}
)
#: Statement kinds that only read.
_READ_KINDS = frozenset({"SELECT", "VALUES"})
#: How SQLite declares a table-valued function's columns to the authorizer.
_VTAB_DECLARATION = (
    *(
        (sqlite3.SQLITE_UPDATE, column)
        for column in ("type", "name", "tbl_name", "rootpage", "sql")
    ),
    (sqlite3.SQLITE_READ, "ROWID"),
)
#: The progress handler runs every this many SQLite VM instructions.
_PROGRESS_STEPS = 1000


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def row_to_json(columns: Sequence[str], row: Sequence[Any]) -> bytes:
    """One result row as a compact JSON object (BLOBs as text, or base64 if not UTF-8)."""
    return json.dumps(
        {column: _json_value(value) for column, value in zip(columns, row, strict=True)},
        separators=(",", ":"),
    ).encode()


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size < 1 << 20 else f"{size / (1 << 20):,.1f} MiB"


class SqliteQueryCursor:
    """One running SELECT (a :class:`~.base.QueryCursor`)."""

    def __init__(
        self, session: SqliteQuerySession, cursor: sqlite3.Cursor, limits: QueryLimits
    ) -> None:
        self._session = session
        self._cursor: sqlite3.Cursor | None = cursor
        self._limits = limits
        self._columns = tuple(d[0] for d in cursor.description or ())
        self._sent = 0
        self._truncated = False

    @property
    def truncated(self) -> bool:
        """True once ``max_rows`` cut the result short."""
        return self._truncated

    async def fetch(self) -> list[bytes]:
        """The next batch of rows as JSON; empty at the end (see the module docstring)."""
        cursor = self._cursor
        if cursor is None:
            return []
        limits = self._limits

        def run() -> list[bytes]:
            rows: list[bytes] = []
            total = 0
            while len(rows) < FETCH_ROWS and total < FETCH_BYTES:
                if self._sent + len(rows) >= limits.max_rows:
                    self._truncated = cursor.fetchone() is not None
                    self._finish()
                    break
                row = cursor.fetchone()
                if row is None:
                    self._finish()
                    break
                encoded = row_to_json(self._columns, row)
                if len(encoded) > limits.max_row_bytes:
                    raise QueryError(
                        f"row {self._sent + len(rows) + 1} is {_kib(len(encoded))} as JSON, "
                        f"more than the limit of {_kib(limits.max_row_bytes)} per row",
                        "RESOURCE_EXHAUSTED",
                    )
                rows.append(encoded)
                total += len(encoded)
            return rows

        rows = await self._session.in_thread(run, limits)
        self._sent += len(rows)
        return rows

    def _finish(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def close(self) -> None:
        """Stop the query (the worker thread is not needed: closing a cursor is quick)."""
        self._finish()


_COMMENT = re.compile(r"\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+|\(|\)|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\S")
#: Keywords that say what a statement after WITH ... does.
_MAIN_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES"})
#: Statement kinds named with their object: CREATE TABLE, DROP INDEX...
_WITH_OBJECT = frozenset({"CREATE", "DROP", "ALTER"})


def statement_kind(sql: str) -> str:
    """What kind of statement ``sql`` is, as its author wrote it: ``DELETE``,
    ``CREATE TABLE``, ``PRAGMA``... (``WITH ... DELETE`` is a DELETE)."""
    words: list[str] = []
    pos = 0
    while pos < len(sql) and len(words) < 10_000:
        skip = _COMMENT.match(sql, pos)
        if skip is not None and skip.end() > pos:
            pos = skip.end()
            continue
        token = _WORD.match(sql, pos)
        if token is None:  # pragma: no cover - \S matches any other character
            break
        words.append(token.group())
        pos = token.end()
    if not words:
        return "empty"
    first = words[0].upper()
    if first == "WITH":
        depth = 0
        for word in words[1:]:
            depth += (word == "(") - (word == ")")
            if depth == 0 and word.upper() in _MAIN_VERBS:
                return word.upper()
        return "WITH"
    if first in _WITH_OBJECT and len(words) > 1:
        rest = [w.upper() for w in words[1:4]]
        for modifier in ("TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL"):
            if rest and rest[0] == modifier:
                rest = rest[1:]
        if rest and rest[0].isalpha():
            return f"{first} {rest[0]}"
    return first if first.isalpha() else f"{words[0]!r}"


def _not_a_select(sql: str) -> str:
    kind = statement_kind(sql)
    if kind in ("SELECT", "VALUES"):
        return "only SELECT statements are allowed: this one writes or changes the database"
    return f"only SELECT statements are allowed, not {kind}"


class SqliteQuerySession:
    """A read-only, SELECT-only, time-limited connection (one per query stream)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        counters: DatasetCounters,
        limiter: trio.CapacityLimiter,
        *,
        all_tables: bool,
    ) -> None:
        # The database's own tables, views and indexes: reading any but the
        # dataset is denied. (The authorizer cannot tell a table from a CTE
        # of the same name, so it checks names: a CTE named like a table is
        # refused too, which errs on the safe side.)
        self._private = frozenset(
            str(row[0]).lower()
            for row in conn.execute(
                "SELECT name FROM sqlite_master UNION SELECT name FROM sqlite_temp_master"
            )
        ) - {DATASET_TABLE}
        # The virtual table modules (json_each, dbstat...): a read of one of
        # these names is a table-valued function's (a CTE of such a name is
        # taken for the function, which errs on the safe side too).
        try:
            modules = {str(row[0]).lower() for row in conn.execute("PRAGMA module_list")}
        except sqlite3.Error:  # a build without the introspection pragmas
            modules = set(_KNOWN_MODULES)
        self._modules = frozenset(modules | _KNOWN_MODULES) - {DATASET_TABLE}
        self._conn: sqlite3.Connection | None = conn
        self._counters = counters
        self._limiter = limiter
        self._all_tables = all_tables
        #: Seconds of database work the current query has left.
        self._budget = math.inf
        self._deadline = math.inf
        self._denied: list[str] = []
        #: Set when the call running a statement is cancelled (see :meth:`in_thread`).
        self._interrupted = False
        #: How far the authorizer is into a table-valued function's declaration.
        self._vtab_step = 0
        conn.set_authorizer(self._authorize)
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, MAX_COLUMNS)

    @classmethod
    async def open(
        cls,
        path: Path,
        counters: DatasetCounters,
        limiter: trio.CapacityLimiter,
        *,
        all_tables: bool = False,
    ) -> SqliteQuerySession:
        """Open ``path`` read-only (``mode=ro``: even an authorizer bug could not write)."""

        def run() -> sqlite3.Connection:
            return sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=5.0,
            )

        conn = await trio.to_thread.run_sync(run, limiter=limiter)
        return cls(conn, counters, limiter, all_tables=all_tables)

    #: The statement being run (its kind names a refusal).
    _sql = ""

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if self._declaring_vtab(action, arg1, arg2):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and statement_kind(self._sql) in _READ_KINDS:
            # Only a pragma_* table-valued function gets here from a SELECT.
            self._denied.append(f"function pragma_{arg1}")
            return sqlite3.SQLITE_DENY
        if action not in _QUERY_ACTIONS:
            self._denied.append(_ACTION_NAMES.get(action, str(action)))
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_READ and not self._all_tables:
            name = (arg1 or "").lower()
            if name.startswith("pragma_") or name in self._modules:
                if name not in TABLE_FUNCTIONS:
                    self._denied.append(f"function {arg1}")
                    return sqlite3.SQLITE_DENY
            elif self._is_private(name):
                self._denied.append(f"table {arg1}")
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _declaring_vtab(self, action: int, table: str | None, column: str | None) -> bool:
        """True for the steps of SQLite connecting a table-valued function (json_each...).

        The first use of one on a connection declares its columns, which the
        authorizer sees as an UPDATE of ``sqlite_master`` (type, name,
        tbl_name, rootpage, sql), then a READ of its ROWID. Allowed in a
        SELECT only, and only as that sequence: the connection is read-only
        anyway, and a read of the function's rows is checked on its own.
        """
        if (table or "").lower() != "sqlite_master":
            self._vtab_step = 0
            return False
        step = self._vtab_step
        if step < len(_VTAB_DECLARATION) and (action, column) == _VTAB_DECLARATION[step]:
            if step == 0 and statement_kind(self._sql) not in _READ_KINDS:
                return False
            self._vtab_step = (step + 1) % len(_VTAB_DECLARATION)
            return True
        self._vtab_step = 0
        return False

    def _is_private(self, table: str | None) -> bool:
        name = (table or "").lower()
        if name == DATASET_TABLE:
            return False
        return name in self._private or name.startswith(("sqlite_", "pragma_"))

    def _progress(self) -> int:
        # A non-zero return aborts the statement ("interrupted").
        return 1 if self._interrupted or time.monotonic() > self._deadline else 0

    def _failure(self, exc: sqlite3.Error, limits: QueryLimits) -> QueryError:
        denied = list(dict.fromkeys(self._denied))
        functions = [d.removeprefix("function ") for d in denied if d.startswith("function ")]
        if functions:
            return QueryError(
                f"table-valued function {', '.join(repr(f) for f in functions)} is not "
                "allowed: it reads the database's schema, pages or settings; queries may "
                f"use {' and '.join(sorted(TABLE_FUNCTIONS))} (pure functions of their arguments)",
                "PERMISSION_DENIED",
            )
        tables = [d.removeprefix("table ") for d in denied if d.startswith("table ")]
        if tables:
            return QueryError(
                f"reading table {', '.join(repr(t) for t in tables)} is not allowed: "
                f"queries read the {DATASET_TABLE} table only",
                "PERMISSION_DENIED",
            )
        if denied:
            return QueryError(_not_a_select(self._sql))
        if time.monotonic() > self._deadline:
            return QueryError(
                f"query exceeded its time limit of {limits.time_limit:g} s", "DEADLINE_EXCEEDED"
            )
        if "too big" in str(exc):
            return QueryError(
                f"a value is larger than the limit of {_kib(limits.max_row_bytes)} per row",
                "RESOURCE_EXHAUSTED",
            )
        return QueryError(str(exc))

    async def in_thread(self, fn: Callable[[], T], limits: QueryLimits) -> T:
        """Run ``fn()`` in a worker thread, within what is left of the query's time budget."""

        def run() -> T:
            self._denied.clear()
            started = time.monotonic()
            self._deadline = started + self._budget
            try:
                return fn()
            except QueryError:
                raise
            except sqlite3.Warning as exc:  # e.g. "You can only execute one statement"
                raise QueryError(str(exc)) from None
            except sqlite3.Error as exc:
                raise self._failure(exc, limits) from None
            finally:
                self._deadline = math.inf
                self._budget -= time.monotonic() - started

        conn = self._conn
        if conn is None:
            raise RuntimeError("query session is closed")

        def interrupt() -> None:
            # The flag stops a statement the thread has not started yet
            # (SQLite ignores an interrupt while none runs): the progress
            # handler checks it.
            self._interrupted = True
            conn.interrupt()

        # A cancelled call (client cancel, deadline, disconnect) interrupts
        # the statement, so its thread and limiter slot are free at once.
        self._interrupted = False
        return await run_interruptible(run, limiter=self._limiter, interrupt=interrupt)

    @asynccontextmanager
    async def execute(self, sql: str, limits: QueryLimits) -> AsyncIterator[SqliteQueryCursor]:
        """Start ``sql`` for the block (see :meth:`~.base.QuerySession.execute`)."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("query session is closed")
        if not sql.strip():
            raise QueryError("empty query")
        self._budget = limits.time_limit
        self._sql = sql
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_row_bytes)

        def start() -> sqlite3.Cursor:
            cursor = conn.execute(sql)
            if cursor.description is None:
                cursor.close()
                raise QueryError(_not_a_select(sql))
            return cursor

        self._counters.queries_run += 1
        cursor = SqliteQueryCursor(self, await self.in_thread(start, limits), limits)
        try:
            yield cursor
        finally:
            cursor.close()

    async def aclose(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(conn.close, limiter=self._limiter)
