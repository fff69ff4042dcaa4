"""The channel's router: resolver, subchannels and balancer, and the one place calls are picked.

Theory of operation. A :class:`CallRouter` ties together what a channel
needs to send a call somewhere (grpc/grpc doc/naming.md,
doc/load-balancing.md, doc/connectivity-semantics-and-api.md)::

    Resolver ── addresses ──▶ CallRouter ── one Subchannel per address
                                  │               │ state changes
                                  ▼               ▼
                             LoadBalancer ◀───────╯
                                  │ Pick
    call ── pick(wait_for_ready) ─╯──▶ a READY connection, or wait, or UNAVAILABLE

The router starts the resolver when the channel first leaves IDLE (a call,
``try_to_connect``, ``channel_ready``). Each address list it hears makes a
subchannel for every new address (the same address keeps its subchannel,
connection and backoff) and retires the subchannels of addresses no longer
listed, once their calls end. It tells the balancer the list, and every
state change of a subchannel; it asks the resolver to look again when a
connection fails or closes (the resolver rate-limits that).

:meth:`CallRouter.pick` is where every call, and ``channel_ready``, gets its
connection: it asks the balancer for a :class:`~._balancer.Pick` and acts on
it; waiting calls park until the next change of anything (a subchannel's
state, the addresses, a resolution failure) or until the pick's
``retry_at``. The retry layer (:mod:`._retry_stream`) re-enters here for
each attempt.

With health checking (gRFC A17, :mod:`._health_check`), the balancer sees
each subchannel through a :class:`~._health_check.HealthCheckedSubchannel`,
READY only while the server says SERVING; a pick maps it back.

The channel's connectivity state is the router's: IDLE before the first
call; CONNECTING while the name is first resolved; TRANSIENT_FAILURE if
resolution failed with no addresses known (or none were found); then the
balancer's state; SHUTDOWN once closed. It may move between any two states
(several subchannels aggregate), except out of SHUTDOWN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import trio

from ..wire import RpcError, StatusCode
from ._backoff import BackoffPolicy
from ._balancer import LoadBalancer, Pick, SubchannelHandle
from ._connectivity import Connectivity, ConnectivityState
from ._health_check import HealthCheckedSubchannel
from ._resolver import Resolver
from ._subchannel import Spawner, Subchannel, SubchannelConnection
from ._target import Address

logger = logging.getLogger("puregrpc.client")

_S = ConnectivityState

#: Makes the subchannel of one address (the channel's settings bound in).
SubchannelFactory = Callable[[Address, "CallRouter"], Subchannel]

#: The shortest wait of a call for a backoff to end (no busy loop on a stale time).
_MIN_WAIT = 0.001


class CallRouter:
    """Resolves a channel's target, keeps its subchannels, and picks one per call.

    ``target`` names the channel in errors; ``resolver`` finds its
    addresses; ``balancer`` chooses among their subchannels, which
    ``make_subchannel`` makes; ``spawn`` starts tasks in the channel's
    nursery. ``health_check_service`` (not None) health-checks every
    subchannel for that service name, retrying failed watches with
    ``health_backoff``.
    """

    def __init__(
        self,
        target: str,
        *,
        resolver: Resolver,
        balancer: LoadBalancer,
        make_subchannel: SubchannelFactory,
        spawn: Spawner,
        health_check_service: str | None = None,
        health_backoff: BackoffPolicy | None = None,
    ) -> None:
        self.target = target
        self._resolver = resolver
        self._balancer = balancer
        self._make_subchannel = make_subchannel
        self._spawn = spawn
        #: The channel's connectivity state (aggregated: any move but out of SHUTDOWN).
        self.connectivity = Connectivity(target, strict=False)
        self._subchannels: dict[Address, Subchannel] = {}
        self._resolving = False
        #: The resolver reported addresses at least once.
        self._resolved = False
        #: Why the last resolution failed (None: it did not).
        self._resolution_error: str | None = None
        self._closed = False
        #: Calls waiting for a pick park here; every change unparks them.
        self._changes = trio.lowlevel.ParkingLot()
        self._health_service = health_check_service
        self._health_backoff = health_backoff or BackoffPolicy()
        #: The balancer's view of each subchannel, when health checking.
        self._checked: dict[Address, HealthCheckedSubchannel] = {}

    @property
    def subchannels(self) -> list[Subchannel]:
        """The subchannels, one per address, in the resolver's order."""
        return list(self._subchannels.values())

    @property
    def balancer(self) -> LoadBalancer:
        """The balancer in use."""
        return self._balancer

    def set_balancer(self, balancer: LoadBalancer) -> None:
        """Use ``balancer`` from now on (a new service config), with the current subchannels."""
        self._balancer = balancer
        if self._subchannels:
            balancer.update_subchannels(self._balanced(), trio.current_time())
        self._changed()

    # ------------------------------------------------------------ picking

    def exit_idle(self) -> None:
        """Start resolving (the first time) and let the balancer connect."""
        if self._closed:
            return
        if not self._resolving:
            self._spawn(self._resolver.run, self)
            self._resolving = True
            self._update_state()
        self._balancer.exit_idle(trio.current_time())
        self._update_state()

    def pick_now(self) -> SubchannelConnection | None:
        """A call's READY connection if the balancer has one at once, else None (``pick`` waits).

        The common case of a call on a connected channel, without a
        checkpoint: its opener needs no deadline scope for it.
        """
        if self._closed:
            return None
        self.exit_idle()
        subchannel = _connected_subchannel(self._pick(trio.current_time()))
        return None if subchannel is None else subchannel.ready_connection()

    async def pick(self, wait_for_ready: bool, *, for_call: bool = True) -> SubchannelConnection:
        """The connection a call starts on: picked by the balancer, READY.

        Waits while the name resolves or a connection is being made; when
        the balancer fails the pick (no address reachable, or the name did
        not resolve), raises :class:`RpcError` UNAVAILABLE naming the target,
        unless ``wait_for_ready``, which waits on (bounded by the caller's
        deadline). ``for_call``: a call starts on it (keepalive may ping
        first); ``channel_ready`` only waits.
        """
        while True:
            if self._closed:
                raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
            self.exit_idle()
            now = trio.current_time()
            picked = self._pick(now)
            subchannel = _connected_subchannel(picked)
            if subchannel is not None:
                was_ready = subchannel.state is _S.READY
                current = subchannel.ready_connection(for_call=for_call)
                if current is not None:
                    return current
                if was_ready:
                    continue  # it just left READY (the balancer heard): pick again
                # A policy that picked a subchannel that is not READY: wait
                # for a change rather than spin.
                logger.warning("%s: the balancer picked %r, not READY", self.target, subchannel)
            if picked.failure is not None and not wait_for_ready:
                raise RpcError(StatusCode.UNAVAILABLE, picked.failure)
            with trio.move_on_at(max(picked.retry_at, now + _MIN_WAIT)):
                await self._changes.park()

    async def wait_until_ready(self) -> None:
        """Connect if need be and wait for READY (``channel_ready``): no call, no pick.

        Retries through the backoffs for as long as the caller's scope
        allows; raises :class:`RpcError` UNAVAILABLE once the channel closes.
        """
        while True:
            if self._closed:
                raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
            self.exit_idle()
            if self.connectivity.state is _S.READY:
                return
            now = trio.current_time()
            retry_at = min(
                (
                    sub.retry_at
                    for sub in self._subchannels.values()
                    if sub.state is _S.TRANSIENT_FAILURE and sub.retry_at > now
                ),
                default=math.inf,
            )
            with trio.move_on_at(max(retry_at, now + _MIN_WAIT)):
                await self._changes.park()

    def _pick(self, now: float) -> Pick:
        """The balancer's pick, or the resolver's failure while there are no addresses."""
        if not self._subchannels:
            if self._resolution_error is not None:
                return Pick(failure=f"cannot resolve {self.target}: {self._resolution_error}")
            return Pick()  # resolving
        picked = self._balancer.pick(now)
        self._update_state()
        if picked.failure is None:
            return picked
        failure = picked.failure
        prefix = f"{self.target}: "
        text = f"{failure}" if failure.startswith(prefix) else f"{prefix}{failure}"
        return Pick(failure=f"cannot connect to {text}", retry_at=picked.retry_at)

    # ------------------------------------------------- resolver listener

    def addresses_resolved(self, addresses: Sequence[Address]) -> None:
        """New addresses: subchannels for new ones, old ones retired; the balancer told."""
        if self._closed:
            return
        self._resolved = True
        self._resolution_error = None
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            self.resolution_failed("the resolver found no addresses")
            return
        kept: dict[Address, Subchannel] = {}
        for address in wanted:
            subchannel = self._subchannels.pop(address, None)
            kept[address] = (
                subchannel if subchannel is not None else self._make_subchannel(address, self)
            )
        retired, self._subchannels = self._subchannels, kept
        for subchannel in retired.values():
            logger.info("%s: address %s removed", self.target, subchannel.name)
            checked = self._checked.pop(subchannel.address, None)
            if checked is not None:
                checked.stop()  # its Watch call would keep the connection in use
            self._spawn(self._retire, subchannel)
        self._balancer.update_subchannels(self._balanced(), trio.current_time())
        self._changed()

    def resolution_failed(self, reason: str) -> None:
        """The resolver could not resolve: known addresses stay in use; else calls fail or wait."""
        if self._closed:
            return
        logger.info("%s: resolution failed: %s", self.target, reason)
        self._resolution_error = reason
        if not self._subchannels:
            self._changed()

    async def _retire(self, subchannel: Subchannel) -> None:
        await subchannel.close(wait_for_calls=True)

    # ------------------------------------------------- subchannel events

    def subchannel_changed(self, subchannel: Subchannel, old: ConnectivityState) -> None:
        """A subchannel changed state: tell the balancer; failures ask for a new resolution."""
        if self._closed or self._subchannels.get(subchannel.address) is not subchannel:
            return  # retired, or the channel is closing
        new = subchannel.state
        if new is _S.TRANSIENT_FAILURE or (old is _S.READY and new is _S.IDLE):
            self._resolver.request_resolution()
        checked = self._checked.get(subchannel.address)
        if checked is not None:
            checked.subchannel_changed()  # starts or stops its health watch
            self._balancer.subchannel_changed(checked, trio.current_time())
        else:
            self._balancer.subchannel_changed(subchannel, trio.current_time())
        self._changed()

    def _health_changed(self, checked: HealthCheckedSubchannel) -> None:
        """A subchannel's health changed: the balancer hears it as a change of state."""
        if self._closed or self._checked.get(checked.subchannel.address) is not checked:
            return
        self._balancer.subchannel_changed(checked, trio.current_time())
        self._changed()

    def _balanced(self) -> list[SubchannelHandle]:
        """What the balancer balances over: the subchannels, or their health-checked views."""
        if self._health_service is None:
            return list(self._subchannels.values())
        checked = self._checked
        for address, subchannel in self._subchannels.items():
            if address not in checked or checked[address].subchannel is not subchannel:
                checked[address] = HealthCheckedSubchannel(
                    subchannel,
                    self._health_service,
                    spawn=self._spawn,
                    on_change=self._health_changed,
                    backoff=self._health_backoff,
                )
        return [checked[address] for address in self._subchannels]

    # ----------------------------------------------------------- closing

    async def close(self) -> None:
        """SHUTDOWN: close every subchannel; calls still running fail UNAVAILABLE."""
        self._closed = True
        self.connectivity.move_to(_S.SHUTDOWN)
        self._changes.unpark_all()
        for checked in self._checked.values():
            checked.stop()
        self._checked = {}
        subchannels, self._subchannels = list(self._subchannels.values()), {}
        # Side by side: each drains its GOAWAY for up to a second (shielded).
        async with trio.open_nursery() as nursery:
            for subchannel in subchannels:
                nursery.start_soon(subchannel.close)

    # ------------------------------------------------------------- state

    def _changed(self) -> None:
        self._update_state()
        self._changes.unpark_all()

    def _update_state(self) -> None:
        if self._closed:
            return
        if not self._resolving:
            state = _S.IDLE
        elif not self._subchannels:
            state = _S.CONNECTING if self._resolution_error is None else _S.TRANSIENT_FAILURE
        else:
            state = self._balancer.state
        self.connectivity.move_to(state)


def _connected_subchannel(picked: Pick) -> Subchannel | None:
    """The subchannel a pick named, unwrapped from its health check; None if it named none."""
    subchannel = picked.subchannel
    if subchannel is None:
        return None
    if isinstance(subchannel, HealthCheckedSubchannel):
        subchannel = subchannel.subchannel
    assert isinstance(subchannel, Subchannel)
    return subchannel
