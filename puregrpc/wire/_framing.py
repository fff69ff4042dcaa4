"""The gRPC Length-Prefixed-Message codec (grpc/grpc doc/PROTOCOL-HTTP2.md, "Requests").

Theory of operation
===================

Every gRPC message travels in the DATA frames of its stream as::

    Length-Prefixed-Message -> Compressed-Flag Message-Length Message
    Compressed-Flag         -> 0 / 1        ; 1 byte
    Message-Length          -> uint32       ; 4 bytes, big-endian
    Message                 -> *OCTET       ; Message-Length bytes

The spec is explicit that "DATA frame boundaries have no relation to
Length-Prefixed-Message boundaries" (PROTOCOL-HTTP2.md, "Data Frames"): one
frame may carry many messages, and one message may span many frames, with the
cut falling anywhere - even inside the 5-byte prefix. :class:`MessageDecoder`
therefore keeps a tiny state machine::

    +--------+  5 prefix bytes seen   +------+  Message-Length bytes seen
    | PREFIX | ---------------------> | BODY | --------------------------+
    +--------+                        +------+                           |
        ^   (a zero Message-Length completes the message at once)        |
        +----------------------------------------------------------------+

and hands back every message a slice completes, in order.

Cost model. This runs for every received DATA frame, so it is written to
copy each payload byte exactly once on the common path:

* nothing buffered and whole messages in the slice: each payload is cut
  straight out of the slice (one copy per message, none of the whole slice);
* a message spread over many slices: the pieces are *kept* in a list (a
  zero-copy view when the slice is an immutable ``bytes``) and joined once
  when the last piece arrives, so feeding a message one byte at a time stays
  linear instead of re-copying a growing buffer.

The decoder knows nothing about compression encodings; it only reports the
Compressed-Flag. Checking the flag against the negotiated ``grpc-encoding``
("If the Message-Encoding header is omitted then the Compressed-Flag must be
0") is the connection's job, because only it has seen the headers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NoReturn

from ._errors import LocalProtocolError, RemoteProtocolError
from ._status import StatusCode

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_SIZE",
    "PREFIX_LENGTH",
    "MessageDecoder",
    "RawMessage",
    "encode_prefix",
    "frame_message",
]

#: Bytes of the Length-Prefixed-Message prefix: 1 flag byte + 4 length bytes.
PREFIX_LENGTH: int = 5

#: Largest message a :class:`MessageDecoder` accepts by default (4 MiB, the
#: same default receive limit as grpcio and grpc-go).
DEFAULT_MAX_RECEIVE_MESSAGE_SIZE: int = 4 * 1024 * 1024

# The largest value the 4-byte Message-Length field can carry.
_MAX_WIRE_LENGTH = 0xFFFF_FFFF

# Compressed-Flag (unsigned byte) then Message-Length (big-endian uint32), with
# no padding: ">" makes struct use standard sizes and network byte order.
_PREFIX = struct.Struct(">BI")
# Bound methods looked up once: both run for every message sent or received.
_pack_prefix = _PREFIX.pack
_unpack_prefix = _PREFIX.unpack_from


def encode_prefix(length: int, compressed: bool = False) -> bytes:
    """Return the 5-byte prefix announcing a message of ``length`` bytes.

    ``compressed`` sets the Compressed-Flag; the caller must have compressed
    the payload with the stream's ``grpc-encoding``. Raises
    :class:`LocalProtocolError` if ``length`` does not fit the 4-byte
    Message-Length field (negative, or over 4 GiB - 1).
    """
    if not 0 <= length <= _MAX_WIRE_LENGTH:
        raise LocalProtocolError(
            f"cannot frame a message of {length} bytes: the gRPC Message-Length field "
            f"holds 0 to {_MAX_WIRE_LENGTH}"
        )
    # bool is an int subclass, so the flag packs as the byte 0 or 1.
    return _pack_prefix(bool(compressed), length)


def frame_message(payload: bytes | memoryview, compressed: bool = False) -> bytes:
    """Return ``payload`` as one Length-Prefixed-Message (prefix + payload).

    The payload is copied exactly once, into the returned ``bytes``. A
    ``memoryview`` payload is measured in bytes (``nbytes``), whatever its
    item format. Raises :class:`LocalProtocolError` for payloads over 4 GiB - 1.
    """
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    # bytes + <any buffer> allocates the result once and copies both parts in.
    return encode_prefix(size, compressed) + payload


@dataclass(frozen=True, slots=True, kw_only=True)
class RawMessage:
    """One complete Length-Prefixed-Message as it arrived, before decompression."""

    #: The Message bytes exactly as on the wire: still compressed when
    #: ``compressed`` is true. Left out of the dataclass repr (see ``__repr__``).
    data: bytes = field(repr=False)
    #: The Compressed-Flag: true means ``data`` is encoded with the stream's
    #: ``grpc-encoding`` and must be decompressed before parsing.
    compressed: bool
    #: Bytes the message occupied on the wire, ``PREFIX_LENGTH + len(data)``;
    #: this is what flow control and size statistics account for.
    wire_length: int

    def __repr__(self) -> str:
        # Payloads can be megabytes; a repr shows their size, not their content.
        return (
            f"RawMessage(data=<{len(self.data)} bytes>, compressed={self.compressed}, "
            f"wire_length={self.wire_length})"
        )


class MessageDecoder:
    """Incremental decoder turning DATA frame payloads into :class:`RawMessage`.

    Feed it every DATA payload of one stream, in order, with :meth:`feed`;
    call :meth:`close` when the stream ends (END_STREAM, or trailers) to detect
    a truncated message. One decoder serves one direction of one stream.

    Peer faults raise :class:`RemoteProtocolError`, whose ``code`` is the
    status the call must end with. After any such error the decoder is broken:
    it drops what it buffered and every later :meth:`feed` or :meth:`close`
    raises the same error again, so a caller cannot resynchronise on garbage.
    """

    __slots__ = (
        "_buffered",
        "_compressed",
        "_error",
        "_length",
        "_max_message_size",
        "_missing",
        "_parts",
        "_prefix",
        "completed_before_error",
    )

    def __init__(self, max_message_size: int = DEFAULT_MAX_RECEIVE_MESSAGE_SIZE) -> None:
        """Create a decoder refusing messages longer than ``max_message_size`` bytes.

        Raises :class:`ValueError` if ``max_message_size`` is negative.
        """
        if max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
        self._max_message_size = max_message_size
        # PREFIX state: the first 0-4 bytes of a prefix split across slices.
        self._prefix = b""
        # BODY state: Message-Length of the pending message; -1 in PREFIX state.
        self._length = -1
        # BODY state: the pending message's Compressed-Flag.
        self._compressed = False
        # BODY state: body bytes still to arrive before the message is complete.
        self._missing = 0
        # BODY state: body pieces received so far, joined once on completion.
        self._parts: list[bytes | memoryview] = []
        # Everything held for the incomplete message, prefix bytes included.
        self._buffered = 0
        #: Messages a failing feed() completed before the error (see feed()).
        self.completed_before_error: list[RawMessage] = []
        # The error that broke the decoder, re-raised by every later call.
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message, prefix bytes included (0 between messages)."""
        return self._buffered

    @property
    def max_message_size(self) -> int:
        """The largest Message-Length this decoder accepts, in bytes."""
        return self._max_message_size

    def feed(self, data: bytes | memoryview) -> list[RawMessage]:
        """Consume the next slice of the stream; return the messages it completes, in order.

        ``data`` may cut the stream anywhere: mid-prefix, mid-body, or across
        many messages. Pass ``bytes`` where possible: pieces of an incomplete
        message are then kept as zero-copy views, whereas pieces of a (possibly
        mutable) ``memoryview`` must be copied before ``feed`` returns.

        Raises :class:`RemoteProtocolError` with RESOURCE_EXHAUSTED as soon as a
        prefix announces more than :attr:`max_message_size` bytes (before the
        body is buffered), or INTERNAL for a Compressed-Flag other than 0 or 1.
        Messages completed earlier in the same slice are then left in
        :attr:`completed_before_error`, so the caller can still deliver them.
        """
        if self._error is not None:
            raise self._rebuild_error(self._error)
        messages: list[RawMessage] = []
        try:
            return self._feed(data, messages)
        except RemoteProtocolError:
            self.completed_before_error = messages
            raise

    def _feed(self, data: bytes | memoryview, messages: list[RawMessage]) -> list[RawMessage]:
        # Only bytes is known immutable, so only bytes may be kept by reference.
        keep = isinstance(data, bytes)
        if not keep:
            # Measure and slice in bytes whatever the view's item format.
            data = memoryview(data).cast("B")
        end = len(data)
        pos = 0
        if self._buffered:
            # Finish the message an earlier slice started; pos is where it ends.
            pos = self._resume(data, keep, messages)
        # Fast path: nothing is buffered here, so messages are cut straight out.
        max_size = self._max_message_size
        while end - pos >= PREFIX_LENGTH:
            flag, length = _unpack_prefix(data, pos)
            if flag > 1 or length > max_size:
                self._fail(flag, length)
            start = pos + PREFIX_LENGTH
            pos = start + length
            if pos > end:
                # The body runs past this slice: hold what there is and wait.
                self._compressed = flag == 1
                self._length = length
                self._missing = pos - end
                self._buffered = PREFIX_LENGTH + end - start
                if end > start:
                    self._parts.append(memoryview(data)[start:] if keep else bytes(data[start:]))
                return messages
            messages.append(
                RawMessage(
                    data=data[start:pos] if isinstance(data, bytes) else bytes(data[start:pos]),
                    compressed=flag == 1,
                    wire_length=PREFIX_LENGTH + length,
                )
            )
        if pos < end:
            # A prefix cut by the slice boundary: keep its 1-4 bytes (a copy,
            # so a large slice is not kept alive for a few bytes of it).
            self._prefix = bytes(data[pos:])
            self._buffered = end - pos
        return messages

    def close(self) -> None:
        """Declare the end of the stream; raise if it cut a message short.

        Raises :class:`RemoteProtocolError` (INTERNAL) naming how many bytes of
        an incomplete prefix or body were left over. Does nothing when the
        stream ended cleanly between messages.
        """
        if self._error is not None:
            raise self._rebuild_error(self._error)
        if not self._buffered:
            return
        if self._length < 0:
            problem = (
                f"{self._buffered} of the {PREFIX_LENGTH} bytes of a message prefix "
                "(Compressed-Flag and Message-Length)"
            )
        else:
            received = self._length - self._missing
            problem = (
                f"{received} of the {self._length} bytes of a message body "
                f"({self._buffered} bytes buffered with its prefix)"
            )
        self._break(
            RemoteProtocolError(
                f"stream ended inside a gRPC message: received only {problem}",
                StatusCode.INTERNAL,
            )
        )

    # -- internals -------------------------------------------------------------

    def _resume(self, data: bytes | memoryview, keep: bool, messages: list[RawMessage]) -> int:
        """Continue the buffered message with ``data``; return the offset just after it.

        Returns ``len(data)`` when the slice ends before the message does.
        """
        end = len(data)
        pos = 0
        if self._length < 0:
            # PREFIX state: complete the prefix first (at most 4 bytes to copy).
            need = PREFIX_LENGTH - len(self._prefix)
            if end < need:
                self._prefix += bytes(data)
                self._buffered += end
                return end
            prefix = self._prefix + bytes(data[:need])
            flag, length = _unpack_prefix(prefix)
            if flag > 1 or length > self._max_message_size:
                self._fail(flag, length)
            pos = need
            self._prefix = b""
            if length == 0:
                # Zero-length messages are valid: the prefix is the whole message.
                self._buffered = 0
                messages.append(
                    RawMessage(data=b"", compressed=flag == 1, wire_length=PREFIX_LENGTH)
                )
                return pos
            self._compressed = flag == 1
            self._length = length
            self._missing = length
            self._buffered = PREFIX_LENGTH
        # BODY state: take at most what the message still misses.
        take = min(self._missing, end - pos)
        if take == end and keep:
            # The whole slice is body: keep the caller's bytes object itself.
            self._parts.append(data)
        elif take:
            stop = pos + take
            self._parts.append(memoryview(data)[pos:stop] if keep else bytes(data[pos:stop]))
        self._missing -= take
        self._buffered += take
        pos += take
        if self._missing:
            return pos
        # The single join of the message: one copy of each piece, linear overall.
        parts = self._parts
        # A lone exact-bytes piece (prefix in one slice, whole body in the next)
        # already is the payload: hand it over without any copy at all.
        first = parts[0]
        payload = first if len(parts) == 1 and type(first) is bytes else b"".join(parts)
        messages.append(
            RawMessage(
                data=payload,
                compressed=self._compressed,
                wire_length=PREFIX_LENGTH + self._length,
            )
        )
        self._parts = []
        self._length = -1
        self._buffered = 0
        return pos

    def _fail(self, flag: int, length: int) -> NoReturn:
        """Break the decoder for a prefix with a bad flag or an oversized length."""
        if flag > 1:
            # PROTOCOL-HTTP2.md: "Compressed-Flag -> 0 / 1"; anything else means
            # the framing is corrupt and nothing after it can be trusted.
            error = RemoteProtocolError(
                f"invalid gRPC message prefix: Compressed-Flag is {flag}, must be 0 or 1",
                StatusCode.INTERNAL,
            )
        else:
            # Same wording and status as grpcio, so users recognise the limit.
            error = RemoteProtocolError(
                f"received message larger than max ({length} vs. {self._max_message_size})",
                StatusCode.RESOURCE_EXHAUSTED,
            )
        self._break(error)

    def _break(self, error: RemoteProtocolError) -> NoReturn:
        """Record ``error``, drop all buffered data, and raise ``error``."""
        self._error = error
        self._prefix = b""
        self._parts = []
        self._length = -1
        self._buffered = 0
        raise error

    @staticmethod
    def _rebuild_error(error: RemoteProtocolError) -> RemoteProtocolError:
        """A fresh copy of ``error``, so re-raising does not pile up tracebacks."""
        return RemoteProtocolError(str(error), error.code)
