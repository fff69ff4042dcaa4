"""Telling an HTTP/2 connection from an HTTP/1.1 one by its first bytes (sans-IO)."""

from __future__ import annotations

import enum

#: The client connection preface of HTTP/2 (RFC 9113 §3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# The longest request method we take for HTTP/1.1 ("OPTIONS"), plus its space.
_LONGEST_METHOD = 8


class Protocol(enum.Enum):
    """What a connection speaks."""

    HTTP2 = "h2"
    HTTP1 = "http/1.1"


def sniff(start: bytes) -> Protocol | None:
    """Which protocol a connection that began with ``start`` speaks; None: read more.

    The HTTP/2 preface begins ``PRI``, which no HTTP/1.1 method does; an
    HTTP/1.1 request begins with a method token (upper-case letters) and a
    space. Anything else goes to HTTP/2, whose preface check answers it
    (GOAWAY PROTOCOL_ERROR), as before gRPC-Web was served.
    """
    if not start:
        return None
    if H2_PREFACE.startswith(start[:3]):
        return Protocol.HTTP2 if len(start) >= 3 else None
    head = start[:_LONGEST_METHOD]
    space = head.find(b" ")
    token = head if space < 0 else head[:space]
    if not token.isalpha() or not token.isupper():
        return Protocol.HTTP2
    if space < 0:
        return None if len(head) < _LONGEST_METHOD else Protocol.HTTP2
    return Protocol.HTTP1
