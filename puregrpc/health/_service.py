"""The ``grpc.health.v1.Health`` service: Check, List and Watch over a status table.

Theory of operation. The table maps a service name to its serving status;
``""`` stands for the whole server and starts SERVING. :meth:`HealthService.set`
changes an entry and wakes the watchers of that name.

Watchers keep no queue. A change sets (and retires) the name's
:class:`trio.Event`; a woken watcher reads the table *now* and sends the
status if it differs from the last one it sent. A slow watcher, stuck in
``send`` behind a closed flow-control window while the status flips several
times, therefore sends only the latest status once it can, never a backlog:
what a health client needs is the current state, and the memory a watcher
holds stays one event whatever the rate of changes.

Semantics follow grpc/grpc ``doc/health-checking.md``: Check answers
NOT_FOUND for an unknown name; Watch answers SERVICE_UNKNOWN for it and
keeps the call open, reporting the status once the name is set.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator

import trio

from ..server import ServicerContext
from ..wire import StatusCode
from .protos import health_pb2
from .protos.health_puregrpc import HealthServicer

__all__ = ["LIST_LIMIT", "HealthService", "ServingStatus"]

#: At most this many services in a List answer; more is RESOURCE_EXHAUSTED
#: (health.proto's comment on List).
LIST_LIMIT = 100

_Status = health_pb2.HealthCheckResponse.ServingStatus


class ServingStatus(enum.IntEnum):
    """A service's health, as ``HealthCheckResponse.ServingStatus`` numbers it."""

    UNKNOWN = _Status.UNKNOWN
    SERVING = _Status.SERVING
    NOT_SERVING = _Status.NOT_SERVING
    #: Only Watch reports this, for a name that has no status: never set it.
    SERVICE_UNKNOWN = _Status.SERVICE_UNKNOWN


class HealthService(HealthServicer):
    """Serves ``grpc.health.v1.Health`` from a table the application keeps current.

    Add it to a server in one line and keep the reference to update it::

        health = HealthService()
        server.add_service(health)
        health.set("my.package.MyService", ServingStatus.SERVING)

    The overall server status (name ``""``) starts SERVING. Call :meth:`set`
    and :meth:`enter_graceful_shutdown` from the trio thread that runs the
    server (from another thread, through ``trio.from_thread.run_sync``).
    """

    def __init__(self) -> None:
        """Start with only the overall server status, SERVING."""
        self._statuses: dict[str, ServingStatus] = {"": ServingStatus.SERVING}
        #: Set, and dropped, by the next change of a name; only names watched now.
        self._changes: dict[str, trio.Event] = {}
        #: Open Watch calls per name, so that ``_changes`` forgets unwatched names.
        self._watchers: dict[str, int] = {}
        self._shutting_down = False

    # ------------------------------------------------------------ the table

    def set(self, service: str, status: ServingStatus) -> None:
        """Record ``service``'s status and tell its watchers (if it changed).

        Ignored after :meth:`enter_graceful_shutdown`, so that a component
        reporting SERVING late cannot undo the shutdown.
        """
        if not isinstance(service, str):
            raise TypeError(f"service name must be a str, got {service!r}")
        status = ServingStatus(status)
        if status is ServingStatus.SERVICE_UNKNOWN:
            raise ValueError(
                "SERVICE_UNKNOWN is what Watch reports for a name without a status; "
                "it cannot be set"
            )
        if self._shutting_down or self._statuses.get(service) is status:
            return
        self._statuses[service] = status
        self._wake(service)

    def get(self, service: str) -> ServingStatus | None:
        """The status recorded for ``service``, or None if it has none."""
        return self._statuses.get(service)

    @property
    def watched(self) -> frozenset[str]:
        """The names some Watch call follows now (empty once every Watch ended)."""
        return frozenset(self._watchers) | frozenset(self._changes)

    def enter_graceful_shutdown(self) -> None:
        """Mark every service NOT_SERVING and ignore later :meth:`set` calls.

        Call it when the server starts to shut down, so that load balancers
        and health probes move traffic away before connections close.
        """
        self._shutting_down = True
        for service, status in self._statuses.items():
            if status is not ServingStatus.NOT_SERVING:
                self._statuses[service] = ServingStatus.NOT_SERVING
                self._wake(service)

    def _wake(self, service: str) -> None:
        event = self._changes.pop(service, None)
        if event is not None:
            event.set()

    # -------------------------------------------------------------- the RPCs

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """The status of ``request.service``; NOT_FOUND if it has none."""
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status.value)

    async def List(
        self, request: health_pb2.HealthListRequest, context: ServicerContext
    ) -> health_pb2.HealthListResponse:
        """Every recorded status; RESOURCE_EXHAUSTED past :data:`LIST_LIMIT` services."""
        if len(self._statuses) > LIST_LIMIT:
            await context.abort(
                StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self._statuses)} services have a status, more than List "
                f"returns ({LIST_LIMIT}): use Check or Watch per service",
            )
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status.value)
                for name, status in self._statuses.items()
            }
        )

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The current status at once, then each change, until the client leaves."""
        service = request.service
        self._watchers[service] = self._watchers.get(service, 0) + 1
        try:
            sent: ServingStatus | None = None
            while True:
                # Take the event before reading the table, with no checkpoint
                # in between: a change while we send below sets this event,
                # so the wait after the send returns at once and we catch up.
                changed = self._changes.setdefault(service, trio.Event())
                status = self._statuses.get(service, ServingStatus.SERVICE_UNKNOWN)
                if status is not sent:
                    yield health_pb2.HealthCheckResponse(status=status.value)
                    sent = status
                await changed.wait()
        finally:
            self._watchers[service] -= 1
            if not self._watchers[service]:
                del self._watchers[service]
                self._changes.pop(service, None)
