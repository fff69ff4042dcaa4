"""One accepted connection: its transport, its calls, its timers and its guards.

Each connection owns a nursery. The transport's reader and writer run in it,
and so does one task per call, so no handler outlives its connection: when
the connection ends, every handler still running is cancelled.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import h2.errors
import trio

from ..runtime import CallStream, Transport
from ..wire import (
    CallEnded,
    CallStarted,
    ConnectionClosed,
    Event,
    Metadata,
    PingAcknowledged,
    PingReceived,
    RpcError,
    ServerConnection,
    SettingsChanged,
    Status,
    StatusCode,
    StreamReset,
)
from ._context import ServicerContext, deadline_from_timeout
from ._handlers import MethodHandler, run_handler

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("puregrpc.server")

_KEEPALIVE_PING = b"pgrpc-ka"


class _RateCounter:
    """Counts events per one-second bucket of trio's clock."""

    __slots__ = ("_bucket", "_count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._bucket = -1
        self._count = 0

    def exceeded(self) -> bool:
        """Count one event; True when this second's count passes the limit."""
        bucket = int(trio.current_time())
        if bucket != self._bucket:
            self._bucket = bucket
            self._count = 0
        self._count += 1
        return self._count > self.limit


class ServedConnection:
    """Serves the calls of one client connection."""

    def __init__(self, server: Server, stream: trio.abc.Stream, peer: str) -> None:
        self._server = server
        self._options = server.options
        self.peer = peer
        self.connection = ServerConnection(self._options.connection, tracer=self._options.tracer)
        self.transport = Transport(stream, self.connection, on_event=self._on_event, peer=peer)
        self._nursery: trio.Nursery | None = None
        self._opened_at = trio.current_time()
        self._last_call_end = self._opened_at
        self._ping_strikes = 0
        self._last_ping_received = -float("inf")
        self._traffic_at_last_ping = -1
        self._keepalive_acked: trio.Event | None = None
        self._resets = _RateCounter(self._options.max_resets_per_second)
        self._control_frames = _RateCounter(self._options.max_control_frames_per_second)
        self._shutting_down = False
        self._cancelled_by_shutdown = False
        self._quiet = trio.Event()
        self._abusive = False

    # ------------------------------------------------------------- running

    async def run(self) -> None:
        """Serve until the client goes away or the server shuts the connection."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timers)
                nursery.start_soon(self._close_after_flush)
                await self.transport.run()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None

    def begin_shutdown(self) -> None:
        """Two-step GOAWAY: no new calls; calls in flight may finish."""
        if not self._shutting_down:
            self._shutting_down = True
            self.connection.begin_graceful_shutdown()
            self.transport.wake_writer()
            # The connection closes once the client has acknowledged the
            # shutdown PING (so calls it sent before seeing the first GOAWAY
            # have arrived) and the last call has ended: see _maybe_close.

    def cancel_calls(self) -> None:
        """The grace period is over: cancel every handler still running."""
        self._cancelled_by_shutdown = True
        for call in list(self.transport.calls.values()):
            if call.cancel_scope is not None:
                call.cancel_scope.cancel()
        self._close_when_quiet()

    @property
    def open_calls(self) -> int:
        """Calls in progress on this connection."""
        return self.connection.open_calls

    def abort(self, reason: str) -> None:
        """Close the connection at once."""
        self.transport.abort(reason)

    # -------------------------------------------------------------- events

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CallStarted):
            self._start_call(event)
        elif isinstance(event, StreamReset):
            if self._resets.exceeded():
                self._goaway_abuse("too many stream resets (rapid reset)")
        elif isinstance(event, CallEnded):
            if event.locally_ended and not self.connection.closed:
                logger.info(
                    "refused call on stream %d from %s: %s %s",
                    event.stream_id,
                    self.peer,
                    event.status.code.name,
                    event.status.message,
                )
                if self._control_frames.exceeded():
                    self._goaway_abuse("too many refused requests")
        elif isinstance(event, PingReceived):
            self._on_client_ping()
        elif isinstance(event, PingAcknowledged):
            if event.data == _KEEPALIVE_PING and self._keepalive_acked is not None:
                self._keepalive_acked.set()
            self._maybe_close()
        elif isinstance(event, SettingsChanged):
            if self._control_frames.exceeded():
                self._goaway_abuse("too many SETTINGS frames")
        elif isinstance(event, ConnectionClosed):
            if event.remote:
                logger.debug("client %s sent GOAWAY (code %d)", self.peer, event.error_code)
            self.transport.wake_writer()

    def _on_client_ping(self) -> None:
        # grpc-go's keepalive enforcement: a ping sooner than min_ping_interval
        # after the previous one, with no messages sent in between, is a
        # strike; so is any ping without open calls unless that is permitted.
        # Pings that follow our traffic are never abuse: grpc-go's clients
        # send a bandwidth probe with nearly every DATA frame they receive.
        now = trio.current_time()
        options = self._options
        traffic = self.transport.traffic
        if traffic != self._traffic_at_last_ping:
            self._ping_strikes = 0
        elif self._control_frames.exceeded():
            self._goaway_abuse("too many PING frames")
            return
        if self.connection.open_calls == 0 and not options.permit_keepalive_without_calls:
            strike = True
        else:
            strike = (
                now - self._last_ping_received < options.min_ping_interval
                and traffic == self._traffic_at_last_ping
            )
        self._last_ping_received = now
        self._traffic_at_last_ping = traffic
        if strike:
            self._ping_strikes += 1
            if self._ping_strikes > options.max_ping_strikes:
                self._goaway_abuse("too_many_pings")

    def _goaway_abuse(self, reason: str) -> None:
        if self._abusive:
            return  # one GOAWAY is enough; more events may follow in this read
        self._abusive = True
        logger.warning("closing connection from %s: %s", self.peer, reason)
        self.connection.close(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, reason.encode())
        self.transport.wake_writer()
        self.transport.abort(reason)

    # --------------------------------------------------------------- calls

    def _start_call(self, event: CallStarted) -> None:
        # Runs in the reader, synchronously: the call's stream must be
        # registered before the next event (its first message, maybe in the
        # same read) is dispatched.
        if not self.connection.is_open(event.stream_id):
            return  # reset by the client later in the same read: nothing to serve
        handler = self._server.handlers.get(event.path)
        if handler is None:
            self.connection.end_call(
                event.stream_id,
                Status(code=StatusCode.UNIMPLEMENTED, message=f"method not found: {event.path}"),
            )
            self.transport.wake_writer()
            logger.info("call %s from %s: UNIMPLEMENTED", event.path, self.peer)
            return
        stream = CallStream(self.transport, event.stream_id)
        self.transport.register(stream)
        # The handler's scope exists before its task starts: a reset or
        # deadline arriving first must still cancel it.
        deadline = deadline_from_timeout(event.timeout)
        stream.cancel_scope = trio.CancelScope(deadline=deadline)
        assert self._nursery is not None
        self._nursery.start_soon(self._serve_call, event, handler, stream)

    async def _serve_call(
        self, event: CallStarted, handler: MethodHandler, stream: CallStream
    ) -> None:
        connection = self.connection
        transport = self.transport
        stream_id = event.stream_id
        scope = stream.cancel_scope
        assert scope is not None
        context = ServicerContext(
            stream=stream,
            method=handler.method,
            metadata=event.metadata,
            peer=self.peer,
            deadline=None if event.timeout is None else scope.deadline,
            accept_encoding=event.accept_encoding,
            compression=self._options.compression,
        )
        started = trio.current_time()
        logger.debug("call %s from %s started", event.path, self.peer)
        status: Status
        trailing: Metadata | None = None
        try:
            with scope:
                await run_handler(handler, stream, context)
            code = context.code if context.code is not None else StatusCode.OK
            status = Status(code=code, message=context.details)
            trailing = context.trailing_metadata
        except RpcError as exc:
            status = Status(code=exc.code, message=exc.details, details_bin=exc.details_bin)
            trailing = exc.trailing_metadata or context.trailing_metadata
        except Exception as exc:
            if stream.end is None:
                logger.exception("handler of %s raised", event.path)
            else:
                # The call was already over (reset, connection lost): the
                # error is a consequence of that, not a handler bug.
                logger.debug("handler of %s raised after its call ended: %r", event.path, exc)
            status = Status(
                code=StatusCode.UNKNOWN,
                message=f"unexpected {type(exc).__name__} in the method handler",
            )
        if scope.cancelled_caught:
            if stream.end is not None:
                status = stream.end.status
            elif self._cancelled_by_shutdown:
                status = Status(code=StatusCode.UNAVAILABLE, message="server shutting down")
            else:
                status = Status(code=StatusCode.DEADLINE_EXCEEDED, message="deadline exceeded")
        if stream.end is None and connection.is_open(stream_id):
            connection.end_call(stream_id, status, trailing)
            transport.wake_writer()
        transport.forget(stream_id)
        self._last_call_end = trio.current_time()
        logger.info(
            "call %s from %s: %s in %.1f ms, %d in / %d out",
            event.path,
            self.peer,
            status.code.name,
            (self._last_call_end - started) * 1000,
            context.messages_received,
            context.messages_sent,
        )
        self._server._note_activity()
        self._maybe_close()

    def _maybe_close(self) -> None:
        """Close a shutting-down connection once it is confirmed and quiet."""
        connection = self.connection
        if self._shutting_down and connection.shutdown_confirmed and not connection.open_calls:
            self._close_when_quiet()

    def _close_when_quiet(self) -> None:
        self._quiet.set()

    async def _close_after_flush(self) -> None:
        # Once the connection is shut down and quiet: let the last trailers
        # and the GOAWAY reach the socket, then close.
        await self._quiet.wait()
        with trio.move_on_after(1.0):
            await self.transport.drain()
        self.transport.abort("server shut down the connection")

    # -------------------------------------------------------------- timers

    async def _timers(self) -> None:
        options = self._options
        age_limit = options.max_connection_age
        if age_limit is not None:
            # Jitter of +-10% so that connections opened together do not all
            # reconnect at the same moment (as grpc-go does).
            age_limit *= 0.9 + 0.2 * (os.urandom(1)[0] / 255)
        while True:
            await trio.sleep(self._timer_period())
            now = trio.current_time()
            if age_limit is not None and now - self._opened_at >= age_limit:
                self.begin_shutdown()
                await trio.sleep(options.max_connection_age_grace)
                self.cancel_calls()
                return
            idle_limit = options.max_connection_idle
            if (
                idle_limit is not None
                and not self.connection.open_calls
                and now - self._last_call_end >= idle_limit
            ):
                self.begin_shutdown()
                # A client that never answers the shutdown PING is closed
                # after a while all the same.
                await trio.sleep(options.keepalive_timeout)
                if not self.connection.open_calls:
                    self._close_when_quiet()
                return
            keepalive = options.keepalive_time
            if keepalive is not None and now - self.transport.last_read >= keepalive:
                await self._keepalive_ping()

    def _timer_period(self) -> float:
        options = self._options
        periods = [
            value
            for value in (
                options.keepalive_time,
                options.max_connection_idle,
                options.max_connection_age,
            )
            if value is not None
        ]
        return max(0.05, min(periods) / 4) if periods else 3600.0

    async def _keepalive_ping(self) -> None:
        acked = self._keepalive_acked = trio.Event()
        self.connection.ping(_KEEPALIVE_PING)
        self.transport.wake_writer()
        with trio.move_on_after(self._options.keepalive_timeout):
            await acked.wait()
            return
        logger.info("keepalive PING to %s not answered: closing", self.peer)
        self.transport.abort("keepalive timeout")
