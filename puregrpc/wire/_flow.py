"""Explicit HTTP/2 flow control: when credit goes back to the peer.

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

Positions, not counters
-----------------------
Each stream keeps four monotonic byte positions in its stream of DATA bytes::

    credited <= max(consumed, ...) ; consumed <= completed <= received

    0 ....... consumed ....... completed ....... received
              |  complete but unconsumed  | partial msg |

The credit target is ``received`` when ``consumed == completed`` (the reader is
caught up, so the partial message is what it waits for) and a window runs
low, and ``consumed`` otherwise. New credit is ``target - credited``. A few
integers compared per event: cheap enough for the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReceiveCredit:
    """Receive-side credit of one stream: which received bytes may be granted.

    The caller reports bytes arriving (:meth:`received_bytes`), messages
    completing (:meth:`completed_message`) and messages consumed
    (:meth:`consumed_message`); :meth:`take` returns the bytes that became
    grantable since the last call.
    """

    __slots__ = ("completed", "consumed", "credited", "received")

    def __init__(self) -> None:
        #: DATA payload bytes received on the stream (padding excluded).
        self.received = 0
        #: End position of the last complete message.
        self.completed = 0
        #: Bytes of messages the application has consumed.
        self.consumed = 0
        #: Bytes already handed to the grant batcher.
        self.credited = 0

    @property
    def unconsumed(self) -> int:
        """Bytes received and not yet consumed (queued messages + partial one)."""
        return self.received - self.consumed

    @property
    def awaiting_partial(self) -> bool:
        """True when the reader is caught up and waits for an incomplete message."""
        return self.received > self.completed == self.consumed

    def take(self, *, window_low: bool = False) -> int:
        """Return the bytes that became grantable since the last call.

        ``window_low`` says a receive window is below its grant threshold:
        only then are the bytes of an incomplete message credited (see the
        module docstring).
        """
        target = self.received if window_low and self.consumed == self.completed else self.consumed
        delta = target - self.credited
        if delta <= 0:
            return 0
        self.credited = target
        return delta

    def release_all(self) -> int:
        """The stream is gone: return every byte not yet credited.

        Used when a call ends while messages are still unconsumed; the stream
        window no longer matters but the connection window must get them back.
        """
        delta = self.received - self.credited
        self.credited = self.consumed = self.completed = self.received
        return delta


class GrantBatcher:
    """Collects credited bytes and says when a WINDOW_UPDATE is worth sending.

    One per stream and one for the connection. ``threshold`` is the batch
    size: sending a WINDOW_UPDATE per message would cost a frame per message.
    """

    __slots__ = ("pending", "threshold")

    def __init__(self, threshold: int) -> None:
        #: Credited bytes not yet granted to the peer.
        self.pending = 0
        #: Grant once ``pending`` reaches this many bytes.
        self.threshold = max(1, threshold)

    def add(self, credit: int) -> int:
        """Add credit; return the increment to grant now, or 0 to wait."""
        pending = self.pending + credit
        if pending >= self.threshold:
            self.pending = 0
            return pending
        self.pending = pending
        return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatistics:
    """A snapshot of one call's flow-control state."""

    #: The HTTP/2 stream id.
    stream_id: int
    #: Bytes we may still send on this stream (its own window, ignoring the
    #: connection window).
    send_window: int
    #: Bytes the peer may still send us on this stream.
    receive_window: int
    #: Bytes of messages accepted by ``send_message`` but not yet on the wire
    #: because a window is closed.
    queued_bytes: int
    #: Bytes received that the application has not consumed yet.
    unconsumed_bytes: int
    #: Bytes consumed (or credited) but not yet granted back by WINDOW_UPDATE.
    ungranted_bytes: int
    #: True while the stream has queued bytes and a closed window.
    blocked: bool
    #: Messages handed to ``send_message`` so far.
    messages_sent: int
    #: Complete messages received so far.
    messages_received: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStatistics:
    """A snapshot of the whole connection's flow-control state."""

    #: Bytes we may still send on the connection (all streams together).
    send_window: int
    #: Bytes the peer may still send us on the connection.
    receive_window: int
    #: Sum of queued bytes over all streams.
    queued_bytes: int
    #: Bytes credited on the connection but not yet granted.
    ungranted_bytes: int
    #: Calls currently open.
    open_streams: int
    #: Streams that have queued data and a closed window.
    blocked_streams: int
    #: The peer's SETTINGS_MAX_FRAME_SIZE.
    max_frame_size: int
