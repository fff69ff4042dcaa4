"""The ``streaming.v1.StreamingService`` servicer: handlers wired to the backends.

:class:`StreamingService` subclasses the generated servicer; each RPC
delegates to a handler class of :mod:`.handlers`. On top of that, every call
gets, from the interceptors of :meth:`StreamingService.interceptors`:

* a **call log** on the ``puregrpc_streaming`` logger
  (:class:`puregrpc.interceptors.CallLogInterceptor`): one line per call,
  when it ends, with the method, the peer, the status, the duration and the
  message counts in and out (the start line at DEBUG); errors at WARNING,
  but a client's CANCELLED and a NOT_FOUND at INFO;
* **storage faults** as clear statuses (:class:`.faults.StorageFaultInterceptor`):
  a full disk RESOURCE_EXHAUSTED, a database locked by another process or a
  read-only directory UNAVAILABLE, each naming its cause;
* its **caller** (:class:`.authentication.CallerInterceptor`): from a client
  certificate or a bearer token, or anonymous in open development mode;
  handlers read it with :func:`.authentication.caller_of`;
* a **default deadline** when the client sent none (``grpc-timeout``), and a
  count of the calls in progress (:class:`.call_policy.CallPolicy`, defaults
  in :data:`DEFAULT_DEADLINES`).

Server-streaming methods return the handler's async generator (Chat and
SyncData, which need a nursery, send with ``context.send`` instead: the
interceptors see those responses all the same).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from puregrpc import StatusCode
from puregrpc.interceptors import CallLogInterceptor
from puregrpc.server import RequestIterator, ServerInterceptor, ServicerContext

from .authentication import CallerInterceptor
from .backends.base import Backends
from .call_policy import DEFAULT_DEADLINES, CallPolicy
from .faults import StorageFaultInterceptor
from .handlers._common import ServiceSettings
from .handlers.chat import ChatHandlers
from .handlers.dataset import DatasetHandlers
from .handlers.events import EventHandlers
from .handlers.files import FileHandlers
from .handlers.metrics import MetricsHandlers
from .handlers.processing import ProcessingHandlers
from .handlers.records import RecordHandlers
from .protos import streaming_pb2 as pb
from .protos.streaming_puregrpc import StreamingServiceServicer

__all__ = ["DEFAULT_DEADLINES", "ServiceSettings", "StreamingService"]

logger = logging.getLogger("puregrpc_streaming")


class StreamingService(StreamingServiceServicer):
    """All ten RPCs of ``streaming.v1.StreamingService``."""

    def __init__(
        self,
        backends: Backends,
        settings: ServiceSettings | None = None,
        *,
        deadlines: Mapping[str, float | None] | None = None,
        authentication: CallerInterceptor | None = None,
    ) -> None:
        """Serve ``backends``; ``deadlines`` overrides entries of :data:`DEFAULT_DEADLINES`.

        ``authentication`` settles each call's caller (default: open
        development mode, every caller anonymous).
        """
        self.backends = backends
        #: Who is calling (an interceptor).
        self.authentication = authentication if authentication is not None else CallerInterceptor()
        self.settings = settings if settings is not None else ServiceSettings()
        #: Default deadlines and call counts (a server interceptor).
        self.call_policy = CallPolicy(deadlines)
        self.deadlines = self.call_policy.deadlines
        self.files = FileHandlers(backends.files, backends.events, self.settings)
        self.events = EventHandlers(backends.events, backends.rooms, self.settings)
        self.dataset = DatasetHandlers(backends.dataset, self.settings)
        self.metrics = MetricsHandlers(backends.metrics, backends.events)
        self.processing = ProcessingHandlers(backends.events)
        self.chat = ChatHandlers(
            backends.events,
            backends.rooms,
            rate=self.settings.chat_rate,
            burst=self.settings.chat_burst,
        )
        self.records = RecordHandlers(backends.kv, backends.events)

    # ------------------------------------------------------------------ unary

    async def GetData(
        self, request: pb.GetDataRequest, context: ServicerContext
    ) -> pb.GetDataResponse:
        """One record of the key-value store that SyncData writes."""
        return await self.records.get(request, context)

    # --------------------------------------------------------- server streams

    def DownloadFile(
        self, request: pb.DownloadRequest, context: ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        """A stored file in chunks, from ``start_offset``."""
        return self.files.download(request, context)

    def WatchEvents(
        self, request: pb.WatchRequest, context: ServicerContext
    ) -> AsyncIterator[pb.Event]:
        """Events of the bus, filtered, with heartbeats and resume."""
        return self.events.watch(request, context)

    def ListLargeDataset(
        self, request: pb.ListRequest, context: ServicerContext
    ) -> AsyncIterator[pb.DataItem]:
        """The dataset in id order, resumable by cursor."""
        return self.dataset.list(request, context)

    # --------------------------------------------------------- client streams

    async def UploadFile(
        self, requests: RequestIterator[pb.FileChunk], context: ServicerContext
    ) -> pb.UploadResponse:
        """Store a file sent in chunks."""
        return await self.files.upload(requests, context)

    async def CollectMetrics(
        self, requests: RequestIterator[pb.Metric], context: ServicerContext
    ) -> pb.MetricsSummary:
        """Aggregate and store metrics."""
        return await self.metrics.collect_metrics(requests, context)

    async def BatchProcess(
        self, requests: RequestIterator[pb.ProcessRequest], context: ServicerContext
    ) -> pb.ProcessResponse:
        """Process work items as they arrive."""
        return await self.processing.batch_process(requests, context)

    # ------------------------------------------------------------------- bidi

    async def Chat(
        self, requests: RequestIterator[pb.ChatMessage], context: ServicerContext
    ) -> AsyncIterator[pb.ChatMessage]:
        """Rooms of users; responses are sent with ``context.send`` by the handler."""
        await self.chat.chat(requests, context)
        if TYPE_CHECKING:
            # Makes this an async generator, the shape the generated base
            # declares; the handler needs a nursery, which must not span a
            # yield, so it sends its responses itself.
            yield pb.ChatMessage()

    async def SyncData(
        self, requests: RequestIterator[pb.SyncRequest], context: ServicerContext
    ) -> AsyncIterator[pb.SyncResponse]:
        """Versioned key-value sync; responses are sent by the handler (see Chat)."""
        await self.records.sync(requests, context)
        if TYPE_CHECKING:
            yield pb.SyncResponse()

    def InteractiveQuery(
        self, requests: RequestIterator[pb.QueryRequest], context: ServicerContext
    ) -> AsyncIterator[pb.QueryResponse]:
        """Read-only SQL, one query per request."""
        return self.dataset.query(requests, context)

    # ------------------------------------------------------- every call

    def interceptors(self) -> list[ServerInterceptor]:
        """The server's interceptors for this service: the call log, the caller, the call policy.

        The call log is outermost, so it logs the status the others decided
        (UNAUTHENTICATED, a default deadline run out).
        """
        return [
            # One line per call, when it ends; a client's cancel and a
            # NOT_FOUND are answers, not faults: INFO, not WARNING.
            CallLogInterceptor(
                logger,
                levels={StatusCode.CANCELLED: logging.INFO, StatusCode.NOT_FOUND: logging.INFO},
            ),
            StorageFaultInterceptor(),
            self.authentication,
            self.call_policy,
        ]

    @property
    def active_calls(self) -> dict[str, int]:
        """Calls in progress, by method name (for tests and shutdown logs)."""
        return self.call_policy.active_calls
