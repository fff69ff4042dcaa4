"""The client role of the gRPC connection state machine.

A client call lives from our request HEADERS to the server's trailers::

    start_call() ------> request HEADERS (path, metadata, grpc-timeout)
    send_message()* ---> DATA
    end_stream() ------> END_STREAM (half-close: no more requests)
    response HEADERS --> ResponseHeaders
    response DATA -----> MessageReceived*   (driver calls consume())
    trailers ----------> CallEnded          (status, trailing metadata)

A response that is a single HEADERS frame with END_STREAM is trailers-only
(doc/PROTOCOL-HTTP2.md): it ends the call at once. A non-200 HTTP status
without ``grpc-status`` maps to a gRPC code (doc/http-grpc-status-mapping.md).
A server that ends the stream without trailers, a truncated message, or a
response that is not gRPC at all ends the call locally with the right status
and RST_STREAM(CANCEL), so the server stops too.
"""

from __future__ import annotations

from collections.abc import Sequence

import h2.errors
import h2.events

from ._compression import IDENTITY, SUPPORTED_ENCODINGS, is_supported
from ._config import ConnectionConfig
from ._connection import CANCELLED_LOCALLY, GrpcConnection
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import CallEnded, ConnectionClosed, EndCause, Event, ResponseHeaders
from ._lifecycle import Call, CallAction, CallState
from ._metadata import Metadata
from ._request_headers import DEFAULT_USER_AGENT, build_request_headers
from ._response_headers import parse_response_headers, parse_trailers, parse_trailers_only
from ._status import Status, StatusCode
from ._trace import NULL_TRACER, Tracer


class ClientConnection(GrpcConnection):
    """The client side of one gRPC connection, without I/O.

    Start calls with :meth:`start_call`, send with :meth:`send_message` and
    :meth:`end_stream`, feed what the server sends to :meth:`receive_data`,
    and write out :meth:`data_to_send` after each batch.
    """

    _client_side = True

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        *,
        authority: str = "localhost",
        scheme: str = "http",
        user_agent: str = DEFAULT_USER_AGENT,
        tracer: Tracer = NULL_TRACER,
    ) -> None:
        super().__init__(config, tracer=tracer)
        self._authority = authority
        self._scheme = scheme
        self._user_agent = user_agent
        self._dispatch[h2.events.ResponseReceived] = self._on_response  # type: ignore[assignment]
        self._dispatch[h2.events.TrailersReceived] = self._on_trailers  # type: ignore[assignment]

    @property
    def available_streams(self) -> int:
        """Calls we may still start before the server's concurrency limit."""
        if self._closed:
            return 0
        limit = self._h2.remote_settings.max_concurrent_streams
        return max(0, limit - self._h2.open_outbound_streams)

    @property
    def can_start_call(self) -> bool:
        """Whether a call may start now: :attr:`available_streams` > 0, without counting streams."""
        return not self._closed and self._h2.room_for_stream(inbound=False)

    def start_call(
        self,
        path: str,
        *,
        metadata: Metadata | None = None,
        timeout: float | None = None,
        encoding: str | None = None,
        accept_encoding: Sequence[str] = SUPPORTED_ENCODINGS,
        authority: str | None = None,
    ) -> int:
        """Send the request headers of a new call; return its stream id.

        ``path`` is ``/package.Service/Method``; ``timeout`` (seconds) goes out
        as ``grpc-timeout`` (the driver also enforces it locally);
        ``encoding`` compresses our messages on this call. Raises
        :class:`LocalProtocolError` when the connection is closing or the
        server's concurrency limit is reached (check :attr:`available_streams`).
        """
        if self._closed:
            raise LocalProtocolError("connection is closing (GOAWAY): start the call on a new one")
        if not self.can_start_call:
            raise LocalProtocolError("the server's limit of concurrent calls is reached")
        if encoding is not None and encoding != IDENTITY and not is_supported(encoding):
            raise LocalProtocolError(f"unsupported request encoding {encoding!r}")
        stream_id = self._h2.get_next_available_stream_id()
        headers = build_request_headers(
            path=path,
            authority=authority or self._authority,
            scheme=self._scheme,
            metadata=metadata,
            timeout=timeout,
            encoding=encoding,
            accept_encoding=accept_encoding,
            user_agent=self._user_agent,
        )
        self._h2.send_headers(stream_id, headers)
        call = Call(
            stream_id,
            max_message_size=self.config.max_receive_message_size,
            grant_threshold=self._inbound.stream_threshold,
        )
        call.advance_send(CallAction.HEADERS)
        call.send_encoding = encoding or IDENTITY
        self._calls[stream_id] = call
        self.totals.streams_started += 1
        if self._tracer is not None:
            self._trace("call_start", stream_id, path=path, timeout=timeout)
        return stream_id

    def end_stream(self, stream_id: int) -> None:
        """Half-close: no more request messages (END_STREAM after queued data)."""
        self._outbound.queue_end(self._call_for_send(stream_id), None)

    def cancel(self, stream_id: int, status: Status = CANCELLED_LOCALLY) -> CallEnded | None:
        """Cancel the call: RST_STREAM(CANCEL), as leaving a cancel scope does.

        Returns the call's :class:`CallEnded` (LOCAL_CANCEL, with ``status``),
        or ``None`` when it had ended already.
        """
        return self.reset(stream_id, h2.errors.ErrorCodes.CANCEL, status=status)

    # --------------------------------------------------------- inbound

    def _on_response(self, event: h2.events.ResponseReceived, events: list[Event]) -> None:
        call = self._calls.get(event.stream_id or 0)
        if call is None:
            return
        headers = event.headers or []
        limit = self.config.max_header_list_size
        if event.stream_ended:
            try:
                status, trailing = parse_trailers_only(headers, max_metadata_size=limit)
            except RemoteProtocolError as exc:
                status, trailing = Status(code=exc.code, details=str(exc)), Metadata()
            self._end_call(call, status, trailing, events, cause=EndCause.TRAILERS_ONLY)
            return
        try:
            head = parse_response_headers(headers, max_metadata_size=limit)
        except RemoteProtocolError as exc:
            self._fail_call(call, exc.code, str(exc), events)
            return
        call.advance_recv(CallAction.HEADERS)
        call.recv_encoding = head.encoding
        events.append(
            ResponseHeaders(
                stream_id=call.stream_id, metadata=head.metadata, encoding=head.encoding
            )
        )

    def _on_trailers(self, event: h2.events.TrailersReceived, events: list[Event]) -> None:
        call = self._calls.get(event.stream_id or 0)
        if call is None:
            return
        try:
            status, trailing = parse_trailers(
                event.headers or [], max_metadata_size=self.config.max_header_list_size
            )
        except RemoteProtocolError as exc:
            status, trailing = Status(code=exc.code, details=str(exc)), Metadata()
        try:
            call.decoder.close()
        except RemoteProtocolError as exc:
            # A truncated last message outranks an OK status, not an error.
            if status.ok:
                status = Status(code=exc.code, details=str(exc))
        self._end_call(call, status, trailing, events, cause=EndCause.TRAILERS)

    def _on_goaway(self, event: h2.events.ConnectionTerminated, events: list[Event]) -> None:
        super()._on_goaway(event, events)
        last = int(event.last_stream_id or 0)
        # Calls above last_stream_id were never processed (RFC 9113 §6.8):
        # they end with UNAVAILABLE, which callers may safely retry.
        status = Status(
            code=StatusCode.UNAVAILABLE,
            details="the server closed the connection (GOAWAY) before processing the call",
        )
        for call in [c for c in self._calls.values() if c.stream_id > last]:
            events.append(self._end(call, EndCause.REFUSED, status))
        if event.error_code:
            # An error GOAWAY ends the connection: everything still open fails,
            # saying why (ENHANCE_YOUR_CALM "too_many_pings", say).
            unavailable = Status(code=StatusCode.UNAVAILABLE, details=_goaway_reason(event))
            events.extend(self._end_all(unavailable))
            events.sort(key=lambda e: isinstance(e, ConnectionClosed))

    def _remote_ended(self, call: Call, events: list[Event]) -> None:
        # END_STREAM on DATA: the server ended the call without trailers.
        self._end_call(
            call,
            Status(
                code=StatusCode.INTERNAL,
                details="server closed the stream without sending trailers",
            ),
            Metadata(),
            events,
            cause=EndCause.PROTOCOL_ERROR,
        )

    def _end_call(
        self,
        call: Call,
        status: Status,
        trailing: Metadata,
        events: list[Event],
        *,
        cause: EndCause,
    ) -> None:
        """The server ended the stream: report the call's end and release the stream."""
        call.advance_recv(CallAction.RECEIVED_END)
        if call.send_state is not CallState.CLOSED:
            # We were still sending: close our half too, so h2 frees the stream.
            self._reset_stream(call.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        events.append(self._end(call, cause, status, trailing))

    def _fail_call(self, call: Call, code: StatusCode, message: str, events: list[Event]) -> None:
        # The server broke the protocol for this call: cancel the stream so it
        # stops sending, and end the call here with the status that explains why.
        self._reset_stream(call.stream_id, h2.errors.ErrorCodes.CANCEL)
        status = Status(code=code, details=message)
        events.append(self._end(call, EndCause.PROTOCOL_ERROR, status))


def _goaway_reason(event: h2.events.ConnectionTerminated) -> str:
    """What an error GOAWAY tells the calls it ends: its code and the server's debug data."""
    code = event.error_code
    name = code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)
    reason = f"the server closed the connection: GOAWAY {name} ({int(code or 0)})"
    debug = bytes(event.additional_data or b"").decode("utf-8", "replace").strip()
    return f"{reason}: {debug[:200]}" if debug else reason
