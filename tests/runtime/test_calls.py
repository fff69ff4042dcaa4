"""Every call type between a puregrpc client and a puregrpc server, over loopback TCP."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import trio
from runtime_support import (
    BIDI,
    COLLECT,
    ECHO,
    MISSING,
    RAISE,
    SECRET,
    STREAM,
    Probe,
    Served,
    expect_rpc_error,
    pure_handlers,
)

from puregrpc import Metadata, StatusCode
from puregrpc.client import Channel
from puregrpc.server import Server


async def test_unary_unary(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.unary_unary(ECHO, b"hello")
        assert await call == b"hello"
        assert call.code is StatusCode.OK
        assert call.details == ""


async def test_unary_unary_empty_message(channel: Channel) -> None:
    with trio.fail_after(5):
        assert await channel.unary_unary(ECHO, b"") == b""


async def test_unary_stream(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.unary_stream(STREAM, b"5")
        assert [m async for m in call] == [b"0", b"1", b"2", b"3", b"4"]
        assert call.code is StatusCode.OK


async def test_unary_stream_no_responses(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.unary_stream(STREAM, b"0")
        assert [m async for m in call] == []
        assert call.code is StatusCode.OK


async def test_unary_stream_many_messages(channel: Channel) -> None:
    with trio.fail_after(10):
        received = [m async for m in channel.unary_stream(STREAM, b"5000")]
        assert len(received) == 5000
        assert received[-1] == b"4999"


async def test_stream_unary_from_iterable(channel: Channel) -> None:
    with trio.fail_after(5):
        assert await channel.stream_unary(COLLECT, [b"a", b"b", b"c"]) == b"a,b,c"


async def test_stream_unary_from_async_generator(channel: Channel) -> None:
    async def requests() -> AsyncIterator[bytes]:
        for i in range(100):
            await trio.lowlevel.checkpoint()
            yield b"%d" % i

    with trio.fail_after(5):
        response = await channel.stream_unary(COLLECT, requests())
        assert response.split(b",") == [b"%d" % i for i in range(100)]


async def test_stream_unary_send_and_done_writing(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.stream_unary(COLLECT)
        await call.send(b"x")
        await call.send(b"y")
        await call.done_writing()
        assert await call == b"x,y"


async def test_stream_unary_no_requests(channel: Channel) -> None:
    with trio.fail_after(5):
        assert await channel.stream_unary(COLLECT, []) == b""


async def test_stream_stream_ping_pong(channel: Channel) -> None:
    with trio.fail_after(5):
        async with channel.stream_stream(BIDI) as call:
            for word in (b"ab", b"cd", b"ef"):
                await call.send(word)
                # Each answer arrives before the next request: truly interleaved.
                assert await call.receive() == word.upper()
            await call.done_writing()
            assert await call.receive() is None
        assert call.code is StatusCode.OK


async def test_stream_stream_concurrent_send_and_receive(channel: Channel) -> None:
    count = 500
    received: list[bytes] = []
    with trio.fail_after(10):
        async with channel.stream_stream(BIDI) as call:

            async def sender() -> None:
                for i in range(count):
                    await call.send(b"m%d" % i)
                await call.done_writing()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                async for message in call:
                    received.append(message)
    assert received == [b"M%d" % i for i in range(count)]
    assert call.code is StatusCode.OK


async def test_stream_stream_from_iterable(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.stream_stream(BIDI, [b"a", b"b"])
        assert [m async for m in call] == [b"A", b"B"]


async def test_calls_share_one_channel_sequentially(server: Served, channel: Channel) -> None:
    with trio.fail_after(5):
        for i in range(50):
            assert await channel.unary_unary(ECHO, b"%d" % i) == b"%d" % i
    assert len(server.probe.peers) == 50
    assert len(set(server.probe.peers)) == 1, "sequential calls should reuse the connection"


async def test_unknown_method_is_unimplemented(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(MISSING, b"x"))
    assert error.code is StatusCode.UNIMPLEMENTED
    assert MISSING.path in error.details


async def test_unknown_method_leaves_connection_usable(channel: Channel) -> None:
    with trio.fail_after(5):
        await expect_rpc_error(channel.unary_unary(MISSING, b"x"))
        assert await channel.unary_unary(ECHO, b"still ok") == b"still ok"


async def test_handler_exception_is_unknown_without_leaking_text(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(
            channel.unary_unary(RAISE, b"", metadata=Metadata([("x-a", "1")]))
        )
    assert error.code is StatusCode.UNKNOWN
    assert SECRET not in error.details
    assert "Traceback" not in error.details
    assert "cannot connect" not in error.details
    for _, value in error.trailing_metadata:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        assert SECRET not in text


async def test_unix_domain_socket() -> None:
    probe = Probe()
    server = Server(pure_handlers(probe))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "grpc.sock")
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                started = await nursery.start(server.serve_unix, path)
                assert started == path
                assert await trio.Path(path).exists()
                async with Channel(f"unix:{path}") as channel:
                    assert await channel.unary_unary(ECHO, b"over uds") == b"over uds"
                    streamed = [m async for m in channel.unary_stream(STREAM, b"3")]
                    assert streamed == [b"0", b"1", b"2"]
                    assert await channel.stream_unary(COLLECT, [b"p", b"q"]) == b"p,q"
                    assert [m async for m in channel.stream_stream(BIDI, [b"u"])] == [b"U"]
                await server.stop(grace=1)
        assert probe.peers and probe.peers[0].startswith("unix:")
        assert not await trio.Path(path).exists(), "serve_unix should remove its socket file"
