"""The innermost client stream: one call on one HTTP/2 stream of the channel.

A :class:`ChannelStream` opens its HTTP/2 stream lazily, on its first
operation, so creating a call costs nothing until it is used. Every
operation is bounded by the call's deadline: when it passes, the stream is
reset and :class:`~puregrpc.RpcError` (DEADLINE_EXCEEDED) raised, even if
the server never answers. If anything else interrupts an operation (the
caller's own cancel scope, ``KeyboardInterrupt``), the call is cancelled
with RST_STREAM CANCEL before the exception propagates, so no stream is left
open.

Messages are serialized on the way out and parsed on the way in here;
everything above (interceptors, the typed call objects) deals in messages.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, NoReturn, Protocol, TypeVar

import trio

from ..runtime import ClientCallStream
from ..wire import Metadata, RpcError, Status, StatusCode
from ._interceptor import ClientCallDetails, ClientStream

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class StreamOpener(Protocol):
    """Opens the HTTP/2 stream of a call on a channel (connecting, waiting for a slot)."""

    def __call__(
        self,
        path: str,
        *,
        metadata: Metadata | None,
        grpc_timeout: float | None,
        compression: str | None,
        wait_for_ready: bool,
    ) -> Awaitable[ClientCallStream]:
        """Open a stream for a call to ``path``."""
        ...


class UnaryOpener(Protocol):
    """Opens a unary call's stream with its one request and half-close, without waiting."""

    def __call__(
        self,
        path: str,
        request: bytes,
        *,
        metadata: Metadata | None,
        grpc_timeout: float | None,
        compression: str | None,
    ) -> tuple[ClientCallStream, bool] | None:
        """The stream and whether the request still waits for window; None: open it the long way."""
        ...


class ChannelStream(ClientStream[RequestT, ResponseT]):
    """A call's :class:`ClientStream` on the channel's connection."""

    __slots__ = (
        "_deadline",
        "_details",
        "_done_writing",
        "_open_stream",
        "_open_unary_now",
        "_starting",
        "_status",
        "_stream",
        "_trailing",
    )

    def __init__(
        self,
        details: ClientCallDetails,
        open_stream: StreamOpener,
        open_unary_now: UnaryOpener | None = None,
    ) -> None:
        self._details = details
        self._open_stream = open_stream
        self._open_unary_now = open_unary_now
        self._deadline = details.deadline
        self._stream: ClientCallStream | None = None
        self._status: Status | None = None
        self._trailing = Metadata()
        self._done_writing = False
        #: Set while one task opens the call's stream (others wait on it).
        self._starting: trio.Event | None = None

    # ------------------------------------------------------------ outcome

    @property
    def details(self) -> ClientCallDetails:
        """What the call is."""
        return self._details

    @property
    def status(self) -> Status | None:
        """How the call ended, once it has."""
        if self._status is None:
            self._collect_end()
        return self._status

    @property
    def trailing_metadata(self) -> Metadata:
        """Trailing metadata (empty until the call has ended)."""
        if self._status is None:
            self._collect_end()
        return self._trailing

    @property
    def last_response_compressed(self) -> bool:
        """Whether the last response received arrived compressed."""
        return self._stream.last_compressed if self._stream is not None else False

    @property
    def response_headers_received(self) -> bool:
        """Whether the server's response headers arrived (a retry layer commits then)."""
        stream = self._stream
        return stream is not None and stream.initial_metadata is not None

    @property
    def never_processed(self) -> bool:
        """Whether the call ended provably unseen by the server (REFUSED_STREAM, above a GOAWAY)."""
        stream = self._stream
        return (
            stream is not None and stream.end_event is not None and stream.end_event.never_processed
        )

    async def initial_metadata(self) -> Metadata:
        """Wait for and return the server's initial metadata."""
        stream = await self._started()
        if stream.initial_metadata is not None:
            return stream.initial_metadata  # already here: no wait, no deadline scope
        with _Operation(self):
            return await stream.wait_headers()
        raise AssertionError("unreachable")

    async def wait_answer(self) -> None:
        """Wait until the response headers arrive or the call ends (after it was started).

        Unlike the other operations, being interrupted cancels nothing, and
        it has no deadline of its own: the retry layer races attempts with it.
        """
        starting = self._starting
        if self._stream is None and starting is not None:
            await starting.wait()
        stream = self._stream
        if stream is not None:
            await stream.wait_headers()

    # ----------------------------------------------------------- requests

    async def start(self) -> None:
        """Open the HTTP/2 stream now (request headers go out)."""
        await self._started()

    async def send(self, request: RequestT, *, compress: bool = True) -> None:
        """Send one request; waits while the server's window is closed.

        With the call's compression on, ``compress=False`` sends this one
        message uncompressed (gRPC compresses per message). Raises
        :class:`~puregrpc.RpcError` once the call has ended or its requests
        were closed.
        """
        if self._done_writing:
            self._refuse_send()
        data = self._serialize(request)
        stream = self._stream
        if stream is None:
            stream = await self._started()
        try:
            if not stream.queue(data, compress=compress):
                return  # on its way, no wait: no deadline scope to pay for
            with _Operation(self):
                await stream.wait_sent()
        except RpcError:
            # The call ended before or while we were sending: report its status.
            self._collect_end()
            self._raise_for_status()
            raise

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests will come."""
        if self._done_writing:
            return
        stream = await self._started()
        self._done_writing = True
        stream.half_close()

    async def send_last(self, request: RequestT) -> None:
        """Send ``request`` and half-close in one step (a unary request)."""
        data = self._serialize(request)
        stream = self._stream
        if stream is None:
            opened = self._open_unary(data)
            if opened is not None:
                stream, waits = opened
                self._done_writing = True
                if waits:
                    with _Operation(self):
                        await stream.wait_sent()
                    stream.half_close()
                return
            stream = await self._started()
        self._done_writing = True
        if stream.queue(data):
            with _Operation(self):
                await stream.wait_sent()
        stream.half_close()

    # ---------------------------------------------------------- responses

    async def receive(self) -> ResponseT | None:
        """The next response, or ``None`` after the last one.

        Raises :class:`~puregrpc.RpcError` when the call ends with a non-OK status.
        """
        stream = self._stream
        if stream is None:
            stream = await self._started()
        if stream.inbox:
            # A response is already here: take it without a wait (or a scope).
            return self._deserialize(stream.take())
        if stream.half_closed and stream.end_event is not None:
            # So is the end (a unary response's trailers came with it).
            self._collect_end()
            self._raise_for_status()
            return None
        with _Operation(self):
            try:
                data = await stream.receive()
            except RpcError:
                # The call ended without the server's trailers (cancelled,
                # reset, connection lost): report its recorded status.
                self._collect_end()
                self._raise_for_status()
                raise
            if data is None:
                await stream.wait_end()
                self._collect_end()
                self._raise_for_status()
                return None
            return self._deserialize(data)
        raise AssertionError("unreachable")

    # --------------------------------------------------------- lifecycle

    def cancel(self, details: str = "cancelled by the client") -> None:
        """Cancel the call: RST_STREAM(CANCEL); later operations raise CANCELLED."""
        cancelled = Status(code=StatusCode.CANCELLED, details=details)
        stream = self._stream
        if stream is None or stream.end_event is not None:
            if self._status is None:
                self._collect_end()
                if self._status is None:
                    self._status = cancelled
            return
        stream.cancel(cancelled)
        self._collect_end()

    def __del__(self) -> None:
        # A call dropped before its end (``break`` out of ``async for``, a
        # call object that went out of scope) is cancelled, or its stream
        # would stay open and the server's handler blocked on a full window.
        stream = self._stream
        if stream is not None and stream.end_event is None:
            try:
                stream.cancel(
                    Status(code=StatusCode.CANCELLED, details="the call object was dropped")
                )
            except Exception:
                pass  # interpreter shutdown, or the run is over: nothing to tell

    # ----------------------------------------------------------- internal

    async def _started(self) -> ClientCallStream:
        stream = self._stream
        if stream is not None:
            return stream
        if self._status is not None:
            self._raise_for_status()
        starting = self._starting
        if starting is not None:
            # Another task (a bidi call's sender, say) is opening the stream:
            # wait for it rather than open a second one.
            await starting.wait()
            if self._stream is None:
                self._raise_for_status()
                raise RpcError(StatusCode.UNAVAILABLE, "the call could not be started")
            return self._stream
        self._starting = trio.Event()
        try:
            with _Operation(self):
                details = self._details
                self._stream = await self._open_stream(
                    details.method.path,
                    metadata=details.metadata or None,
                    grpc_timeout=_whole_milliseconds(details.time_remaining()),
                    compression=details.compression,
                    wait_for_ready=details.wait_for_ready,
                )
                if self._status is not None:
                    # Cancelled (by another task) while it was being opened.
                    self._stream.cancel(self._status)
                return self._stream
            raise AssertionError("unreachable")
        except RpcError as exc:
            if self._status is None:
                self._status = exc.status
            raise
        finally:
            self._starting.set()

    def _open_unary(self, data: bytes) -> tuple[ClientCallStream, bool] | None:
        """Open the stream with its one request at once, if nothing needs a wait (no scope)."""
        open_now = self._open_unary_now
        if open_now is None or self._starting is not None or self._status is not None:
            return None
        details = self._details
        try:
            opened = open_now(
                details.method.path,
                data,
                metadata=details.metadata or None,
                grpc_timeout=_whole_milliseconds(details.time_remaining()),
                compression=details.compression,
            )
        except RpcError as exc:
            self._status = exc.status
            raise
        if opened is not None:
            self._stream = opened[0]
        return opened

    def _serialize(self, request: RequestT) -> bytes:
        """``request`` as bytes; a serializer that fails fails the call (INTERNAL), as in grpcio."""
        try:
            return self._details.method.request_serializer(request)
        except Exception as exc:
            self._fail(
                StatusCode.INTERNAL,
                f"{self._details.method.path}: could not serialize the request "
                f"({type(exc).__name__}: {exc})",
            )

    def _deserialize(self, data: bytes) -> ResponseT:
        """A response from bytes; one that does not parse fails and cancels the call (INTERNAL)."""
        try:
            response: ResponseT = self._details.method.response_deserializer(data)
        except Exception as exc:
            self._fail(
                StatusCode.INTERNAL,
                f"{self._details.method.path}: could not deserialize a response "
                f"({type(exc).__name__}: {exc})",
            )
        return response

    def _fail(self, code: StatusCode, details: str) -> NoReturn:
        """End the call here with ``code`` (RST_STREAM if it is open) and raise it."""
        status = Status(code=code, details=details)
        stream = self._stream
        if stream is not None and stream.end_event is None:
            stream.cancel(status)
        if self._status is None or self._status.ok:
            self._status = status
        self._raise_for_status()
        raise AssertionError("unreachable")

    def _refuse_send(self) -> None:
        """A send after the requests were closed: say why, as the call's error."""
        self._collect_end()
        self._raise_for_status()
        path = self._details.method.path
        if self._status is not None:
            raise RpcError(
                StatusCode.FAILED_PRECONDITION,
                f"{path}: send() after the call ended (status {self._status.code.name})",
            )
        raise RpcError(StatusCode.FAILED_PRECONDITION, f"{path}: send() after done_writing()")

    def _expire(self) -> None:
        expired = Status(code=StatusCode.DEADLINE_EXCEEDED, details="deadline exceeded")
        stream = self._stream
        if stream is not None and stream.end_event is None:
            stream.cancel(expired)
        if self._status is None or self._status.ok:
            self._status = expired
        raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    def _collect_end(self) -> None:
        stream = self._stream
        if stream is not None and stream.end_event is not None and self._status is None:
            self._status = stream.end_event.status
            self._trailing = stream.end_event.trailing_metadata

    def _raise_for_status(self) -> None:
        status = self._status
        if status is not None and not status.ok:
            stream = self._stream
            raise RpcError.from_status(
                status,
                trailing_metadata=self._trailing,
                initial_metadata=stream.initial_metadata if stream is not None else None,
            )


def _whole_milliseconds(seconds: float | None) -> float | None:
    """``seconds`` rounded up to a whole millisecond (a deadline a little later, never earlier).

    Calls made with the same timeout then send the same ``grpc-timeout``
    value, which HPACK indexes: one byte a call instead of a new literal
    that also evicts other headers from the dynamic table. The server's
    deadline is at most 1 ms later than ours; ours is still kept here.
    """
    if seconds is None or seconds <= 0:
        return seconds
    return math.ceil(seconds * 1000) / 1000


class _Operation:
    """One operation of a call: bounded by its deadline, cancelling it if interrupted.

    If the deadline passes, the call is reset and DEADLINE_EXCEEDED raised. If
    anything else interrupts the operation (the caller's own cancel scope,
    KeyboardInterrupt), the call is cancelled with RST_STREAM before the
    exception propagates. A call without a deadline needs no cancel scope,
    and gets none (a saving on every message).
    """

    __slots__ = ("_call", "_scope")

    def __init__(self, call: ChannelStream[Any, Any]) -> None:
        self._call = call
        deadline = call._deadline
        self._scope = None if deadline is None else trio.CancelScope(deadline=deadline)

    def __enter__(self) -> None:
        if self._scope is not None:
            self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope = self._scope
        handled = scope.__exit__(exc_type, exc, tb) if scope is not None else False
        if exc is not None and not handled and not isinstance(exc, Exception):
            self._call.cancel()
        if scope is not None and scope.cancelled_caught:
            self._call._expire()  # raises DEADLINE_EXCEEDED
        return handled
