"""An Echo server that reports what it saw, and a channel to it over memory streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
import trio.testing

from puregrpc import Metadata, StatusCode
from puregrpc.client import Channel, ChannelOptions, ClientInterceptor
from puregrpc.server import RequestIterator, Server, ServicerContext
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoServicer


@dataclass
class Seen:
    """What the server saw of one call."""

    method: str
    metadata: Metadata
    time_remaining: float | None
    compressed: list[bool] = field(default_factory=list)


class ReportingEcho(EchoServicer):
    """Echo's four call types; records each call's metadata, deadline and compression.

    A request message ``"fail"`` makes the handler abort with INVALID_ARGUMENT;
    ``"twice"`` makes it set trailing metadata ``x-trailer: yes``.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def _record(self, context: ServicerContext) -> Seen:
        seen = Seen(context.method, context.invocation_metadata(), context.time_remaining())
        self.seen.append(seen)
        return seen

    async def Unary(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> echo_pb2.EchoReply:
        seen = self._record(context)
        seen.compressed.append(bool(context.request_compressed))
        if request.message == "fail":
            await context.abort(StatusCode.INVALID_ARGUMENT, "asked to fail")
        if request.message == "twice":
            context.set_trailing_metadata(Metadata([("x-trailer", "yes")]))
        return echo_pb2.EchoReply(message=request.message)

    async def ServerStream(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> AsyncIterator[echo_pb2.EchoReply]:
        self._record(context)
        for index in range(request.count):
            yield echo_pb2.EchoReply(message=request.message, index=index)

    async def ClientStream(
        self, requests: RequestIterator[echo_pb2.EchoRequest], context: ServicerContext
    ) -> echo_pb2.EchoReply:
        seen = self._record(context)
        messages = []
        async for request in requests:
            seen.compressed.append(bool(context.request_compressed))
            messages.append(request.message)
        return echo_pb2.EchoReply(message="+".join(messages))

    async def Bidi(
        self, requests: RequestIterator[echo_pb2.EchoRequest], context: ServicerContext
    ) -> AsyncIterator[echo_pb2.EchoReply]:
        self._record(context)
        index = 0
        async for request in requests:
            yield echo_pb2.EchoReply(message=request.message, index=index)
            index += 1


@asynccontextmanager
async def echo_channel(
    service: ReportingEcho,
    *,
    interceptors: Sequence[ClientInterceptor] = (),
    options: ChannelOptions | None = None,
) -> AsyncIterator[Channel]:
    """A channel (with ``interceptors`` and ``options``) to ``service``, over memory streams."""
    server = Server([service])
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            client_end, server_end = trio.testing.memory_stream_pair()
            nursery.start_soon(server.handle_stream, server_end)
            return client_end

        async with Channel(connect=connect, interceptors=interceptors, options=options) as channel:
            with trio.fail_after(10):
                yield channel
        await server.stop(grace=1)
