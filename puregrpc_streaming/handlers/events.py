"""WatchEvents: the event bus as a gRPC stream, with access, filters, heartbeats and resume."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import trio

from puregrpc import StatusCode
from puregrpc.server import ServicerContext

from ..access import may_see
from ..authentication import caller_of
from ..backends.base import (
    BusClosed,
    BusEvent,
    BusUnavailable,
    EventBus,
    RoomStore,
    SubscriberTooSlow,
)
from ..faults import unavailable
from ..filters import FilterError, compile_filter
from ..protos import streaming_pb2 as pb
from ._common import ServiceSettings, fail, invalid, metadata_text, timestamp_ns

logger = logging.getLogger("puregrpc_streaming.events")

#: Every event type the service publishes, exactly.
EVENT_TYPES = (
    "file.uploaded",
    "chat.message",
    "metrics.collected",
    "batch.processed",
    "sync.changed",
    "heartbeat",
    "gap",
)
#: Types the server makes for one watcher; sent whatever ``event_types`` says.
CONTROL_TYPES = frozenset({"heartbeat", "gap"})

#: The metadata key a resuming watcher sends.
LAST_EVENT_ID = "last-event-id"


def event_message(event: BusEvent) -> pb.Event:
    """The wire form of a bus event."""
    return pb.Event(
        id=event.id,
        type=event.type,
        payload=event.payload_json,
        timestamp=timestamp_ns(event.timestamp_ns),
    )


def last_event_id(context: ServicerContext) -> str | None:
    """The ``last-event-id`` metadata, if any (the bus checks it is one of its ids)."""
    text = metadata_text(context, LAST_EVENT_ID)
    if text is None or not text.strip():
        return None
    return text.strip()


class EventHandlers:
    """Serves WatchEvents from the bus."""

    def __init__(self, events: EventBus, rooms: RoomStore, settings: ServiceSettings) -> None:
        """Watch ``events``; room messages go to the members ``rooms`` knows."""
        self._events = events
        self._rooms = rooms
        self._settings = settings

    async def watch(
        self, request: pb.WatchRequest, context: ServicerContext
    ) -> AsyncIterator[pb.Event]:
        """Stream the matching events the caller may see, until the client leaves.

        * Only events whose audience admits the caller are sent or replayed
          (:mod:`puregrpc_streaming.access`): chat to the room's members, a
          file upload to its uploader, everything to an administrator.
        * ``event_types`` empty: every type; an unknown type is INVALID_ARGUMENT.
        * ``filter``: see :mod:`puregrpc_streaming.filters`, over the payload.
        * metadata ``last-event-id: ID``: first the stored events after ID,
          from the durable log (also across restarts). If some of them are
          gone (retention) or ID is unknown to the log, a ``gap`` event
          (payload: ``last_event_id``, ``resumed_after``, ``reason``) comes
          first, then what is retained: never a silent gap.
        * A ``heartbeat`` (payload ``{}``) after every ``heartbeat_interval``
          seconds without an event, whatever the types and filter say; its
          id resumes exactly from where the watcher stands.
        * Slow-subscriber policy: a watcher more than the bus's queue
          (1,024 events or 16 MiB) behind is cut off with RESOURCE_EXHAUSTED
          ``subscriber too slow; resume from last-event-id N``, N being the
          last event it was sent; resuming from N replays what it missed.
        """
        unknown = [t for t in request.event_types if t not in EVENT_TYPES]
        if unknown:
            invalid(f"unknown event type(s) {unknown}; the types are {', '.join(EVENT_TYPES)}")
        try:
            predicate = compile_filter(request.filter) if request.filter.strip() else None
        except FilterError as exc:
            invalid(f"bad filter: {exc}")
        after_id = last_event_id(context)
        caller = caller_of(context)
        rooms = self._rooms

        def visible(event: BusEvent) -> bool:
            return may_see(caller, event.audience, rooms)

        types = frozenset(request.event_types)
        interval = self._settings.heartbeat_interval
        async with AsyncExitStack() as stack:
            try:
                subscription = await stack.enter_async_context(
                    self._events.subscribe(
                        types=types, predicate=predicate, after_id=after_id, visible=visible
                    )
                )
            except ValueError as exc:
                invalid(f"metadata {LAST_EVENT_ID}: {exc}")
            # What the resume hint names before anything was sent: where this
            # watch started, so that resuming from it loses nothing.
            last_sent = subscription.resume_id if after_id is None else after_id
            # Headers now: a client that saw them knows it is subscribed and
            # will miss nothing published from here on.
            await context.send_initial_metadata()
            while True:
                event: BusEvent | None = None
                try:
                    with trio.move_on_after(interval):
                        event = await subscription.next()
                except SubscriberTooSlow:
                    logger.warning(
                        "watcher %s cut off as too slow after event %s", context.peer(), last_sent
                    )
                    fail(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"subscriber too slow; resume from last-event-id {last_sent}",
                    )
                except BusUnavailable as exc:
                    raise unavailable(
                        exc, f"{exc}; resume from last-event-id {last_sent}"
                    ) from None
                except BusClosed as exc:
                    fail(StatusCode.UNAVAILABLE, f"{exc}; resume from last-event-id {last_sent}")
                if event is None:
                    event = subscription.heartbeat()
                elif event.type == "gap":
                    logger.info(
                        "watcher %s resumed across a gap: %s", context.peer(), event.payload
                    )
                yield event_message(event)
                last_sent = event.id
