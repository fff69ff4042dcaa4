"""The durable event log: every published event, in SQLite, with retention.

Theory of operation:

* :meth:`SqliteEventLog.append` inserts one event into the ``events`` table
  and returns its *position*, the table's ``AUTOINCREMENT`` key: positions
  only grow, are never reused (not after deletes, not after a restart), and
  are unique across every server instance on the same data directory,
  because SQLite hands them out. The bus makes event ids from them.
* Appends go through one dedicated connection (a writer of its own, with
  its own one-thread limiter), so neither slow queries nor file I/O delay
  publishing; reads (:meth:`read`) use the shared pool.
* Retention (:class:`Retention`, told the time) keeps the newest events
  within a count, a byte total and an age. Pruning deletes a prefix of the
  log and records the last position it deleted as ``pruned_upto``; a
  resume from before it is a *gap*, reported (never silent) by the bus.
* Pruning is cheap to skip and costly to run (it sums the sizes), so the
  log keeps a running count and byte total of what it holds, and prunes
  when they pass a bound, down to :data:`LOW_WATER` of the bounds (so the
  next pass is a tenth of the log away), at open, every
  :data:`PRUNE_INTERVAL` seconds of appends (the age bound), every
  :data:`PRUNE_EVERY` appends (which corrects the totals for what other
  instances on the same database appended), and, while nothing is
  appended, every :data:`PRUNE_INTERVAL` seconds (:meth:`SqliteEventLog.expire`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .base import Retention
from .sqlite import SqliteDatabase

__all__ = ["LogPage", "LoggedEvent", "Retention", "SqliteEventLog", "event_size"]

#: Appends between two retention passes (at most).
PRUNE_EVERY = 4096
#: Seconds between two retention passes (at most, while events are appended).
PRUNE_INTERVAL = 5.0
#: A pass prunes the count and bytes down to this fraction of their bounds.
LOW_WATER = 0.9
#: A read page holds at most this many events and about this many bytes.
PAGE_EVENTS = 256
PAGE_BYTES = 2 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    type TEXT NOT NULL,
    audience TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (timestamp_ns);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedEvent:
    """One event as the log stores it."""

    position: int
    type: str
    payload_json: bytes
    audience: tuple[str, ...]
    timestamp_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LogPage:
    """Events after a position, and where the retained log begins."""

    events: list[LoggedEvent]
    #: The last position retention deleted (0: none); the log keeps what follows it.
    pruned_upto: int
    #: The last position ever handed out (0: none).
    last_position: int


def event_size(type: str, payload_json: bytes, audience: Sequence[str]) -> int:
    """Bytes an event counts for, in retention and in subscriber queues."""
    return len(payload_json) + len(type) + sum(len(p) + 3 for p in audience) + 64


class SqliteEventLog:
    """The ``events`` table of the service's database."""

    def __init__(
        self, writer: SqliteDatabase, reader: SqliteDatabase, retention: Retention | None = None
    ) -> None:
        """Append through ``writer`` (one connection), read through ``reader`` (the pool)."""
        self._writer = writer
        self._reader = reader
        self.retention = retention if retention is not None else Retention()
        self._appends_since_prune = 0
        self._last_prune = -float("inf")
        #: What the log holds, as far as this instance knows (corrected by each pass).
        self._count = 0
        self._bytes = 0
        #: Events deleted by retention since start.
        self.pruned = 0

    async def open(self) -> int:
        """Create the table, apply retention; returns the last position handed out."""

        def run(conn: sqlite3.Connection) -> int:
            conn.executescript(_SCHEMA)
            self._prune(conn, time.time())
            return _last_position(conn)

        self._last_prune = time.monotonic()
        return await self._writer.run(run)

    def _prune_due(self, now: float) -> bool:
        retention = self.retention
        return (
            self._count > retention.max_events
            or self._bytes > retention.max_bytes
            or self._appends_since_prune >= PRUNE_EVERY
            or now - self._last_prune > PRUNE_INTERVAL
        )

    async def append(
        self, type: str, payload_json: bytes, audience: Sequence[str], timestamp_ns: int
    ) -> int:
        """Store one event; returns its position."""
        size = event_size(type, payload_json, audience)
        audience_json = json.dumps(list(audience), separators=(",", ":"))
        self._appends_since_prune += 1
        self._count += 1
        self._bytes += size
        now = time.monotonic()
        prune = self._prune_due(now)
        if prune:
            self._appends_since_prune = 0
            self._last_prune = now

        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO events (timestamp_ns, size, type, audience, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                (timestamp_ns, size, type, audience_json, payload_json),
            )
            position = cursor.lastrowid
            assert position is not None
            if prune:
                self._prune(conn, time.time())
            return position

        return await self._writer.run(run)

    async def expire(self) -> bool:
        """Apply retention if no pass ran for :data:`PRUNE_INTERVAL` seconds; True if one ran.

        Appends run the passes while events arrive; a server that publishes
        nothing calls this now and then, so that events past the age bound
        go even when no new ones come (they stayed, replayable, until the
        next append or restart).
        """
        now = time.monotonic()
        if now - self._last_prune <= PRUNE_INTERVAL:
            return False
        self._appends_since_prune = 0
        self._last_prune = now

        def run(conn: sqlite3.Connection) -> None:
            self._prune(conn, time.time())

        await self._writer.run(run)
        return True

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete the oldest events beyond the retention bounds (one transaction)."""
        retention = self.retention
        conn.execute("BEGIN IMMEDIATE")
        try:
            count, total = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM events"
            ).fetchone()
            keep_events = int(retention.max_events * LOW_WATER) or 1
            keep_bytes = int(retention.max_bytes * LOW_WATER) or 1
            cutoffs = [
                # Beyond the count: everything up to the keep_events-th newest.
                conn.execute(
                    "SELECT position FROM events ORDER BY position DESC LIMIT 1 OFFSET ?",
                    (keep_events,),
                ).fetchone()
                if count > retention.max_events
                else None,
                # Beyond the bytes: the newest event that no longer fits.
                conn.execute(
                    "SELECT position FROM (SELECT position, sum(size) OVER "
                    "(ORDER BY position DESC) AS total FROM events) WHERE total > ? "
                    "ORDER BY position DESC LIMIT 1",
                    (keep_bytes,),
                ).fetchone()
                if total > retention.max_bytes
                else None,
                # Beyond the age.
                conn.execute(
                    "SELECT max(position) FROM events WHERE timestamp_ns < ?",
                    (retention.oldest_kept_ns(now),),
                ).fetchone(),
            ]
            cutoff = max(
                (row[0] for row in cutoffs if row is not None and row[0] is not None), default=0
            )
            if cutoff:
                deleted = conn.execute("DELETE FROM events WHERE position <= ?", (cutoff,)).rowcount
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('events_pruned_upto', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = "
                    "max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                    (str(cutoff),),
                )
                self.pruned += deleted
            self._count, self._bytes = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM events"
            ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def read(self, after: int, upto: int) -> LogPage:
        """Events with ``after < position <= upto``, oldest first, one page at most."""

        def run(conn: sqlite3.Connection) -> LogPage:
            conn.execute("BEGIN")  # one snapshot: the page and the bounds agree
            try:
                pruned = _pruned_upto(conn)
                cursor = conn.execute(
                    "SELECT position, timestamp_ns, size, type, audience, payload FROM events "
                    "WHERE position > ? AND position <= ? ORDER BY position",
                    (after, upto),
                )
                events: list[LoggedEvent] = []
                total = 0
                for position, stamp, size, kind, audience, payload in cursor:
                    events.append(
                        LoggedEvent(
                            position=position,
                            type=kind,
                            payload_json=bytes(payload),
                            audience=tuple(json.loads(audience)),
                            timestamp_ns=stamp,
                        )
                    )
                    total += size
                    if len(events) >= PAGE_EVENTS or total >= PAGE_BYTES:
                        break
                cursor.close()
                return LogPage(
                    events=events, pruned_upto=pruned, last_position=_last_position(conn)
                )
            finally:
                conn.execute("COMMIT")

        return await self._reader.run(run)

    async def stats(self) -> tuple[int, int]:
        """Retained events and their bytes (for tests and logs)."""

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            count, total = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM events"
            ).fetchone()
            return int(count), int(total)

        return await self._reader.run(run)


def _pruned_upto(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'events_pruned_upto'").fetchone()
    return 0 if row is None else int(row[0])


def _last_position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return 0 if row is None else int(row[0])
