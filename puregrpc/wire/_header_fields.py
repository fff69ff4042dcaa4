"""Header fields of gRPC: validation of received blocks, and the fields both sides send.

Sources: grpc/grpc ``doc/PROTOCOL-HTTP2.md`` and RFC 9113 section 8 (what
makes an HTTP/2 header block malformed). The request side lives in
:mod:`._request_headers`, the response side (response headers, trailers,
trailers-only) in :mod:`._response_headers`; both build on this module.

Theory of operation
===================

A call carries up to three header blocks, each a list of ``(bytes, bytes)``::

    client                                   server
      | -- request headers ----------------->  |  parse_request_headers
      |                                        |
      | <- response headers (no END_STREAM) -- |  build_response_headers
      | <- DATA ... -------------------------- |
      | <- trailers (END_STREAM) ------------- |  build_trailers
      |
      |    or, for a call that fails at once, one block instead of both:
      | <- trailers-only (END_STREAM) -------- |  build_trailers_only

The connection runs h2 with its header validation *switched off* (it is
h2's largest per-call cost), so every received block goes through
:func:`_scan` here, which enforces what h2 would have (RFC 9113 sections
8.2 and 8.3) in one pass of dict lookups and C-level byte searches:

* field names are non-empty, lower-case, and free of controls, spaces,
  non-ASCII bytes and (past the first byte) colons;
* field values contain no NUL, CR or LF and no surrounding spaces or tabs;
* pseudo-headers are known for the block type, each appears at most once,
  and all of them precede the regular fields;
* no connection-specific field (``connection``, ``keep-alive``, ...), and
  ``te`` only as ``trailers``.

The same pass picks out gRPC's own fields (content-type, grpc-timeout, ...)
and collects the rest as custom metadata, which :class:`Metadata` decodes.

What a bad block turns into depends on who sent it:

* a *request* that is malformed HTTP/2 must be answered with RST_STREAM
  PROTOCOL_ERROR (RFC 9113 section 8.1.1); one that is valid HTTP/2 but not
  a valid gRPC call gets an HTTP or gRPC error response. Both surface as
  :class:`RequestRejected`, which says which answer to give;
* a bad *response* raises :class:`RemoteProtocolError` with the status the
  call should end with.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from ._compression import IDENTITY, SUPPORTED_ENCODINGS, accept_encoding_value
from ._errors import LocalProtocolError
from ._metadata import Metadata, _quote

# RFC 9113 §6.5.2: a header list is sized as name + value + 32 per field.
# PROTOCOL-HTTP2.md asks size limits on Request-Headers to count the same way.
FIELD_OVERHEAD = 32


# --- Validation tables -------------------------------------------------------------

# Pseudo-headers each block may carry (RFC 9113 §8.3). gRPC never uses CONNECT
# or extended CONNECT, so ``:protocol`` is refused like any unknown one.
REQUEST_PSEUDO: frozenset[bytes] = frozenset({b":method", b":scheme", b":path", b":authority"})
RESPONSE_PSEUDO: frozenset[bytes] = frozenset({b":status"})
NO_PSEUDO: frozenset[bytes] = frozenset()

# What scan does with a regular field, by name. Anything not listed is custom
# metadata (after a name check); this one dict lookup replaces h2's chain of
# validators for the fields that matter to gRPC.
_GRPC = 0  # gRPC's own field: remembered for the parser, not metadata
_EXPOSED = 1  # remembered *and* passed on as metadata (grpcio/grpc-go expose these)
_TE = 2  # RFC 9113 §8.2.2: allowed only as "trailers"
_CONNECTION = 3  # RFC 9113 §8.2.2: connection-specific, malformed in HTTP/2
_KIND: dict[bytes, int] = {
    b"content-type": _GRPC,
    b"grpc-timeout": _GRPC,
    b"grpc-encoding": _GRPC,
    b"grpc-accept-encoding": _GRPC,
    b"grpc-status": _GRPC,
    b"grpc-message": _GRPC,
    b"grpc-status-details-bin": _GRPC,
    b"user-agent": _EXPOSED,
    b"host": _EXPOSED,
    # gRFC A6's retry metadata is the application's (see _metadata.py).
    b"grpc-previous-rpc-attempts": _EXPOSED,
    b"grpc-retry-pushback-ms": _EXPOSED,
    b"te": _TE,
    b"connection": _CONNECTION,
    b"keep-alive": _CONNECTION,
    b"proxy-connection": _CONNECTION,
    b"transfer-encoding": _CONNECTION,
    b"upgrade": _CONNECTION,
}

# Every byte RFC 9113 §8.2.1 allows in a regular field name: visible ASCII
# except upper-case letters and ':'. bytes.translate deletes these, so any
# byte left over is an illegal one - a C-level check with no Python loop.
_NAME_BYTES: bytes = bytes(b for b in range(0x21, 0x7F) if not (0x41 <= b <= 0x5A) and b != 0x3A)


class Malformed(Exception):
    """A header block violating RFC 9113 §8.2-8.3; each parser re-raises it in its own terms."""


def _bad_name(name: bytes) -> str:
    """Explain why a regular field name failed the character check."""
    if name.lower() != name:
        return (
            f"header name {_quote(name)} contains upper-case letters (HTTP/2 requires lower-case)"
        )
    return f"header name {_quote(name)} contains a character not allowed in HTTP/2 field names"


def scan(
    headers: Sequence[tuple[bytes, bytes]], pseudo_allowed: frozenset[bytes], block: str
) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], int]:
    """Validate one received header block and split it up, in a single pass.

    Returns ``(fields, custom, size)``: the pseudo-headers and gRPC fields by
    name (the last one wins for repeated gRPC fields, as in grpc-go), the
    custom metadata fields in order, and the block's size as HTTP/2 counts it.
    Raises :class:`Malformed` naming the first violation; ``block`` names the
    block in that message ("request headers", "trailers", ...).
    """
    fields: dict[bytes, bytes] = {}
    custom: list[tuple[bytes, bytes]] = []
    regular_seen = False
    size = FIELD_OVERHEAD * len(headers)
    kind_of = _KIND.get
    for name, value in headers:
        value_length = len(value)
        size += len(name) + value_length
        # Values first, for every field (RFC 9113 §8.2.1). An int operand
        # makes ``in`` a plain memchr, several times faster than a bytes
        # needle; strip() finds edge whitespace without a Python loop.
        if 10 in value or 13 in value or 0 in value:
            raise Malformed(
                f"{block}: value of {_quote(name)} contains NUL, CR or LF: {_quote(value)}"
            )
        if len(value.strip(b" \t")) != value_length:
            raise Malformed(f"{block}: value of {_quote(name)} has leading or trailing whitespace")
        kind = kind_of(name)
        if kind is None:
            if name[:1] == b":":
                # RFC 9113 §8.3: pseudo-headers are defined per block type,
                # appear once, and all come before the regular fields.
                if name not in pseudo_allowed:
                    raise Malformed(f"{block}: pseudo-header {_quote(name)} is not allowed here")
                if regular_seen:
                    raise Malformed(f"{block}: pseudo-header {_quote(name)} after a regular header")
                if name in fields:
                    raise Malformed(f"{block}: pseudo-header {_quote(name)} is repeated")
                fields[name] = value
                continue
            regular_seen = True
            if not name:
                raise Malformed(f"{block}: empty header name")
            if name.translate(None, _NAME_BYTES):
                raise Malformed(f"{block}: {_bad_name(name)}")
            # Other grpc-* names are reserved for gRPC (PROTOCOL-HTTP2.md,
            # Custom-Metadata) and never reach the application.
            if not name.startswith(b"grpc-"):
                custom.append((name, value))
            continue
        regular_seen = True
        if kind == _GRPC:
            fields[name] = value
        elif kind == _EXPOSED:
            # h2 refuses a request with two Host fields; so do we, anywhere.
            if name in fields and name == b"host":
                raise Malformed(f"{block}: more than one host header")
            fields[name] = value
            custom.append((name, value))
        elif kind == _TE:
            # Token comparison is case-insensitive (RFC 9110 §10.1.4).
            if value.lower() != b"trailers":
                raise Malformed(f"{block}: te header must be 'trailers', got {_quote(value)}")
        else:
            raise Malformed(f"{block}: connection-specific header {_quote(name)} is not allowed")
    return fields, custom, size


def is_grpc_content_type(value: bytes) -> bool:
    """True for ``application/grpc``, optionally followed by ``+subtype`` or ``;params``.

    PROTOCOL-HTTP2.md, Content-Type; media types compare case-insensitively.
    ``application/grpcx`` or ``application/grpc-web`` are not gRPC.
    """
    if value == b"application/grpc" or value == b"application/grpc+proto":
        return True  # fast path: what every gRPC implementation sends
    lowered = value.lower()
    return lowered.startswith(b"application/grpc") and (len(lowered) == 16 or lowered[16] in b"+;")


def describe_content_type(value: bytes | None) -> str:
    """``"content-type 'text/html'"`` or ``"no content-type"``, for error messages."""
    return "no content-type" if value is None else f"content-type {_quote(value)}"


def http_status_text(http_status: int) -> str:
    """``"HTTP status 503 (Service Unavailable)"``, for synthesized messages."""
    try:
        phrase = HTTPStatus(http_status).phrase
    except ValueError:
        return f"HTTP status {http_status}"
    return f"HTTP status {http_status} ({phrase})"


# --- Fields both sides send --------------------------------------------------------

CONTENT_TYPE_GRPC = (b"content-type", b"application/grpc")

DEFAULT_ACCEPT_ENCODING_FIELD = (b"grpc-accept-encoding", accept_encoding_value())

ENCODING_FIELDS = {
    name: (b"grpc-encoding", name.encode("ascii"))
    for name in SUPPORTED_ENCODINGS
    if name != IDENTITY
}

SUPPORTED_TEXT = ", ".join(SUPPORTED_ENCODINGS)

# Received grpc-encoding value -> its name, for the encodings we support.
ENCODING_NAMES = {name.encode("ascii"): name for name in SUPPORTED_ENCODINGS}


def ascii_value(what: str, value: str) -> bytes:
    """Encode an outgoing header value as ASCII, or say which one is not."""
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} must be ASCII, got {value!r}") from None


def grpc_encoding_field(encoding: str | None) -> tuple[bytes, bytes] | None:
    """The ``grpc-encoding`` field for ``encoding``; None for no compression."""
    if encoding is None or encoding == IDENTITY:
        return None  # absent means identity (PROTOCOL-HTTP2.md, Message-Encoding)
    field = ENCODING_FIELDS.get(encoding)
    if field is None:
        raise LocalProtocolError(
            f"cannot send with unsupported encoding {encoding!r}; supported: {SUPPORTED_TEXT}"
        )
    return field


def grpc_accept_encoding_field(accept_encoding: Sequence[str]) -> tuple[bytes, bytes] | None:
    """The ``grpc-accept-encoding`` field; None when the list is empty."""
    if accept_encoding is SUPPORTED_ENCODINGS:
        return DEFAULT_ACCEPT_ENCODING_FIELD
    if not accept_encoding:
        return None
    return (b"grpc-accept-encoding", accept_encoding_value(accept_encoding))


def append_call_fields(
    headers: list[tuple[bytes, bytes]],
    encoding: str | None,
    accept_encoding: Sequence[str],
    metadata: Metadata | None,
) -> list[tuple[bytes, bytes]]:
    """Append what requests and responses both end with; return ``headers``.

    ``grpc-encoding`` (unless None/identity), ``grpc-accept-encoding`` (unless
    empty), then the custom metadata.
    """
    encoding_field = grpc_encoding_field(encoding)
    if encoding_field is not None:
        headers.append(encoding_field)
    accept_field = grpc_accept_encoding_field(accept_encoding)
    if accept_field is not None:
        headers.append(accept_field)
    if metadata is not None:
        headers += metadata.to_headers()
    return headers
