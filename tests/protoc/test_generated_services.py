"""The checked-in generated modules, used as an application would, over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import puregrpc.client
import puregrpc.server
from puregrpc import RpcError, StatusCode
from puregrpc.interop.protos import empty_pb2, messages_pb2, test_puregrpc
from puregrpc.runtime import Cardinality
from puregrpc.server import RequestIterator, ServicerContext
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub


class MyEcho(EchoServicer):
    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        return EchoReply(message=request.message, payload=request.payload)

    async def ServerStream(
        self, request: EchoRequest, context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        for index in range(request.count):
            yield EchoReply(message=request.message, index=index)

    async def ClientStream(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> EchoReply:
        messages = [request.message async for request in requests]
        return EchoReply(message=",".join(messages), index=len(messages))

    async def Bidi(
        self, requests: RequestIterator[EchoRequest], context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        index = 0
        async for request in requests:
            yield EchoReply(message=request.message.upper(), index=index)
            index += 1


async def _requests(*messages: str) -> AsyncIterator[EchoRequest]:
    for message in messages:
        yield EchoRequest(message=message)


@pytest.fixture
async def echo() -> AsyncIterator[EchoStub]:
    async with (
        puregrpc.server.Server([MyEcho()]).listening("127.0.0.1", 0) as server,
        puregrpc.client.Channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield EchoStub(channel)


@pytest.fixture
async def bare_echo() -> AsyncIterator[EchoStub]:
    async with (
        puregrpc.server.Server([EchoServicer()]).listening("127.0.0.1", 0) as server,
        puregrpc.client.Channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield EchoStub(channel)


async def test_unary(echo: EchoStub) -> None:
    payload = bytes(range(256)) * 400  # > one 64 KiB window: flow control is exercised
    reply = await echo.Unary(EchoRequest(message="hi", payload=payload), timeout=5)
    assert reply == EchoReply(message="hi", payload=payload)


async def test_server_stream(echo: EchoStub) -> None:
    replies = [r async for r in echo.ServerStream(EchoRequest(message="s", count=3), timeout=5)]
    assert [(r.message, r.index) for r in replies] == [("s", 0), ("s", 1), ("s", 2)]


async def test_server_stream_of_nothing(echo: EchoStub) -> None:
    call = echo.ServerStream(EchoRequest(message="s", count=0), timeout=5)
    assert [r async for r in call] == []
    assert call.code is StatusCode.OK


async def test_client_stream_from_iterables(echo: EchoStub) -> None:
    sync_reply = await echo.ClientStream([EchoRequest(message=m) for m in "abc"], timeout=5)
    async_reply = await echo.ClientStream(_requests("x", "y"), timeout=5)
    assert (sync_reply.message, sync_reply.index) == ("a,b,c", 3)
    assert (async_reply.message, async_reply.index) == ("x,y", 2)


async def test_client_stream_with_send(echo: EchoStub) -> None:
    async with echo.ClientStream(timeout=5, metadata={"x-test": "1"}) as call:
        await call.send(EchoRequest(message="one"))
        await call.send(EchoRequest(message="two"))
        await call.done_writing()
        reply = await call
    assert (reply.message, reply.index) == ("one,two", 2)
    assert call.code is StatusCode.OK


async def test_bidi_interleaved(echo: EchoStub) -> None:
    async with echo.Bidi(timeout=5) as call:
        for index, word in enumerate(["ping", "pong", "pung"]):
            await call.send(EchoRequest(message=word))
            reply = await call.receive()
            assert reply is not None
            assert (reply.message, reply.index) == (word.upper(), index)
        await call.done_writing()
        assert await call.receive() is None
    assert call.code is StatusCode.OK


async def test_bidi_from_iterable(echo: EchoStub) -> None:
    replies = [r.message async for r in echo.Bidi(_requests("a", "b"), timeout=5)]
    assert replies == ["A", "B"]


async def test_default_methods_answer_unimplemented(bare_echo: EchoStub) -> None:
    request = EchoRequest(message="x", count=2)
    with pytest.raises(RpcError) as unary:
        await bare_echo.Unary(request, timeout=5)
    with pytest.raises(RpcError) as server_stream:
        [r async for r in bare_echo.ServerStream(request, timeout=5)]
    with pytest.raises(RpcError) as client_stream:
        await bare_echo.ClientStream([request], timeout=5)
    with pytest.raises(RpcError) as bidi:
        [r async for r in bare_echo.Bidi([request], timeout=5)]
    for raised in (unary, server_stream, client_stream, bidi):
        assert raised.value.code is StatusCode.UNIMPLEMENTED
        assert raised.value.details == "Method not implemented!"


def test_handler_table_binds_overrides() -> None:
    servicer = MyEcho()
    handlers = servicer.__puregrpc_handlers__()
    assert {path: h.method.cardinality for path, h in handlers.items()} == {
        "/puregrpc.testing.Echo/Unary": Cardinality.UNARY_UNARY,
        "/puregrpc.testing.Echo/ServerStream": Cardinality.UNARY_STREAM,
        "/puregrpc.testing.Echo/ClientStream": Cardinality.STREAM_UNARY,
        "/puregrpc.testing.Echo/Bidi": Cardinality.STREAM_STREAM,
    }
    for path, handler in handlers.items():
        assert handler.method.path == path
        assert handler.func == getattr(servicer, handler.method.name)
    assert isinstance(servicer, puregrpc.server.Service)


def test_docstrings_come_from_proto_comments() -> None:
    assert EchoStub.Unary.__doc__ == "One request, one reply."
    assert EchoServicer.Bidi.__doc__ == "One reply per request, as the requests arrive."
    assert EchoStub.__doc__ is not None
    assert "Echoes requests back" in EchoStub.__doc__


# test_puregrpc is used as a module: pytest would try to collect its Test* classes.
class Interop(test_puregrpc.TestServiceServicer):
    async def EmptyCall(
        self, request: empty_pb2.Empty, context: ServicerContext
    ) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    async def UnaryCall(
        self, request: messages_pb2.SimpleRequest, context: ServicerContext
    ) -> messages_pb2.SimpleResponse:
        body = b"\0" * request.response_size
        return messages_pb2.SimpleResponse(payload=messages_pb2.Payload(body=body))


async def test_interop_service_module() -> None:
    async with (
        puregrpc.server.Server([Interop()]).listening("127.0.0.1", 0) as server,
        puregrpc.client.Channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = test_puregrpc.TestServiceStub(channel)
        assert await stub.EmptyCall(empty_pb2.Empty(), timeout=5) == empty_pb2.Empty()
        reply = await stub.UnaryCall(messages_pb2.SimpleRequest(response_size=10), timeout=5)
        assert reply.payload.body == b"\0" * 10
        with pytest.raises(RpcError) as raised:
            await stub.UnimplementedCall(empty_pb2.Empty(), timeout=5)
        assert raised.value.code is StatusCode.UNIMPLEMENTED
