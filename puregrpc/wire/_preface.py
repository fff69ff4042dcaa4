"""How the peer opens the connection: the client preface, then SETTINGS (RFC 9113 §3.4).

Each side of an HTTP/2 connection starts with a connection preface. A
client's is the 24 octets ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n`` followed by a
SETTINGS frame; a server's is a SETTINGS frame alone. Anything else is a
connection error of type PROTOCOL_ERROR. h2 checks the 24 octets but not the
frame after them, so a peer whose first frame is a PING would be served, and
garbage in place of a server's SETTINGS (an HTTP/1.1 error page, a TLS
alert) would be taken for the header of a huge frame and waited for.

:class:`PeerPreface` looks at the first bytes the peer sends until its first
frame *header* (9 octets: length, type, flags, stream id) has passed, so a
wrong start is caught as soon as those 9 octets are in, before h2 acts on
any of it. The connection feeds it every read until :attr:`PeerPreface.done`,
then drops it: after the start it costs nothing.
"""

from __future__ import annotations

import h2.errors

from ._trace import FRAME_TYPE_NAMES

#: RFC 9113 §3.4: the client connection preface, which is not a frame.
CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: RFC 9113 §4.1: length (24 bits), type, flags, reserved bit + stream id (31 bits).
FRAME_HEADER_SIZE = 9
_SETTINGS = 0x4
_ACK = 0x1
#: How much of a wrong start an error message quotes.
_QUOTE = 40

#: A violation: the HTTP/2 error code of the GOAWAY, and what went wrong.
Violation = tuple[int, str]


class PeerPreface:
    """Checks the start of what the peer sends: the preface (from a client), then SETTINGS.

    ``client_preface`` is true on the server side, which expects the 24
    octets first. Feed each read to :meth:`feed` until :attr:`done`.
    """

    __slots__ = ("_peer", "_preface_left", "_start", "done")

    def __init__(self, *, client_preface: bool) -> None:
        #: The peer's role, for messages.
        self._peer = "client" if client_preface else "server"
        #: The part of the client preface still to come.
        self._preface_left = CLIENT_PREFACE if client_preface else b""
        #: The first bytes after the preface (a frame header, and some more
        #: to quote in an error message).
        self._start = bytearray()
        #: True once the peer's first frame header was a SETTINGS frame's.
        self.done = False

    def feed(self, data: bytes | bytearray | memoryview, max_frame_size: int) -> Violation | None:
        """Look at the next bytes read; return the violation they show, if any.

        ``max_frame_size`` is the largest frame we accept (our
        SETTINGS_MAX_FRAME_SIZE). When this returns ``None`` the bytes are
        fine so far: hand them to h2. Otherwise the connection is over: send
        GOAWAY with the returned error code, and hand h2 nothing.
        """
        view = memoryview(data)
        left = self._preface_left
        if left:
            taken = bytes(view[: len(left)])
            if not left.startswith(taken):
                return self._bad_preface(taken)
            self._preface_left = left[len(taken) :]
            view = view[len(taken) :]
            if self._preface_left:
                return None
        start = self._start
        start += view[: _QUOTE - len(start)]
        if len(start) < FRAME_HEADER_SIZE:
            return None
        violation = self._check_header(bytes(start), max_frame_size)
        self.done = violation is None
        return violation

    def unfinished(self) -> str:
        """Why a connection that closed now never started, for its calls' status."""
        start = bytes(self._start)
        if self._preface_left or not start:
            return f"the {self._peer} sent no HTTP/2 SETTINGS before closing the connection"
        return (
            f"the {self._peer} closed the connection after sending {start!r}, "
            f"not HTTP/2 SETTINGS{_guess(start)}"
        )

    def _bad_preface(self, taken: bytes) -> Violation:
        received = CLIENT_PREFACE[: len(CLIENT_PREFACE) - len(self._preface_left)] + taken
        return (
            h2.errors.ErrorCodes.PROTOCOL_ERROR,
            f"the client did not send the HTTP/2 connection preface (it sent {received!r}"
            f"{_guess(received)})",
        )

    def _check_header(self, start: bytes, max_frame_size: int) -> Violation | None:
        """Check the first frame header, at the front of ``start``."""
        length = int.from_bytes(start[:3], "big")
        frame_type, flags = start[3], start[4]
        protocol_error = h2.errors.ErrorCodes.PROTOCOL_ERROR
        if frame_type != _SETTINGS:
            name = FRAME_TYPE_NAMES.get(frame_type)
            what = f"a {name} frame" if name is not None else f"bytes {start!r}"
            return (
                protocol_error,
                f"the {self._peer}'s first frame must be SETTINGS (RFC 9113 §3.4), "
                f"it sent {what}{_guess(start)}",
            )
        if flags & _ACK:
            return (
                protocol_error,
                f"the {self._peer}'s first frame must be its SETTINGS (RFC 9113 §3.4), "
                "it sent a SETTINGS acknowledgement",
            )
        if length > max_frame_size:
            # RFC 9113 §4.2: an oversized frame that changes connection state.
            return (
                h2.errors.ErrorCodes.FRAME_SIZE_ERROR,
                f"the {self._peer}'s first SETTINGS frame is {length} bytes long, "
                f"over our maximum frame size of {max_frame_size}",
            )
        return None


def _guess(start: bytes) -> str:
    """A hint at what the peer speaks instead of HTTP/2, or an empty string."""
    if start.startswith(b"HTTP/1"):
        first_line = start.split(b"\r\n", 1)[0]
        return f": an HTTP/1.x response, {first_line.decode('latin-1')!r}"
    if start[:1] in (b"\x15", b"\x16") and start[1:2] == b"\x03":
        return ": a TLS record (does the server expect TLS?)"
    if start.split(b" ", 1)[0] in (b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE"):
        return ": an HTTP/1.x request"
    return ""
