"""``round_robin``: calls spread in turn over every READY subchannel.

Theory of operation (grpc/grpc doc/load-balancing.md). Once the channel
leaves IDLE, the policy wants a connection to every address: it asks each
subchannel to connect, and asks again whenever one falls back to IDLE (its
connection closed). Each pick takes the next READY subchannel in turn, so
N calls over k READY subchannels go N/k to each. A subchannel that fails
leaves the rotation at once (it is not READY); it is asked to connect again
by the first pick after its backoff is over, and rejoins the rotation when
READY. Calls are never sent to a subchannel that is not READY.

The channel's state is the aggregate of the subchannels'
(:func:`~._balancer.aggregate_state`): READY while any is READY. With none
READY, calls wait while any subchannel is CONNECTING or IDLE; once all are
in TRANSIENT_FAILURE, fail-fast calls fail UNAVAILABLE (naming every
address and its error) and ``wait_for_ready`` calls wait for the first to
come back.
"""

from __future__ import annotations

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
class RoundRobin(LoadBalancingConfig):
    """Config of ``round_robin`` (it has no settings)."""

    name: ClassVar[str] = "round_robin"

    def build(self) -> RoundRobinBalancer:
        """A new ``round_robin`` balancer."""
        return RoundRobinBalancer()

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> RoundRobin:
        """``{}``: round_robin takes no configuration."""
        return cls()


class RoundRobinBalancer(LoadBalancer):
    """The ``round_robin`` policy (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        #: How many picks went to a subchannel: the next READY one in turn.
        self._turn = 0
        #: The channel has left IDLE: every subchannel should be connected.
        self._active = False

    def update_subchannels(self, subchannels: Sequence[SubchannelHandle], now: float) -> None:
        """A new list: connect the new subchannels if the channel is active."""
        self._subchannels = tuple(subchannels)
        if self._active:
            self._connect_all(now)

    def subchannel_changed(self, subchannel: SubchannelHandle, now: float) -> None:
        """A subchannel whose connection closed (IDLE) is reconnected at once."""
        if self._active and subchannel.state is _S.IDLE and subchannel in self._subchannels:
            subchannel.request_connection()

    def exit_idle(self, now: float) -> None:
        """Connect every subchannel that is IDLE or past its backoff."""
        self._active = True
        self._connect_all(now)

    def pick(self, now: float) -> Pick:
        """The next READY subchannel; else wait while any connects; else fail."""
        self.exit_idle(now)
        ready = [sub for sub in self._subchannels if sub.state is _S.READY]
        if ready:
            chosen = ready[self._turn % len(ready)]
            self._turn += 1
            return Pick(chosen)
        if self.state in (_S.CONNECTING, _S.IDLE):
            return WAIT
        return failed_pick(self._subchannels, now)

    def _connect_all(self, now: float) -> None:
        for subchannel in self._subchannels:
            if retryable(subchannel, now):
                subchannel.request_connection()


register_load_balancer(RoundRobin.name, RoundRobin.from_json)
