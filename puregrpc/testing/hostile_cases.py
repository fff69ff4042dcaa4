"""The hostile-server cases: scripts for :mod:`puregrpc.testing.hostile` and what a client must do.

Each :class:`HostileCase` is a server that breaks HTTP/2 or gRPC on the
first call of a connection (stream 1), with the status the specs give for
it (RFC 9113; grpc doc/PROTOCOL-HTTP2.md, statuscodes.md, compression.md,
http-grpc-status-mapping.md), a fragment of puregrpc's message, and whether
the failure is visible at once (so the call must end well inside its
deadline). Each :class:`LegalCase` is legal but unusual and must simply
work. The call is a unary one to ``/hostile.Test/Unary`` (:data:`UNARY`,
raw bytes) and the scripts echo nothing in particular: any gRPC client can be
tried against them (puregrpc's tests in ``tests/client/test_hostile_servers.py``,
grpcio's client in ``bench/hostile_servers_grpcio.py``).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass

import h2.errors
import trio
from hpack.hpack import encode_integer

from ..runtime import Cardinality, raw_method
from ..wire import StatusCode
from .hostile import (
    GRPC_RESPONSE,
    RawPeer,
    Script,
    continuation_frame,
    data_frame,
    goaway_frame,
    grpc_message,
    headers_frame,
    ping_frame,
    raw_frame,
    rst_stream_frame,
    serve_requests,
    settings_frame,
    window_update_frame,
)

__all__ = [
    "HOSTILE",
    "INVALID_PROTOBUF",
    "LEGAL",
    "SID",
    "UNARY",
    "HostileCase",
    "LegalCase",
    "after_request",
]

#: The method every case is called on (raw bytes in and out).
UNARY = raw_method("/hostile.Test/Unary", Cardinality.UNARY_UNARY)
#: The first call's stream, the one the scripts break.
SID = 1

H2 = h2.errors.ErrorCodes


@dataclass(frozen=True, slots=True, kw_only=True)
class HostileCase:
    """A server that breaks the protocol, and what the client must make of it."""

    #: A few words naming the fault (a test id, a table row).
    name: str
    #: The server's script.
    script: Script
    #: The status the specs give for the call.
    code: StatusCode
    #: A fragment of puregrpc's status message.
    fragment: str
    #: The fault is visible at once: the call must fail well before its deadline.
    prompt: bool
    #: The request the call sends (raw bytes).
    request: bytes = b"hello"


@dataclass(frozen=True, slots=True, kw_only=True)
class LegalCase:
    """A server that is legal but unusual: the call must succeed with ``expected``."""

    #: A few words naming the case.
    name: str
    #: The server's script (the first connection's; later ones may be well behaved).
    script: Script
    #: The response the call must get.
    expected: bytes


# ------------------------------------------------------------ scripts


def after_request(
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


async def _window_never_opens(peer: RawPeer, index: int) -> None:
    # A stream window of 0 and never a WINDOW_UPDATE: the request cannot go.
    await peer.send(settings_frame(INITIAL_WINDOW_SIZE=0))
    await peer.drain()


async def _stops_reading(peer: RawPeer, index: int) -> None:
    # Windows wide open, then the socket is never read again: the client's
    # sends fill the socket buffers and wait.
    await peer.send(
        settings_frame(INITIAL_WINDOW_SIZE=2**31 - 1),
        window_update_frame(0, 2**31 - 1 - 65_535),
    )
    await trio.sleep_forever()


def _gzip_bomb_frames(peer: RawPeer) -> bytes:
    # 32 MiB of zeros in 33 KB (inside the RFC's first 64 KiB window): far
    # over the 4 MiB receive limit once inflated.
    bomb = grpc_message(gzip.compress(bytes(32 << 20), compresslevel=9), compressed=True)
    return b"".join(data_frame(SID, bomb[i : i + 16_000]) for i in range(0, len(bomb), 16_000))


def _over_the_limit(peer: RawPeer) -> bytes:
    # A prefix of 4 MiB + 1 and the first bytes of such a message.
    return data_frame(SID, grpc_message(bytes(9000), length=(4 << 20) + 1))


def _trailers_only(
    status: bytes, content_type: bytes = b"text/plain"
) -> Callable[[RawPeer], bytes]:
    fields = [(b":status", status), (b"content-type", content_type)]
    return _response_with(fields, end_stream=True)


#: (case, script, code, message fragment, prompt: fails well before the deadline)
#: Servers that break HTTP/2 or gRPC, in the order of the issue's list.
HOSTILE: list[HostileCase] = [
    HostileCase(
        name="garbage preface",
        script=_garbage_preface,
        code=StatusCode.UNAVAILABLE,
        fragment="an HTTP/1.x response",
        prompt=True,
    ),
    HostileCase(
        name="never sends SETTINGS",
        script=_silent,
        code=StatusCode.DEADLINE_EXCEEDED,
        fragment="deadline exceeded",
        prompt=False,
    ),
    HostileCase(
        name="PING first",
        script=_ping_first,
        code=StatusCode.UNAVAILABLE,
        fragment="first frame must be SETTINGS",
        prompt=True,
    ),
    HostileCase(
        name="DATA over our max frame size",
        script=after_request(_headers, _const(raw_frame(0x0, 0, SID, b"\0" * 20_000))),
        code=StatusCode.INTERNAL,
        fragment="overlong frame",
        prompt=True,
    ),
    HostileCase(
        name="window update overflowing the connection window",
        script=after_request(_const(window_update_frame(0, 2**31 - 1))),
        code=StatusCode.INTERNAL,
        fragment="protocol error",
        prompt=True,
    ),
    HostileCase(
        name="header block never finished",
        script=after_request(_unfinished_block),
        code=StatusCode.DEADLINE_EXCEEDED,
        fragment="deadline exceeded",
        prompt=False,
    ),
    HostileCase(
        name="header block interrupted by another frame",
        script=after_request(_unfinished_block, _const(ping_frame())),
        code=StatusCode.INTERNAL,
        fragment="Invalid frame during header block",
        prompt=True,
    ),
    HostileCase(
        name="CONTINUATION flood",
        script=after_request(_continuation_flood),
        code=StatusCode.INTERNAL,
        fragment="Too many continuation frames",
        prompt=True,
    ),
    HostileCase(
        name="HPACK bomb",
        script=after_request(_hpack_bomb),
        code=StatusCode.INTERNAL,
        fragment="Oversized header block",
        prompt=True,
    ),
    HostileCase(
        name="response metadata over our limit",
        script=after_request(_response_with([*GRPC_RESPONSE, (b"x-big", b"a" * 20_000)])),
        code=StatusCode.RESOURCE_EXHAUSTED,
        fragment="over the limit of 16384 bytes",
        prompt=True,
    ),
    HostileCase(
        name="GOAWAY then close with the call in flight",
        script=after_request(_const(goaway_frame(SID)), close=True),
        code=StatusCode.UNAVAILABLE,
        fragment="connection closed",
        prompt=True,
    ),
    HostileCase(
        name="GOAWAY below the call's stream",
        script=after_request(_const(goaway_frame(0))),
        code=StatusCode.UNAVAILABLE,
        fragment="before processing the call",
        prompt=True,
    ),
    HostileCase(
        name="RST_STREAM(CANCEL) mid-response",
        script=after_request(_headers, _const(rst_stream_frame(SID, H2.CANCEL))),
        code=StatusCode.CANCELLED,
        fragment="stream reset by peer with error code CANCEL (8)",
        prompt=True,
    ),
    HostileCase(
        name="RST_STREAM(INTERNAL_ERROR) mid-response",
        script=after_request(
            _headers, _message(b"a"), _const(rst_stream_frame(SID, H2.INTERNAL_ERROR))
        ),
        code=StatusCode.INTERNAL,
        fragment="INTERNAL_ERROR (2)",
        prompt=True,
    ),
    HostileCase(
        name="RST_STREAM(REFUSED_STREAM)",
        script=_refuse_streams(2),
        code=StatusCode.UNAVAILABLE,
        fragment="REFUSED_STREAM (7)",
        prompt=True,
    ),
    HostileCase(
        name="TCP reset mid-stream",
        script=_tcp_reset,
        code=StatusCode.UNAVAILABLE,
        fragment="connection lost (Connection reset by peer)",
        prompt=True,
    ),
    HostileCase(
        name="4 GiB length prefix",
        script=after_request(_headers, _message(b"", length=2**32 - 1)),
        code=StatusCode.RESOURCE_EXHAUSTED,
        fragment="4294967295",
        prompt=True,
    ),
    HostileCase(
        name="truncated message at END_STREAM",
        script=after_request(
            _headers, _const(data_frame(SID, grpc_message(b"abc", length=10), end_stream=True))
        ),
        code=StatusCode.INTERNAL,
        fragment="stream ended inside a gRPC message",
        prompt=True,
    ),
    HostileCase(
        name="compressed flag without grpc-encoding",
        script=after_request(_headers, _message(b"xx", compressed=True), _ok_trailers),
        code=StatusCode.INTERNAL,
        fragment="no grpc-encoding was negotiated",
        prompt=True,
    ),
    HostileCase(
        name="unknown grpc-encoding",
        script=after_request(
            _response_with([*GRPC_RESPONSE, (b"grpc-encoding", b"snappy-x")]),
            _message(b"xx", compressed=True),
            _ok_trailers,
        ),
        code=StatusCode.INTERNAL,
        fragment="snappy-x",
        prompt=True,
    ),
    HostileCase(
        name="trailers without grpc-status",
        script=after_request(
            _headers, _message(b"a"), _response_with([(b"x-a", b"1")], end_stream=True)
        ),
        code=StatusCode.UNKNOWN,
        fragment="missing grpc-status",
        prompt=True,
    ),
    HostileCase(
        name="malformed grpc-status",
        script=after_request(
            _headers, _message(b"a"), _response_with([(b"grpc-status", b"OK")], end_stream=True)
        ),
        code=StatusCode.UNKNOWN,
        fragment="malformed grpc-status",
        prompt=True,
    ),
    HostileCase(
        name=":status 503",
        script=after_request(_trailers_only(b"503")),
        code=StatusCode.UNAVAILABLE,
        fragment="HTTP status 503",
        prompt=True,
    ),
    HostileCase(
        name=":status 429",
        script=after_request(_trailers_only(b"429")),
        code=StatusCode.UNAVAILABLE,
        fragment="HTTP status 429",
        prompt=True,
    ),
    HostileCase(
        name=":status 502 with a body",
        script=after_request(
            _response_with([(b":status", b"502"), (b"content-type", b"text/html")]),
            _const(data_frame(SID, b"<html>bad gateway</html>", end_stream=True)),
        ),
        code=StatusCode.UNAVAILABLE,
        fragment="HTTP status 502",
        prompt=True,
    ),
    HostileCase(
        name="content-type text/html",
        script=after_request(
            _response_with([(b":status", b"200"), (b"content-type", b"text/html")]),
            _const(data_frame(SID, b"<html>hello</html>", end_stream=True)),
        ),
        code=StatusCode.UNKNOWN,
        fragment="not a gRPC server",
        prompt=True,
    ),
    HostileCase(
        name="upper-case header name",
        script=after_request(
            _response_with([(b":status", b"200"), (b"Content-Type", b"application/grpc")])
        ),
        code=StatusCode.INTERNAL,
        fragment="Content-Type",
        prompt=True,
    ),
    HostileCase(
        name="a window that never opens",
        script=_window_never_opens,
        code=StatusCode.DEADLINE_EXCEEDED,
        fragment="deadline exceeded",
        prompt=False,
    ),
    HostileCase(
        name="a server that stops reading (8 MiB request)",
        script=_stops_reading,
        code=StatusCode.DEADLINE_EXCEEDED,
        fragment="deadline exceeded",
        prompt=False,
        request=bytes(8 << 20),
    ),
    HostileCase(
        name="a message over the receive limit (4 MiB + 1)",
        script=after_request(_headers, _over_the_limit),
        code=StatusCode.RESOURCE_EXHAUSTED,
        fragment="4194305",
        prompt=True,
    ),
    HostileCase(
        name="a gzip bomb (32 MiB of zeros in 33 KB)",
        script=after_request(
            _response_with([*GRPC_RESPONSE, (b"grpc-encoding", b"gzip")]),
            _gzip_bomb_frames,
            _ok_trailers,
        ),
        code=StatusCode.RESOURCE_EXHAUSTED,
        fragment="inflates to more than the limit",
        prompt=True,
    ),
]


#: A server answering four 0xff bytes (no protobuf message), then OK:
#: a client that decodes protobuf must fail the call INTERNAL.
INVALID_PROTOBUF: Script = after_request(_headers, _message(b"\xff\xff\xff\xff"), _ok_trailers)


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


def _ping_flood(peer: RawPeer) -> bytes:
    return b"".join(ping_frame(b"%08d" % index) for index in range(2000))


def _empty_data_flood(peer: RawPeer) -> bytes:
    message = grpc_message(b"after the empty frames")
    return data_frame(SID, message[:3]) + data_frame(SID, b"") * 5000 + data_frame(SID, message[3:])


#: Legal but unusual servers: each call must succeed.
LEGAL: list[LegalCase] = [
    LegalCase(
        name="1-byte DATA frames",
        script=after_request(_headers, _one_byte_frames, _ok_trailers, serve_on=True),
        expected=b"tiny frames",
    ),
    LegalCase(
        name="a PING flood (2,000) before the response",
        script=after_request(
            _ping_flood, _headers, _message(b"pinged"), _ok_trailers, serve_on=True
        ),
        expected=b"pinged",
    ),
    LegalCase(
        name="5,000 empty DATA frames inside a message",
        script=after_request(_headers, _empty_data_flood, _ok_trailers, serve_on=True),
        expected=b"after the empty frames",
    ),
    LegalCase(
        name="padded frames",
        script=after_request(_padded, serve_on=True),
        expected=b"padded",
    ),
    LegalCase(
        name="unknown frames and PINGs interleaved",
        script=after_request(_with_noise, serve_on=True),
        expected=b"through the noise",
    ),
    LegalCase(
        name="GOAWAY(NO_ERROR) right after the response",
        script=after_request(
            _headers,
            _message(b"last words"),
            _ok_trailers,
            _const(goaway_frame(SID, H2.NO_ERROR)),
            close=True,
        ),
        expected=b"last words",
    ),
]
