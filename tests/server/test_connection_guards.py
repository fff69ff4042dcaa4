"""Keepalive, connection lifetime and abuse protection, against raw HTTP/2 peers.

The abusive peers here are built from puregrpc's own sans-IO client state
machine driven by hand over a real socket, so each test controls every frame.
A well-behaved client on another connection must be unaffected throughout.
"""

from __future__ import annotations

import h2.errors
import pytest
import trio
from hyperframe.frame import DataFrame, SettingsFrame

from puregrpc.client import Channel
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServerOptions, ServicerContext
from puregrpc.wire import ClientConnection, ConnectionClosed, Event

ECHO = raw_method("/guard.Test/Echo", Cardinality.UNARY_UNARY)


async def echo(request: bytes, context: ServicerContext) -> bytes:
    return request


class RawPeer:
    """A client connection whose frames the test sends by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = ClientConnection()
        self.events: list[Event] = []

    @classmethod
    async def connect(cls, port: int) -> RawPeer:
        peer = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await peer.flush()
        return peer

    async def flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def read_until_closed(self) -> ConnectionClosed | None:
        """Read until GOAWAY or EOF, then close; return the GOAWAY event, if one came."""
        try:
            return await self._read_until_closed()
        finally:
            await trio.aclose_forcefully(self.stream)

    async def _read_until_closed(self) -> ConnectionClosed | None:
        goaway: ConnectionClosed | None = None
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return goaway
            if not data:
                return goaway
            for event in self.connection.receive_data(data):
                self.events.append(event)
                if isinstance(event, ConnectionClosed) and event.remote:
                    goaway = event
            try:
                await self.flush()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return goaway


async def start_server(
    nursery: trio.Nursery, options: ServerOptions | None = None
) -> tuple[Server, int]:
    server = Server([MethodHandler(method=ECHO, func=echo)], options=options)
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    return server, port


async def assert_others_unaffected(port: int) -> None:
    async with Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(5):
            assert await channel.unary_unary(ECHO, b"still here") == b"still here"


async def test_rapid_reset_gets_goaway_enhance_your_calm() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery, ServerOptions(max_resets_per_second=50))
        peer = await RawPeer.connect(port)
        for _ in range(200):
            stream_id = peer.connection.start_call("/guard.Test/Echo")
            peer.connection.cancel(stream_id)
        await peer.flush()
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert b"rapid reset" in goaway.debug_data
        await assert_others_unaffected(port)
        await server.stop(grace=1)


async def test_making_us_reset_streams_counts_like_resetting_them() -> None:
    # DATA after END_STREAM: a stream error h2 answers with RST_STREAM itself.
    # A client must not get around the rapid-reset limit that way.
    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery, ServerOptions(max_resets_per_second=50))
        peer = await RawPeer.connect(port)
        forged = b""
        for _ in range(200):
            stream_id = peer.connection.start_call("/guard.Test/Echo")
            peer.connection.end_stream(stream_id)
            forged += DataFrame(stream_id, data=b"late").serialize()
        await peer.stream.send_all(peer.connection.data_to_send() + forged)
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert b"too many stream errors" in goaway.debug_data
        await assert_others_unaffected(port)
        await server.stop(grace=1)


async def test_ping_flood_gets_goaway() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(
            nursery,
            ServerOptions(
                max_control_frames_per_second=100,
                permit_keepalive_without_calls=True,
                min_ping_interval=0,
            ),
        )
        peer = await RawPeer.connect(port)
        for index in range(500):
            peer.connection.ping(index.to_bytes(8, "big"))
        await peer.flush()
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        await assert_others_unaffected(port)
        await server.stop(grace=1)


async def test_too_many_pings_without_calls_is_refused_as_grpc_go_does() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery)
        peer = await RawPeer.connect(port)
        for index in range(4):
            peer.connection.ping(index.to_bytes(8, "big"))
            await peer.flush()
            await trio.sleep(0.01)
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert goaway.debug_data == b"too_many_pings"
        await assert_others_unaffected(port)
        await server.stop(grace=1)


async def test_pings_within_the_policy_are_answered() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(
            nursery, ServerOptions(permit_keepalive_without_calls=True, min_ping_interval=0.05)
        )
        peer = await RawPeer.connect(port)
        for index in range(3):
            peer.connection.ping(index.to_bytes(8, "big"))
            await peer.flush()
            await trio.sleep(0.1)
        with trio.move_on_after(0.3):
            await peer.read_until_closed()
        acks = [e for e in peer.events if type(e).__name__ == "PingAcknowledged"]
        assert len(acks) == 3
        assert not any(isinstance(e, ConnectionClosed) for e in peer.events)
        await server.stop(grace=1)


async def test_keepalive_closes_a_peer_that_never_answers_pings() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(
            nursery, ServerOptions(keepalive_time=0.2, keepalive_timeout=0.3)
        )
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        # A valid preface and SETTINGS, then silence: no PING ACK ever comes.
        await silent.send_all(ClientConnection().data_to_send())
        started = trio.current_time()
        with trio.fail_after(5):
            try:
                while await silent.receive_some(65536):
                    pass
            finally:
                await trio.aclose_forcefully(silent)
        elapsed = trio.current_time() - started
        assert 0.4 <= elapsed < 3
        await server.stop(grace=1)


async def test_max_connection_idle_sends_goaway() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery, ServerOptions(max_connection_idle=0.3))
        peer = await RawPeer.connect(port)
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == 0
        await server.stop(grace=1)


async def test_max_connection_age_lets_the_channel_reconnect() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(
            nursery, ServerOptions(max_connection_age=0.3, max_connection_age_grace=0.2)
        )
        peers: set[str] = set()
        peer_method = raw_method("/guard.Test/Peer", Cardinality.UNARY_UNARY)

        async def who(request: bytes, context: ServicerContext) -> bytes:
            return context.peer().encode()

        server.add_service(MethodHandler(method=peer_method, func=who))
        async with Channel(f"127.0.0.1:{port}") as channel:
            with trio.fail_after(10):
                for _ in range(12):
                    peers.add((await channel.unary_unary(peer_method, b"")).decode())
                    await trio.sleep(0.1)
        # The server aged the first connection out; the channel opened another.
        assert len(peers) >= 2
        await server.stop(grace=1)


@pytest.mark.parametrize("count", [3])
async def test_settings_flood_gets_goaway(count: int) -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery, ServerOptions(max_control_frames_per_second=50))
        peer = await RawPeer.connect(port)
        # Forged frames: SETTINGS the peer's own state machine never sent.
        settings = SettingsFrame(0, settings={0x4: 65_535 + count}).serialize()
        await peer.flush()
        await peer.stream.send_all(settings * 200)
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        await assert_others_unaffected(port)
        await server.stop(grace=1)


async def test_a_ping_after_each_response_is_not_a_flood() -> None:
    # grpc-go clients send a bandwidth-probe PING with nearly every DATA frame
    # they receive: many pings per second, each following our traffic.
    burst = raw_method("/guard.Test/Burst", Cardinality.UNARY_STREAM)

    async def send_burst(request: bytes, context: ServicerContext) -> None:
        for index in range(400):
            await context.send(b"%d" % index)
            await trio.sleep(0.0005)  # a paced stream: one write per message

    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery, ServerOptions(max_control_frames_per_second=20))
        server.add_service(MethodHandler(method=burst, func=send_burst))
        peer = await RawPeer.connect(port)
        try:
            stream_id = peer.connection.start_call("/guard.Test/Burst")
            peer.connection.send_message(stream_id, b"")
            peer.connection.end_stream(stream_id)
            await peer.flush()
            messages = pings = 0
            with trio.fail_after(10):
                while not any(type(e).__name__ == "CallEnded" for e in peer.events):
                    data = await peer.stream.receive_some(65536)
                    assert data, "the server closed the connection"
                    got_data = False
                    for event in peer.connection.receive_data(data):
                        peer.events.append(event)
                        if type(event).__name__ == "MessageReceived":
                            got_data = True
                            messages += 1
                            peer.connection.consume(stream_id, event.wire_length)
                    if got_data:  # a probe per read that carried DATA, as grpc-go does
                        peer.connection.ping(pings.to_bytes(8, "big"))
                        pings += 1
                    await peer.flush()
            ended = [e for e in peer.events if type(e).__name__ == "CallEnded"]
            assert messages == 400, ended
            assert pings > 20  # more than the flood limit allows without traffic
            assert not any(isinstance(e, ConnectionClosed) for e in peer.events)
        finally:
            await trio.aclose_forcefully(peer.stream)
        await server.stop(grace=1)


async def test_empty_data_frame_flood_gets_goaway() -> None:
    async with trio.open_nursery() as nursery:
        server, port = await start_server(nursery)
        peer = await RawPeer.connect(port)
        stream_id = peer.connection.start_call("/guard.Test/Echo")
        await peer.flush()
        # Forged frames: empty DATA without END_STREAM, which carry nothing.
        await peer.stream.send_all(DataFrame(stream_id, data=b"").serialize() * 300)
        with trio.fail_after(5):
            goaway = await peer.read_until_closed()
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert goaway.debug_data == b"too many empty DATA frames"
        await assert_others_unaffected(port)
        await server.stop(grace=1)
