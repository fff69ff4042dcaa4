"""Who may see what: event audiences, and the rule that matches them to callers.

Every event on the bus carries an *audience*: a tuple of principals, any one
of which lets a caller see it. The principals are

* ``*``: everyone (heartbeats, ``sync.changed``: the records are shared);
* ``user:ID``: that authenticated user (the uploader of a file, the caller
  of CollectMetrics or BatchProcess);
* ``anonymous:C``: the anonymous caller of open development mode on
  connection C (what it publishes about its own work): each connection is a
  caller of its own, so one anonymous client never sees another's file,
  metrics or batch events (connection ids are never reused, so a later
  connection cannot replay an earlier one's either);
* ``role:R``: callers with role R (``role:admin`` is on every private event);
* ``room:R``: the members of chat room R, i.e. the users who have joined it
  (:class:`RoomMembership`).

An administrator (role ``admin``) sees every event. WatchEvents delivers and
replays only what :func:`may_see` allows, so an anonymous watcher sees no
chat at all (it has joined no room as anyone), and a user sees the chat of
the rooms they joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .identity import ADMIN_ROLE, Identity

__all__ = [
    "EVERYONE",
    "RoomMembership",
    "may_see",
    "owner_audience",
    "room_audience",
]

#: The audience of events everyone may see.
EVERYONE: tuple[str, ...] = ("*",)


class RoomMembership(Protocol):
    """Who has joined which chat room (see :class:`.backends.rooms.RoomDirectory`)."""

    def is_member(self, room: str, user_id: str) -> bool:
        """True if ``user_id`` has joined ``room``."""
        ...


def room_audience(room: str) -> tuple[str, ...]:
    """The audience of a chat room's messages: its members (and administrators)."""
    return (f"room:{room}",)


def owner_audience(caller: Identity) -> tuple[str, ...]:
    """The audience of an event about ``caller``'s own work: the caller and administrators."""
    me = f"anonymous:{caller.connection}" if caller.anonymous else f"user:{caller.user_id}"
    return (me, f"role:{ADMIN_ROLE}")


def may_see(caller: Identity, audience: Sequence[str], rooms: RoomMembership) -> bool:
    """Whether ``caller`` may see an event addressed to ``audience``."""
    if caller.is_admin:
        return True
    for principal in audience:
        if principal == "*":
            return True
        kind, _, name = principal.partition(":")
        if kind == "anonymous":
            # An unknown connection ("") is nobody's; a bare "anonymous" (an
            # event of an older version) is the administrators' only.
            if caller.anonymous and name and name == caller.connection:
                return True
            continue
        if kind == "role" and name in caller.roles:
            return True
        if caller.anonymous:
            continue  # users and rooms are for authenticated callers only
        if kind == "user" and name == caller.user_id:
            return True
        if kind == "room" and rooms.is_member(name, caller.user_id):
            return True
    return False
