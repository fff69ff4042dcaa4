"""The client against servers that break HTTP/2 or gRPC, frame by frame.

The cases are :mod:`puregrpc.testing.hostile_cases` (scripts for the raw
server of :mod:`puregrpc.testing.hostile`, shared with
``bench/hostile_servers_grpcio.py``). For every hostile case the call must
end with the status the specs give (RFC 9113; grpc doc/PROTOCOL-HTTP2.md,
statuscodes.md, compression.md, http-grpc-status-mapping.md) and a message
that says what went wrong, within its deadline (at once, where the server's
fault is visible at once), and the client must be fine afterwards: a fresh
call to a good server works. The legal-but-unusual cases must simply succeed.
"""

from __future__ import annotations

import pytest
import trio
from hyperframe.frame import DataFrame, PingFrame, SettingsFrame

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext
from puregrpc.testing.hostile import (
    GRPC_RESPONSE,
    RawPeer,
    Script,
    data_frame,
    grpc_message,
    hostile_server,
    ping_frame,
    settings_frame,
    well_behaved,
    window_update_frame,
)
from puregrpc.testing.hostile_cases import (
    HOSTILE,
    INVALID_PROTOBUF,
    LEGAL,
    SID,
    UNARY,
    HostileCase,
    LegalCase,
    after_request,
)
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoStub
from puregrpc.wire import ConnectionConfig

TICKS = raw_method("/hostile.Test/Ticks", Cardinality.UNARY_STREAM)
UPLOAD = raw_method("/hostile.Test/Upload", Cardinality.STREAM_UNARY)
#: The deadline of every call here.
DEADLINE = 2.0
#: "At once": well inside the deadline.
PROMPT = 1.0


async def _echo(request: bytes, context: ServicerContext) -> bytes:
    return request


@pytest.fixture
async def good_port(nursery: trio.Nursery) -> int:
    """A real puregrpc server: the client must still reach it after each case."""
    server = Server([MethodHandler(method=UNARY, func=_echo)])
    port: int = await nursery.start(server.serve, "127.0.0.1", 0)
    return port


async def _good_call_works(port: int) -> None:
    async with Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(3):
            assert await channel.unary_unary(UNARY, b"fine", timeout=3) == b"fine"


async def _unary_fails(
    script: Script, *, options: ChannelOptions | None = None, request: bytes = b"hello"
) -> tuple[RpcError, float]:
    """Make a unary call to ``script``; return its error and how long it took."""
    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}", options=options) as ch:
        start = trio.current_time()
        with trio.fail_after(DEADLINE + 2), pytest.raises(RpcError) as caught:
            await ch.unary_unary(UNARY, request, timeout=DEADLINE)
        return caught.value, trio.current_time() - start


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in HOSTILE])
async def test_a_hostile_server_fails_the_call_cleanly(case: HostileCase, good_port: int) -> None:
    error, elapsed = await _unary_fails(case.script, request=case.request)
    assert error.code is case.code, error
    assert case.fragment in error.details
    assert elapsed < (PROMPT if case.prompt else DEADLINE + 0.5)
    await _good_call_works(good_port)


async def test_data_beyond_the_connection_window_is_a_flow_control_error(good_port: int) -> None:
    # 70 complete messages of 1000 bytes that nobody consumes: nothing is
    # granted back, and the 66th overflows the 65535-byte connection window.
    options = ChannelOptions(connection=ConnectionConfig(connection_window=65_535))
    message = data_frame(SID, grpc_message(b"m" * 995))
    script = after_request(
        lambda peer: peer.headers(SID, GRPC_RESPONSE),
        *[lambda peer: message] * 70,
        lambda peer: peer.trailers(SID, 0),
    )
    async with (
        hostile_server(script) as port,
        Channel(f"127.0.0.1:{port}", options=options) as channel,
    ):
        with trio.fail_after(DEADLINE + 2):
            call = channel.unary_stream(TICKS, b"go", timeout=DEADLINE)
            await call.initial_metadata()
            await trio.sleep(0.3)  # every byte the server sent has arrived
            received = 0
            with pytest.raises(RpcError) as caught:
                async for _ in call:
                    received += 1
    assert caught.value.code is StatusCode.INTERNAL
    assert "protocol error" in caught.value.details
    assert "window" in caught.value.details.lower()
    assert 0 < received < 70  # what arrived within the window was delivered
    await _good_call_works(good_port)


def _settings_acks(peer: RawPeer) -> int:
    return sum(1 for f in peer.frames if isinstance(f, SettingsFrame) and "ACK" in f.flags)


async def test_a_settings_flood_is_acknowledged_and_the_call_succeeds(good_port: int) -> None:
    # RFC 9113 allows any number of SETTINGS; each one must be acknowledged
    # (§6.5.3). Each ACK is no larger than the frame it answers, so what we
    # queue stays bounded by what the server sends.
    flood = 2000
    all_acked = trio.Event()

    async def script(peer: RawPeer, index: int) -> None:
        await peer.send(settings_frame(), *[settings_frame(MAX_CONCURRENT_STREAMS=100)] * flood)
        request = await peer.read_request()
        await peer.send(peer.response(request.stream_id, b"after the flood"))
        while _settings_acks(peer) < flood + 1 and await peer.next_frame() is not None:
            pass
        if _settings_acks(peer) == flood + 1:
            all_acked.set()
        await peer.drain()

    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(DEADLINE + 2):
            assert await channel.unary_unary(UNARY, b"x", timeout=DEADLINE) == b"after the flood"
            await all_acked.wait()
    await _good_call_works(good_port)


async def test_a_response_that_is_not_valid_protobuf_is_internal(good_port: int) -> None:
    async with hostile_server(INVALID_PROTOBUF) as port, Channel(f"127.0.0.1:{port}") as channel:
        stub = EchoStub(channel)
        with trio.fail_after(DEADLINE + 2), pytest.raises(RpcError) as caught:
            await stub.Unary(echo_pb2.EchoRequest(message="hi"), timeout=DEADLINE)
    assert caught.value.code is StatusCode.INTERNAL
    assert "could not deserialize a response (DecodeError" in caught.value.details
    await _good_call_works(good_port)


# ------------------------------------------- legal but unusual: must work


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in LEGAL])
async def test_a_legal_but_unusual_server_is_understood(case: LegalCase, good_port: int) -> None:
    async def first_then_good(peer: RawPeer, index: int) -> None:
        await (case.script if index == 0 else well_behaved)(peer, index)

    async with hostile_server(first_then_good) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(DEADLINE + 2):
            assert await channel.unary_unary(UNARY, b"x", timeout=DEADLINE) == case.expected
            # The same channel goes on (on a new connection after a GOAWAY).
            assert await channel.unary_unary(UNARY, b"again", timeout=DEADLINE) == b"again"
    await _good_call_works(good_port)


def _window_script(frame_sizes: list[int], *, widen_after_first: bool) -> Script:
    """A server whose SETTINGS give each stream a 1-byte window, granted back byte by byte.

    With ``widen_after_first``, a second SETTINGS raises the initial window
    to 65535 after the first DATA byte instead (RFC 9113 §6.9.2: the open
    stream's window grows by the difference).
    """

    async def script(peer: RawPeer, index: int) -> None:
        await peer.send(settings_frame(INITIAL_WINDOW_SIZE=1))
        request = await peer.read_request(until_end=False)
        sid = request.stream_id
        await peer.send(peer.headers(sid, GRPC_RESPONSE))
        body = bytearray()
        while True:
            frame = await peer.next_frame()
            assert frame is not None
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                await peer.send(settings_frame(ack=True))
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                await peer.send(ping_frame(frame.opaque_data, ack=True))
            elif isinstance(frame, DataFrame) and frame.stream_id == sid:
                body += frame.data
                if frame.data:
                    frame_sizes.append(len(frame.data))
                if "END_STREAM" in frame.flags:
                    break
                if widen_after_first and len(frame_sizes) == 1:
                    await peer.send(settings_frame(INITIAL_WINDOW_SIZE=65_535))
                elif not widen_after_first or len(frame_sizes) > 1:
                    await peer.send(window_update_frame(sid, len(frame.data)))
        await peer.send(data_frame(sid, grpc_message(b"%d" % (len(body) - 5))))
        await peer.send(peer.trailers(sid, 0))
        await peer.drain()

    return script


@pytest.mark.parametrize("widen_after_first", [False, True], ids=["1-byte window", "widened"])
async def test_a_tiny_initial_window_and_a_change_of_it_mid_stream(
    widen_after_first: bool, good_port: int
) -> None:
    frame_sizes: list[int] = []
    script = _window_script(frame_sizes, widen_after_first=widen_after_first)
    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(DEADLINE + 3):
            call = channel.stream_unary(UPLOAD, timeout=DEADLINE + 2)
            await call.initial_metadata()  # the server's SETTINGS came first
            await call.send(b"u" * 100)
            await call.done_writing()
            assert await call == b"100"
    assert sum(frame_sizes) == 105  # the prefix and the message
    if widen_after_first:
        assert frame_sizes[0] == 1 and max(frame_sizes) > 1
    else:
        assert set(frame_sizes) == {1}  # never more than the window allowed
    await _good_call_works(good_port)
