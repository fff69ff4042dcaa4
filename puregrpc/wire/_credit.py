"""Per-stream receive credit: which received bytes may be granted back, and when.

The policy these implement is explained in :mod:`._inbound_flow`.

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


class ReceiveCredit:
    """Receive-side credit of one stream: which received bytes may be granted.

    The connection advances the positions as bytes arrive (``received``),
    messages complete (``completed``) and the application consumes them
    (``consumed``); :meth:`take` returns the bytes that became grantable since
    the last call.
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
