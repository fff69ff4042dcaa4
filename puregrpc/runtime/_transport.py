"""One HTTP/2 connection driven by trio: a reader task and a writer task.

The reader loops ``receive_some`` -> ``connection.receive_data`` -> dispatch
events to the calls (append a message, wake a waiter). It marks the writer
dirty (but see the exception below). The writer sleeps until marked, then sends *all* the
bytes the state machine has queued in one ``send_all``. Every task that acts
on the connection during one scheduler pass (64 handlers finishing, a read
that produced 30 WINDOW_UPDATEs and PING ACKs) therefore shares one socket
write: writes are coalesced by construction, with one task switch per batch,
not per frame.

One exception saves that task switch where there is nothing to coalesce: a
call alone on its connection, ending (a unary call at concurrency one, either
role: the client's request, the server's response) or about to wait for its
peer (a ping-pong), writes what is queued itself (:meth:`Transport.write_now`),
without blocking, while the writer is idle; so does the reader, for what a
read queued (PING ACKs, window grants) on a connection with one call or none.
The socket takes it at once or the writer sends the rest first, so the bytes
stay in order.

Acting on the connection. The state machine is owned here, and every change
made to it is followed by a write, in one step, so the two can never drift
apart (websockets' ``send_context`` is the model): calls act through their
call streams (:mod:`._call_stream`), whose verbs change the state machine and
schedule the write together; drivers act on the connection itself (GOAWAY,
PING, graceful shutdown) inside ``with transport.send_context() as
connection:``. :attr:`Transport.connection` is there to read (open calls,
statistics), not to act on.

Backpressure has two levels. HTTP/2 flow control stops a sender whose peer
is not consuming (the call parks until ``WindowOpened``). And the writer
bounds what may wait for the socket: a sender parks while more than
``WRITE_HIGH_WATER`` bytes are unwritten, so a peer that has granted a large
window but reads its socket slowly still cannot make us buffer without bound.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import trio

from ..wire import (
    CallEnded,
    ClientConnection,
    ConnectionClosed,
    Event,
    HalfClosed,
    MessageReceived,
    Metadata,
    ResponseHeaders,
    WindowOpened,
)
from ._channelz import (
    ChannelzSocket,
    SocketTimes,
    next_channelz_id,
    stream_addresses,
    stream_tls,
)
from ._wire_roles import WireConnection

logger = logging.getLogger("puregrpc.transport")

#: Bytes read per ``receive_some``: enough for many frames per wake-up.
READ_SIZE = 65_536
#: Senders park while more than this many bytes wait for the socket.
WRITE_HIGH_WATER = 512 * 1024

ConnT = TypeVar("ConnT", bound=WireConnection)


class CallReceiver(Protocol):
    """What the reader delivers a call's events to (the call streams of ``._call_stream``)."""

    @property
    def stream_id(self) -> int:
        """The HTTP/2 stream of the call."""
        ...

    def on_message(self, event: MessageReceived) -> None:
        """A message arrived."""

    def on_remote_end(self) -> None:
        """The peer half-closed."""

    def on_headers(self, metadata: Metadata) -> None:
        """Response headers arrived."""

    def on_window_opened(self) -> None:
        """The call's queued data has gone out."""

    def on_end(self, event: CallEnded) -> None:
        """The call is over."""

    def wake(self) -> None:
        """Wake every waiter to look again."""


class SendContext(Generic[ConnT]):
    """``with transport.send_context() as connection:``: act, and the write follows."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport[ConnT]) -> None:
        self._transport = transport

    def __enter__(self) -> ConnT:
        return self._transport.connection

    def __exit__(self, *exc_info: object) -> None:
        self._transport.wake_writer()


class Transport(Generic[ConnT]):
    """Drives one sans-IO connection (a :class:`~puregrpc.wire.GrpcConnection`) over a trio stream.

    ``on_event`` receives the events the transport does not route to a call
    itself (CallStarted, ConnectionClosed, pings, settings) and every
    :class:`CallEnded`, after the call has seen it: the role-specific driver
    decides what they mean.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        connection: ConnT,
        *,
        on_event: Callable[[Event], None],
        peer: str,
        initial_data: bytes = b"",
    ) -> None:
        self.stream = stream
        #: Bytes read from the stream before the transport took it (what told
        #: HTTP/2 from HTTP/1.1): the reader feeds them first.
        self._initial_data = initial_data
        #: The state machine, to read (open calls, statistics): drivers act
        #: on it only through :meth:`send_context`, calls through their streams.
        self.connection = connection
        #: The peer's address, for logs and handler contexts.
        self.peer = peer
        #: Calls in progress, by stream id.
        self._calls: dict[int, CallReceiver] = {}
        self._on_event = on_event
        self._dirty = False
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._drained_lot = trio.lowlevel.ParkingLot()
        #: Bytes queued into the state machine since the writer last took them.
        self._queued = 0
        #: Bytes the writer is sending right now.
        self._in_flight = 0
        #: The socket's descriptor, for :meth:`write_now` (-1: not a plain socket).
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        #: What :meth:`write_now` could not write: the writer sends it first.
        self._pending = b""
        self._closed = False
        self._close_reason = "connection closed"
        #: True once the state machine was told the connection is gone.
        self._lost = False
        self._reader_scope: trio.CancelScope | None = None
        self._writer_done = trio.Event()
        #: Messages queued by calls so far: real traffic, as opposed to PING
        #: ACKs (keepalive enforcement resets its strikes on traffic).
        self.traffic = 0
        #: trio time of the last read (keepalive pings idle connections).
        self.last_read = trio.current_time()
        #: The connection's channelz id (a socket, in channelz's terms).
        self.channelz_id = next_channelz_id()
        #: When the last stream and messages came and went (channelz).
        self.times = SocketTimes()
        # The totals the reader and the writer last stamped a time for.
        self._seen_started = self._seen_sent = self._seen_received = 0

    # ----------------------------------------------------------- reading

    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        return self._closed

    @property
    def close_reason(self) -> str:
        """Why the connection ended (meaningful once :attr:`closed`)."""
        return self._close_reason

    @property
    def calls(self) -> list[CallReceiver]:
        """The calls in progress (a copy: safe to iterate while calls end)."""
        return list(self._calls.values())

    # -------------------------------------------------------------- running

    async def run(self) -> None:
        """Run the reader and the writer until the connection ends.

        Returns when the peer closes the connection or :meth:`abort` is
        called. Every call still open is failed, what was queued last (a
        GOAWAY, trailers) is flushed within a second, then the socket closes.
        """
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer)
                with trio.CancelScope() as self._reader_scope:
                    await self._reader()
                self._mark_closed(self._close_reason)
                self._fail_calls()
                # The writer sends what is left, then returns; a peer that
                # does not read gets one second.
                self.wake_writer()
                with trio.move_on_after(1):
                    await self._writer_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._mark_closed(self._close_reason)
            self._fail_calls()
            with trio.CancelScope(shield=True):
                await self._linger_close()

    async def _reader(self) -> None:
        receive_some = self.stream.receive_some
        connection = self.connection
        totals = connection.totals
        data: bytes | bytearray = self._initial_data
        self._initial_data = b""
        fd = self._fd
        drained = False  # the last read took less than it asked for
        while True:
            if not data:
                try:
                    if drained:
                        data = await self._receive_when_readable(fd)
                    else:
                        data = await receive_some(READ_SIZE)
                    drained = fd >= 0 and len(data) < READ_SIZE
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    logger.debug("read from %s failed: %r", self.peer, exc)
                    if not self._closed:
                        self._close_reason = _read_failure(exc)
                    data = b""
                if not data:
                    return
            self.last_read = trio.current_time()
            try:
                events = connection.receive_data(data)
            except Exception:
                # A bug in the state machine must not escape into the
                # application's nursery: fail this connection's calls instead.
                logger.exception("internal error on the connection with %s", self.peer)
                self._close_reason = "internal error in the connection state machine"
                return
            if (
                totals.messages_received != self._seen_received
                or totals.streams_started != self._seen_started
            ):
                self._stamp()
            try:
                self._dispatch(events)
            except Exception:
                logger.exception("internal error handling events from %s", self.peer)
                self._close_reason = "internal error handling the connection's events"
                return
            if connection.wants_write:
                if connection.open_calls <= 1 and not self._dirty:
                    # What the read queued (PING ACKs, window grants) leaves
                    # from this task: with one call or none, there is nothing
                    # to coalesce it with, and the writer need not wake.
                    self.write_now()
                else:
                    self.wake_writer()
            data = b""

    @staticmethod
    async def _receive_when_readable(fd: int) -> bytes:
        """Read a plain socket that the last read emptied: wait first, then read.

        ``receive_some`` tries the read first, which on a socket the last read
        emptied fails (EAGAIN, an exception) before it waits: one system call
        and one exception per round trip, for nothing.
        """
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, READ_SIZE)
            except BlockingIOError:  # woken, but another reader got there (never here)
                continue

    async def _writer(self) -> None:
        connection = self.connection
        totals = connection.totals
        send_all = self.stream.send_all
        try:
            while True:
                if not self._dirty:
                    if self._closed:
                        return
                    await self._writer_lot.park()
                self._dirty = False
                data = connection.data_to_send()
                if self._pending:
                    data = self._pending + data
                    self._pending = b""
                if (
                    totals.messages_sent != self._seen_sent
                    or totals.streams_started != self._seen_started
                ):
                    self._stamp()
                self._queued = 0
                self._in_flight = len(data)
                if data:
                    try:
                        await send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        logger.debug("write to %s failed: %r", self.peer, exc)
                        self._in_flight = 0
                        self.abort("connection lost while writing")
                        return
                self._in_flight = 0
                self._drained_lot.unpark_all()
        finally:
            self._drained_lot.unpark_all()
            self._writer_done.set()

    async def _linger_close(self) -> None:
        """Close the socket without destroying what we sent last.

        Closing a socket that still has unread bytes makes the kernel send a
        TCP RST, which can destroy our last frames (a GOAWAY explaining why)
        before the peer reads them. So: half-close, discard what the peer
        still sends until it closes too (at most one second), then close.
        """
        stream = self.stream
        if isinstance(stream, trio.SocketStream) and self._writer_done.is_set():
            with trio.move_on_after(1):
                try:
                    await stream.send_eof()
                    while await stream.receive_some(READ_SIZE):
                        pass
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
        await trio.aclose_forcefully(stream)

    def _stamp(self) -> None:
        """Some totals moved since the last look: note when (channelz's socket times)."""
        totals, times = self.connection.totals, self.times
        now = time.time()
        if totals.streams_started != self._seen_started:
            self._seen_started = totals.streams_started
            times.last_stream_created = now
        if totals.messages_sent != self._seen_sent:
            self._seen_sent = totals.messages_sent
            times.last_message_sent = now
        if totals.messages_received != self._seen_received:
            self._seen_received = totals.messages_received
            times.last_message_received = now

    def channelz(self) -> ChannelzSocket:
        """A snapshot of the connection for channelz: totals, times, windows, ends, TLS."""
        totals, times = self.connection.totals, self.times
        statistics = self.connection.statistics()
        local, remote = stream_addresses(self.stream)
        client = isinstance(self.connection, ClientConnection)
        return ChannelzSocket(
            id=self.channelz_id,
            name=f"{local} -> {remote}",
            local=local,
            remote=remote,
            streams_started=totals.streams_started,
            streams_succeeded=totals.streams_succeeded,
            streams_failed=totals.streams_failed,
            messages_sent=totals.messages_sent,
            messages_received=totals.messages_received,
            keepalives_sent=totals.pings_sent,
            last_local_stream_created=times.last_stream_created if client else None,
            last_remote_stream_created=None if client else times.last_stream_created,
            last_message_sent=times.last_message_sent,
            last_message_received=times.last_message_received,
            local_flow_control_window=statistics.send_window,
            remote_flow_control_window=statistics.receive_window,
            tls=stream_tls(self.stream),
        )

    # ------------------------------------------------------------- acting

    def send_context(self) -> SendContext[ConnT]:
        """Act on the connection, then write what that queued: ``with t.send_context() as c:``.

        The one way for a driver to change the state machine (send a PING or
        a GOAWAY, start a graceful shutdown): the write is scheduled on the
        way out, even if the action raised after queuing frames.
        """
        return SendContext(self)

    def write_now(self) -> None:
        """Write what is queued from the calling task, if the writer is idle; else wake it.

        One task switch fewer for a call that ends alone on its connection
        (a unary call at concurrency one): its task hands the bytes to the
        socket itself, without blocking. Only where nothing else is being
        written (so the bytes stay in order) and only to a plain socket; what
        the socket does not take at once, the writer sends first.
        """
        fd = self._fd
        if fd < 0 or self._in_flight or self._pending or self._closed:
            self.wake_writer()
            return
        connection = self.connection
        data = connection.data_to_send()
        if not data:
            return
        totals = connection.totals
        if totals.messages_sent != self._seen_sent or totals.streams_started != self._seen_started:
            self._stamp()
        self._queued = 0
        try:
            sent = os.write(fd, data)
        except OSError:
            sent = 0  # would block, or a broken socket: the writer finds out
        if sent < len(data):
            self._pending = data[sent:]
            self._dirty = True
            self._writer_lot.unpark_all()
        elif self._drained_lot:
            self._drained_lot.unpark_all()

    def write_before_waiting(self) -> None:
        """A call is about to wait for its peer: write what is queued now, if it is alone.

        With one call on the connection, what is queued is that call's (its
        last answer, in a ping-pong): written from its task, it leaves one
        scheduler pass earlier and the writer's pass finds nothing to do.
        With more calls, the writer keeps coalescing their writes.
        """
        if self._dirty and self.connection.open_calls <= 1:
            self.write_now()

    def write_answer(self) -> None:
        """A call queued what its peer is likely waiting for: write it now if the call is alone.

        Else wake the writer, which coalesces what the calls queued.
        """
        if self.connection.open_calls <= 1 and not self._dirty:
            self.write_now()
        else:
            self.wake_writer()

    def wake_writer(self) -> None:
        """Ask the writer to send what the state machine has queued (runtime use)."""
        if not self._dirty:
            self._dirty = True
            self._writer_lot.unpark_all()

    async def wait_writable(self) -> None:
        """Park while too many bytes wait for the socket (write backpressure)."""
        while self._queued + self._in_flight > WRITE_HIGH_WATER and not self._closed:
            await self._drained_lot.park()

    async def drain(self) -> None:
        """Wait until everything queued so far has been written (or the end)."""
        while (self._dirty or self._queued or self._in_flight) and not self._closed:
            await self._drained_lot.park()

    def note_queued(self, nbytes: int) -> None:
        """Account a message of ``nbytes`` just queued into the state machine."""
        self._queued += nbytes
        self.traffic += 1

    @property
    def congested(self) -> bool:
        """True when a sender should :meth:`wait_writable` before sending more."""
        return self._queued + self._in_flight > WRITE_HIGH_WATER

    def abort(self, reason: str = "connection aborted") -> None:
        """End the connection now: ``run`` fails the calls, flushes, and closes."""
        self._mark_closed(reason)
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        self._writer_lot.unpark_all()

    # ------------------------------------------------------- calls' routing

    def register(self, call: CallReceiver) -> None:
        """Route events of ``call.stream_id`` to ``call`` (call streams do this)."""
        self._calls[call.stream_id] = call

    def forget(self, stream_id: int) -> None:
        """Stop routing events to a call that is over."""
        self._calls.pop(stream_id, None)

    def ended_locally(self, event: CallEnded) -> None:
        """A call ended on our side (reset by its stream): tell the role's driver."""
        self._calls.pop(event.stream_id, None)
        self._on_event(event)

    def _dispatch(self, events: list[Event]) -> None:
        calls = self._calls
        for event in events:
            # Most frequent first: this runs for every event of every read.
            if isinstance(event, MessageReceived):
                call = calls.get(event.stream_id)
                if call is not None:
                    call.on_message(event)
            elif isinstance(event, WindowOpened):
                call = calls.get(event.stream_id)
                if call is not None:
                    call.on_window_opened()
            elif isinstance(event, HalfClosed):
                call = calls.get(event.stream_id)
                if call is not None:
                    call.on_remote_end()
            elif isinstance(event, ResponseHeaders):
                call = calls.get(event.stream_id)
                if call is not None:
                    call.on_headers(event.metadata)
            elif isinstance(event, CallEnded):
                call = calls.pop(event.stream_id, None)
                if call is not None:
                    call.on_end(event)
                self._on_event(event)
            elif isinstance(event, ConnectionClosed) and not event.remote:
                # The state machine found a connection error and queued its
                # GOAWAY: the connection is over; run() flushes and closes.
                self._on_event(event)
                logger.info("closing the connection with %s: %s", self.peer, event.debug_data)
                self.abort(event.debug_data.decode("utf-8", "replace"))
            else:
                self._on_event(event)

    def _mark_closed(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._close_reason = reason

    def _fail_calls(self) -> None:
        """The connection is over: every call still open ends (CONNECTION_LOST).

        The state machine is told once, whether or not call streams are
        waiting: it also forgets calls whose trailers were still queued, and
        traces the end of the connection.
        """
        if not self._lost:
            self._lost = True
            self._dispatch(self.connection.connection_lost(self._close_reason))
        # Every registered call is one the state machine knew, so each has
        # just ended; a call waiting on a stream the state machine forgot (a
        # bug) still wakes and sees the transport closed.
        for call in list(self._calls.values()):
            call.wake()
        self._calls.clear()


def _read_failure(exc: BaseException) -> str:
    """Why a failed read ended the connection: "connection lost (Connection reset by peer)"."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    return f"connection lost ({reason})" if reason else "connection lost"
