"""One call's view of its connection: messages in, messages out, with backpressure.

A :class:`CallStream` holds the messages that arrived for its call and not
yet taken (bounded by the flow-control window we granted: credit returns to
the peer only in :meth:`CallStream.receive`), and parks a sender while the
peer's window is closed. The reader task wakes it; it never reads or writes
the socket itself.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NoReturn

import trio

from ..wire import (
    CallEnded,
    MessageReceived,
    Metadata,
    RpcError,
    Status,
    StatusCode,
    StreamReset,
)

if TYPE_CHECKING:
    from ._transport import Transport


class CallStream:
    """The messages of one call and the waits on them."""

    __slots__ = (
        "_lot",
        "cancel_scope",
        "connection",
        "end",
        "half_closed",
        "inbox",
        "initial_metadata",
        "last_compressed",
        "remote_done",
        "stream_id",
        "transport",
    )

    def __init__(self, transport: Transport, stream_id: int) -> None:
        self.transport = transport
        self.connection = transport.connection
        self.stream_id = stream_id
        #: Messages received and not yet taken by :meth:`receive`.
        self.inbox: deque[MessageReceived] = deque()
        #: True once no more messages will arrive (half-close, end, reset).
        self.remote_done = False
        #: True when the peer ended its messages cleanly (END_STREAM).
        self.half_closed = False
        #: How the call ended, once it has: trailers, a reset, or a local end.
        self.end: CallEnded | StreamReset | None = None
        #: Whether the last message taken by :meth:`receive` arrived compressed.
        self.last_compressed = False
        #: Response headers (client side), once received.
        self.initial_metadata: Metadata | None = None
        #: Cancelled when the peer resets the call (server handlers run in it).
        self.cancel_scope: trio.CancelScope | None = None
        # One lot for every wait on this call (a message, window, headers,
        # the end): waiters re-check their own condition when woken, and one
        # lot per call is cheaper than three when most calls never wait.
        self._lot = trio.lowlevel.ParkingLot()

    # ------------------------------------------------ from the reader task

    def on_message(self, event: MessageReceived) -> None:
        """A message arrived."""
        self.inbox.append(event)
        if self._lot:
            self._lot.unpark_all()

    def on_remote_end(self) -> None:
        """The peer will send no more messages (a clean half-close)."""
        self.half_closed = True
        self.remote_done = True
        self._lot.unpark_all()

    def on_headers(self, metadata: Metadata) -> None:
        """Response headers arrived (client side)."""
        self.initial_metadata = metadata
        self._lot.unpark_all()

    def on_window_opened(self) -> None:
        """Everything queued has been sent: a parked sender may go on."""
        self._lot.unpark_all()

    def on_end(self, event: CallEnded | StreamReset) -> None:
        """The call is over: cancel a server handler on reset, wake every waiter."""
        self.end = event
        self.remote_done = True
        if isinstance(event, CallEnded) and not event.locally_ended:
            # The peer's trailers: a clean end of its messages.
            self.half_closed = True
        elif self.cancel_scope is not None:
            # Cancel first, so that woken waiters see the cancellation rather
            # than a quiet end of messages.
            self.cancel_scope.cancel()
        self._lot.unpark_all()

    def on_transport_closed(self, reason: str) -> None:
        """The connection is gone."""
        if self.end is None:
            self.on_end(
                CallEnded(
                    stream_id=self.stream_id,
                    status=Status(code=StatusCode.UNAVAILABLE, message=reason),
                    trailing_metadata=Metadata(),
                    locally_ended=True,
                )
            )

    # ------------------------------------------------ from the call's task

    def abort(self, status: Status) -> None:
        """End the call here: RST_STREAM(CANCEL) to the peer, ``status`` for us."""
        if self.end is not None:
            return
        self.connection.reset(self.stream_id)
        self.transport.forget(self.stream_id)
        self.transport.wake_writer()
        ended = CallEnded(
            stream_id=self.stream_id,
            status=status,
            trailing_metadata=Metadata(),
            locally_ended=True,
        )
        self.on_end(ended)
        # The driver learns of it as of any end (a client waiting for a free
        # stream slot must be woken).
        self.transport.report(ended)

    @property
    def ended(self) -> bool:
        """True once the call is over (ended, reset, or its connection lost)."""
        return self.end is not None

    async def receive(self) -> bytes | None:
        """Take the next message, or ``None`` when the peer cleanly sent its last.

        Taking a message returns its flow-control credit to the peer: this is
        the only place credit is returned, so a caller that stops calling
        ``receive`` stops its peer once the window is spent. If the call was
        cancelled, reset or failed instead, this raises (``trio.Cancelled`` in
        a cancelled handler, else :class:`RpcError` with the call's status):
        a broken stream of requests must never look like a complete one.
        """
        inbox = self.inbox
        while not inbox:
            if self.half_closed:
                return None
            if self.end is not None:
                await self.raise_ended(None)
            await self._lot.park()
        return self.take()

    def take(self) -> bytes:
        """Take the next message from a non-empty inbox, returning its credit."""
        event = self.inbox.popleft()
        self.last_compressed = event.compressed
        if self.connection.consume(self.stream_id, event.wire_length):
            self.transport.wake_writer()
        return event.data

    async def send(self, data: bytes, *, compress: bool = True) -> None:
        """Send one message; park while the peer's window is closed.

        Returns once the message is on its way (handed to the writer), so at
        most one message per call waits for window. Raises :class:`RpcError`
        if the call has already ended.
        """
        if self.end is not None:
            await self.raise_ended("cannot send")
        connection = self.connection
        stream_id = self.stream_id
        connection.send_message(stream_id, data, compress_message=compress)
        transport = self.transport
        transport.note_queued(len(data) + 5)
        transport.wake_writer()
        while connection.is_blocked(stream_id):
            if self.ended:
                await self.raise_ended("cannot send")
            await self._lot.park()
        if transport.congested:
            await transport.wait_writable()

    async def wait_headers(self) -> Metadata:
        """Wait for the response headers (client side); empty if the call ended first."""
        while self.initial_metadata is None and self.end is None:
            await self._lot.park()
        return self.initial_metadata if self.initial_metadata is not None else Metadata()

    async def wait_end(self) -> CallEnded | StreamReset:
        """Wait until the call has ended (messages keep arriving in the inbox)."""
        while self.end is None:
            await self._lot.park()
        return self.end

    async def raise_ended(self, action: str | None = None) -> NoReturn:
        """Raise what the end of the call means for an operation on it.

        In a cancelled scope (a server handler whose client reset the call)
        this raises ``trio.Cancelled``, which is what the handler should see;
        otherwise :class:`RpcError` with the call's status (``action`` names
        the refused operation in the message).
        """
        await trio.lowlevel.checkpoint()
        assert self.end is not None
        status = self.end.status
        code = status.code if not status.ok else StatusCode.CANCELLED
        if action is None:
            raise RpcError(code, status.message, details_bin=status.details_bin)
        raise RpcError(code, f"{action}: the call has ended ({status.code.name}: {status.message})")
