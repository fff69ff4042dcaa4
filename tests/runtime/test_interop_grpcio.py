"""Every call type against grpcio: grpcio client -> puregrpc server, and back."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import trio
from runtime_support import (
    BIDI,
    COLLECT,
    ECHO,
    MISSING,
    RAISE,
    SECRET,
    STREAM,
    GrpcioServed,
    Served,
    expect_rpc_error,
    in_thread,
)

from puregrpc import StatusCode
from puregrpc.client import Channel

pytestmark = pytest.mark.interop


# ------------------------------------------------------------ grpcio client -> puregrpc


async def test_grpcio_unary_unary(server: Served, grpcio_channel: grpc.Channel) -> None:
    call = grpcio_channel.unary_unary(ECHO.path)
    with trio.fail_after(5):
        assert await in_thread(lambda: call(b"hello", timeout=5)) == b"hello"
        assert await in_thread(lambda: call(b"", timeout=5)) == b""


async def test_grpcio_unary_stream(server: Served, grpcio_channel: grpc.Channel) -> None:
    call = grpcio_channel.unary_stream(STREAM.path)
    with trio.fail_after(5):
        assert await in_thread(lambda: list(call(b"5", timeout=5))) == [
            b"0",
            b"1",
            b"2",
            b"3",
            b"4",
        ]
        many = await in_thread(lambda: list(call(b"3000", timeout=5)))
    assert len(many) == 3000 and many[-1] == b"2999"


async def test_grpcio_stream_unary(server: Served, grpcio_channel: grpc.Channel) -> None:
    call = grpcio_channel.stream_unary(COLLECT.path)
    with trio.fail_after(5):
        assert await in_thread(lambda: call(iter([b"a", b"b", b"c"]), timeout=5)) == b"a,b,c"
        assert await in_thread(lambda: call(iter([]), timeout=5)) == b""


async def test_grpcio_stream_stream_interleaved(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    # Each request is released only after the previous answer arrived, so the
    # exchange is truly interleaved rather than buffered.
    def run() -> list[bytes]:
        answered = threading.Semaphore(0)

        def requests() -> Iterator[bytes]:
            for word in (b"ab", b"cd", b"ef"):
                yield word
                answered.acquire(timeout=5)

        received = []
        for response in grpcio_channel.stream_stream(BIDI.path)(requests(), timeout=5):
            received.append(response)
            answered.release()
        return received

    with trio.fail_after(5):
        assert await in_thread(run) == [b"AB", b"CD", b"EF"]


async def test_grpcio_unknown_method(server: Served, grpcio_channel: grpc.Channel) -> None:
    def run() -> grpc.StatusCode:
        try:
            grpcio_channel.unary_unary(MISSING.path)(b"", timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    with trio.fail_after(5):
        assert await in_thread(run) is grpc.StatusCode.UNIMPLEMENTED


async def test_grpcio_handler_exception(server: Served, grpcio_channel: grpc.Channel) -> None:
    def run() -> tuple[grpc.StatusCode, str]:
        try:
            grpcio_channel.unary_unary(RAISE.path)(b"", timeout=5)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
        return grpc.StatusCode.OK, ""

    with trio.fail_after(5):
        code, details = await in_thread(run)
    assert code is grpc.StatusCode.UNKNOWN
    assert SECRET not in details


async def test_grpcio_concurrent_calls_share_one_connection(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    call = grpcio_channel.unary_unary(ECHO.path)

    def run() -> list[bytes]:
        futures = [call.future(b"%d" % i, timeout=5) for i in range(100)]
        return [f.result() for f in futures]

    with trio.fail_after(10):
        assert await in_thread(run) == [b"%d" % i for i in range(100)]
    assert len(server.probe.peers) == 100
    assert len(set(server.probe.peers)) == 1


# ------------------------------------------------------------ puregrpc client -> grpcio


async def test_unary_unary_to_grpcio(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            call = channel.unary_unary(ECHO, b"hello")
            assert await call == b"hello"
            assert call.code is StatusCode.OK
            assert await channel.unary_unary(ECHO, b"") == b""


async def test_unary_stream_to_grpcio(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            assert [m async for m in channel.unary_stream(STREAM, b"4")] == [
                b"0",
                b"1",
                b"2",
                b"3",
            ]
            many = [m async for m in channel.unary_stream(STREAM, b"3000")]
    assert len(many) == 3000 and many[-1] == b"2999"


async def test_stream_unary_to_grpcio(grpcio_server: GrpcioServed) -> None:
    async def requests() -> AsyncIterator[bytes]:
        for word in (b"x", b"y", b"z"):
            yield word

    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            assert await channel.stream_unary(COLLECT, requests()) == b"x,y,z"
            assert await channel.stream_unary(COLLECT, []) == b""


async def test_stream_stream_to_grpcio(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            async with channel.stream_stream(BIDI) as call:
                for word in (b"ab", b"cd"):
                    await call.send(word)
                    assert await call.receive() == word.upper()
                await call.done_writing()
                assert await call.receive() is None
            assert call.code is StatusCode.OK


async def test_large_stream_to_grpcio(grpcio_server: GrpcioServed) -> None:
    # 8 MiB each way in 64 KiB messages: exercises flow control against grpcio.
    chunk = b"q" * 65_536
    with trio.fail_after(10):
        async with Channel(grpcio_server.target) as channel:
            total = 0
            async for message in channel.stream_stream(BIDI, [chunk] * 128):
                assert message == chunk.upper()
                total += len(message)
    assert total == 128 * 65_536


async def test_unknown_method_on_grpcio(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            error = await expect_rpc_error(channel.unary_unary(MISSING, b""))
    assert error.code is StatusCode.UNIMPLEMENTED
