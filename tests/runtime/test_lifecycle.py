"""Server and connection lifecycle: graceful stop, vanished peers, reconnects."""

from __future__ import annotations

import trio
from runtime_support import (
    ECHO,
    HANG,
    SLEEP,
    STREAM,
    Probe,
    RawClient,
    Served,
    expect_rpc_error,
    in_thread,
    pure_handlers,
    running_server,
    start_grpcio_server,
)

from puregrpc import StatusCode
from puregrpc.client import Channel
from puregrpc.server import Server

# ------------------------------------------------------------ graceful stop


async def serve_until_stopped(
    server: Server,
    returned: trio.Event,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``server.serve`` on port 0; set ``returned`` when serve returns."""
    try:
        await server.serve("127.0.0.1", 0, task_status=task_status)
    finally:
        returned.set()


async def test_graceful_stop_lets_a_call_in_flight_finish() -> None:
    probe = Probe()
    server = Server(pure_handlers(probe))
    returned = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_until_stopped, server, returned)
            target = f"127.0.0.1:{port}"
            async with Channel(target) as channel:
                result: list[bytes] = []

                async def in_flight() -> None:
                    result.append(await channel.unary_unary(SLEEP, b"0.5"))

                nursery.start_soon(in_flight)
                await probe.started.wait()
                stopped = trio.Event()

                async def stop() -> None:
                    await server.stop(grace=2)
                    stopped.set()

                nursery.start_soon(stop)
                await trio.sleep(0.1)  # GOAWAY reaches the client
                # New calls are refused, on this channel and on a new one.
                error = await expect_rpc_error(channel.unary_unary(ECHO, b"late"))
                assert error.code is StatusCode.UNAVAILABLE
                async with Channel(target) as other:
                    error = await expect_rpc_error(other.unary_unary(ECHO, b"late"))
                    assert error.code is StatusCode.UNAVAILABLE
                assert not stopped.is_set()
                await stopped.wait()
                assert result == [b"slept"], "the call in flight should have completed"
                assert returned.is_set(), "serve() should have returned when stop() did"
    assert not probe.cancelled


async def test_stop_cancels_a_call_that_outlives_the_grace() -> None:
    probe = Probe()
    server = Server(pure_handlers(probe))
    returned = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_until_stopped, server, returned)
            async with Channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_stream(HANG, b"")
                assert await call.receive() == b"first"
                await probe.started.wait()
                start = trio.current_time()
                nursery.start_soon(server.stop, 0.3)
                error = await expect_rpc_error(call.receive())
                elapsed = trio.current_time() - start
                await returned.wait()
    assert probe.cancelled and probe.finished.is_set()
    # A server going away is UNAVAILABLE: the client may retry elsewhere.
    assert error.code is StatusCode.UNAVAILABLE
    assert 0.25 <= elapsed < 2.0


async def test_stop_with_no_calls_returns_promptly() -> None:
    server = Server(pure_handlers(Probe()))
    returned = trio.Event()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_until_stopped, server, returned)
            async with Channel(f"127.0.0.1:{port}") as channel:
                assert await channel.unary_unary(ECHO, b"x") == b"x"
                start = trio.current_time()
                await server.stop(grace=5)
                assert trio.current_time() - start < 1.5
                assert returned.is_set()


async def test_listening_context_manager() -> None:
    probe = Probe()
    with trio.fail_after(5):
        async with (
            Server(pure_handlers(probe)).listening("127.0.0.1", 0) as server,
            Channel(f"127.0.0.1:{server.port}") as channel,
        ):
            assert await channel.unary_unary(ECHO, b"ctx") == b"ctx"
        # After the block the port is closed.
        async with Channel(f"127.0.0.1:{server.port}") as channel:
            error = await expect_rpc_error(channel.unary_unary(ECHO, b"x"))
    assert error.code is StatusCode.UNAVAILABLE


async def test_stop_while_a_client_disconnects() -> None:
    # Channel closes, then stop() runs one or two scheduler ticks later: the
    # window in which the server's connection is half torn down (it used to
    # crash serve() with "Nursery is closed to new arrivals").
    with trio.fail_after(10):
        for ticks in (1, 2) * 10:
            server = Server(pure_handlers(Probe()))
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server.serve, "127.0.0.1", 0)
                async with Channel(f"127.0.0.1:{port}") as channel:
                    await channel.unary_unary(ECHO, b"x")
                for _ in range(ticks):
                    await trio.lowlevel.cancel_shielded_checkpoint()
                await server.stop(grace=1)


# ------------------------------------------------------------ vanished peers


async def test_client_that_vanishes_mid_call_cancels_the_handler(server: Served) -> None:
    probe = server.probe
    with trio.fail_after(5):
        client = await RawClient.connect(server.port)
        await client.start(HANG.path, b"")
        await probe.started.wait()
        await client.aclose()  # no RST_STREAM, no GOAWAY: the socket just goes
        with trio.fail_after(1):
            await probe.finished.wait()
        assert probe.cancelled
        # The server goes on serving others.
        async with Channel(server.target) as channel:
            assert await channel.unary_unary(ECHO, b"alive") == b"alive"


async def test_client_that_vanishes_while_handler_is_blocked_on_flow_control(
    server: Served,
) -> None:
    probe = server.probe
    with trio.fail_after(5):
        client = await RawClient.connect(server.port)
        # 128 MiB to a client that never reads: the handler parks in send().
        await client.start(STREAM.path, b"2048:65536")
        await probe.streaming.wait()
        await trio.sleep(0.1)
        assert probe.sent < 2048
        await client.aclose()
        with trio.fail_after(1):
            await probe.finished.wait()
        # The generator handler is closed (GeneratorExit at its yield) when
        # the send after it fails: it stops well short of 2048 messages.
        assert probe.sent < 100
        async with Channel(server.target) as channel:
            assert await channel.unary_unary(ECHO, b"alive") == b"alive"


async def test_server_that_stops_mid_stream_fails_the_call_unavailable() -> None:
    # A puregrpc server stopped with no grace while a stream is open.
    with trio.fail_after(5):
        async with running_server() as served, Channel(served.target) as channel:
            call = channel.unary_stream(HANG, b"")
            assert await call.receive() == b"first"
            await served.probe.started.wait()
            await served.server.stop(grace=0)
            error = await expect_rpc_error(call.receive())
    assert error.code is StatusCode.UNAVAILABLE


async def test_grpcio_server_that_stops_mid_stream_fails_the_call_unavailable() -> None:
    grpcio = start_grpcio_server()
    try:
        with trio.fail_after(5):
            async with Channel(grpcio.target) as channel:
                call = channel.unary_stream(HANG, b"")
                assert await call.receive() == b"first"
                assert await in_thread(grpcio.probe.started.wait, 2)
                await in_thread(lambda: grpcio.server.stop(0).wait(2))
                error = await expect_rpc_error(call.receive())
    finally:
        grpcio.server.stop(0)
    assert error.code is StatusCode.UNAVAILABLE


async def test_server_socket_closed_abruptly_fails_calls_unavailable() -> None:
    # A "server" that accepts, reads the request, then closes the socket
    # without a word: the call must fail, not hang.
    async def drop(stream: trio.SocketStream) -> None:
        await stream.receive_some(65_536)
        await stream.aclose()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, drop, 0)
            port = listeners[0].socket.getsockname()[1]
            async with Channel(f"127.0.0.1:{port}") as channel:
                error = await expect_rpc_error(channel.unary_unary(ECHO, b"x"))
            nursery.cancel_scope.cancel()
    assert error.code is StatusCode.UNAVAILABLE


async def test_channel_close_fails_calls_in_flight(server: Served) -> None:
    with trio.fail_after(5):
        async with Channel(server.target) as channel:
            call = channel.unary_stream(HANG, b"")
            assert await call.receive() == b"first"
            await channel.close()
            error = await expect_rpc_error(call.receive())
        with trio.fail_after(1):
            await server.probe.finished.wait()
    assert error.code is StatusCode.UNAVAILABLE


async def test_channel_reconnects_after_server_restart() -> None:
    with trio.fail_after(10):
        async with running_server() as first:
            port = first.port
            channel = Channel(first.target)
            async with channel:
                assert await channel.unary_unary(ECHO, b"one") == b"one"
                await first.server.stop(grace=1)
                await trio.sleep(0.05)
                # A new server on the same port: the next call opens a new connection.
                probe = Probe()
                restarted = Server(pure_handlers(probe))
                async with trio.open_nursery() as nursery:
                    await nursery.start(restarted.serve, "127.0.0.1", port)
                    assert await channel.unary_unary(ECHO, b"two") == b"two"
                    await restarted.stop(grace=1)
    assert len(probe.peers) == 1
