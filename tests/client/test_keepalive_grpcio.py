"""Client keepalive against a real grpcio server, with and without its ping enforcement.

grpcio's server (gRPC core) counts a PING that comes sooner than
``grpc.http2.min_ping_interval_without_data_ms`` after the previous one, with
no data sent by the server in between, as a strike; after
``grpc.http2.max_ping_strikes`` strikes it sends GOAWAY ENHANCE_YOUR_CALM
"too_many_pings" and closes the connection. A8 has the client then double
its keepalive time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
import trio
from keepalive_support import ECHO, HOLD, PingLog

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions, ConnectivityState

pytestmark = pytest.mark.interop


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _hold(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    # One message (the server has sent data: ping strikes start over), then
    # nothing until the call ends; bounded so a stuck test cannot keep a thread.
    yield b"first"
    deadline = time.monotonic() + 10
    while context.is_active() and time.monotonic() < deadline:
        time.sleep(0.02)


@contextmanager
def grpcio_server(**options: Any) -> Iterator[int]:
    """A grpcio server (its own threads) with ECHO and HOLD on 127.0.0.1; yields its port."""
    handler = grpc.method_handlers_generic_handler(
        "keepalive.Test",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "Hold": grpc.unary_stream_rpc_method_handler(_hold),
        },
    )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4), handlers=[handler], options=list(options.items())
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0).wait(5)


async def test_grpcio_enforcement_sends_too_many_pings_and_the_client_calms_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = PingLog()
    options = ChannelOptions(keepalive_time=0.1, keepalive_timeout=2.0, tracer=log)
    caplog.set_level(logging.WARNING, logger="puregrpc.client")
    enforcing = {
        "grpc.http2.min_ping_interval_without_data_ms": 60_000,
        "grpc.http2.max_ping_strikes": 1,
    }
    with grpcio_server(**enforcing) as port:
        async with Channel(f"127.0.0.1:{port}", options=options) as channel:
            with trio.fail_after(8):
                call = channel.unary_stream(HOLD, b"")
                assert await call.receive() == b"first"
                with pytest.raises(RpcError) as caught:
                    await call.receive()
                assert caught.value.code is StatusCode.UNAVAILABLE
                # The call says why the connection went: the GOAWAY's code and debug data.
                assert "GOAWAY ENHANCE_YOUR_CALM (11): too_many_pings" in caught.value.details
                assert (0xB, b"too_many_pings") in log.goaways
                assert "too_many_pings" in caplog.text
                assert "keepalive_time for new connections is now 0.2 s" in caplog.text
                # The channel reconnects; short calls do not ping at all.
                assert await channel.unary_unary(ECHO, b"after") == b"after"
                assert await channel.unary_unary(ECHO, b"again") == b"again"
                assert channel.get_state() is ConnectivityState.READY
            pings_on_first = [c for _, c in log.sent].count(log.connections()[0])
            assert pings_on_first >= 2


async def test_grpcio_permitting_pings_keeps_answering_them_without_goaway() -> None:
    log = PingLog()
    options = ChannelOptions(
        keepalive_time=0.1, keepalive_timeout=2.0, keepalive_without_calls=True, tracer=log
    )
    permissive = {
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.http2.min_ping_interval_without_data_ms": 10,
    }
    with grpcio_server(**permissive) as port:
        async with Channel(f"127.0.0.1:{port}", options=options) as channel:
            with trio.fail_after(8):
                assert await channel.unary_unary(ECHO, b"x") == b"x"
                await trio.sleep(0.8)  # idle: pings without calls
                idle_pings = len(log.sent)
                # And during a quiet call.
                call = channel.unary_stream(HOLD, b"")
                assert await call.receive() == b"first"
                await trio.sleep(0.5)
                call.cancel()
                assert await channel.unary_unary(ECHO, b"y") == b"y"
        assert idle_pings >= 4
        assert len(log.sent) >= idle_pings + 2
        assert len(log.acks) >= len(log.sent) - 1
        assert log.goaways == []
        assert len(log.connections()) == 1
