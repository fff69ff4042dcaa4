"""WatchEvents: the event bus as a gRPC stream, with filters, heartbeats and resume."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import trio

from puregrpc import StatusCode
from puregrpc.server import ServicerContext

from ..backends.base import BusClosed, BusEvent, EventBus, SubscriberTooSlow
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
)

#: The metadata key a resuming watcher sends.
LAST_EVENT_ID = "last-event-id"


def event_message(event: BusEvent) -> pb.Event:
    """The wire form of a bus event."""
    return pb.Event(
        id=str(event.id),
        type=event.type,
        payload=event.payload_json,
        timestamp=timestamp_ns(event.timestamp_ns),
    )


def parse_last_event_id(context: ServicerContext) -> int | None:
    """The ``last-event-id`` metadata as an int (INVALID_ARGUMENT if it is not one)."""
    text = metadata_text(context, LAST_EVENT_ID)
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        invalid(f"metadata {LAST_EVENT_ID} must be an event id (digits), got {text!r}")
    return int(text)


class EventHandlers:
    """Serves WatchEvents from the bus."""

    def __init__(self, events: EventBus, settings: ServiceSettings) -> None:
        """Watch ``events``."""
        self._events = events
        self._settings = settings

    async def watch(
        self, request: pb.WatchRequest, context: ServicerContext
    ) -> AsyncIterator[pb.Event]:
        """Stream matching events until the client leaves.

        * ``event_types`` empty: every type; an unknown type is INVALID_ARGUMENT.
        * ``filter``: see :mod:`puregrpc_streaming.filters`, over the payload.
        * metadata ``last-event-id: N``: first the retained events after N.
        * A ``heartbeat`` (payload ``{}``) after every ``heartbeat_interval``
          seconds without an event, whatever the types and filter say: it is
          what keeps an idle stream provably alive.
        * Slow-subscriber policy: a watcher more than the bus's queue size
          (1,024 events) behind is cut off with RESOURCE_EXHAUSTED
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
        after_id = parse_last_event_id(context)
        types = frozenset(request.event_types)
        # What the resume hint names before anything was sent: where this
        # watch started, so that resuming from it loses nothing.
        last_sent = after_id if after_id is not None else self._events.last_id
        interval = self._settings.heartbeat_interval
        async with self._events.subscribe(
            types=types, predicate=predicate, after_id=after_id
        ) as subscription:
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
                        "watcher %s cut off as too slow after event %d", context.peer(), last_sent
                    )
                    fail(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"subscriber too slow; resume from last-event-id {last_sent}",
                    )
                except BusClosed as exc:
                    fail(StatusCode.UNAVAILABLE, f"{exc}; resume from last-event-id {last_sent}")
                if event is None:
                    event = await self._events.heartbeat()
                yield event_message(event)
                last_sent = event.id
