"""Client interceptors: one shape for the four call types, composed in order."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from client_calls_support import ReportingEcho, echo_channel

from puregrpc import RpcError, StatusCode
from puregrpc.client import (
    ClientCallDetails,
    ClientContinuation,
    ClientStream,
    ForwardingClientStream,
)
from puregrpc.runtime import Cardinality
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoStub
from puregrpc.wire import Status


class TokenPerCall:
    """Adds a fresh ``authorization`` token to every call, and records what it saw."""

    def __init__(self) -> None:
        self.issued = 0
        self.seen: list[tuple[str, Cardinality, bool]] = []

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        self.issued += 1
        self.seen.append((details.path, details.cardinality, details.deadline is not None))
        return await proceed(details.with_metadata(("authorization", f"token-{self.issued}")))


class Refuse:
    """Short-circuits every call with UNAUTHENTICATED."""

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        raise RpcError(StatusCode.UNAUTHENTICATED, "no credentials for " + details.path)


class Shouting(ForwardingClientStream[Any, Any]):
    """Upper-cases request messages and marks responses with the interceptor's name."""

    def __init__(self, inner: ClientStream[Any, Any], name: str, log: list[str]) -> None:
        super().__init__(inner)
        self.name = name
        self.log = log

    async def send(self, request: Any, *, compress: bool = True) -> None:
        self.log.append(f"{self.name}:send:{request.message}")
        await super().send(EchoRequest(message=request.message.upper()), compress=compress)

    async def receive(self) -> Any:
        reply = await super().receive()
        if reply is None:
            self.log.append(f"{self.name}:end")
            return None
        self.log.append(f"{self.name}:receive:{reply.message}")
        return EchoReply(message=f"{reply.message}<{self.name}", index=reply.index)


class Wrapping:
    """Wraps each call's stream in :class:`Shouting`."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        self.log.append(f"{self.name}>")
        return Shouting(await proceed(details), self.name, self.log)


class StatusRecorder(ForwardingClientStream[Any, Any]):
    """Records how the call ended, as an interceptor timing or logging calls would."""

    def __init__(self, inner: ClientStream[Any, Any], ended: list[Status]) -> None:
        super().__init__(inner)
        self.ended = ended

    async def receive(self) -> Any:
        try:
            reply = await super().receive()
        except RpcError as exc:
            self.ended.append(exc.status)
            raise
        if reply is None and self.status is not None:
            self.ended.append(self.status)
        return reply


class Recording:
    """Wraps each call in :class:`StatusRecorder`."""

    def __init__(self) -> None:
        self.ended: list[Status] = []

    async def intercept(
        self, details: ClientCallDetails, proceed: ClientContinuation
    ) -> ClientStream[Any, Any]:
        return StatusRecorder(await proceed(details), self.ended)


async def test_an_interceptor_adds_metadata_to_each_of_the_four_call_types() -> None:
    service = ReportingEcho()
    tokens = TokenPerCall()
    async with echo_channel(service, interceptors=[tokens]) as channel:
        stub = EchoStub(channel)
        await stub.Unary(EchoRequest(message="a"), timeout=5)
        assert [r.index async for r in stub.ServerStream(EchoRequest(count=2))] == [0, 1]
        await stub.ClientStream([EchoRequest(message="b")])
        assert [r.message async for r in stub.Bidi([EchoRequest(message="c")])] == ["c"]
    assert [s.metadata.get_all("authorization") for s in service.seen] == [
        ["token-1"],
        ["token-2"],
        ["token-3"],
        ["token-4"],
    ]
    assert tokens.seen == [
        ("/puregrpc.testing.Echo/Unary", Cardinality.UNARY_UNARY, True),
        ("/puregrpc.testing.Echo/ServerStream", Cardinality.UNARY_STREAM, False),
        ("/puregrpc.testing.Echo/ClientStream", Cardinality.STREAM_UNARY, False),
        ("/puregrpc.testing.Echo/Bidi", Cardinality.STREAM_STREAM, False),
    ]


async def test_a_short_circuit_fails_the_call_and_sends_nothing() -> None:
    service = ReportingEcho()
    async with echo_channel(service, interceptors=[Refuse(), TokenPerCall()]) as channel:
        stub = EchoStub(channel)
        with pytest.raises(RpcError) as unary:
            await stub.Unary(EchoRequest())
        with pytest.raises(RpcError) as streaming:
            async for _ in stub.ServerStream(EchoRequest(count=1)):
                pass
        bidi = stub.Bidi()
        with pytest.raises(RpcError) as sending:
            await bidi.send(EchoRequest())
    for caught in (unary, streaming, sending):
        assert caught.value.code is StatusCode.UNAUTHENTICATED
        assert "no credentials for /puregrpc.testing.Echo/" in caught.value.details
    assert bidi.code is StatusCode.UNAUTHENTICATED
    assert service.seen == []


async def test_interceptors_compose_in_order_and_replace_messages() -> None:
    log: list[str] = []
    service = ReportingEcho()
    interceptors = [Wrapping("outer", log), Wrapping("inner", log)]
    async with echo_channel(service, interceptors=interceptors) as channel:
        stub = EchoStub(channel)
        call = stub.Bidi()
        await call.send(EchoRequest(message="hi"))
        reply = await call.receive()
        await call.done_writing()
        assert await call.receive() is None
        unary = await stub.Unary(EchoRequest(message="one"))
    assert reply is not None and reply.message == "HI<inner<outer"
    # The unary request goes through send too: one path for every call type.
    assert unary.message == "ONE<inner<outer"
    assert log[:7] == [
        "outer>",
        "inner>",
        "outer:send:hi",
        "inner:send:HI",  # the outer one changed it first
        "inner:receive:HI",
        "outer:receive:HI<inner",
        "inner:end",
    ]


async def test_an_interceptor_sees_every_call_end_ok_or_not() -> None:
    recording = Recording()
    async with echo_channel(ReportingEcho(), interceptors=[recording]) as channel:
        stub = EchoStub(channel)
        await stub.Unary(EchoRequest(message="fine"))
        with pytest.raises(RpcError) as caught:
            await stub.Unary(EchoRequest(message="fail"))
        assert [r.index async for r in stub.ServerStream(EchoRequest(count=3))] == [0, 1, 2]
    assert caught.value.code is StatusCode.INVALID_ARGUMENT
    assert [s.code for s in recording.ended] == [
        StatusCode.OK,
        StatusCode.INVALID_ARGUMENT,
        StatusCode.OK,
    ]
    assert recording.ended[1].details == "asked to fail"


async def test_the_deadline_bounds_a_slow_interceptor() -> None:
    class Slow:
        async def intercept(
            self, details: ClientCallDetails, proceed: ClientContinuation
        ) -> ClientStream[Any, Any]:
            await trio.sleep(30)  # e.g. a token server that does not answer
            return await proceed(details)

    service = ReportingEcho()
    async with echo_channel(service, interceptors=[Slow()]) as channel:
        with trio.fail_after(5), pytest.raises(RpcError) as caught:
            await EchoStub(channel).Unary(EchoRequest(), timeout=0.2)
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
    assert service.seen == []


async def test_two_tasks_starting_one_call_run_the_chain_once() -> None:
    tokens = TokenPerCall()
    service = ReportingEcho()
    async with echo_channel(service, interceptors=[tokens]) as channel:
        call = EchoStub(channel).Bidi()
        received: list[str] = []

        async def receive_all() -> None:
            received.extend([r.message async for r in call])

        async with trio.open_nursery() as tasks:
            tasks.start_soon(receive_all)
            await call.send(EchoRequest(message="x"))
            await call.done_writing()
    assert received == ["x"]
    assert tokens.issued == 1
    assert len(service.seen) == 1
