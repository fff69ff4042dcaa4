"""Channel connectivity states (grpc/grpc doc/connectivity-semantics-and-api.md).

Theory of operation. A channel is in one of five states, and so is each of
its subchannels (one per address); a subchannel moves as its connections
are attempted, made and lost, the channel as its balancer aggregates them
(:mod:`._router`, :mod:`._balancer`), and applications
watch it through :meth:`Channel.get_state
<puregrpc.client.Channel.get_state>` and :meth:`Channel.wait_for_state_change
<puregrpc.client.Channel.wait_for_state_change>`::

               call / try_to_connect                handshake done
        IDLE ───────────────────────▶ CONNECTING ───────────────────▶ READY
         ▲  ▲                          │  ▲   │                       │  │
         │  └── attempt abandoned ─────┘  │   │ attempt failed        │  │
         │      (caller cancelled)        │   ▼                       │  │
         │                     next call /  TRANSIENT_FAILURE ◀───────┘  │
         │                     backoff over         keepalive timeout    │
         └───────────────── GOAWAY, or the connection closed ────────────┘

        any state ── Channel.close() ──▶ SHUTDOWN (final)

The allowed moves of a subchannel are the table of the document
(:data:`TRANSITIONS`); a move outside it is a bug in the subchannel and
raises :class:`RuntimeError` naming both states. The channel's own state,
an aggregate, is not held to the table (``strict=False``: READY may go to
CONNECTING when the last READY subchannel fails while another connects);
with a single address it follows the table all the same. Moving to the
state one is in is no change and wakes nobody. Once SHUTDOWN, the channel
stays there: late news from connections still winding down is ignored.

Waiting. Each change fills in one :class:`_Change` record and sets its
event; the next change gets a fresh record. A waiter holds the record of the
change to come, so :meth:`Connectivity.wait_for_change` returns the state
the channel moved to from ``source``, even if it moved on again before the
waiter ran (the notification is never lost, and never names a state the
channel was not in; ``state`` says where it is now).
"""

from __future__ import annotations

import enum
import logging

import trio

logger = logging.getLogger("puregrpc.client")


class ConnectivityState(enum.Enum):
    """Where a channel stands with its server (doc/connectivity-semantics-and-api.md)."""

    #: No connection, and none being attempted: the next call (or
    #: ``get_state(try_to_connect=True)``) starts one.
    IDLE = "idle"
    #: A connection attempt is under way (TCP, TLS).
    CONNECTING = "connecting"
    #: Connected: calls go out at once.
    READY = "ready"
    #: The last attempt failed (or the connection was found dead): calls fail
    #: fast until the backoff is over, unless they wait for ready.
    TRANSIENT_FAILURE = "transient_failure"
    #: The channel was closed; it never leaves this state.
    SHUTDOWN = "shutdown"


_S = ConnectivityState

#: The allowed moves: from each state, the states it may go to.
TRANSITIONS: dict[ConnectivityState, frozenset[ConnectivityState]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.SHUTDOWN}),
    _S.CONNECTING: frozenset({_S.READY, _S.TRANSIENT_FAILURE, _S.IDLE, _S.SHUTDOWN}),
    _S.READY: frozenset({_S.TRANSIENT_FAILURE, _S.IDLE, _S.SHUTDOWN}),
    _S.TRANSIENT_FAILURE: frozenset({_S.CONNECTING, _S.SHUTDOWN}),
    _S.SHUTDOWN: frozenset(),
}


class _Change:
    """The next change of state: its event is set once the new state is known."""

    __slots__ = ("done", "state")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.state: ConnectivityState | None = None


class Connectivity:
    """The connectivity state of one channel, and the tasks waiting for it to change."""

    __slots__ = ("_pending", "_state", "_strict", "target")

    def __init__(self, target: str, *, strict: bool = True) -> None:
        #: The channel's target (or the subchannel's address), for logs.
        self.target = target
        #: Enforce :data:`TRANSITIONS` (one connection's life); a channel
        #: aggregating several subchannels may move between any two states.
        self._strict = strict
        self._state = ConnectivityState.IDLE
        #: The link the next change fills in.
        self._pending = _Change()

    @property
    def state(self) -> ConnectivityState:
        """The current state."""
        return self._state

    def move_to(self, new: ConnectivityState) -> bool:
        """Enter ``new``; True if that was a change (waiters are woken).

        Raises :class:`RuntimeError` for a move the table does not allow.
        Nothing leaves SHUTDOWN: moves after it are ignored.
        """
        old = self._state
        if new is old or old is ConnectivityState.SHUTDOWN:
            return False
        if self._strict and new not in TRANSITIONS[old]:
            raise RuntimeError(
                f"connectivity of {self.target}: no transition from {old.name} to {new.name}"
            )
        self._state = new
        change, self._pending = self._pending, _Change()
        change.state = new
        change.done.set()
        logger.debug("channel to %s: %s -> %s", self.target, old.name, new.name)
        return True

    async def wait_for_change(self, source: ConnectivityState) -> ConnectivityState:
        """The state the channel moves to from ``source``.

        Returns the current state at once if it is not ``source``. Waits as
        long as it takes: bound it with a cancel scope (``trio.move_on_after``).
        """
        if self._state is not source:
            return self._state
        change = self._pending
        await change.done.wait()
        # A change always leaves the state it starts from: never ``source``.
        assert change.state is not None
        return change.state
