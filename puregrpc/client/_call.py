"""One client call: send requests, receive responses, learn the status.

A :class:`ClientCall` starts lazily, on its first operation, so creating one
costs nothing and ``async with`` scoping decides its lifetime. Every
operation is bounded by the call's deadline (``timeout=``): when it passes,
the stream is reset and :class:`RpcError` (DEADLINE_EXCEEDED) raised, even if
the server never answers. If the caller's own cancel scope cancels an
operation, the call is cancelled too (RST_STREAM CANCEL) and the stream freed.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import trio

from ..runtime import ClientCallStream, Method
from ..wire import Metadata, RpcError, Status, StatusCode

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class StreamOpener(Protocol):
    """Opens the stream of a call on a channel (connecting, waiting for a slot)."""

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


#: Starts a task in the channel's nursery (request feeders of streaming calls).
Spawner = Callable[..., None]


class ClientCall(Generic[RequestT, ResponseT]):
    """A call in progress, for every call type.

    * requests: :meth:`send`, :meth:`done_writing` (or ``requests=`` when
      the call is made);
    * responses: ``async for response in call``, :meth:`receive`, or
      ``await call`` for a single response;
    * outcome: :meth:`initial_metadata`, :attr:`trailing_metadata`,
      :attr:`code`, :attr:`details` (after the end).

    Use it as an async context manager to cancel it if the block exits
    before the call has ended.
    """

    def __init__(
        self,
        method: Method[RequestT, ResponseT],
        *,
        open_stream: StreamOpener,
        spawn: Spawner,
        timeout: float | None,
        metadata: Metadata | None,
        compression: str | None,
        wait_for_ready: bool,
        requests: AsyncIterable[RequestT] | Iterable[RequestT] | None = None,
        single_request: bool = False,
    ) -> None:
        self._open_stream = open_stream
        self._spawn = spawn
        self._method = method
        self._metadata = metadata
        self._compression = compression
        self._wait_for_ready = wait_for_ready
        self._timeout = timeout
        self._deadline = math.inf if timeout is None else trio.current_time() + timeout
        self._requests = requests
        #: ``requests`` is one request: send it inline, no feeder task.
        self._single_request = single_request
        self._stream: ClientCallStream | None = None
        self._status: Status | None = None
        self._trailing = Metadata()
        self._done_writing = False
        self._feeder: trio.CancelScope | None = None
        #: Set while one task opens the call's stream (others wait on it).
        self._starting: trio.Event | None = None

    # ------------------------------------------------------------ outcome

    @property
    def code(self) -> StatusCode | None:
        """The final status code, once the call has ended."""
        return None if self._status is None else self._status.code

    @property
    def details(self) -> str | None:
        """The final status message, once the call has ended."""
        return None if self._status is None else self._status.details

    @property
    def last_response_compressed(self) -> bool:
        """Whether the last response received arrived compressed."""
        return self._stream.last_compressed if self._stream is not None else False

    @property
    def trailing_metadata(self) -> Metadata:
        """Trailing metadata (empty until the call has ended)."""
        return self._trailing

    async def initial_metadata(self) -> Metadata:
        """Wait for and return the server's initial metadata."""
        stream = await self._started()
        with self._operation():
            return await stream.wait_headers()
        raise AssertionError("unreachable")

    # ----------------------------------------------------------- requests

    async def send(self, request: RequestT, *, compress: bool = True) -> None:
        """Send one request; waits while the server's window is closed.

        With the call's compression on, ``compress=False`` sends this one
        message uncompressed (gRPC compresses per message).
        """
        if self._done_writing:
            raise RuntimeError("send() after done_writing()")
        stream = await self._started()
        data = self._method.request_serializer(request)
        with self._operation():
            try:
                await stream.send(data, compress=compress)
            except RpcError:
                # The call ended while we were sending: report its status.
                self._collect_end()
                self._raise_for_status()
                raise
            return

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests will come."""
        if self._done_writing:
            return
        stream = await self._started()
        self._done_writing = True
        stream.half_close()

    # ---------------------------------------------------------- responses

    async def receive(self) -> ResponseT | None:
        """The next response, or ``None`` after the last one.

        Raises :class:`RpcError` when the call ends with a non-OK status.
        """
        stream = self._stream
        if stream is None:
            stream = await self._started()
        if stream.inbox:
            # A response is already here: take it without a wait (or a scope).
            return self._method.response_deserializer(stream.take())
        with self._operation():
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
            return self._method.response_deserializer(data)
        raise AssertionError("unreachable")

    def __aiter__(self) -> AsyncIterator[ResponseT]:
        return self

    def __del__(self) -> None:
        # ``break`` out of ``async for response in call`` drops the last
        # reference to a call that has not ended: cancel it, or its stream
        # would stay open and the server's handler blocked on a full window.
        stream = self._stream
        if stream is not None and stream.end_event is None:
            try:
                stream.cancel(
                    Status(code=StatusCode.CANCELLED, details="the call object was dropped")
                )
            except Exception:
                pass  # interpreter shutdown, or the run is over: nothing to tell

    async def __anext__(self) -> ResponseT:
        response = await self.receive()
        if response is None:
            raise StopAsyncIteration
        return response

    async def response(self) -> ResponseT:
        """The single response of a unary-response call (sending ends first)."""
        if self._requests is None and not self._done_writing:
            # Requests came through send() (or none at all): the single
            # response only comes after the half-close.
            await self.done_writing()
        first = await self.receive()
        if first is None:
            raise RpcError(
                StatusCode.INTERNAL,
                f"{self._method.path} returned OK without a response message",
                trailing_metadata=self._trailing,
            )
        extra = await self.receive()
        if extra is not None:
            self.cancel()
            raise RpcError(
                StatusCode.INTERNAL, f"{self._method.path} sent more than one response message"
            )
        return first

    def __await__(self) -> Generator[Any, None, ResponseT]:
        return self.response().__await__()

    # --------------------------------------------------------- lifecycle

    def cancel(self) -> None:
        """Cancel the call: RST_STREAM(CANCEL); later operations raise CANCELLED."""
        if self._feeder is not None:
            self._feeder.cancel()
        cancelled = Status(code=StatusCode.CANCELLED, details="cancelled by the client")
        stream = self._stream
        if stream is None or stream.end_event is not None:
            if self._status is None:
                self._status = cancelled
            return
        stream.cancel(cancelled)
        self._collect_end()

    async def __aenter__(self) -> ClientCall[RequestT, ResponseT]:
        await self._started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is None or self._stream.end_event is None:
            self.cancel()

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
            return await self._start()
        except RpcError as exc:
            if self._status is None:
                self._status = exc.status
            raise
        finally:
            self._starting.set()

    async def _start(self) -> ClientCallStream:
        with self._operation():
            stream = await self._open_stream(
                self._method.path,
                metadata=self._metadata,
                grpc_timeout=(
                    None if self._timeout is None else self._deadline - trio.current_time()
                ),
                compression=self._compression,
                wait_for_ready=self._wait_for_ready,
            )
            self._stream = stream
            requests = self._requests
            if self._single_request:
                assert isinstance(requests, tuple)
                self._done_writing = True
                await stream.send(self._method.request_serializer(requests[0]))
                stream.half_close()
            elif requests is not None:
                self._spawn(self._feed_requests, requests)
            return stream
        raise AssertionError("unreachable")

    async def _feed_requests(self, requests: AsyncIterable[RequestT] | Iterable[RequestT]) -> None:
        with trio.CancelScope() as scope:
            self._feeder = scope
            try:
                if isinstance(requests, AsyncIterable):
                    async for request in requests:
                        await self.send(request)
                else:
                    for request in requests:
                        await self.send(request)
                await self.done_writing()
            except RpcError:
                pass  # the receiving side reports the call's status
            except Exception as exc:
                # The caller's request iterator (or serializer) failed: the
                # call is cancelled and says why on the receiving side; the
                # channel and its other calls go on.
                stream = self._stream
                if stream is not None:
                    stream.cancel(
                        Status(
                            code=StatusCode.CANCELLED,
                            details=f"the request iterator raised {type(exc).__name__}: {exc}",
                        )
                    )

    def _operation(self) -> _Operation:
        """Bound an operation by the call's deadline; cancel the call if interrupted."""
        return _Operation(self)

    def _expire(self) -> None:
        expired = Status(code=StatusCode.DEADLINE_EXCEEDED, details="deadline exceeded")
        stream = self._stream
        if stream is not None and stream.end_event is None:
            stream.cancel(expired)
        if self._status is None or self._status.ok:
            self._status = expired
        raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")

    def _collect_end(self) -> None:
        if self._feeder is not None:
            self._feeder.cancel()  # the call is over: stop taking requests
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


class _Operation:
    """One operation of a call: bounded by its deadline, cancelling it if interrupted.

    If the deadline passes, the call is reset and DEADLINE_EXCEEDED raised. If
    anything else interrupts the operation (the caller's own cancel scope,
    KeyboardInterrupt), the call is cancelled with RST_STREAM before the
    exception propagates, so no stream is left open. A call without a
    deadline needs no cancel scope, and gets none (a saving on every message).
    """

    __slots__ = ("_call", "_scope")

    def __init__(self, call: ClientCall[Any, Any]) -> None:
        self._call = call
        deadline = call._deadline
        self._scope = None if deadline == math.inf else trio.CancelScope(deadline=deadline)

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
