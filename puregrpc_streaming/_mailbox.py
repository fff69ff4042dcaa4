"""A bounded, non-blocking mailbox: the per-subscriber queue of every fan-out.

Publishers (the event bus, and through it chat rooms and sync streams) must
never wait for a subscriber: :meth:`Mailbox.put_nowait` either queues an item
at once or, when the mailbox is full, *overflows* it. An overflowed mailbox
drops everything it holds (so a stuck subscriber pins no memory) and its
reader gets :class:`MailboxOverflow` on the next :meth:`Mailbox.get`. That is
the slow-subscriber policy of the whole service: a reader that falls more
than ``capacity`` items (or, with ``max_bytes``, that many bytes) behind is
cut off, and resumes if it can (watchers from their last event id).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class MailboxOverflow(Exception):
    """The reader fell ``capacity`` items (or ``max_bytes``) behind and was cut off."""

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        limit = f"{capacity} items" + (f" or {max_bytes} bytes" if max_bytes is not None else "")
        super().__init__(f"more than {limit} were waiting for this subscriber")
        self.capacity = capacity


class MailboxClosed(Exception):
    """The mailbox was closed by its owner (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailbox(Generic[T]):
    """A FIFO of at most ``capacity`` items with one reader and any number of writers.

    With ``max_bytes`` and ``size_of`` (an item's size), the items waiting
    are also bounded in bytes: a put that would pass it overflows too.
    """

    __slots__ = (
        "_bytes",
        "_closed",
        "_items",
        "_lot",
        "_size_of",
        "capacity",
        "max_bytes",
        "overflowed",
    )

    def __init__(
        self,
        capacity: int,
        *,
        max_bytes: int | None = None,
        size_of: Callable[[T], int] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if (max_bytes is None) != (size_of is None):
            raise ValueError("max_bytes and size_of go together")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._bytes = 0
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
        size = self._size_of(item) if self._size_of is not None else 0
        too_big = self.max_bytes is not None and self._bytes + size > self.max_bytes
        if len(self._items) >= self.capacity or (too_big and self._items):
            # Cut the reader off rather than block the writer or grow memory.
            self.overflowed = True
            self._items.clear()
            self._bytes = 0
            self._lot.unpark_all()
            return False
        self._items.append(item)
        self._bytes += size
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
            raise MailboxOverflow(self.capacity, self.max_bytes)
        if self._items:
            item = self._items.popleft()
            if self._size_of is not None:
                self._bytes -= self._size_of(item)
            return item
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
