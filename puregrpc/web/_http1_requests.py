"""What an HTTP/1.1 request head asks of a gRPC-Web server, decided without I/O.

:func:`classify` turns one request head into one of three answers, in this
order of checks (docs/grpc-web.md has the table):

* :class:`PlainAnswer`: the request is no gRPC-Web call - HTTP/1.0 (505), a
  CORS preflight (204 or 403), GET/HEAD without a site (404), another method
  (405), another content-type (415; native gRPC 426), a
  malformed head (400). A short text body says why.
* :class:`~._static.PageAnswer`: a GET or HEAD, answered by the server's
  :class:`~._static.StaticSite`.
* :class:`StatusAnswer`: a gRPC-Web call refused before it starts - an
  origin not allowed (PERMISSION_DENIED, 403), a declared body over the
  receive limit (RESOURCE_EXHAUSTED, 413), what the native header parser
  refuses (a bad path, ``grpc-timeout``, metadata). A trailers-only answer.
* :class:`CallRequest`: a gRPC-Web call to start, its head parsed exactly as
  a native one (:func:`~puregrpc.wire.codecs.parse_request_headers` on the
  fields as HTTP/2 would carry them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..wire import ConnectionConfig, Status, StatusCode
from ..wire.codecs import PREFIX_LENGTH, RequestHead, RequestRejected, parse_request_headers
from ._content_type import WebMode, is_web_content_type, web_mode
from ._cors import CorsPolicy
from ._static import PageAnswer, StaticSite

#: Request fields that belong to the HTTP/1.1 connection, not to the call.
HOP_BY_HOP = frozenset(
    (
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"content-length",
        b"upgrade",
        b"te",
        b"trailer",
    )
)

_GRPC_CONTENT_TYPE = (b"content-type", b"application/grpc")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlainAnswer:
    """An HTTP answer to a request that is no gRPC-Web call."""

    #: The HTTP status.
    status_code: int
    #: Why, for the text body (empty: no body).
    text: str
    #: Fields to send besides content-type and content-length.
    fields: tuple[tuple[bytes, bytes], ...] = ()
    #: Close the connection after the answer.
    close: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusAnswer:
    """A trailers-only gRPC-Web answer to a call refused before it starts."""

    #: The call's mode (the answer's content-type).
    mode: WebMode
    #: The status, in the answer's head.
    status: Status
    #: The HTTP status (200 but for the origin and size refusals).
    http_status: int = 200
    #: Close the connection after the answer (the body will not be read).
    close: bool = False
    #: The allowed ``Origin`` to answer with CORS fields (None: none).
    origin: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRequest:
    """A gRPC-Web call to start."""

    #: Binary or text.
    mode: WebMode
    #: The head, parsed as a native gRPC request.
    head: RequestHead
    #: The ``Origin`` the call came from (None: not from a browser page).
    origin: bytes | None


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def allowed_methods(site: StaticSite | None) -> bytes:
    """The ``allow`` field of a 405 (RFC 9110 §15.5.6): GET and HEAD with a site."""
    return b"GET, HEAD, POST, OPTIONS" if site is not None else b"POST, OPTIONS"


def classify(
    method: bytes,
    target: bytes,
    http_version: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    cors: CorsPolicy,
    scheme: str,
    config: ConnectionConfig,
    site: StaticSite | None = None,
) -> PlainAnswer | PageAnswer | StatusAnswer | CallRequest:
    """Decide what to do with one request head (``headers`` lower-case, as h11 gives them)."""
    found = dict(reversed(headers))  # the first of repeated fields
    host = _text(found.get(b"host", b""))
    origin = found.get(b"origin")
    if http_version != b"1.1":
        return PlainAnswer(status_code=505, text="HTTP/1.1 or HTTP/2 only", close=True)
    if method == b"OPTIONS":
        requested = found.get(b"access-control-request-headers")
        allowed = cors.preflight_headers(origin, requested, scheme=scheme, authority=host)
        if allowed is None:
            refused = "CORS preflight refused: this origin may not call the server"
            return PlainAnswer(status_code=403, text=refused)
        return PlainAnswer(status_code=204, text="", fields=tuple(allowed))
    if method in (b"GET", b"HEAD") and site is not None:
        return site.answer(target, found.get(b"if-none-match"))
    if method in (b"GET", b"HEAD"):
        served = "nothing here: this port serves gRPC (HTTP/2) and gRPC-Web (POST)"
        return PlainAnswer(status_code=404, text=served)
    if method != b"POST":
        return PlainAnswer(
            status_code=405,
            text=f"method {_text(method)} is not allowed",
            fields=((b"allow", allowed_methods(site)),),
        )
    content_type = found.get(b"content-type", b"")
    if not is_web_content_type(content_type):
        if content_type.lower().startswith(b"application/grpc"):
            return PlainAnswer(
                status_code=426,
                text="native gRPC needs HTTP/2: open the connection with the HTTP/2 preface"
                " (prior knowledge); over HTTP/1.1 this port serves gRPC-Web",
                fields=((b"upgrade", b"h2c"),),
            )
        return PlainAnswer(
            status_code=415, text=f"content-type {_text(content_type)!r} is not gRPC-Web"
        )
    mode = web_mode(content_type, found.get(b"accept"))
    if mode is None:
        return PlainAnswer(
            status_code=415,
            text=f"gRPC-Web content-type {_text(content_type)!r} is not served: use +proto",
        )
    if not cors.allows(origin, scheme=scheme, authority=host):
        denied = f"origin {_text(origin or b'')} may not call this server"
        status = Status(code=StatusCode.PERMISSION_DENIED, details=denied)
        return StatusAnswer(mode=mode, status=status, http_status=403)
    # A body of one message at most: its prefix and the receive limit
    # (4/3 of that in base64), refused up front when its length says so.
    limit = config.max_receive_message_size + PREFIX_LENGTH
    if mode.text_request:
        limit = -(-limit // 3) * 4
    length = found.get(b"content-length", b"")
    if length.isdigit() and int(length) > limit:
        over = f"request body of {int(length)} bytes is over the limit of {limit} bytes"
        status = Status(code=StatusCode.RESOURCE_EXHAUSTED, details=over)
        return StatusAnswer(mode=mode, status=status, http_status=413, close=True, origin=origin)
    # The head as HTTP/2 would carry it, so that the native parser checks it.
    fields = [
        (b":method", b"POST"),
        (b":scheme", scheme.encode("ascii")),
        (b":path", target),
        (b":authority", host.encode("latin-1")),
    ]
    fields += [
        _GRPC_CONTENT_TYPE if name == b"content-type" else (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP
    ]
    try:
        head = parse_request_headers(fields, max_metadata_size=config.max_header_list_size)
    except RequestRejected as rejected:
        if rejected.reset_code is not None:
            return PlainAnswer(status_code=400, text=str(rejected), close=True)
        status = Status(code=rejected.code, details=str(rejected))
        return StatusAnswer(mode=mode, status=status, origin=origin)
    return CallRequest(mode=mode, head=head, origin=origin)
