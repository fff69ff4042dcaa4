"""A subchannel: one HTTP/2 connection to one address, reopened as needed.

The connection opens when a call first asks for it, over TCP or a Unix
socket, or over whatever stream a ``connect`` factory returns (one end of
``trio.testing.memory_stream_pair()`` in a test without sockets), with TLS on
top when an ``ssl_context`` is given. If it is lost, the next call opens a
new one; failed attempts are spaced by exponential backoff with jitter
(doc/connection-backoff.md). A call made while the subchannel is backing off
fails at once with UNAVAILABLE, unless it asked ``wait_for_ready=True``, in
which case it waits for the next attempt (bounded by its deadline).

The subchannel drives the channel's :class:`~._connectivity.Connectivity`:
an attempt moves it to CONNECTING, a made connection to READY, a failed one
to TRANSIENT_FAILURE; when the connection it made READY gets a GOAWAY or
closes, IDLE (the next call reconnects), or TRANSIENT_FAILURE when keepalive
found it dead; :meth:`Subchannel.close` to SHUTDOWN.

Keepalive (gRFC A8, :mod:`._keepalive`): each connection runs a keepalive
task next to its transport (in the connection's own nursery, so it ends with
it) that pings after ``keepalive_time`` without reads while calls are open,
and closes the connection when a PING goes unanswered: its calls fail with
UNAVAILABLE, and the next call opens a new connection. A GOAWAY
"too_many_pings" doubles the keepalive time of the channel's new connections.

The :class:`~puregrpc.client.Channel` owns one subchannel and the nursery
its connections run in (given here as ``spawn``).
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Awaitable, Callable

import trio

from ..runtime import Transport
from ..wire import (
    CallEnded,
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    Event,
    PingAcknowledged,
    RpcError,
    SettingsChanged,
    StatusCode,
    Tracer,
)
from ._backoff import Backoff, BackoffPolicy
from ._connectivity import Connectivity, ConnectivityState
from ._keepalive import (
    KEEPALIVE_PING,
    ChannelKeepalive,
    ConnectionKeepalive,
    KeepaliveAction,
    is_too_many_pings,
)

logger = logging.getLogger("puregrpc.client")

#: Opens the byte stream of a new connection (TLS, if any, is added on top).
StreamFactory = Callable[[], Awaitable[trio.abc.Stream]]
#: Starts a task in the channel's nursery.
Spawner = Callable[..., None]

#: The shortest sleep of the keepalive task (no busy loop on equal deadlines).
_MIN_KEEPALIVE_SLEEP = 0.005


def parse_target(target: str) -> tuple[str, str, int]:
    """Split a target into ``(kind, host_or_path, port)``.

    Accepted: ``host:port``, ``[v6]:port``, ``dns:host:port``,
    ``ipv4:a.b.c.d:port``, ``ipv6:[addr]:port``, ``unix:path``,
    ``unix:///abs/path``. Raises :class:`ValueError` naming the problem.
    """
    if target.startswith("unix:"):
        path = target[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"target {target!r} has no socket path")
        return "unix", path, 0
    for prefix in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(prefix):
            target = target[len(prefix) :]
            break
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"target {target!r}: expected [address]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep:
            raise ValueError(f"target {target!r} has no port (expected host:port)")
    if not host:
        raise ValueError(f"target {target!r} has no host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"target {target!r} has an invalid port {port_text!r}")
    return "tcp", host, int(port_text)


def _connect_error_text(exc: OSError) -> str:
    """Why a connection attempt failed, in the words of the innermost error.

    trio reports a failed ``open_tcp_stream`` as "all attempts to connect to
    ... failed", with the reasons (ECONNREFUSED...) in an exception group in
    ``__cause__``: name those.
    """
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = []
        for inner in cause.exceptions:
            text = inner.strerror if isinstance(inner, OSError) and inner.strerror else str(inner)
            if text and text not in reasons:
                reasons.append(text)
        if reasons:
            return f"{exc}: {'; '.join(reasons)}"
    return str(exc) or type(exc).__name__


class SubchannelConnection:
    """One connection of a subchannel: transport, keepalive, calls waiting for a stream slot."""

    def __init__(
        self, transport: Transport[ClientConnection], keepalive: ConnectionKeepalive | None
    ) -> None:
        self.transport = transport
        self.slots = trio.lowlevel.ParkingLot()
        #: The connection's keepalive decisions (None: keepalive is off).
        self.keepalive = keepalive
        #: The keepalive task parks here; unparked when its decision may change.
        self.keepalive_lot = trio.lowlevel.ParkingLot()
        #: True while the keepalive task sleeps until a call starts.
        self.keepalive_dormant = False

    @property
    def usable(self) -> bool:
        """Whether new calls may still start on this connection."""
        return not self.transport.closed and not self.transport.connection.closed


class Subchannel:
    """The connection to one address, with its own backoff.

    ``kind``, ``host`` and ``port`` come from :func:`parse_target` (``kind``
    ``"stream"`` when ``connect`` replaces the dialling); ``target`` names the
    address in errors and logs; ``spawn`` starts the connection's task in the
    channel's nursery.
    """

    def __init__(
        self,
        target: str,
        kind: str,
        host: str,
        port: int,
        *,
        authority: str,
        spawn: Spawner,
        connection_config: ConnectionConfig,
        backoff: BackoffPolicy,
        keepalive: ChannelKeepalive,
        tracer: Tracer,
        connect: StreamFactory | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.target = target
        self._kind, self._host, self._port = kind, host, port
        self._authority = authority
        self._spawn = spawn
        self._connection_config = connection_config
        self._tracer = tracer
        self._connect_stream = connect
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname or host
        self._backoff = Backoff(backoff)
        self._retry_at = -float("inf")
        self._last_error = ""
        self._current: SubchannelConnection | None = None
        self._connect_lock = trio.Lock()
        self._closed = False
        self._keepalive = keepalive
        #: The channel's connectivity state, driven from here.
        self.connectivity = Connectivity(target)
        #: The connection whose success the READY state reports.
        self._ready: SubchannelConnection | None = None

    async def connection(
        self, wait_for_ready: bool, *, for_call: bool = True
    ) -> SubchannelConnection:
        """The usable connection, opened (or waited for, with ``wait_for_ready``) if need be.

        ``for_call``: a call is about to start on it (keepalive may ping
        first); false for :meth:`Channel.channel_ready`, which only waits.
        Raises :class:`RpcError` UNAVAILABLE when the subchannel is closed, or
        backing off and the call does not wait for ready.
        """
        if self._closed:
            raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
        current = self._current
        if current is not None and current.usable:
            if for_call:
                self._call_starting(current)
            return current
        async with self._connect_lock:
            while True:
                if self._closed:
                    raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
                current = self._current
                if current is not None and current.usable:
                    if for_call:
                        self._call_starting(current)
                    return current
                wait = self._retry_at - trio.current_time()
                if wait > 0:
                    if not wait_for_ready:
                        raise RpcError(
                            StatusCode.UNAVAILABLE,
                            f"cannot connect to {self.target}: {self._last_error}",
                        )
                    await trio.sleep(wait)
                if self._closed:
                    raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
                # A connection still shown READY is gone if we are here
                # (closed, not yet wound down): say so before the new attempt.
                if self._ready is not None:
                    self._lost(self._ready, ConnectivityState.IDLE)
                self.connectivity.move_to(ConnectivityState.CONNECTING)
                try:
                    self._current = await self._connect()
                except OSError as exc:
                    self._last_error = _connect_error_text(exc)
                    self._retry_at = trio.current_time() + self._backoff.next_delay()
                    self.connectivity.move_to(ConnectivityState.TRANSIENT_FAILURE)
                    logger.info("connecting to %s failed: %s", self.target, self._last_error)
                    if not wait_for_ready:
                        raise RpcError(
                            StatusCode.UNAVAILABLE,
                            f"cannot connect to {self.target}: {self._last_error}",
                        ) from None
                    continue
                except BaseException:
                    # Cancelled mid-attempt (the caller's deadline): nobody
                    # is connecting any more.
                    self.connectivity.move_to(ConnectivityState.IDLE)
                    raise
                self._backoff.reset()
                self._ready = self._current
                self.connectivity.move_to(ConnectivityState.READY)
                if for_call:
                    self._call_starting(self._current)
                return self._current

    def try_to_connect(self) -> None:
        """Start a connection attempt in the background if none is running or due to wait.

        Acts in IDLE, and in TRANSIENT_FAILURE once the backoff is over
        (``Channel.get_state(try_to_connect=True)``).
        """
        if self._connect_lock.locked():
            return  # an attempt (or a call's connect) is under way
        state = self.connectivity.state
        if state is ConnectivityState.IDLE or (
            state is ConnectivityState.TRANSIENT_FAILURE and trio.current_time() >= self._retry_at
        ):
            self._spawn(self._attempt)

    async def _attempt(self) -> None:
        try:
            await self.connection(wait_for_ready=False, for_call=False)
        except RpcError:
            pass  # the state says TRANSIENT_FAILURE; the next call fails or waits

    async def close(self) -> None:
        """Close the connection (GOAWAY, briefly drained); calls still running fail UNAVAILABLE."""
        self._closed = True
        self.connectivity.move_to(ConnectivityState.SHUTDOWN)
        current = self._current
        self._current = None
        if current is not None:
            with current.transport.send_context() as connection:
                connection.close()
            # Shielded but bounded: the GOAWAY gets its chance to go out even
            # when close() runs because the caller's scope was cancelled.
            with trio.move_on_after(1.0) as drain_scope:
                drain_scope.shield = True
                await current.transport.drain()
            current.transport.abort("channel closed")

    async def _connect(self) -> SubchannelConnection:
        stream: trio.abc.Stream | None = None
        peer = {"unix": f"unix:{self._host}", "stream": "stream"}.get(
            self._kind, f"{self._host}:{self._port}"
        )
        # The attempt's time limit covers TCP and TLS; running out of it is a
        # failed attempt like any other (backoff, then UNAVAILABLE).
        with trio.move_on_after(self._backoff.connect_timeout()):
            if self._connect_stream is not None:
                stream = await self._connect_stream()
            elif self._kind == "unix":
                stream = await trio.open_unix_socket(self._host)
            else:
                stream = await trio.open_tcp_stream(self._host, self._port)
            if self._ssl_context is not None:
                try:
                    stream = await self._start_tls(stream)
                except BaseException:
                    stream = None
                    raise
        if stream is None:
            raise OSError("connection attempt timed out")
        connection = ClientConnection(
            self._connection_config,
            authority=self._authority,
            scheme="https" if self._ssl_context is not None else "http",
            tracer=self._tracer,
        )
        holder: list[SubchannelConnection] = []

        def on_event(event: Event) -> None:
            current = holder[0]
            if isinstance(event, CallEnded | SettingsChanged):
                current.slots.unpark_all()
            elif isinstance(event, PingAcknowledged):
                if event.data == KEEPALIVE_PING and current.keepalive is not None:
                    current.keepalive.ping_acknowledged()
                    current.keepalive_lot.unpark_all()
            elif isinstance(event, ConnectionClosed):
                # GOAWAY: calls already running go on; new ones need a new
                # connection, and those parked for a slot should look again.
                current.slots.unpark_all()
                current.keepalive_lot.unpark_all()
                self._on_goaway(current, event)

        current = SubchannelConnection(
            Transport(stream, connection, on_event=on_event, peer=peer),
            self._keepalive.for_connection(),
        )
        holder.append(current)
        self._spawn(self._run_connection, current)
        return current

    def _on_goaway(self, current: SubchannelConnection, event: ConnectionClosed) -> None:
        """The connection takes no new calls: the channel is IDLE until the next one."""
        if event.remote and is_too_many_pings(event.error_code, event.debug_data):
            # A8: log where it is seen by default, and ping half as often.
            time = self._keepalive.too_many_pings()
            logger.warning(
                "%s closed the connection: too_many_pings (GOAWAY ENHANCE_YOUR_CALM); "
                "keepalive_time for new connections is now %s",
                self.target,
                "off" if time is None else f"{time:g} s",
            )
        elif event.error_code:
            logger.info("%s closed the connection: code %d", self.target, event.error_code)
        self._lost(current, ConnectivityState.IDLE)

    def _lost(self, current: SubchannelConnection, state: ConnectivityState) -> None:
        """``current`` can take no more calls: leave READY if it was the ready one."""
        if self._ready is current:
            self._ready = None
            self.connectivity.move_to(state)

    async def _start_tls(self, stream: trio.abc.Stream) -> trio.SSLStream[trio.abc.Stream]:
        """Wrap ``stream`` in TLS and insist on ALPN h2; close it on any failure."""
        assert self._ssl_context is not None
        tls = trio.SSLStream(stream, self._ssl_context, server_hostname=self._server_hostname)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(tls)
            # trio wraps the ssl error; its text names the actual problem.
            reason = exc.__cause__ if exc.__cause__ is not None else exc
            raise OSError(f"TLS handshake failed: {reason}") from None
        except BaseException:
            await trio.aclose_forcefully(tls)
            raise
        if tls.selected_alpn_protocol() != "h2":
            await trio.aclose_forcefully(tls)
            raise OSError("the server did not negotiate HTTP/2 (ALPN h2)")
        return tls

    async def _run_connection(self, current: SubchannelConnection) -> None:
        try:
            # The keepalive task lives in the connection's nursery: it never
            # outlives the transport.
            async with trio.open_nursery() as nursery:
                if current.keepalive is not None:
                    nursery.start_soon(self._keep_alive, current, current.keepalive)
                await current.transport.run()
                nursery.cancel_scope.cancel()
        finally:
            current.slots.unpark_all()
            self._lost(current, ConnectivityState.IDLE)
            if self._current is current:
                self._current = None

    # ------------------------------------------------------------ keepalive

    def _call_starting(self, current: SubchannelConnection) -> None:
        """A call is about to open on ``current``: ping first if it has been quiet (A8).

        Sent before the call's HEADERS, so a connection that died while idle
        is found within ``keepalive_timeout``, not ``keepalive_time`` more.
        """
        keepalive = current.keepalive
        if keepalive is None:
            return
        transport = current.transport
        now = trio.current_time()
        action = keepalive.decide(
            now,
            last_read=transport.last_read,
            open_calls=transport.connection.open_calls + 1,
            closing=False,
        )
        if action is KeepaliveAction.PING:
            self._ping(current, keepalive, now)
        if action is not KeepaliveAction.NOTHING or current.keepalive_dormant:
            current.keepalive_lot.unpark_all()

    def _ping(
        self, current: SubchannelConnection, keepalive: ConnectionKeepalive, now: float
    ) -> None:
        with current.transport.send_context() as connection:
            connection.ping(KEEPALIVE_PING)
        keepalive.ping_sent(now)

    async def _keep_alive(
        self, current: SubchannelConnection, keepalive: ConnectionKeepalive
    ) -> None:
        """Ping the quiet connection while calls are open; close it if the ACK never comes."""
        transport = current.transport
        while not transport.closed:
            now = trio.current_time()
            last_read = transport.last_read
            open_calls = transport.connection.open_calls
            closing = transport.connection.closed
            action = keepalive.decide(
                now, last_read=last_read, open_calls=open_calls, closing=closing
            )
            if action is KeepaliveAction.CLOSE:
                reason = (
                    f"keepalive timeout: {self.target} did not answer a PING within "
                    f"{keepalive.timeout:g} s (keepalive_timeout); the connection is closed"
                )
                logger.info("%s", reason)
                self._lost(current, ConnectivityState.TRANSIENT_FAILURE)
                transport.abort(reason)
                return
            if action is KeepaliveAction.PING:
                self._ping(current, keepalive, now)
            wake_at = keepalive.next_check(
                now, last_read=last_read, open_calls=open_calls, closing=closing
            )
            current.keepalive_dormant = wake_at == math.inf
            with trio.move_on_at(max(wake_at, now + _MIN_KEEPALIVE_SLEEP)):
                await current.keepalive_lot.park()
