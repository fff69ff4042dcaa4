"""The ``streaming.v1.StreamingService`` servicer: handlers wired to the backends.

:class:`StreamingService` subclasses the generated servicer; each RPC
delegates to a handler class of :mod:`.handlers`. On top of that, every call
gets, from :meth:`StreamingService.__puregrpc_handlers__`:

* a **default deadline** when the client sent none (``grpc-timeout``): short
  for the unary GetData, long for transfers, longest for the open-ended
  streams (watch, chat, sync, query) -- see :data:`DEFAULT_DEADLINES`. A call
  that runs out gets DEADLINE_EXCEEDED;
* a **call log** on the ``puregrpc_streaming`` logger: a start line (method,
  peer), and an end line with the status, the duration and the message
  counts in and out (errors at WARNING).

Server-streaming methods return the handler's async generator; the wrapper
iterates it and sends each response itself, so the deadline's cancel scope
never spans a ``yield`` (Chat and SyncData, which need a nursery, send with
``context.send`` directly).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import trio

from puregrpc import RpcError, StatusCode
from puregrpc.server import MethodHandler, RequestIterator, ServicerContext

from .backends.base import Backends
from .handlers._common import ServiceSettings
from .handlers.chat import ChatHandlers
from .handlers.dataset import DatasetHandlers
from .handlers.events import EventHandlers
from .handlers.files import FileHandlers
from .handlers.processing import ProcessingHandlers
from .handlers.records import RecordHandlers
from .protos import streaming_pb2 as pb
from .protos.streaming_puregrpc import StreamingServiceServicer

__all__ = ["DEFAULT_DEADLINES", "ServiceSettings", "StreamingService"]

logger = logging.getLogger("puregrpc_streaming")

_HOUR = 3600.0
#: Seconds a call may run when the client set no deadline, per method.
DEFAULT_DEADLINES: Mapping[str, float] = {
    "GetData": 10.0,
    "DownloadFile": 6 * _HOUR,
    "UploadFile": 6 * _HOUR,
    "ListLargeDataset": 1 * _HOUR,
    "CollectMetrics": 1 * _HOUR,
    "BatchProcess": 1 * _HOUR,
    "WatchEvents": 24 * _HOUR,
    "Chat": 24 * _HOUR,
    "SyncData": 24 * _HOUR,
    "InteractiveQuery": 24 * _HOUR,
}


class StreamingService(StreamingServiceServicer):
    """All ten RPCs of ``streaming.v1.StreamingService``."""

    def __init__(
        self,
        backends: Backends,
        settings: ServiceSettings | None = None,
        *,
        deadlines: Mapping[str, float] | None = None,
    ) -> None:
        """Serve ``backends``; ``deadlines`` overrides entries of :data:`DEFAULT_DEADLINES`."""
        self.backends = backends
        self.settings = settings if settings is not None else ServiceSettings()
        self.deadlines = {**DEFAULT_DEADLINES, **(deadlines or {})}
        unknown = set(self.deadlines) - set(DEFAULT_DEADLINES)
        if unknown:
            raise ValueError(f"deadlines for unknown methods: {sorted(unknown)}")
        self.files = FileHandlers(backends.files, backends.events, self.settings)
        self.events = EventHandlers(backends.events, self.settings)
        self.dataset = DatasetHandlers(backends.dataset, self.settings)
        self.processing = ProcessingHandlers(backends.metrics, backends.events)
        self.chat = ChatHandlers(backends.events)
        self.records = RecordHandlers(backends.kv, backends.events)
        #: Calls in progress, by method name (for tests and shutdown logs).
        self.active_calls: dict[str, int] = dict.fromkeys(DEFAULT_DEADLINES, 0)

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
        return await self.processing.collect_metrics(requests, context)

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

    # ----------------------------------------------------- deadline, logging

    def __puregrpc_handlers__(self) -> Mapping[str, MethodHandler]:
        """The generated table, each handler wrapped with its deadline and call log."""
        return {
            path: MethodHandler(
                method=handler.method, func=self._observed(path.rsplit("/", 1)[1], handler.func)
            )
            for path, handler in super().__puregrpc_handlers__().items()
        }

    def _observed(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        async def run(request: Any, context: ServicerContext) -> Any:
            with self._call_scope(name, context):
                result = func(request, context)
                if not inspect.isasyncgen(result):
                    return await result
                try:
                    async for response in result:
                        await context.send(response)
                finally:
                    await result.aclose()
                return None

        run.__name__ = run.__qualname__ = name
        return run

    @contextmanager
    def _call_scope(self, name: str, context: ServicerContext) -> Iterator[None]:
        started = trio.current_time()
        peer = context.peer()
        default = self.deadlines[name] if context.deadline is None else None
        logger.info(
            "%s started by %s (deadline: %s)",
            name,
            peer,
            f"{context.time_remaining():.1f} s from client"
            if default is None
            else f"{default:g} s server default",
        )
        self.active_calls[name] += 1
        outcome = "OK"
        try:
            if default is None:
                yield
            else:
                with trio.move_on_after(default) as scope:
                    yield
                if scope.cancelled_caught:
                    raise RpcError(
                        StatusCode.DEADLINE_EXCEEDED,
                        f"{name} ran past the server's default deadline of {default:g} s "
                        "(set a deadline on the call to choose another)",
                    )
        except RpcError as exc:
            outcome = f"{exc.code.name}: {exc.details}"
            raise
        except trio.Cancelled:
            outcome = "CANCELLED (client cancelled, disconnected, or deadline passed)"
            raise
        except Exception as exc:
            outcome = f"error {type(exc).__name__}: {exc}"
            raise
        finally:
            self.active_calls[name] -= 1
            level = logging.INFO if outcome == "OK" else logging.WARNING
            logger.log(
                level,
                "%s from %s ended %s after %.3f s: %d message(s) in, %d out",
                name,
                peer,
                outcome,
                trio.current_time() - started,
                context.messages_received,
                context.messages_sent,
            )
