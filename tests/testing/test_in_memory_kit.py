"""serve_in_memory: real calls of all four types between a server and channels, no sockets."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import trio
import trio.testing
from testing_kit_support import RecordingEcho, count_tasks

from puregrpc import RpcError, StatusCode
from puregrpc.client import CallOptions, ChannelOptions
from puregrpc.health import HealthService
from puregrpc.health.protos.health_pb2 import HealthCheckRequest, HealthCheckResponse
from puregrpc.health.protos.health_puregrpc import HealthStub
from puregrpc.interceptors import AuthInterceptor, bearer_tokens
from puregrpc.server import Server, ServerOptions
from puregrpc.testing import InMemoryServer, serve_in_memory, stub_factory
from puregrpc.testing.protos.echo_pb2 import EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub
from puregrpc.wire import ConnectionConfig

UNARY = "/puregrpc.testing.Echo/Unary"
SERVER_STREAM = "/puregrpc.testing.Echo/ServerStream"


def requests(*messages: str) -> list[EchoRequest]:
    return [EchoRequest(message=message) for message in messages]


async def test_all_four_call_types_round_trip() -> None:
    echo = RecordingEcho()
    with trio.fail_after(10):
        async with serve_in_memory(echo) as served:
            stub = served.stub(EchoStub)
            reply = await stub.Unary(EchoRequest(message="hi", payload=b"\x00\x01"), timeout=5)
            assert (reply.message, reply.payload) == ("hi", b"\x00\x01")
            streamed = [
                (r.message, r.index)
                async for r in stub.ServerStream(EchoRequest(message="s", count=3), timeout=5)
            ]
            assert streamed == [("s", 0), ("s", 1), ("s", 2)]
            joined = await stub.ClientStream(requests("a", "b", "c"), timeout=5)
            assert (joined.message, joined.index) == ("a+b+c", 3)
            echoed = [r.message async for r in stub.Bidi(requests("x", "y"), timeout=5)]
            assert echoed == ["x", "y"]
    assert [seen.method.rsplit("/", 1)[1] for seen in echo.seen] == [
        "Unary",
        "ServerStream",
        "ClientStream",
        "Bidi",
    ]


async def test_request_metadata_reaches_the_servicer_merged_with_channel_defaults() -> None:
    echo = RecordingEcho()
    defaults = ChannelOptions(call_defaults=CallOptions(metadata=[("x-tenant", "acme")]))
    with trio.fail_after(10):
        async with serve_in_memory(echo, channel_options=defaults) as served:
            await served.stub(EchoStub).Unary(
                EchoRequest(message="m"),
                timeout=5,
                metadata=[("x-request-id", "r-1"), ("x-token-bin", b"\x01\x02")],
            )
            async with served.channel(options=ChannelOptions()) as plain:
                await EchoStub(plain).Unary(EchoRequest(message="m"), timeout=5)
    first, second = (seen.metadata for seen in echo.seen)
    assert first.get("x-tenant") == "acme"
    assert first.get("x-request-id") == "r-1"
    assert first.get("x-token-bin") == b"\x01\x02"
    assert "x-tenant" not in second  # a channel's own options replace the defaults


@pytest.mark.parametrize("code", [StatusCode.NOT_FOUND, StatusCode.FAILED_PRECONDITION])
async def test_status_errors_arrive_with_details_and_both_metadata(code: StatusCode) -> None:
    with trio.fail_after(10):
        async with serve_in_memory(RecordingEcho()) as served:
            with pytest.raises(RpcError) as info:
                await served.stub(EchoStub).Unary(
                    EchoRequest(message=f"error:{code.name}"), timeout=5
                )
    error = info.value
    assert error.code is code
    assert error.details == "echo failed on purpose"
    assert error.initial_metadata.get("x-initial") == "sent"
    assert error.trailing_metadata.get("x-trailing") == "why"
    assert error.trailing_metadata.get("x-blob-bin") == b"\x00\xff"


async def test_a_crash_is_unknown_and_unserved_methods_are_unimplemented() -> None:
    with trio.fail_after(10):
        async with serve_in_memory(RecordingEcho()) as served:
            with pytest.raises(RpcError) as crashed:
                await served.stub(EchoStub).Unary(EchoRequest(message="crash"), timeout=5)
        # The generated base class answers UNIMPLEMENTED for what it does not override;
        # a server without the service at all does too.
        async with serve_in_memory(EchoServicer()) as served:
            with pytest.raises(RpcError) as not_overridden:
                await served.stub(EchoStub).Unary(EchoRequest(), timeout=5)
        async with serve_in_memory() as served:
            with pytest.raises(RpcError) as not_served:
                await served.stub(EchoStub).ClientStream(requests("x"), timeout=5)
    assert crashed.value.code is StatusCode.UNKNOWN
    assert "boom" not in crashed.value.details  # the handler's exception text stays on the server
    assert not_overridden.value.code is StatusCode.UNIMPLEMENTED
    assert not_served.value.code is StatusCode.UNIMPLEMENTED
    assert "/puregrpc.testing.Echo/ClientStream" in not_served.value.details


async def test_a_deadline_ends_the_call_on_both_sides() -> None:
    echo = RecordingEcho()
    with trio.fail_after(10):
        async with serve_in_memory(echo) as served:
            started = trio.current_time()
            with pytest.raises(RpcError) as info:
                await served.stub(EchoStub).Unary(EchoRequest(message="hang"), timeout=0.3)
            assert 0.25 <= trio.current_time() - started < 5
            # The server's handler is cancelled shortly after the client gives up.
            await echo.a_call_was_cancelled.wait()
    assert info.value.code is StatusCode.DEADLINE_EXCEEDED
    (seen,) = echo.seen
    assert seen.time_remaining is not None and 0 < seen.time_remaining <= 0.3
    assert echo.cancelled == [UNARY]


async def test_deadlines_run_on_trios_clock_so_an_autojump_clock_skips_the_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    echo = RecordingEcho()
    began = time.monotonic()
    with trio.fail_after(600):  # virtual seconds
        async with serve_in_memory(echo) as served:
            started = trio.current_time()
            with pytest.raises(RpcError) as info:
                await served.stub(EchoStub).Unary(EchoRequest(message="hang"), timeout=60)
            waited = trio.current_time() - started
    assert info.value.code is StatusCode.DEADLINE_EXCEEDED
    assert 60 <= waited < 61
    assert time.monotonic() - began < 10  # a minute of deadline, no minute of test


async def test_no_socket_is_created_and_no_port_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[Any, ...]] = []

    def refuse(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        made.append(args)
        raise AssertionError("the in-memory kit opened a socket")

    monkeypatch.setattr(socket.socket, "__init__", refuse)
    with trio.fail_after(10):
        async with serve_in_memory(RecordingEcho()) as served:
            stub = served.stub(EchoStub)
            assert (await stub.Unary(EchoRequest(message="u"), timeout=5)).message == "u"
            streamed = stub.ServerStream(EchoRequest(message="s", count=2), timeout=5)
            assert len([r async for r in streamed]) == 2
            assert (await stub.ClientStream(requests("a"), timeout=5)).message == "a"
            assert [r.message async for r in stub.Bidi(requests("b"), timeout=5)] == ["b"]
            assert served.server.ports == []
    assert made == []
    with pytest.raises(AssertionError, match="opened a socket"):
        socket.socket()  # the trap was armed


async def test_every_connect_makes_a_fresh_connection() -> None:
    echo = RecordingEcho()
    with trio.fail_after(10):
        async with serve_in_memory(echo) as served:
            assert served.connection_count == 0  # channels connect at their first call
            for stub in (served.stub(EchoStub), served.stub(EchoStub)):
                await stub.Unary(EchoRequest(message="shared"), timeout=5)
            assert served.connection_count == 1  # the handle's stubs share one channel
            for _ in range(2):
                async with served.channel() as channel:
                    own = stub_factory(channel)(EchoStub)
                    await own.Unary(EchoRequest(message="own"), timeout=5)
            assert served.connection_count == 3
    assert [seen.peer for seen in echo.seen] == ["memory:1", "memory:1", "memory:2", "memory:3"]


async def test_dropped_connections_fail_calls_unavailable_then_reconnect() -> None:
    echo = RecordingEcho()
    with trio.fail_after(10):
        async with serve_in_memory(echo) as served:
            stub = served.stub(EchoStub)
            replies = aiter(stub.ServerStream(EchoRequest(message="hang", count=2), timeout=5))
            assert (await anext(replies)).index == 0  # the call is in flight
            await served.drop_connections()
            with pytest.raises(RpcError) as info:
                await anext(replies)
            assert info.value.code is StatusCode.UNAVAILABLE
            reply = await stub.Unary(EchoRequest(message="again"), timeout=5)
            assert reply.message == "again"
            assert served.connection_count == 2
            await echo.a_call_was_cancelled.wait()  # the server noticed the drop
    assert echo.cancelled == [SERVER_STREAM]


async def test_leaving_the_block_stops_calls_in_flight_and_every_task() -> None:
    echo = RecordingEcho()
    with trio.fail_after(10):
        before = count_tasks()
        async with serve_in_memory(echo, grace=0.2) as served:
            replies = aiter(
                served.stub(EchoStub).ServerStream(EchoRequest(message="hang", count=2), timeout=30)
            )
            assert (await anext(replies)).index == 0
            assert count_tasks() > before
            # Leave with the call still open: the handle's channel closes it,
            # the server stops, and the handler is cancelled.
        assert count_tasks() == before
    assert echo.cancelled == [SERVER_STREAM]
    with pytest.raises(RpcError) as info:
        await anext(replies)
    assert info.value.code in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED)


async def test_an_error_raised_in_the_block_comes_out_unwrapped() -> None:
    with trio.fail_after(10):
        with pytest.raises(RpcError) as info:
            async with serve_in_memory(RecordingEcho()) as served:
                await served.stub(EchoStub).Unary(EchoRequest(message="error:ABORTED"), timeout=5)
        assert type(info.value) is RpcError and info.value.code is StatusCode.ABORTED
        with pytest.raises(KeyError):
            async with serve_in_memory(RecordingEcho()):
                raise KeyError("mine")


async def test_a_test_deadline_inside_the_block_still_cleans_up() -> None:
    echo = RecordingEcho()
    before = count_tasks()
    started = trio.current_time()
    with pytest.raises(trio.TooSlowError), trio.fail_after(0.3):
        async with serve_in_memory(echo) as served:
            await served.stub(EchoStub).Unary(EchoRequest(message="hang"))  # no call timeout
    assert trio.current_time() - started < 5  # cleanup is bounded even when cancelled
    assert echo.cancelled == [UNARY]
    assert count_tasks() == before


async def test_interceptors_and_options_build_the_server() -> None:
    auth = AuthInterceptor(bearer_tokens({"secret": "alice"}))
    tight = ServerOptions(connection=ConnectionConfig(max_receive_message_size=64))
    with trio.fail_after(10):
        async with serve_in_memory(RecordingEcho(), interceptors=[auth], options=tight) as served:
            stub = served.stub(EchoStub)
            with pytest.raises(RpcError) as refused:
                await stub.Unary(EchoRequest(message="m"), timeout=5)
            token = [("authorization", "Bearer secret")]
            reply = await stub.Unary(EchoRequest(message="m"), timeout=5, metadata=token)
            with pytest.raises(RpcError) as too_big:
                await stub.Unary(EchoRequest(payload=b"x" * 100), timeout=5, metadata=token)
    assert refused.value.code is StatusCode.UNAUTHENTICATED
    assert reply.message == "m"
    assert too_big.value.code is StatusCode.RESOURCE_EXHAUSTED


async def test_services_may_come_as_lists_next_to_others() -> None:
    with trio.fail_after(10):
        async with serve_in_memory([RecordingEcho()], HealthService()) as served:
            echoed = await served.stub(EchoStub).Unary(EchoRequest(message="e"), timeout=5)
            health = await served.stub(HealthStub).Check(HealthCheckRequest(), timeout=5)
    assert echoed.message == "e"
    assert health.status == HealthCheckResponse.SERVING


async def test_a_given_server_is_served_then_stopped() -> None:
    server = Server([RecordingEcho()])
    with trio.fail_after(10):
        async with serve_in_memory(server) as served:
            assert served.server is server
            assert (await served.stub(EchoStub).Unary(EchoRequest(message="1"), timeout=5)).message
        # Stopped at the end of the block: it serves nobody any more.
        async with serve_in_memory(server) as served:
            with pytest.raises(RpcError) as info:
                await served.stub(EchoStub).Unary(EchoRequest(message="2"), timeout=5)
    assert info.value.code is StatusCode.UNAVAILABLE


async def test_misuse_is_refused_with_a_reason() -> None:
    server = Server()
    with pytest.raises(TypeError, match="either one Server or services"):
        serve_in_memory(server, RecordingEcho())
    with pytest.raises(TypeError, match="give them to the Server"):
        serve_in_memory(server, options=ServerOptions())
    with pytest.raises(TypeError, match="not a service"):
        serve_in_memory(object())  # type: ignore[arg-type]
    handle: InMemoryServer = serve_in_memory(RecordingEcho())
    with pytest.raises(RuntimeError, match="inside"):
        handle.stub(EchoStub)
    with trio.fail_after(10):
        async with handle:
            with pytest.raises(RuntimeError, match="only once"):
                await handle.__aenter__()
        with pytest.raises(OSError, match="not running"):
            await handle.connect()
    with pytest.raises(RuntimeError, match="inside"):
        handle.stub(EchoStub)
