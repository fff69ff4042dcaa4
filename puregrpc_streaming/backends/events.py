"""The embedded event bus: in-process fan-out over a durable event log.

Theory of operation:

* :meth:`InProcessEventBus.publish` appends the event to the log
  (:class:`~.event_log.SqliteEventLog`, SQLite) and only then offers it to
  every subscriber whose types, audience check and predicate match. Publishes
  are serialised by a lock and the append is shielded from cancellation, so
  events are stored and delivered in one order, and an event any subscriber
  saw is in the log. The event's id is its log position as a string:
  unique across restarts and across instances sharing the data directory.
  Ids are opaque to clients; only the bus reads them (:func:`parse_event_id`).
* Each subscriber has a bounded :class:`~.._mailbox.Mailbox` (events and
  bytes). Offering never waits: a subscriber whose mailbox is full is *cut
  off* (its queue dropped, itself removed from the bus) and its next
  :meth:`BusSubscriber.next` raises :class:`~.base.SubscriberTooSlow`. It
  resumes by subscribing again with ``after_id`` = the last id it received.
* Resuming: a subscription with ``after_id`` first replays the log from
  there up to the *boundary*, the last position fanned out when it
  registered (registration and boundary happen with no checkpoint in
  between), one page at a time from SQLite; live events, all past the
  boundary, follow from the mailbox. No gap, no duplicate, and memory stays
  at one page whatever the backlog.
* Gaps are never silent: when the log no longer holds events after
  ``after_id`` (retention pruned them, or the id is newer than anything the
  log handed out, e.g. from before the data directory was reset), the
  replay starts with a ``gap`` event saying so, then goes on from the
  oldest retained event. A heartbeat's id is the position the subscriber
  has caught up to (``<position>.<n>``), so resuming from it is exact too.
* Several instances may share the data directory, so the log: the bus also
  fans out, in log order, the events *other* instances appended. When its
  own append lands past the next position, it first reads the positions in
  between from the log (:meth:`InProcessEventBus.publish`), and
  :meth:`InProcessEventBus.follow_log` reads what is new every
  :data:`FOLLOW_INTERVAL` seconds while nothing is published here. So a
  watcher sees every instance's events, in order, and a resume after an id
  never skips an earlier event of another instance (it used to: a watcher
  saw only its own instance's events live, and resuming after the last of
  them passed over the others' without a word).
* The subscriber side (:class:`BusSubscriber`: replay, boundary, mailbox,
  heartbeats), registration and fan-out (:class:`SubscriberSet`) and the gap marker
  (:func:`gap_event`) serve the Redis bus too (:mod:`.redis_events`): it
  differs in where the log is and in who fans out (its stream reader), and
  it names positions by stream id (:meth:`SubscriberSource.event_id`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio

from .._mailbox import Mailbox, MailboxClosed, MailboxOverflow
from ..access import EVERYONE
from ..filters import Predicate
from .base import BusClosed, BusEvent, SubscriberTooSlow
from .event_log import LoggedEvent, LogPage, SqliteEventLog, event_size

__all__ = [
    "BusSubscriber",
    "InProcessEventBus",
    "PagedLog",
    "SubscriberSet",
    "SubscriberSource",
    "encode_payload",
    "from_log",
    "gap_event",
    "parse_event_id",
]

logger = logging.getLogger("puregrpc_streaming.events")

#: Seconds between two reads of the log for what other instances appended.
FOLLOW_INTERVAL = 0.2
#: Past any position: "the end of the log" for :meth:`SqliteEventLog.read`.
_END = (1 << 63) - 1

#: Events a subscriber may fall behind before it is cut off...
DEFAULT_QUEUE_SIZE = 1024
#: ...and bytes.
DEFAULT_QUEUE_BYTES = 16 << 20
#: Largest event payload (encoded JSON) the bus accepts.
MAX_EVENT_BYTES = 1 << 20

#: What a subscriber may see: a check of the event (its audience), or None for all.
Visibility = Callable[[BusEvent], bool]


def parse_event_id(event_id: str) -> int:
    """The log position an event id (or a heartbeat's id) stands for; ValueError if not ours."""
    head, _, tail = event_id.strip().partition(".")
    if not (head.isascii() and head.isdigit()) or len(head) > 19:
        raise ValueError(f"{event_id!r} is not an event id this server issued")
    if tail and not (tail.isascii() and tail.isdigit() and len(tail) <= 19):
        raise ValueError(f"{event_id!r} is not an event id this server issued")
    return int(head)


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def from_log(logged: LoggedEvent, event_id: Callable[[int], str] = str) -> BusEvent:
    """The :class:`BusEvent` of a logged event, its id made by ``event_id(position)``."""
    return BusEvent(
        id=event_id(logged.position),
        position=logged.position,
        type=logged.type,
        payload=json.loads(logged.payload_json),
        payload_json=logged.payload_json,
        timestamp_ns=logged.timestamp_ns,
        audience=logged.audience,
    )


def _size(event: BusEvent) -> int:
    return event_size(event.type, event.payload_json, event.audience)


class SubscriberSource(Protocol):
    """What a :class:`BusSubscriber` needs of its bus: the log, the order, the ids."""

    queue_size: int
    queue_bytes: int

    @property
    def log(self) -> PagedLog:
        """Where replays read from."""
        ...

    @property
    def last_position(self) -> int:
        """The position of the last event fanned out."""
        ...

    def event_id(self, position: int) -> str:
        """The id clients see for ``position``."""
        ...

    def gap(self, requested: str, after: int, resumed: int, reason: str) -> BusEvent:
        """The ``gap`` event a replay starts with when the log lost what followed ``after``."""
        ...


class PagedLog(Protocol):
    """A log read in pages by position (:class:`~.event_log.SqliteEventLog` is one)."""

    async def read(self, after: int, upto: int) -> LogPage:
        """Events after position ``after``, up to ``upto`` included, one page."""
        ...


class BusSubscriber:
    """One subscription: its selection, its replay cursor and its mailbox."""

    __slots__ = (
        "_bus",
        "_caught_up",
        "_heartbeats",
        "_replay",
        "_requested",
        "boundary",
        "cursor",
        "failure",
        "mailbox",
        "predicate",
        "types",
        "visible",
    )

    def __init__(
        self,
        bus: SubscriberSource,
        types: frozenset[str],
        predicate: Predicate | None,
        visible: Visibility | None,
    ) -> None:
        self._bus = bus
        self.types = types
        self.predicate = predicate
        self.visible = visible
        self.mailbox: Mailbox[BusEvent] = Mailbox(
            bus.queue_size, max_bytes=bus.queue_bytes, size_of=_size
        )
        self._replay: deque[BusEvent] = deque()
        #: Replay: the last position read from the log (None: no replay left).
        self.cursor: int | None = None
        #: Replay ends at this position; live events are past it.
        self.boundary = 0
        self._requested = ""
        #: The position of the last event handed out (or passed over in replay).
        self._caught_up = 0
        self._heartbeats = 0
        #: Raised by :meth:`next` once the mailbox is closed, if set (else BusClosed).
        self.failure: BusClosed | None = None

    def wants(self, event: BusEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        if self.visible is not None and not self.visible(event):
            return False
        if self.predicate is None:
            return True
        try:
            return self.predicate(event.payload)
        except Exception:
            # Filters from puregrpc_streaming.filters never raise; a custom
            # predicate that does must not break the publisher.
            logger.exception("subscriber predicate raised; event %s skipped", event.id)
            return False

    def start(self, boundary: int, after: int | None, requested: str) -> None:
        """Live past ``boundary``; with ``after``, replay the log from there first."""
        self.boundary = boundary
        self.cursor = after
        self._caught_up = after if after is not None else boundary
        self._requested = requested

    async def _fill_replay(self) -> None:
        """Read the next page of the log into the replay queue (a gap event first, if any)."""
        assert self.cursor is not None
        page = await self._bus.log.read(self.cursor, self.boundary)
        reason = ""
        if self.cursor < page.pruned_upto:
            reason = "retention deleted them"
        elif self.cursor > page.last_position:
            reason = "the id is newer than this server's event log (was its data reset?)"
        if reason:
            resumed = min(page.pruned_upto, self.boundary)
            self._replay.append(self._bus.gap(self._requested, self.cursor, resumed, reason))
            self.cursor = resumed
            return
        for logged in page.events:
            event = from_log(logged, self._bus.event_id)
            if self.wants(event):
                self._replay.append(event)
            else:
                self._caught_up = max(self._caught_up, logged.position)
        self.cursor = page.events[-1].position if page.events else self.boundary
        if self.cursor >= self.boundary and not self._replay:
            self.cursor = None

    async def next(self) -> BusEvent:
        while self.cursor is not None and not self._replay:
            await self._fill_replay()
        if self._replay:
            # Cancel first, pop after: a cancelled next() must not lose an event.
            await trio.lowlevel.checkpoint_if_cancelled()
            event = self._replay.popleft()
            if not self._replay and self.cursor is not None and self.cursor >= self.boundary:
                self.cursor = None
            self._caught_up = max(self._caught_up, event.position)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        try:
            event = await self.mailbox.get()
        except MailboxOverflow as exc:
            raise SubscriberTooSlow(str(exc)) from None
        except MailboxClosed as exc:
            raise (self.failure or BusClosed(exc.reason)) from None
        self._caught_up = max(self._caught_up, event.position)
        return event

    def _position(self) -> int:
        position = self._caught_up
        if self.cursor is None and not self._replay and not len(self.mailbox):
            # Nothing waiting: every event the bus has fanned out was offered.
            position = max(position, self._bus.last_position)
        return position

    @property
    def resume_id(self) -> str:
        """An id that resumes exactly where this subscriber stands."""
        return self._bus.event_id(self._position())

    def heartbeat(self) -> BusEvent:
        """A heartbeat whose id resumes exactly where this subscriber stands."""
        position = self._position()
        self._heartbeats += 1
        return BusEvent(
            id=f"{self._bus.event_id(position)}.{self._heartbeats}",
            position=position,
            type="heartbeat",
            payload={},
            payload_json=b"{}",
            timestamp_ns=time.time_ns(),
            audience=EVERYONE,
        )

    def pending(self) -> int:
        return len(self._replay) + len(self.mailbox)


class SubscriberSet:
    """The subscribers of one bus: registration at a boundary, fan-out, ending them.

    Fan-out never waits: a subscriber whose mailbox is full is removed (its
    mailbox has dropped its queue; its reader learns it is too slow).
    """

    def __init__(self) -> None:
        self._subscribers: set[BusSubscriber] = set()
        #: Why the bus closed (None: open).
        self.closed: str | None = None
        #: Subscribers cut off for being slow.
        self.cut_off = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    @asynccontextmanager
    async def register(
        self,
        source: SubscriberSource,
        *,
        types: frozenset[str],
        predicate: Predicate | None,
        visible: Visibility | None,
        after: int | None,
        after_id: str | None,
    ) -> AsyncIterator[BusSubscriber]:
        """A subscriber live past ``source.last_position`` (replaying after ``after``)."""
        subscriber = BusSubscriber(source, types, predicate, visible)
        if self.closed is not None:
            subscriber.mailbox.close(self.closed)
        else:
            # Boundary and registration with no checkpoint in between: every
            # later event is live, every earlier one is in the log.
            subscriber.start(source.last_position, after, after_id or "")
            self._subscribers.add(subscriber)
        try:
            await trio.lowlevel.checkpoint()
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            subscriber.mailbox.close("unsubscribed")

    def offer(self, event: BusEvent) -> None:
        """Offer ``event`` to each subscriber that wants it (see the class)."""
        for subscriber in list(self._subscribers):
            if subscriber.wants(event) and not subscriber.mailbox.put_nowait(event):
                self._subscribers.discard(subscriber)
                self.cut_off += 1
                logger.warning(
                    "subscriber cut off at event %s: more than %d events or %d bytes behind",
                    event.id,
                    subscriber.mailbox.capacity,
                    subscriber.mailbox.max_bytes,
                )

    def end_all(self, reason: str, failure: BusClosed | None = None) -> None:
        """End every current subscription: its reader gets ``failure`` (or BusClosed)."""
        for subscriber in self._subscribers:
            subscriber.failure = failure
            subscriber.mailbox.close(reason)
        self._subscribers.clear()

    def close(self, reason: str) -> None:
        """End every subscription, and every later one at once."""
        self.closed = reason
        self.end_all(reason)


def gap_event(requested: str, resumed_id: str, resumed: int, reason: str) -> BusEvent:
    """A ``gap`` event: the events after ``requested`` are gone, the replay resumes after
    ``resumed_id`` (position ``resumed``)."""
    payload = {
        "last_event_id": requested,
        "resumed_after": resumed_id,
        "reason": f"the events after {requested} are no longer available: {reason}",
    }
    return BusEvent(
        id=resumed_id,
        position=resumed,
        type="gap",
        payload=payload,
        payload_json=encode_payload(payload),
        timestamp_ns=time.time_ns(),
        audience=EVERYONE,
    )


class InProcessEventBus:
    """An :class:`~.base.EventBus` for one server process, over a durable log."""

    def __init__(
        self,
        log: SqliteEventLog,
        *,
        last_position: int = 0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
    ) -> None:
        """Publish into ``log`` (already open, its last position given); bound subscribers."""
        if queue_size < 1 or queue_bytes < 1:
            raise ValueError("queue_size and queue_bytes must be positive")
        self.log = log
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self._subscribers = SubscriberSet()
        self._last_position = last_position
        self._lock = trio.Lock()
        #: Events published since start.
        self.published = 0

    @property
    def subscriber_count(self) -> int:
        """Subscriptions currently open."""
        return len(self._subscribers)

    @property
    def cut_off(self) -> int:
        """Subscribers cut off for being slow, since start."""
        return self._subscribers.cut_off

    @property
    def last_position(self) -> int:
        """The position of the last event fanned out by this bus (or in the log at start)."""
        return self._last_position

    @property
    def last_id(self) -> str:
        """The id of the last event fanned out (``"0"``: none yet)."""
        return str(self._last_position)

    def event_id(self, position: int) -> str:
        """An event's id: its log position, in decimal."""
        return str(position)

    async def publish(
        self, type: str, payload: Mapping[str, Any], *, audience: Sequence[str] = EVERYONE
    ) -> BusEvent:
        """Store, then fan out one event to ``audience`` (never waits for subscribers)."""
        payload_json = encode_payload(payload)
        if len(payload_json) > MAX_EVENT_BYTES:
            raise ValueError(
                f"event payload of {len(payload_json)} bytes is over {MAX_EVENT_BYTES}"
            )
        audience = tuple(audience)
        async with self._lock:
            stamp = time.time_ns()
            with trio.CancelScope(shield=True):
                # Stored and delivered together, or neither: a cancel here
                # would leave an event in the log that live watchers never saw.
                position = await self.log.append(type, payload_json, audience, stamp)
                if position > self._last_position + 1:
                    # Other instances appended in between: theirs go out first.
                    await self._catch_up(position - 1)
            event = BusEvent(
                id=str(position),
                position=position,
                type=type,
                payload=payload,
                payload_json=payload_json,
                timestamp_ns=stamp,
                audience=audience,
            )
            self._last_position = max(self._last_position, position)
            self.published += 1
            self._fan_out(event)
        return event

    def _fan_out(self, event: BusEvent) -> None:
        self._subscribers.offer(event)

    async def _catch_up(self, upto: int) -> None:
        """Fan out the logged events after the last one fanned out, up to ``upto``
        (appended by other instances on the data directory). Hold the lock."""
        while True:
            page = await self.log.read(self._last_position, upto)
            if not page.events:
                return
            for logged in page.events:
                self._last_position = logged.position
                self._fan_out(from_log(logged, self.event_id))

    async def follow_log(self, interval: float = FOLLOW_INTERVAL) -> None:
        """Fan out what other instances append to the shared log, every ``interval``
        seconds, until cancelled (see the module docstring)."""
        while True:
            await trio.sleep(interval)
            try:
                await self.log.expire()  # the age bound, also while nothing is published
                async with self._lock:
                    if len(self._subscribers):
                        await self._catch_up(_END)
                    else:
                        # Nobody to tell: just move past them (a later
                        # subscriber replays them from the log).
                        page = await self.log.read(self._last_position, self._last_position)
                        self._last_position = max(self._last_position, page.last_position)
            except sqlite3.Error as exc:
                logger.warning("cannot read the event log for other instances' events: %s", exc)

    def gap(self, requested: str, after: int, resumed: int, reason: str) -> BusEvent:
        """The ``gap`` event a replay starts with when the log lost what followed ``after``."""
        return gap_event(requested, self.event_id(resumed), resumed, reason)

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        types: frozenset[str] = frozenset(),
        predicate: Predicate | None = None,
        after_id: str | None = None,
        visible: Visibility | None = None,
    ) -> AsyncIterator[BusSubscriber]:
        """Subscribe for the block; see :meth:`~.base.EventBus.subscribe`.

        ``after_id`` that is not an id of this bus raises :class:`ValueError`.
        """
        after = parse_event_id(after_id) if after_id is not None else None
        async with self._subscribers.register(
            self,
            types=types,
            predicate=predicate,
            visible=visible,
            after=after,
            after_id=after_id,
        ) as subscriber:
            yield subscriber

    def close(self, reason: str = "server shutting down") -> None:
        """End every subscription (their readers get :class:`~.base.BusClosed`)."""
        self._subscribers.close(reason)
