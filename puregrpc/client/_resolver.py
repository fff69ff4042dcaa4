"""Name resolvers: from a target to the addresses of its servers (grpc/grpc doc/naming.md).

Theory of operation. A channel makes one :class:`Resolver` from its target,
through the factory registered for the target's scheme
(:func:`register_resolver`; the built-in schemes are ``dns``, ``ipv4``,
``ipv6``, ``unix`` and ``unix-abstract``). When the channel first leaves
IDLE (a call, ``try_to_connect``), it starts :meth:`Resolver.run` in its
nursery, giving it a :class:`ResolverListener`; the resolver reports each
address list it finds (and each failure to find one) to the listener, for as
long as the channel lives, and is cancelled when the channel closes::

    Channel ── start ──▶ Resolver.run(listener) ── addresses_resolved([...]) ──▶ balancer
       │                      ▲                 ╰─ resolution_failed(reason) ──▶ calls wait
       ╰── a connection failed: request_resolution() (a hint, rate limited)

Two shapes of resolver come with puregrpc:

* :class:`StaticResolver` holds a list the program sets (and may change
  while calls run, :meth:`StaticResolver.set_addresses`); ``ipv4:``,
  ``ipv6:``, ``unix:`` and IP-literal targets use one.
* :class:`PollingResolver` looks the name up when asked: once at the start,
  again on :meth:`~Resolver.request_resolution` (a connection failed) but
  never sooner than ``min_interval`` after the last look-up, and again after
  a failed look-up once its backoff is over: never a busy loop. When it
  looks again is a plain object told the time (:class:`ResolutionSchedule`).
  :class:`~puregrpc.client.DnsResolver` is one.

A resolver of one's own subclasses either, or :class:`Resolver` itself, and
is registered for a scheme (``register_resolver("myscheme", factory)``), or
handed to one channel (``Channel(target, resolver=...)``).
"""

from __future__ import annotations

import abc
import logging
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import trio

from ._backoff import Backoff, BackoffPolicy
from ._target import BUILTIN_SCHEMES, Address, Target

logger = logging.getLogger("puregrpc.client")

#: The least time between two look-ups of a name that is found (C-core's
#: ``grpc.dns_min_time_between_resolutions_ms`` is 30 s too).
MIN_RESOLUTION_INTERVAL = 30.0


class ResolverListener(Protocol):
    """Where a resolver reports what it found (the channel, for its balancer)."""

    def addresses_resolved(self, addresses: Sequence[Address]) -> None:
        """The target's addresses now, in the order the resolver prefers them."""
        ...

    def resolution_failed(self, reason: str) -> None:
        """The latest look-up failed, because of ``reason`` (earlier addresses stay in use)."""
        ...


class Resolver(abc.ABC):
    """Finds the addresses of one channel's target, now and as they change.

    One resolver serves one channel. :meth:`run` is started in the
    channel's nursery when the channel first leaves IDLE and cancelled when
    it closes; it reports to its listener, and may return once nothing more
    will change.
    """

    @abc.abstractmethod
    async def run(self, listener: ResolverListener) -> None:
        """Report the target's addresses (or failures) to ``listener`` until cancelled."""

    def request_resolution(self) -> None:  # noqa: B027 (an optional hook: the default ignores it)
        """A connection to one of the addresses failed: look the name up again soon.

        A hint, never waited for: a resolver that only knows one answer
        ignores it (the default); a polling one rate-limits it.
        """


class StaticResolver(Resolver):
    """A resolver whose address list the program sets, and may change at any time.

    ``StaticResolver([Address("127.0.0.1", 50051), ...])``; a channel using
    it (``Channel("name", resolver=resolver)``) balances over the list, and
    moves to a new one as soon as :meth:`set_addresses` is called: new
    addresses get subchannels, removed ones are closed once their calls end.
    """

    def __init__(self, addresses: Iterable[Address]) -> None:
        self._addresses = tuple(addresses)
        #: The channels running on this resolver (one may serve several).
        self._listeners: list[ResolverListener] = []

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The current list."""
        return self._addresses

    def set_addresses(self, addresses: Iterable[Address]) -> None:
        """Replace the list; channels running on it switch before this returns (call from trio)."""
        self._addresses = tuple(addresses)
        for listener in list(self._listeners):
            self._publish(listener)

    async def run(self, listener: ResolverListener) -> None:
        """Report the list, then every new one (from :meth:`set_addresses`), until cancelled."""
        self._listeners.append(listener)
        try:
            self._publish(listener)
            await trio.sleep_forever()
        finally:
            self._listeners.remove(listener)

    def _publish(self, listener: ResolverListener) -> None:
        if self._addresses:
            listener.addresses_resolved(self._addresses)
        else:
            listener.resolution_failed("the resolver's address list is empty")


class ResolutionSchedule:
    """When a polling resolver looks its name up next (a plain object, told the time).

    The first look-up is due at once. After one that found addresses, the
    next waits for a request (:meth:`request`) and comes no sooner than
    ``min_interval`` after it; after a failed one, the next comes when the
    backoff says, request or not (requests do not hurry it).
    """

    def __init__(
        self,
        min_interval: float = MIN_RESOLUTION_INTERVAL,
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.min_interval = min_interval
        self._backoff = Backoff(backoff if backoff is not None else BackoffPolicy(), rng)
        self._requested = True
        self._earliest = -math.inf
        self._retry_at: float | None = None

    def request(self) -> None:
        """Someone wants a fresh look-up (a connection failed)."""
        self._requested = True

    def resolved(self, now: float, *, ok: bool) -> None:
        """A look-up ended at ``now``: found addresses (``ok``) or failed."""
        self._requested = False
        if ok:
            self._backoff.reset()
            self._retry_at = None
            self._earliest = now + self.min_interval
        else:
            self._retry_at = now + self._backoff.next_delay()

    def due(self) -> float:
        """When the next look-up should start (``math.inf``: not until a request)."""
        if self._retry_at is not None:
            return self._retry_at
        return self._earliest if self._requested else math.inf


class PollingResolver(Resolver):
    """A resolver that looks its name up once, then again when asked (rate limited).

    Subclasses implement :meth:`resolve`; raising :class:`OSError` (or any
    exception) is a failed look-up, retried with ``backoff``. See
    :class:`ResolutionSchedule` for when look-ups happen.
    """

    def __init__(
        self,
        *,
        min_interval: float = MIN_RESOLUTION_INTERVAL,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        self.schedule = ResolutionSchedule(min_interval, backoff)
        self._wake = trio.Event()
        #: How many look-ups have started (for tests and logs).
        self.resolutions = 0

    @abc.abstractmethod
    async def resolve(self) -> Sequence[Address]:
        """Look the name up once: its addresses, preferred first; raise if it cannot."""

    def request_resolution(self) -> None:
        """Ask for a new look-up: it comes when the schedule allows."""
        self.schedule.request()
        self._wake.set()

    async def run(self, listener: ResolverListener) -> None:
        """Look up, report, and wait for the schedule, until cancelled."""
        while True:
            due = self.schedule.due()
            while due > trio.current_time():
                with trio.move_on_at(due):
                    await self._wake.wait()
                if self._wake.is_set():
                    self._wake = trio.Event()
                due = self.schedule.due()
            self.resolutions += 1
            try:
                addresses = list(await self.resolve())
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                if not isinstance(exc, OSError):
                    logger.warning("resolver %r failed", self, exc_info=True)
                    reason = f"{type(exc).__name__}: {reason}"
                self.schedule.resolved(trio.current_time(), ok=False)
                listener.resolution_failed(reason)
                continue
            if not addresses:
                self.schedule.resolved(trio.current_time(), ok=False)
                listener.resolution_failed("the name has no addresses")
                continue
            self.schedule.resolved(trio.current_time(), ok=True)
            listener.addresses_resolved(addresses)


#: Makes the resolver of one channel from its parsed target; raises
#: :class:`ValueError` for a target it cannot read.
ResolverFactory = Callable[[Target], Resolver]

_SCHEME_NAME = re.compile(r"[a-z][a-z0-9+.\-]*")
_registered: dict[str, ResolverFactory] = {}


def register_resolver(scheme: str, factory: ResolverFactory) -> None:
    """Resolve targets ``scheme:...`` with resolvers that ``factory`` makes.

    ``factory`` gets the :class:`Target` (scheme, authority, endpoint) of
    each new channel and returns its resolver, or raises
    :class:`ValueError` if the target is malformed. Registering a built-in
    scheme (``dns``...) replaces puregrpc's resolver for it; registering
    a scheme again replaces the earlier factory. Channels made before keep
    theirs.
    """
    if not _SCHEME_NAME.fullmatch(scheme):
        raise ValueError(f"{scheme!r} is not a URI scheme (lower case: letters, digits, +-.)")
    _registered[scheme] = factory


def unregister_resolver(scheme: str) -> None:
    """Forget the factory registered for ``scheme`` (a built-in one applies again)."""
    _registered.pop(scheme, None)


def registered_schemes() -> frozenset[str]:
    """The schemes a target may start with: the built-in ones and those registered."""
    return BUILTIN_SCHEMES | frozenset(_registered)


def registered_factory(scheme: str) -> ResolverFactory | None:
    """The factory registered for ``scheme``, if the program registered one."""
    return _registered.get(scheme)
