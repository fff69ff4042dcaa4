"""The trio thread behind a blocking channel, and operations the caller can interrupt.

A :class:`TrioThread` runs ``trio.run`` on a daemon thread for as long as
the blocking channel is open; the caller's thread hands it coroutines with
:meth:`TrioThread.run` and waits for their outcome. Each operation runs in
its own cancel scope, and the caller's wait is interruptible: when Ctrl-C
(``KeyboardInterrupt``) lands in the caller's thread while it waits, the
operation is cancelled in the trio thread (its call gets RST_STREAM) before
the interrupt propagates, so no call is left running behind the user's back.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import trio

from ..wire import RpcError, StatusCode

T = TypeVar("T")


class Cancellable(Protocol):
    """Something with a ``cancel()``: the call an operation works on."""

    def cancel(self) -> None:
        """Cancel it."""
        ...


class Operation:
    """One blocking operation: the cancel scope it runs in, and the call it works on."""

    __slots__ = ("_scope", "call")

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None
        #: The call to cancel with the operation, if any.
        self.call: Cancellable | None = None

    def cancel(self) -> None:
        """Cancel the operation and its call (from the trio thread)."""
        if self.call is not None:
            self.call.cancel()
        if self._scope is not None:
            self._scope.cancel()


class TrioThread:
    """A trio event loop on a thread of its own, holding one async context open.

    ``resource`` (a :class:`~puregrpc.client.Channel`) is entered in the trio
    thread when it starts and left when :meth:`close` is called.
    """

    def __init__(self, resource: AbstractAsyncContextManager[Any], name: str) -> None:
        self._resource = resource
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the caller's thread
            self._error = exc
        finally:
            self._token = None
            self._started.set()

    async def _serve(self) -> None:
        async with self._resource:
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            self._started.set()
            await self._stop.wait()

    @property
    def running(self) -> bool:
        """Whether the trio thread still runs (not closed, not crashed)."""
        return self._token is not None

    def _require_token(self) -> trio.lowlevel.TrioToken:
        token = self._token
        if token is None:
            raise RuntimeError("the blocking channel is closed")
        return token

    def run(self, operation: Callable[[Operation], Awaitable[T]]) -> T:
        """Run ``operation`` in the trio thread and wait for its result.

        A ``KeyboardInterrupt`` while waiting cancels the operation first.
        """
        token = self._require_token()
        handle = Operation()

        async def guarded() -> T:
            with trio.CancelScope() as scope:
                handle._scope = scope
                return await operation(handle)
            raise RpcError(StatusCode.CANCELLED, "the call was cancelled")

        try:
            return trio.from_thread.run(guarded, trio_token=token)
        except KeyboardInterrupt:
            self.call_soon(handle.cancel)
            raise

    def run_sync(self, fn: Callable[[], T]) -> T:
        """Run the plain function ``fn`` in the trio thread (where trio's clock is)."""
        return trio.from_thread.run_sync(fn, trio_token=self._require_token())

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` in the trio thread without waiting (nothing if it has stopped)."""
        token = self._token
        if token is not None:
            try:
                token.run_sync_soon(fn)
            except trio.RunFinishedError:
                pass

    def close(self, timeout: float | None = None) -> None:
        """Leave the resource's context, stop the loop and join the thread (idempotent)."""
        stop = self._stop
        if self._token is not None and stop is not None:
            self.call_soon(stop.set)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


#: What ``next`` returns once a request iterator is exhausted.
_DONE: Any = object()


def requests_of(requests: Iterable[T]) -> Iterable[T] | AsyncIterator[T]:
    """What a streaming call sends, from the caller's iterable.

    Lists and tuples are taken as they are; any other iterable (a generator
    reading a file, say, which may block) is stepped in a worker thread, one
    item at a time, so it never blocks the trio thread.
    """
    if isinstance(requests, list | tuple):
        return requests
    return _stepped(iter(requests))


async def _stepped(iterator: Iterator[T]) -> AsyncIterator[T]:
    while True:
        item: T = await trio.to_thread.run_sync(next, iterator, _DONE, abandon_on_cancel=True)
        if item is _DONE:
            return
        yield item
