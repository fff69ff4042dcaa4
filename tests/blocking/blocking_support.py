"""Echo servers for the blocking client: a puregrpc one on a trio thread, a grpcio one."""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import contextmanager
from functools import partial

import grpc
import trio

from puregrpc import StatusCode
from puregrpc.server import RequestIterator, Server, ServicerContext
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoServicer


class Echo(EchoServicer):
    """Echo; ``message="fail"`` aborts INVALID_ARGUMENT; records metadata and cancellations.

    The server-streaming handler sends ``count`` replies, or endlessly (slowly)
    when ``count`` is negative, so that a test can cancel it.
    """

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.cancelled = threading.Event()

    def _record(self, context: ServicerContext) -> None:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})

    async def Unary(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> echo_pb2.EchoReply:
        self._record(context)
        if request.message == "fail":
            await context.abort(StatusCode.INVALID_ARGUMENT, "asked to fail")
        return echo_pb2.EchoReply(message=request.message)

    async def ServerStream(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> AsyncIterator[echo_pb2.EchoReply]:
        self._record(context)
        try:
            index = 0
            while request.count < 0 or index < request.count:
                yield echo_pb2.EchoReply(message=request.message, index=index)
                index += 1
                if request.count < 0:
                    await trio.sleep(0.01)
        except trio.Cancelled:
            self.cancelled.set()
            raise

    async def ClientStream(
        self, requests: RequestIterator[echo_pb2.EchoRequest], context: ServicerContext
    ) -> echo_pb2.EchoReply:
        self._record(context)
        return echo_pb2.EchoReply(message="+".join([r.message async for r in requests]))

    async def Bidi(
        self, requests: RequestIterator[echo_pb2.EchoRequest], context: ServicerContext
    ) -> AsyncIterator[echo_pb2.EchoReply]:
        self._record(context)
        try:
            index = 0
            async for request in requests:
                yield echo_pb2.EchoReply(message=request.message, index=index)
                index += 1
        except trio.Cancelled:
            self.cancelled.set()
            raise


@contextmanager
def puregrpc_echo(service: Echo) -> Iterator[int]:
    """Serve ``service`` with puregrpc on a trio thread; yields the port."""
    server = Server([service])
    ready: queue.Queue[tuple[int, trio.lowlevel.TrioToken]] = queue.Queue()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            ready.put((port, trio.lowlevel.current_trio_token()))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    port, token = ready.get(timeout=10)
    try:
        yield port
    finally:
        trio.from_thread.run(partial(server.stop, grace=1), trio_token=token)
        thread.join(10)


def _grpcio_handler() -> grpc.GenericRpcHandler:
    def unary(request: echo_pb2.EchoRequest, context: grpc.ServicerContext) -> echo_pb2.EchoReply:
        if request.message == "fail":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "asked to fail")
        return echo_pb2.EchoReply(message=request.message)

    def server_stream(
        request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> Iterator[echo_pb2.EchoReply]:
        for index in range(request.count):
            yield echo_pb2.EchoReply(message=request.message, index=index)

    def client_stream(
        requests: Iterator[echo_pb2.EchoRequest], context: grpc.ServicerContext
    ) -> echo_pb2.EchoReply:
        return echo_pb2.EchoReply(message="+".join(r.message for r in requests))

    def bidi(
        requests: Iterator[echo_pb2.EchoRequest], context: grpc.ServicerContext
    ) -> Iterator[echo_pb2.EchoReply]:
        for index, request in enumerate(requests):
            yield echo_pb2.EchoReply(message=request.message, index=index)

    codecs = {
        "request_deserializer": echo_pb2.EchoRequest.FromString,
        "response_serializer": echo_pb2.EchoReply.SerializeToString,
    }
    return grpc.method_handlers_generic_handler(
        "puregrpc.testing.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **codecs),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **codecs),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **codecs),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **codecs),
        },
    )


@contextmanager
def grpcio_echo() -> Iterator[int]:
    """Serve Echo with grpcio's synchronous server; yields the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_grpcio_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(10)
