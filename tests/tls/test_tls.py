"""TLS with ALPN h2, and mutual TLS, over loopback."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trio
import trustme

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

PEER = raw_method("/tls.Test/Peer", Cardinality.UNARY_UNARY)
NUMBERS = raw_method("/tls.Test/Numbers", Cardinality.UNARY_STREAM)


async def peer(request: bytes, context: ServicerContext) -> bytes:
    return context.peer().encode()


async def numbers(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
    for index in range(int(request)):
        yield b"%d" % index


HANDLERS = [MethodHandler(method=PEER, func=peer), MethodHandler(method=NUMBERS, func=numbers)]


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: trustme.CA, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if with_cert:
        ca.issue_cert("client.example").configure_cert(context)
    return context


async def test_tls_calls_use_alpn_h2(ca: trustme.CA) -> None:
    server = Server(HANDLERS, ssl_context=server_context(ca, require_client_cert=False))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        tls = client_context(ca, with_cert=False)
        async with Channel(f"127.0.0.1:{port}", ssl_context=tls) as channel:
            with trio.fail_after(10):
                answer = await channel.unary_unary(PEER, b"")
                streamed = [m async for m in channel.unary_stream(NUMBERS, b"3")]
        assert answer.startswith(b"ipv4:127.0.0.1:")
        assert streamed == [b"0", b"1", b"2"]
        await server.stop(grace=1)


async def test_mutual_tls_accepts_a_client_certificate(ca: trustme.CA) -> None:
    server = Server(HANDLERS, ssl_context=server_context(ca, require_client_cert=True))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        tls = client_context(ca, with_cert=True)
        async with Channel(f"127.0.0.1:{port}", ssl_context=tls) as channel:
            with trio.fail_after(10):
                assert (await channel.unary_unary(PEER, b"")).startswith(b"ipv4:")
        await server.stop(grace=1)


async def test_mutual_tls_refuses_a_client_without_certificate(ca: trustme.CA) -> None:
    server = Server(HANDLERS, ssl_context=server_context(ca, require_client_cert=True))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        tls = client_context(ca, with_cert=False)
        async with Channel(f"127.0.0.1:{port}", ssl_context=tls) as channel:
            with trio.fail_after(10), pytest.raises(RpcError) as caught:
                await channel.unary_unary(PEER, b"")
        assert caught.value.code is StatusCode.UNAVAILABLE
        await server.stop(grace=1)


async def test_client_refuses_a_server_it_does_not_trust(ca: trustme.CA) -> None:
    server = Server(HANDLERS, ssl_context=server_context(ca, require_client_cert=False))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        untrusting = ssl.create_default_context()
        async with Channel(f"127.0.0.1:{port}", ssl_context=untrusting) as channel:
            with trio.fail_after(10), pytest.raises(RpcError) as caught:
                await channel.unary_unary(PEER, b"")
        assert caught.value.code is StatusCode.UNAVAILABLE
        assert "certificate" in caught.value.details.lower()
        await server.stop(grace=1)
