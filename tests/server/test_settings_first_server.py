"""A client whose first frame after the preface is not SETTINGS is closed (RFC 9113 §3.4).

The raw clients here write bytes built with hyperframe on a plain socket, and
read what the server answers until it closes the connection.
"""

from __future__ import annotations

import h2.errors
import pytest
import trio
from hyperframe.frame import Frame, GoAwayFrame, PingFrame, SettingsFrame

from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ECHO = raw_method("/first.Test/Echo", Cardinality.UNARY_UNARY)


async def echo(request: bytes, context: ServicerContext) -> bytes:
    return request


def _frames(data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    assert data == b"", "the server's bytes end inside a frame"
    return frames


async def _answer_to(start: bytes, port: int) -> list[Frame]:
    """Send ``start``, then read everything until the server closes; return its frames."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    with trio.fail_after(3):
        await stream.send_all(start)
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            received += data
    await stream.aclose()
    return _frames(received)


def _ping() -> bytes:
    ping = PingFrame(0)
    ping.opaque_data = b"pingpong"
    return bytes(ping.serialize())


def _settings_ack() -> bytes:
    ack = SettingsFrame(0)
    ack.flags.add("ACK")
    return bytes(ack.serialize())


@pytest.mark.parametrize(
    ("first", "name"), [(_ping(), "PING"), (_settings_ack(), "SETTINGS acknowledgement")]
)
async def test_a_client_starting_without_settings_gets_goaway_protocol_error(
    first: bytes, name: str
) -> None:
    server = Server([MethodHandler(method=ECHO, func=echo)])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        frames = await _answer_to(PREFACE + first + bytes(SettingsFrame(0).serialize()), port)
        # Our SETTINGS went out before the client's bytes were read; then GOAWAY, then EOF.
        goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
        assert len(goaways) == 1
        (goaway,) = goaways
        assert goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert goaway.last_stream_id == 0
        assert b"first frame" in goaway.additional_data
        assert name.encode() in goaway.additional_data
        assert not [f for f in frames if isinstance(f, PingFrame)], "the PING was answered"
        # The server goes on serving well-behaved clients.
        async with Channel(f"127.0.0.1:{port}") as channel:
            with trio.fail_after(5):
                assert await channel.unary_unary(ECHO, b"still fine", timeout=5) == b"still fine"
        await server.stop(grace=1)


async def test_a_client_starting_with_settings_then_ping_is_answered() -> None:
    server = Server([MethodHandler(method=ECHO, func=echo)])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        received = b""
        with trio.fail_after(3):
            await stream.send_all(PREFACE + bytes(SettingsFrame(0).serialize()) + _ping())
            while b"pingpong" not in received:
                data = await stream.receive_some(65536)
                assert data, "the server closed the connection"
                received += data
        await stream.aclose()
        acks = [f for f in _frames(received) if isinstance(f, PingFrame)]
        assert [(f.opaque_data, "ACK" in f.flags) for f in acks] == [(b"pingpong", True)]
        await server.stop(grace=1)
