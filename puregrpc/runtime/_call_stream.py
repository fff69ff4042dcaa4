"""One call's view of its connection: messages in, messages out, with backpressure.

A call stream holds the messages that arrived for its call and not yet taken
(bounded by the flow-control window we granted: credit returns to the peer
only in :meth:`CallStream.receive`), and parks a sender while the peer's
window is closed. The transport's reader task wakes it; it never reads or
writes the socket itself.

Each role has its own stream type with its own verbs, and each verb changes
the state machine *and* schedules the write, in one step (they are the
runtime's side of the transport: drivers use them, or
``Transport.send_context`` for the connection itself):

====================  =========================================================
:class:`ServerCallStream`  ``send_headers``, ``send``, ``end(status)``; its
                           handler runs in :attr:`~ServerCallStream.cancel_scope`
                           (the call's deadline), cancelled if the call is cut
                           short (reset, connection lost).
:class:`ClientCallStream`  ``open`` (request headers), ``send``, ``half_close``,
                           ``cancel(status)``; ``wait_headers``, ``wait_end``.
====================  =========================================================

Both read the same way: :meth:`CallStream.receive` (or :meth:`CallStream.take`
when :attr:`CallStream.inbox` is not empty).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Generic, NoReturn, TypeVar

import trio

from ..wire import (
    SUPPORTED_ENCODINGS,
    CallEnded,
    CallStarted,
    ClientConnection,
    LocalProtocolError,
    MessageReceived,
    Metadata,
    RpcError,
    Status,
    StatusCode,
    StreamStatistics,
)
from ._transport import Transport
from ._wire_roles import ServerWire, WireConnection

ConnT = TypeVar("ConnT", bound=WireConnection)


#: The inbox of every call with no message waiting: one shared deque, never
#: appended to. A call gets a deque of its own when a message arrives and
#: gives it up once :meth:`CallStream.take` empties it, so an idle open
#: stream costs no deque (760 bytes each).
NO_MESSAGES: deque[MessageReceived] = deque()


class CallStream(Generic[ConnT]):
    """What both roles share: the inbox, the end, and the waits on them."""

    __slots__ = (
        "_answering",
        "_connection",
        "_lot",
        "end_event",
        "half_closed",
        "hold_writes",
        "inbox",
        "last_compressed",
        "stream_id",
        "transport",
    )

    def __init__(self, transport: Transport[ConnT], stream_id: int) -> None:
        self.transport = transport
        self._connection: ConnT = transport.connection
        self.stream_id = stream_id
        #: Messages received and not yet taken by :meth:`receive`; the shared
        #: :data:`NO_MESSAGES` while there are none.
        self.inbox: deque[MessageReceived] = NO_MESSAGES
        #: True when the peer ended its messages cleanly (END_STREAM).
        self.half_closed = False
        #: How the call ended, once it has.
        self.end_event: CallEnded | None = None
        #: Whether the last message taken by :meth:`receive` arrived compressed.
        self.last_compressed = False
        #: True when what this call queues waits for its end to be written
        #: (one message, then the status: see :meth:`ServerCallStream.end`).
        self.hold_writes = False
        # One lot for every wait on this call (a message, window, headers,
        # the end): waiters re-check their own condition when woken, and one
        # lot per call is cheaper than three when most calls never wait.
        self._lot = trio.lowlevel.ParkingLot()
        # True from taking a message until the next send: that send is most
        # likely an answer its peer waits for (a ping-pong), which leaves
        # from this task at once when the call is alone on its connection.
        self._answering = False

    # ------------------------------------------------ from the reader task

    def on_message(self, event: MessageReceived) -> None:
        """A message arrived."""
        inbox = self.inbox
        if inbox is NO_MESSAGES:
            inbox = self.inbox = deque()
        inbox.append(event)
        if self._lot:
            self._lot.unpark_all()

    def on_remote_end(self) -> None:
        """The peer will send no more messages (a clean half-close)."""
        self.half_closed = True
        self._lot.unpark_all()

    def on_headers(self, metadata: Metadata) -> None:
        """Response headers arrived (client side; ignored by a server stream)."""

    def on_window_opened(self) -> None:
        """Everything queued has been sent: a parked sender may go on."""
        self._lot.unpark_all()

    def on_end(self, event: CallEnded) -> None:
        """The call is over: record how, and wake every waiter."""
        self.end_event = event
        if event.completed:
            # The peer's trailers: a clean end of its messages.
            self.half_closed = True
        self._lot.unpark_all()

    def wake(self) -> None:
        """Wake every waiter to look again (the transport closed under the call)."""
        self._lot.unpark_all()

    # ------------------------------------------------ from the call's task

    async def receive(self) -> bytes | None:
        """Take the next message, or ``None`` when the peer cleanly sent its last.

        Taking a message returns its flow-control credit to the peer: this is
        the only place credit is returned, so a caller that stops calling
        ``receive`` stops its peer once the window is spent. If the call was
        cancelled, reset or failed instead, this raises (``trio.Cancelled`` in
        a cancelled handler, else :class:`RpcError` with the call's status):
        a broken stream of requests must never look like a complete one.
        """
        while not self.inbox:  # re-read: a message's arrival replaces the shared empty one
            if self.half_closed:
                return None
            if self.end_event is not None or self.transport.closed:
                await self.raise_ended(None)
            # About to wait for the peer: what this call queued (an answer in
            # a ping-pong) leaves now rather than when the writer runs.
            self.transport.write_before_waiting()
            await self._lot.park()
        return self.take()

    def take(self) -> bytes:
        """Take the next message from a non-empty inbox, returning its credit."""
        inbox = self.inbox
        event = inbox.popleft()
        if not inbox:
            self.inbox = NO_MESSAGES  # emptied: the call's own deque goes
        self.last_compressed = event.compressed
        self._answering = True
        if self._connection.consume(self.stream_id, event.wire_length):
            self.transport.wake_writer()
        return event.data

    async def send(self, data: bytes, *, compress: bool = True) -> None:
        """Send one message; park while the peer's window is closed.

        Returns once the message is on its way (handed to the writer), so at
        most one message per call waits for window. Raises :class:`RpcError`
        if the call has already ended, or with the status the state machine
        names if it refuses the message (RESOURCE_EXHAUSTED for one over the
        send limit).
        """
        if self.end_event is not None:
            await self.raise_ended("cannot send")
        connection = self._connection
        stream_id = self.stream_id
        transport = self.transport
        try:
            blocked = connection.send_message(stream_id, data, compress_message=compress)
        except LocalProtocolError as exc:
            transport.wake_writer()  # default headers may have been queued
            raise RpcError(exc.code, str(exc)) from None
        transport.note_queued(len(data) + 5)
        if blocked or not self.hold_writes or transport.congested:
            self._hand_over(transport)
        while blocked and connection.is_blocked(stream_id):
            if self.end_event is not None or transport.closed:
                await self.raise_ended("cannot send")
            await self._lot.park()
        if transport.congested:
            await transport.wait_writable()

    def _hand_over(self, transport: Transport[ConnT]) -> None:
        """A message was queued: write it now if it answers the peer, else wake the writer.

        The first message after one was taken is written from this task when
        the call is alone on its connection (the peer is likely waiting for
        it, and the writer would only take one scheduler pass longer); the
        messages of a burst that follows go to the writer, which coalesces
        them.
        """
        if self._answering:
            self._answering = False
            transport.write_answer()
        else:
            transport.wake_writer()

    async def wait_end(self) -> CallEnded:
        """Wait until the call has ended (messages keep arriving in the inbox)."""
        while self.end_event is None:
            if self.transport.closed:
                await self.raise_ended(None)
            await self._lot.park()
        return self.end_event

    async def raise_ended(self, action: str | None = None) -> NoReturn:
        """Raise what the end of the call means for an operation on it.

        In a cancelled scope (a server handler whose client reset the call)
        this raises ``trio.Cancelled``, which is what the handler should see;
        otherwise :class:`RpcError` with the call's status (``action`` names
        the refused operation in the message).
        """
        await trio.lowlevel.checkpoint()
        status = self.end_status
        code = status.code if not status.ok else StatusCode.CANCELLED
        if action is None:
            raise RpcError(code, status.details, details_bin=status.details_bin)
        raise RpcError(code, f"{action}: the call has ended ({status.code.name}: {status.details})")

    @property
    def end_status(self) -> Status:
        """The status the call ended with (UNAVAILABLE if its connection vanished)."""
        if self.end_event is not None:
            return self.end_event.status
        return Status(code=StatusCode.UNAVAILABLE, details=self.transport.close_reason)


class ServerCallStream(CallStream[ServerWire]):
    """A server's call: answer with headers, messages and a status."""

    __slots__ = ("cancel_scope",)

    def __init__(self, transport: Transport[ServerWire], started: CallStarted) -> None:
        super().__init__(transport, started.stream_id)
        # The handler's scope exists before its task starts: a reset or a
        # deadline arriving first must still cancel it.
        deadline = math.inf if started.timeout is None else trio.current_time() + started.timeout
        #: The scope the handler runs in: the call's deadline, cancelled when
        #: the call is cut short (reset, refused mid-call, connection lost).
        self.cancel_scope = trio.CancelScope(deadline=deadline)

    @classmethod
    def accept(
        cls, transport: Transport[ServerWire], started: CallStarted
    ) -> ServerCallStream | None:
        """The stream of a call that just started, routed its events; None if already over.

        ``None`` means the client reset the call later in the same read: there
        is nothing to serve.
        """
        if not transport.connection.is_open(started.stream_id):
            return None
        stream = cls(transport, started)
        transport.register(stream)
        return stream

    def on_end(self, event: CallEnded) -> None:
        """The call was cut short (a server never gets trailers): cancel the handler."""
        # Cancel first, so that woken waiters see the cancellation rather
        # than a quiet end of messages.
        self.cancel_scope.cancel()
        super().on_end(event)

    async def wait_half_close(self) -> bool:
        """Wait for the client's half-close; False if a message arrives first.

        A unary-request method takes its one request and then calls this
        before running its handler: a further message is a request
        cardinality violation, seen without parsing (or taking) it. Raises
        like :meth:`receive` when the call is cut short instead.
        """
        while not self.inbox:
            if self.half_closed:
                return True
            if self.end_event is not None or self.transport.closed:
                await self.raise_ended(None)
            await self._lot.park()
        return False

    def send_headers(
        self, metadata: Metadata | None = None, *, encoding: str | None = None, wake: bool = True
    ) -> None:
        """Send the response headers (initial metadata), compressing messages with ``encoding``.

        ``wake=False`` leaves the write to what follows at once (the first
        message, whose send schedules it).
        """
        try:
            self._connection.send_response_headers(self.stream_id, metadata, encoding=encoding)
        except LocalProtocolError as exc:
            raise RpcError(exc.code, f"cannot send the response headers: {exc}") from None
        if wake:
            self.transport.wake_writer()

    def end(self, status: Status, trailing: Metadata | None = None) -> bool:
        """End the call with ``status``; False when it had already ended.

        The trailers go out after any queued messages; the stream receives no
        more events.
        """
        transport = self.transport
        transport.forget(self.stream_id)
        if self.end_event is not None:
            return False
        connection = self._connection
        try:
            connection.end_call(self.stream_id, status, trailing)
        except LocalProtocolError as exc:
            # The status could not be encoded (bad trailing metadata, say):
            # the call still ends, with a status that says why - unless the
            # state machine had ended it already.
            refused = Status(
                code=StatusCode.INTERNAL, details=f"the handler's status was refused: {exc}"
            )
            try:
                connection.end_call(self.stream_id, refused)
            except LocalProtocolError:
                return False
        if self.hold_writes and not connection.open_calls:
            # The only call on its connection ended: write from this task.
            transport.write_now()
        else:
            transport.wake_writer()
        return True

    def statistics(self) -> StreamStatistics:
        """The call's flow-control state: windows, queued and unconsumed bytes."""
        return self._connection.stream_statistics(self.stream_id)


class ClientCallStream(CallStream[ClientConnection]):
    """A client's call: requests out, then responses and the status in."""

    __slots__ = ("initial_metadata",)

    def __init__(self, transport: Transport[ClientConnection], stream_id: int) -> None:
        super().__init__(transport, stream_id)
        #: The server's response headers, once received.
        self.initial_metadata: Metadata | None = None

    @classmethod
    def open(
        cls,
        transport: Transport[ClientConnection],
        path: str,
        *,
        metadata: Metadata | None = None,
        timeout: float | None = None,
        encoding: str | None = None,
        accept_encoding: Sequence[str] = SUPPORTED_ENCODINGS,
        authority: str | None = None,
    ) -> ClientCallStream:
        """Start a call: send its request headers and route its events here.

        Raises :class:`~puregrpc.wire.LocalProtocolError` when the connection
        is closing or at the server's concurrency limit.
        """
        stream_id = transport.connection.start_call(
            path,
            metadata=metadata,
            timeout=timeout,
            encoding=encoding,
            accept_encoding=accept_encoding,
            authority=authority,
        )
        transport.wake_writer()
        stream = cls(transport, stream_id)
        transport.register(stream)
        return stream

    @classmethod
    def open_unary(
        cls,
        transport: Transport[ClientConnection],
        path: str,
        request: bytes,
        *,
        metadata: Metadata | None = None,
        timeout: float | None = None,
        encoding: str | None = None,
        accept_encoding: Sequence[str] = SUPPORTED_ENCODINGS,
        authority: str | None = None,
    ) -> tuple[ClientCallStream, bool]:
        """Start a call with its one request and the half-close, written in one go.

        Returns the stream, and True if the request must still wait for
        window (then :meth:`wait_sent` and :meth:`half_close` follow, as for
        any call). A call alone on its connection writes its bytes from
        this task (:meth:`Transport.write_now`): the writer task has no
        part in a unary call at concurrency one. Raises
        :class:`~puregrpc.wire.LocalProtocolError` like :meth:`open`, and
        :class:`RpcError` if the state machine refuses the request.
        """
        connection = transport.connection
        stream_id = connection.start_call(
            path,
            metadata=metadata,
            timeout=timeout,
            encoding=encoding,
            accept_encoding=accept_encoding,
            authority=authority,
        )
        stream = cls(transport, stream_id)
        transport.register(stream)
        try:
            blocked = connection.send_message(stream_id, request)
        except LocalProtocolError as exc:
            transport.wake_writer()  # the headers were queued
            raise RpcError(exc.code, str(exc)) from None
        transport.note_queued(len(request) + 5)
        waits = blocked or transport.congested
        if not waits:
            connection.end_stream(stream_id)
        if connection.open_calls <= 1:
            transport.write_now()
        else:
            transport.wake_writer()
        return stream, waits

    def on_headers(self, metadata: Metadata) -> None:
        """The server's response headers arrived."""
        self.initial_metadata = metadata
        self._lot.unpark_all()

    def queue(self, data: bytes, *, compress: bool = True) -> bool:
        """Hand one message to the writer now; True if the caller must then :meth:`wait_sent`.

        :meth:`~CallStream.send` in two steps, so that a caller bounding the
        wait (a deadline's cancel scope) pays for the bound only when there
        is a wait: most messages go out without one. Raises
        :class:`RpcError` like ``send`` (the call has ended, or the state
        machine refuses the message), without a checkpoint.
        """
        if self.end_event is not None:
            status = self.end_status
            raise RpcError(
                status.code if not status.ok else StatusCode.CANCELLED,
                f"cannot send: the call has ended ({status.code.name}: {status.details})",
            )
        transport = self.transport
        try:
            blocked = self._connection.send_message(self.stream_id, data, compress_message=compress)
        except LocalProtocolError as exc:
            transport.wake_writer()  # default headers may have been queued
            raise RpcError(exc.code, str(exc)) from None
        transport.note_queued(len(data) + 5)
        self._hand_over(transport)
        return blocked or transport.congested

    async def wait_sent(self) -> None:
        """After :meth:`queue` returned True: park until the window and the writer allow more."""
        connection = self._connection
        stream_id = self.stream_id
        transport = self.transport
        while connection.is_blocked(stream_id):
            if self.end_event is not None or transport.closed:
                await self.raise_ended("cannot send")
            await self._lot.park()
        if transport.congested:
            await transport.wait_writable()

    def half_close(self) -> None:
        """No more requests: END_STREAM after what is queued (no-op once ended)."""
        if self.end_event is None:
            try:
                self._connection.end_stream(self.stream_id)
            except LocalProtocolError as exc:
                raise RpcError(exc.code, f"cannot half-close: {exc}") from None
            self.transport.wake_writer()

    def cancel(self, status: Status) -> None:
        """End the call here: RST_STREAM(CANCEL) to the server, ``status`` for us.

        A no-op once the call has ended. Waiters wake and see ``status``; the
        channel learns of the end like of any other.
        """
        if self.end_event is not None:
            return
        ended = self._connection.cancel(self.stream_id, status)
        self.transport.wake_writer()
        if ended is not None:
            self.on_end(ended)
            self.transport.ended_locally(ended)

    async def wait_headers(self) -> Metadata:
        """Wait for the response headers; empty if the call ended first."""
        while (
            self.initial_metadata is None and self.end_event is None and not self.transport.closed
        ):
            await self._lot.park()
        return self.initial_metadata if self.initial_metadata is not None else Metadata()
