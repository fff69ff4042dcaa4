"""The lifecycle of one call: its two directions, their states and the transition table.

Theory of operation
===================

A gRPC call is one HTTP/2 stream, and each direction of it - what we send
and what we receive - runs through the same small state machine::

                 HEADERS                 END
        IDLE ------------> OPEN ------------------> CLOSING ----> CLOSED
          |                 | ^                      (send side    ^
          |                 | | MESSAGE               only: the    |
          |                 +-+                       end waits    | SENT
          |                                           behind       |
          |   END (trailers-only response)            queued data) |
          +--------------------------------------> CLOSING --------+
          |
          |   RESET (any state: RST_STREAM either way, the connection lost,
          +-- the call failed) ----------------------------------> CLOSED

* HEADERS: the direction's header block (request headers from the client,
  response headers from the server).
* MESSAGE: a gRPC message; legal only while OPEN.
* END: END_STREAM - trailers from the server, a half-close from the client.
  On the **send** side the end is queued behind any data still waiting for
  flow-control window, so it passes through CLOSING until it is on its way
  (SENT). On the **receive** side the peer's END_STREAM has arrived: the
  direction goes straight to CLOSED (RECEIVED_END).
* RESET: the stream is gone, whatever the state.

A call's record is made with both directions IDLE, and the request headers
open one at once: a client's send side (they go out as the call starts), a
server's receive side (they are what started it). The call is over when both directions are CLOSED.
Every change of state, CLOSED included, goes through :data:`TRANSITIONS`; a
move the table does not list is a bug in the caller and raises
:class:`LocalProtocolError` naming the state and the action.

:class:`Call` is the one record of a call's state in the connection state
machine: both directions, the receive decoder and flow-control credit, and
the send queue that :mod:`._outbound_flow` drains.
"""

from __future__ import annotations

import enum
from collections import deque

from ._compression import IDENTITY
from ._credit import GrantBatcher, ReceiveCredit
from ._errors import LocalProtocolError
from ._framing import MessageDecoder


class CallState(enum.IntEnum):
    """The state of one direction of a call.

    An IntEnum so that transition lookups hash as ints (Enum's hash is a
    Python-level call, paid on every message).
    """

    IDLE = 0
    OPEN = 1
    #: Send side only: the end is queued behind data waiting for window.
    CLOSING = 2
    CLOSED = 3


class CallAction(enum.IntEnum):
    """What happens to one direction of a call."""

    HEADERS = 0
    MESSAGE = 1
    #: The send side queued its end (trailers or END_STREAM).
    END = 2
    #: The queued end went out on the wire.
    SENT = 3
    #: The receive side saw the peer's END_STREAM.
    RECEIVED_END = 4
    #: The stream is gone (reset either way, connection lost, call failed).
    RESET = 5


#: Every legal transition of either direction of a call.
TRANSITIONS: dict[tuple[CallState, CallAction], CallState] = {
    (CallState.IDLE, CallAction.HEADERS): CallState.OPEN,
    (CallState.OPEN, CallAction.MESSAGE): CallState.OPEN,
    # Send side: the end waits behind queued data, then goes out.
    (CallState.IDLE, CallAction.END): CallState.CLOSING,
    (CallState.OPEN, CallAction.END): CallState.CLOSING,
    (CallState.CLOSING, CallAction.SENT): CallState.CLOSED,
    # Receive side: the peer's END_STREAM (after headers, or trailers-only).
    (CallState.IDLE, CallAction.RECEIVED_END): CallState.CLOSED,
    (CallState.OPEN, CallAction.RECEIVED_END): CallState.CLOSED,
    # Whatever the state, a reset stream is closed.
    **{(state, CallAction.RESET): CallState.CLOSED for state in CallState},
}


#: The send queue of every call with nothing queued: one shared deque, never
#: appended to. ``OutboundFlow`` gives a call a deque of its own when it
#: queues bytes and puts this one back once they are sent, so an idle call
#: (most of a server's open streams) costs no deque (760 bytes each).
NOTHING_QUEUED: deque[memoryview] = deque()


class Call:
    """Everything the connection state machine knows about one call (one HTTP/2 stream)."""

    __slots__ = (
        "credit",
        "decoder",
        "end_headers",
        "grant",
        "messages_received",
        "messages_sent",
        "queue",
        "queued",
        "recv_encoding",
        "recv_state",
        "send_encoding",
        "send_state",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: int,
        *,
        max_message_size: int,
        grant_threshold: int,
    ) -> None:
        self.stream_id = stream_id
        # Both directions start IDLE; the first header block (the request's:
        # sent by a client, received by a server) opens one of them at once.
        self.send_state = CallState.IDLE
        self.recv_state = CallState.IDLE
        self.decoder = MessageDecoder(max_message_size)
        self.credit = ReceiveCredit()
        self.grant = GrantBatcher(grant_threshold)
        #: Encoding of messages we receive / send on this call.
        self.recv_encoding = IDENTITY
        self.send_encoding = IDENTITY
        #: Framed bytes waiting to go into DATA frames, oldest first; the
        #: shared :data:`NOTHING_QUEUED` while there are none.
        self.queue: deque[memoryview] = NOTHING_QUEUED
        #: Total bytes in ``queue``.
        self.queued = 0
        #: Trailers to send with END_STREAM once the queue drains (CLOSING
        #: only; None: END_STREAM rides on the last DATA frame).
        self.end_headers: list[tuple[bytes, bytes]] | None = None
        self.messages_sent = 0
        self.messages_received = 0

    def advance_send(self, action: CallAction) -> None:
        """Move the send side on by ``action``, or raise naming the impossible move."""
        new_state = TRANSITIONS.get((self.send_state, action))
        if new_state is None:
            raise self._impossible(self.send_state, action, "send")
        self.send_state = new_state

    def advance_recv(self, action: CallAction) -> None:
        """Move the receive side on by ``action``, or raise naming the impossible move."""
        new_state = TRANSITIONS.get((self.recv_state, action))
        if new_state is None:
            raise self._impossible(self.recv_state, action, "receive")
        self.recv_state = new_state

    def close(self) -> None:
        """The stream is gone: both directions move on by RESET (to CLOSED).

        The send queue is the outbound flow's to drop (``OutboundFlow.drop``).
        """
        self.send_state = TRANSITIONS[self.send_state, CallAction.RESET]
        self.recv_state = TRANSITIONS[self.recv_state, CallAction.RESET]
        self.end_headers = None

    @property
    def can_send(self) -> bool:
        """True while messages or an end may still be queued (IDLE or OPEN)."""
        return self.send_state <= CallState.OPEN

    def _impossible(self, state: CallState, action: CallAction, side: str) -> LocalProtocolError:
        return LocalProtocolError(
            f"cannot {action.name.lower()} on the {side} side of stream {self.stream_id} "
            f"in state {state.name}"
        )
