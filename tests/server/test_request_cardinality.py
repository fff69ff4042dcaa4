"""Request cardinality: a unary-request method takes exactly one request message.

Two requests (or none) on a unary-unary or server-streaming method are a
request cardinality violation, answered UNIMPLEMENTED (grpc
doc/statuscodes.md); the handler never runs for such a call. The clients here
call the unary paths with a bidi method descriptor, which lets them send any
number of messages, or drive puregrpc's sans-IO client core by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, Method, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext
from puregrpc.wire import CallEnded, ClientConnection

UNARY = raw_method("/cardinality.Test/Unary", Cardinality.UNARY_UNARY)
TICKS = raw_method("/cardinality.Test/Ticks", Cardinality.UNARY_STREAM)
# The same paths as bidi methods: the client may send 0, 1 or 2 messages.
UNARY_AS_BIDI = raw_method(UNARY.path, Cardinality.STREAM_STREAM)
TICKS_AS_BIDI = raw_method(TICKS.path, Cardinality.STREAM_STREAM)


class Service:
    """Counts how often each handler ran."""

    def __init__(self) -> None:
        self.unary_runs = 0
        self.ticks_runs = 0

    async def unary(self, request: bytes, context: ServicerContext) -> bytes:
        self.unary_runs += 1
        return b"got " + request

    async def ticks(self, request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        self.ticks_runs += 1
        for index in range(3):
            yield request + b"%d" % index

    def __puregrpc_handlers__(self) -> dict[str, MethodHandler]:
        return {
            UNARY.path: MethodHandler(method=UNARY, func=self.unary),
            TICKS.path: MethodHandler(method=TICKS, func=self.ticks),
        }


async def _bidi_call(port: int, method: Method[bytes, bytes], requests: list[bytes]) -> list[bytes]:
    """Send ``requests`` on a bidi call and return the responses (raises RpcError)."""
    async with Channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(method, requests, timeout=5)
        return [response async for response in call]


@pytest.mark.parametrize(
    ("method", "requests", "fragment"),
    [
        (UNARY_AS_BIDI, [b"a", b"b"], "sent more than one"),
        (UNARY_AS_BIDI, [], "sent none"),
        (TICKS_AS_BIDI, [b"a", b"b"], "sent more than one"),
        (TICKS_AS_BIDI, [], "sent none"),
        (UNARY_AS_BIDI, [b"a", b"b", b"c"], "sent more than one"),
    ],
)
async def test_a_wrong_number_of_requests_is_unimplemented_and_runs_no_handler(
    method: Method[bytes, bytes], requests: list[bytes], fragment: str
) -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        with trio.fail_after(5), pytest.raises(RpcError) as caught:
            await _bidi_call(port, method, requests)
        assert caught.value.code is StatusCode.UNIMPLEMENTED
        assert fragment in caught.value.details
        assert "takes exactly one request message" in caught.value.details
        assert service.unary_runs == 0 and service.ticks_runs == 0
        await server.stop(grace=1)


async def test_exactly_one_request_on_a_bidi_client_is_served() -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        with trio.fail_after(5):
            assert await _bidi_call(port, UNARY_AS_BIDI, [b"x"]) == [b"got x"]
            assert await _bidi_call(port, TICKS_AS_BIDI, [b"t"]) == [b"t0", b"t1", b"t2"]
        assert service.unary_runs == 1 and service.ticks_runs == 1
        await server.stop(grace=1)


async def test_a_second_request_sent_late_is_still_refused_before_the_handler_runs() -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            with trio.fail_after(5):
                call = channel.stream_stream(UNARY_AS_BIDI, timeout=5)
                await call.send(b"first")
                # The server holds the handler until the half-close.
                await trio.sleep(0.2)
                assert service.unary_runs == 0
                await call.send(b"second")
                with pytest.raises(RpcError) as caught:
                    await call.receive()
        assert caught.value.code is StatusCode.UNIMPLEMENTED
        assert "more than one" in caught.value.details
        assert service.unary_runs == 0
        await server.stop(grace=1)


async def test_a_late_half_close_after_one_request_is_served_once() -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            with trio.fail_after(5):
                call = channel.stream_stream(UNARY_AS_BIDI, timeout=5)
                await call.send(b"only")
                await trio.sleep(0.2)
                await call.done_writing()
                assert [r async for r in call] == [b"got only"]
        assert service.unary_runs == 1
        await server.stop(grace=1)


async def test_two_requests_in_one_write_from_a_raw_client_get_unimplemented() -> None:
    service = Service()
    server = Server([service])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        connection = ClientConnection()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        stream_id = connection.start_call(UNARY.path)
        connection.send_message(stream_id, b"one")
        connection.send_message(stream_id, b"two")
        connection.end_stream(stream_id)
        ended: CallEnded | None = None
        with trio.fail_after(5):
            # Preface, SETTINGS, HEADERS, both messages and END_STREAM: one write.
            await stream.send_all(connection.data_to_send())
            while ended is None:
                data = await stream.receive_some(65536)
                assert data, "the server closed the connection without answering"
                for event in connection.receive_data(data):
                    if isinstance(event, CallEnded):
                        ended = event
                reply = connection.data_to_send()
                if reply:
                    await stream.send_all(reply)
        await stream.aclose()
        assert ended.stream_id == stream_id
        assert ended.status.code is StatusCode.UNIMPLEMENTED
        assert "more than one" in ended.status.details
        assert service.unary_runs == 0
        await server.stop(grace=1)
