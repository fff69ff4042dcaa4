"""Call objects, one type per call shape, so a wrong use is a type error.

=====================  =============================  ==========================
call                   requests                       responses
=====================  =============================  ==========================
:class:`UnaryUnaryCall`    one, given when made           ``await call``
:class:`UnaryStreamCall`   one, given when made           ``async for r in call``,
                                                          :meth:`~UnaryStreamCall.receive`
:class:`StreamUnaryCall`   ``requests=``, or              ``await call``
                           :meth:`~StreamUnaryCall.send`
                           + :meth:`~StreamUnaryCall.done_writing`
:class:`StreamStreamCall`  the same                       the same as UnaryStream
=====================  =============================  ==========================

All share :class:`ClientCall`: the outcome (:meth:`~ClientCall.initial_metadata`,
:attr:`~ClientCall.trailing_metadata`, :attr:`~ClientCall.code`,
:attr:`~ClientCall.details`), :meth:`~ClientCall.cancel`, and ``async with``
(cancel the call if the block exits before it ended).

A call object sits on top of the call's :class:`~._interceptor.ClientStream`
(the channel's, or what the interceptors made of it), which it gets when the
call starts: on its first operation, or on entering ``async with``. It adds
what the call shape implies: sending the single request, feeding a
``requests=`` iterable from a task of the channel, and checking that a
unary-response call got exactly one response (``doc/statuscodes.md``: a
response cardinality violation is UNIMPLEMENTED).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Generic, NoReturn, TypeVar

import trio

from ..wire import Metadata, RpcError, Status, StatusCode
from ._channel_stream import ChannelStream
from ._interceptor import ClientCallDetails, ClientContinuation, ClientStream
from ._retry_stream import RetryingStream

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
CallT = TypeVar("CallT", bound="ClientCall[Any, Any]")

#: Starts a task in the channel's nursery (request feeders of streaming calls).
Spawner = Callable[..., None]

#: What a streaming call takes its requests from.
Requests = AsyncIterable[RequestT] | Iterable[RequestT]


class ClientCall(Generic[RequestT, ResponseT]):
    """What every call has: its outcome, cancellation and ``async with`` scoping.

    Made by the :class:`~puregrpc.client.Channel` (or a generated stub); use
    one of the four subclasses' verbs to send and receive.
    """

    __slots__ = (
        "_details",
        "_feeder",
        "_feeds",
        "_opener",
        "_opening",
        "_requests",
        "_spawn",
        "_status",
        "_stream",
    )

    def __init__(
        self,
        details: ClientCallDetails,
        *,
        stream: ClientStream[RequestT, ResponseT] | None,
        opener: ClientContinuation | None = None,
        spawn: Spawner,
        requests: Requests[RequestT] | tuple[RequestT] | None = None,
    ) -> None:
        self._details = details
        #: The call's stream: given at once (no interceptors) or opened by ``opener``.
        self._stream = stream
        self._opener = opener
        self._spawn = spawn
        #: A one-tuple: the unary request; otherwise what a feeder task sends.
        self._requests = requests
        #: Requests come from an iterable, sent by a feeder task.
        self._feeds = requests is not None and not isinstance(requests, tuple)
        #: Set while one task runs the interceptor chain (others wait on it).
        self._opening: trio.Event | None = None
        #: Set when the call failed above its stream (the chain raised, or a
        #: unary response was missing or doubled); wins over the stream's.
        self._status: Status | None = None
        self._feeder: trio.CancelScope | None = None

    # ------------------------------------------------------------ outcome

    @property
    def method_path(self) -> str:
        """The called method's path, ``/package.Service/Method``."""
        return self._details.method.path

    @property
    def status(self) -> Status | None:
        """How the call ended, once it has."""
        if self._status is not None:
            return self._status
        return self._stream.status if self._stream is not None else None

    @property
    def code(self) -> StatusCode | None:
        """The final status code, once the call has ended."""
        status = self.status
        return None if status is None else status.code

    @property
    def details(self) -> str | None:
        """The final status message, once the call has ended."""
        status = self.status
        return None if status is None else status.details

    @property
    def trailing_metadata(self) -> Metadata:
        """Trailing metadata (empty until the call has ended)."""
        return self._stream.trailing_metadata if self._stream is not None else Metadata()

    @property
    def last_response_compressed(self) -> bool:
        """Whether the last response received arrived compressed."""
        return self._stream.last_response_compressed if self._stream is not None else False

    async def initial_metadata(self) -> Metadata:
        """Wait for and return the server's initial metadata."""
        return await (await self._started()).initial_metadata()

    # --------------------------------------------------------- lifecycle

    def cancel(self) -> None:
        """Cancel the call: RST_STREAM(CANCEL); later operations raise CANCELLED."""
        if self._feeder is not None:
            self._feeder.cancel()
        if self._stream is not None:
            self._stream.cancel()
        elif self._status is None:
            self._status = Status(code=StatusCode.CANCELLED, details="cancelled by the client")

    async def __aenter__(self: CallT) -> CallT:
        await (await self._started()).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status is None:
            self.cancel()

    # ----------------------------------------------------------- internal

    async def _started(self) -> ClientStream[RequestT, ResponseT]:
        """The call's stream, running the interceptor chain on first use."""
        stream = self._stream
        if stream is None:
            stream = await self._open()
        requests = self._requests
        if requests is not None:
            self._requests = None
            if isinstance(requests, tuple):
                if isinstance(stream, RetryingStream | ChannelStream):
                    await stream.send_last(requests[0])
                else:
                    await stream.send(requests[0])
                    await stream.done_writing()
            else:
                self._spawn(self._feed_requests, stream, requests)
        return stream

    async def _open(self) -> ClientStream[RequestT, ResponseT]:
        """Run the interceptor chain once (other tasks wait for it), bounded by the deadline."""
        if self._status is not None:
            self._raise_status()
        opening = self._opening
        if opening is not None:
            await opening.wait()
            if self._stream is None:
                if self._status is not None:
                    self._raise_status()
                raise RpcError(StatusCode.UNAVAILABLE, "the call could not be started")
            return self._stream
        self._opening = trio.Event()
        opener = self._opener
        assert opener is not None
        deadline = self._details.deadline
        try:
            with trio.fail_at(deadline) if deadline is not None else contextlib.nullcontext():
                stream: ClientStream[RequestT, ResponseT] = await opener(self._details)
        except trio.TooSlowError:
            self._fail(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except RpcError as exc:
            self._status = exc.status
            raise
        finally:
            self._opening.set()
        self._stream = stream
        return stream

    async def _feed_requests(
        self, stream: ClientStream[RequestT, ResponseT], requests: Requests[RequestT]
    ) -> None:
        with trio.CancelScope() as scope:
            self._feeder = scope
            try:
                if isinstance(requests, AsyncIterable):
                    async for request in requests:
                        await stream.send(request)
                else:
                    for request in requests:
                        await stream.send(request)
                await stream.done_writing()
            except RpcError:
                pass  # the receiving side reports the call's status
            except Exception as exc:
                # The caller's request iterator (or serializer) failed: the
                # call is cancelled and says why on the receiving side; the
                # channel and its other calls go on.
                self._status = Status(
                    code=StatusCode.CANCELLED,
                    details=f"the request iterator raised {type(exc).__name__}: {exc}",
                )
                stream.cancel()

    async def _receive(self) -> ResponseT | None:
        stream = self._stream
        if stream is None or self._requests is not None:
            stream = await self._started()
        try:
            response = await stream.receive()
        except RpcError:
            if self._feeder is not None:
                self._feeder.cancel()  # the call is over: stop taking requests
            if self._status is not None:
                self._raise_status()
            raise
        if response is None and self._feeder is not None:
            self._feeder.cancel()  # the call is over: stop taking requests
        return response

    async def _response(self) -> ResponseT:
        """The single response of a unary-response call."""
        first = await self._receive()
        if first is None:
            self._fail(
                StatusCode.UNIMPLEMENTED,
                f"{self.method_path} ended OK without a response message "
                "(a unary call expects exactly one)",
            )
        extra = await self._receive()
        if extra is not None:
            self.cancel()
            self._fail(
                StatusCode.UNIMPLEMENTED,
                f"{self.method_path} sent more than one response message to a unary call",
            )
        return first

    def _fail(self, code: StatusCode, details: str) -> NoReturn:
        self._status = Status(code=code, details=details)
        self._raise_status()

    def _raise_status(self) -> NoReturn:
        status = self._status
        assert status is not None
        raise RpcError.from_status(status, trailing_metadata=self.trailing_metadata)

    def __repr__(self) -> str:
        status = self.status
        state = "running" if status is None else status.code.name
        return f"<{type(self).__name__} {self.method_path} {state}>"


class _SendsRequests(ClientCall[RequestT, ResponseT]):
    """The request side of client-streaming and bidi calls."""

    __slots__ = ()

    async def send(self, request: RequestT, *, compress: bool = True) -> None:
        """Send one request; waits while the server's window is closed.

        With the call's compression on, ``compress=False`` sends this one
        message uncompressed (gRPC compresses per message). After the call
        has ended or :meth:`done_writing`, raises :class:`~puregrpc.RpcError`.
        """
        stream = self._stream
        if stream is None or self._requests is not None:
            stream = await self._started()
        await stream.send(request, compress=compress)

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests will come."""
        await (await self._started()).done_writing()


class _StreamsResponses(ClientCall[RequestT, ResponseT]):
    """The response side of server-streaming and bidi calls."""

    __slots__ = ()

    async def receive(self) -> ResponseT | None:
        """The next response, or ``None`` after the last one.

        Raises :class:`~puregrpc.RpcError` when the call ends with a non-OK status.
        """
        return await self._receive()

    def __aiter__(self) -> AsyncIterator[ResponseT]:
        return self

    async def __anext__(self) -> ResponseT:
        response = await self._receive()
        if response is None:
            raise StopAsyncIteration
        return response


class UnaryUnaryCall(ClientCall[RequestT, ResponseT]):
    """A unary call: ``response = await call`` (or keep the object for its metadata)."""

    __slots__ = ()

    async def response(self) -> ResponseT:
        """The single response (the same as ``await call``)."""
        return await self._response()

    def __await__(self) -> Generator[Any, None, ResponseT]:
        return self._response().__await__()


class UnaryStreamCall(_StreamsResponses[RequestT, ResponseT]):
    """A server-streaming call: ``async for response in call``."""

    __slots__ = ()


class StreamUnaryCall(_SendsRequests[RequestT, ResponseT]):
    """A client-streaming call: requests from ``requests=`` or :meth:`send`, then ``await call``."""

    __slots__ = ()

    async def response(self) -> ResponseT:
        """The single response (half-closing first if requests came through :meth:`send`)."""
        stream = await self._started()
        if not self._feeds:
            # Requests came through send() (or none at all): the single
            # response only comes after the half-close.
            await stream.done_writing()
        return await self._response()

    def __await__(self) -> Generator[Any, None, ResponseT]:
        return self.response().__await__()


class StreamStreamCall(_SendsRequests[RequestT, ResponseT], _StreamsResponses[RequestT, ResponseT]):
    """A bidi call: send and receive concurrently, from different tasks if you like."""

    __slots__ = ()
