"""gRPC-Web on HTTP/2 streams: the server connection that serves both protocols (sans-IO).

Theory of operation
===================

:class:`WebServerConnection` is the native :class:`~puregrpc.wire.ServerConnection`
with gRPC-Web added per call, so one HTTP/2 connection carries native calls
and gRPC-Web calls side by side, and the runtime drives both alike (one
``CallStarted``, messages, one end). Native calls take exactly the native
path: a gRPC-Web request is first refused by the native header parser (its
content-type is not ``application/grpc``, or its method is ``OPTIONS``), and
only that refusal looks further:

* ``OPTIONS``: a CORS preflight, answered here (204, or 403 for an origin
  not allowed); no call is made.
* ``GET`` and ``HEAD`` with a :class:`~._static.StaticSite`: a page, its
  body queued on the stream like a call's messages (so the peer's windows
  are respected), and no call is made either.
* ``application/grpc-web[-text][+proto]``: the header block is parsed again
  as a native one (content-type ``application/grpc``), so paths, deadlines,
  metadata and limits are checked exactly as for native calls, and the call
  is recorded as a web call with its :class:`~._content_type.WebMode`.

A web call then differs in four places, each a hook of the native machine:

=====================  ====================================================
response headers       ``content-type: application/grpc-web[-text]+proto``
                       and the CORS fields, never ``grpc-encoding``
messages out           text mode: each framed message base64-encoded on
                       its own (``_queue_message``)
messages in            text mode: a :class:`~._framing.TextMessageDecoder`
the end                the trailer frame (0x80) in DATA, then END_STREAM
                       (headers first if none went out): no HTTP trailers
=====================  ====================================================

Flow control, limits and the call's lifecycle are the native ones.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import h2.errors
import h2.events
import h2.exceptions

from ..wire import (
    NULL_TRACER,
    CallStarted,
    ConnectionConfig,
    EndCause,
    Event,
    Metadata,
    ServerConnection,
    Status,
    StatusCode,
    Tracer,
)
from ..wire._lifecycle import Call, CallAction, CallState
from ..wire.codecs import RequestRejected, build_response_headers, build_trailers, frame_message
from ._content_type import WebMode, is_web_content_type, web_mode
from ._cors import CorsPolicy
from ._framing import TextMessageDecoder, encode_text, encode_trailer_frame
from ._http1_requests import allowed_methods
from ._static import StaticSite

_GRPC_CONTENT_TYPE = (b"content-type", b"application/grpc")


class WebCall:
    """What a gRPC-Web call adds to its native record: its mode and its origin."""

    __slots__ = ("mode", "origin")

    def __init__(self, mode: WebMode, origin: bytes | None) -> None:
        #: Binary or text, request and response.
        self.mode = mode
        #: The ``Origin`` of an allowed browser request (CORS fields answer it).
        self.origin = origin


def request_fields(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None, bytes | None]:
    """``:method``, content-type, accept, origin and authority (or host) of a header block."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in (b":method", b"content-type", b"accept", b"origin", b":authority", b"host"):
            found.setdefault(name, value)
    authority = found.get(b":authority", found.get(b"host"))
    return (
        found.get(b":method"),
        found.get(b"content-type"),
        found.get(b"accept"),
        found.get(b"origin"),
        authority,
    )


def web_response_fields(
    mode: WebMode, metadata: Metadata | None, cors: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """A gRPC-Web response header block: status 200, content-type, CORS, metadata."""
    headers = build_response_headers(
        metadata=metadata, accept_encoding=(), content_type=mode.content_type
    )
    return headers[:2] + cors + headers[2:]


def metadata_names(metadata: Metadata | None) -> list[bytes]:
    """The distinct header names of ``metadata`` (what CORS must expose), in order."""
    if metadata is None:
        return []
    names: list[bytes] = []
    for key in metadata.keys():  # noqa: SIM118 (Metadata.keys, not a dict's)
        name = key.encode("ascii")
        if name not in names:
            names.append(name)
    return names


class WebServerConnection(ServerConnection):
    """A server connection answering gRPC-Web requests beside native gRPC ones.

    ``cors`` decides which origins besides the server's own may call from a
    browser page; ``site`` answers GET and HEAD (None: 405, as natively).
    Everything else is :class:`~puregrpc.wire.ServerConnection`.
    """

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        tracer: Tracer = NULL_TRACER,
        cors: CorsPolicy | None = None,
        site: StaticSite | None = None,
    ) -> None:
        super().__init__(config, tracer=tracer)
        self._cors = cors if cors is not None else CorsPolicy()
        self._site = site
        #: Pages being sent (their bodies wait for window), by stream id.
        self._pages: dict[int, Call] = {}
        #: The web calls in progress, by stream id.
        self._web: dict[int, WebCall] = {}
        #: The request being looked at by _on_request (for the refusal hook).
        self._request: h2.events.RequestReceived | None = None
        #: The mode of a request being re-parsed as a web call.
        self._web_pending: WebCall | None = None
        #: Web calls in progress whose responses are base64: while there are
        #: any, messages are queued through :meth:`_queue_any_message`.
        self._text_calls = 0

    # ------------------------------------------------------------ inbound

    def _on_request(self, event: h2.events.RequestReceived, events: list[Event]) -> None:
        # Kept for the refusal hook below, which runs inside this call (the
        # reference outlives it until the next request: harmless, and cheaper
        # than clearing it on every native call).
        self._request = event
        super()._on_request(event, events)

    def _refuse(
        self, stream_id: int, rejected: RequestRejected, ended: bool, events: list[Event]
    ) -> None:
        event = self._request
        pending = self._web_pending
        if pending is not None:
            # A web request refused by the native checks (bad path, timeout,
            # metadata): the answer is a web one.
            self._web_pending = None
            status = Status(code=rejected.code, details=str(rejected))
            self._answer_web(stream_id, pending, status, ended, rejected.http_status)
            events.append(self._refusal(stream_id, status))
            return
        if event is None or rejected.http_status not in (405, 415) or event.headers is None:
            super()._refuse(stream_id, rejected, ended, events)
            return
        headers = list(event.headers)
        method, content_type, accept, origin, authority = request_fields(headers)
        scheme = "https" if (b":scheme", b"https") in headers else "http"
        host = (authority or b"").decode("latin-1")
        if method == b"OPTIONS":
            self._preflight(stream_id, headers, origin, scheme, host, ended)
            return
        if self._site is not None and rejected.http_status == 405:
            if method in (b"GET", b"HEAD"):
                self._page(stream_id, headers, method == b"HEAD", ended)
                return
            # RFC 9110 §15.5.6: the 405 names every method served here.
            rejected = RequestRejected(
                str(rejected),
                rejected.code,
                http_status=405,
                extra_headers=((b"allow", allowed_methods(self._site)),),
            )
        if content_type is None or not is_web_content_type(content_type):
            super()._refuse(stream_id, rejected, ended, events)
            return
        mode = web_mode(content_type, accept)
        if mode is None:
            unsupported = RequestRejected(
                f"gRPC-Web content-type {content_type.decode('latin-1')!r} is not served:"
                " use application/grpc-web(+proto) or application/grpc-web-text(+proto)",
                StatusCode.INTERNAL,
                http_status=415,
            )
            super()._refuse(stream_id, unsupported, ended, events)
            return
        if not self._cors.allows(origin, scheme=scheme, authority=host):
            status = Status(
                code=StatusCode.PERMISSION_DENIED,
                details=f"origin {origin.decode('latin-1') if origin else ''} may not call this"
                " server (not in its allowed gRPC-Web origins)",
            )
            self._answer_web(stream_id, WebCall(mode, None), status, ended, 403)
            events.append(self._refusal(stream_id, status))
            return
        web = WebCall(mode, origin)
        self._web_pending = web
        native = copy.copy(event)  # the same request, labelled as native gRPC
        native.headers = [
            _GRPC_CONTENT_TYPE if name == b"content-type" else (name, value)
            for name, value in headers
        ]
        super()._on_request(native, events)
        if self._take_pending() is None:
            return  # refused after all: answered in the branch above
        call = self._calls.get(stream_id)
        if call is None:
            return
        self._web[stream_id] = web
        started = events[-1]
        if isinstance(started, CallStarted):
            events[-1] = replace(started, protocol=mode.name)
        if mode.text_request:
            call.decoder = TextMessageDecoder(self.config.max_receive_message_size)
        if mode.text_response:
            self._text_calls += 1
            self._queue_message = self._queue_any_message
        if self._tracer is not None:
            self._trace("web_call", stream_id, protocol=mode.name, http="2")

    def _take_pending(self) -> WebCall | None:
        """The web call being parsed, unless its refusal took it already."""
        pending, self._web_pending = self._web_pending, None
        return pending

    def _preflight(
        self,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        origin: bytes | None,
        scheme: str,
        authority: str,
        ended: bool,
    ) -> None:
        requested = next((v for n, v in headers if n == b"access-control-request-headers"), None)
        fields = self._cors.preflight_headers(origin, requested, scheme=scheme, authority=authority)
        status = b"204" if fields is not None else b"403"
        answer = [(b":status", status), *(fields or [])]
        if self._tracer is not None:
            self._trace("web_preflight", stream_id, allowed=fields is not None)
        if self._send_last_headers(stream_id, answer) and not ended:
            self._reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    def _page(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], head_only: bool, ended: bool
    ) -> None:
        """Answer a GET or HEAD from the site: the head, then the body as flow control allows."""
        assert self._site is not None
        if not ended:
            # RFC 9110 §9.3.1: a GET body has no meaning; reading one would
            # hold connection credit that nothing consumes.
            refused = [(b":status", b"400"), (b"content-length", b"0")]
            if self._send_last_headers(stream_id, refused):
                self._reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
            return
        path = next((v for n, v in headers if n == b":path"), b"/")
        validator = next((v for n, v in headers if n == b"if-none-match"), None)
        page = self._site.answer(path, validator)
        if self._tracer is not None:
            self._trace("web_page", stream_id, path=path.decode("latin-1"), status=page.status)
        fields = [(b":status", str(page.status).encode("ascii")), *page.fields]
        if head_only or not page.body:
            self._send_last_headers(stream_id, fields)
            return
        # The body is queued like a call's messages, so that it goes out as
        # the peer's windows allow. The record is no call (the runtime never
        # hears of it, and h2's StreamEnded for the request finds nothing):
        # it is kept in _pages until its end is sent or the client resets it.
        call = Call(stream_id, max_message_size=0, grant_threshold=self._inbound.stream_threshold)
        call.advance_recv(CallAction.HEADERS)
        call.advance_recv(CallAction.RECEIVED_END)  # the request ended with its headers
        call.advance_send(CallAction.HEADERS)
        try:
            self._h2.send_headers(stream_id, fields)
        except (h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError):
            return  # reset by the client later in the same read: nobody to answer
        self._pages[stream_id] = call
        self._outbound.queue_framed(call, page.body)
        self._outbound.queue_end(call, None)

    def _answer_web(
        self, stream_id: int, web: WebCall, status: Status, ended: bool, http_status: int
    ) -> None:
        """Answer a web request that never ran: a trailers-only response (PROTOCOL-WEB.md).

        The status travels in the header block, with an empty body, as the
        spec allows for a response without messages.
        """
        headers = web_response_fields(web.mode, None, self._cors.response_headers(web.origin))
        if http_status != 200:
            headers[0] = (b":status", str(http_status).encode("ascii"))
        headers += build_trailers(status)
        if self._send_last_headers(stream_id, headers) and not ended:
            self._reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    # ----------------------------------------------------------- outbound

    def send_response_headers(
        self, stream_id: int, metadata: Metadata | None = None, *, encoding: str | None = None
    ) -> None:
        """Send the response headers; a web call's are gRPC-Web ones (no message compression)."""
        web = self._web.get(stream_id) if self._web else None
        if web is None:
            super().send_response_headers(stream_id, metadata, encoding=encoding)
            return
        call = self._call_for_send(stream_id)
        call.advance_send(CallAction.HEADERS)
        cors = self._cors.response_headers(web.origin, metadata_names=metadata_names(metadata))
        self._h2.send_headers(stream_id, web_response_fields(web.mode, metadata, cors))

    def _queue_any_message(self, call: Call, payload: bytes | memoryview, compressed: bool) -> bool:
        web = self._web.get(call.stream_id) if self._web else None
        if web is None or not web.mode.text_response:
            return self._outbound.queue_message(call, payload, compressed)
        return self._outbound.queue_framed(call, encode_text(frame_message(payload, compressed)))

    def end_call(self, stream_id: int, status: Status, metadata: Metadata | None = None) -> None:
        """End the call; a web call ends with its trailer frame in the body, then END_STREAM."""
        web = self._web.get(stream_id) if self._web else None
        if web is None:
            super().end_call(stream_id, status, metadata)
            return
        call = self._call_for_send(stream_id)
        if self._tracer is not None:
            self._trace("call_end", stream_id, code=status.code.name, message=status.details)
        if call.send_state is CallState.IDLE:
            self.send_response_headers(stream_id)
        self._outbound.queue_framed(call, self._body(web, encode_trailer_frame(status, metadata)))
        self._outbound.queue_end(call, None)

    @staticmethod
    def _body(web: WebCall, frame: bytes) -> bytes:
        return encode_text(frame) if web.mode.text_response else frame

    # ------------------------------------------------------------ endings

    def _fail_call(self, call: Call, code: StatusCode, message: str, events: list[Event]) -> None:
        web = self._web.get(call.stream_id) if self._web else None
        if web is None or not call.can_send or call.send_state is not CallState.IDLE:
            super()._fail_call(call, code, message, events)
            return
        # Nothing sent yet: the whole web answer goes out now, ahead of the queue.
        status = Status(code=code, details=message)
        self._outbound.drop(call)
        call.advance_send(CallAction.END)
        self._answer_web(call.stream_id, web, status, call.recv_state is CallState.CLOSED, 200)
        call.advance_send(CallAction.SENT)
        events.append(self._end(call, EndCause.PROTOCOL_ERROR, status))

    def _on_stream_reset(self, event: h2.events.StreamReset, events: list[Event]) -> None:
        if self._pages:
            page = self._pages.pop(event.stream_id or 0, None)
            if page is not None:
                # A page the client stopped reading: its queue goes.
                self._outbound.drop(page)
                page.close()
                return
        super()._on_stream_reset(event, events)

    def _forget(self, call: Call, *, succeeded: bool = False) -> None:
        if self._pages:
            self._pages.pop(call.stream_id, None)  # a page's end went out
        super()._forget(call, succeeded=succeeded)
        if self._web:
            web = self._web.pop(call.stream_id, None)
            if web is not None and web.mode.text_response:
                self._text_calls -= 1
                if not self._text_calls:
                    # Back to the native path, without a call per message.
                    self._queue_message = self._outbound.queue_message
