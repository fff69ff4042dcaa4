"""One accepted connection: its transport, its calls, its timers and its guards.

Each connection owns a nursery. The transport's reader and writer run in it,
and so does one task per call, so no handler outlives its connection: when
the connection ends, every handler still running is cancelled.

The path of a call: the transport's reader dispatches ``CallStarted`` to
:meth:`ServedConnection._start_call`, which accepts a
:class:`~puregrpc.runtime.ServerCallStream` and starts
:meth:`ServedConnection._serve_call` for it; that runs the handler
(:func:`._handlers.run_handler`) in the stream's cancel scope and ends the
stream with the handler's status.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence

import h2.errors
import trio

from ..runtime import CallCounts, KeepalivePolicy, ServerCallStream, ServerWire, Transport
from ..wire import (
    CallEnded,
    CallStarted,
    ConnectionClosed,
    EndCause,
    Event,
    Metadata,
    PingAcknowledged,
    PingReceived,
    RpcError,
    ServerConnection,
    SettingsChanged,
    Status,
    StatusCode,
)
from ._abuse import AbuseGuard
from ._auth_context import INSECURE, AuthContext
from ._context import ServicerContext, ending_status
from ._handlers import MethodHandler, run_handler
from ._interceptor import ServerInterceptor
from ._lifetime import ConnectionLifetime, LifetimeEnd
from ._options import ServerOptions

logger = logging.getLogger("puregrpc.server")

_KEEPALIVE_PING = b"pgrpc-ka"
#: The shortest sleep of the timers' loop (no busy loop on equal deadlines).
_MIN_TIMER_SLEEP = 0.01


class ServedConnection:
    """Serves the calls of one client connection.

    ``on_call_end`` is called after every call (the server's shutdown waits
    for quiet with it); ``calls`` counts them (the server's, for channelz).
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        peer: str,
        *,
        auth: AuthContext = INSECURE,
        handlers: Mapping[str, MethodHandler],
        interceptors: Sequence[ServerInterceptor] = (),
        options: ServerOptions,
        calls: CallCounts,
        on_call_end: Callable[[], None],
        connection: ServerWire | None = None,
        initial_data: bytes = b"",
        awaiting_request: Callable[[], bool] | None = None,
        request_head_timeout: float = 10.0,
    ) -> None:
        self._handlers = handlers
        self._interceptors = interceptors
        self._options = options
        self._on_call_end = on_call_end
        self._calls = calls
        self.peer = peer
        #: What the TLS handshake said about the client.
        self.auth = auth
        if connection is None:
            connection = ServerConnection(options.connection, tracer=options.tracer)
        self.transport: Transport[ServerWire] = Transport(
            stream, connection, on_event=self._on_event, peer=peer, initial_data=initial_data
        )
        #: HTTP/1.1: True while the connection waits for a request head, which
        #: must arrive within ``request_head_timeout`` of the last call's end
        #: (None for HTTP/2, where keepalive and idleness rules apply).
        self._awaiting_request = awaiting_request
        self._head_timeout = request_head_timeout
        self._nursery: trio.Nursery | None = None
        now = trio.current_time()
        self._last_call_end = now
        # HTTP/1.1 has no PING: keepalive is for HTTP/2 connections only.
        self._keepalive = KeepalivePolicy(
            None if awaiting_request is not None else options.keepalive_time,
            options.keepalive_timeout,
        )
        self._lifetime = ConnectionLifetime(
            opened_at=now,
            max_age=options.max_connection_age,
            max_idle=options.max_connection_idle,
            # +-10% (grpc-go): connections opened together do not all
            # reconnect at the same moment.
            jitter=0.9 + 0.2 * (os.urandom(1)[0] / 255),
        )
        self._guard = AbuseGuard(
            max_resets_per_second=options.max_resets_per_second,
            max_control_frames_per_second=options.max_control_frames_per_second,
            min_ping_interval=options.min_ping_interval,
            permit_pings_without_calls=options.permit_keepalive_without_calls,
            max_ping_strikes=options.max_ping_strikes,
        )
        #: Wakes the timers task when what it decides on changed (a keepalive
        #: ACK, a call's end) before the time it sleeps until.
        self._timers_lot = trio.lowlevel.ParkingLot()
        self._shutting_down = False
        self._cancelled_by_shutdown = False
        #: The closing task was asked for (it starts then, not with the connection).
        self._quiet = False
        self._abusive = False

    # ------------------------------------------------------------- running

    async def run(self) -> None:
        """Serve until the client goes away or the server shuts the connection."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timers)
                if self._quiet:
                    nursery.start_soon(self._close_after_flush)
                await self.transport.run()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None

    def begin_shutdown(self) -> None:
        """Two-step GOAWAY: no new calls; calls in flight may finish."""
        if not self._shutting_down:
            self._shutting_down = True
            with self.transport.send_context() as connection:
                connection.begin_graceful_shutdown()
            self._maybe_close()  # HTTP/1.1 between requests: closes at once
            # The connection closes once the client has acknowledged the
            # shutdown PING (so calls it sent before seeing the first GOAWAY
            # have arrived) and the last call has ended: see _maybe_close.

    def cancel_calls(self) -> None:
        """The grace period is over: cancel every handler still running."""
        self._cancelled_by_shutdown = True
        for call in self.transport.calls:
            if isinstance(call, ServerCallStream):
                call.cancel_scope.cancel()
        self._close_when_quiet()

    @property
    def open_calls(self) -> int:
        """Calls in progress on this connection."""
        return self.transport.connection.open_calls

    def abort(self, reason: str) -> None:
        """Close the connection at once."""
        self.transport.abort(reason)

    # -------------------------------------------------------------- events

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CallStarted):
            self._start_call(event)
        elif isinstance(event, CallEnded):
            self._on_call_ended(event)
        elif isinstance(event, PingReceived):
            self._cut_off_if(
                self._guard.on_ping(
                    trio.current_time(),
                    traffic=self.transport.traffic,
                    open_calls=self.transport.connection.open_calls,
                )
            )
        elif isinstance(event, PingAcknowledged):
            if event.data == _KEEPALIVE_PING:
                self._keepalive.ping_acknowledged()
                self._timers_lot.unpark_all()
            self._maybe_close()
        elif isinstance(event, SettingsChanged):
            self._cut_off_if(self._guard.on_settings(trio.current_time()))
        elif isinstance(event, ConnectionClosed) and event.remote:
            logger.debug("client %s sent GOAWAY (code %d)", self.peer, event.error_code)

    def _on_call_ended(self, event: CallEnded) -> None:
        cause = event.cause
        if cause is EndCause.PEER_RESET:
            self._cut_off_if(self._guard.on_reset(trio.current_time()))
        elif cause is EndCause.REFUSED and not self.transport.connection.closed:
            logger.info(
                "refused call on stream %d from %s: %s", event.stream_id, self.peer, event.status
            )
            self._cut_off_if(self._guard.on_refused(trio.current_time()))
        elif cause is EndCause.PROTOCOL_ERROR:
            logger.info(
                "call on stream %d from %s broke the protocol: %s",
                event.stream_id,
                self.peer,
                event.status,
            )
            self._cut_off_if(self._guard.on_stream_error(trio.current_time()))

    def _cut_off_if(self, reason: str | None) -> None:
        """Close the connection with GOAWAY ENHANCE_YOUR_CALM when an abuse limit says so."""
        if reason is None or self._abusive:
            return  # one GOAWAY is enough; more events may follow in this read
        self._abusive = True
        logger.warning("closing connection from %s: %s", self.peer, reason)
        with self.transport.send_context() as connection:
            connection.close(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, reason.encode())
        self.transport.abort(reason)

    # --------------------------------------------------------------- calls

    def _start_call(self, event: CallStarted) -> None:
        # Runs in the reader, synchronously: the call's stream must be
        # registered before the next event (its first message, maybe in the
        # same read) is dispatched.
        stream = ServerCallStream.accept(self.transport, event)
        if stream is None:
            return  # reset by the client later in the same read: nothing to serve
        self._calls.call_started()
        handler = self._handlers.get(event.path)
        if handler is None:
            self._calls.call_ended(False)
            stream.end(
                Status(code=StatusCode.UNIMPLEMENTED, details=f"method not found: {event.path}")
            )
            logger.info("call %s from %s: UNIMPLEMENTED", event.path, self.peer)
            return
        cardinality = handler.method.cardinality
        if event.protocol != "grpc" and cardinality.client_streaming:
            self._calls.call_ended(False)
            kind = "bidirectional-streaming" if cardinality.server_streaming else "client-streaming"
            stream.end(
                Status(
                    code=StatusCode.UNIMPLEMENTED,
                    details=f"{event.path} is a {kind} method: gRPC-Web carries unary and"
                    " server-streaming calls only; call it with a native gRPC (HTTP/2) client",
                )
            )
            logger.info(
                "call %s from %s over %s: UNIMPLEMENTED", event.path, self.peer, event.protocol
            )
            return
        # A unary response is written with its status, in one write.
        stream.hold_writes = not handler.method.cardinality.server_streaming
        assert self._nursery is not None
        self._nursery.start_soon(self._serve_call, event, handler, stream)

    async def _serve_call(
        self, event: CallStarted, handler: MethodHandler, stream: ServerCallStream
    ) -> None:
        scope = stream.cancel_scope
        context = ServicerContext(
            stream=stream,
            method=handler.method,
            metadata=event.metadata,
            peer=self.peer,
            auth=self.auth,
            deadline=None if event.timeout is None else scope.deadline,
            accept_encoding=event.accept_encoding,
            compression=self._options.compression,
        )
        status: Status
        trailing: Metadata | None = None
        try:
            with scope:
                await run_handler(handler, context, self._interceptors)
            status = ending_status(context)
            trailing = context.trailing_metadata
        except RpcError as exc:
            status = exc.status
            trailing = exc.trailing_metadata or context.trailing_metadata
        except Exception as exc:
            if stream.end_event is None:
                logger.exception("handler of %s raised", event.path)
            else:
                # The call was already over (reset, connection lost): the
                # error is a consequence of that, not a handler bug.
                logger.debug("handler of %s raised after its call ended: %r", event.path, exc)
            status = ending_status(context, exc)
        if scope.cancelled_caught:
            if stream.end_event is not None:
                status = stream.end_event.status
            elif self._cancelled_by_shutdown:
                status = Status(code=StatusCode.UNAVAILABLE, details="server shutting down")
            else:
                status = Status(code=StatusCode.DEADLINE_EXCEEDED, details="deadline exceeded")
        stream.end(status, trailing)
        context._release()
        self._calls.call_ended(status.code is StatusCode.OK)
        self._last_call_end = trio.current_time()
        self._on_call_end()
        if (
            self._lifetime.max_idle is not None or self._awaiting_request is not None
        ) and not self.transport.connection.open_calls:
            self._timers_lot.unpark_all()  # the idle (or next request head) clock starts now
        self._maybe_close()

    def _maybe_close(self) -> None:
        """Close a shutting-down connection once it is confirmed and quiet."""
        connection = self.transport.connection
        if (
            (self._shutting_down or connection.closed)
            and connection.shutdown_confirmed
            and not connection.open_calls
        ):
            # Shutting down, or the connection itself takes no more calls
            # (an HTTP/1.1 response that ends its connection).
            self._close_when_quiet()

    def _close_when_quiet(self) -> None:
        # The closing task starts only now: an open connection keeps no task
        # (nor an Event) waiting for its end. A closed transport has nothing
        # left to flush (and its nursery may be closing).
        if not self._quiet:
            self._quiet = True
            if self._nursery is not None and not self.transport.closed:
                self._nursery.start_soon(self._close_after_flush)

    async def _close_after_flush(self) -> None:
        # Once the connection is shut down and quiet: let the last trailers
        # and the GOAWAY reach the socket, then close.
        with trio.move_on_after(1.0):
            await self.transport.drain()
        self.transport.abort("server shut down the connection")

    # -------------------------------------------------------------- timers

    async def _timers(self) -> None:
        """Keepalive pings, max connection age and idleness: the policies decide, this acts."""
        options = self._options
        keepalive = self._keepalive
        lifetime = self._lifetime
        transport = self.transport
        while True:
            now = trio.current_time()
            open_calls = transport.connection.open_calls
            end = lifetime.due(now, open_calls=open_calls, last_call_end=self._last_call_end)
            if end is LifetimeEnd.AGE:
                self.begin_shutdown()
                await trio.sleep(options.max_connection_age_grace)
                self.cancel_calls()
                return
            if end is LifetimeEnd.IDLE:
                self.begin_shutdown()
                # A client that never answers the shutdown PING is closed
                # after a while all the same.
                await trio.sleep(options.keepalive_timeout)
                if not transport.connection.open_calls:
                    self._close_when_quiet()
                return
            if (
                self._awaiting_request is not None
                and self._awaiting_request()
                and now >= self._last_call_end + self._head_timeout
            ):
                logger.info(
                    "no request head from %s in %.0f s: closing", self.peer, self._head_timeout
                )
                transport.abort("no request head in time")
                return
            if keepalive.expired(now):
                logger.info("keepalive PING to %s not answered: closing", self.peer)
                transport.abort("keepalive timeout")
                return
            if keepalive.ping_due(now, transport.last_read):
                with transport.send_context() as connection:
                    connection.ping(_KEEPALIVE_PING)
                keepalive.ping_sent(now)
            wake_at = min(
                keepalive.next_check(now, transport.last_read),
                lifetime.next_check(now, open_calls=open_calls, last_call_end=self._last_call_end),
            )
            if self._awaiting_request is not None and self._awaiting_request():
                wake_at = min(wake_at, self._last_call_end + self._head_timeout)
            with trio.move_on_at(max(wake_at, now + _MIN_TIMER_SLEEP)):
                await self._timers_lot.park()
