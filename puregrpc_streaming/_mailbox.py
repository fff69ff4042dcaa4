"""A bounded, non-blocking mailbox: the per-subscriber queue of every fan-out.

Publishers (the event bus, and through it chat rooms and sync streams) must
never wait for a subscriber: :meth:`Mailbox.put_nowait` either queues an item
at once or, when the mailbox is full, *overflows* it. An overflowed mailbox
drops everything it holds (so a stuck subscriber pins no memory) and its
reader gets :class:`MailboxOverflow` on the next :meth:`Mailbox.get`. That is
the slow-subscriber policy of the whole service: a reader that falls more
than ``capacity`` items behind is cut off, and resumes if it can (watchers
from their last event id).
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class MailboxOverflow(Exception):
    """The reader fell ``capacity`` items behind and was cut off."""

    def __init__(self, capacity: int) -> None:
        super().__init__(f"more than {capacity} items were waiting for this subscriber")
        self.capacity = capacity


class MailboxClosed(Exception):
    """The mailbox was closed by its owner (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailbox(Generic[T]):
    """A FIFO of at most ``capacity`` items with one reader and any number of writers."""

    __slots__ = ("_closed", "_items", "_lot", "capacity", "overflowed")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed: str | None = None
        #: True once a put found the mailbox full (it then accepts nothing).
        self.overflowed = False

    def __len__(self) -> int:
        """Items waiting."""
        return len(self._items)

    @property
    def open(self) -> bool:
        """True while puts are accepted (not overflowed, not closed)."""
        return not self.overflowed and self._closed is None

    def put_nowait(self, item: T) -> bool:
        """Queue ``item``; never waits. False if the mailbox is (or just became) dead."""
        if not self.open:
            return False
        if len(self._items) >= self.capacity:
            # Cut the reader off rather than block the writer or grow memory.
            self.overflowed = True
            self._items.clear()
            self._lot.unpark_all()
            return False
        self._items.append(item)
        self._lot.unpark_all()
        return True

    def close(self, reason: str) -> None:
        """Refuse further puts; the reader gets what is queued, then :class:`MailboxClosed`."""
        if self._closed is None:
            self._closed = reason
            self._lot.unpark_all()

    def get_nowait(self) -> T | None:
        """The next item if one is waiting, else ``None`` (raises like :meth:`get`)."""
        if self.overflowed:
            raise MailboxOverflow(self.capacity)
        if self._items:
            return self._items.popleft()
        if self._closed is not None:
            raise MailboxClosed(self._closed)
        return None

    async def get(self) -> T:
        """Wait for the next item.

        Raises :class:`MailboxOverflow` once the mailbox overflowed and
        :class:`MailboxClosed` once it is closed and drained.
        """
        # Take the item only once we know we will not be cancelled: a cancel
        # after the pop would lose it.
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            item = self.get_nowait()
            if item is not None:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return item
            await self._lot.park()
