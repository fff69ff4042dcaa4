"""Which instance served a call through nginx: the ``x-upstream`` response header, recorded."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from puregrpc import Metadata, RpcError
from puregrpc.client import (
    ClientCallDetails,
    ClientContinuation,
    ClientStream,
    ForwardingClientStream,
)

from ._nginx import UPSTREAM_HEADER

__all__ = ["CallRecord", "UpstreamRecorder"]


@dataclass(slots=True)
class CallRecord:
    """One call made through the recorder's channel."""

    #: The method's name (``DownloadFile``).
    method: str
    #: The first request message the call sent (``None`` until it sent one).
    request: object | None = None
    #: ``HOST:PORT`` of the instance nginx chose (``""`` until the response
    #: headers came, or when nginx answered itself). After a refused
    #: connection nginx names every instance it tried: ``"A, B"``.
    upstream: str = ""

    @property
    def served_by(self) -> str:
        """The instance that answered: the last one nginx tried."""
        return self.upstream.rsplit(",", 1)[-1].strip()


class UpstreamRecorder:
    """A client interceptor noting, for every call, the instance nginx sent it to.

    Give it to the channel (``open_channel(..., interceptors=[recorder])``);
    :attr:`calls` holds the last ``keep`` calls in the order they started.
    The upstream is read from the response headers once the caller has
    asked for them or received a first response.
    """

    def __init__(self, keep: int = 10_000) -> None:
        #: The last ``keep`` calls, oldest first.
        self.calls: deque[CallRecord] = deque(maxlen=keep)

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        """Run the call through a stream that records its first request and its upstream."""
        record = CallRecord(method=details.method.path.rsplit("/", 1)[-1])
        self.calls.append(record)
        return _RecordingStream(await proceed(details), record)

    def served(self, method: str) -> list[str]:
        """The serving instance of each call of ``method`` so far, in order."""
        return [call.served_by for call in self.calls if call.method == method]


class _RecordingStream(ForwardingClientStream[Any, Any]):
    __slots__ = ("_record",)

    def __init__(self, inner: ClientStream[Any, Any], record: CallRecord) -> None:
        super().__init__(inner)
        self._record = record

    async def send(self, request: Any, *, compress: bool = True) -> None:
        if self._record.request is None:
            self._record.request = request
        await self.inner.send(request, compress=compress)

    async def initial_metadata(self) -> Metadata:
        metadata = await self.inner.initial_metadata()
        self._note(metadata)
        return metadata

    async def receive(self) -> Any:
        response = await self.inner.receive()
        if not self._record.upstream:
            # A response came, so its headers did: this does not wait.
            try:
                self._note(await self.inner.initial_metadata())
            except RpcError:
                pass
        return response

    def _note(self, metadata: Metadata) -> None:
        value = metadata.get(UPSTREAM_HEADER)
        if isinstance(value, str):
            self._record.upstream = value
