"""The resolvers of the built-in schemes, and the choice of a channel's resolver.

* ``dns:`` (and plain ``host:port``): :class:`DnsResolver`, every A and
  AAAA record of the name, from the system resolver (``getaddrinfo`` in a
  worker thread, through trio, so a slow DNS server never stalls the event
  loop). An IP literal (``127.0.0.1:50051``, ``[::1]:50051``) needs no
  look-up: a :class:`StaticResolver` of that one address.
* ``ipv4:``, ``ipv6:``, ``unix:``, ``unix-abstract:``: a
  :class:`StaticResolver` of the addresses written in the target.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import trio

from ._backoff import BackoffPolicy
from ._resolver import (
    MIN_RESOLUTION_INTERVAL,
    PollingResolver,
    Resolver,
    StaticResolver,
    registered_factory,
    registered_schemes,
)
from ._target import (
    Address,
    Target,
    is_ip_address,
    parse_dns_endpoint,
    parse_ip_list,
    parse_target,
    parse_unix,
)


class DnsResolver(PollingResolver):
    """Every A/AAAA address of ``host``, with ``port``, from the system resolver.

    Looked up when the channel first needs it, again when a connection
    fails (no sooner than ``min_interval`` seconds after the last look-up),
    and after a failed look-up with ``backoff``. The addresses keep the
    order ``getaddrinfo`` gives them (RFC 6724), duplicates dropped.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        min_interval: float = MIN_RESOLUTION_INTERVAL,
        backoff: BackoffPolicy | None = None,
    ) -> None:
        super().__init__(min_interval=min_interval, backoff=backoff)
        self.host = host
        self.port = port

    async def resolve(self) -> Sequence[Address]:
        """Ask the system resolver (in a thread); :class:`OSError` names the failure."""
        try:
            infos = await trio.socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {self.host!r}: {exc.strerror or exc}") from None
        addresses: dict[Address, None] = {}
        for family, _type, _proto, _name, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                addresses[Address(str(sockaddr[0]), self.port)] = None
        return list(addresses)

    def __repr__(self) -> str:
        return f"DnsResolver({self.host!r}, {self.port})"


def builtin_resolver(target: Target) -> Resolver:
    """The resolver of a target of a built-in scheme; :class:`ValueError` if malformed."""
    if target.scheme == "dns":
        host, port = parse_dns_endpoint(target)
        if is_ip_address(host):
            return StaticResolver([Address(host, port)])
        return DnsResolver(host, port)
    if target.scheme in ("ipv4", "ipv6"):
        return StaticResolver(parse_ip_list(target))
    return StaticResolver([parse_unix(target)])


def resolver_for(target: str) -> tuple[Target, Resolver]:
    """The parsed ``target`` and a new resolver for it; :class:`ValueError` if malformed."""
    parsed = parse_target(target, registered_schemes())
    factory = registered_factory(parsed.scheme)
    return parsed, (factory or builtin_resolver)(parsed)


def default_authority(target: Target) -> str:
    """The ``:authority`` a channel to ``target`` sends unless told otherwise.

    ``host:port`` of a DNS target as written (port 443 if none), the first
    address of an ``ipv4:``/``ipv6:`` list, ``localhost`` for Unix sockets,
    and the endpoint of other schemes (``localhost`` if it is empty).
    """
    if target.scheme == "dns":
        try:
            host, port = parse_dns_endpoint(target)
        except ValueError:  # a registered dns resolver reads more than ours
            return target.endpoint or "localhost"
        return str(Address(host, port))
    if target.scheme in ("ipv4", "ipv6"):
        return str(parse_ip_list(target)[0])
    if target.scheme in ("unix", "unix-abstract"):
        return "localhost"
    return target.endpoint or "localhost"
