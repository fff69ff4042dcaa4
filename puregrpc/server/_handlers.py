"""Method handlers: the application's functions, and how each call type runs them.

Handler shapes, by call type::

    unary          async def M(request, context) -> response
    server stream  async def M(request, context): yield response ...
                   (or a coroutine that calls ``await context.send(r)``)
    client stream  async def M(requests, context) -> response
    bidi           async def M(requests, context): yield response ...
                   (or a coroutine that calls ``await context.send(r)``)

``requests`` is an async iterator; ``context`` a :class:`ServicerContext`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

from ..runtime import Method
from ..wire import RpcError, StatusCode
from ._context import RequestIterator, ServicerContext
from ._interceptor import ServerCall, ServerInterceptor, chain


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodHandler:
    """One served method: its descriptor and the function that answers it."""

    method: Method[Any, Any]
    func: Callable[..., Any]


@runtime_checkable
class Service(Protocol):
    """Anything that lists method handlers: generated servicer base classes do."""

    def __puregrpc_handlers__(self) -> Mapping[str, MethodHandler]:
        """Return the handlers of this service, by method path."""
        ...


ServiceLike = Service | MethodHandler | Mapping[str, MethodHandler]


def collect_handlers(services: Iterable[ServiceLike]) -> dict[str, MethodHandler]:
    """Merge services into one path -> handler table; duplicates are an error."""
    table: dict[str, MethodHandler] = {}
    for service in services:
        if isinstance(service, MethodHandler):
            items: Iterable[tuple[str, MethodHandler]] = [(service.method.path, service)]
        elif isinstance(service, Service):
            items = service.__puregrpc_handlers__().items()
        elif isinstance(service, Mapping):
            items = service.items()
        else:
            raise TypeError(f"not a service or method handler: {service!r}")
        for path, handler in items:
            if path in table:
                raise ValueError(f"method {path} is registered twice")
            table[path] = handler
    return table


async def run_handler(
    handler: MethodHandler,
    context: ServicerContext,
    interceptors: Sequence[ServerInterceptor] = (),
) -> None:
    """Run one call: through ``interceptors`` (first outermost), then ``handler``.

    Returns when the handler has returned and its responses are sent;
    raises what the handler (or an interceptor) raised.
    """
    call = context._wire_call()
    if interceptors:
        await chain(interceptors, partial(_invoke, handler))(call)
    else:
        await _invoke(handler, call)


async def _invoke(handler: MethodHandler, call: ServerCall[Any, Any]) -> None:
    """The end of the chain: call the handler with requests from ``call``, send through it."""
    context = call.context
    context._outbound = call  # context.send() goes through the innermost call too
    cardinality = handler.method.cardinality
    if cardinality.client_streaming:
        request: Any = RequestIterator(call)
    else:
        request = await _single_request(call)
    if cardinality.server_streaming:
        result = handler.func(request, context)
        if inspect.isasyncgen(result):
            try:
                async for response in result:
                    await call.send(response)
            finally:
                await result.aclose()
        else:
            await result
    else:
        response = await handler.func(request, context)
        await call.send(response)


async def _single_request(call: ServerCall[Any, Any]) -> Any:
    """The one request of a unary-request method, taken once the client half-closed.

    Any other number of requests is a request cardinality violation, which
    gRPC answers with UNIMPLEMENTED (doc/statuscodes.md). The handler does
    not run then: like grpc-java, the server waits for the half-close before
    calling it, so a second message is seen first (and never parsed).
    """
    path = call.method.path
    request = await call.receive()
    if request is None:
        raise RpcError(
            StatusCode.UNIMPLEMENTED,
            f"{path} takes exactly one request message; the client sent none",
        )
    if not await call.context._stream.wait_half_close():
        raise RpcError(
            StatusCode.UNIMPLEMENTED,
            f"{path} takes exactly one request message; the client sent more than one",
        )
    return request
