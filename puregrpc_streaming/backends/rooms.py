"""Chat room membership: who has joined which room, kept in SQLite.

A user becomes a member of a room the first time one of their Chat calls
joins it, and stays one (leaving ends the presence, not the membership):
members may read the room's history through WatchEvents, also after a
restart. Membership is held in memory for the delivery checks of the bus
(which must not wait) and written through to the ``room_members`` table;
:meth:`RoomDirectory.load` reads the table at startup.

Bounded: at most :data:`MAX_ROOMS_PER_USER` rooms per user and
:data:`MAX_MEMBERSHIPS` memberships in all; a join beyond is refused with
:class:`MembershipFull`. Only authenticated users are recorded (an anonymous
caller's declared name proves nothing).
"""

from __future__ import annotations

import sqlite3
import time

from .base import MembershipFull
from .sqlite import SqliteDatabase

__all__ = ["MAX_MEMBERSHIPS", "MAX_ROOMS_PER_USER", "RoomDirectory"]

MAX_ROOMS_PER_USER = 1_000
MAX_MEMBERSHIPS = 200_000


class RoomDirectory:
    """The rooms each user has joined (a :class:`~.base.RoomStore`)."""

    def __init__(self, db: SqliteDatabase) -> None:
        """Keep memberships in ``db``'s ``room_members`` table."""
        self._db = db
        self._rooms: dict[str, set[str]] = {}
        self._count = 0

    async def load(self) -> int:
        """Read every membership from the table (at startup); returns how many."""

        def run(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT user_id, room FROM room_members LIMIT ?", (MAX_MEMBERSHIPS,)
            ).fetchall()
            return [(str(user), str(room)) for user, room in rows]

        for user, room in await self._db.run(run):
            self._add(user, room)
        return self._count

    def _add(self, user: str, room: str) -> bool:
        rooms = self._rooms.setdefault(user, set())
        if room in rooms:
            return False
        rooms.add(room)
        self._count += 1
        return True

    def is_member(self, room: str, user_id: str) -> bool:
        """True if ``user_id`` has joined ``room``."""
        rooms = self._rooms.get(user_id)
        return rooms is not None and room in rooms

    def rooms_of(self, user_id: str) -> frozenset[str]:
        """The rooms ``user_id`` has joined."""
        return frozenset(self._rooms.get(user_id, ()))

    async def join(self, room: str, user_id: str) -> None:
        """Make ``user_id`` a member of ``room`` (idempotent); :class:`MembershipFull` if full."""
        if self.is_member(room, user_id):
            return
        if len(self._rooms.get(user_id, ())) >= MAX_ROOMS_PER_USER:
            raise MembershipFull(f"user {user_id!r} has joined {MAX_ROOMS_PER_USER} rooms already")
        if self._count >= MAX_MEMBERSHIPS:
            raise MembershipFull(f"the server's room directory is full ({MAX_MEMBERSHIPS})")
        # In memory first: the bus may deliver the join notice at once.
        self._add(user_id, room)
        now = time.time()

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO room_members (room, user_id, joined_at) VALUES (?, ?, ?)",
                (room, user_id, now),
            )

        await self._db.run(run)
