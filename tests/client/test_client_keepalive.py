"""Client keepalive (gRFC A8) against puregrpc servers: dead connections, idle calls, calm.

Small keepalive times (a tenth of a second) keep the tests fast; the real
defaults (off; 20 s timeout) are checked on ChannelOptions itself.
"""

from __future__ import annotations

import logging

import pytest
import trio
from keepalive_support import BIDI, ECHO, HOLD, PingLog, StallingProxy, pure_server

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions, ConnectivityState
from puregrpc.runtime import KeepalivePolicy
from puregrpc.server import ServerOptions


def test_keepalive_is_off_by_default_with_grpcio_defaults() -> None:
    options = ChannelOptions()
    assert options.keepalive_time is None
    assert options.keepalive_timeout == 20.0
    assert options.keepalive_without_calls is False


@pytest.mark.parametrize(
    ("time", "timeout", "named"),
    [(0.0, 1.0, "keepalive_time"), (-1.0, 1.0, "keepalive_time"), (1.0, 0.0, "keepalive_timeout")],
)
def test_a_bad_keepalive_setting_is_refused_where_the_channel_is_made(
    time: float, timeout: float, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Channel(
            "127.0.0.1:1", options=ChannelOptions(keepalive_time=time, keepalive_timeout=timeout)
        )


def test_any_byte_read_after_the_ping_proves_the_peer_alive() -> None:
    policy = KeepalivePolicy(10.0, 2.0)
    policy.ping_sent(110.0)
    policy.heard_from_peer(109.0)  # before the PING: proves nothing
    assert policy.expired(112.0)
    policy.heard_from_peer(111.0)
    assert not policy.awaiting_ack
    assert not policy.expired(112.0)


async def test_a_dead_connection_fails_its_call_unavailable_within_time_plus_timeout() -> None:
    time, timeout = 0.2, 0.3
    options = ChannelOptions(keepalive_time=time, keepalive_timeout=timeout)
    async with pure_server() as port, trio.open_nursery() as nursery:
        proxy = StallingProxy(port)
        await nursery.start(proxy.serve)
        async with Channel(f"127.0.0.1:{proxy.port}", options=options) as channel:
            call = channel.unary_stream(HOLD, b"")
            with trio.fail_after(5):
                assert await call.receive() == b"first"
                proxy.stall()  # the connection goes silent, its socket stays open
                stalled_at = trio.current_time()
                with pytest.raises(RpcError) as caught:
                    await call.receive()
                elapsed = trio.current_time() - stalled_at
                assert caught.value.code is StatusCode.UNAVAILABLE
                assert "keepalive" in caught.value.details
                assert "0.3 s" in caught.value.details
                assert timeout * 0.9 <= elapsed <= time + timeout + 0.5
                assert channel.get_state() is ConnectivityState.TRANSIENT_FAILURE
                # A later call gets a new connection (the proxy forwards it).
                assert await channel.unary_unary(ECHO, b"again") == b"again"
                assert channel.get_state() is ConnectivityState.READY
        nursery.cancel_scope.cancel()


async def test_without_keepalive_a_call_on_a_dead_connection_just_waits() -> None:
    # The control for the test above: the stalled proxy really is a black hole.
    async with pure_server() as port, trio.open_nursery() as nursery:
        proxy = StallingProxy(port)
        await nursery.start(proxy.serve)
        async with Channel(f"127.0.0.1:{proxy.port}") as channel:
            call = channel.unary_stream(HOLD, b"")
            with trio.fail_after(5):
                assert await call.receive() == b"first"
            proxy.stall()
            with trio.move_on_after(0.8) as waited:
                await call.receive()
            assert waited.cancelled_caught
            call.cancel()
        nursery.cancel_scope.cancel()


async def test_a_healthy_idle_call_keeps_working_while_pings_flow() -> None:
    log = PingLog()
    options = ChannelOptions(keepalive_time=0.1, keepalive_timeout=1.0, tracer=log)
    async with pure_server() as port, Channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.stream_stream(BIDI)
        with trio.fail_after(5):
            await call.send(b"a")
            assert await call.receive() == b"a"
            await trio.sleep(0.7)  # no traffic but pings
            assert len(log.sent) >= 3
            assert len(log.acks) >= len(log.sent) - 1
            await call.send(b"b")
            assert await call.receive() == b"b"
            await call.done_writing()
            assert await call.receive() is None
        assert log.goaways == []
        assert len(log.connections()) == 1


async def test_no_pings_while_no_call_is_open() -> None:
    log = PingLog()
    options = ChannelOptions(keepalive_time=0.1, tracer=log)
    async with pure_server() as port, Channel(f"127.0.0.1:{port}", options=options) as channel:
        with trio.fail_after(5):
            assert await channel.unary_unary(ECHO, b"x") == b"x"
            await trio.sleep(0.6)
            assert log.sent == []
            assert channel.get_state() is ConnectivityState.READY


async def test_keepalive_without_calls_pings_an_idle_connection() -> None:
    log = PingLog()
    options = ChannelOptions(keepalive_time=0.1, keepalive_without_calls=True, tracer=log)
    async with pure_server() as port, Channel(f"127.0.0.1:{port}", options=options) as channel:
        with trio.fail_after(5):
            assert await channel.unary_unary(ECHO, b"x") == b"x"
            await trio.sleep(0.6)
            assert len(log.sent) >= 3
            # Measured from the last read (the ACK), never faster than the time.
            assert min(log.gaps(log.connections()[0])) >= 0.1
            assert await channel.unary_unary(ECHO, b"y") == b"y"


async def test_a_call_on_a_quiet_connection_pings_before_its_headers() -> None:
    # A8: a call starting more than keepalive_time after the last read pings
    # first, so a connection that died while idle is found within the timeout.
    log = PingLog()
    options = ChannelOptions(keepalive_time=0.2, tracer=log)
    async with pure_server() as port, Channel(f"127.0.0.1:{port}", options=options) as channel:
        with trio.fail_after(5):
            assert await channel.unary_unary(ECHO, b"x") == b"x"
            await trio.sleep(0.4)
            assert log.sent == []
            log.frames_out.clear()
            assert await channel.unary_unary(ECHO, b"y") == b"y"
    assert "PING" in log.frames_out
    assert log.frames_out.index("PING") < log.frames_out.index("HEADERS")


async def test_too_many_pings_doubles_the_keepalive_time_and_calls_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The third ping too soon is one too many (strikes 1 and 2 are tolerated).
    strict = ServerOptions(min_ping_interval=60, max_ping_strikes=2)
    log = PingLog()
    options = ChannelOptions(keepalive_time=0.1, keepalive_timeout=1.0, tracer=log)
    caplog.set_level(logging.WARNING, logger="puregrpc.client")
    async with (
        pure_server(strict) as port,
        Channel(f"127.0.0.1:{port}", options=options) as channel,
    ):
        with trio.fail_after(5):
            call = channel.stream_stream(BIDI)
            await call.send(b"a")
            assert await call.receive() == b"a"
            with pytest.raises(RpcError) as caught:
                await call.receive()  # the server cuts the pinging connection off
            assert caught.value.code is StatusCode.UNAVAILABLE
            assert (0xB, b"too_many_pings") in log.goaways
            assert "keepalive_time for new connections is now 0.2 s" in caplog.text
            assert await channel.unary_unary(ECHO, b"after") == b"after"
            # The next connection pings half as often.
            call = channel.stream_stream(BIDI)
            await call.send(b"b")
            assert await call.receive() == b"b"
            await trio.sleep(0.65)  # pings at 0.2, 0.4, 0.6 s: the 4th would be cut off
            await call.done_writing()
            assert await call.receive() is None
        first, second = log.connections()[:2]
        assert min(log.gaps(first)) < 0.2
        assert min(log.gaps(second)) >= 0.2
