"""Channel connectivity states (doc/connectivity-semantics-and-api.md) as a channel lives."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing
from keepalive_support import ECHO, pure_server

from puregrpc import RpcError, StatusCode
from puregrpc.client import BackoffPolicy, Channel, ChannelOptions, ConnectivityState
from puregrpc.server import MethodHandler, Server, ServicerContext

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TRANSIENT_FAILURE = ConnectivityState.TRANSIENT_FAILURE
SHUTDOWN = ConnectivityState.SHUTDOWN

FAST = ChannelOptions(backoff=BackoffPolicy(initial_backoff=0.05, max_backoff=0.2))


def free_port() -> int:
    """A loopback port with nothing listening on it (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def echo(request: bytes, context: ServicerContext) -> bytes:
    return request


async def watch(channel: Channel, seen: list[ConnectivityState]) -> None:
    """Record every state the channel is seen in, until SHUTDOWN."""
    state = channel.get_state()
    seen.append(state)
    while state is not SHUTDOWN:
        state = await channel.wait_for_state_change(state)
        seen.append(state)


def in_order(seen: list[ConnectivityState], *expected: ConnectivityState) -> bool:
    """True if ``expected`` occurs in ``seen`` in this order (other states may come between)."""
    remaining = iter(seen)
    return all(state in remaining for state in expected)


def test_the_states_are_grpcs_five() -> None:
    assert [state.name for state in ConnectivityState] == [
        "IDLE",
        "CONNECTING",
        "READY",
        "TRANSIENT_FAILURE",
        "SHUTDOWN",
    ]


async def test_a_channel_sees_failure_then_ready_then_idle_then_shutdown() -> None:
    port = free_port()
    server = Server([MethodHandler(method=ECHO, func=echo)])
    seen: list[ConnectivityState] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            channel = Channel(f"127.0.0.1:{port}", options=FAST)
            assert channel.get_state() is IDLE
            async with channel:
                nursery.start_soon(watch, channel, seen)
                await trio.testing.wait_all_tasks_blocked()  # the watcher waits on IDLE
                # Nothing listens yet: the attempts fail, with backoff between.
                assert channel.get_state(try_to_connect=True) is IDLE
                while channel.get_state() is not TRANSIENT_FAILURE:
                    await channel.wait_for_state_change(channel.get_state())

                async def start_later() -> None:
                    await trio.sleep(0.3)
                    await nursery.start(server.serve, "127.0.0.1", port)

                nursery.start_soon(start_later)
                await channel.channel_ready()  # retries until the server is up
                assert channel.get_state() is READY
                assert await channel.unary_unary(ECHO, b"up") == b"up"
                # The server goes away (GOAWAY): no connection, none attempted.
                await server.stop(grace=1)
                while channel.get_state() is READY:
                    await channel.wait_for_state_change(READY)
                assert channel.get_state() is IDLE
            assert channel.get_state() is SHUTDOWN
    assert seen[0] is IDLE
    assert in_order(seen, IDLE, CONNECTING, TRANSIENT_FAILURE, CONNECTING, READY, IDLE, SHUTDOWN)
    assert seen[-3:] == [READY, IDLE, SHUTDOWN]
    # Every READY came straight from CONNECTING, as the document's table says.
    assert all(seen[i - 1] is CONNECTING for i, state in enumerate(seen) if state is READY)


async def test_try_to_connect_makes_an_idle_channel_ready_without_a_call() -> None:
    async with pure_server() as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(5):
            assert channel.get_state(try_to_connect=True) is IDLE
            assert await channel.wait_for_state_change(IDLE) is CONNECTING
            assert await channel.wait_for_state_change(CONNECTING) is READY
            assert channel.get_state() is READY
            # Asking again when READY starts nothing new.
            assert channel.get_state(try_to_connect=True) is READY


async def test_a_first_call_connects_an_idle_channel() -> None:
    async with pure_server() as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(5):
            assert await channel.unary_unary(ECHO, b"x") == b"x"
            assert channel.get_state() is READY


async def test_waiting_for_a_change_is_bounded_by_the_callers_scope() -> None:
    async with pure_server() as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.move_on_after(0.2) as scope:
            await channel.wait_for_state_change(IDLE)  # nobody connects: no change
        assert scope.cancelled_caught
        assert channel.get_state() is IDLE
        # Not the state it is in: returns at once.
        with trio.fail_after(1):
            assert await channel.wait_for_state_change(READY) is IDLE


async def test_channel_ready_is_bounded_by_the_callers_scope_while_nothing_listens() -> None:
    async with Channel(f"127.0.0.1:{free_port()}", options=FAST) as channel:
        with trio.move_on_after(0.5) as scope:
            await channel.channel_ready()
        assert scope.cancelled_caught
        assert channel.get_state() in (TRANSIENT_FAILURE, IDLE)


async def test_a_closed_channel_is_shut_down_for_good() -> None:
    async with pure_server() as port:
        channel = Channel(f"127.0.0.1:{port}")
        async with channel:
            with trio.fail_after(5):
                await channel.channel_ready()
            waiter_saw: list[ConnectivityState] = []

            async def wait_for_shutdown() -> None:
                waiter_saw.append(await channel.wait_for_state_change(READY))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_shutdown)
                await trio.testing.wait_all_tasks_blocked()
                with trio.CancelScope(shield=True):
                    await channel.close()
        # Outside the block: close() cancelled the channel's nursery, which the block is in.
        assert waiter_saw == [SHUTDOWN]
        assert channel.get_state(try_to_connect=True) is SHUTDOWN
        with pytest.raises(RpcError) as caught:
            await channel.channel_ready()
        assert caught.value.code is StatusCode.UNAVAILABLE
        with pytest.raises(RpcError):
            await channel.unary_unary(ECHO, b"late")
