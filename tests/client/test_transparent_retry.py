"""Transparent retry: a call the server provably never processed is sent again, once.

No retry policy is configured in these tests: the retry happens anyway (gRFC
A6 "Transparent Retries", as grpc-go and grpc-java do). The servers are
scripted HTTP/2 peers on 127.0.0.1 (:mod:`puregrpc.testing.hostile`).
"""

from __future__ import annotations

import pytest
import trio
from h2.errors import ErrorCodes as H2

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.testing.hostile import (
    RawPeer,
    goaway_frame,
    hostile_server,
    rst_stream_frame,
    serve_requests,
    settings_frame,
)

UNARY = raw_method("/hostile.Test/Unary", Cardinality.UNARY_UNARY)


class Refusing:
    """Refuses the first ``refuse`` requests (RST_STREAM REFUSED_STREAM), then echoes."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.requests: list[dict[bytes, bytes]] = []

    async def __call__(self, peer: RawPeer, index: int) -> None:
        await peer.send(settings_frame())
        while len(self.requests) < self.refuse:
            request = await peer.read_request()
            self.requests.append(request.headers)
            await peer.send(rst_stream_frame(request.stream_id, H2.REFUSED_STREAM))
        await serve_requests(peer)


async def test_a_refused_stream_is_retried_without_a_policy() -> None:
    script = Refusing(refuse=1)
    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(10):
            assert await channel.unary_unary(UNARY, b"hello", timeout=5) == b"hello"
    assert len(script.requests) == 1


async def test_a_transparent_retry_happens_once_per_call() -> None:
    script = Refusing(refuse=2)
    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(10), pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY, b"hello", timeout=5)
        assert caught.value.code is StatusCode.UNAVAILABLE
        assert "REFUSED_STREAM" in caught.value.details
        assert len(script.requests) == 2
        # The next call has its own transparent retry (the script now echoes).
        assert await channel.unary_unary(UNARY, b"again", timeout=5) == b"again"


async def test_a_call_above_a_goaway_last_stream_id_goes_to_a_new_connection() -> None:
    connections: list[int] = []

    async def script(peer: RawPeer, index: int) -> None:
        connections.append(index)
        await peer.send(settings_frame())
        if index == 0:
            await peer.read_request()
            await peer.send(goaway_frame(0))  # stream 1 was never processed
            await peer.drain()
        else:
            await serve_requests(peer)

    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(10):
            assert await channel.unary_unary(UNARY, b"moved", timeout=5) == b"moved"
    assert connections == [0, 1]
