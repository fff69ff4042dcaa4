"""gRPC-Web body framing: the trailer frame and the base64 text mode (sans-IO).

Theory of operation
===================

A gRPC-Web body (grpc/grpc ``doc/PROTOCOL-WEB.md``) is the native
Length-Prefixed-Message stream with one addition: the status travels in the
body, as a last frame whose flag byte has its most significant bit set::

    Web-Body      -> *Data-Frame Trailer-Frame
    Data-Frame    -> %x00 / %x01  Message-Length  Message   ; the native framing
    Trailer-Frame -> %x80         Message-Length  Block     ; 0x81: compressed
    Block         -> *( field-name ": " field-value CRLF )  ; HTTP/1 header lines

Data frames are made and cut by :mod:`puregrpc.wire`'s codec
(``frame_message`` and ``MessageDecoder``), which stays the one place that
frames messages; this module adds the trailer frame around the trailer
fields that ``build_trailers`` makes for HTTP/2.

The text mode (``application/grpc-web-text``) base64-encodes that body. The
server encodes each frame on its own (so a streamed response can be decoded
as it arrives), which means padding (``=``) may appear inside the body,
wherever one frame's encoding ends. A reader must therefore decode quantum by
quantum (four characters give three bytes) and accept padding at the end of
any quantum, while the network cuts the body anywhere, even inside a
quantum: :class:`Base64StreamDecoder` keeps the 0-3 characters of an
unfinished quantum for the next slice.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, replace
from typing import NoReturn

from ..wire import Metadata, RemoteProtocolError, Status, StatusCode
from ..wire.codecs import (
    PREFIX_LENGTH,
    MessageDecoder,
    RawMessage,
    build_trailers,
    encode_prefix,
    frame_message,
    parse_trailers,
)

#: The flag byte of an uncompressed trailer frame (PROTOCOL-WEB.md, Message framing).
TRAILER_FLAG = 0x80

# Characters of one base64 quantum, and the bytes it decodes to.
_QUANTUM = 4


def trailer_block(status: Status, metadata: Metadata | None = None) -> bytes:
    """The trailer fields as HTTP/1 header lines: ``grpc-status: 0\\r\\n...``.

    The fields and their encodings are the HTTP/2 trailers' (``build_trailers``:
    percent-encoded ``grpc-message``, base64 ``-bin`` values); names are
    lower-case, as PROTOCOL-WEB.md asks.
    """
    return b"".join(
        name + b": " + value + b"\r\n" for name, value in build_trailers(status, metadata)
    )


def encode_trailer_frame(status: Status, metadata: Metadata | None = None) -> bytes:
    """The trailer frame that ends a gRPC-Web response body (flag 0x80)."""
    block = trailer_block(status, metadata)
    return bytes([TRAILER_FLAG]) + encode_prefix(len(block))[1:] + block


def encode_text(frame: bytes) -> bytes:
    """One frame (or several) in the text mode: base64 with its padding."""
    return binascii.b2a_base64(frame, newline=False)


def parse_trailer_block(block: bytes) -> tuple[Status, Metadata]:
    """Parse a trailer frame's block into the call's status and trailing metadata.

    Raises :class:`RemoteProtocolError` (INTERNAL) for a line without ``:``
    or a name that is not lower-case ASCII, like the HTTP/2 trailers' parser
    for a malformed field.
    """
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name or name.lower() != name:
            raise RemoteProtocolError(
                f"malformed gRPC-Web trailer line {line[:60]!r}", StatusCode.INTERNAL
            )
        fields.append((name, value.strip()))
    return parse_trailers(fields)


class Base64StreamDecoder:
    """Decodes a base64 body cut at arbitrary points, padded segments included.

    :meth:`feed` returns the bytes of every complete quantum received so far;
    :meth:`close` checks that the body did not end inside one. Anything that
    is not base64 raises :class:`RemoteProtocolError` (INTERNAL), and the
    decoder stays broken afterwards.
    """

    __slots__ = ("_error", "_pending", "characters")

    def __init__(self) -> None:
        #: The 0-3 characters of a quantum cut by the last slice.
        self._pending = b""
        self._error: RemoteProtocolError | None = None
        #: Base64 characters fed so far.
        self.characters = 0

    def feed(self, data: bytes | memoryview) -> bytes:
        """Take the next slice of the body; return what its complete quanta decode to."""
        if self._error is not None:
            raise RemoteProtocolError(str(self._error), self._error.code)
        self.characters += len(data)
        text = self._pending + bytes(data)
        whole = len(text) - len(text) % _QUANTUM
        self._pending = text[whole:]
        text = text[:whole]
        if b"=" not in text:
            return self._decode(text)  # no padding in these quanta: one call for them all
        # Padding ends a segment: decode segment by segment, each up to the
        # quantum holding its last "=".
        out: list[bytes] = []
        start = 0
        while start < whole:
            pad = text.find(b"=", start)
            if pad < 0:
                out.append(self._decode(text[start:]))
                break
            end = pad - pad % _QUANTUM + _QUANTUM
            out.append(self._decode(text[start:end]))
            start = end
        return b"".join(out)

    def close(self) -> None:
        """The body ended: raise if it ended inside a quantum."""
        if self._error is not None:
            raise RemoteProtocolError(str(self._error), self._error.code)
        if self._pending:
            self._fail(
                f"the base64 body ends inside a quantum ({len(self._pending)} of 4 characters)"
            )

    @property
    def pending(self) -> int:
        """Characters held for an unfinished quantum."""
        return len(self._pending)

    def _decode(self, quanta: bytes) -> bytes:
        try:
            return binascii.a2b_base64(quanta, strict_mode=True)
        except binascii.Error as exc:
            self._fail(f"the gRPC-Web text body is not valid base64 ({exc})")

    def _fail(self, message: str) -> NoReturn:
        self._error = RemoteProtocolError(message, StatusCode.INTERNAL)
        self._pending = b""
        raise self._error


class TextMessageDecoder(MessageDecoder):
    """A :class:`MessageDecoder` for a base64 (``grpc-web-text``) request body.

    It decodes the base64 and hands the bytes to the native decoder, so
    message limits and errors are the native ones. Flow control counts the
    bytes on the wire, so each message's ``wire_length`` is given in base64
    characters: the characters that carried it (4/3 of its bytes, rounded
    up), never more than have arrived. The rest (padding) is credited back
    when the call ends.
    """

    __slots__ = ("_attributed", "_base64", "_decoded")

    def __init__(self, max_message_size: int) -> None:
        super().__init__(max_message_size)
        self._base64 = Base64StreamDecoder()
        #: Decoded bytes of the messages completed so far.
        self._decoded = 0
        #: Base64 characters handed out as messages' wire lengths so far.
        self._attributed = 0

    def feed(self, data: bytes | memoryview) -> list[RawMessage]:
        """Decode the base64 slice; return the messages it completes (lengths in characters)."""
        decoded = self._base64.feed(data)
        try:
            messages = super().feed(decoded)
        except RemoteProtocolError:
            self.completed_before_error = self._in_characters(self.completed_before_error)
            raise
        return self._in_characters(messages)

    def close(self) -> None:
        """The body ended: raise if it ended inside a quantum or a message."""
        self._base64.close()
        super().close()

    def _in_characters(self, messages: list[RawMessage]) -> list[RawMessage]:
        converted: list[RawMessage] = []
        for message in messages:
            self._decoded += message.wire_length
            attributed = min(self._base64.characters, -(-self._decoded * 4 // 3))
            converted.append(replace(message, wire_length=attributed - self._attributed))
            self._attributed = attributed
        return converted


@dataclass(frozen=True, slots=True, kw_only=True)
class WebFrame:
    """One frame of a gRPC-Web response body: a message, or the trailers."""

    #: The message (``trailers`` is None), still compressed if ``compressed``.
    data: bytes = b""
    #: The Compressed-Flag of the frame.
    compressed: bool = False
    #: The call's status and trailing metadata, for the trailer frame.
    trailers: tuple[Status, Metadata] | None = None


class WebResponseDecoder:
    """Cuts a gRPC-Web response body (binary or text) into :class:`WebFrame` s.

    A client's part (tests use it, as would a proxy): feed the body as it
    arrives with :meth:`feed`, and :meth:`close` at its end, which raises
    unless the body ended cleanly after its trailer frame.
    """

    def __init__(self, *, text: bool = False, max_message_size: int = 4 * 1024 * 1024) -> None:
        self._text = Base64StreamDecoder() if text else None
        self._buffer = b""
        self._max = max_message_size
        #: True once the trailer frame has arrived.
        self.ended = False

    def feed(self, data: bytes) -> list[WebFrame]:
        """Take the next slice of the body; return the frames it completes."""
        if self._text is not None:
            data = self._text.feed(data)
        buffer = self._buffer + data
        frames: list[WebFrame] = []
        pos = 0
        while len(buffer) - pos >= PREFIX_LENGTH:
            flag = buffer[pos]
            length = int.from_bytes(buffer[pos + 1 : pos + PREFIX_LENGTH], "big")
            if self.ended:
                raise RemoteProtocolError("data after the trailer frame", StatusCode.INTERNAL)
            if flag not in (0, 1, TRAILER_FLAG):
                raise RemoteProtocolError(f"unknown frame flag 0x{flag:02x}", StatusCode.INTERNAL)
            if length > self._max:
                raise RemoteProtocolError(
                    f"received message larger than max ({length} vs. {self._max})",
                    StatusCode.RESOURCE_EXHAUSTED,
                )
            end = pos + PREFIX_LENGTH + length
            if end > len(buffer):
                break
            body = buffer[pos + PREFIX_LENGTH : end]
            if flag == TRAILER_FLAG:
                frames.append(WebFrame(trailers=parse_trailer_block(body)))
                self.ended = True
            else:
                frames.append(WebFrame(data=body, compressed=flag == 1))
            pos = end
        self._buffer = buffer[pos:]
        return frames

    def close(self) -> None:
        """The body ended: raise unless it ended right after its trailer frame."""
        if self._text is not None:
            self._text.close()
        if self._buffer:
            raise RemoteProtocolError(
                f"the body ends inside a frame ({len(self._buffer)} bytes left)",
                StatusCode.INTERNAL,
            )
        if not self.ended:
            raise RemoteProtocolError("the body ended without a trailer frame", StatusCode.INTERNAL)


def frame_request(payload: bytes, *, text: bool = False) -> bytes:
    """A gRPC-Web request body carrying one message (binary, or base64 for text)."""
    framed = frame_message(payload)
    return encode_text(framed) if text else framed
