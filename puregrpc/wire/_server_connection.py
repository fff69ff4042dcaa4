"""The server role of the gRPC connection state machine.

A server call lives from the client's request HEADERS to our trailers::

    client HEADERS ----> CallStarted          (or a refusal answered here)
    client DATA -------> MessageReceived*     (driver calls consume())
    client END_STREAM -> HalfClosed
    send_response_headers() / first send_message() -> response HEADERS
    send_message()* ---> DATA
    end_call(status) --> trailers (or a trailers-only response)

Requests that break the gRPC protocol never reach the application: a wrong
content-type gets HTTP 415, a non-POST method 405, a malformed path
UNIMPLEMENTED, an unsupported ``grpc-encoding`` UNIMPLEMENTED with our
``grpc-accept-encoding``, malformed HTTP/2 headers RST_STREAM(PROTOCOL_ERROR)
(doc/PROTOCOL-HTTP2.md, RFC 9113 §8.1.1). The driver sees a
:class:`CallEnded` with cause REFUSED for each, to log (and rate-limit) it.

Graceful shutdown is the two-step GOAWAY of grpc-go: a first GOAWAY with the
largest stream id tells the client to stop opening calls while any already
in flight still get through; a PING measures one round trip; when its ACK
arrives, a second GOAWAY names the real last stream id. Calls at or below it
run to completion.
"""

from __future__ import annotations

import h2.errors
import h2.events
import h2.exceptions

from ._compression import IDENTITY, is_supported
from ._config import ConnectionConfig
from ._connection import GrpcConnection
from ._errors import LocalProtocolError
from ._events import CallEnded, CallStarted, EndCause, Event, HalfClosed, PingAcknowledged
from ._lifecycle import Call, CallAction, CallState
from ._metadata import Metadata
from ._request_headers import RequestHead, RequestRejected, parse_request_headers
from ._response_headers import build_response_headers, build_trailers, build_trailers_only
from ._status import Status, StatusCode
from ._trace import NULL_TRACER, Tracer

#: Opaque data of the PING that separates the two GOAWAYs of a graceful shutdown.
SHUTDOWN_PING_DATA = b"pgrpc-gs"
#: The stream id of the first GOAWAY: "every stream you may have opened".
_ALL_STREAMS = 2**31 - 1
#: Parsed request header blocks kept per connection (see _on_request).
_HEAD_CACHE_LIMIT = 8


class ServerConnection(GrpcConnection):
    """The server side of one gRPC connection, without I/O.

    Feed it bytes with :meth:`receive_data`, answer :class:`CallStarted`
    events with :meth:`send_response_headers`, :meth:`send_message` and
    :meth:`end_call`, and write out :meth:`data_to_send` after each batch.
    """

    _client_side = False

    def __init__(self, config: ConnectionConfig | None = None, *, tracer: Tracer = NULL_TRACER):
        super().__init__(config, tracer=tracer)
        self._dispatch[h2.events.RequestReceived] = self._on_request  # type: ignore[assignment]
        #: Set once the final GOAWAY went out: calls above it are refused.
        self._last_accepted: int | None = None
        #: True between the first GOAWAY and the PING ACK of a graceful shutdown.
        self._draining = False
        #: Recently parsed request header lists -> their parsed form.
        self._heads: dict[tuple[tuple[bytes, bytes], ...], RequestHead] = {}

    # ------------------------------------------------------------ call API

    def send_response_headers(
        self, stream_id: int, metadata: Metadata | None = None, *, encoding: str | None = None
    ) -> None:
        """Send the response headers (initial metadata) of a call.

        ``encoding`` compresses our messages on this call; it must be one the
        client listed in ``grpc-accept-encoding`` (see
        :attr:`CallStarted.accept_encoding`). Optional: the first
        :meth:`send_message` sends default headers if none were sent.
        """
        call = self._call_for_send(stream_id)
        # Validate before any state changes, so a refused call can try again.
        if encoding is not None and encoding != IDENTITY and not is_supported(encoding):
            raise LocalProtocolError(f"unsupported response encoding {encoding!r}")
        call.advance_send(CallAction.HEADERS)
        if encoding is not None and encoding != IDENTITY:
            call.send_encoding = encoding
        self._h2.send_headers(
            stream_id, build_response_headers(metadata=metadata, encoding=call.send_encoding)
        )

    def end_call(self, stream_id: int, status: Status, metadata: Metadata | None = None) -> None:
        """End the call with ``status`` and trailing ``metadata``.

        Without response headers sent, this is a trailers-only response (one
        HEADERS frame). Otherwise the trailers follow any queued messages, so
        the call stays open (and :meth:`queued_bytes` non-zero) until the
        client's window lets them out. If the client is still sending, a
        RST_STREAM(NO_ERROR) follows the trailers to stop it (RFC 9113 §8.1).
        """
        call = self._call_for_send(stream_id)
        if self._tracer is not None:
            self._trace("call_end", stream_id, code=status.code.name, message=status.details)
        if call.send_state is CallState.IDLE:
            # No response headers yet: one HEADERS frame says it all.
            self._outbound.queue_end(call, build_trailers_only(status, metadata))
        else:
            self._outbound.queue_end(call, build_trailers(status, metadata))

    @property
    def shutdown_confirmed(self) -> bool:
        """True once the final GOAWAY of a graceful shutdown went out.

        From then on no call the client started can still be on its way: the
        driver may close the connection as soon as :attr:`open_calls` is 0.
        """
        return self._last_accepted is not None

    def begin_graceful_shutdown(self) -> None:
        """Start the two-step GOAWAY: stop new calls, let running ones finish.

        The second GOAWAY goes out by itself when the PING ACK arrives; calls
        the client started before it still arrive and run. The driver waits
        for :attr:`open_calls` to reach zero (or a grace period), then closes.
        """
        if self._draining or self._last_accepted is not None or self._failed:
            return
        self._draining = True
        self._closed = True
        self._h2.send_goaway(0, _ALL_STREAMS, b"graceful shutdown")
        self._h2.ping(SHUTDOWN_PING_DATA)

    def close(
        self, error_code: int = 0, debug_data: bytes = b"", last_stream_id: int | None = None
    ) -> None:
        """Send GOAWAY; requests on streams above its last stream id are refused.

        Such calls were never processed (RFC 9113 §6.8), so they get
        RST_STREAM(REFUSED_STREAM), which tells the client it may retry them.
        """
        if last_stream_id is None:
            last_stream_id = self._h2.highest_inbound_stream_id
        if self._last_accepted is not None:
            # RFC 9113 §6.8: a later GOAWAY must not raise the last stream id.
            last_stream_id = min(last_stream_id, self._last_accepted)
        # A graceful shutdown in progress is over: its PING ACK sends nothing.
        self._draining = False
        self._last_accepted = last_stream_id
        super().close(error_code, debug_data, last_stream_id)

    # --------------------------------------------------------- inbound

    def _on_request(self, event: h2.events.RequestReceived, events: list[Event]) -> None:
        stream_id = event.stream_id or 0
        if self._last_accepted is not None and stream_id > self._last_accepted:
            # Opened after our final GOAWAY: never processed, safe to retry.
            self._reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            refused = Status(code=StatusCode.UNAVAILABLE, details="opened after the final GOAWAY")
            events.append(self._refusal(stream_id, refused))
            return
        cfg = self.config
        fields = event.headers or []
        key = tuple(fields)
        head = self._heads.get(key)
        if head is None:
            try:
                head = parse_request_headers(fields, max_metadata_size=cfg.max_header_list_size)
            except RequestRejected as rejected:
                self._refuse(stream_id, rejected, bool(event.stream_ended), events)
                return
            # Clients repeat their header blocks (a method, no deadline, the
            # same metadata): keep the parsed form of the last few.
            if len(self._heads) >= _HEAD_CACHE_LIMIT:
                self._heads.clear()
            self._heads[key] = head
        call = Call(
            stream_id,
            max_message_size=cfg.max_receive_message_size,
            grant_threshold=self._inbound.stream_threshold,
        )
        call.advance_recv(CallAction.HEADERS)
        call.recv_encoding = head.encoding
        self._calls[stream_id] = call
        self.totals.streams_started += 1
        if self._tracer is not None:
            self._trace("call_start", stream_id, path=head.path, timeout=head.timeout)
        events.append(
            CallStarted(
                stream_id=stream_id,
                path=head.path,
                service=head.service,
                method=head.method,
                # Its own copy: a handler may add to its metadata.
                metadata=head.metadata.copy(),
                timeout=head.timeout,
                authority=head.authority,
                user_agent=head.user_agent,
                encoding=head.encoding,
                accept_encoding=head.accept_encoding,
            )
        )

    def _refuse(
        self, stream_id: int, rejected: RequestRejected, ended: bool, events: list[Event]
    ) -> None:
        """Answer a request that never becomes a call."""
        status = Status(code=rejected.code, details=str(rejected))
        if rejected.reset_code is not None:
            self._reset_stream(stream_id, rejected.reset_code)
        else:
            headers = build_trailers_only(
                status, http_status=rejected.http_status, extra_headers=rejected.extra_headers
            )
            if self._send_last_headers(stream_id, headers) and not ended:
                self._reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        events.append(self._refusal(stream_id, status))

    def _refusal(self, stream_id: int, status: Status) -> CallEnded:
        """The end of a request refused before it became a call (no :class:`Call` exists)."""
        if self._tracer is not None:
            self._trace("call_end", stream_id, code=status.code.name, message=status.details)
        return CallEnded(
            stream_id=stream_id,
            status=status,
            trailing_metadata=Metadata(),
            cause=EndCause.REFUSED,
        )

    def _on_ping_ack(self, event: h2.events.PingAckReceived, events: list[Event]) -> None:
        data = bytes(event.ping_data or b"")
        if self._draining and data == SHUTDOWN_PING_DATA:
            # Step two: every stream the client opened before it saw the first
            # GOAWAY has reached us now; name the real last one.
            self._draining = False
            self._last_accepted = self._h2.highest_inbound_stream_id
            self._h2.send_goaway(0, self._last_accepted, b"graceful shutdown")
        events.append(PingAcknowledged(data=data))

    def _send_last_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """Send a final HEADERS (END_STREAM) unless the client reset the stream.

        A RST_STREAM later in the same read has closed h2's stream already
        (h2 reads the whole batch before we see its first event), and a new
        stream later still may have made h2 forget it (a StreamIDTooLowError
        then); the answer has nobody to go to. Returns whether it was sent.
        """
        try:
            self._h2.send_headers(stream_id, headers, end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.StreamIDTooLowError):
            return False
        return True

    def _remote_ended(self, call: Call, events: list[Event]) -> None:
        call.advance_recv(CallAction.RECEIVED_END)
        events.append(HalfClosed(stream_id=call.stream_id))

    def _send_default_headers(self, call: Call) -> None:
        self.send_response_headers(call.stream_id)

    def _sent_end(self, call: Call) -> None:
        # Our trailers are out: the call is over. A client still sending is
        # told to stop (RFC 9113 §8.1), and its leftover credit returned.
        if call.recv_state is not CallState.CLOSED:
            self._reset_stream(call.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        self._forget(call, succeeded=True)

    def _fail_call(self, call: Call, code: StatusCode, message: str, events: list[Event]) -> None:
        # The client broke the protocol on this call (oversized, truncated or
        # badly compressed message): answer with the status, drop what we had
        # queued, and stop the stream.
        status = Status(code=code, details=message)
        stream_id = call.stream_id
        if call.can_send:
            self._outbound.drop(call)
            headers = (
                build_trailers_only(status)
                if call.send_state is CallState.IDLE
                else build_trailers(status)
            )
            # The answer goes out now, ahead of anything that was queued.
            call.advance_send(CallAction.END)
            if self._send_last_headers(stream_id, headers):
                call.advance_send(CallAction.SENT)
                if call.recv_state is not CallState.CLOSED:
                    self._reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        else:
            # Our trailers are queued already: the stream is beyond saving.
            self._reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        events.append(self._end(call, EndCause.PROTOCOL_ERROR, status))
