"""Blocking call objects: a response iterator, and a bidi call that can also send."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

from ..client import StreamStreamCall, UnaryStreamCall
from ..wire import Metadata, StatusCode
from ._thread import Operation, TrioThread

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
T = TypeVar("T")


class BlockingResponseStream(Generic[RequestT, ResponseT]):
    """The responses of a server-streaming call: ``for response in call``.

    Iterating blocks for each response; a non-OK end raises
    :class:`~puregrpc.RpcError`. Use ``with`` (or :meth:`cancel`) to stop a
    stream early: leaving the block before the end cancels the call.
    """

    __slots__ = ("_call", "_loop")

    def __init__(
        self,
        loop: TrioThread,
        call: UnaryStreamCall[RequestT, ResponseT] | StreamStreamCall[RequestT, ResponseT],
    ) -> None:
        self._loop = loop
        self._call = call

    def _run_on_call(self, what: Callable[[], Awaitable[T]]) -> T:
        """Run ``what`` in the trio thread; Ctrl-C meanwhile cancels this call."""

        async def operation(handle: Operation) -> T:
            handle.call = self._call
            return await what()

        return self._loop.run(operation)

    def receive(self) -> ResponseT | None:
        """The next response, or ``None`` after the last one."""
        return self._run_on_call(self._call.receive)

    def __iter__(self) -> Iterator[ResponseT]:
        return self

    def __next__(self) -> ResponseT:
        response = self.receive()
        if response is None:
            raise StopIteration
        return response

    def initial_metadata(self) -> Metadata:
        """Wait for and return the server's initial metadata."""
        return self._run_on_call(self._call.initial_metadata)

    @property
    def trailing_metadata(self) -> Metadata:
        """The server's trailing metadata (empty until the call has ended)."""
        return self._call.trailing_metadata

    @property
    def code(self) -> StatusCode | None:
        """The final status code, once the call has ended."""
        return self._call.code

    @property
    def details(self) -> str | None:
        """The final status message, once the call has ended."""
        return self._call.details

    def cancel(self) -> None:
        """Cancel the call (RST_STREAM CANCEL); later reads raise CANCELLED."""
        if self._loop.running:
            self._loop.run_sync(self._call.cancel)

    def __enter__(self) -> BlockingResponseStream[RequestT, ResponseT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._call.status is None:
            self.cancel()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._call!r}>"


class BlockingBidiCall(BlockingResponseStream[RequestT, ResponseT]):
    """A bidi call: iterate its responses; :meth:`send` and :meth:`done_writing` too.

    Requests given when the call is made are sent by the channel while you
    read; without them, send from this thread (or another) with :meth:`send`.
    """

    __slots__ = ("_bidi",)

    def __init__(self, loop: TrioThread, call: StreamStreamCall[RequestT, ResponseT]) -> None:
        super().__init__(loop, call)
        self._bidi = call

    def send(self, request: RequestT) -> None:
        """Send one request; blocks while the server's flow-control window is closed."""

        async def send() -> None:
            await self._bidi.send(request)

        self._run_on_call(send)

    def done_writing(self) -> None:
        """Half-close: no more requests will come."""
        self._run_on_call(self._bidi.done_writing)
