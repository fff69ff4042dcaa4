"""The client against servers that break HTTP/2 or gRPC, frame by frame.

Each case is a script for the raw server of :mod:`hostile_server_support`.
For every hostile case the call must end with the status the specs give
(RFC 9113; grpc doc/PROTOCOL-HTTP2.md, statuscodes.md, compression.md,
http-grpc-status-mapping.md) and a message that says what went wrong, within
its deadline (at once, where the server's fault is visible at once), and the
client must be fine afterwards: a fresh call to a good server works. The
legal-but-unusual cases at the end must simply succeed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import h2.errors
import pytest
import trio
from hostile_server_support import (
    GRPC_RESPONSE,
    RawPeer,
    continuation_frame,
    data_frame,
    goaway_frame,
    grpc_message,
    headers_frame,
    hostile_server,
    ping_frame,
    raw_frame,
    rst_stream_frame,
    serve_requests,
    settings_frame,
    well_behaved,
    window_update_frame,
)
from hpack.hpack import encode_integer
from hyperframe.frame import DataFrame, PingFrame, SettingsFrame

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel, ChannelOptions
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.server import MethodHandler, Server, ServicerContext
from puregrpc.testing.protos import echo_pb2
from puregrpc.testing.protos.echo_puregrpc import EchoStub
from puregrpc.wire import ConnectionConfig

UNARY = raw_method("/hostile.Test/Unary", Cardinality.UNARY_UNARY)
TICKS = raw_method("/hostile.Test/Ticks", Cardinality.UNARY_STREAM)
UPLOAD = raw_method("/hostile.Test/Upload", Cardinality.STREAM_UNARY)
#: The deadline of every call here.
DEADLINE = 2.0
#: "At once": well inside the deadline.
PROMPT = 1.0
SID = 1  # the first call's stream

Script = Callable[[RawPeer, int], Awaitable[None]]


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
    script: Script, *, options: ChannelOptions | None = None
) -> tuple[RpcError, float]:
    """Make a unary call to ``script``; return its error and how long it took."""
    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}", options=options) as ch:
        start = trio.current_time()
        with trio.fail_after(DEADLINE + 2), pytest.raises(RpcError) as caught:
            await ch.unary_unary(UNARY, b"hello", timeout=DEADLINE)
        return caught.value, trio.current_time() - start


# ------------------------------------------------------------ scripts


def _after_request(
    *chunks: Callable[[RawPeer], bytes], close: bool = False, serve_on: bool = False
) -> Script:
    """A script: our SETTINGS, read the request, send ``chunks`` (built then), drain.

    ``close`` closes our side of the connection first; ``serve_on`` answers
    further requests on it as a good server would.
    """

    async def script(peer: RawPeer, index: int) -> None:
        await peer.send(settings_frame())
        await peer.read_request()
        await peer.send(*(chunk(peer) for chunk in chunks))
        if close:
            # A FIN, not a RST: the client's unread bytes are read and dropped.
            await peer.stream.send_eof()
        elif serve_on:
            await serve_requests(peer)
        await peer.drain()

    return script


def _refuse_streams(count: int) -> Script:
    """A script: our SETTINGS, then RST_STREAM(REFUSED_STREAM) for ``count`` requests."""

    async def script(peer: RawPeer, index: int) -> None:
        await peer.send(settings_frame())
        for _ in range(count):
            request = await peer.read_request()
            await peer.send(rst_stream_frame(request.stream_id, H2.REFUSED_STREAM))
        await peer.drain()

    return script


def _headers(peer: RawPeer) -> bytes:
    return peer.headers(SID, GRPC_RESPONSE)


def _message(
    payload: bytes, *, compressed: bool = False, length: int | None = None
) -> Callable[[RawPeer], bytes]:
    message = grpc_message(payload, compressed=compressed, length=length)
    return lambda peer: data_frame(SID, message)


def _ok_trailers(peer: RawPeer) -> bytes:
    return peer.trailers(SID, 0)


def _const(data: bytes) -> Callable[[RawPeer], bytes]:
    return lambda peer: data


def _response_with(
    headers: list[tuple[bytes, bytes]], **kwargs: bool
) -> Callable[[RawPeer], bytes]:
    return lambda peer: peer.headers(SID, headers, **kwargs)


async def _garbage_preface(peer: RawPeer, index: int) -> None:
    await peer.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await peer.drain()


async def _silent(peer: RawPeer, index: int) -> None:
    await peer.drain()


async def _ping_first(peer: RawPeer, index: int) -> None:
    await peer.send(ping_frame(), settings_frame())
    await peer.drain()


def _hpack_bomb(peer: RawPeer) -> bytes:
    # One 4000-byte header into the dynamic table, then 5000 one-byte
    # references to it: a 9 KB block that decodes to 20 MB.
    block = peer.block(GRPC_RESPONSE)
    block += b"\x40\x06x-bomb" + bytes(encode_integer(4000, 7)) + b"a" * 4000
    block += b"\xbe" * 5000  # indexed field 62: the newest dynamic entry
    return headers_frame(SID, block)


def _unfinished_block(peer: RawPeer) -> bytes:
    return headers_frame(SID, peer.block(GRPC_RESPONSE)[:2], end_headers=False)


def _continuation_flood(peer: RawPeer) -> bytes:
    block = peer.block(GRPC_RESPONSE)
    frames = headers_frame(SID, block[:1], end_headers=False)
    return frames + b"".join(continuation_frame(SID, b"") for _ in range(200))


async def _tcp_reset(peer: RawPeer, index: int) -> None:
    await peer.send(settings_frame())
    await peer.read_request()
    await peer.send(_headers(peer), data_frame(SID, grpc_message(b"partial")[:7]))
    await trio.sleep(0.05)
    peer.abort_with_reset()


def _trailers_only(
    status: bytes, content_type: bytes = b"text/plain"
) -> Callable[[RawPeer], bytes]:
    fields = [(b":status", status), (b"content-type", content_type)]
    return _response_with(fields, end_stream=True)


H2 = h2.errors.ErrorCodes

#: (case, script, code, message fragment, prompt: fails well before the deadline)
HOSTILE: list[tuple[str, Script, StatusCode, str, bool]] = [
    ("garbage preface", _garbage_preface, StatusCode.UNAVAILABLE, "an HTTP/1.x response", True),
    ("never sends SETTINGS", _silent, StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", False),
    ("PING first", _ping_first, StatusCode.UNAVAILABLE, "first frame must be SETTINGS", True),
    (
        "DATA over our max frame size",
        _after_request(_headers, _const(raw_frame(0x0, 0, SID, b"\0" * 20_000))),
        StatusCode.INTERNAL,
        "overlong frame",
        True,
    ),
    (
        "window update overflowing the connection window",
        _after_request(_const(window_update_frame(0, 2**31 - 1))),
        StatusCode.INTERNAL,
        "protocol error",
        True,
    ),
    (
        "header block never finished",
        _after_request(_unfinished_block),
        StatusCode.DEADLINE_EXCEEDED,
        "deadline exceeded",
        False,
    ),
    (
        "header block interrupted by another frame",
        _after_request(_unfinished_block, _const(ping_frame())),
        StatusCode.INTERNAL,
        "Invalid frame during header block",
        True,
    ),
    (
        "CONTINUATION flood",
        _after_request(_continuation_flood),
        StatusCode.INTERNAL,
        "Too many continuation frames",
        True,
    ),
    (
        "HPACK bomb",
        _after_request(_hpack_bomb),
        StatusCode.INTERNAL,
        "Oversized header block",
        True,
    ),
    (
        "response metadata over our limit",
        _after_request(_response_with([*GRPC_RESPONSE, (b"x-big", b"a" * 20_000)])),
        StatusCode.RESOURCE_EXHAUSTED,
        "over the limit of 16384 bytes",
        True,
    ),
    (
        "GOAWAY then close with the call in flight",
        _after_request(_const(goaway_frame(SID)), close=True),
        StatusCode.UNAVAILABLE,
        "connection closed",
        True,
    ),
    (
        "GOAWAY below the call's stream",
        _after_request(_const(goaway_frame(0))),
        StatusCode.UNAVAILABLE,
        "before processing the call",
        True,
    ),
    (
        "RST_STREAM(CANCEL) mid-response",
        _after_request(_headers, _const(rst_stream_frame(SID, H2.CANCEL))),
        StatusCode.CANCELLED,
        "stream reset by peer with error code CANCEL (8)",
        True,
    ),
    (
        "RST_STREAM(INTERNAL_ERROR) mid-response",
        _after_request(_headers, _message(b"a"), _const(rst_stream_frame(SID, H2.INTERNAL_ERROR))),
        StatusCode.INTERNAL,
        "INTERNAL_ERROR (2)",
        True,
    ),
    (
        "RST_STREAM(REFUSED_STREAM)",
        # Refused calls are retried once, transparently: refuse that one too.
        _refuse_streams(2),
        StatusCode.UNAVAILABLE,
        "REFUSED_STREAM (7)",
        True,
    ),
    (
        "TCP reset mid-stream",
        _tcp_reset,
        StatusCode.UNAVAILABLE,
        "connection lost (Connection reset by peer)",
        True,
    ),
    (
        "4 GiB length prefix",
        _after_request(_headers, _message(b"", length=2**32 - 1)),
        StatusCode.RESOURCE_EXHAUSTED,
        "4294967295",
        True,
    ),
    (
        "truncated message at END_STREAM",
        _after_request(
            _headers, _const(data_frame(SID, grpc_message(b"abc", length=10), end_stream=True))
        ),
        StatusCode.INTERNAL,
        "stream ended inside a gRPC message",
        True,
    ),
    (
        "compressed flag without grpc-encoding",
        _after_request(_headers, _message(b"xx", compressed=True), _ok_trailers),
        StatusCode.INTERNAL,
        "no grpc-encoding was negotiated",
        True,
    ),
    (
        "unknown grpc-encoding",
        _after_request(
            _response_with([*GRPC_RESPONSE, (b"grpc-encoding", b"snappy-x")]),
            _message(b"xx", compressed=True),
            _ok_trailers,
        ),
        StatusCode.INTERNAL,
        "snappy-x",
        True,
    ),
    (
        "trailers without grpc-status",
        _after_request(_headers, _message(b"a"), _response_with([(b"x-a", b"1")], end_stream=True)),
        StatusCode.UNKNOWN,
        "missing grpc-status",
        True,
    ),
    (
        "malformed grpc-status",
        _after_request(
            _headers, _message(b"a"), _response_with([(b"grpc-status", b"OK")], end_stream=True)
        ),
        StatusCode.UNKNOWN,
        "malformed grpc-status",
        True,
    ),
    (
        ":status 503",
        _after_request(_trailers_only(b"503")),
        StatusCode.UNAVAILABLE,
        "HTTP status 503",
        True,
    ),
    (
        ":status 429",
        _after_request(_trailers_only(b"429")),
        StatusCode.UNAVAILABLE,
        "HTTP status 429",
        True,
    ),
    (
        ":status 502 with a body",
        _after_request(
            _response_with([(b":status", b"502"), (b"content-type", b"text/html")]),
            _const(data_frame(SID, b"<html>bad gateway</html>", end_stream=True)),
        ),
        StatusCode.UNAVAILABLE,
        "HTTP status 502",
        True,
    ),
    (
        "content-type text/html",
        _after_request(
            _response_with([(b":status", b"200"), (b"content-type", b"text/html")]),
            _const(data_frame(SID, b"<html>hello</html>", end_stream=True)),
        ),
        StatusCode.UNKNOWN,
        "not a gRPC server",
        True,
    ),
    (
        "upper-case header name",
        _after_request(
            _response_with([(b":status", b"200"), (b"Content-Type", b"application/grpc")])
        ),
        StatusCode.INTERNAL,
        "Content-Type",
        True,
    ),
]


@pytest.mark.parametrize(
    ("script", "code", "fragment", "prompt"),
    [pytest.param(*case[1:], id=case[0]) for case in HOSTILE],
)
async def test_a_hostile_server_fails_the_call_cleanly(
    script: Script, code: StatusCode, fragment: str, prompt: bool, good_port: int
) -> None:
    error, elapsed = await _unary_fails(script)
    assert error.code is code, error
    assert fragment in error.details
    assert elapsed < (PROMPT if prompt else DEADLINE + 0.5)
    await _good_call_works(good_port)


async def test_data_beyond_the_connection_window_is_a_flow_control_error(good_port: int) -> None:
    # 70 complete messages of 1000 bytes that nobody consumes: nothing is
    # granted back, and the 66th overflows the 65535-byte connection window.
    options = ChannelOptions(connection=ConnectionConfig(connection_window=65_535))
    flood = [_message(b"m" * 995) for _ in range(70)]
    script = _after_request(_headers, *flood, _ok_trailers)
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
    script = _after_request(_headers, _message(b"\xff\xff\xff\xff"), _ok_trailers)
    async with hostile_server(script) as port, Channel(f"127.0.0.1:{port}") as channel:
        stub = EchoStub(channel)
        with trio.fail_after(DEADLINE + 2), pytest.raises(RpcError) as caught:
            await stub.Unary(echo_pb2.EchoRequest(message="hi"), timeout=DEADLINE)
    assert caught.value.code is StatusCode.INTERNAL
    assert "could not deserialize a response (DecodeError" in caught.value.details
    await _good_call_works(good_port)


# ------------------------------------------- legal but unusual: must work


def _one_byte_frames(peer: RawPeer) -> bytes:
    message = grpc_message(b"tiny frames")
    return b"".join(data_frame(SID, message[i : i + 1]) for i in range(len(message)))


def _padded(peer: RawPeer) -> bytes:
    block = peer.block(GRPC_RESPONSE)
    trailers = peer.block([(b"grpc-status", b"0")])
    return (
        headers_frame(SID, block, pad=17)
        + data_frame(SID, grpc_message(b"padded"), pad=255)
        + data_frame(SID, b"", pad=3)
        + headers_frame(SID, trailers, end_stream=True, pad=1)
    )


def _with_noise(peer: RawPeer) -> bytes:
    noise = (
        raw_frame(0xFA, 0, 0, b"unknown on the connection")
        + ping_frame(b"noise--1")
        + raw_frame(0xFB, 0xFF, SID, b"unknown on the stream")
    )
    message = grpc_message(b"through the noise")
    return (
        noise
        + _headers(peer)
        + noise
        + data_frame(SID, message[:4])
        + noise
        + data_frame(SID, message[4:])
        + noise
        + peer.trailers(SID, 0)
        + noise
    )


LEGAL: list[tuple[str, Script, bytes]] = [
    (
        "1-byte DATA frames",
        _after_request(_headers, _one_byte_frames, _ok_trailers, serve_on=True),
        b"tiny frames",
    ),
    ("padded frames", _after_request(_padded, serve_on=True), b"padded"),
    (
        "unknown frames and PINGs interleaved",
        _after_request(_with_noise, serve_on=True),
        b"through the noise",
    ),
    (
        "GOAWAY(NO_ERROR) right after the response",
        _after_request(
            _headers,
            _message(b"last words"),
            _ok_trailers,
            _const(goaway_frame(SID, H2.NO_ERROR)),
            close=True,
        ),
        b"last words",
    ),
]


@pytest.mark.parametrize(
    ("script", "expected"), [pytest.param(*case[1:], id=case[0]) for case in LEGAL]
)
async def test_a_legal_but_unusual_server_is_understood(
    script: Script, expected: bytes, good_port: int
) -> None:
    async def first_then_good(peer: RawPeer, index: int) -> None:
        await (script if index == 0 else well_behaved)(peer, index)

    async with hostile_server(first_then_good) as port, Channel(f"127.0.0.1:{port}") as channel:
        with trio.fail_after(DEADLINE + 2):
            assert await channel.unary_unary(UNARY, b"x", timeout=DEADLINE) == expected
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
