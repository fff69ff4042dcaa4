"""gRPC header blocks: build what we send, validate and parse what we receive.

Sources: grpc/grpc ``doc/PROTOCOL-HTTP2.md`` (Request-Headers, Response-Headers,
Trailers, Trailers-Only), ``doc/http-grpc-status-mapping.md`` (answers from
things that are not gRPC servers) and RFC 9113 section 8 (what makes an
HTTP/2 header block malformed).

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

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

from ._compression import (
    IDENTITY,
    SUPPORTED_ENCODINGS,
    accept_encoding_value,
    parse_accept_encoding,
)
from ._errors import LocalProtocolError, RemoteProtocolError
from ._metadata import DEFAULT_MAX_METADATA_SIZE, Metadata, _decode_bin, _quote
from ._status import Status, StatusCode
from ._status_codec import (
    decode_grpc_message,
    encode_grpc_message,
    http_status_to_code,
    parse_grpc_status,
)
from ._timeout import decode_timeout, encode_timeout

__all__ = [
    "DEFAULT_USER_AGENT",
    "RequestHead",
    "RequestRejected",
    "ResponseHead",
    "build_request_headers",
    "build_response_headers",
    "build_trailers",
    "build_trailers_only",
    "parse_request_headers",
    "parse_response_headers",
    "parse_trailers",
    "parse_trailers_only",
]

#: The ``user-agent`` we send, in the "grpc-" Language "/" Version spirit of
#: PROTOCOL-HTTP2.md "User Agents", naming this implementation.
DEFAULT_USER_AGENT: str = "puregrpc-python/0.1.0"

# HTTP/2 error code for RST_STREAM on a malformed request (RFC 9113 §7, §8.1.1).
_PROTOCOL_ERROR = 0x1

# RFC 9113 §6.5.2: a header list is sized as name + value + 32 per field.
# PROTOCOL-HTTP2.md asks size limits on Request-Headers to count the same way.
_FIELD_OVERHEAD = 32


# --- Validation tables -------------------------------------------------------------

# Pseudo-headers each block may carry (RFC 9113 §8.3). gRPC never uses CONNECT
# or extended CONNECT, so ``:protocol`` is refused like any unknown one.
_REQUEST_PSEUDO: frozenset[bytes] = frozenset({b":method", b":scheme", b":path", b":authority"})
_RESPONSE_PSEUDO: frozenset[bytes] = frozenset({b":status"})
_NO_PSEUDO: frozenset[bytes] = frozenset()

# What _scan does with a regular field, by name. Anything not listed is custom
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


class _Malformed(Exception):
    """A header block violating RFC 9113 §8.2-8.3; each parser re-raises it in its own terms."""


def _bad_name(name: bytes) -> str:
    """Explain why a regular field name failed the character check."""
    if name.lower() != name:
        return (
            f"header name {_quote(name)} contains upper-case letters (HTTP/2 requires lower-case)"
        )
    return f"header name {_quote(name)} contains a character not allowed in HTTP/2 field names"


def _scan(
    headers: Sequence[tuple[bytes, bytes]], pseudo_allowed: frozenset[bytes], block: str
) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], int]:
    """Validate one received header block and split it up, in a single pass.

    Returns ``(fields, custom, size)``: the pseudo-headers and gRPC fields by
    name (the last one wins for repeated gRPC fields, as in grpc-go), the
    custom metadata fields in order, and the block's size as HTTP/2 counts it.
    Raises :class:`_Malformed` naming the first violation; ``block`` names the
    block in that message ("request headers", "trailers", ...).
    """
    fields: dict[bytes, bytes] = {}
    custom: list[tuple[bytes, bytes]] = []
    regular_seen = False
    size = _FIELD_OVERHEAD * len(headers)
    kind_of = _KIND.get
    for name, value in headers:
        value_length = len(value)
        size += len(name) + value_length
        # Values first, for every field (RFC 9113 §8.2.1). An int operand
        # makes ``in`` a plain memchr, several times faster than a bytes
        # needle; strip() finds edge whitespace without a Python loop.
        if 10 in value or 13 in value or 0 in value:
            raise _Malformed(
                f"{block}: value of {_quote(name)} contains NUL, CR or LF: {_quote(value)}"
            )
        if len(value.strip(b" \t")) != value_length:
            raise _Malformed(f"{block}: value of {_quote(name)} has leading or trailing whitespace")
        kind = kind_of(name)
        if kind is None:
            if name[:1] == b":":
                # RFC 9113 §8.3: pseudo-headers are defined per block type,
                # appear once, and all come before the regular fields.
                if name not in pseudo_allowed:
                    raise _Malformed(f"{block}: pseudo-header {_quote(name)} is not allowed here")
                if regular_seen:
                    raise _Malformed(
                        f"{block}: pseudo-header {_quote(name)} after a regular header"
                    )
                if name in fields:
                    raise _Malformed(f"{block}: pseudo-header {_quote(name)} is repeated")
                fields[name] = value
                continue
            regular_seen = True
            if not name:
                raise _Malformed(f"{block}: empty header name")
            if name.translate(None, _NAME_BYTES):
                raise _Malformed(f"{block}: {_bad_name(name)}")
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
                raise _Malformed(f"{block}: more than one host header")
            fields[name] = value
            custom.append((name, value))
        elif kind == _TE:
            # Token comparison is case-insensitive (RFC 9110 §10.1.4).
            if value.lower() != b"trailers":
                raise _Malformed(f"{block}: te header must be 'trailers', got {_quote(value)}")
        else:
            raise _Malformed(f"{block}: connection-specific header {_quote(name)} is not allowed")
    return fields, custom, size


def _is_grpc_content_type(value: bytes) -> bool:
    """True for ``application/grpc``, optionally followed by ``+subtype`` or ``;params``.

    PROTOCOL-HTTP2.md, Content-Type; media types compare case-insensitively.
    ``application/grpcx`` or ``application/grpc-web`` are not gRPC.
    """
    if value == b"application/grpc" or value == b"application/grpc+proto":
        return True  # fast path: what every gRPC implementation sends
    lowered = value.lower()
    return lowered.startswith(b"application/grpc") and (len(lowered) == 16 or lowered[16] in b"+;")


def _describe_content_type(value: bytes | None) -> str:
    """``"content-type 'text/html'"`` or ``"no content-type"``, for error messages."""
    return "no content-type" if value is None else f"content-type {_quote(value)}"


def _http_status_text(http_status: int) -> str:
    """``"HTTP status 503 (Service Unavailable)"``, for synthesized messages."""
    try:
        phrase = HTTPStatus(http_status).phrase
    except ValueError:
        return f"HTTP status {http_status}"
    return f"HTTP status {http_status} ({phrase})"


# --- Requests ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """A validated gRPC request header block, as the server sees it."""

    #: ``/package.Service/Method``.
    path: str
    #: ``package.Service``.
    service: str
    #: ``Method``.
    method: str
    #: ``:authority``, or ``host`` when the client sent only that.
    authority: str
    #: ``:scheme`` (``http`` or ``https``).
    scheme: str
    #: The full content-type, e.g. ``application/grpc+proto``.
    content_type: str
    #: Seconds until the deadline, from ``grpc-timeout``; None for no deadline.
    timeout: float | None
    #: ``grpc-encoding`` of the client's messages; ``identity`` when absent.
    encoding: str
    #: ``grpc-accept-encoding``, lower-cased; empty when absent.
    accept_encoding: tuple[str, ...]
    #: ``user-agent``, if sent.
    user_agent: str | None
    #: Custom metadata (including ``user-agent``, which grpcio also exposes).
    metadata: Metadata


class RequestRejected(RemoteProtocolError):
    """A request the server refuses before any handler runs, with how to answer it.

    * ``reset_code`` not None: the block is malformed HTTP/2 (RFC 9113
      §8.1.1); reset the stream with this HTTP/2 error code and send nothing
      else. ``http_status`` and ``code`` are then only descriptive.
    * otherwise: answer with a trailers-only response,
      ``build_trailers_only(Status(code=e.code, details=str(e)),
      http_status=e.http_status, extra_headers=e.extra_headers)``.
      ``http_status`` is 200 for a gRPC-level refusal (bad path, timeout,
      encoding, metadata) and 405/415 when the request is not gRPC at all.
    """

    def __init__(
        self,
        message: str,
        code: StatusCode,
        *,
        http_status: int = 200,
        reset_code: int | None = None,
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message, code)
        #: The ``:status`` of the answer.
        self.http_status = http_status
        #: The RST_STREAM error code to answer with instead, if not None.
        self.reset_code = reset_code
        #: Fields to add to the answer, after content-type.
        self.extra_headers: tuple[tuple[bytes, bytes], ...] = tuple(extra_headers)


def _reset(message: str) -> RequestRejected:
    """A rejection for a malformed HTTP/2 request: RST_STREAM PROTOCOL_ERROR."""
    return RequestRejected(
        message, StatusCode.INTERNAL, http_status=400, reset_code=_PROTOCOL_ERROR
    )


# Constant fields, built once: every call sends or compares them.
_METHOD_POST = (b":method", b"POST")
_SCHEME_FIELDS = {"http": (b":scheme", b"http"), "https": (b":scheme", b"https")}
_CONTENT_TYPE_GRPC = (b"content-type", b"application/grpc")
_TE_TRAILERS = (b"te", b"trailers")
_DEFAULT_USER_AGENT_FIELD = (b"user-agent", DEFAULT_USER_AGENT.encode("ascii"))
_DEFAULT_ACCEPT_ENCODING_FIELD = (b"grpc-accept-encoding", accept_encoding_value())
_ENCODING_FIELDS = {
    name: (b"grpc-encoding", name.encode("ascii"))
    for name in SUPPORTED_ENCODINGS
    if name != IDENTITY
}
_STATUS_200 = (b":status", b"200")
_GRPC_STATUS_FIELDS = {
    code: (b"grpc-status", str(int(code)).encode("ascii")) for code in StatusCode
}
# RFC 9110 §15.5.6: a 405 response must say which methods are allowed.
_ALLOW_POST = ((b"allow", b"POST"),)
# compression.md: an UNIMPLEMENTED for an unknown encoding says what we accept.
_ACCEPT_ENCODING_EXTRA = (_DEFAULT_ACCEPT_ENCODING_FIELD,)
_SUPPORTED_TEXT = ", ".join(SUPPORTED_ENCODINGS)
# Received grpc-encoding value -> its name, for the encodings we support.
_ENCODING_NAMES = {name.encode("ascii"): name for name in SUPPORTED_ENCODINGS}


def _ascii(what: str, value: str) -> bytes:
    """Encode an outgoing header value as ASCII, or say which one is not."""
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} must be ASCII, got {value!r}") from None


def _encoding_field(encoding: str | None) -> tuple[bytes, bytes] | None:
    """The ``grpc-encoding`` field for ``encoding``; None for no compression."""
    if encoding is None or encoding == IDENTITY:
        return None  # absent means identity (PROTOCOL-HTTP2.md, Message-Encoding)
    field = _ENCODING_FIELDS.get(encoding)
    if field is None:
        raise LocalProtocolError(
            f"cannot send with unsupported encoding {encoding!r}; supported: {_SUPPORTED_TEXT}"
        )
    return field


def _accept_encoding_field(accept_encoding: Sequence[str]) -> tuple[bytes, bytes] | None:
    """The ``grpc-accept-encoding`` field; None when the list is empty."""
    if accept_encoding is SUPPORTED_ENCODINGS:
        return _DEFAULT_ACCEPT_ENCODING_FIELD
    if not accept_encoding:
        return None
    return (b"grpc-accept-encoding", accept_encoding_value(accept_encoding))


def build_request_headers(
    *,
    path: str,
    authority: str,
    scheme: str = "http",
    metadata: Metadata | None = None,
    timeout: float | None = None,
    encoding: str | None = None,
    accept_encoding: Sequence[str] = SUPPORTED_ENCODINGS,
    user_agent: str = DEFAULT_USER_AGENT,
    content_type: bytes = b"application/grpc",
) -> list[tuple[bytes, bytes]]:
    """Build the request header block that opens a call.

    Order: ``:method POST``, ``:scheme``, ``:path``, ``:authority``,
    ``content-type``, ``te: trailers`` (which detects proxies that would drop
    trailers), ``user-agent``, ``grpc-timeout`` (if ``timeout`` is not None),
    ``grpc-encoding`` (unless None/identity), ``grpc-accept-encoding`` (unless
    empty), then ``metadata``: Call-Definition before Custom-Metadata, as
    PROTOCOL-HTTP2.md asks.

    Raises :class:`LocalProtocolError` for a path not starting with ``/``,
    non-ASCII text, an unsupported encoding or an unencodable timeout.
    """
    if not path.startswith("/"):
        raise LocalProtocolError(f"request path must start with '/', got {path!r}")
    scheme_field = _SCHEME_FIELDS.get(scheme) or (b":scheme", _ascii("scheme", scheme))
    headers = [
        _METHOD_POST,
        scheme_field,
        (b":path", _ascii("request path", path)),
        (b":authority", _ascii("authority", authority)),
        _CONTENT_TYPE_GRPC
        if content_type == b"application/grpc"
        else (b"content-type", content_type),
        _TE_TRAILERS,
        _DEFAULT_USER_AGENT_FIELD
        if user_agent == DEFAULT_USER_AGENT
        else (b"user-agent", _ascii("user agent", user_agent)),
    ]
    if timeout is not None:
        headers.append((b"grpc-timeout", encode_timeout(timeout).encode("ascii")))
    encoding_field = _encoding_field(encoding)
    if encoding_field is not None:
        headers.append(encoding_field)
    accept_field = _accept_encoding_field(accept_encoding)
    if accept_field is not None:
        headers.append(accept_field)
    if metadata is not None:
        headers += metadata.to_headers()
    return headers


def parse_request_headers(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> RequestHead:
    """Validate and parse a received request header block (server side).

    Raises :class:`RequestRejected`, checked in this order:

    1. malformed HTTP/2 (see the module docstring; also a missing
       ``:method``/``:scheme``/``:path``, an empty ``:path``, neither
       ``:authority`` nor ``host``, or the two disagreeing): ``reset_code``
       PROTOCOL_ERROR;
    2. ``:method`` not POST: 405 + INTERNAL (as grpc-go answers);
    3. content-type missing or not ``application/grpc[+x|;x]``: 415 +
       INTERNAL (PROTOCOL-HTTP2.md: "SHOULD respond with HTTP status of 415");
    4. path not ``/service/method``: 200 + UNIMPLEMENTED, "malformed method name";
    5. the block over ``max_metadata_size`` (name + value + 32 per field):
       200 + RESOURCE_EXHAUSTED;
    6. malformed ``grpc-timeout``: 200 + INTERNAL;
    7. unsupported ``grpc-encoding``: 200 + UNIMPLEMENTED, with a
       ``grpc-accept-encoding`` extra header (compression.md);
    8. a ``-bin`` value that is not base64: 200 + INTERNAL.
    """
    try:
        fields, custom, size = _scan(headers, _REQUEST_PSEUDO, "request headers")
    except _Malformed as exc:
        raise _reset(str(exc)) from None
    get = fields.get
    method = get(b":method")
    scheme = get(b":scheme")
    path = get(b":path")
    if method is None or scheme is None or path is None:
        missing = [
            n.decode()
            for n, v in ((b":method", method), (b":scheme", scheme), (b":path", path))
            if v is None
        ]
        raise _reset(f"request headers lack required pseudo-header {', '.join(missing)}")
    if not path:
        raise _reset("request headers: empty :path")  # RFC 9113 §8.3.1
    # RFC 9113 §8.3.1: a request names its target by :authority or Host, and
    # when both are present they must agree (h2 enforces the same).
    authority = get(b":authority")
    host = get(b"host")
    if authority is None:
        if host is None:
            raise _reset("request headers have neither :authority nor host")
        authority = host
    elif host is not None and host != authority:
        raise _reset(f"request :authority {_quote(authority)} does not match host {_quote(host)}")

    if method != b"POST":
        raise RequestRejected(
            f"gRPC requires :method POST, got {_quote(method)}",
            StatusCode.INTERNAL,
            http_status=405,
            extra_headers=_ALLOW_POST,
        )
    content_type = get(b"content-type")
    if content_type is None:
        raise RequestRejected(
            "missing content-type: gRPC requests use application/grpc",
            StatusCode.INTERNAL,
            http_status=415,
        )
    if not _is_grpc_content_type(content_type):
        raise RequestRejected(
            f"invalid gRPC request content-type {_quote(content_type)}: expected application/grpc",
            StatusCode.INTERNAL,
            http_status=415,
        )

    # Path -> /Service/Method (PROTOCOL-HTTP2.md, Path). Method names are
    # protobuf identifiers, so anything but ASCII is malformed too.
    try:
        path_text = path.decode("ascii")
    except UnicodeDecodeError:
        path_text = ""
    service, slash, method_name = path_text[1:].partition("/")
    if path_text[:1] != "/" or not service or not slash or not method_name or "/" in method_name:
        raise RequestRejected(f"malformed method name: {_quote(path)}", StatusCode.UNIMPLEMENTED)

    if size > max_metadata_size:
        raise RequestRejected(
            f"request header block is {size} bytes, over the limit of {max_metadata_size} bytes"
            " (counted as name + value + 32 per header)",
            StatusCode.RESOURCE_EXHAUSTED,
        )
    raw_timeout = get(b"grpc-timeout")
    try:
        timeout = None if raw_timeout is None else decode_timeout(raw_timeout)
    except RemoteProtocolError as exc:
        raise RequestRejected(str(exc), exc.code) from None
    raw_encoding = get(b"grpc-encoding")
    if raw_encoding is None:
        encoding = IDENTITY  # absent means identity (PROTOCOL-HTTP2.md, Message-Encoding)
    else:
        # One lookup both decodes a supported name and proves it supported.
        known = _ENCODING_NAMES.get(raw_encoding)
        if known is None:
            raise RequestRejected(
                f"grpc-encoding {_quote(raw_encoding.decode('latin-1'))} is not supported;"
                f" supported encodings: {_SUPPORTED_TEXT}",
                StatusCode.UNIMPLEMENTED,
                extra_headers=_ACCEPT_ENCODING_EXTRA,
            )
        encoding = known
    raw_accept = get(b"grpc-accept-encoding")
    user_agent = get(b"user-agent")
    try:
        metadata = Metadata.from_headers(custom, max_size=max_metadata_size)
    except RemoteProtocolError as exc:
        raise RequestRejected(str(exc), exc.code) from None
    return RequestHead(
        path=path_text,
        service=service,
        method=method_name,
        authority=authority.decode("latin-1"),
        scheme=scheme.decode("latin-1"),
        content_type=content_type.decode("latin-1"),
        timeout=timeout,
        encoding=encoding,
        accept_encoding=() if raw_accept is None else parse_accept_encoding(raw_accept),
        user_agent=None if user_agent is None else user_agent.decode("latin-1"),
        metadata=metadata,
    )


# --- Responses and trailers: building (server side) -------------------------------


def build_response_headers(
    *,
    metadata: Metadata | None = None,
    encoding: str | None = None,
    accept_encoding: Sequence[str] = SUPPORTED_ENCODINGS,
    content_type: bytes = b"application/grpc",
) -> list[tuple[bytes, bytes]]:
    """Build the response header block (initial metadata), sent without END_STREAM.

    Order: ``:status 200``, ``content-type``, ``grpc-encoding`` (unless
    None/identity), ``grpc-accept-encoding`` (unless empty), then ``metadata``.
    """
    headers = [
        _STATUS_200,
        _CONTENT_TYPE_GRPC
        if content_type == b"application/grpc"
        else (b"content-type", content_type),
    ]
    encoding_field = _encoding_field(encoding)
    if encoding_field is not None:
        headers.append(encoding_field)
    accept_field = _accept_encoding_field(accept_encoding)
    if accept_field is not None:
        headers.append(accept_field)
    if metadata is not None:
        headers += metadata.to_headers()
    return headers


def _append_status(
    headers: list[tuple[bytes, bytes]], status: Status, metadata: Metadata | None
) -> list[tuple[bytes, bytes]]:
    """Append the Trailers fields (PROTOCOL-HTTP2.md, "Responses") and return ``headers``."""
    # "Status must be sent in Trailers even if the status code is OK."
    headers.append(_GRPC_STATUS_FIELDS[status.code])
    if status.details:
        # Percent-encoding keeps any text (UTF-8, newlines) a legal field value.
        message = encode_grpc_message(status.details).encode("ascii")
        # ...except edge spaces, which it leaves alone but RFC 9113 §8.2.1
        # makes malformed (tabs already became %09): escape those as %20.
        if message[0] == 0x20 or message[-1] == 0x20:
            core = message.strip(b" ")
            lead = len(message) - len(message.lstrip(b" "))
            trail = len(message) - lead - len(core)
            message = b"%20" * lead + core + b"%20" * trail
        headers.append((b"grpc-message", message))
    if status.details_bin is not None:
        # Binary header: base64 without padding, as PROTOCOL-HTTP2.md says to emit.
        encoded = binascii.b2a_base64(status.details_bin, newline=False).rstrip(b"=")
        headers.append((b"grpc-status-details-bin", encoded))
    if metadata is not None:
        headers += metadata.to_headers()
    return headers


def build_trailers(status: Status, metadata: Metadata | None = None) -> list[tuple[bytes, bytes]]:
    """Build the trailers that end a call (sent with END_STREAM after the response headers).

    Order: ``grpc-status``, ``grpc-message`` (percent-encoded; omitted when
    empty), ``grpc-status-details-bin`` (when set), then ``metadata``.
    """
    return _append_status([], status, metadata)


def build_trailers_only(
    status: Status,
    metadata: Metadata | None = None,
    *,
    http_status: int = 200,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> list[tuple[bytes, bytes]]:
    """Build a Trailers-Only response: one HEADERS block, sent with END_STREAM.

    For calls that fail before any response headers went out: ``:status``,
    ``content-type: application/grpc``, ``extra_headers`` (e.g. the
    ``grpc-accept-encoding`` of a :class:`RequestRejected`), then the trailer
    fields as :func:`build_trailers` orders them.
    """
    if http_status == 200:
        status_field = _STATUS_200
    elif 200 <= http_status <= 599:
        status_field = (b":status", str(http_status).encode("ascii"))
    else:
        # 1xx is not a final response; anything else is not an HTTP status.
        raise LocalProtocolError(f"trailers-only :status must be 200-599, got {http_status}")
    headers = [status_field, _CONTENT_TYPE_GRPC]
    headers += extra_headers
    return _append_status(headers, status, metadata)


# --- Responses and trailers: parsing (client side) --------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead:
    """A validated response header block (initial metadata), as the client sees it."""

    #: ``:status``; always 200 here (anything else raised).
    http_status: int
    #: The full content-type, e.g. ``application/grpc+proto``.
    content_type: str
    #: ``grpc-encoding`` of the server's messages; ``identity`` when absent.
    #: Not checked against what we support: only a *compressed* message in an
    #: unknown encoding is an error (compression.md: INTERNAL on the client).
    encoding: str
    #: ``grpc-accept-encoding`` of the server, lower-cased; empty when absent.
    accept_encoding: tuple[str, ...]
    #: The server's initial metadata.
    metadata: Metadata


def _scan_response(
    headers: Sequence[tuple[bytes, bytes]],
    pseudo_allowed: frozenset[bytes],
    block: str,
    max_metadata_size: int,
) -> tuple[dict[bytes, bytes], Metadata]:
    """Scan a block from the server; malformed or oversized blocks raise RemoteProtocolError."""
    try:
        fields, custom, size = _scan(headers, pseudo_allowed, block)
    except _Malformed as exc:
        # The stream is unusable; INTERNAL is what a PROTOCOL_ERROR reset
        # maps to (PROTOCOL-HTTP2.md, "Errors").
        raise RemoteProtocolError(str(exc), StatusCode.INTERNAL) from None
    if size > max_metadata_size:
        raise RemoteProtocolError(
            f"{block}: {size} bytes, over the limit of {max_metadata_size} bytes"
            " (counted as name + value + 32 per header)",
            StatusCode.RESOURCE_EXHAUSTED,
        )
    return fields, Metadata.from_headers(custom, max_size=max_metadata_size)


def _parse_http_status(raw: bytes | None, block: str) -> int:
    """Parse ``:status``: exactly three ASCII digits (RFC 9110 §15), required in responses."""
    if raw is None:
        raise RemoteProtocolError(f"{block}: missing :status pseudo-header", StatusCode.INTERNAL)
    if len(raw) != 3 or not raw.isdigit():
        raise RemoteProtocolError(f"{block}: malformed :status {_quote(raw)}", StatusCode.INTERNAL)
    return int(raw)


def _status_from_fields(raw_status: bytes, fields: dict[bytes, bytes]) -> Status:
    """Build the :class:`Status` of a block that carried ``grpc-status``.

    A malformed ``grpc-status`` or ``grpc-status-details-bin`` raises
    :class:`RemoteProtocolError` with INTERNAL; ``grpc-message`` never fails
    to decode (PROTOCOL-HTTP2.md forbids erroring on it).
    """
    code = parse_grpc_status(raw_status)
    raw_message = fields.get(b"grpc-message")
    raw_details = fields.get(b"grpc-status-details-bin")
    return Status(
        code=code,
        details=decode_grpc_message(raw_message) if raw_message else "",
        # Padded or not: PROTOCOL-HTTP2.md requires accepting both.
        details_bin=None
        if raw_details is None
        else _decode_bin("grpc-status-details-bin", raw_details),
    )


def parse_response_headers(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> ResponseHead:
    """Validate and parse response headers that arrived *without* END_STREAM.

    Raises :class:`RemoteProtocolError` when this is not a usable gRPC response:

    * malformed HTTP/2 (a pseudo-header other than ``:status``, upper-case or
      illegal names, connection-specific fields, bad values) or a missing or
      malformed ``:status``: INTERNAL;
    * ``:status`` other than 200: the code http-grpc-status-mapping.md gives
      that status, with a message starting ``"HTTP status 503 ..."``;
    * content-type missing or not ``application/grpc*``: the mapping's code
      for 200, UNKNOWN (an intermediary answered, not a gRPC server);
    * an oversized block: RESOURCE_EXHAUSTED; bad ``-bin`` base64: INTERNAL.
    """
    fields, metadata = _scan_response(
        headers, _RESPONSE_PSEUDO, "response headers", max_metadata_size
    )
    http_status = _parse_http_status(fields.get(b":status"), "response headers")
    content_type = fields.get(b"content-type")
    if http_status != 200:
        raise RemoteProtocolError(
            f"{_http_status_text(http_status)}: the server answered with an HTTP error,"
            f" not a gRPC response ({_describe_content_type(content_type)})",
            http_status_to_code(http_status),
        )
    if content_type is None or not _is_grpc_content_type(content_type):
        raise RemoteProtocolError(
            f"response has {_describe_content_type(content_type)}, not application/grpc:"
            " the server is not a gRPC server",
            http_status_to_code(http_status),
        )
    raw_encoding = fields.get(b"grpc-encoding")
    raw_accept = fields.get(b"grpc-accept-encoding")
    return ResponseHead(
        http_status=http_status,
        content_type=content_type.decode("latin-1"),
        encoding=IDENTITY if raw_encoding is None else raw_encoding.decode("latin-1"),
        accept_encoding=() if raw_accept is None else parse_accept_encoding(raw_accept),
        metadata=metadata,
    )


def parse_trailers(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> tuple[Status, Metadata]:
    """Parse the trailers (END_STREAM) that follow response headers.

    Returns the call's :class:`Status` and trailing metadata. Trailers without
    ``grpc-status`` yield ``Status(INTERNAL, "missing grpc-status in
    trailers")``. Raises :class:`RemoteProtocolError` with INTERNAL for any
    pseudo-header (RFC 9113 §8.1) or other malformed field, a malformed
    ``grpc-status`` or ``grpc-status-details-bin``; RESOURCE_EXHAUSTED when
    the block exceeds ``max_metadata_size``.
    """
    fields, metadata = _scan_response(headers, _NO_PSEUDO, "trailers", max_metadata_size)
    raw_status = fields.get(b"grpc-status")
    if raw_status is None:
        return Status(code=StatusCode.INTERNAL, details="missing grpc-status in trailers"), metadata
    return _status_from_fields(raw_status, fields), metadata


def parse_trailers_only(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> tuple[Status, Metadata]:
    """Parse a Trailers-Only response: the first and only block, with END_STREAM.

    It carries ``:status`` and the trailer fields together. When
    ``grpc-status`` is present it wins, whatever ``:status`` and content-type
    say (http-grpc-status-mapping.md: "If grpc-status was provided, it must be
    used"). Without it the status is synthesized from ``:status`` by that
    mapping (200 -> UNKNOWN, 503 -> UNAVAILABLE, ...), with a message starting
    ``"HTTP status N"`` (PROTOCOL-HTTP2.md: implementations "must synthesize
    a Status & Status-Message").

    Raises :class:`RemoteProtocolError` like :func:`parse_response_headers`
    for a malformed block or ``:status``, and like :func:`parse_trailers` for
    malformed status fields.
    """
    fields, metadata = _scan_response(
        headers, _RESPONSE_PSEUDO, "trailers-only response", max_metadata_size
    )
    http_status = _parse_http_status(fields.get(b":status"), "trailers-only response")
    raw_status = fields.get(b"grpc-status")
    if raw_status is not None:
        return _status_from_fields(raw_status, fields), metadata
    content_type = fields.get(b"content-type")
    message = f"{_http_status_text(http_status)} without grpc-status"
    if content_type is None or not _is_grpc_content_type(content_type):
        message += f" ({_describe_content_type(content_type)}: not a gRPC server)"
    return Status(code=http_status_to_code(http_status), details=message), metadata
