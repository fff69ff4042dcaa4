"""Client interceptors: code that wraps every call a channel makes, whatever its type.

An interceptor is an object with one coroutine method::

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream

``details`` says what the call is: its method (path, name, cardinality), its
request metadata, deadline, compression and wait-for-ready. ``await
proceed(details)`` runs the rest of the chain and returns the call's
:class:`ClientStream`, through which every request goes out and every
response, the initial and trailing metadata and the status come in. So an
interceptor can:

* **add or change metadata** (a token refreshed per call): proceed with
  ``details.with_metadata(("authorization", token))``, or any
  :func:`dataclasses.replace` of ``details`` (a shorter deadline, say);
* **short-circuit**: raise :class:`~puregrpc.RpcError` instead of
  proceeding; the call fails with that status and nothing is sent;
* **observe or replace messages and the outcome**: return a
  :class:`ForwardingClientStream` subclass around the stream ``proceed``
  returned, whose ``send`` / ``receive`` look at, change or drop messages and
  whose ``receive`` sees the call's :class:`~puregrpc.RpcError` when it ends
  badly;
* **time and log**: the stream's end is where ``receive`` returns ``None`` or
  raises.

The four call types take the same path: a unary call is a stream with one
request and one response. The chain runs when the call starts (its first
operation, or ``async with``), inside the call's deadline. Several
interceptors compose in order: the first one given to the
:class:`~puregrpc.client.Channel` is the outermost.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

import trio

from ..runtime import Cardinality, Method
from ..wire import Metadata, MetadataValue, Status

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


@dataclass(frozen=True, slots=True)
class ClientCallDetails:
    """What a call is, as interceptors see it.

    Derive a changed copy with :meth:`with_metadata` or :func:`dataclasses.replace`.
    """

    #: The method called: path, cardinality, (de)serializers.
    method: Method[Any, Any]
    #: Request metadata (this call's own copy: the channel's defaults, then the call's).
    metadata: Metadata
    #: When the call must be over, on trio's clock (``None``: no deadline).
    deadline: float | None
    #: Request compression ("gzip", "deflate"), or ``None``.
    compression: str | None
    #: Wait for a connection rather than fail fast.
    wait_for_ready: bool

    @property
    def path(self) -> str:
        """The method's path, ``/package.Service/Method``."""
        return self.method.path

    @property
    def cardinality(self) -> Cardinality:
        """Which of the four call types this is."""
        return self.method.cardinality

    def time_remaining(self) -> float | None:
        """Seconds until the deadline (0 once passed), or ``None`` without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - trio.current_time())

    def with_metadata(self, *pairs: tuple[str, MetadataValue]) -> ClientCallDetails:
        """A copy with ``pairs`` added to the request metadata."""
        metadata = self.metadata.copy()
        for key, value in pairs:
            metadata.add(key, value)
        return replace(self, metadata=metadata)


class ClientStream(ABC, Generic[RequestT, ResponseT]):
    """One call in flight, below the call object: typed messages out and in, then the outcome.

    The channel makes the innermost one; interceptors may return a
    :class:`ForwardingClientStream` around it instead. Every operation is
    bounded by the call's deadline and raises :class:`~puregrpc.RpcError`
    once the call has ended badly.
    """

    __slots__ = ()

    @property
    @abstractmethod
    def details(self) -> ClientCallDetails:
        """What the call is (as the innermost layer received it)."""

    @abstractmethod
    async def start(self) -> None:
        """Open the call now (request headers go out); later operations do it if needed."""

    @abstractmethod
    async def send(self, request: RequestT, *, compress: bool = True) -> None:
        """Send one request; waits while the server's flow-control window is closed."""

    @abstractmethod
    async def done_writing(self) -> None:
        """Half-close: no more requests will come."""

    @abstractmethod
    async def receive(self) -> ResponseT | None:
        """The next response, or ``None`` after the last one of a call that ended OK."""

    @abstractmethod
    async def initial_metadata(self) -> Metadata:
        """Wait for the server's response headers (empty if the call ended without any)."""

    @property
    @abstractmethod
    def trailing_metadata(self) -> Metadata:
        """The server's trailing metadata (empty until the call has ended)."""

    @property
    @abstractmethod
    def status(self) -> Status | None:
        """How the call ended, or ``None`` while it runs."""

    @abstractmethod
    def cancel(self) -> None:
        """Cancel the call (RST_STREAM CANCEL); later operations raise CANCELLED."""

    @property
    def last_response_compressed(self) -> bool:
        """Whether the last response received arrived compressed."""
        return False


class ForwardingClientStream(ClientStream[RequestT, ResponseT]):
    """A :class:`ClientStream` that hands everything to ``inner``: override what you intercept."""

    __slots__ = ("inner",)

    def __init__(self, inner: ClientStream[RequestT, ResponseT]) -> None:
        #: The stream of the next layer.
        self.inner = inner

    @property
    def details(self) -> ClientCallDetails:
        """The next layer's call details."""
        return self.inner.details

    async def start(self) -> None:
        """Start the next layer."""
        await self.inner.start()

    async def send(self, request: RequestT, *, compress: bool = True) -> None:
        """Send through the next layer."""
        await self.inner.send(request, compress=compress)

    async def done_writing(self) -> None:
        """Half-close the next layer."""
        await self.inner.done_writing()

    async def receive(self) -> ResponseT | None:
        """Receive from the next layer."""
        return await self.inner.receive()

    async def initial_metadata(self) -> Metadata:
        """The next layer's initial metadata."""
        return await self.inner.initial_metadata()

    @property
    def trailing_metadata(self) -> Metadata:
        """The next layer's trailing metadata."""
        return self.inner.trailing_metadata

    @property
    def status(self) -> Status | None:
        """The next layer's status."""
        return self.inner.status

    def cancel(self) -> None:
        """Cancel the next layer."""
        self.inner.cancel()

    @property
    def last_response_compressed(self) -> bool:
        """Whether the next layer's last response arrived compressed."""
        return self.inner.last_response_compressed


#: What ``proceed`` is: runs the rest of the chain for ``details``, returns the call's stream.
ClientContinuation = Callable[[ClientCallDetails], Awaitable[ClientStream[Any, Any]]]


class ClientInterceptor(Protocol):
    """Wraps every call of a channel: see the module documentation."""

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        """Run the call (``await proceed(details)``), or not, and return its stream."""
        ...


def chain(
    interceptors: Sequence[ClientInterceptor], last: ClientContinuation
) -> ClientContinuation:
    """One continuation running ``interceptors`` in order (first outermost), then ``last``."""
    proceed = last
    for interceptor in reversed(interceptors):
        proceed = _Link(interceptor, proceed)
    return proceed


class _Link:
    """One interceptor bound to the rest of the chain."""

    __slots__ = ("_interceptor", "_next")

    def __init__(self, interceptor: ClientInterceptor, next_: ClientContinuation) -> None:
        self._interceptor = interceptor
        self._next = next_

    def __call__(self, details: ClientCallDetails) -> Awaitable[ClientStream[Any, Any]]:
        return self._interceptor.intercept(details, self._next)


def deadline_of(timeout: float | None) -> float | None:
    """The trio-clock deadline of a call made now with ``timeout`` seconds."""
    if timeout is None or timeout == math.inf:
        return None
    return trio.current_time() + timeout
