"""The requests of one call, kept so that every attempt of it gets all of them, in order.

The retry layer (:mod:`._retry_stream`) serializes each request once and
keeps it here; each :class:`Attempt` remembers how many it has been sent,
so a new attempt (a retry, a hedge) is brought up to date by
:meth:`Replay.catch_up`, and a running one gets each new request as it
comes. Requests take bytes from the channel's
:class:`~._retry_rules.RetryBuffer` budget until the call commits
(:meth:`Replay.release`); one that does not fit is not kept (:meth:`keep`
says so) and the call must commit: whatever it sends from then on goes to
one attempt only.

One task at a time sends on the attempts (a flag and a parking lot, with no
checkpoint when nobody waits, unlike ``trio.Lock``): a sender's new request
and a retry's replay never interleave on one stream.
"""

from __future__ import annotations

import trio

from ..wire import RpcError
from ._channel_stream import ChannelStream
from ._retry_rules import RetryBuffer


class Attempt:
    """One attempt of a call: its stream, and how much of the call's requests it has."""

    __slots__ = ("half_closed", "sent", "stream")

    def __init__(self, stream: ChannelStream[bytes, bytes]) -> None:
        self.stream = stream
        #: Kept requests sent on it so far.
        self.sent = 0
        #: Its half-close went out.
        self.half_closed = False


class Replay:
    """A call's kept requests (see the module documentation)."""

    __slots__ = ("_budget", "_held", "_lot", "_requests", "_sending", "done_writing")

    def __init__(self, budget: RetryBuffer) -> None:
        self._budget = budget
        self._requests: list[tuple[bytes, bool]] = []
        #: Bytes reserved in the channel's budget.
        self._held = 0
        #: The call half-closed: every attempt gets the half-close after the requests.
        self.done_writing = False
        self._sending = False
        self._lot = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._requests)

    def keep(self, data: bytes, compress: bool = True) -> bool:
        """Keep a request for replay; False (nothing kept) if it does not fit the budget."""
        if not self._budget.reserve(self._held, len(data)):
            return False
        self._held += len(data)
        self._requests.append((data, compress))
        return True

    def is_unary(self) -> bool:
        """One request and the half-close, nothing sent yet: :meth:`send_unary` applies."""
        return len(self._requests) == 1 and self.done_writing and not self._sending

    async def send_unary(self, attempt: Attempt) -> None:
        """Send the one request and the half-close in one step (raises the attempt's end)."""
        self._sending = True
        attempt.sent, attempt.half_closed = 1, True
        try:
            await attempt.stream.send_last(self._requests[0][0])
        finally:
            self._sending = False
            self._lot.unpark_all()

    async def catch_up(self, attempt: Attempt, *, then_release: bool = False) -> bool:
        """Send ``attempt`` the kept requests it lacks, and the half-close; False if it ended.

        ``then_release``: ``attempt`` is the one the call committed to, and
        once it has everything the requests are let go.
        """
        while self._sending:
            await self._lot.park()
        self._sending = True
        try:
            stream = attempt.stream
            try:
                # self._requests is read afresh each time: a release may clear it.
                while attempt.sent < len(self._requests):
                    data, compress = self._requests[attempt.sent]
                    await stream.send(data, compress=compress)
                    attempt.sent += 1
                if self.done_writing and not attempt.half_closed:
                    attempt.half_closed = True
                    await stream.done_writing()
            except RpcError:
                return False
            if then_release:
                self.release(attempt)
            return True
        finally:
            self._sending = False
            self._lot.unpark_all()

    @property
    def settled(self) -> bool:
        """Nothing is kept and nobody is sending: a committed call's attempt has all there is."""
        return not self._requests and not self._sending

    def has_all(self, attempt: Attempt) -> bool:
        """Whether ``attempt`` has been sent every kept request."""
        return attempt.sent == len(self._requests)

    def release(self, winner: Attempt | None = None) -> None:
        """Let the kept requests go (the call committed to ``winner``, or ended)."""
        if self._held:
            self._budget.release(self._held)
            self._held = 0
        self._requests = []
        if winner is not None:
            winner.sent = 0

    def __del__(self) -> None:
        # A call dropped before it committed still holds budget.
        try:
            if self._held:
                self._budget.release(self._held)
        except AttributeError:
            pass  # __init__ did not finish
