"""A subchannel: one HTTP/2 connection to one address, reopened as needed.

Theory of operation. A channel has one subchannel per address its resolver
found; its balancer decides when each connects
(:meth:`Subchannel.request_connection`) and which READY one a call goes to.
An attempt runs in the background, in the channel's nursery, over TCP or a
Unix socket, or over whatever stream a ``connect`` factory returns (one end
of ``trio.testing.memory_stream_pair()`` in a test without sockets), with
TLS on top when an ``ssl_context`` is given. Failed attempts are spaced by
exponential backoff with jitter (doc/connection-backoff.md): the subchannel
stays in TRANSIENT_FAILURE until ``retry_at``, and no attempt starts before.

Each subchannel has its own :class:`~._connectivity.Connectivity`, and
tells the channel of each change (``on_change``)::

          request_connection            handshake done
    IDLE ───────────────────▶ CONNECTING ──────────────▶ READY
     ▲  ▲                      │  ▲   │                   │  │
     │  └─ channel closing ────┘  │   │ attempt failed    │  │
     │                            │   ▼                   │  │
     │    request_connection,  TRANSIENT_FAILURE ◀────────┘  │
     │    backoff over                 keepalive: dead       │
     └──────────────── GOAWAY, or the connection closed ─────┘

    any state ── close() ──▶ SHUTDOWN (final)

A READY connection that gets a GOAWAY or closes makes the subchannel IDLE
(the balancer reconnects when it wants to); keepalive finding it dead makes
it TRANSIENT_FAILURE.

Keepalive (gRFC A8, :mod:`._keepalive`): each connection runs a keepalive
task next to its transport (in the connection's own nursery, so it ends with
it) that pings after ``keepalive_time`` without reads while calls are open,
and closes the connection when a PING goes unanswered: its calls fail with
UNAVAILABLE, and the next call opens a new connection. A GOAWAY
"too_many_pings" doubles the keepalive time of the subchannel's new
connections.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Awaitable, Callable

import trio

from ..runtime import CallCounts, ChannelzSubchannel, Transport, next_channelz_id
from ..wire import (
    CallEnded,
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    Event,
    PingAcknowledged,
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
from ._target import Address

logger = logging.getLogger("puregrpc.client")

#: Opens the byte stream of a new connection (TLS, if any, is added on top).
StreamFactory = Callable[[], Awaitable[trio.abc.Stream]]
#: Starts a task in the channel's nursery.
Spawner = Callable[..., None]
#: Hears that a subchannel changed state: ``(subchannel, old_state)``.
StateListener = Callable[["Subchannel", ConnectivityState], None]

#: The shortest sleep of the keepalive task (no busy loop on equal deadlines).
_MIN_KEEPALIVE_SLEEP = 0.005


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
        self,
        transport: Transport[ClientConnection],
        keepalive: ConnectionKeepalive | None,
        calls: CallCounts,
    ) -> None:
        self.transport = transport
        #: The subchannel's call counts (channelz: one per stream opened here).
        self._calls = calls
        self.slots = trio.lowlevel.ParkingLot()
        #: The connection's keepalive decisions (None: keepalive is off).
        self.keepalive = keepalive
        #: The keepalive task parks here; unparked when its decision may change.
        self.keepalive_lot = trio.lowlevel.ParkingLot()
        #: True while the keepalive task sleeps until a call starts.
        self.keepalive_dormant = False
        #: The server's first SETTINGS frame has arrived.
        self.settings_received = False

    def call_opened(self) -> None:
        """A call's stream opened on this connection."""
        self._calls.call_started()

    def call_ended(self, ok: bool) -> None:
        """A call on this connection ended, with status OK or not."""
        self._calls.call_ended(ok)

    @property
    def usable(self) -> bool:
        """Whether new calls may still start on this connection."""
        return not self.transport.closed and not self.transport.connection.closed


class Subchannel:
    """The connection to one address, with its own backoff and connectivity state.

    ``name`` names the address in errors and logs (``127.0.0.1:50051``);
    ``address`` is dialled (TCP or a Unix socket), unless ``connect``
    replaces the dialling (``address`` then only tells subchannels apart).
    ``spawn`` starts tasks in the channel's nursery; ``on_change(subchannel,
    old_state)`` hears of every change of state.
    """

    def __init__(
        self,
        name: str,
        address: Address,
        *,
        authority: str,
        spawn: Spawner,
        on_change: StateListener,
        connection_config: ConnectionConfig,
        backoff: BackoffPolicy,
        keepalive: ChannelKeepalive,
        tracer: Tracer,
        connect: StreamFactory | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self._name = name
        #: The subchannel's channelz id (see :meth:`channelz`).
        self.channelz_id = next_channelz_id()
        #: Calls that started on this subchannel's connections, and how they ended.
        self.calls = CallCounts()
        self.address = address
        self._authority = authority
        self._spawn = spawn
        self._on_change = on_change
        self._connection_config = connection_config
        self._tracer = tracer
        self._connect_stream = connect
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._backoff = Backoff(backoff)
        self._retry_at = -float("inf")
        self._last_error = ""
        self._current: SubchannelConnection | None = None
        #: True while an attempt runs (at most one at a time).
        self._connecting = False
        self._closed = False
        self._keepalive = keepalive
        #: This subchannel's connectivity state.
        self.connectivity = Connectivity(name)
        #: The connection whose success the READY state reports.
        self._ready: SubchannelConnection | None = None

    # ------------------------------------------- what a balancer sees

    @property
    def name(self) -> str:
        """The address, as errors and logs name it."""
        return self._name

    @property
    def state(self) -> ConnectivityState:
        """The subchannel's connectivity state."""
        return self.connectivity.state

    @property
    def retry_at(self) -> float:
        """When the next attempt may start after a failed one (trio time)."""
        return self._retry_at

    @property
    def last_error(self) -> str:
        """Why the last attempt failed."""
        return self._last_error

    def request_connection(self) -> None:
        """Start an attempt in the background if IDLE, or TRANSIENT_FAILURE past the backoff.

        The attempt runs in the channel's nursery: CONNECTING now, then
        READY or TRANSIENT_FAILURE (with the next backoff) when it ends.
        """
        if self._closed or self._connecting:
            return
        state = self.connectivity.state
        if not (
            state is ConnectivityState.IDLE
            or (
                state is ConnectivityState.TRANSIENT_FAILURE
                and trio.current_time() >= self._retry_at
            )
        ):
            return
        self._connecting = True
        self._move_to(ConnectivityState.CONNECTING)
        self._spawn(self._attempt)

    def __repr__(self) -> str:
        return f"<Subchannel {self._name} {self.connectivity.state.name}>"

    def channelz(self) -> ChannelzSubchannel:
        """A snapshot for channelz: address, state, calls and the open connection."""
        current = self._current
        return ChannelzSubchannel(
            id=self.channelz_id,
            target=self._name,
            state=self.connectivity.state.name,
            calls=self.calls.snapshot(),
            sockets=() if current is None else (current.transport.channelz(),),
        )

    # ------------------------------------------------------- calls

    def ready_connection(self, *, for_call: bool = True) -> SubchannelConnection | None:
        """The READY connection, or None if it just became unusable (the state leaves READY).

        ``for_call``: a call is about to start on it (keepalive may ping
        first); false for :meth:`Channel.channel_ready`, which only waits.
        """
        current = self._current
        if current is not None and current.usable:
            if for_call:
                self._call_starting(current)
            return current
        # Closed, not yet wound down: say so, so that the balancer looks elsewhere.
        if self._ready is not None:
            self._lost(self._ready, ConnectivityState.IDLE)
        return None

    async def close(self, *, wait_for_calls: bool = False) -> None:
        """Shut down: GOAWAY, briefly drained; calls still running fail UNAVAILABLE.

        ``wait_for_calls``: first let the calls on the connection end (an
        address the resolver dropped: its calls finish, no new ones start).
        """
        self._closed = True
        self._move_to(ConnectivityState.SHUTDOWN)
        current = self._current
        self._current = None
        if current is None:
            return
        if wait_for_calls:
            transport = current.transport
            while transport.connection.open_calls and not transport.closed:
                await current.slots.park()
        with current.transport.send_context() as connection:
            connection.close()
        # Shielded but bounded: the GOAWAY gets its chance to go out even
        # when close() runs because the caller's scope was cancelled.
        with trio.move_on_after(1.0) as drain_scope:
            drain_scope.shield = True
            await current.transport.drain()
        current.transport.abort("channel closed")

    # -------------------------------------------------------- attempts

    async def _attempt(self) -> None:
        """One connection attempt: READY, or TRANSIENT_FAILURE and the next backoff."""
        try:
            current = await self._connect()
        except Exception as exc:
            self._connecting = False
            if isinstance(exc, OSError):
                self._last_error = _connect_error_text(exc)
            else:
                logger.warning("connecting to %s raised", self._name, exc_info=True)
                self._last_error = f"{type(exc).__name__}: {exc}"
            self._retry_at = trio.current_time() + self._backoff.next_delay()
            logger.info("connecting to %s failed: %s", self._name, self._last_error)
            self._move_to(ConnectivityState.TRANSIENT_FAILURE)
            return
        except BaseException:
            # Cancelled mid-attempt (the channel closes): nobody is connecting any more.
            self._connecting = False
            self._move_to(ConnectivityState.IDLE)
            raise
        self._connecting = False
        if self._closed:
            current.transport.abort("channel closed")
            return
        self._backoff.reset()
        self._current = current
        self._ready = current
        self._move_to(ConnectivityState.READY)

    def _move_to(self, state: ConnectivityState) -> None:
        old = self.connectivity.state
        if self.connectivity.move_to(state):
            self._on_change(self, old)

    async def _connect(self) -> SubchannelConnection:
        stream: trio.abc.Stream | None = None
        address = self.address
        peer = "stream" if self._connect_stream is not None else str(address)
        # The attempt's time limit covers TCP, TLS and the server's SETTINGS;
        # running out of it is a failed attempt like any other (backoff).
        deadline = trio.current_time() + self._backoff.connect_timeout()
        with trio.move_on_at(deadline):
            if self._connect_stream is not None:
                stream = await self._connect_stream()
            elif address.kind != "tcp":
                stream = await trio.open_unix_socket(address.socket_path)
            else:
                stream = await trio.open_tcp_stream(address.host, address.port)
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
            if isinstance(event, CallEnded):
                current.call_ended(event.status.code is StatusCode.OK)
                current.slots.unpark_all()
            elif isinstance(event, SettingsChanged):
                current.settings_received = True
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
            self.calls,
        )
        holder.append(current)
        self._spawn(self._run_connection, current)
        # Send the preface (and our SETTINGS) now: the server answers with its own.
        with current.transport.send_context():
            pass
        try:
            await self._wait_for_settings(current, deadline)
        except BaseException:
            current.transport.abort("connection attempt abandoned")
            raise
        return current

    async def _wait_for_settings(self, current: SubchannelConnection, deadline: float) -> None:
        """READY only once the server's SETTINGS arrived (as grpc-go and C-core do).

        Calls then start under the server's MAX_CONCURRENT_STREAMS, not
        HTTP/2's unlimited default: a burst of calls waiting for the
        connection would otherwise all open streams before the server's
        limit is known. Raises :class:`OSError` if the connection ends or
        the deadline passes first.
        """
        with trio.move_on_at(deadline):
            while not current.settings_received and current.usable:
                await current.slots.park()
        if current.settings_received and current.usable:
            return
        transport = current.transport
        if transport.closed:
            reason = transport.close_reason
        elif transport.connection.closed:
            reason = "the server sent GOAWAY"
        else:
            reason = "no SETTINGS from the server before the attempt timed out"
        transport.abort(reason)
        raise OSError(f"connection closed before the server's SETTINGS: {reason}")

    def _on_goaway(self, current: SubchannelConnection, event: ConnectionClosed) -> None:
        """The connection takes no new calls: the channel is IDLE until the next one."""
        if event.remote and is_too_many_pings(event.error_code, event.debug_data):
            # A8: log where it is seen by default, and ping half as often.
            time = self._keepalive.too_many_pings()
            logger.warning(
                "%s closed the connection: too_many_pings (GOAWAY ENHANCE_YOUR_CALM); "
                "keepalive_time for new connections is now %s",
                self._name,
                "off" if time is None else f"{time:g} s",
            )
        elif event.error_code:
            logger.info("%s closed the connection: code %d", self._name, event.error_code)
        self._lost(current, ConnectivityState.IDLE)

    def _lost(self, current: SubchannelConnection, state: ConnectivityState) -> None:
        """``current`` can take no more calls: leave READY if it was the ready one."""
        if self._ready is current:
            self._ready = None
            self._move_to(state)

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
                    f"keepalive timeout: {self._name} did not answer a PING within "
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
