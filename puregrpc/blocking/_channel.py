"""A synchronous channel: the async :class:`~puregrpc.client.Channel` on a trio thread."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TypeVar, Unpack

from ..client import (
    CallKeywords,
    CallOptions,
    Channel,
    ChannelOptions,
    ClientInterceptor,
    StreamStreamCall,
    UnaryStreamCall,
)
from ..runtime import Method
from ._calls import BlockingBidiCall, BlockingResponseStream
from ._thread import Operation, TrioThread, requests_of

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class BlockingChannel:
    """A gRPC channel for synchronous code (scripts, notebooks, tests of other stacks).

    It takes what :class:`~puregrpc.client.Channel` takes and runs one on a
    trio event loop of its own, on a daemon thread, for as long as it is
    open; calls block the calling thread, which may be any thread. Use it as
    ``with BlockingChannel("host:port") as channel:`` (or call :meth:`close`).

    Call it through a generated ``<Service>BlockingStub``, or directly with
    :meth:`unary_unary` and friends; every call takes a
    :class:`~puregrpc.client.CallOptions` or its keywords (``timeout=``,
    ``metadata=``, ...). Ctrl-C during a call cancels the call, then raises
    ``KeyboardInterrupt``.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        options: ChannelOptions | None = None,
        server_hostname: str | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> None:
        #: The async channel doing the work, in the trio thread.
        self.channel = Channel(
            target,
            ssl_context=ssl_context,
            options=options,
            server_hostname=server_hostname,
            interceptors=interceptors,
        )
        self._loop = TrioThread(self.channel, name=f"puregrpc channel {self.channel.target}")

    # ----------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the channel (its calls are cancelled) and stop its thread."""
        self._loop.close()

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._loop.running else "closed"
        return f"<BlockingChannel {self.channel.target} {state}>"

    # --------------------------------------------------------------- calls

    def unary_unary(
        self,
        method: Method[RequestT, ResponseT],
        request: RequestT,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> ResponseT:
        """Make a unary call and return its response (or raise :class:`~puregrpc.RpcError`)."""

        async def call(handle: Operation) -> ResponseT:
            made = self.channel.unary_unary(method, request, options=options, **keywords)
            handle.call = made
            return await made

        return self._loop.run(call)

    def stream_unary(
        self,
        method: Method[RequestT, ResponseT],
        requests: Iterable[RequestT],
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> ResponseT:
        """Send ``requests`` (any iterable; stepped off the trio thread) and return the response."""
        feed = requests_of(requests)

        async def call(handle: Operation) -> ResponseT:
            made = self.channel.stream_unary(method, feed, options=options, **keywords)
            handle.call = made
            return await made

        return self._loop.run(call)

    def unary_stream(
        self,
        method: Method[RequestT, ResponseT],
        request: RequestT,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> BlockingResponseStream[RequestT, ResponseT]:
        """Start a server-streaming call: iterate the result for its responses."""

        def make() -> UnaryStreamCall[RequestT, ResponseT]:
            return self.channel.unary_stream(method, request, options=options, **keywords)

        return BlockingResponseStream(self._loop, self._loop.run_sync(make))

    def stream_stream(
        self,
        method: Method[RequestT, ResponseT],
        requests: Iterable[RequestT] | None = None,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> BlockingBidiCall[RequestT, ResponseT]:
        """Start a bidi call: ``requests`` are sent while you iterate the responses.

        Without ``requests``, send with the call's ``send`` and ``done_writing``.
        """
        feed = None if requests is None else requests_of(requests)

        def make() -> StreamStreamCall[RequestT, ResponseT]:
            return self.channel.stream_stream(method, feed, options=options, **keywords)

        return BlockingBidiCall(self._loop, self._loop.run_sync(make))
