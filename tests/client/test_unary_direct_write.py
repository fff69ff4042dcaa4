"""A unary call alone on its connection writes its request from the caller's task.

The request headers, the message and END_STREAM leave in one write when the
call is alone and the connection's writer is idle; the reader writes what a
read queued (PING ACKs) itself on such a connection. Neither may lose or
reorder bytes: what the socket does not take at once, the writer sends
first; a request over the server's window still waits for it; concurrent
calls still go through the coalescing writer.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
import trio
from small_sockets import channel_over_small_sockets, pattern

from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

DIGEST = raw_method("/direct.Test/Digest", Cardinality.UNARY_UNARY)


async def digest(request: bytes, context: ServicerContext) -> bytes:
    return b"%d:" % len(request) + hashlib.sha256(request).digest()


def expected(request: bytes) -> bytes:
    return b"%d:" % len(request) + hashlib.sha256(request).digest()


async def test_a_request_the_socket_does_not_take_at_once_arrives_whole() -> None:
    server = Server([MethodHandler(method=DIGEST, func=digest)])
    async with channel_over_small_sockets(server) as channel:
        with trio.fail_after(10):
            # 60,000 B fits the window, not the socket; 200,000 B waits for
            # the server's window too (the half-close follows the wait).
            for size in (60_000, 10, 200_000, 0, 59_999):
                request = pattern(size)
                call = channel.unary_unary(DIGEST, request)
                assert await call == expected(request)
                assert call.status is not None and call.status.ok


async def test_concurrent_unary_calls_share_the_writer() -> None:
    server = Server([MethodHandler(method=DIGEST, func=digest)])
    async with channel_over_small_sockets(server) as channel:
        results: dict[int, bytes] = {}

        async def one(index: int) -> None:
            results[index] = await channel.unary_unary(DIGEST, pattern(index * 997), timeout=10)

        with trio.fail_after(20):
            async with trio.open_nursery() as calls:
                for index in range(40):
                    calls.start_soon(one, index)
        assert results == {index: expected(pattern(index * 997)) for index in range(40)}


class WriterSteps(trio.abc.Instrument):
    """Counts the steps of every connection writer task of the trio run it watches."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("._writer"):
            self.steps += 1


@pytest.fixture
def server_in_a_thread() -> Iterator[int]:
    """A server in its own trio run on another thread (its tasks are not ours to count)."""
    port: list[int] = []
    ready = threading.Event()
    stop: list[trio.CancelScope] = []
    token: list[trio.lowlevel.TrioToken] = []

    async def serve() -> None:
        server = Server([MethodHandler(method=DIGEST, func=digest)])
        with trio.CancelScope() as scope:
            stop.append(scope)
            token.append(trio.lowlevel.current_trio_token())
            async with server.listening("127.0.0.1", 0):
                port.append(server.ports[0])
                ready.set()
                await trio.sleep_forever()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    try:
        yield port[0]
    finally:
        token[0].run_sync_soon(stop[0].cancel)
        thread.join(10)


async def test_sequential_unary_calls_do_not_wake_the_writer(server_in_a_thread: int) -> None:
    async with Channel(f"127.0.0.1:{server_in_a_thread}") as channel:
        await channel.unary_unary(DIGEST, b"warm-up", timeout=10)  # connected, settled
        counter = WriterSteps()
        trio.lowlevel.add_instrument(counter)
        try:
            for index in range(50):
                request = pattern(index * 31)
                assert await channel.unary_unary(DIGEST, request, timeout=10) == expected(request)
        finally:
            trio.lowlevel.remove_instrument(counter)
    # Each call's request leaves from its own task: the writer wakes for
    # nothing (it woke twice per call before). Settings or a keepalive may
    # still wake it once or twice.
    assert counter.steps <= 3, counter.steps
