"""Client call lifecycle edge cases: concurrent first use, freed slots, failing iterators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import (
    MethodHandler,
    RequestIterator,
    Server,
    ServerOptions,
    ServicerContext,
)
from puregrpc.wire import ConnectionConfig

ECHO = raw_method("/life.Test/Echo", Cardinality.STREAM_STREAM)
SLOW = raw_method("/life.Test/Slow", Cardinality.UNARY_UNARY)
COUNT = raw_method("/life.Test/Count", Cardinality.STREAM_UNARY)
TICKS = raw_method("/life.Test/Ticks", Cardinality.UNARY_STREAM)


class Service:
    def __init__(self) -> None:
        self.echo_calls = 0
        self.ticks_ended = trio.Event()

    async def echo(
        self, requests: RequestIterator[bytes], context: ServicerContext
    ) -> AsyncIterator[bytes]:
        self.echo_calls += 1
        async for request in requests:
            yield request

    async def slow(self, request: bytes, context: ServicerContext) -> bytes:
        await trio.sleep(float(request))
        return request

    async def count(self, requests: RequestIterator[bytes], context: ServicerContext) -> bytes:
        return b"%d" % len([r async for r in requests])

    async def ticks(self, request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        try:
            for index in range(100_000):
                yield b"%d" % index
        finally:
            self.ticks_ended.set()

    def __puregrpc_handlers__(self) -> dict[str, MethodHandler]:
        return {
            ECHO.path: MethodHandler(method=ECHO, func=self.echo),
            SLOW.path: MethodHandler(method=SLOW, func=self.slow),
            COUNT.path: MethodHandler(method=COUNT, func=self.count),
            TICKS.path: MethodHandler(method=TICKS, func=self.ticks),
        }


async def test_bidi_send_and_receive_from_two_tasks_open_one_stream() -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(ECHO)
            received: list[bytes] = []

            async def receive_all() -> None:
                received.extend([r async for r in call])

            with trio.fail_after(5):
                async with trio.open_nursery() as tasks:
                    tasks.start_soon(receive_all)  # both tasks start the call at once
                    for word in (b"a", b"b", b"c"):
                        await call.send(word)
                    await call.done_writing()
        assert received == [b"a", b"b", b"c"]
        assert service.echo_calls == 1
        await server.stop(grace=1)


async def test_a_cancelled_call_frees_its_slot_for_a_waiting_one() -> None:
    options = ServerOptions(connection=ConnectionConfig(max_concurrent_streams=1))
    server = Server([Service()], options=options)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            assert await channel.unary_unary(SLOW, b"0") == b"0"  # SETTINGS known
            with trio.fail_after(5):
                async with trio.open_nursery() as tasks:
                    first = channel.unary_unary(SLOW, b"30")
                    await first.__aenter__()
                    results: list[bytes] = []

                    async def second() -> None:
                        results.append(await channel.unary_unary(SLOW, b"0"))

                    tasks.start_soon(second)
                    await trio.sleep(0.2)  # the second call waits for the only slot
                    first.cancel()
            assert results == [b"0"]
        await server.stop(grace=1)


async def test_a_failing_request_iterator_cancels_only_its_call() -> None:
    server = Server([Service()])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:

            def requests() -> Iterator[bytes]:
                yield b"one"
                raise ValueError("no more data")

            with trio.fail_after(5):
                with pytest.raises(RpcError) as caught:
                    await channel.stream_unary(COUNT, requests())
                assert caught.value.code is StatusCode.CANCELLED
                assert "ValueError" in caught.value.details
                # The channel and its other calls are fine.
                assert await channel.stream_unary(COUNT, [b"x", b"y"]) == b"2"
        await server.stop(grace=1)


async def test_breaking_out_of_a_response_loop_cancels_the_call() -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            async for tick in channel.unary_stream(TICKS, b""):
                assert tick == b"0"
                break
            with trio.fail_after(2):
                await service.ticks_ended.wait()
        await server.stop(grace=1)
