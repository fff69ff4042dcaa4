"""Inbound HTTP/2 flow control: when credit goes back to the peer.

Theory of operation
===================

HTTP/2 (RFC 9113 §5.2, §6.9) lets a receiver bound what a sender may send:
every DATA byte spends the sender's window, and only the receiver's
WINDOW_UPDATE gives it back. *When* the receiver sends that update decides
whether backpressure exists at all. A receiver that grants window as soon as
bytes arrive (what most HTTP/2 libraries do by default) buffers without bound
when the application reads slowly.

puregrpc grants window only for bytes the application has **consumed**:

* Bytes of a complete gRPC message are credited when the driver calls
  ``consume`` for that message (the application took it).
* Bytes of an *incomplete* message are credited as they arrive, but only while
  the application has consumed every complete message before it **and** a
  window (the stream's or the connection's) has fallen below its grant
  threshold. Otherwise a message larger than the window could never finish
  arriving (deadlock); the amount is bounded by the maximum receive message
  size, which the framing decoder enforces from the 5-byte prefix. While the
  windows are still wide the message may well complete on its own, and
  crediting early would let a reader that then stops consuming receive more
  than one window: a sender facing a reader that consumes nothing must stop
  after exactly one window.

  Why this cannot deadlock: a sender that has used up a window leaves it at
  0, below the threshold, so the bytes that fill it are credited on arrival;
  those that arrived while the window was still at or above the threshold
  are at most ``window - threshold``, so at least ``threshold`` bytes are
  credited and the batcher below grants them.
* Padding carries no message and is credited at once.

Credit is then *batched*: a WINDOW_UPDATE goes out only once the credited but
not yet granted bytes reach a threshold (half the window by default), per
stream and, separately, for the connection. Both levels are needed: the
stream window stops one call's sender, the connection window bounds the sum of
unconsumed bytes over all calls.

Where it happens: :class:`InboundFlow` owns the connection-level part (the
connection's grant batcher, the calls waiting on a partial message during one
read) and turns per-stream credit (:mod:`._credit`) into WINDOW_UPDATE frames
queued in h2. The connection state machine tells it what arrived and what was
consumed; it never sees a socket.
"""

from __future__ import annotations

from collections.abc import Callable

from ._config import ConnectionConfig
from ._credit import GrantBatcher
from ._h2_connection import H2Connection
from ._lifecycle import Call, CallState

#: How a flow-control module reports to the tracer: (kind, stream id, fields).
TraceHook = Callable[..., None]


class InboundFlow:
    """Grants window back to the peer for what the application consumed.

    One per connection. Every method that may grant returns True when it
    queued a WINDOW_UPDATE (the driver then has something to write).
    """

    __slots__ = ("_h2", "_trace", "awaiting", "connection_grant", "stream_threshold")

    def __init__(self, h2conn: H2Connection, config: ConnectionConfig, trace: TraceHook | None):
        self._h2 = h2conn
        self._trace = trace
        #: Credit of the whole connection not yet granted.
        self.connection_grant = GrantBatcher(int(config.connection_window * config.grant_ratio))
        #: The batch size of each stream's grants.
        self.stream_threshold = int(config.stream_window * config.grant_ratio)
        #: Calls left waiting for a partial message during one receive batch
        #: (the connection tests it before calling :meth:`settle`).
        self.awaiting: dict[int, Call] = {}

    def received(self, call: Call) -> None:
        """A DATA frame's messages were accounted on call: credit what that allows.

        A partial message is judged against the windows only at the end of
        the batch (:meth:`settle`): h2 counts every DATA frame of a read
        against the windows before we see the first, so mid-batch they read
        too low.
        """
        self.credit(call, check_window=False)
        if call.credit.awaiting_partial:
            self.awaiting[call.stream_id] = call

    def settle(self, calls: dict[int, Call]) -> None:
        """The receive batch is over: credit partial messages of calls still open."""
        for call in self.awaiting.values():
            if calls.get(call.stream_id) is call:
                self.credit(call)
        self.awaiting.clear()

    def credit(self, call: Call, *, check_window: bool = True) -> bool:
        """Grant back whatever the call's consumption made grantable.

        ``check_window`` false leaves a partial message uncredited whatever
        the windows say (the caller checks again once the windows are exact).
        """
        # A caught-up reader's partial message is credited only once a window
        # runs low (see the module docstring): checked only in that case, off
        # the fast path.
        window_low = check_window and call.credit.awaiting_partial and self._window_low(call)
        credit = call.credit.take(window_low=window_low)
        if not credit:
            return False
        granted = self.grant_stream(call, call.grant.add(credit))
        return self.credit_connection(credit) or granted

    def grant_stream(self, call: Call, increment: int) -> bool:
        """Grant ``increment`` bytes on ``call``'s stream (nothing once the peer ended it)."""
        # A stream whose peer has ended its side needs no more window.
        if not increment or call.recv_state is CallState.CLOSED:
            return False
        self._h2.increment_flow_control_window(increment, call.stream_id)
        if self._trace is not None:
            self._trace("window_grant", call.stream_id, increment=increment)
        return True

    def credit_connection(self, credit: int) -> bool:
        """Add ``credit`` to the connection's batch; grant it once the batch is full."""
        increment = self.connection_grant.add(credit)
        if not increment:
            return False
        self._h2.increment_flow_control_window(increment)
        if self._trace is not None:
            self._trace("window_grant", 0, increment=increment)
        return True

    def padding(self, call: Call, padding: int) -> None:
        """Padding holds no message: credit it at once, on both levels."""
        self.credit_connection(padding)
        self.grant_stream(call, call.grant.add(padding))

    def release(self, call: Call) -> None:
        """``call`` is gone: the connection gets back every byte it had not credited."""
        self.awaiting.pop(call.stream_id, None)
        leftover = call.credit.release_all()
        if leftover:
            self.credit_connection(leftover)

    def _window_low(self, call: Call) -> bool:
        """True when the peer's window to us, on the stream or the connection, runs low."""
        h2conn = self._h2
        if h2conn.inbound_flow_control_window < self.connection_grant.threshold:
            return True
        stream = h2conn.streams.get(call.stream_id)
        receive_window = 0 if stream is None else stream.inbound_flow_control_window
        return receive_window < call.grant.threshold
