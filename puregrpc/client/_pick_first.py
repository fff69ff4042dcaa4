"""``pick_first``: every call to the first address that connects (the default policy).

Theory of operation (grpc/grpc doc/load-balancing.md, gRFC A62). The
policy is idle until a call (or ``try_to_connect``) needs a connection. It
then makes a *pass* over the addresses, in the resolver's order (shuffled
first when ``shuffle_address_list`` asks, A62): it asks one subchannel to
connect and waits for the outcome; on failure it moves on to the next; the
first that becomes READY is *selected* and takes every call from then on
(sticky), the others stay idle. A subchannel still in its backoff from an
earlier failure is skipped. When the whole pass fails, the policy is in
TRANSIENT_FAILURE: fail-fast calls fail, ``wait_for_ready`` calls wait; the
next pick after the first backoff is over starts a new pass (A62's "sticky"
TRANSIENT_FAILURE: no call is sent until a connection is READY again)::

             pick / exit_idle                 a subchannel READY
      IDLE ─────────────────▶ CONNECTING ──────────────────────────▶ READY
       ▲                      (a pass)   ◀─┐                        │   │
       │                         │         │ pick, a backoff over   │   │
       │                         ▼         │                        │   │
       │                   TRANSIENT_FAILURE ◀── keepalive: dead ───┘   │
       └────────────── the selected connection closed (GOAWAY) ─────────┘

The policy reports these states itself (not the aggregate of its
subchannels), so a pass that moves from one address to the next shows
CONNECTING throughout. With a single address this is exactly one
subchannel's life: the channel connects, fails and backs off as it always
did.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ._balancer import (
    WAIT,
    LoadBalancer,
    LoadBalancingConfig,
    Pick,
    SubchannelHandle,
    failed_pick,
    register_load_balancer,
    retryable,
)
from ._connectivity import ConnectivityState

_S = ConnectivityState


@dataclass(frozen=True, slots=True, kw_only=True)
class PickFirst(LoadBalancingConfig):
    """Config of ``pick_first``: one connection, to the first address that works."""

    name: ClassVar[str] = "pick_first"
    #: Shuffle each new address list before trying it (gRFC A62), so that
    #: clients given the same list spread over its servers.
    shuffle_address_list: bool = False
    #: The randomness of the shuffle (tests pass a seeded one).
    rng: random.Random | None = None

    def build(self) -> PickFirstBalancer:
        """A new ``pick_first`` balancer."""
        return PickFirstBalancer(self)

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> PickFirst:
        """``{"shuffleAddressList": true}`` or ``{}``."""
        return cls(shuffle_address_list=bool(config.get("shuffleAddressList", False)))


class PickFirstBalancer(LoadBalancer):
    """The ``pick_first`` policy (see the module doc)."""

    def __init__(self, config: PickFirst) -> None:
        super().__init__()
        self._config = config
        self._rng = config.rng if config.rng is not None else random.Random()
        #: The READY subchannel every call goes to.
        self._selected: SubchannelHandle | None = None
        #: The subchannel a pass is waiting for (None: no pass running).
        self._trying: int | None = None
        #: The last pass failed: TRANSIENT_FAILURE until one succeeds.
        self._failed = False
        #: Connecting was asked for before there were addresses.
        self._wanted = False

    @property
    def state(self) -> ConnectivityState:
        """READY with a selected subchannel; CONNECTING during a pass; else IDLE or failed."""
        if self._selected is not None:
            return _S.READY
        if self._trying is not None:
            return _S.CONNECTING
        return _S.TRANSIENT_FAILURE if self._failed else _S.IDLE

    @property
    def selected(self) -> SubchannelHandle | None:
        """The subchannel calls go to, if one is READY."""
        return self._selected

    def update_subchannels(self, subchannels: Sequence[SubchannelHandle], now: float) -> None:
        """A new list: keep the selected subchannel if it is still in it, else start over."""
        ordered = list(subchannels)
        if self._config.shuffle_address_list:
            self._rng.shuffle(ordered)
        self._subchannels = tuple(ordered)
        if self._selected is not None and self._selected in self._subchannels:
            return
        # In use (connected, connecting or failing): connect to the new list now.
        active = self._selected is not None or self._trying is not None or self._failed
        self._selected = None
        if active or self._wanted:
            self._start_pass(now)

    def subchannel_changed(self, subchannel: SubchannelHandle, now: float) -> None:
        """Follow the pass; drop the selected subchannel when it leaves READY."""
        if subchannel not in self._subchannels:
            return
        state = subchannel.state
        if subchannel is self._selected:
            if state is not _S.READY:
                # The connection closed (IDLE: the next call starts a pass)
                # or was found dead (TRANSIENT_FAILURE, retried at once).
                self._selected = None
                self._failed = state is _S.TRANSIENT_FAILURE
            return
        if self._selected is None and state is _S.READY:
            self._select(subchannel)
            return
        trying = self._trying
        if (
            trying is not None
            and subchannel is self._subchannels[trying]
            and state in (_S.TRANSIENT_FAILURE, _S.IDLE, _S.SHUTDOWN)
        ):
            self._advance(trying + 1, now)

    def exit_idle(self, now: float) -> None:
        """Start a pass unless one runs, a subchannel is selected, or no backoff is over."""
        if not self._subchannels:
            self._wanted = True
            return
        if self._selected is not None or self._trying is not None:
            return
        if not self._failed or any(retryable(sub, now) for sub in self._subchannels):
            self._start_pass(now)

    def pick(self, now: float) -> Pick:
        """The selected subchannel; or wait for the pass; or fail until a backoff ends."""
        self.exit_idle(now)
        if self._selected is not None:
            return Pick(self._selected)
        if self._trying is not None or not self._subchannels:
            return WAIT
        return failed_pick(self._subchannels, now)

    # ------------------------------------------------------------- passes

    def _start_pass(self, now: float) -> None:
        self._wanted = False
        self._advance(0, now)

    def _advance(self, index: int, now: float) -> None:
        """Try the subchannels from ``index`` on; the pass fails past the last."""
        for position in range(index, len(self._subchannels)):
            subchannel = self._subchannels[position]
            state = subchannel.state
            if state is _S.READY:
                self._select(subchannel)
                return
            if state is _S.CONNECTING or retryable(subchannel, now):
                self._trying = position
                self._failed = False
                subchannel.request_connection()
                return
        self._trying = None
        self._failed = True

    def _select(self, subchannel: SubchannelHandle) -> None:
        self._selected = subchannel
        self._trying = None
        self._failed = False


register_load_balancer(PickFirst.name, PickFirst.from_json)
