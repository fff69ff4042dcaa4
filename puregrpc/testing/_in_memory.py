"""A real server and its clients joined by memory streams: gRPC tests without sockets.

``serve_in_memory(*services)`` builds a :class:`~puregrpc.server.Server` (or
takes one) and, for the ``async with`` block, serves it with no listener at
all. Each time a channel of the block connects, the handle's ``connect``
makes a fresh ``trio.testing.memory_stream_pair()``: one end goes to the
channel, the other to :meth:`Server.handle_stream`, in a task of the
handle's nursery. Everything between the two ends is the real thing: HTTP/2
framing and flow control, headers and trailers, deadlines, cancellation,
interceptors, graceful shutdown.

Leaving the block closes the handle's channel, stops the server (calls in
flight get ``grace`` seconds, then are cancelled), and cancels whatever is
left in the nursery: no task outlives the block. An exception raised in the
block comes out unwrapped, so ``pytest.raises(RpcError)`` around the whole
block works.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, TypeAlias, TypeVar

import trio
import trio.testing

from ..client import Channel, ChannelOptions
from ..server import MethodHandler, Server, ServerInterceptor, ServerOptions, Service

#: What a server serves: a servicer, one method handler, or a path -> handler table.
ServiceLike: TypeAlias = Service | MethodHandler | Mapping[str, MethodHandler]

StubT = TypeVar("StubT")


class StubFactory(Protocol):
    """Makes generated stubs on a channel it holds: ``make(EchoStub)`` is ``EchoStub(channel)``.

    The type of the ``puregrpc_stub`` fixture (and of :meth:`InMemoryServer.stub`).
    """

    def __call__(self, stub_class: Callable[[Channel], StubT], /) -> StubT:
        """A ``stub_class`` instance on the channel."""
        ...


def stub_factory(channel: Channel) -> StubFactory:
    """A :class:`StubFactory` for ``channel``."""

    def make(stub_class: Callable[[Channel], StubT], /) -> StubT:
        return stub_class(channel)

    return make


class InMemoryServer:
    """A server served over memory streams for an ``async with`` block.

    Made by :func:`serve_in_memory`; see there. Inside the block:

    * :meth:`stub` makes a generated stub on the handle's own channel;
    * :meth:`channel` makes another channel (its own connection, its own
      options), to use as ``async with handle.channel() as channel:``;
    * :meth:`connect` is the stream factory behind both, for code that builds
      its ``Channel(connect=...)`` itself;
    * :meth:`drop_connections` breaks every connection, as a network failure
      would.
    """

    def __init__(
        self,
        server: Server,
        *,
        grace: float,
        channel_options: ChannelOptions | None,
    ) -> None:
        #: The server under test (its handlers, options and interceptors).
        self.server = server
        #: How many connections clients have opened so far (each connect is one).
        self.connection_count = 0
        self._grace = grace
        self._channel_options = channel_options
        self._nursery: trio.Nursery | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._default_channel: Channel | None = None
        #: The server's ends of the connections being served.
        self._server_ends: set[trio.abc.Stream] = set()
        self._closed = False

    # ------------------------------------------------------------ lifetime

    async def __aenter__(self) -> InMemoryServer:
        if self._exit_stack is not None or self._closed:
            raise RuntimeError("an in-memory server can be entered only once")
        stack = contextlib.AsyncExitStack()
        try:
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            # Unwinds in reverse: the handle's channel closes, then the server
            # stops, then the nursery (its connection tasks) ends.
            stack.push_async_callback(self._shut_down)
            self._default_channel = await stack.enter_async_context(self.channel())
        except BaseException:
            await stack.aclose()
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._exit_stack is not None, "not entered"
        # From here on a connect fails, as one to a server that is gone would.
        self._closed = True
        try:
            await self._exit_stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The nursery wraps what the block raised; the block's caller
            # should see the exception itself (``pytest.raises(RpcError)``).
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return None
            raise

    async def _shut_down(self) -> None:
        """Stop the server, bounded even when the block was cancelled; end the nursery."""
        assert self._nursery is not None
        self._closed = True
        # Shielded: cleanup must run even if the test's deadline expired.
        # stop() itself is bounded (grace, then 2 s, then abort); the outer
        # limit only guards against a bug turning into a hung test run.
        with trio.CancelScope(shield=True), trio.move_on_after(self._grace + 10):
            await self.server.stop(grace=self._grace)
        self._nursery.cancel_scope.cancel()

    # ----------------------------------------------------------- connecting

    async def connect(self) -> trio.abc.Stream:
        """Open a new connection to the server and return the client's end.

        A fresh ``trio.testing.memory_stream_pair()`` each time; the server
        serves the other end (``peer`` ``memory:N``, N counting connections
        from 1). Raises :class:`OSError` once the block has ended, which a
        channel reports as UNAVAILABLE like any failed connection attempt.
        """
        if self._nursery is None or self._closed:
            raise OSError("the in-memory server is not running")
        client_end, server_end = trio.testing.memory_stream_pair()
        self.connection_count += 1
        self._nursery.start_soon(self._serve, server_end, f"memory:{self.connection_count}")
        return client_end

    async def _serve(self, stream: trio.abc.Stream, peer: str) -> None:
        self._server_ends.add(stream)
        try:
            await self.server.handle_stream(stream, peer=peer)
        finally:
            self._server_ends.discard(stream)

    def channel(self, *, options: ChannelOptions | None = None) -> Channel:
        """A new channel to the server, not yet open: ``async with handle.channel() as ch:``.

        It has its own connection. ``options`` default to the
        ``channel_options`` given to :func:`serve_in_memory`. Close it before
        the block ends.
        """
        if options is None:
            options = self._channel_options
        return Channel(connect=self.connect, options=options)

    def stub(self, stub_class: Callable[[Channel], StubT], /) -> StubT:
        """A generated stub (``handle.stub(EchoStub)``) on the handle's own channel.

        All stubs made this way share that channel (one connection, opened at
        the first call); it closes when the block ends.
        """
        if self._default_channel is None or self._closed:
            raise RuntimeError("stub() is for inside 'async with serve_in_memory(...)'")
        return stub_class(self._default_channel)

    async def drop_connections(self) -> None:
        """Break every open connection at once, with no GOAWAY: a network failure.

        Both ends see their stream end; calls in flight fail with
        UNAVAILABLE; the next call on a channel connects again
        (:attr:`connection_count` goes up). The server keeps serving.
        """
        for stream in list(self._server_ends):
            await trio.aclose_forcefully(stream)


def serve_in_memory(
    *services: ServiceLike | Server | Sequence[ServiceLike],
    interceptors: Sequence[ServerInterceptor] = (),
    options: ServerOptions | None = None,
    channel_options: ChannelOptions | None = None,
    grace: float = 1.0,
) -> InMemoryServer:
    """Serve ``services`` over memory streams for an ``async with`` block.

    ``services`` are what :class:`~puregrpc.server.Server` takes (servicers,
    method handlers, path -> handler tables), as arguments or lists; or
    give one ready ``Server`` instead (then ``interceptors`` and
    ``options``, which build a server, must be left out). The server is
    stopped when the block ends, a given one too, with ``grace`` seconds for
    calls in flight. ``channel_options`` configure the handle's channel
    (:meth:`InMemoryServer.stub`) and default those of
    :meth:`InMemoryServer.channel`.

    Usage::

        async with serve_in_memory(EchoService()) as served:
            echo = served.stub(EchoStub)
            reply = await echo.Unary(EchoRequest(message="hi"), timeout=5)

    No socket is opened, and no port is bound.
    """
    given: list[Server] = []
    flat: list[ServiceLike] = []
    for service in services:
        if isinstance(service, Server):
            given.append(service)
        elif isinstance(service, Sequence):
            flat.extend(service)
        else:
            flat.append(service)
    if given:
        if len(services) != 1:
            raise TypeError("serve_in_memory() takes either one Server or services, not both")
        if interceptors or options is not None:
            raise TypeError(
                "interceptors= and options= build a server: give them to the Server instead"
            )
        server = given[0]
    else:
        server = Server(flat, interceptors=interceptors, options=options)
    return InMemoryServer(server, grace=grace, channel_options=channel_options)
