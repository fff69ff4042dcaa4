"""A server and a channel joined by trio's in-memory streams: no sockets at all.

``Server.handle_stream`` serves any trio stream and ``Channel(connect=...)``
dials through any stream factory, so the whole stack - wire, runtime, server
and client - runs over ``trio.testing.memory_stream_pair()``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing
import trustme

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, RequestIterator, Server, ServerOptions, ServicerContext
from puregrpc.wire import ListTracer

UNARY = raw_method("/mem.Test/Unary", Cardinality.UNARY_UNARY)
COUNT = raw_method("/mem.Test/Count", Cardinality.UNARY_STREAM)
JOIN = raw_method("/mem.Test/Join", Cardinality.STREAM_UNARY)
ECHO = raw_method("/mem.Test/Echo", Cardinality.STREAM_STREAM)
FAIL = raw_method("/mem.Test/Fail", Cardinality.UNARY_UNARY)
PEER = raw_method("/mem.Test/Peer", Cardinality.UNARY_UNARY)


async def unary(request: bytes, context: ServicerContext) -> bytes:
    await context.send_initial_metadata(Metadata([("seen", request.decode())]))
    context.set_trailing_metadata(Metadata([("done", "yes")]))
    return request.upper()


async def count(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
    for index in range(int(request)):
        yield b"%d" % index


async def join(requests: RequestIterator[bytes], context: ServicerContext) -> bytes:
    return b"+".join([request async for request in requests])


async def echo(requests: RequestIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request * 2


async def fail(request: bytes, context: ServicerContext) -> bytes:
    await context.abort(StatusCode.FAILED_PRECONDITION, "not over memory", b"\x08\x09")


async def peer(request: bytes, context: ServicerContext) -> bytes:
    return context.peer().encode()


HANDLERS = [
    MethodHandler(method=UNARY, func=unary),
    MethodHandler(method=COUNT, func=count),
    MethodHandler(method=JOIN, func=join),
    MethodHandler(method=ECHO, func=echo),
    MethodHandler(method=FAIL, func=fail),
    MethodHandler(method=PEER, func=peer),
]


def memory_connector(
    server: Server, nursery: trio.Nursery, *, peer: str | None = None
) -> tuple[Callable[[], Awaitable[trio.abc.Stream]], list[trio.abc.Stream]]:
    """A ``connect=`` factory: each call makes a memory pair and serves one end."""
    opened: list[trio.abc.Stream] = []

    async def connect() -> trio.abc.Stream:
        client_end, server_end = trio.testing.memory_stream_pair()
        opened.append(client_end)
        if peer is None:
            nursery.start_soon(server.handle_stream, server_end)
        else:
            nursery.start_soon(lambda: server.handle_stream(server_end, peer=peer))
        return client_end

    return connect, opened


async def test_all_four_call_types_over_memory_streams() -> None:
    server = Server(HANDLERS)
    async with trio.open_nursery() as nursery:
        connect, opened = memory_connector(server, nursery)
        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                call = channel.unary_unary(UNARY, b"hello")
                assert await call == b"HELLO"
                assert (await call.initial_metadata())["seen"] == "hello"
                assert call.trailing_metadata["done"] == "yes"
                assert [m async for m in channel.unary_stream(COUNT, b"4")] == [
                    b"0",
                    b"1",
                    b"2",
                    b"3",
                ]
                assert await channel.stream_unary(JOIN, [b"a", b"b", b"c"]) == b"a+b+c"
                async with channel.stream_stream(ECHO) as bidi:
                    for word in (b"x", b"yz"):
                        await bidi.send(word)
                        assert await bidi.receive() == word * 2
                    await bidi.done_writing()
                    assert await bidi.receive() is None
                assert bidi.code is StatusCode.OK
        # One connection served every call.
        assert len(opened) == 1
        await server.stop(grace=1)


async def test_errors_and_peer_names_over_memory_streams() -> None:
    server = Server(HANDLERS)
    async with trio.open_nursery() as nursery:
        connect, _ = memory_connector(server, nursery, peer="memory:test-client")
        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                with pytest.raises(RpcError) as info:
                    await channel.unary_unary(FAIL, b"")
                assert info.value.code is StatusCode.FAILED_PRECONDITION
                assert info.value.details == "not over memory"
                assert info.value.details_bin == b"\x08\x09"
                assert await channel.unary_unary(PEER, b"") == b"memory:test-client"
                missing = raw_method("/mem.Test/Missing", Cardinality.UNARY_UNARY)
                with pytest.raises(RpcError) as info:
                    await channel.unary_unary(missing, b"")
                assert info.value.code is StatusCode.UNIMPLEMENTED
        await server.stop(grace=1)


async def test_a_lost_memory_connection_is_redialled() -> None:
    server = Server(HANDLERS)
    async with trio.open_nursery() as nursery:
        connect, opened = memory_connector(server, nursery)
        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(UNARY, b"one") == b"ONE"
                await opened[0].aclose()  # the connection breaks under the channel
                answer = None
                while answer is None:  # the channel notices the loss, then dials again
                    try:
                        answer = await channel.unary_unary(UNARY, b"two")
                    except RpcError as exc:
                        assert exc.code is StatusCode.UNAVAILABLE
                        await trio.sleep(0.01)
                assert answer == b"TWO"
        assert len(opened) == 2
        await server.stop(grace=1)


async def test_stop_shuts_down_connections_served_by_handle_stream() -> None:
    slow = raw_method("/mem.Test/Slow", Cardinality.UNARY_UNARY)
    started = trio.Event()

    async def sleepy(request: bytes, context: ServicerContext) -> bytes:
        started.set()
        await trio.sleep(0.2)
        return b"finished in the grace period"

    server = Server([*HANDLERS, MethodHandler(method=slow, func=sleepy)])
    async with trio.open_nursery() as nursery:
        connect, _ = memory_connector(server, nursery)
        async with Channel(connect=connect) as channel:
            answers: list[bytes] = []

            async def call_slow() -> None:
                answers.append(await channel.unary_unary(slow, b""))

            with trio.fail_after(10):
                async with trio.open_nursery() as calls:
                    calls.start_soon(call_slow)
                    await started.wait()
                    # No listener ever ran: stop() drains what handle_stream serves.
                    await server.stop(grace=5)
            assert answers == [b"finished in the grace period"]


async def test_handle_stream_plugs_into_serve_listeners() -> None:
    server = Server(HANDLERS)
    async with trio.open_nursery() as nursery:
        tcp = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listeners = await nursery.start(trio.serve_listeners, server.handle_stream, tcp)
        port = listeners[0].socket.getsockname()[1]
        async with Channel(f"127.0.0.1:{port}") as channel:
            with trio.fail_after(10):
                # The peer's name comes from the accepted socket.
                assert (await channel.unary_unary(PEER, b"")).startswith(b"ipv4:127.0.0.1:")
                assert await channel.unary_unary(UNARY, b"tcp") == b"TCP"
        await server.stop(grace=1)
        nursery.cancel_scope.cancel()


async def test_tls_over_memory_streams() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    server = Server(HANDLERS, ssl_context=server_tls)
    async with trio.open_nursery() as nursery:
        connect, _ = memory_connector(server, nursery)
        async with Channel(connect=connect, ssl_context=client_tls) as channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(UNARY, b"secret") == b"SECRET"
        await server.stop(grace=1)


def test_a_channel_needs_a_target_or_a_connector() -> None:
    with pytest.raises(ValueError, match="target"):
        Channel()


async def test_the_end_of_a_quiet_connection_is_traced() -> None:
    tracer = ListTracer()
    server = Server(HANDLERS, options=ServerOptions(tracer=tracer))
    async with trio.open_nursery() as nursery:
        connect, _ = memory_connector(server, nursery)
        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(UNARY, b"x") == b"X"
        with trio.fail_after(5):
            await server.stop(grace=1)  # returns once every connection has ended
        # The channel closed with no call open: the server still traced the end.
        assert [r.kind for r in tracer.records].count("connection_end") == 1


async def test_keepalive_pings_at_its_interval_even_with_a_longer_timeout() -> None:
    tracer = ListTracer()
    options = ServerOptions(keepalive_time=0.05, keepalive_timeout=5.0, tracer=tracer)
    server = Server(HANDLERS, options=options)
    async with trio.open_nursery() as nursery:
        connect, _ = memory_connector(server, nursery)
        async with Channel(connect=connect) as channel:
            with trio.fail_after(10):
                assert await channel.unary_unary(UNARY, b"x") == b"X"
                await trio.sleep(0.6)  # quiet: the server pings, the channel answers
        pings = [
            r
            for r in tracer.records
            if r.kind == "frame_out" and r.fields["type"] == "PING" and not r.fields["flags"] & 1
        ]
        # One ping per quiet interval: each ACK lets the next one go out on time.
        assert len(pings) >= 5
        await server.stop(grace=1)


async def test_stop_twice_and_streams_after_the_stop() -> None:
    server = Server(HANDLERS)
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as stoppers:
            stoppers.start_soon(server.stop, 1)
            stoppers.start_soon(server.stop, 1)
        # A connection handed over after the stop is closed, not served.
        client_end, server_end = trio.testing.memory_stream_pair()
        with trio.fail_after(5):
            await server.handle_stream(server_end)
            assert await client_end.receive_some(100) == b""
        nursery.cancel_scope.cancel()
