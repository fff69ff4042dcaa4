"""The embedded event bus: in-process publish/subscribe with a replay buffer.

Theory of operation:

* :meth:`InProcessEventBus.publish` numbers the event, appends it to the
  retained ring (the last ``retain`` events, 10,000 by default) and offers it
  to every subscriber whose types and predicate match, all synchronously: in
  trio nothing runs in between, so ids are handed out and delivered in one
  order, and a subscriber registered at any instant sees every later event.
* Each subscriber has a bounded :class:`~.._mailbox.Mailbox`. Offering never
  waits: a subscriber whose mailbox is full is *cut off* (its queue dropped,
  itself removed from the bus) and its next :meth:`Subscription.next` raises
  :class:`~.base.SubscriberTooSlow`. So a slow watcher never slows the
  publishers or the other watchers, and costs at most ``queue_size`` events
  of memory. It resumes by subscribing again with ``after_id`` = the last id
  it received, and gets the retained events it missed.
* Ids start at the server's start time in microseconds since the epoch and
  increase by one per event, so they keep increasing across restarts (as long
  as a run averages under a million events a second) and a watcher resuming
  against a restarted server does not skip new events.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._mailbox import Mailbox, MailboxClosed, MailboxOverflow
from ..filters import Predicate
from .base import BusClosed, BusEvent, SubscriberTooSlow

__all__ = ["InProcessEventBus"]

logger = logging.getLogger("puregrpc_streaming.events")

#: Events a subscriber may fall behind before it is cut off.
DEFAULT_QUEUE_SIZE = 1024
#: Events kept for resuming watchers (the issue asks for at least 10,000).
DEFAULT_RETAIN = 10_000


class _Subscriber:
    """One subscription: its selection, its replay backlog and its mailbox."""

    __slots__ = ("mailbox", "predicate", "replay", "types")

    def __init__(self, types: frozenset[str], predicate: Predicate | None, queue_size: int) -> None:
        self.types = types
        self.predicate = predicate
        self.mailbox: Mailbox[BusEvent] = Mailbox(queue_size)
        self.replay: deque[BusEvent] = deque()

    def wants(self, event: BusEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        if self.predicate is None:
            return True
        try:
            return self.predicate(event.payload)
        except Exception:
            # Filters from puregrpc_streaming.filters never raise; a custom
            # predicate that does must not break the publisher.
            logger.exception("subscriber predicate raised; event %d skipped", event.id)
            return False

    async def next(self) -> BusEvent:
        if self.replay:
            # Cancel first, pop after: a cancelled next() must not lose an event.
            await trio.lowlevel.checkpoint_if_cancelled()
            event = self.replay.popleft()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        try:
            return await self.mailbox.get()
        except MailboxOverflow as exc:
            raise SubscriberTooSlow(str(exc)) from None
        except MailboxClosed as exc:
            raise BusClosed(exc.reason) from None

    def pending(self) -> int:
        return len(self.replay) + len(self.mailbox)


class InProcessEventBus:
    """An :class:`~.base.EventBus` for one server process."""

    def __init__(
        self,
        *,
        retain: int = DEFAULT_RETAIN,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        first_id: int | None = None,
    ) -> None:
        """Keep ``retain`` events for replay; cut subscribers off ``queue_size`` behind."""
        if retain < 1 or queue_size < 1:
            raise ValueError("retain and queue_size must be positive")
        self._retained: deque[BusEvent] = deque(maxlen=retain)
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()
        self._next_id = first_id if first_id is not None else time.time_ns() // 1000
        self._closed: str | None = None
        #: Events published since start, and subscribers cut off for being slow.
        self.published = 0
        self.cut_off = 0

    @property
    def subscriber_count(self) -> int:
        """Subscriptions currently open."""
        return len(self._subscribers)

    @property
    def last_id(self) -> int:
        """The id of the most recent event (or heartbeat); 0 ids are never used."""
        return self._next_id - 1

    def _make(self, type: str, payload: Mapping[str, Any]) -> BusEvent:
        event_id = self._next_id
        self._next_id += 1
        return BusEvent(
            id=event_id,
            type=type,
            payload=payload,
            payload_json=json.dumps(payload, separators=(",", ":"), sort_keys=True).encode(),
            timestamp_ns=time.time_ns(),
        )

    async def publish(self, type: str, payload: Mapping[str, Any]) -> BusEvent:
        """Number, retain and fan out one event (never waits for subscribers)."""
        event = self._make(type, payload)
        self._retained.append(event)
        self.published += 1
        for subscriber in list(self._subscribers):
            if subscriber.wants(event) and not subscriber.mailbox.put_nowait(event):
                # Full: the mailbox dropped its queue; stop feeding it.
                self._subscribers.discard(subscriber)
                self.cut_off += 1
                logger.warning(
                    "subscriber cut off at event %d: more than %d events behind",
                    event.id,
                    self._queue_size,
                )
        await trio.lowlevel.checkpoint()
        return event

    async def heartbeat(self) -> BusEvent:
        """A fresh-id ``heartbeat`` event for one idle subscriber (not retained)."""
        await trio.lowlevel.checkpoint()
        return self._make("heartbeat", {})

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        types: frozenset[str] = frozenset(),
        predicate: Predicate | None = None,
        after_id: int | None = None,
    ) -> AsyncIterator[_Subscriber]:
        """Subscribe for the block; see :meth:`~.base.EventBus.subscribe`."""
        subscriber = _Subscriber(types, predicate, self._queue_size)
        if self._closed is not None:
            subscriber.mailbox.close(self._closed)
        else:
            if after_id is not None:
                # Snapshot and registration happen with no checkpoint in
                # between: no event can fall in the gap or arrive twice.
                subscriber.replay.extend(
                    event
                    for event in self._retained
                    if event.id > after_id and subscriber.wants(event)
                )
            self._subscribers.add(subscriber)
        try:
            await trio.lowlevel.checkpoint()
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            subscriber.mailbox.close("unsubscribed")

    def close(self, reason: str = "server shutting down") -> None:
        """End every subscription (their readers get :class:`~.base.BusClosed`)."""
        self._closed = reason
        for subscriber in self._subscribers:
            subscriber.mailbox.close(reason)
        self._subscribers.clear()
