"""Deadlines and cancellation, in both directions and against grpcio."""

from __future__ import annotations

import grpc
import pytest
import trio
from runtime_support import (
    COLLECT,
    ECHO,
    HANG,
    SLEEP,
    GrpcioServed,
    RawClient,
    Served,
    expect_rpc_error,
    grpcio_code,
    in_thread,
    silent_server,
)

from puregrpc import StatusCode
from puregrpc.client import Channel

# ------------------------------------------------------------ deadlines


async def test_client_timeout_against_slow_handler(server: Served, channel: Channel) -> None:
    probe = server.probe
    with trio.fail_after(5):
        start = trio.current_time()
        error = await expect_rpc_error(channel.unary_unary(SLEEP, b"10", timeout=0.3))
        elapsed = trio.current_time() - start
        assert error.code is StatusCode.DEADLINE_EXCEEDED
        assert 0.25 <= elapsed < 1.5
        # The handler is cancelled too (by the RST_STREAM or its own deadline).
        with trio.fail_after(1):
            await probe.finished.wait()
    assert probe.cancelled


async def test_deadline_exceeded_leaves_connection_usable(server: Served, channel: Channel) -> None:
    with trio.fail_after(5):
        await expect_rpc_error(channel.unary_unary(SLEEP, b"10", timeout=0.1))
        assert await channel.unary_unary(ECHO, b"after") == b"after"
    assert len(set(server.probe.peers)) == 1


async def test_time_remaining_reflects_the_timeout(server: Served, channel: Channel) -> None:
    with trio.fail_after(5):
        assert await channel.unary_unary(SLEEP, b"0", timeout=5) == b"slept"
        assert await channel.unary_unary(SLEEP, b"0") == b"slept"
    with_timeout, without = server.probe.time_remaining
    assert with_timeout is not None and 4.0 < with_timeout <= 5.0
    assert without is None


async def test_deadline_on_a_server_stream(server: Served, channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.unary_stream(HANG, b"", timeout=0.3)
        assert await call.receive() == b"first"
        error = await expect_rpc_error(call.receive())
        assert error.code is StatusCode.DEADLINE_EXCEEDED
        assert call.code is StatusCode.DEADLINE_EXCEEDED
        with trio.fail_after(1):
            await server.probe.finished.wait()
    assert server.probe.cancelled


async def test_server_enforces_grpc_timeout_itself(server: Served) -> None:
    # A raw client sends grpc-timeout and never resets the call: the server's
    # own deadline must cancel the handler and answer DEADLINE_EXCEEDED.
    with trio.fail_after(5):
        client = await RawClient.connect(server.port)
        try:
            stream_id = await client.start(SLEEP.path, b"10", grpc_timeout=0.3)
            start = trio.current_time()
            end = await client.wait_end(stream_id)
            elapsed = trio.current_time() - start
        finally:
            await client.aclose()
    assert end.status.code is StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 1.5
    assert server.probe.cancelled
    assert server.probe.finished.is_set()


async def test_timeout_against_a_silent_server() -> None:
    # The peer accepts TCP and never sends a byte (not even SETTINGS): the
    # deadline is enforced locally.
    with trio.fail_after(5):
        async with silent_server() as port, Channel(f"127.0.0.1:{port}") as channel:
            start = trio.current_time()
            error = await expect_rpc_error(channel.unary_unary(ECHO, b"x", timeout=0.3))
            elapsed = trio.current_time() - start
    assert error.code is StatusCode.DEADLINE_EXCEEDED
    assert 0.25 <= elapsed < 1.5


async def test_stream_timeout_against_a_silent_server() -> None:
    with trio.fail_after(5):
        async with silent_server() as port, Channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(HANG, timeout=0.3)
            error = await expect_rpc_error(call.receive())
    assert error.code is StatusCode.DEADLINE_EXCEEDED


@pytest.mark.interop
async def test_timeout_against_sleeping_grpcio_server(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            start = trio.current_time()
            error = await expect_rpc_error(channel.unary_unary(SLEEP, b"10", timeout=0.3))
            elapsed = trio.current_time() - start
    assert error.code is StatusCode.DEADLINE_EXCEEDED
    assert 0.25 <= elapsed < 1.5
    remaining = grpcio_server.probe.time_remaining[0]
    assert remaining is not None and 0 < remaining <= 0.3
    # grpcio learns of it too (RST_STREAM or its own deadline).
    assert await in_thread(grpcio_server.probe.terminated.wait, 2)


@pytest.mark.interop
async def test_grpcio_client_timeout_cancels_puregrpc_handler(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    probe = server.probe
    call = grpcio_channel.unary_unary(SLEEP.path)

    def invoke() -> grpc.StatusCode:
        try:
            call(b"10", timeout=0.3)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    with trio.fail_after(5):
        code = await in_thread(invoke)
        assert grpcio_code(code) is StatusCode.DEADLINE_EXCEEDED
        with trio.fail_after(1):
            await probe.finished.wait()
    assert probe.cancelled
    remaining = probe.time_remaining[0]
    assert remaining is not None and 0 < remaining <= 0.3


# ------------------------------------------------------------ cancellation


async def test_leaving_a_cancel_scope_cancels_the_server_handler(
    server: Served, channel: Channel
) -> None:
    probe = server.probe
    with trio.fail_after(5):
        with trio.move_on_after(0.2) as scope:
            call = channel.unary_stream(HANG, b"")
            async for message in call:
                assert message == b"first"
        assert scope.cancelled_caught
        assert call.code is StatusCode.CANCELLED
        with trio.fail_after(1):
            await probe.finished.wait()
        assert probe.cancelled
        # The connection is still good for other calls.
        assert await channel.unary_unary(ECHO, b"ok") == b"ok"


async def test_cancel_method_cancels_the_server_handler(server: Served, channel: Channel) -> None:
    probe = server.probe
    with trio.fail_after(5):
        call = channel.unary_stream(HANG, b"")
        assert await call.receive() == b"first"
        await probe.started.wait()
        call.cancel()
        with trio.fail_after(1):
            await probe.finished.wait()
        assert probe.cancelled
        error = await expect_rpc_error(call.receive())
        assert error.code is StatusCode.CANCELLED


async def test_exiting_call_context_cancels_the_server_handler(
    server: Served, channel: Channel
) -> None:
    probe = server.probe
    with trio.fail_after(5):
        async with channel.unary_stream(HANG, b"") as call:
            assert await call.receive() == b"first"
            await probe.started.wait()
        with trio.fail_after(1):
            await probe.finished.wait()
    assert probe.cancelled


async def test_cancel_while_waiting_for_unary_response(server: Served, channel: Channel) -> None:
    probe = server.probe
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def caller() -> None:
                await channel.unary_unary(SLEEP, b"10")

            nursery.start_soon(caller)
            await probe.started.wait()
            nursery.cancel_scope.cancel()
        with trio.fail_after(1):
            await probe.finished.wait()
    assert probe.cancelled


async def test_cancel_client_stream_cancels_the_server_handler(
    server: Served, channel: Channel
) -> None:
    probe = server.probe
    with trio.fail_after(5):
        call = channel.stream_unary(COLLECT)
        await call.send(b"a")
        await probe.started.wait()
        await trio.sleep(0.05)  # the handler is parked waiting for the next request
        call.cancel()
        with trio.fail_after(1):
            await probe.finished.wait()
    assert probe.collected == []


async def test_cancel_right_after_a_request_is_not_end_of_requests(
    server: Served, channel: Channel
) -> None:
    probe = server.probe
    with trio.fail_after(5):
        assert await channel.unary_unary(ECHO, b"warm") == b"warm"
        call = channel.stream_unary(COLLECT)
        await call.send(b"a")
        call.cancel()  # DATA and RST_STREAM leave in one write
        # The server may not start the handler at all (the call was reset in
        # the same read); if it does, the handler must see a cancellation.
        with trio.move_on_after(1):
            await probe.finished.wait()
    assert probe.collected == [], "the handler took a cancelled upload as complete"


@pytest.mark.interop
async def test_grpcio_future_cancel_cancels_puregrpc_handler(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    probe = server.probe
    future = grpcio_channel.unary_unary(SLEEP.path).future(b"10")
    try:
        with trio.fail_after(5):
            await probe.started.wait()
            assert future.cancel()
            with trio.fail_after(1):
                await probe.finished.wait()
    finally:
        future.cancel()
    assert probe.cancelled


@pytest.mark.interop
async def test_grpcio_iterator_cancel_cancels_puregrpc_handler(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    probe = server.probe
    responses = grpcio_channel.unary_stream(HANG.path)(b"")
    try:
        with trio.fail_after(5):
            assert await in_thread(next, responses) == b"first"
            await probe.started.wait()
            responses.cancel()
            with trio.fail_after(1):
                await probe.finished.wait()
    finally:
        responses.cancel()
    assert probe.cancelled
    assert responses.code() is grpc.StatusCode.CANCELLED


@pytest.mark.interop
async def test_puregrpc_cancel_reaches_grpcio_handler(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            call = channel.unary_stream(HANG, b"")
            assert await call.receive() == b"first"
            assert await in_thread(grpcio_server.probe.started.wait, 2)
            call.cancel()
            assert await in_thread(grpcio_server.probe.terminated.wait, 2)


async def test_call_cancelled_before_its_handler_starts(server: Served, channel: Channel) -> None:
    probe = server.probe
    with trio.fail_after(5):
        assert await channel.unary_unary(ECHO, b"warm") == b"warm"
        async with channel.unary_unary(SLEEP, b"10"):
            pass  # leave at once: HEADERS, DATA and RST_STREAM go out in one write
        with trio.move_on_after(1):
            await probe.finished.wait()
    # The server may skip the handler of a call reset in the same read; a
    # handler that did start must have finished (been cancelled).
    assert probe.finished.is_set() or not probe.started.is_set(), (
        "the handler of a cancelled call is still running"
    )


async def test_unhandled_errors_are_not_logged_for_cancelled_calls(
    server: Served, channel: Channel, caplog: pytest.LogCaptureFixture
) -> None:
    # Calls cancelled by the client at every stage: none is a handler bug.
    with trio.fail_after(5):
        for _ in range(20):
            async with channel.unary_stream(HANG, b""):
                pass
            with trio.move_on_after(0.01):
                await channel.unary_unary(SLEEP, b"1")
        assert await channel.unary_unary(ECHO, b"after") == b"after"
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [], [r.getMessage() for r in errors]
