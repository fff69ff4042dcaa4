"""Chat: rooms on top of the event bus.

Every chat message, and every join/leave notice (from user ``system``), is a
``chat.message`` event; each Chat call subscribes to the bus with a predicate
"the event's room is one of mine", so delivery, ordering, bounded queues and
the slow-client policy are the bus's, and the rooms would span several
servers with a shared bus. A message reaches every member of its room, the
sender included, stamped with the server's time.

Rules:

* The sender is the authenticated caller (token or client certificate):
  its user id is the ``user_id`` of every message the call sends, whatever
  the client wrote. A ``user-id`` metadata naming someone else is
  PERMISSION_DENIED. Only in open development mode (anonymous callers) is
  the declared ``user-id`` metadata the sender (UNAUTHENTICATED without
  it). ``system`` is reserved.
* metadata ``room-id`` joins that room when the call starts; a message whose
  ``room_id`` names a room the call has not joined joins it first; a message
  with no ``room_id`` goes to the most recently joined room.
* The client leaves every room when it half-closes, cancels or disconnects;
  the others get a leave notice at once.
* A caller may send ``chat_rate`` messages a second, in bursts of
  ``chat_burst`` (per authenticated user, or per client address when
  anonymous, across all its calls); one more ends the call with
  RESOURCE_EXHAUSTED carrying a ``google.rpc.RetryInfo`` that says when to
  come back. Join and leave notices do not count.
* A client more than 1,024 messages (or 16 MiB) behind is cut off with
  RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import trio

from puregrpc import StatusCode
from puregrpc.error_details import RetryInfo, rich_error
from puregrpc.server import RequestIterator, ServicerContext

from ..access import room_audience
from ..authentication import caller_of
from ..backends.base import (
    BusClosed,
    BusEvent,
    BusUnavailable,
    EventBus,
    MembershipFull,
    RoomStore,
    SubscriberTooSlow,
    Subscription,
)
from ..faults import unavailable
from ..protos import streaming_pb2 as pb
from ..rate_limit import RateLimiter
from ._common import fail, flat_nursery, invalid, metadata_text, timestamp_ns

logger = logging.getLogger("puregrpc_streaming.chat")

SYSTEM_USER = "system"
MAX_CONTENT = 64 * 1024
#: Rooms one Chat call may be in at once.
MAX_ROOMS_PER_CALL = 100
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def _check_name(kind: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        invalid(f"{kind} {value!r} must be 1..128 printable characters")
    return value


def chat_message(event: BusEvent) -> pb.ChatMessage:
    """The ChatMessage a ``chat.message`` event delivers."""
    payload = event.payload
    return pb.ChatMessage(
        user_id=str(payload.get("user_id", "")),
        room_id=str(payload.get("room_id", "")),
        content=str(payload.get("content", "")),
        timestamp=timestamp_ns(event.timestamp_ns),
    )


def _sender(context: ServicerContext) -> str:
    """The user id messages of this call are sent as."""
    caller = caller_of(context)
    declared = metadata_text(context, "user-id")
    if caller.anonymous:
        if not declared:
            fail(
                StatusCode.UNAUTHENTICATED,
                "metadata user-id is required to chat anonymously (open development mode)",
            )
        return _check_name("user-id", declared)
    if declared and declared != caller.user_id:
        fail(
            StatusCode.PERMISSION_DENIED,
            f"metadata user-id {declared!r} is not the authenticated user {caller.user_id!r}",
        )
    return _check_name("user id", caller.user_id)


def _host(peer: str) -> str:
    """The address part of a peer name (``ipv4:10.0.0.1:5555`` -> ``ipv4:10.0.0.1``)."""
    host, _, port = peer.rpartition(":")
    return host if host and port.isdigit() else peer


class ChatHandlers:
    """Serves Chat calls."""

    def __init__(
        self, events: EventBus, rooms: RoomStore, *, rate: float = 20.0, burst: int = 50
    ) -> None:
        """Carry rooms over ``events``; members go to ``rooms``; ``rate`` messages/s per caller."""
        self._events = events
        self._rooms = rooms
        #: Messages per second per caller, shared by all its Chat calls.
        self.limiter = RateLimiter(rate, burst)
        #: Chat calls in progress.
        self.active = 0

    async def chat(
        self, requests: RequestIterator[pb.ChatMessage], context: ServicerContext
    ) -> None:
        """Run one chat client until it leaves; responses go out with ``context.send``."""
        user = _sender(context)
        caller = caller_of(context)
        member = not caller.anonymous  # only proven users become members
        # Anonymous callers are told apart by address: their declared names prove nothing.
        rate_key = f"user:{caller.user_id}" if member else f"peer:{_host(context.peer())}"
        if user == SYSTEM_USER:
            invalid(f"user-id {SYSTEM_USER!r} is reserved")
        first_room = metadata_text(context, "room-id")
        rooms: list[str] = []  # joined, in order; the last is the default
        joined: set[str] = set()

        def mine(payload: Mapping[str, Any]) -> bool:
            return payload.get("room_id") in joined

        self.active += 1
        try:
            async with self._events.subscribe(
                types=frozenset({"chat.message"}), predicate=mine
            ) as subscription:
                await context.send_initial_metadata()  # subscribed: tell the client
                try:
                    if first_room:
                        await self._join(
                            user, member, _check_name("room-id", first_room), rooms, joined
                        )
                    async with flat_nursery() as nursery:
                        nursery.start_soon(self._deliver, subscription, context)
                        async for message in requests:
                            room = message.room_id or (rooms[-1] if rooms else "")
                            if not room:
                                invalid("message has no room_id and the call has joined no room")
                            if len(message.content.encode()) > MAX_CONTENT:
                                invalid(f"message content is longer than {MAX_CONTENT} bytes")
                            self._check_rate(rate_key)
                            if room not in joined:
                                await self._join(
                                    user, member, _check_name("room-id", room), rooms, joined
                                )
                            await self._events.publish(
                                "chat.message",
                                {"user_id": user, "room_id": room, "content": message.content},
                                audience=room_audience(room),
                            )
                        # Half-close: the client is done; leave now.
                        nursery.cancel_scope.cancel()
                finally:
                    await self._leave_all(user, rooms, joined)
        finally:
            self.active -= 1

    def _check_rate(self, key: str) -> None:
        wait = self.limiter.acquire(key, trio.current_time())
        if wait > 0:
            retry = RetryInfo()
            retry.retry_delay.FromNanoseconds(max(1, int(wait * 1e9)))
            limiter = self.limiter
            raise rich_error(
                StatusCode.RESOURCE_EXHAUSTED,
                f"chat rate limit: at most {limiter.rate:g} messages a second "
                f"(bursts of {limiter.burst}); retry in {wait:.2f} s",
                [retry],
            )

    async def _join(
        self, user: str, member: bool, room: str, rooms: list[str], joined: set[str]
    ) -> None:
        if len(rooms) >= MAX_ROOMS_PER_CALL:
            fail(
                StatusCode.RESOURCE_EXHAUSTED,
                f"a Chat call may be in at most {MAX_ROOMS_PER_CALL} rooms; cannot join {room!r}",
            )
        if member:
            try:
                await self._rooms.join(room, user)
            except MembershipFull as exc:
                fail(StatusCode.RESOURCE_EXHAUSTED, f"cannot join room {room!r}: {exc}")
        joined.add(room)
        rooms.append(room)
        logger.debug("%s joined room %s", user, room)
        await self._notice(room, f"{user} joined")

    async def _leave_all(self, user: str, rooms: list[str], joined: set[str]) -> None:
        # Shielded: a disconnect cancels the call, and the others must still
        # learn at once that this member is gone.
        with trio.CancelScope(shield=True):
            left = list(rooms)
            joined.clear()  # before the notices: they are for the others
            rooms.clear()
            for room in left:
                logger.debug("%s left room %s", user, room)
                await self._notice(room, f"{user} left")

    async def _notice(self, room: str, content: str) -> None:
        await self._events.publish(
            "chat.message",
            {"user_id": SYSTEM_USER, "room_id": room, "content": content},
            audience=room_audience(room),
        )

    async def _deliver(self, subscription: Subscription, context: ServicerContext) -> None:
        while True:
            try:
                event = await subscription.next()
            except SubscriberTooSlow:
                fail(StatusCode.RESOURCE_EXHAUSTED, "chat client too slow: messages were dropped")
            except BusUnavailable as exc:
                raise unavailable(exc) from None
            except BusClosed as exc:
                fail(StatusCode.UNAVAILABLE, str(exc))
            await context.send(chat_message(event))
