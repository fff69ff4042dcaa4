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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..runtime import Method, ServerCallStream
from ..wire import RpcError, StatusCode
from ._context import RequestIterator, ServicerContext, deserialize_request


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
    handler: MethodHandler, stream: ServerCallStream, context: ServicerContext
) -> None:
    """Run ``handler`` for one call: read requests, call it, send responses."""
    method = handler.method
    cardinality = method.cardinality
    if cardinality.client_streaming:
        request: Any = RequestIterator(stream, method, context)
    else:
        request = await _single_request(stream, method, context)
    if cardinality.server_streaming:
        result = handler.func(request, context)
        if inspect.isasyncgen(result):
            try:
                async for response in result:
                    await context.send(response)
            finally:
                await result.aclose()
        else:
            await result
    else:
        response = await handler.func(request, context)
        await context.send(response)


async def _single_request(
    stream: ServerCallStream, method: Method[Any, Any], context: ServicerContext
) -> Any:
    data = await stream.receive()
    if data is None:
        raise RpcError(
            StatusCode.INTERNAL,
            f"{method.path} takes exactly one request message; the client sent none",
        )
    context.messages_received += 1
    context.request_compressed = stream.last_compressed
    return deserialize_request(method.request_deserializer, data)
