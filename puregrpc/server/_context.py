"""What a handler sees of its call: metadata, deadline, and ways to answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, NoReturn, TypeVar

import trio

from ..runtime import Method, ServerCallStream
from ..wire import SUPPORTED_ENCODINGS, Metadata, RpcError, Status, StatusCode, StreamStatistics
from ._auth_context import INSECURE, AuthContext
from ._interceptor import ServerCall

RequestT = TypeVar("RequestT")


class ServicerContext:
    """The handler's view of one call.

    Passed as the last argument of every handler. It carries the call's
    invocation metadata, peer and deadline, and lets the handler send initial
    metadata, set trailing metadata and status, stream responses, and abort.
    """

    def __init__(
        self,
        *,
        stream: ServerCallStream,
        method: Method[Any, Any],
        metadata: Metadata,
        peer: str,
        auth: AuthContext = INSECURE,
        deadline: float | None,
        accept_encoding: tuple[str, ...],
        compression: str | None,
    ) -> None:
        self._stream = stream
        self._method = method
        self._metadata = metadata
        self._peer = peer
        self._auth = auth
        self._deadline = deadline
        self._accept_encoding = accept_encoding
        self._compression = compression if compression in accept_encoding else None
        self._headers_sent = False
        self._trailing = Metadata()
        self._code: StatusCode | None = None
        self._details = ""
        #: Whether the last request taken arrived compressed (None before any).
        self.request_compressed: bool | None = None
        #: Messages the handler received and sent, for the call log.
        self.messages_received = 0
        self.messages_sent = 0
        #: Per-call values that interceptors leave for the handler (an
        #: authenticated identity, a request id), by a key of their choosing.
        self.state: dict[str, Any] = {}
        #: The call :meth:`send` goes through: the innermost one of the
        #: interceptor chain (set by the handler runner), so responses passed
        #: to ``send()`` are intercepted like returned or yielded ones; None
        #: outside the handler runner (sends go straight to the stream).
        self._outbound: ServerCall[Any, Any] | None = None

    # ------------------------------------------------------------ reading

    @property
    def method(self) -> str:
        """The full method path, ``/package.Service/Method``."""
        return self._method.path

    def invocation_metadata(self) -> Metadata:
        """The metadata the client sent with the call."""
        return self._metadata

    @property
    def metadata(self) -> Metadata:
        """The metadata the client sent with the call."""
        return self._metadata

    def peer(self) -> str:
        """The client's address, e.g. ``ipv4:127.0.0.1:53212``."""
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        """The connection's authentication properties, as grpcio names them.

        ``transport_security_type`` always; with mutual TLS also
        ``x509_common_name``, ``x509_subject_alternative_name`` and
        ``x509_pem_cert`` of the client's verified certificate.
        """
        return {name: list(values) for name, values in self._auth.properties.items()}

    def peer_identities(self) -> list[bytes] | None:
        """The client's identities (certificate SANs, else its common name), or ``None``.

        ``None`` unless the client presented a certificate the server's TLS
        context verified (mutual TLS).
        """
        identities = self._auth.identities
        return None if identities is None else list(identities)

    def peer_identity_key(self) -> str | None:
        """The :meth:`auth_context` property :meth:`peer_identities` comes from, or ``None``."""
        return self._auth.identity_key

    @property
    def deadline(self) -> float | None:
        """The call's deadline on trio's clock, or ``None`` when it has none."""
        return self._deadline

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline, or ``None`` when there is none."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - trio.current_time())

    @property
    def cancelled(self) -> bool:
        """True once the client cancelled the call or it ended otherwise."""
        return self._stream.end_event is not None

    def statistics(self) -> StreamStatistics:
        """The call's flow-control state: windows, queued and unconsumed bytes."""
        return self._stream.statistics()

    # ------------------------------------------------------------ writing

    async def send_initial_metadata(self, metadata: Metadata | None = None) -> None:
        """Send the response headers now, with ``metadata``.

        Optional: the first response message sends them if this was not
        called. Calling it twice raises :class:`RuntimeError`.
        """
        if self._headers_sent:
            raise RuntimeError("initial metadata was already sent")
        if self._stream.end_event is not None:
            await self._stream.raise_ended("cannot send initial metadata")
        self._send_headers(metadata)
        await trio.lowlevel.checkpoint()

    def set_trailing_metadata(self, metadata: Metadata | Any) -> None:
        """Set the metadata sent with the status at the end of the call."""
        self._trailing = metadata if isinstance(metadata, Metadata) else Metadata(metadata)

    def set_code(self, code: StatusCode) -> None:
        """Set the status the call ends with when the handler returns normally."""
        self._code = code

    def set_details(self, details: str) -> None:
        """Set the status message sent with :meth:`set_code`'s code."""
        self._details = details

    def set_compression(self, encoding: str | None) -> None:
        """Compress responses with ``encoding`` (if the client accepts it).

        Must be called before the response headers go out. An encoding the
        client did not list in ``grpc-accept-encoding`` is ignored, as gRPC
        requires.
        """
        if self._headers_sent:
            raise RuntimeError("set_compression must be called before the headers are sent")
        if encoding is not None and encoding not in SUPPORTED_ENCODINGS:
            raise ValueError(f"unsupported encoding {encoding!r}; use one of {SUPPORTED_ENCODINGS}")
        self._compression = encoding if encoding in self._accept_encoding else None

    async def abort(
        self, code: StatusCode, details: str = "", details_bin: bytes | None = None
    ) -> NoReturn:
        """End the call with ``code`` and ``details`` (raises; never returns)."""
        if code is StatusCode.OK:
            raise ValueError("abort() needs a non-OK status code")
        raise RpcError(code, details, trailing_metadata=self._trailing, details_bin=details_bin)

    async def send(self, message: Any, *, compress: bool = True) -> None:
        """Send one response message; waits while the client's window is closed.

        This is where backpressure reaches a streaming handler: if the client
        stops reading, ``send`` blocks once the flow-control windows are full.
        """
        outbound = self._outbound
        if outbound is None:
            await self._send_now(message, compress=compress)
        else:
            await outbound.send(message, compress=compress)

    async def _send_now(self, message: Any, *, compress: bool) -> None:
        # The wire call's send: past every interceptor, onto the stream.
        if self._stream.end_event is not None:
            await self._stream.raise_ended("cannot send")
        if not self._headers_sent:
            # They leave with the message: its send wakes the writer.
            self._send_headers(None, wake=False)
        data = self._method.response_serializer(message)
        await self._stream.send(data, compress=compress)
        self.messages_sent += 1

    # ------------------------------------------------------------ internal

    def _wire_call(self) -> ServerCall[Any, Any]:
        """The call as it comes off the wire: the first of the interceptor chain."""
        return _WireCall(self, self._stream, self._method)

    def _release(self) -> None:
        """The call is over: drop the link to its interceptor chain.

        The chain's calls point back at this context; letting go of them here
        leaves no reference cycle behind a call, so finished calls are freed
        at once instead of by the cyclic garbage collector.
        """
        self._outbound = None

    def _send_headers(self, metadata: Metadata | None, *, wake: bool = True) -> None:
        self._headers_sent = True
        self._stream.send_headers(metadata, encoding=self._compression, wake=wake)

    @property
    def trailing_metadata(self) -> Metadata:
        """The trailing metadata set so far."""
        return self._trailing

    @property
    def code(self) -> StatusCode | None:
        """The status code set with :meth:`set_code`, if any."""
        return self._code

    @property
    def details(self) -> str:
        """The status message set with :meth:`set_details`."""
        return self._details


class RequestIterator(Generic[RequestT]):
    """The requests of a client-streaming or bidi call, as an async iterator.

    Each request taken returns its flow-control credit to the client; a
    handler that stops iterating stops its client once the window is spent.
    Requests come through the call's interceptors (:class:`ServerCall`).
    """

    __slots__ = ("_call",)

    def __init__(self, call: ServerCall[RequestT, Any]) -> None:
        self._call = call

    def __aiter__(self) -> AsyncIterator[RequestT]:
        return self

    async def __anext__(self) -> RequestT:
        request = await self._call.receive()
        if request is None:
            raise StopAsyncIteration
        return request

    async def receive(self) -> RequestT | None:
        """The next request, or ``None`` once the client has finished sending."""
        return await self._call.receive()


class _WireCall(ServerCall[Any, Any]):
    """The call as it comes off the stream: requests parsed, responses serialized."""

    __slots__ = ("_context", "_deserialize", "_method", "_stream")

    def __init__(
        self, context: ServicerContext, stream: ServerCallStream, method: Method[Any, Any]
    ) -> None:
        self._context = context
        self._stream = stream
        self._method = method
        self._deserialize = method.request_deserializer

    @property
    def method(self) -> Method[Any, Any]:
        """The method called."""
        return self._method

    @property
    def context(self) -> ServicerContext:
        """The handler's context."""
        return self._context

    async def receive(self) -> Any:
        """The next request off the stream (its credit returns to the client), or ``None``."""
        data = await self._stream.receive()
        if data is None:
            return None
        context = self._context
        context.messages_received += 1
        context.request_compressed = self._stream.last_compressed
        return deserialize_request(self._deserialize, data)

    async def send(self, response: Any, *, compress: bool = True) -> None:
        """Serialize ``response`` and send it on the stream."""
        await self._context._send_now(response, compress=compress)


def ending_status(context: ServicerContext, error: BaseException | None = None) -> Status:
    """The status a call ends with if its handler returned (``error`` None) or raised ``error``.

    The server ends every call by this rule, and interceptors that report
    outcomes (a call log, metrics) use it to name the status of what they saw:

    * returned: the code set with ``set_code`` (OK when unset) and its details;
    * :class:`RpcError`: its status;
    * ``trio.Cancelled``: the status the call already ended with (the client
      cancelled, or the connection was lost), else DEADLINE_EXCEEDED once the
      deadline has passed, else UNAVAILABLE (the server is shutting down);
    * any other exception: UNKNOWN, naming only the exception's type (its
      text may hold what the client must not see).
    """
    if error is None:
        code = context.code if context.code is not None else StatusCode.OK
        return Status(code=code, details=context.details)
    if isinstance(error, RpcError):
        return error.status
    if isinstance(error, trio.Cancelled):
        ended = context._stream.end_event
        if ended is not None:
            return ended.status
        deadline = context._stream.cancel_scope.deadline
        if trio.current_time() >= deadline:
            return Status(code=StatusCode.DEADLINE_EXCEEDED, details="deadline exceeded")
        return Status(code=StatusCode.UNAVAILABLE, details="server shutting down")
    return Status(
        code=StatusCode.UNKNOWN, details=f"unexpected {type(error).__name__} in the method handler"
    )


def deserialize_request(deserialize: Any, data: bytes) -> Any:
    """Parse a request; a message that does not parse ends the call with INTERNAL."""
    try:
        return deserialize(data)
    except Exception as exc:
        raise RpcError(
            StatusCode.INTERNAL, f"failed to parse request message: {type(exc).__name__}"
        ) from exc
