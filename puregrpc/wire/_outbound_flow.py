"""Outbound HTTP/2 flow control: send queues, coalescing and blocked streams.

Theory of operation
===================

A message handed to ``send_message`` is framed (5-byte prefix + payload) and
appended to its call's send queue (:attr:`Call.queue`). The queue drains into
DATA frames as far as ``min(stream window, connection window)`` allows, in
frames no larger than the peer's SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.9.1).
What does not fit stays queued and the call is **blocked**; the driver parks
its sender while :meth:`OutboundFlow.is_blocked` says so, and wakes it on the
:class:`WindowOpened` event this module reports once the queue has drained.
A driver that waits while blocked holds at most one message per call in
memory: no unbounded buffer.

When the peer grants window (WINDOW_UPDATE, or a larger
SETTINGS_INITIAL_WINDOW_SIZE), blocked calls are flushed again: a stream
grant flushes that call, a connection grant shares the new window among the
blocked calls in the order they stalled, so no call starves another.

Coalescing. Small messages are not sent at once: a call that queued less
than :data:`COALESCE_LIMIT` bytes waits for :meth:`OutboundFlow.flush_pending`,
which the connection runs when the driver asks for bytes to write. A burst
of small messages then shares DATA frames - one trip through h2 for many
messages instead of one each. Large messages are queued without a framing
copy: their prefix and payload are queued as two views, and frames are cut
from them.

The end of our side - trailers (server) or a bare END_STREAM (client) - is
queued behind the data (the send side is CLOSING, see :mod:`._lifecycle`)
and goes out when the queue has drained; END_STREAM rides on the last DATA
frame when no trailers follow. The ``on_end_sent`` callback tells the
connection, which decides what the end means for its role.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ._events import Event, WindowOpened
from ._framing import PREFIX_LENGTH, encode_prefix, frame_message
from ._h2_connection import H2Connection
from ._lifecycle import NOTHING_QUEUED, Call, CallAction, CallState
from ._statistics import flow_fields

#: Queued bytes at which a call is flushed at once instead of waiting for the
#: driver's next write (bounds what a producer queues between writes).
COALESCE_LIMIT = 64 * 1024
#: Messages at least this large are queued without copying them into a framed
#: buffer (smaller ones are framed in one copy and may share DATA frames).
LARGE_MESSAGE = 16 * 1024


class OutboundFlow:
    """The send side of every call on one connection: queues, frames, stalls."""

    __slots__ = ("_blocked", "_h2", "_on_end_sent", "_trace", "pending")

    def __init__(
        self,
        h2conn: H2Connection,
        *,
        on_end_sent: Callable[[Call], None],
        trace: Callable[..., None] | None,
    ) -> None:
        self._h2 = h2conn
        self._on_end_sent = on_end_sent
        self._trace = trace
        #: Calls with small messages queued since the last flush_pending()
        #: (the connection tests it before calling, on every write).
        self.pending: dict[int, Call] = {}
        #: Calls with queued data and a closed window, in the order they stalled.
        self._blocked: dict[int, Call] = {}

    # ------------------------------------------------------------ queries

    def is_blocked(self, stream_id: int) -> bool:
        """True while the call has data waiting for the peer's window."""
        return stream_id in self._blocked

    @property
    def blocked_count(self) -> int:
        """Calls with queued data and a closed window."""
        return len(self._blocked)

    # ------------------------------------------------------------ queueing

    def queue_message(self, call: Call, payload: bytes | memoryview, compressed: bool) -> bool:
        """Frame ``payload`` onto ``call``'s queue; send now or at the next flush.

        Returns True when the call is blocked: data waits for the peer's window.
        """
        queue = call.queue
        if queue is NOTHING_QUEUED:
            queue = call.queue = deque()
        if len(payload) < LARGE_MESSAGE:
            framed = frame_message(payload, compressed)
            queue.append(memoryview(framed))
            call.queued += len(framed)
        else:
            # A large message is not copied into a framed buffer: its prefix
            # and the payload itself are queued, and DATA frames are cut from
            # them (only the first frame, prefix + head, is joined).
            if type(payload) is not bytes:
                payload = bytes(payload)  # it must not change while queued
            queue.append(memoryview(encode_prefix(len(payload), compressed)))
            queue.append(memoryview(payload))
            call.queued += PREFIX_LENGTH + len(payload)
        if call.queued >= COALESCE_LIMIT or call.stream_id in self._blocked:
            self.flush(call, None)
            return call.stream_id in self._blocked
        # Small messages wait for flush_pending(), so that a burst of them
        # shares DATA frames instead of costing one frame (and one trip
        # through h2) each.
        self.pending[call.stream_id] = call
        return False

    def queue_framed(self, call: Call, framed: bytes) -> bool:
        """Queue bytes framed by the caller (another body format); like :meth:`queue_message`.

        For transports that frame differently on top of the gRPC framing
        (gRPC-Web's trailer frame, its base64 text mode): the bytes go into
        DATA frames as they are. Returns True when the call is blocked.
        """
        queue = call.queue
        if queue is NOTHING_QUEUED:
            queue = call.queue = deque()
        queue.append(memoryview(framed))
        call.queued += len(framed)
        if call.queued >= COALESCE_LIMIT or call.stream_id in self._blocked:
            self.flush(call, None)
            return call.stream_id in self._blocked
        self.pending[call.stream_id] = call
        return False

    def queue_end(self, call: Call, headers: list[tuple[bytes, bytes]] | None) -> None:
        """End our side of ``call`` after its queued data: trailers, or bare END_STREAM."""
        call.advance_send(CallAction.END)
        call.end_headers = headers
        self.flush(call, None)

    def drop(self, call: Call) -> None:
        """Forget ``call``'s queue and scheduling (the call ended or failed)."""
        self._blocked.pop(call.stream_id, None)
        self.pending.pop(call.stream_id, None)
        call.queue = NOTHING_QUEUED
        call.queued = 0

    # ------------------------------------------------------------- sending

    def flush_pending(self, calls: dict[int, Call]) -> None:
        """Send the small messages queued since the last call (before a write)."""
        if self.pending:
            unflushed = self.pending
            self.pending = {}
            for call in unflushed.values():
                if call.queue and calls.get(call.stream_id) is call:
                    self.flush(call, None)

    def window_updated(self, stream_id: int, events: list[Event]) -> None:
        """The peer granted window on ``stream_id`` (0: the connection)."""
        if not self._blocked:
            return
        if stream_id == 0:
            self.flush_blocked(events)
        else:
            call = self._blocked.get(stream_id)
            if call is not None:
                self.flush(call, events)

    def flush_blocked(self, events: list[Event]) -> None:
        """Share newly opened connection window among stalled calls, in stall order."""
        for call in list(self._blocked.values()):
            if self._h2.outbound_flow_control_window <= 0:
                break
            self.flush(call, events)

    def flush(self, call: Call, events: list[Event] | None) -> None:
        """Send as much of ``call``'s queue as the windows allow.

        ``events`` is the list to report :class:`WindowOpened` into when a
        blocked call drains; ``None`` when called from a send (the caller
        learns the outcome from :meth:`is_blocked`).
        """
        h2conn = self._h2
        stream_id = call.stream_id
        stream = h2conn.streams.get(stream_id)
        if stream is None or stream.closed:
            # The peer closed the stream in a later frame of the batch being
            # dispatched (h2 reads a whole batch before we see its first
            # event): nothing may be sent, and that frame's event ends the
            # call and drops the queue.
            return
        queue = call.queue
        max_frame = h2conn.max_outbound_frame_size
        while queue:
            window = h2conn.local_flow_control_window(stream_id)
            if window <= 0:
                break
            limit = min(window, max_frame)
            chunk = queue[0]
            if len(chunk) >= limit:
                data: bytes | memoryview = chunk[:limit]
                if len(chunk) == limit:
                    queue.popleft()
                else:
                    queue[0] = chunk[limit:]
            else:
                # Several small messages (and the head of the next) share
                # one DATA frame: one trip through h2 for the lot.
                queue.popleft()
                parts = [chunk]
                size = len(chunk)
                while queue and size < limit:
                    chunk = queue[0]
                    room = limit - size
                    if len(chunk) <= room:
                        parts.append(queue.popleft())
                        size += len(chunk)
                    else:
                        parts.append(chunk[:room])
                        queue[0] = chunk[room:]
                        size = limit
                data = parts[0] if len(parts) == 1 else b"".join(parts)
            call.queued -= len(data)
            # END_STREAM rides on the last DATA frame when no trailers follow.
            end_now = (
                not queue and call.send_state is CallState.CLOSING and call.end_headers is None
            )
            h2conn.send_data(stream_id, data, end_stream=end_now)
            if end_now:
                self._sent_end(call)
        if queue:
            if stream_id not in self._blocked:
                self._blocked[stream_id] = call
                if self._trace is not None:
                    self._trace("stall", stream_id, **flow_fields(h2conn, call))
            return
        call.queue = NOTHING_QUEUED  # drained: the call's own deque goes
        was_blocked = self._blocked.pop(stream_id, None) is not None
        if call.send_state is CallState.CLOSING:
            if call.end_headers is not None:
                h2conn.send_headers(stream_id, call.end_headers, end_stream=True)
            else:
                h2conn.end_stream(stream_id)
            self._sent_end(call)
        if was_blocked:
            if self._trace is not None:
                self._trace("resume", stream_id)
            if events is not None:
                events.append(WindowOpened(stream_id=stream_id))

    def _sent_end(self, call: Call) -> None:
        call.advance_send(CallAction.SENT)
        call.end_headers = None
        self._on_end_sent(call)
