"""An Echo server with channelz, traffic of known shape, and the channels that made it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from puregrpc import RpcError, StatusCode
from puregrpc.channelz import enable_channelz
from puregrpc.client import Channel
from puregrpc.server import Server, ServicerContext
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub

#: What ``make_traffic`` sends: unary calls that succeed, one that fails
#: (NOT_FOUND), and one server-streaming call of ``STREAMED`` replies.
UNARY_OK = 5
STREAMED = 3


class Echo(EchoServicer):
    """Echoes; a unary request for "missing" fails NOT_FOUND."""

    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        if request.message == "missing":
            raise RpcError(StatusCode.NOT_FOUND, "no such thing")
        return EchoReply(message=request.message)

    async def ServerStream(
        self, request: EchoRequest, context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        for index in range(request.count):
            yield EchoReply(message=request.message, index=index)


def channelz_server(ssl_context: ssl.SSLContext | None = None) -> Server:
    """An Echo server with channelz enabled (the one documented line)."""
    server = Server([Echo()], ssl_context=ssl_context)
    enable_channelz(server)
    return server


async def make_traffic(channel: Channel) -> None:
    """UNARY_OK good unary calls, one NOT_FOUND, one stream of STREAMED replies."""
    stub = EchoStub(channel)
    for index in range(UNARY_OK):
        await stub.Unary(EchoRequest(message=f"m{index}"), timeout=5)
    try:
        await stub.Unary(EchoRequest(message="missing"), timeout=5)
    except RpcError as exc:
        assert exc.code is StatusCode.NOT_FOUND
    else:
        raise AssertionError("the missing call succeeded")
    replies = [
        r async for r in stub.ServerStream(EchoRequest(message="s", count=STREAMED), timeout=5)
    ]
    assert len(replies) == STREAMED


#: Calls make_traffic makes, and how many of them succeed.
CALLS = UNARY_OK + 2
SUCCEEDED = UNARY_OK + 1
#: Messages each way on the connection that carried make_traffic's calls.
REQUESTS = CALLS
REPLIES = UNARY_OK + STREAMED


@dataclass
class Served:
    """A channelz server on 127.0.0.1 and its target."""

    server: Server
    target: str
