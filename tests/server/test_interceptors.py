"""Server interceptors: one shape for the four call types, composed in order.

Each test serves the Echo service (or raw-bytes handlers) through
interceptors that record or change what they see, and calls it with a
puregrpc client over in-memory streams.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.client import Channel
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
    ending_status,
)
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub
from puregrpc.wire import Status


class Echo(EchoServicer):
    """The four call types; ServerStream sends with context.send, Bidi yields."""

    def __init__(self) -> None:
        self.calls = 0

    async def Unary(
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> echo_pb2.EchoReply:
        self.calls += 1
        return echo_pb2.EchoReply(message=request.message)

    async def ServerStream(  # type: ignore[override]
        self, request: echo_pb2.EchoRequest, context: ServicerContext
    ) -> None:
        # A coroutine that sends with context.send(): intercepted like a yield.
        self.calls += 1
        for index in range(request.count):
            await context.send(echo_pb2.EchoReply(message=request.message, index=index))

    async def ClientStream(
        self, requests: RequestIterator[echo_pb2.EchoRequest], context: ServicerContext
    ) -> echo_pb2.EchoReply:
        self.calls += 1
        return echo_pb2.EchoReply(message="+".join([r.message async for r in requests]))

    async def Bidi(
        self, requests: RequestIterator[echo_pb2.EchoRequest], context: ServicerContext
    ) -> AsyncIterator[echo_pb2.EchoReply]:
        self.calls += 1
        async for request in requests:
            yield echo_pb2.EchoReply(message=request.message)


@asynccontextmanager
async def serving(
    services: list[Any], interceptors: list[ServerInterceptor]
) -> AsyncIterator[Channel]:
    """A channel to a server with ``interceptors``, over memory streams."""
    server = Server(services, interceptors=interceptors)
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            client_end, server_end = trio.testing.memory_stream_pair()
            nursery.start_soon(server.handle_stream, server_end)
            return client_end

        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                yield channel
        await server.stop(grace=1)


class Recording:
    """Records entering and leaving, and the status the call ends with."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.statuses: list[Status] = []

    async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
        self.log.append(f"{self.name}>{call.method.name}:{call.method.cardinality.value}")
        error: BaseException | None = None
        try:
            await proceed(call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.statuses.append(ending_status(call.context, error))
            self.log.append(f"{self.name}<")


class Shouting(ForwardingServerCall[Any, Any]):
    """Upper-cases each request's message and marks each reply."""

    async def receive(self) -> Any:
        request = await super().receive()
        if request is not None:
            request = echo_pb2.EchoRequest(message=request.message.upper(), count=request.count)
        return request

    async def send(self, response: Any, *, compress: bool = True) -> None:
        await super().send(
            echo_pb2.EchoReply(message=response.message + "!", index=response.index),
            compress=compress,
        )


class Shout:
    async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
        await proceed(Shouting(call))


async def test_interceptors_run_in_order_around_each_call_type() -> None:
    log: list[str] = []
    outer, inner = Recording("a", log), Recording("b", log)
    echo = Echo()
    async with serving([echo], [outer, inner]) as channel:
        stub = EchoStub(channel)
        await stub.Unary(echo_pb2.EchoRequest(message="u"))
        assert [r async for r in stub.ServerStream(echo_pb2.EchoRequest(count=2))]
        await stub.ClientStream([echo_pb2.EchoRequest(message="c")])
        assert [r async for r in stub.Bidi([echo_pb2.EchoRequest(message="b")])]
    assert log == [
        "a>Unary:unary_unary",
        "b>Unary:unary_unary",
        "b<",
        "a<",
        "a>ServerStream:unary_stream",
        "b>ServerStream:unary_stream",
        "b<",
        "a<",
        "a>ClientStream:stream_unary",
        "b>ClientStream:stream_unary",
        "b<",
        "a<",
        "a>Bidi:stream_stream",
        "b>Bidi:stream_stream",
        "b<",
        "a<",
    ]
    assert echo.calls == 4
    assert [s.code for s in outer.statuses] == [StatusCode.OK] * 4


async def test_a_wrapped_call_replaces_requests_and_responses_of_every_call_type() -> None:
    async with serving([Echo()], [Shout()]) as channel:
        stub = EchoStub(channel)
        reply = await stub.Unary(echo_pb2.EchoRequest(message="hi"))
        assert reply.message == "HI!"
        # ServerStream's handler sends with context.send(): intercepted too.
        streamed = [
            r.message async for r in stub.ServerStream(echo_pb2.EchoRequest(message="s", count=2))
        ]
        assert streamed == ["S!", "S!"]
        joined = await stub.ClientStream([echo_pb2.EchoRequest(message=m) for m in "ab"])
        assert joined.message == "A+B!"
        bidi = [r.message async for r in stub.Bidi([echo_pb2.EchoRequest(message=m) for m in "xy"])]
        assert bidi == ["X!", "Y!"]


async def test_an_interceptor_short_circuits_with_a_status() -> None:
    class Refuse:
        async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
            if call.metadata.get("x-key") != "open-sesame":
                raise RpcError(StatusCode.UNAUTHENTICATED, "no key")
            await proceed(call)

    echo = Echo()
    async with serving([echo], [Refuse()]) as channel:
        stub = EchoStub(channel)
        with pytest.raises(RpcError) as refused:
            await stub.Unary(echo_pb2.EchoRequest(message="x"))
        assert refused.value.code is StatusCode.UNAUTHENTICATED
        assert refused.value.details == "no key"
        assert echo.calls == 0
        reply = await stub.Unary(
            echo_pb2.EchoRequest(message="x"), metadata={"x-key": "open-sesame"}
        )
        assert reply.message == "x"
        assert echo.calls == 1


UNARY = raw_method("/raw.Test/Unary", Cardinality.UNARY_UNARY)


def raw_service(func: Callable[..., Any]) -> MethodHandler:
    return MethodHandler(method=UNARY, func=func)


async def test_the_outcome_seen_is_the_status_the_client_gets() -> None:
    async def handler(request: bytes, context: ServicerContext) -> bytes:
        if request == b"abort":
            await context.abort(StatusCode.FAILED_PRECONDITION, "not now")
        if request == b"raise":
            raise KeyError("secret")
        if request == b"sleep":
            await trio.sleep(5)
        if request == b"code":
            context.set_code(StatusCode.ALREADY_EXISTS)
            context.set_details("exists")
        return request

    recorder = Recording("r", [])
    async with serving([raw_service(handler)], [recorder]) as channel:
        seen: list[StatusCode] = []
        for request in (b"ok", b"abort", b"raise", b"sleep", b"code"):
            call = channel.unary_unary(UNARY, request, timeout=0.3 if request == b"sleep" else None)
            try:
                await call
                seen.append(StatusCode.OK)
            except RpcError as exc:
                seen.append(exc.code)
    expected = [
        StatusCode.OK,
        StatusCode.FAILED_PRECONDITION,
        StatusCode.UNKNOWN,
        StatusCode.DEADLINE_EXCEEDED,
        StatusCode.ALREADY_EXISTS,
    ]
    assert seen == expected
    recorded = [s.code for s in recorder.statuses]
    # The client's deadline and its RST_STREAM race the server's copy of the
    # deadline (grpc-timeout): the server ends that call DEADLINE_EXCEEDED,
    # or CANCELLED when the reset is read first (on a loaded machine).
    assert recorded[3] in (StatusCode.DEADLINE_EXCEEDED, StatusCode.CANCELLED)
    assert recorded[:3] + recorded[4:] == expected[:3] + expected[4:]
    assert recorder.statuses[1].details == "not now"
    # The exception's text stays on the server.
    assert recorder.statuses[2].details == "unexpected KeyError in the method handler"
    assert recorder.statuses[4].details == "exists"


async def test_an_interceptor_adds_trailing_metadata_after_the_handler() -> None:
    class Stamp:
        async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
            await proceed(call)
            call.context.trailing_metadata.add("x-served-by", "interceptor")

    async with serving([Echo()], [Stamp()]) as channel:
        call = EchoStub(channel).Unary(echo_pb2.EchoRequest(message="m"))
        assert (await call).message == "m"
        assert call.trailing_metadata["x-served-by"] == "interceptor"


async def test_an_interceptor_that_fails_ends_the_call_unknown_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
            raise ZeroDivisionError("bug")

    echo = Echo()
    with caplog.at_level(logging.ERROR, logger="puregrpc.server"):
        async with serving([echo], [Broken()]) as channel:
            with pytest.raises(RpcError) as failed:
                await EchoStub(channel).Unary(echo_pb2.EchoRequest())
    assert failed.value.code is StatusCode.UNKNOWN
    assert "bug" not in failed.value.details
    assert echo.calls == 0
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)


async def test_per_call_state_reaches_the_handler() -> None:
    async def handler(request: bytes, context: ServicerContext) -> bytes:
        return str(context.state.get("request-id")).encode()

    class Tag:
        def __init__(self) -> None:
            self.next_id = 0

        async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
            self.next_id += 1
            call.context.state["request-id"] = self.next_id
            await proceed(call)

    async with serving([raw_service(handler)], [Tag()]) as channel:
        assert await channel.unary_unary(UNARY, b"") == b"1"
        assert await channel.unary_unary(UNARY, b"") == b"2"


async def test_without_interceptors_nothing_changes() -> None:
    async with serving([Echo()], []) as channel:
        reply = await EchoStub(channel).Unary(
            echo_pb2.EchoRequest(message="plain"), metadata=Metadata()
        )
        assert reply.message == "plain"
