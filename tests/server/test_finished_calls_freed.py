"""A finished call is freed at once: no reference cycle outlives it.

A cycle per call would leave each call's context, stream and cancel scope to
the cyclic garbage collector, whose passes then run every few hundred calls
(and now and then a long one, a latency spike). Each test keeps a weak
reference to the handler's context and checks, with the collector off, that
the context is gone once the call has ended.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.interceptors import CallLogInterceptor, ExceptionMappingInterceptor
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import (
    ForwardingServerCall,
    MethodHandler,
    RequestIterator,
    Server,
    ServerCall,
    ServerContinuation,
    ServerInterceptor,
    ServicerContext,
)

UNARY = raw_method("/freed.Test/Unary", Cardinality.UNARY_UNARY)
STREAM = raw_method("/freed.Test/Stream", Cardinality.UNARY_STREAM)
BIDI = raw_method("/freed.Test/Bidi", Cardinality.STREAM_STREAM)
FAIL = raw_method("/freed.Test/Fail", Cardinality.UNARY_UNARY)

contexts: list[weakref.ref[ServicerContext]] = []


async def unary(request: bytes, context: ServicerContext) -> bytes:
    contexts.append(weakref.ref(context))
    return request


async def stream(request: bytes, context: ServicerContext) -> None:
    contexts.append(weakref.ref(context))
    for _ in range(3):
        await context.send(request)


async def bidi(requests: RequestIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    contexts.append(weakref.ref(context))
    async for request in requests:
        yield request


async def fail(request: bytes, context: ServicerContext) -> bytes:
    contexts.append(weakref.ref(context))
    raise ValueError("handler failed")


HANDLERS = [
    MethodHandler(method=UNARY, func=unary),
    MethodHandler(method=STREAM, func=stream),
    MethodHandler(method=BIDI, func=bidi),
    MethodHandler(method=FAIL, func=fail),
]


class Wrapping(ServerInterceptor):
    """Hands the handler a forwarding call: the chain the context links to."""

    async def intercept(
        self, call: ServerCall[object, object], proceed: ServerContinuation
    ) -> None:
        await proceed(ForwardingServerCall(call))


@pytest.fixture
def collector_off() -> Iterator[None]:
    # Logging is off too: a captured record of the failing handler's
    # exception would keep its frames (and context) alive, by design.
    contexts.clear()
    gc.collect()
    gc.disable()
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        gc.enable()


CHAINS = {
    "no interceptors": ([], StatusCode.UNKNOWN),
    "a chain": (
        [
            CallLogInterceptor(),
            Wrapping(),
            ExceptionMappingInterceptor({ValueError: StatusCode.INVALID_ARGUMENT}),
        ],
        StatusCode.INVALID_ARGUMENT,
    ),
}


@pytest.mark.parametrize("chain", CHAINS)
async def test_every_call_type_is_freed_without_the_collector(
    collector_off: None, chain: str
) -> None:
    interceptors, failed_code = CHAINS[chain]
    server = Server(HANDLERS, interceptors=interceptors)
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            client_end, server_end = trio.testing.memory_stream_pair()
            nursery.start_soon(server.handle_stream, server_end)
            return client_end

        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(UNARY, b"a") == b"a"
                assert [m async for m in channel.unary_stream(STREAM, b"b")] == [b"b"] * 3
                call = channel.stream_stream(BIDI)
                await call.send(b"c")
                assert await call.receive() == b"c"
                await call.done_writing()
                assert await call.receive() is None
                with pytest.raises(RpcError) as failed:
                    await channel.unary_unary(FAIL, b"d")
                assert failed.value.code is failed_code
                await trio.testing.wait_all_tasks_blocked()
            assert len(contexts) == 4
            alive = [ref() is not None for ref in contexts]
            assert alive == [False, False, False, False]
        nursery.cancel_scope.cancel()
