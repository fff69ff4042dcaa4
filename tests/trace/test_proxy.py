"""The tracing proxy: bytes forwarded unchanged, grpcio peers traced on every call type."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from functools import partial
from typing import Any, TypeVar

import grpc
import pytest
import trio

from puregrpc.trace import C2S, S2C, ListSink, Trace, TraceProxy

T = TypeVar("T")

UNARY = "/trace.Test/Unary"
SERVER_STREAM = "/trace.Test/ServerStream"
CLIENT_STREAM = "/trace.Test/ClientStream"
BIDI = "/trace.Test/Bidi"
BIG = b"z" * 100_000  # over the 64 KiB initial windows: flow control is on the wire


def _handlers() -> grpc.GenericRpcHandler:
    def unary(request: bytes, context: Any) -> bytes:
        return request[::-1]

    def server_stream(request: bytes, context: Any) -> Iterator[bytes]:
        for index in range(int(request)):
            yield BIG if index == 0 else str(index).encode()

    def client_stream(requests: Iterator[bytes], context: Any) -> bytes:
        return b",".join(requests)

    def bidi(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        for request in requests:
            yield request.upper()

    return grpc.method_handlers_generic_handler(
        "trace.Test",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )


@pytest.fixture
def grpcio_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


@pytest.fixture
async def traced_proxy(grpcio_port: int) -> AsyncIterator[tuple[TraceProxy, ListSink]]:
    sink = ListSink()
    proxy = TraceProxy("127.0.0.1", grpcio_port, Trace([sink]))
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve, "127.0.0.1", 0)
        yield proxy, sink
        nursery.cancel_scope.cancel()


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


@pytest.mark.interop
async def test_grpcio_client_and_server_through_the_proxy(
    traced_proxy: tuple[TraceProxy, ListSink],
) -> None:
    proxy, sink = traced_proxy
    channel = grpc.insecure_channel(f"127.0.0.1:{proxy.port}")
    try:
        with trio.fail_after(15):
            unary = channel.unary_unary(UNARY)
            assert await in_thread(lambda: unary(BIG + b"!", timeout=5)) == b"!" + BIG
            stream = channel.unary_stream(SERVER_STREAM)
            replies = await in_thread(lambda: list(stream(b"4", timeout=5)))
            assert replies == [BIG, b"1", b"2", b"3"]
            collect = channel.stream_unary(CLIENT_STREAM)
            assert await in_thread(lambda: collect(iter([b"a", b"b", b"c"]), timeout=5)) == b"a,b,c"
            bidi = channel.stream_stream(BIDI)
            assert await in_thread(lambda: list(bidi(iter([b"x", b"y"]), timeout=5))) == [
                b"X",
                b"Y",
            ]
    finally:
        channel.close()
    with trio.fail_after(5):
        for _ in range(500):  # the proxy sees the close a moment after the client
            if sink.of("connection_end"):
                break
            await trio.sleep(0.01)

    events = sink.events
    assert {e.role for e in events} == {"proxy"}
    starts = {e.stream: e.fields["path"] for e in sink.of("call_start")}
    assert sorted(starts.values()) == sorted([UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI])
    by_path = {path: stream for stream, path in starts.items()}

    def messages(path: str, kind: str) -> list[tuple[int, int]]:
        return [(e.fields["seq"], e.fields["length"]) for e in sink.of(kind, by_path[path])]

    # Every message, both ways, numbered and sized as sent.
    assert messages(UNARY, "message_out") == [(1, len(BIG) + 1)]
    assert messages(UNARY, "message_in") == [(1, len(BIG) + 1)]
    assert messages(SERVER_STREAM, "message_out") == [(1, 1)]
    assert messages(SERVER_STREAM, "message_in") == [(1, len(BIG)), (2, 1), (3, 1), (4, 1)]
    assert messages(CLIENT_STREAM, "message_out") == [(1, 1), (2, 1), (3, 1)]
    assert messages(CLIENT_STREAM, "message_in") == [(1, 5)]
    assert messages(BIDI, "message_out") == [(1, 1), (2, 1)]
    assert messages(BIDI, "message_in") == [(1, 1), (2, 1)]
    assert [e.fields["code"] for e in sink.of("call_end")] == ["OK"] * 4
    # DATA frames account for every message byte, and each frame names its messages.
    for stream in by_path.values():
        for kind, direction in (("message_out", C2S), ("message_in", S2C)):
            frames = [
                e
                for e in sink.events
                if e.stream == stream
                and e.fields.get("type") == "DATA"
                and e.fields["dir"] == direction
            ]
            carried = sum(part[2] for f in frames for part in f.fields["parts"])
            sent = sum(e.fields["length"] + 5 for e in sink.of(kind, stream))
            assert carried == sent
    # The 100 KB messages could not fit the 64 KiB windows: grants show on the wire.
    updates = [e for e in events if e.fields.get("type") == "WINDOW_UPDATE"]
    assert updates and all(u.fields["window"] is None or u.fields["window"] > 0 for u in updates)
    assert not sink.of("decode_error")
    assert proxy.forwarded[C2S] > len(BIG) and proxy.forwarded[S2C] > 2 * len(BIG)


async def test_bytes_are_forwarded_unchanged_both_ways() -> None:
    """Whatever crosses the proxy arrives identical, even when it is not HTTP/2."""
    to_server = os.urandom(300_000)
    to_client = os.urandom(200_000)
    received_by_server = bytearray()
    received_by_client = bytearray()
    server_done = trio.Event()

    async def upstream(stream: trio.SocketStream) -> None:
        async with stream, trio.open_nursery() as nursery:

            async def reply() -> None:
                for start in range(0, len(to_client), 7_000):
                    await stream.send_all(to_client[start : start + 7_000])
                await stream.send_eof()

            nursery.start_soon(reply)
            while chunk := await stream.receive_some(10_000):
                received_by_server.extend(chunk)
        server_done.set()

    sink = ListSink()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, upstream, 0, host="127.0.0.1"))
            upstream_port = listeners[0].socket.getsockname()[1]
            proxy = TraceProxy("127.0.0.1", upstream_port, Trace([sink]))
            port = await nursery.start(proxy.serve, "127.0.0.1", 0)
            client = await trio.open_tcp_stream("127.0.0.1", port)

            async def send() -> None:
                for start in range(0, len(to_server), 5_000):
                    await client.send_all(to_server[start : start + 5_000])
                await client.send_eof()

            async with client, trio.open_nursery() as both_ways:
                both_ways.start_soon(send)
                while chunk := await client.receive_some(10_000):
                    received_by_client.extend(chunk)
            await server_done.wait()
            nursery.cancel_scope.cancel()
    assert bytes(received_by_server) == to_server
    assert bytes(received_by_client) == to_client
    assert proxy.forwarded == {C2S: len(to_server), S2C: len(to_client)}
    # Not HTTP/2: the decoder said so once per direction and kept out of the way.
    errors = sink.of("decode_error")
    assert {e.fields["dir"] for e in errors} <= {C2S, S2C} and errors


async def test_unreachable_upstream_is_reported_and_the_client_closed() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # bound, never listening: refused
        sink = ListSink()
        proxy = TraceProxy("127.0.0.1", dead_port, Trace([sink]))
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(proxy.serve, "127.0.0.1", 0)
                client = await trio.open_tcp_stream("127.0.0.1", port)
                async with client:
                    assert await client.receive_some(10) == b""
                nursery.cancel_scope.cancel()
    (error,) = sink.of("decode_error")
    assert f"127.0.0.1:{dead_port}" in error.fields["error"]
