"""The channel: where calls are made, over multiplexed connections to a target's servers.

``async with Channel("127.0.0.1:50051") as channel:`` owns a nursery in which
the resolver, the connections' reader and writer tasks (and request feeders
of streaming calls) run; leaving the block closes the connections and ends
them all.

A call asks the channel for a stream: the channel's
:class:`~._router.CallRouter` picks a READY connection for it (resolving the
target, connecting a subchannel per address and balancing over them as the
load balancing policy says), the channel waits for a free stream slot under
that server's MAX_CONCURRENT_STREAMS, and opens the call's
:class:`~puregrpc.runtime.ClientCallStream` on it. Each call is a
:class:`~._retry_stream.RetryingStream` over one or more such attempts
(retries, hedging and transparent retries, as the service config says).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar, Unpack

import trio

from ..runtime import (
    CHANNELZ,
    CallCounts,
    ChannelzChannel,
    ClientCallStream,
    Method,
    next_channelz_id,
    require_trio,
    tracer_or_environment,
)
from ..wire import NULL_TRACER, ConnectionConfig, LocalProtocolError, Metadata, RpcError, Tracer
from ._backoff import BackoffPolicy
from ._balancer import LoadBalancingConfig, load_balancing_config
from ._builtin_resolvers import default_authority, resolver_for
from ._call import Requests, StreamStreamCall, StreamUnaryCall, UnaryStreamCall, UnaryUnaryCall
from ._connectivity import ConnectivityState
from ._interceptor import (
    ClientCallDetails,
    ClientContinuation,
    ClientInterceptor,
    ClientStream,
    chain,
    deadline_of,
)
from ._keepalive import ChannelKeepalive
from ._options import NO_OPTIONS, CallKeywords, CallOptions, resolve_call_options
from ._resolver import Resolver, StaticResolver
from ._retry_rules import RetryBuffer, RetryThrottle
from ._retry_stream import RetryingStream, RetrySupport
from ._router import CallRouter
from ._service_config import ServiceConfig, parse_service_config
from ._subchannel import StreamFactory, Subchannel
from ._target import Address

# The built-in policies register themselves (by name) when imported.
from . import _pick_first, _round_robin  # noqa: F401  isort: skip

logger = logging.getLogger("puregrpc.client")

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOptions:
    """How a channel connects and what its calls default to."""

    #: Windows and limits of the HTTP/2 connection.
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    #: Backoff between failed connection attempts.
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    #: What calls that do not say otherwise get (timeout, metadata added to
    #: every call, compression, wait_for_ready): merged under each call's own.
    call_defaults: CallOptions = NO_OPTIONS
    #: The ``:authority`` to send (default: the target's host:port).
    authority: str | None = None
    #: Receives trace records of the connection.
    tracer: Tracer = NULL_TRACER
    #: Keepalive (gRFC A8): PING after this many seconds without reads while
    #: calls are open; ``None`` (grpcio's default): never. A8 suggests no
    #: less than 10 s; servers cut off clients that ping more often than they
    #: allow (grpcio: 5 minutes), and the channel then doubles it.
    keepalive_time: float | None = None
    #: A PING with no byte read back within this many seconds: the connection
    #: is dead, its calls fail UNAVAILABLE, the next call reconnects.
    keepalive_timeout: float = 20.0
    #: Ping even while no call is open (the server must permit it).
    keepalive_without_calls: bool = False
    #: How calls are spread over the target's addresses: ``"pick_first"``
    #: (every call to the first address that connects), ``"round_robin"``
    #: (in turn over every READY address), or a config object
    #: (``PickFirst(shuffle_address_list=True)``, ``RoundRobin()``, or one
    #: of a registered policy). A service config's ``loadBalancingConfig`` wins.
    load_balancing: str | LoadBalancingConfig = "pick_first"
    #: The service config (doc/service_config.md, docs/client-channel.md):
    #: JSON text, the same as a dict, or a parsed :class:`ServiceConfig`.
    #: Its load balancing config, method configs (timeouts, wait_for_ready,
    #: message size limits, retry and hedging policies), retry throttling
    #: and health checking apply to the channel. Checked when the channel is
    #: made: a bad one raises ValueError naming the field.
    service_config: str | Mapping[str, Any] | ServiceConfig | None = None
    #: Whether the service config's retry and hedging policies apply (False:
    #: never; transparent retries of calls the server never saw still do).
    retries: bool = True
    #: Bytes of requests the channel's calls may hold, all together, to
    #: replay them on a retry or a hedge (gRFC A6 retry_buffer_size).
    retry_buffer_size: int = 16 * 1024 * 1024
    #: Bytes one call may hold so (A6 per_rpc_buffer_limit); a call whose
    #: requests outgrow either limit goes on, but is no longer retried.
    per_call_retry_buffer: int = 1024 * 1024


class Channel:
    """A client channel to a target's servers, shared by all calls made on it.

    ``target`` names the servers (``host:port``, ``dns:host``,
    ``ipv4:a:port,b:port``, ``unix:path``... see docs/client-channel.md):
    its scheme's resolver finds their addresses, and
    ``ChannelOptions.load_balancing`` spreads calls over them.
    ``resolver`` replaces the target's resolver (``target`` then only names
    the channel and its ``:authority``). ``connect``, an async function
    returning a trio stream, replaces the dialling: the channel runs over
    whatever it returns (TLS on top when ``ssl_context`` is given), and
    ``target`` may then be left out (it only names the ``:authority``,
    ``localhost`` by default). A malformed target raises :class:`ValueError`.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        options: ChannelOptions | None = None,
        server_hostname: str | None = None,
        connect: StreamFactory | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
        resolver: Resolver | None = None,
    ) -> None:
        if target is None and connect is None and resolver is None:
            raise ValueError("a Channel needs a target, or a connect= stream factory")
        self.target = target if target is not None else "localhost"
        if target is None or (resolver is not None and connect is None):
            authority = self.target
        else:
            parsed, target_resolver = resolver_for(self.target)
            authority = default_authority(parsed)
            resolver = resolver or target_resolver
        if connect is not None:
            # One connection, over the factory's streams: nothing to resolve.
            resolver = StaticResolver([Address(self.target)])
        assert resolver is not None
        self.options = options if options is not None else ChannelOptions()
        # No tracer given: PUREGRPC_TRACE may ask for one.
        self.options = replace(self.options, tracer=tracer_or_environment(self.options.tracer))
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname or _host_of(authority)
        self._connect = connect
        self._authority = self.options.authority or authority
        self._new_keepalive()  # refuses bad settings here, where the channel is made
        given = self.options.service_config
        #: The channel's service config (empty unless ``ChannelOptions`` gave one).
        self.service_config = ServiceConfig() if given is None else parse_service_config(given)
        config = self.service_config
        balancing = config.load_balancing or load_balancing_config(self.options.load_balancing)
        self._router = CallRouter(
            self.target,
            resolver=resolver,
            balancer=balancing.build(),
            make_subchannel=self._make_subchannel,
            spawn=self._spawn,
            # gRFC A17: round_robin health-checks when the config asks;
            # pick_first does not.
            health_check_service=(
                config.health_check.service_name
                if config.health_check is not None and balancing.name == "round_robin"
                else None
            ),
            health_backoff=self.options.backoff,
        )
        #: The channel's process-wide channelz id (see :meth:`channelz`).
        self.channelz_id = next_channelz_id()
        #: The channel's calls (each once, however many attempts): started, succeeded, failed.
        self.calls = CallCounts()
        throttling = config.retry_throttling
        self._retry = RetrySupport(
            calls=self.calls,
            open_stream=self._open_stream,
            open_unary_now=self._open_unary_now,
            buffer=RetryBuffer(self.options.retry_buffer_size, self.options.per_call_retry_buffer),
            throttle=None if throttling is None else RetryThrottle(throttling),
            policies_enabled=self.options.retries,
        )
        #: Every call runs through these (first outermost); ``None``: no chain.
        self.interceptors: tuple[ClientInterceptor, ...] = tuple(interceptors)
        self._chain = chain(self.interceptors, self._innermost) if self.interceptors else None
        self._nursery: trio.Nursery | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None

    def _new_keepalive(self) -> ChannelKeepalive:
        options = self.options
        return ChannelKeepalive(
            options.keepalive_time,
            options.keepalive_timeout,
            without_calls=options.keepalive_without_calls,
        )

    def _make_subchannel(self, address: Address, router: CallRouter) -> Subchannel:
        """The subchannel of one address, with the channel's settings."""
        options = self.options
        return Subchannel(
            self.target if self._connect is not None else str(address),
            address,
            authority=self._authority,
            spawn=self._spawn,
            on_change=router.subchannel_changed,
            connection_config=options.connection,
            backoff=options.backoff,
            # Each server has its own keepalive (a too_many_pings from one
            # slows the pings to that one only).
            keepalive=self._new_keepalive(),
            tracer=options.tracer,
            connect=self._connect,
            ssl_context=self._ssl_context,
            server_hostname=self._server_hostname,
        )

    # ------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Channel:
        require_trio("puregrpc.client.Channel")
        stack = contextlib.AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._exit_stack = stack
        CHANNELZ.add_channel(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._exit_stack is not None
        try:
            try:
                await self.close()
            finally:
                # Always leave the nursery, even if close() was cancelled:
                # trio's cancel scopes must unwind in order.
                await self._exit_stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The channel's nursery wraps what the block raised; a caller who
            # wrote ``except RpcError`` around the block should still catch it.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return None
            raise

    async def close(self) -> None:
        """Close the connections; calls still running fail with UNAVAILABLE."""
        CHANNELZ.remove_channel(self)
        await self._router.close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # --------------------------------------------------------------- calls

    def unary_unary(
        self,
        method: Method[RequestT, ResponseT],
        request: RequestT,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> UnaryUnaryCall[RequestT, ResponseT]:
        """A unary call: ``await`` it for the response (or keep it for its metadata)."""
        details, stream, opener = self._prepare(method, options, keywords)
        return UnaryUnaryCall(
            details, stream=stream, opener=opener, spawn=self._spawn, requests=(request,)
        )

    def unary_stream(
        self,
        method: Method[RequestT, ResponseT],
        request: RequestT,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> UnaryStreamCall[RequestT, ResponseT]:
        """A server-streaming call: ``async for response in call``."""
        details, stream, opener = self._prepare(method, options, keywords)
        return UnaryStreamCall(
            details, stream=stream, opener=opener, spawn=self._spawn, requests=(request,)
        )

    def stream_unary(
        self,
        method: Method[RequestT, ResponseT],
        requests: Requests[RequestT] | None = None,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> StreamUnaryCall[RequestT, ResponseT]:
        """A client-streaming call: ``requests``, or ``send``/``done_writing``; then ``await``."""
        details, stream, opener = self._prepare(method, options, keywords)
        return StreamUnaryCall(
            details, stream=stream, opener=opener, spawn=self._spawn, requests=requests
        )

    def stream_stream(
        self,
        method: Method[RequestT, ResponseT],
        requests: Requests[RequestT] | None = None,
        *,
        options: CallOptions | None = None,
        **keywords: Unpack[CallKeywords],
    ) -> StreamStreamCall[RequestT, ResponseT]:
        """A bidi call: send and receive concurrently, from different tasks if you like."""
        details, stream, opener = self._prepare(method, options, keywords)
        return StreamStreamCall(
            details, stream=stream, opener=opener, spawn=self._spawn, requests=requests
        )

    def _prepare(
        self,
        method: Method[RequestT, ResponseT],
        options: CallOptions | None,
        keywords: CallKeywords,
    ) -> tuple[
        ClientCallDetails, RetryingStream[RequestT, ResponseT] | None, ClientContinuation | None
    ]:
        """A call's details, and its stream (no interceptors) or the chain that makes it."""
        method_config = self.service_config.lookup(method.path)
        resolved = resolve_call_options(
            self.options.call_defaults, options, keywords, method_config
        )
        metadata = resolved.metadata
        if self._chain is not None:
            # Interceptors may edit the metadata: give them the call's own copy.
            metadata = metadata.copy() if metadata is not None else Metadata()
        details = ClientCallDetails(
            method,
            metadata if metadata is not None else Metadata(),
            deadline_of(resolved.timeout),
            resolved.compression,
            resolved.wait_for_ready,
        )
        if self._chain is None:
            return details, RetryingStream(details, self._retry, method_config), None
        return details, None, self._chain

    async def _innermost(self, details: ClientCallDetails) -> ClientStream[Any, Any]:
        """The end of the interceptor chain: the call's stream on this channel (one per call:
        interceptors see one call, however many attempts the retry layer makes below)."""
        return RetryingStream(details, self._retry, self.service_config.lookup(details.path))

    # ---------------------------------------------------- for ChannelStream

    async def _open_stream(
        self,
        path: str,
        *,
        metadata: Metadata | None,
        grpc_timeout: float | None,
        compression: str | None,
        wait_for_ready: bool,
    ) -> ClientCallStream:
        """Open a stream for a call: pick a connection, wait for a stream slot."""
        if self._nursery is None:
            raise RuntimeError("use the channel as 'async with Channel(...) as channel:'")
        while True:
            current = await self._router.pick(wait_for_ready)
            if not current.transport.connection.can_start_call:
                # The server's MAX_CONCURRENT_STREAMS is reached: wait for a
                # call to end (or the connection to change).
                await current.slots.park()
                continue
            try:
                stream = ClientCallStream.open(
                    current.transport,
                    path,
                    metadata=metadata,
                    timeout=grpc_timeout,
                    encoding=compression,
                    authority=self._authority,
                )
            except LocalProtocolError as exc:
                if current.usable:
                    # Refused before anything was sent (an unsupported
                    # compression, a malformed path): the call's status.
                    raise RpcError(exc.code, str(exc)) from None
                continue  # the connection closed under us: take a new one
            current.call_opened()
            return stream

    def _open_unary_now(
        self,
        path: str,
        request: bytes,
        *,
        metadata: Metadata | None,
        grpc_timeout: float | None,
        compression: str | None,
    ) -> tuple[ClientCallStream, bool] | None:
        """Open a unary call's stream with its request at once, or None if that needs a wait.

        The common case, a connection READY with a free stream slot, takes
        no checkpoint: the call pays for no deadline scope to open.
        """
        if self._nursery is None:
            return None  # _open_stream says what is wrong
        current = self._router.pick_now()
        if current is None or not current.transport.connection.can_start_call:
            return None
        try:
            opened = ClientCallStream.open_unary(
                current.transport,
                path,
                request,
                metadata=metadata,
                timeout=grpc_timeout,
                encoding=compression,
                authority=self._authority,
            )
        except LocalProtocolError as exc:
            if current.usable:
                raise RpcError(exc.code, str(exc)) from None
            return None  # the connection closed under us: _open_stream takes a new one
        current.call_opened()
        return opened

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self._nursery is None:
            raise RuntimeError("use the channel as 'async with Channel(...) as channel:'")
        self._nursery.start_soon(fn, *args)

    # ------------------------------------------------------------ channelz

    def channelz(self) -> ChannelzChannel:
        """A snapshot for channelz (gRFC A14): target, state, calls, subchannels.

        ``puregrpc.channelz.enable_channelz`` serves the same data, for
        every open channel of the process, as ``grpc.channelz.v1.Channelz``.
        """
        return ChannelzChannel(
            id=self.channelz_id,
            target=self.target,
            state=self.get_state().name,
            calls=self.calls.snapshot(),
            subchannels=tuple(subchannel.channelz() for subchannel in self._router.subchannels),
        )

    # -------------------------------------------------------- connectivity

    def get_state(self, try_to_connect: bool = False) -> ConnectivityState:
        """The channel's :class:`ConnectivityState` now.

        ``try_to_connect``: when IDLE (or TRANSIENT_FAILURE with a backoff
        over), start resolving and connecting in the background, as the
        load balancing policy connects; the state returned is
        still the one before (watch it with :meth:`wait_for_state_change`).
        Connecting needs the channel's nursery: inside ``async with`` only.
        """
        state = self._router.connectivity.state
        if try_to_connect:
            self._router.exit_idle()
        return state

    async def wait_for_state_change(self, source_state: ConnectivityState) -> ConnectivityState:
        """Wait until the state is no longer ``source_state``; return the state it moved to.

        Returns at once if the state already differs. No timeout of its own:
        bound it with a cancel scope (``with trio.move_on_after(5):``).
        """
        return await self._router.connectivity.wait_for_change(source_state)

    async def channel_ready(self) -> None:
        """Connect if need be and wait until the channel is READY (like grpcio's).

        Retries through the connection backoff for as long as the caller's
        cancel scope allows; raises :class:`RpcError` UNAVAILABLE if the
        channel is closed.
        """
        await self._router.wait_until_ready()


def _host_of(authority: str) -> str:
    """The host of ``host:port``, ``[v6]:port`` or ``host`` (TLS checks this name)."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    host, colon, port = authority.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else authority
