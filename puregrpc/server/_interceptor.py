"""Server interceptors: code that wraps every call, whatever its type.

An interceptor is an object with one coroutine method::

    async def intercept(self, call: ServerCall, proceed: ServerContinuation) -> None

``call`` is the call as the next layer will see it: its :attr:`~ServerCall.method`
(path, name, cardinality), its :attr:`~ServerCall.context` (metadata, deadline,
peer, trailing metadata, status), and :meth:`~ServerCall.receive` /
:meth:`~ServerCall.send` for the request and response messages, already
deserialized. ``await proceed(call)`` runs the rest of the chain and, at its
end, the handler; it returns when the handler has returned, and raises what
the handler raised. So an interceptor can:

* **short-circuit**: raise :class:`~puregrpc.RpcError` instead of proceeding
  (an authentication check answering UNAUTHENTICATED);
* **observe or replace messages**: proceed with a :class:`ForwardingServerCall`
  subclass whose ``receive`` / ``send`` look at, change or drop messages;
* **observe the outcome**: code after ``await proceed(call)`` runs when the
  handler returned (its status is ``context.code``, OK if unset); an
  ``except`` around it sees what the handler raised, and may raise something
  else (an exception mapped to a status);
* **time and log**: the whole call happens inside ``proceed``.

All four call types take the same path: the handler reads its requests
through the innermost call's ``receive`` and every response goes out through
its ``send``, whether the handler returns it, yields it, or passes it to
``context.send()``. Several interceptors compose in order: the first one
given to the :class:`~puregrpc.server.Server` is the outermost. They run in
the call's task, inside its deadline's cancel scope.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..runtime import Method
from ..wire import Metadata

if TYPE_CHECKING:
    from ._context import ServicerContext

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class ServerCall(ABC, Generic[RequestT, ResponseT]):
    """One call, as an interceptor or the handler runner sees it.

    The server makes the first one; interceptors may hand the next layer a
    :class:`ForwardingServerCall` around it instead.
    """

    __slots__ = ()

    @property
    @abstractmethod
    def method(self) -> Method[RequestT, ResponseT]:
        """The method called: ``path``, ``name``, ``service``, ``cardinality``."""
        ...

    @property
    @abstractmethod
    def context(self) -> ServicerContext:
        """The handler's context: metadata, deadline, peer, status and trailers."""
        ...

    @property
    def metadata(self) -> Metadata:
        """The metadata the client sent with the call."""
        return self.context.metadata

    @property
    def deadline(self) -> float | None:
        """The call's deadline on trio's clock, or ``None`` when it has none."""
        return self.context.deadline

    @abstractmethod
    async def receive(self) -> RequestT | None:
        """The next request message, or ``None`` once the client has finished sending."""

    @abstractmethod
    async def send(self, response: ResponseT, *, compress: bool = True) -> None:
        """Send one response message (waits while the client's window is closed)."""


class ForwardingServerCall(ServerCall[RequestT, ResponseT]):
    """A call that passes everything to another: subclass it and override what you watch.

    ::

        class Redacting(ForwardingServerCall[Req, Resp]):
            async def send(self, response, *, compress=True):
                await super().send(redact(response), compress=compress)
    """

    __slots__ = ("inner",)

    def __init__(self, inner: ServerCall[RequestT, ResponseT]) -> None:
        #: The call this one forwards to.
        self.inner = inner

    @property
    def method(self) -> Method[RequestT, ResponseT]:
        """The method called (the inner call's)."""
        return self.inner.method

    @property
    def context(self) -> ServicerContext:
        """The handler's context (the inner call's)."""
        return self.inner.context

    async def receive(self) -> RequestT | None:
        """The inner call's next request."""
        return await self.inner.receive()

    async def send(self, response: ResponseT, *, compress: bool = True) -> None:
        """Send through the inner call."""
        await self.inner.send(response, compress=compress)


#: Runs the rest of the chain, and the handler, for a call.
ServerContinuation = Callable[[ServerCall[Any, Any]], Awaitable[None]]


class ServerInterceptor(Protocol):
    """Wraps every call the server runs (see the module docstring)."""

    async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
        """Run the call: ``await proceed(call)`` (or a wrapped call), or raise to refuse it."""
        ...


def chain(
    interceptors: Sequence[ServerInterceptor], terminal: ServerContinuation
) -> ServerContinuation:
    """A continuation running ``interceptors`` in order (first outermost), then ``terminal``."""
    proceed = terminal
    for interceptor in reversed(interceptors):
        proceed = _bind(interceptor, proceed)
    return proceed


def _bind(interceptor: ServerInterceptor, proceed: ServerContinuation) -> ServerContinuation:
    async def run(call: ServerCall[Any, Any]) -> None:
        await interceptor.intercept(call, proceed)

    return run
