"""gRPC-Web over HTTP/1.1: a server connection on h11, with the runtime's verbs (sans-IO).

Theory of operation
===================

:class:`Http1ServerConnection` speaks HTTP/1.1 through h11 and offers the
same verbs and events as :class:`~puregrpc.wire.ServerConnection` (bytes in,
events out; ``send_response_headers``, ``send_message``, ``end_call``), so the
runtime's transport and call streams, and the server's one call runner,
drive it unchanged. One request at a time is one call; its "stream id" is
1, 3, 5... in the order requests arrive on the connection::

    request head ---------> CallStarted        (or an HTTP answer, no call)
    body (Content-Length
      or chunked) --------> MessageReceived*   (the native message decoder,
                                                base64 first in text mode)
    end of body ----------> HalfClosed
    send_response_headers -> 200 + gRPC-Web headers, chunked body
    send_message* ---------> one chunk per message (flushed as it is sent)
    end_call -------------> the trailer frame, the last chunk; keep-alive

What is not a gRPC-Web call gets a plain HTTP answer with a text body that
says why: ``OPTIONS`` is a CORS preflight (204, or 403 for an origin not
allowed); native gRPC (``application/grpc``) needs HTTP/2 (426); HTTP/1.0
505; a GET or HEAD the :class:`~._static.StaticSite` answers (404
without one); another method 405;
another content-type 415; a malformed request 400 and a head over the
limit 431 (h11's hints). A request body over the receive limit is refused
with 413 and RESOURCE_EXHAUSTED when its Content-Length says so up front,
and with RESOURCE_EXHAUSTED in the call's status when a chunked body grows
past it (the native decoder's check).

There is no flow control in HTTP/1.1: what a call sends goes to the socket,
and the runtime's write backpressure (its high-water mark) parks a sender
whose peer does not read. Requests are not pipelined: a request that
arrives before the previous response ended is not read, and the connection
closes after that response.
"""

from __future__ import annotations

import h11

from ..wire import (
    NULL_TRACER,
    CallEnded,
    CallStarted,
    ConnectionClosed,
    ConnectionConfig,
    ConnectionStatistics,
    ConnectionTotals,
    EndCause,
    Event,
    HalfClosed,
    LocalProtocolError,
    MessageReceived,
    Metadata,
    RemoteProtocolError,
    Status,
    StatusCode,
    StreamStatistics,
    Tracer,
    TraceRecord,
)
from ..wire._trace import next_connection_id
from ..wire.codecs import (
    MessageDecoder,
    RawMessage,
    build_trailers,
    decompress,
    frame_message,
)
from ._content_type import WebMode
from ._cors import CorsPolicy
from ._framing import TextMessageDecoder, encode_text, encode_trailer_frame
from ._h2 import metadata_names, web_response_fields
from ._http1_requests import PlainAnswer, StatusAnswer, classify
from ._static import PageAnswer, StaticSite


class _Call:
    """The call of the request being served."""

    __slots__ = (
        "decoder",
        "encoding",
        "headers_sent",
        "mode",
        "origin",
        "received",
        "sent",
        "stream_id",
    )

    def __init__(self, stream_id: int, mode: WebMode, origin: bytes | None, max_size: int):
        self.stream_id = stream_id
        self.mode = mode
        self.origin = origin
        self.decoder = (
            TextMessageDecoder(max_size) if mode.text_request else MessageDecoder(max_size)
        )
        self.encoding = "identity"
        self.headers_sent = False
        self.received = 0
        self.sent = 0


class Http1ServerConnection:
    """The server side of one HTTP/1.1 connection serving gRPC-Web calls, without I/O.

    Feed it bytes with :meth:`receive_data`, answer :class:`CallStarted` with
    :meth:`send_response_headers`, :meth:`send_message` and :meth:`end_call`,
    and write out :meth:`data_to_send`. ``initial_data``, bytes already read
    from the connection (to tell HTTP/1.1 from HTTP/2), is fed first by the
    driver like any other read. ``site`` answers GET and HEAD (None: 404).
    """

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        tracer: Tracer = NULL_TRACER,
        cors: CorsPolicy | None = None,
        scheme: str = "http",
        site: StaticSite | None = None,
    ) -> None:
        self.config = config if config is not None else ConnectionConfig()
        self._cors = cors if cors is not None else CorsPolicy()
        self._site = site
        self._scheme = scheme
        self._h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max(self.config.max_header_list_size, 1024)
        )
        self._out: list[bytes] = []
        self._call: _Call | None = None
        #: A request answered without a call whose body is being read and dropped.
        self._discarding = False
        self._discarded = 0
        #: The request being answered is a HEAD: no body in the answer.
        self._head_only = False
        #: A ConnectionClosed event was reported for the close.
        self._close_reported = False
        self._next_stream_id = 1
        self._closed = False
        self._draining = False
        #: The connection must close once the current response is out.
        self._must_close = False
        self._tracer: Tracer | None = tracer if tracer.enabled else None
        self._trace_id = next_connection_id() if self._tracer is not None else 0
        #: What the connection has carried so far (channelz reports it).
        self.totals = ConnectionTotals()

    # ---------------------------------------------------------------- I/O

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes read from the connection; return what the client did."""
        events: list[Event] = []
        if self._closed and self._call is None:
            return events
        try:
            self._h11.receive_data(bytes(data))
            self._next_events(events)
        except h11.RemoteProtocolError as exc:
            self._bad_request(exc, events)
        if self._closed and self._call is None and not self._close_reported:
            # Nothing left to serve: the driver flushes the answer and closes.
            self._close_reported = True
            events.append(
                ConnectionClosed(
                    error_code=0,
                    last_stream_id=0,
                    debug_data=b"HTTP/1.1 connection closed",
                    remote=False,
                )
            )
        return events

    def data_to_send(self) -> bytes:
        """Every byte queued for the client, as one chunk to write."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def wants_write(self) -> bool:
        """True when :meth:`data_to_send` has something to return."""
        return bool(self._out)

    def connection_lost(self, reason: str = "connection closed") -> list[Event]:
        """The transport closed: the call in progress, if any, ends UNAVAILABLE."""
        self._closed = True
        call = self._call
        if call is None:
            return []
        return [
            self._end(
                call, EndCause.CONNECTION_LOST, Status(code=StatusCode.UNAVAILABLE, details=reason)
            )
        ]

    # --------------------------------------------------------- call verbs

    def is_open(self, stream_id: int) -> bool:
        """True while the call on ``stream_id`` has not ended."""
        return self._call is not None and self._call.stream_id == stream_id

    def send_response_headers(
        self, stream_id: int, metadata: Metadata | None = None, *, encoding: str | None = None
    ) -> None:
        """Send the response head: 200, the gRPC-Web content-type, CORS, ``metadata``.

        Responses are not compressed (``encoding`` is ignored: gRPC-Web leaves
        compression to HTTP). The body is chunked: its length is not known.
        """
        call = self._call_for_send(stream_id)
        if call.headers_sent:
            raise LocalProtocolError(f"stream {stream_id} has already sent its response headers")
        call.headers_sent = True
        cors = self._cors.response_headers(call.origin, metadata_names=metadata_names(metadata))
        fields = web_response_fields(call.mode, metadata, cors)[1:]
        self._send(h11.Response(status_code=200, headers=fields))

    def send_message(
        self, stream_id: int, payload: bytes | memoryview, *, compress_message: bool = True
    ) -> bool:
        """Send one message as one chunk; never blocked (HTTP/1.1 has no windows)."""
        call = self._call_for_send(stream_id)
        limit = self.config.max_send_message_size
        if limit is not None and len(payload) > limit:
            raise LocalProtocolError(
                f"trying to send message larger than max ({len(payload)} vs. {limit})",
                StatusCode.RESOURCE_EXHAUSTED,
            )
        if not call.headers_sent:
            self.send_response_headers(stream_id)
        framed = frame_message(payload)
        call.sent += 1
        self.totals.messages_sent += 1
        if self._tracer is not None:
            self._trace(
                "message_out", stream_id, seq=call.sent, length=len(payload), payload=bytes(payload)
            )
        self._send(h11.Data(data=encode_text(framed) if call.mode.text_response else framed))
        return False

    def end_call(self, stream_id: int, status: Status, metadata: Metadata | None = None) -> None:
        """End the call: the trailer frame, then the end of the body (keep-alive)."""
        call = self._call_for_send(stream_id)
        if not call.headers_sent:
            self.send_response_headers(stream_id)
        if self._tracer is not None:
            self._trace("call_end", stream_id, code=status.code.name, message=status.details)
        frame = encode_trailer_frame(status, metadata)
        self._send(h11.Data(data=encode_text(frame) if call.mode.text_response else frame))
        self._send(h11.EndOfMessage())
        self._forget(call, succeeded=True)
        if self._h11.their_state is h11.SEND_BODY and not self._must_close:
            # Ended before the request body did (an unknown method, say):
            # the rest of the body is read and dropped, then the next request.
            self._discarding = True
            self._discarded = 0
            return
        self._next_cycle()

    def consume(self, stream_id: int, wire_length: int) -> bool:
        """A message was taken: nothing to grant (no flow control); always False."""
        return False

    def is_blocked(self, stream_id: int) -> bool:
        """Never: HTTP/1.1 has no flow-control windows (the socket pushes back)."""
        return False

    # --------------------------------------------------- connection verbs

    @property
    def open_calls(self) -> int:
        """Calls that have not ended (0 or 1)."""
        return 0 if self._call is None else 1

    @property
    def closed(self) -> bool:
        """True once the connection takes no more requests."""
        return self._closed

    @property
    def shutdown_confirmed(self) -> bool:
        """True once no more requests are taken: the driver closes when the call ends."""
        return self._closed

    @property
    def awaiting_request(self) -> bool:
        """True while no request is being served: the next head is awaited (or arriving).

        An answered request whose body is still being read and dropped counts
        as awaiting (its answer is out): the request-head timer then bounds a
        client that declared a body and never sends it.
        """
        return self._call is None and not self._closed

    def begin_graceful_shutdown(self) -> None:
        """Take no more requests; the one in progress may finish."""
        self._draining = True
        self._must_close = True
        if self._call is None and not self._discarding:
            self._closed = True

    def close(
        self, error_code: int = 0, debug_data: bytes = b"", last_stream_id: int | None = None
    ) -> None:
        """Take no more requests (HTTP/1.1 has no GOAWAY: the driver closes the socket)."""
        self._closed = True

    def ping(self, data: bytes) -> None:
        """HTTP/1.1 has no PING: a no-op (keepalive pings are for HTTP/2 connections)."""

    def statistics(self) -> ConnectionStatistics:
        """A snapshot for channelz: no windows, at most one open stream."""
        return ConnectionStatistics(
            send_window=0,
            receive_window=0,
            queued_bytes=0,
            ungranted_bytes=0,
            open_streams=self.open_calls,
            blocked_streams=0,
            max_frame_size=0,
        )

    def stream_statistics(self, stream_id: int) -> StreamStatistics:
        """The call's counts (no windows in HTTP/1.1)."""
        call = self._call_for_send(stream_id)
        return StreamStatistics(
            stream_id=stream_id,
            send_window=0,
            receive_window=0,
            queued_bytes=0,
            unconsumed_bytes=0,
            ungranted_bytes=0,
            blocked=False,
            messages_sent=call.sent,
            messages_received=call.received,
        )

    # ------------------------------------------------------------ inbound

    def _next_events(self, events: list[Event]) -> None:
        conn = self._h11
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                # The client sent its next request before this response ended:
                # no pipelining; that request is not read.
                self._must_close = True
                return
            if isinstance(event, h11.Request):
                self._on_request(event, events)
            elif isinstance(event, h11.Data):
                self._on_body(bytes(event.data), events)
            elif isinstance(event, h11.EndOfMessage):
                self._on_end_of_body(events)
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _on_request(self, request: h11.Request, events: list[Event]) -> None:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        method = bytes(request.method)
        self._head_only = method == b"HEAD"  # its answers have no body (RFC 9110 §9.3.2)
        if self._tracer is not None:
            self._trace(
                "http1_request",
                stream_id,
                method=method.decode("latin-1"),
                target=bytes(request.target).decode("latin-1"),
            )
        if self._closed or self._draining:
            self._answer(
                PlainAnswer(status_code=503, text="the server is shutting down", close=True)
            )
            return
        decided = classify(
            method,
            bytes(request.target),
            bytes(request.http_version),
            [(bytes(name), bytes(value)) for name, value in request.headers],
            cors=self._cors,
            scheme=self._scheme,
            config=self.config,
            site=self._site,
        )
        if isinstance(decided, PageAnswer):
            # The body goes out in one piece, with its Content-Length: the
            # bytes are the site's own, held in memory anyway.
            self._respond(decided.status, list(decided.fields), decided.body, close=False)
            return
        if isinstance(decided, PlainAnswer):
            self._answer(decided)
            return
        if isinstance(decided, StatusAnswer):
            self._answer_status(
                decided.mode,
                decided.status,
                http_status=decided.http_status,
                close=decided.close,
                origin=decided.origin,
            )
            return
        head = decided.head
        call = _Call(stream_id, decided.mode, decided.origin, self.config.max_receive_message_size)
        call.encoding = head.encoding
        self._call = call
        self.totals.streams_started += 1
        if self._tracer is not None:
            self._trace(
                "call_start",
                stream_id,
                path=head.path,
                timeout=head.timeout,
                protocol=decided.mode.name,
                http="1.1",
            )
        events.append(
            CallStarted(
                stream_id=stream_id,
                path=head.path,
                service=head.service,
                method=head.method,
                metadata=head.metadata.copy(),
                timeout=head.timeout,
                authority=head.authority,
                user_agent=head.user_agent,
                encoding=head.encoding,
                accept_encoding=(),
                protocol=decided.mode.name,
            )
        )

    def _on_body(self, data: bytes, events: list[Event]) -> None:
        call = self._call
        if call is None:
            # The body of a request answered without a call: dropped, bounded.
            self._discarded += len(data)
            if self._discarded > self.config.max_receive_message_size:
                self._must_close = True
                self._closed = True
            return
        try:
            messages = call.decoder.feed(data)
        except RemoteProtocolError as exc:
            self._deliver(call, call.decoder.completed_before_error, events)
            self._fail(call, exc.code, str(exc), events)
            return
        self._deliver(call, messages, events)

    def _deliver(self, call: _Call, messages: list[RawMessage], events: list[Event]) -> None:
        for raw in messages:
            payload = raw.data
            if raw.compressed:
                if call.encoding == "identity":
                    self._fail(
                        call,
                        StatusCode.INTERNAL,
                        "compressed flag set on a message but no grpc-encoding was negotiated",
                        events,
                    )
                    return
                try:
                    payload = decompress(
                        call.encoding, payload, self.config.max_receive_message_size
                    )
                except RemoteProtocolError as exc:
                    self._fail(call, exc.code, str(exc), events)
                    return
            call.received += 1
            self.totals.messages_received += 1
            if self._tracer is not None:
                self._trace(
                    "message_in",
                    call.stream_id,
                    seq=call.received,
                    length=len(payload),
                    payload=payload,
                )
            events.append(
                MessageReceived(
                    stream_id=call.stream_id,
                    data=payload,
                    wire_length=raw.wire_length,
                    compressed=raw.compressed,
                )
            )

    def _on_end_of_body(self, events: list[Event]) -> None:
        call = self._call
        if call is None:
            if self._discarding:
                self._discarding = False
                self._next_cycle()
            return
        try:
            call.decoder.close()
        except RemoteProtocolError as exc:
            self._fail(call, exc.code, str(exc), events)
            return
        events.append(HalfClosed(stream_id=call.stream_id))

    def _bad_request(self, exc: h11.RemoteProtocolError, events: list[Event]) -> None:
        """The client broke HTTP/1.1: answer with h11's status hint if we still can, and close."""
        self._must_close = True
        call = self._call
        if call is not None:
            self._fail(call, StatusCode.INTERNAL, f"malformed HTTP/1.1 request: {exc}", events)
        elif self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._answer(
                PlainAnswer(
                    status_code=exc.error_status_hint,
                    text=f"malformed HTTP/1.1 request: {exc}",
                    close=True,
                )
            )
        self._closed = True

    def _fail(self, call: _Call, code: StatusCode, message: str, events: list[Event]) -> None:
        """The request broke the protocol: answer with the status, end the call, then close."""
        status = Status(code=code, details=message)
        self._must_close = True
        if self._h11.our_state in (h11.SEND_RESPONSE, h11.SEND_BODY, h11.IDLE):
            if not call.headers_sent:
                self._answer_status(call.mode, status, close=True, origin=call.origin)
            else:
                frame = encode_trailer_frame(status)
                self._send(h11.Data(data=encode_text(frame) if call.mode.text_response else frame))
                self._send(h11.EndOfMessage())
        events.append(self._end(call, EndCause.PROTOCOL_ERROR, status))
        self._closed = True

    # ----------------------------------------------------------- answers

    def _answer(self, answer: PlainAnswer) -> None:
        """A plain HTTP answer to a request that is no call (the body says why)."""
        body = (answer.text + "\n").encode("utf-8") if answer.text else b""
        headers = list(answer.fields)
        if body:
            headers += [(b"content-type", b"text/plain; charset=utf-8")]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        self._respond(answer.status_code, headers, body, close=answer.close)

    def _answer_status(
        self,
        mode: WebMode,
        status: Status,
        *,
        http_status: int = 200,
        close: bool = False,
        origin: bytes | None = None,
    ) -> None:
        """A gRPC-Web trailers-only answer: the status in the head, an empty body."""
        cors = self._cors.response_headers(origin)
        headers = web_response_fields(mode, None, cors)[1:] + build_trailers(status)
        headers.append((b"content-length", b"0"))
        self._respond(http_status, headers, b"", close=close)

    def _respond(
        self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> None:
        """Send a whole answer to a request that is no call; read on for the next request.

        The request's body (if any) is read and dropped, up to the receive
        limit; ``close`` closes the connection after the answer instead.
        """
        if close:
            headers = [*headers, (b"connection", b"close")]
        if self._tracer is not None:
            self._trace("http1_response", 0, status=status_code)
        try:
            self._send(h11.Response(status_code=status_code, headers=headers))
            if body and not self._head_only:
                self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            close = True
        if close:
            self._must_close = True
            self._closed = True
        else:
            self._discarding = True
            self._discarded = 0

    # ------------------------------------------------------------ helpers

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._out.append(data)

    def _next_cycle(self) -> None:
        """Both sides are done with this request: ready the connection for the next one."""
        conn = self._h11
        if (
            self._must_close
            or self._draining
            or conn.our_state is not h11.DONE
            or conn.their_state is not h11.DONE
        ):
            # Our answer is out (DONE, or MUST_CLOSE after a request that
            # said Connection: close): no further request is taken.
            if conn.our_state is h11.DONE or conn.our_state is h11.MUST_CLOSE:
                self._closed = True
            return
        conn.start_next_cycle()

    def _call_for_send(self, stream_id: int) -> _Call:
        call = self._call
        if call is None or call.stream_id != stream_id:
            raise LocalProtocolError(f"no open call on stream {stream_id}: it ended or never began")
        return call

    def _end(self, call: _Call, cause: EndCause, status: Status) -> CallEnded:
        self._forget(call, succeeded=False)
        if self._tracer is not None:
            self._trace("call_end", call.stream_id, code=status.code.name, message=status.details)
        return CallEnded(
            stream_id=call.stream_id, status=status, trailing_metadata=Metadata(), cause=cause
        )

    def _forget(self, call: _Call, *, succeeded: bool) -> None:
        if self._call is call:
            self._call = None
            self.totals.stream_ended(succeeded)

    def _trace(self, kind: str, stream_id: int, **fields: object) -> None:
        assert self._tracer is not None
        self._tracer.record(
            TraceRecord(
                kind=kind,
                stream_id=stream_id,
                fields=fields,
                connection=self._trace_id,
                role="server",
            )
        )
