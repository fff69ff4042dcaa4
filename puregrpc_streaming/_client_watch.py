"""EventWatcher: a WatchEvents subscription that survives reconnections."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, replace

import trio

from puregrpc import RpcError, StatusCode

from ._client_common import RetryPolicy
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub


@dataclass(frozen=True, slots=True, kw_only=True)
class EventGap:
    """Events the server could not replay: what a ``gap`` event says."""

    #: The id the watch resumed after.
    last_event_id: str
    #: Where the replay went on from (the watcher continues after this id).
    resumed_after: str
    #: Why, in the server's words.
    reason: str


class EventsLost(Exception):
    """A resumed watch missed events (the server no longer has them), and no ``on_gap`` was set."""

    def __init__(self, gap: EventGap) -> None:
        super().__init__(gap.reason)
        self.gap = gap


def _gap_of(event: streaming_pb2.Event) -> EventGap:
    try:
        fields = json.loads(event.payload)
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    return EventGap(
        last_event_id=str(fields.get("last_event_id", "")),
        resumed_after=str(fields.get("resumed_after", event.id)),
        reason=str(fields.get("reason", "the server lost some events")),
    )


class EventWatcher:
    """A WatchEvents subscription that survives reconnections.

    ``async for event in watcher.events():`` yields events in order; after a
    transient failure (or the server ending the stream, e.g. to shed a slow
    subscriber, on shutdown, or when a deadline ends it) it reopens the stream with metadata
    ``last-event-id`` = the id of the last event yielded, so the server
    replays what was missed and nothing is seen twice.
    """

    def __init__(
        self,
        stub: StreamingServiceStub,
        *,
        event_types: Iterable[str] = (),
        filter: str = "",
        last_event_id: str | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[RpcError | None, float], None] | None = None,
        on_gap: Callable[[EventGap], None] | None = None,
    ) -> None:
        """Watch ``event_types`` matching ``filter``, after ``last_event_id`` if given.

        ``on_gap(gap)`` is told when a resume missed events the server no
        longer has (without it, :class:`EventsLost` is raised); gap events
        are never yielded.
        """
        self._stub = stub
        self._on_gap = on_gap
        self._request = streaming_pb2.WatchRequest(event_types=list(event_types), filter=filter)
        #: The id of the last event yielded (what a reconnection resumes after).
        self.last_event_id = last_event_id
        #: Streams reopened so far.
        self.reconnects = 0
        policy = retry if retry is not None else RetryPolicy()
        # A slow subscriber is ended with RESOURCE_EXHAUSTED, and a deadline
        # (a proxy's, a server's default) ends a watch that is still wanted
        # with DEADLINE_EXCEEDED: both resume as after UNAVAILABLE.
        self._retry = replace(
            policy,
            retryable=policy.retryable
            | {StatusCode.RESOURCE_EXHAUSTED, StatusCode.DEADLINE_EXCEEDED},
        )
        self._on_retry = on_retry

    async def events(self) -> AsyncGenerator[streaming_pb2.Event, None]:
        """The events, forever (until the caller stops or retries are exhausted).

        Close the generator when done (``aclose()``, or ``contextlib.aclosing``).
        """
        failures = 0
        while True:
            metadata = (
                [("last-event-id", self.last_event_id)] if self.last_event_id is not None else None
            )
            error: RpcError | None = None
            call = self._stub.WatchEvents(self._request, metadata=metadata)
            try:
                async with call:
                    async for event in call:
                        failures = 0
                        if event.type == "gap":
                            gap = _gap_of(event)
                            if self._on_gap is None:
                                raise EventsLost(gap)
                            self._on_gap(gap)
                            self.last_event_id = event.id
                            continue
                        self.last_event_id = event.id
                        yield event
            except RpcError as exc:
                if exc.code not in self._retry.retryable:
                    raise
                error = exc
            failures += 1
            if failures > self._retry.attempts:
                if error is not None:
                    raise error
                raise RpcError(StatusCode.UNAVAILABLE, "the server keeps ending the watch")
            delay = self._retry.delay(failures)
            if self._on_retry is not None:
                self._on_retry(error, delay)
            self.reconnects += 1
            await trio.sleep(delay)
