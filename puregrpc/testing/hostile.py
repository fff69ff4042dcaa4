"""A tiny scripted HTTP/2 server for client tests: raw frames on a plain trio socket.

Built from hyperframe (frames) and hpack (header blocks), the two libraries h2
itself stands on, and nothing else of puregrpc: each *script* decides every
byte the server sends, so it can misbehave in ways no real server would.

``async with hostile_server(script) as port:`` listens on 127.0.0.1 and runs
``await script(peer, index)`` for each connection accepted (``index`` counts
connections from 0), with a :class:`RawPeer` to read the client's frames and
send raw bytes. The frame builders below return bytes, so a script can also
send frames no library would build (oversized, unknown, truncated).
:mod:`puregrpc.testing.hostile_cases` holds the scripted cases that
puregrpc's own tests and ``bench/hostile_servers_grpcio.py`` both run.
Any client can be pointed at these servers: nothing here assumes the
client is puregrpc's (a request's headers are whatever it sent).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import hpack
import trio
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

#: RFC 9113 §3.4: what every client sends first.
CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: The usual response headers of a gRPC server.
GRPC_RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]

#: What a hostile server runs for each connection: ``await script(peer, index)``.
Script = Callable[["RawPeer", int], Awaitable[None]]

__all__ = [
    "CLIENT_PREFACE",
    "GRPC_RESPONSE",
    "RawPeer",
    "Request",
    "Script",
    "continuation_frame",
    "data_frame",
    "goaway_frame",
    "grpc_message",
    "headers_frame",
    "hostile_server",
    "ping_frame",
    "raw_frame",
    "rst_stream_frame",
    "serve_requests",
    "settings_frame",
    "well_behaved",
    "window_update_frame",
]


# ----------------------------------------------------------------- frames


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """Any frame, byte by byte: its header says ``len(payload)``."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes([frame_type, flags])
        + (stream_id.to_bytes(4, "big") + payload)
    )


def settings_frame(*, ack: bool = False, **values: int) -> bytes:
    """SETTINGS; ``values`` by hyperframe's names (``INITIAL_WINDOW_SIZE=1``)."""
    frame = SettingsFrame(0)
    if ack:
        frame.flags.add("ACK")
    for name, value in values.items():
        frame.settings[getattr(SettingsFrame, name)] = value
    return bytes(frame.serialize())


def data_frame(stream_id: int, payload: bytes, *, end_stream: bool = False, pad: int = 0) -> bytes:
    """DATA, optionally padded with ``pad`` bytes (``pad`` > 0 adds the PADDED flag)."""
    frame = DataFrame(stream_id, data=payload)
    if end_stream:
        frame.flags.add("END_STREAM")
    if pad:
        frame.flags.add("PADDED")
        frame.pad_length = pad
    return bytes(frame.serialize())


def headers_frame(
    stream_id: int,
    block: bytes,
    *,
    end_stream: bool = False,
    end_headers: bool = True,
    pad: int = 0,
) -> bytes:
    """HEADERS carrying an already encoded header ``block``."""
    frame = HeadersFrame(stream_id, data=block)
    if end_stream:
        frame.flags.add("END_STREAM")
    if end_headers:
        frame.flags.add("END_HEADERS")
    if pad:
        frame.flags.add("PADDED")
        frame.pad_length = pad
    return bytes(frame.serialize())


def continuation_frame(stream_id: int, block: bytes, *, end_headers: bool = False) -> bytes:
    """CONTINUATION of a header block."""
    frame = ContinuationFrame(stream_id, data=block)
    if end_headers:
        frame.flags.add("END_HEADERS")
    return bytes(frame.serialize())


def ping_frame(data: bytes = b"hostile!", *, ack: bool = False) -> bytes:
    """PING with 8 bytes of opaque data."""
    frame = PingFrame(0)
    frame.opaque_data = data
    if ack:
        frame.flags.add("ACK")
    return bytes(frame.serialize())


def goaway_frame(last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> bytes:
    """GOAWAY."""
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = error_code
    frame.additional_data = debug
    return bytes(frame.serialize())


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    """RST_STREAM."""
    frame = RstStreamFrame(stream_id)
    frame.error_code = error_code
    return bytes(frame.serialize())


def window_update_frame(stream_id: int, increment: int) -> bytes:
    """WINDOW_UPDATE (``increment`` is sent as given, even if illegal)."""
    return raw_frame(0x8, 0, stream_id, (increment & 0x7FFFFFFF).to_bytes(4, "big"))


def grpc_message(payload: bytes, *, compressed: bool = False, length: int | None = None) -> bytes:
    """A length-prefixed gRPC message; ``length`` overrides the prefix (a lie)."""
    prefix_length = len(payload) if length is None else length
    return bytes([1 if compressed else 0]) + struct.pack(">I", prefix_length) + payload


# ------------------------------------------------------------------ the peer


@dataclass
class Request:
    """A request the client sent: its stream, headers and DATA payload so far."""

    stream_id: int
    headers: dict[bytes, bytes]
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False


class RawPeer:
    """One accepted connection: read the client's frames, send raw bytes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._preface_left = len(CLIENT_PREFACE)
        #: The HPACK encoder of our header blocks (its dynamic table is ours).
        self.encoder = hpack.Encoder()
        self._decoder = hpack.Decoder()
        #: Every frame the client sent so far, in order.
        self.frames: list[Frame] = []
        #: Requests by stream id.
        self.requests: dict[int, Request] = {}

    async def send(self, *chunks: bytes) -> None:
        """Send ``chunks`` in one write."""
        await self.stream.send_all(b"".join(chunks))

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """Encode ``headers`` as one HPACK block."""
        return bytes(self.encoder.encode(headers))

    def headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], *, end_stream: bool = False
    ) -> bytes:
        """A HEADERS frame with ``headers``, encoded now (so in sending order)."""
        return headers_frame(stream_id, self.block(headers), end_stream=end_stream)

    def trailers(self, stream_id: int, status: int = 0, *extra: tuple[bytes, bytes]) -> bytes:
        """Trailers ending the stream with ``grpc-status: status``."""
        fields = [(b"grpc-status", str(status).encode()), *extra]
        return self.headers(stream_id, fields, end_stream=True)

    def response(self, stream_id: int, *payloads: bytes, status: int = 0) -> bytes:
        """A whole well-formed response: headers, one message per payload, trailers."""
        messages = b"".join(data_frame(stream_id, grpc_message(p)) for p in payloads)
        return self.headers(stream_id, GRPC_RESPONSE) + messages + self.trailers(stream_id, status)

    async def next_frame(self) -> Frame | None:
        """The client's next frame, or None once it closed the connection."""
        while True:
            if self._preface_left and len(self._buffer) >= self._preface_left:
                assert bytes(self._buffer[: self._preface_left]) == CLIENT_PREFACE
                del self._buffer[: self._preface_left]
                self._preface_left = 0
            if not self._preface_left and len(self._buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self._buffer[:9]))
                if len(self._buffer) >= 9 + length:
                    frame.parse_body(memoryview(self._buffer[9 : 9 + length]))
                    del self._buffer[: 9 + length]
                    self.frames.append(frame)
                    return frame
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            self._buffer += data

    async def read_request(self, *, until_end: bool = True, ack_settings: bool = True) -> Request:
        """Read frames until a request's headers (and, with ``until_end``, its END_STREAM).

        The client's SETTINGS are acknowledged on the way (unless
        ``ack_settings`` is false); PINGs are not answered.
        """
        while True:
            frame = await self.next_frame()
            if frame is None:
                raise ConnectionError("the client closed the connection before its request")
            if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags and ack_settings:
                await self.send(settings_frame(ack=True))
            elif isinstance(frame, HeadersFrame):
                block = bytes(frame.data)
                flags = frame.flags
                while "END_HEADERS" not in flags:  # a block continued (RFC 9113 §6.10)
                    more = await self.next_frame()
                    if not isinstance(more, ContinuationFrame):
                        raise ConnectionError("the client broke off a header block")
                    block += bytes(more.data)
                    flags = more.flags
                headers = dict(self._decoder.decode(block, raw=True))
                request = Request(frame.stream_id, headers, ended="END_STREAM" in frame.flags)
                self.requests[frame.stream_id] = request
                if request.ended or not until_end:
                    return request
            elif isinstance(frame, DataFrame):
                request = self.requests[frame.stream_id]
                request.body += frame.data
                if "END_STREAM" in frame.flags:
                    request.ended = True
                    return request

    async def drain(self) -> None:
        """Read and discard until the client closes the connection."""
        while await self.next_frame() is not None:
            pass

    def abort_with_reset(self) -> None:
        """Close the socket with a TCP RST (SO_LINGER 0) instead of a FIN."""
        sock = self.stream.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


async def serve_requests(peer: RawPeer) -> None:
    """Answer every unary request with an echo until the client closes."""
    while True:
        try:
            request = await peer.read_request()
        except ConnectionError:
            return
        await peer.send(peer.response(request.stream_id, bytes(request.body[5:])))


async def well_behaved(peer: RawPeer, index: int) -> None:
    """A script behaving as a good server: SETTINGS, then an echo of every request."""
    await peer.send(settings_frame())
    await serve_requests(peer)


@contextlib.asynccontextmanager
async def hostile_server(script: Script) -> AsyncIterator[int]:
    """Serve ``script`` on 127.0.0.1 while the block runs; yield the port."""
    index = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal index
        peer, this = RawPeer(stream), index
        index += 1
        try:
            await script(peer, this)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client closed first: that is its right
        finally:
            if stream.socket.fileno() != -1:
                await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        try:
            yield port
        finally:
            nursery.cancel_scope.cancel()
