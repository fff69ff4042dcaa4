"""Request header blocks: what a client sends and what a server accepts.

Sources: grpc/grpc ``doc/PROTOCOL-HTTP2.md`` (Request-Headers) and RFC 9113
section 8.1.1 (a malformed request is answered with RST_STREAM). See
:mod:`._header_fields` for how every received block is validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._compression import IDENTITY, SUPPORTED_ENCODINGS, parse_accept_encoding
from ._errors import LocalProtocolError, RemoteProtocolError
from ._header_fields import (
    CONTENT_TYPE_GRPC,
    DEFAULT_ACCEPT_ENCODING_FIELD,
    ENCODING_NAMES,
    REQUEST_PSEUDO,
    SUPPORTED_TEXT,
    Malformed,
    append_call_fields,
    ascii_value,
    is_grpc_content_type,
    scan,
)
from ._metadata import DEFAULT_MAX_METADATA_SIZE, Metadata, _quote
from ._status import StatusCode
from ._timeout import decode_timeout, encode_timeout

#: The ``user-agent`` we send, in the "grpc-" Language "/" Version spirit of
#: PROTOCOL-HTTP2.md "User Agents", naming this implementation.
DEFAULT_USER_AGENT: str = "puregrpc-python/0.1.0"

# HTTP/2 error code for RST_STREAM on a malformed request (RFC 9113 §7, §8.1.1).
_PROTOCOL_ERROR = 0x1


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

_TE_TRAILERS = (b"te", b"trailers")

_DEFAULT_USER_AGENT_FIELD = (b"user-agent", DEFAULT_USER_AGENT.encode("ascii"))

# RFC 9110 §15.5.6: a 405 response must say which methods are allowed.
_ALLOW_POST = ((b"allow", b"POST"),)

# compression.md: an UNIMPLEMENTED for an unknown encoding says what we accept.
_ACCEPT_ENCODING_EXTRA = (DEFAULT_ACCEPT_ENCODING_FIELD,)


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
    scheme_field = _SCHEME_FIELDS.get(scheme) or (b":scheme", ascii_value("scheme", scheme))
    headers = [
        _METHOD_POST,
        scheme_field,
        (b":path", ascii_value("request path", path)),
        (b":authority", ascii_value("authority", authority)),
        CONTENT_TYPE_GRPC
        if content_type == b"application/grpc"
        else (b"content-type", content_type),
        _TE_TRAILERS,
        _DEFAULT_USER_AGENT_FIELD
        if user_agent == DEFAULT_USER_AGENT
        else (b"user-agent", ascii_value("user agent", user_agent)),
    ]
    if timeout is not None:
        headers.append((b"grpc-timeout", encode_timeout(timeout).encode("ascii")))
    return append_call_fields(headers, encoding, accept_encoding, metadata)


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
        fields, custom, size = scan(headers, REQUEST_PSEUDO, "request headers")
    except Malformed as exc:
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
    if not is_grpc_content_type(content_type):
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
        known = ENCODING_NAMES.get(raw_encoding)
        if known is None:
            raise RequestRejected(
                f"grpc-encoding {_quote(raw_encoding.decode('latin-1'))} is not supported;"
                f" supported encodings: {SUPPORTED_TEXT}",
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
