"""Load balancing policies: which subchannel each call goes to (grpc/grpc doc/load-balancing.md).

Theory of operation. A channel has one subchannel per address its resolver
reported, each with its own connection, backoff and connectivity state, and
one :class:`LoadBalancer` over them. The balancer is a plain object, with
no IO and no clock of its own (it is told ``now``): the channel tells it the
subchannel list (:meth:`LoadBalancer.update_subchannels`) and every change
of a subchannel's state (:meth:`LoadBalancer.subchannel_changed`), and asks
it, once per call, where the call goes (:meth:`LoadBalancer.pick`)::

    resolver ── addresses ──▶ channel ── subchannels ──▶ balancer
                                │  ▲                       │
                                │  ╰──── Pick ─────────────╯
                                ╰─ call: pick() ─▶ READY subchannel / wait / fail

A :class:`Pick` names a READY subchannel (the call starts on it), or says
wait (a connection is being made: every call waits, fail-fast or not), or
carries a failure (no subchannel can take calls: fail-fast calls fail
UNAVAILABLE with it, ``wait_for_ready`` ones wait). Waiting calls pick again
on the next change of any subchannel, or at ``Pick.retry_at`` (a backoff
ends), whichever comes first. Connecting is the balancer's decision: it
calls :meth:`SubchannelHandle.request_connection`, which starts an attempt
in the background if the subchannel is IDLE, or in TRANSIENT_FAILURE with
its backoff over. Balancers never send a call to a subchannel that is not
READY.

The balancer also reports the channel's connectivity state
(:attr:`LoadBalancer.state`): by default :func:`aggregate_state` of its
subchannels, as doc/connectivity-semantics-and-api.md aggregates them.

Which balancer a channel uses is a :class:`LoadBalancingConfig`
(``ChannelOptions(load_balancing=...)``): a name (``"pick_first"``,
``"round_robin"``) or a config object; :func:`load_balancing_config` also
reads a service config's ``loadBalancingConfig`` list (the first policy it
knows wins), as :mod:`._service_config` does.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ._connectivity import ConnectivityState

_S = ConnectivityState


class SubchannelHandle(Protocol):
    """What a balancer sees of one subchannel (one address, one connection)."""

    @property
    def name(self) -> str:
        """The address, as errors and logs name it (``127.0.0.1:50051``)."""
        ...

    @property
    def state(self) -> ConnectivityState:
        """The subchannel's own connectivity state."""
        ...

    @property
    def retry_at(self) -> float:
        """When a subchannel in TRANSIENT_FAILURE may be tried again (its backoff)."""
        ...

    @property
    def last_error(self) -> str:
        """Why the last connection attempt failed ("" if none did)."""
        ...

    def request_connection(self) -> None:
        """Start connecting in the background, if IDLE or TRANSIENT_FAILURE past its backoff.

        The move to CONNECTING is reported (``subchannel_changed``) before
        this returns: balancers note what they wait for before calling it.
        """
        ...


@dataclass(frozen=True, slots=True)
class Pick:
    """The balancer's answer for one call: go, wait, or fail (see the module doc)."""

    #: A READY subchannel: the call starts on it.
    subchannel: SubchannelHandle | None = None
    #: No subchannel can take calls: fail-fast calls fail UNAVAILABLE with this.
    failure: str | None = None
    #: A waiting call picks again at this time, even if nothing changed.
    retry_at: float = math.inf


#: A pick that waits for the next change.
WAIT = Pick()


def aggregate_state(states: Iterable[ConnectivityState]) -> ConnectivityState:
    """The channel state of subchannels in ``states`` (connectivity-semantics-and-api.md).

    Any READY: READY; else any CONNECTING: CONNECTING; else any IDLE: IDLE;
    else (all failing, or none at all) TRANSIENT_FAILURE.
    """
    seen = set(states)
    for state in (_S.READY, _S.CONNECTING, _S.IDLE):
        if state in seen:
            return state
    return _S.TRANSIENT_FAILURE


def retryable(subchannel: SubchannelHandle, now: float) -> bool:
    """Whether :meth:`SubchannelHandle.request_connection` would start an attempt now."""
    state = subchannel.state
    return state is _S.IDLE or (state is _S.TRANSIENT_FAILURE and now >= subchannel.retry_at)


def failed_pick(subchannels: Sequence[SubchannelHandle], now: float) -> Pick:
    """The pick of subchannels that all failed: why, and when the first backoff ends.

    The failure reads ``"address: error; address: error"``; the channel puts
    ``"cannot connect to <target>: "`` in front.
    """
    reasons = "; ".join(f"{sub.name}: {sub.last_error or sub.state.name}" for sub in subchannels)
    retry_at = min(
        (
            sub.retry_at
            for sub in subchannels
            if sub.state is _S.TRANSIENT_FAILURE and sub.retry_at > now
        ),
        default=math.inf,
    )
    return Pick(failure=reasons, retry_at=retry_at)


class LoadBalancer(abc.ABC):
    """A load balancing policy over the subchannels of one channel (see the module doc)."""

    def __init__(self) -> None:
        self._subchannels: tuple[SubchannelHandle, ...] = ()

    @property
    def subchannels(self) -> tuple[SubchannelHandle, ...]:
        """The subchannels balanced over, in the balancer's order."""
        return self._subchannels

    @property
    def state(self) -> ConnectivityState:
        """The channel's connectivity state, as this balancer sees it."""
        return aggregate_state(sub.state for sub in self._subchannels)

    @abc.abstractmethod
    def update_subchannels(self, subchannels: Sequence[SubchannelHandle], now: float) -> None:
        """The resolver's new list (a subchannel per address, in its order; never empty)."""

    @abc.abstractmethod
    def subchannel_changed(self, subchannel: SubchannelHandle, now: float) -> None:
        """``subchannel`` entered a new state (its ``state`` says which)."""

    @abc.abstractmethod
    def exit_idle(self, now: float) -> None:
        """Start connecting, if idle (``try_to_connect``, ``channel_ready``, a call)."""

    @abc.abstractmethod
    def pick(self, now: float) -> Pick:
        """Where one call goes now (may start connecting, as :meth:`exit_idle`)."""


class LoadBalancingConfig(abc.ABC):
    """Names a balancer and its settings; makes one :class:`LoadBalancer` per channel."""

    #: The policy's name in a service config's ``loadBalancingConfig``.
    name: ClassVar[str]

    @abc.abstractmethod
    def build(self) -> LoadBalancer:
        """A new balancer for one channel."""

    @classmethod
    @abc.abstractmethod
    def from_json(cls, config: Mapping[str, Any]) -> LoadBalancingConfig:
        """The config from its JSON object in a service config (``{}`` for defaults)."""


_policies: dict[str, Callable[[Mapping[str, Any]], LoadBalancingConfig]] = {}


def register_load_balancer(name: str, from_json: Callable[[Mapping[str, Any]], Any]) -> None:
    """Make the policy ``name`` known; ``from_json`` reads its config (``{}``: defaults).

    ``from_json`` returns a :class:`LoadBalancingConfig`. The built-in
    ``pick_first`` and ``round_robin`` are registered this way.
    """
    _policies[name] = from_json


def load_balancing_config(
    value: str | LoadBalancingConfig | Sequence[Mapping[str, Mapping[str, Any]]],
) -> LoadBalancingConfig:
    """The config ``value`` names: a policy name, a config, or a ``loadBalancingConfig`` list.

    A list (the service config's ``[{"round_robin": {}}, ...]``) gives the
    first policy that is registered. Raises :class:`ValueError` for an
    unknown name or a list with no known policy.
    """
    if isinstance(value, LoadBalancingConfig):
        return value
    if isinstance(value, str):
        if value not in _policies:
            raise ValueError(
                f"unknown load balancing policy {value!r} (known: {', '.join(sorted(_policies))})"
            )
        return _policies[value]({})
    for entry in value:
        if len(entry) != 1:
            raise ValueError(f"a loadBalancingConfig entry names one policy, not {entry!r}")
        ((name, config),) = entry.items()
        if name in _policies:
            return _policies[name](config)
    raise ValueError(f"no known load balancing policy in {list(value)!r}")
