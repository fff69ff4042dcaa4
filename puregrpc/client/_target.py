"""Channel targets and the addresses they name (grpc/grpc doc/naming.md).

A target is a URI whose scheme picks the resolver: ``dns:[//authority/]host[:port]``,
``ipv4:addr[:port],...``, ``ipv6:[addr]:port,...``, ``unix:path``,
``unix:///absolute/path``, ``unix-abstract:name``, or the scheme of a resolver
registered with :func:`~puregrpc.client.register_resolver`. A target whose
prefix is no known scheme (``localhost:50051``, ``127.0.0.1:50051``,
``[::1]:50051``) is a DNS name, as in every gRPC implementation; unlike
them, puregrpc wants the port of such a plain target written out (a missing
port is more often a slip than a wish for 443), while ``dns:host`` without
a port means 443 as naming.md says.

This module only reads text: :func:`parse_target` splits a target into
scheme, authority and endpoint, and the ``parse_*`` helpers turn the
endpoints of the built-in schemes into :class:`Address` values. Every
malformed target raises :class:`ValueError` naming the target and what is
wrong with it, when the channel is made, not when the first call fails.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

#: The port of ``dns:``, ``ipv4:`` and ``ipv6:`` addresses written without one.
DEFAULT_PORT = 443

#: An RFC 3986 scheme: a letter, then letters, digits, ``+``, ``-``, ``.``.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")

#: How an address is reached.
AddressKind = Literal["tcp", "unix", "unix-abstract"]


@dataclass(frozen=True, slots=True)
class Address:
    """One place a server listens: a TCP host and port, or a Unix socket.

    ``Address("127.0.0.1", 50051)``, ``Address("::1", 50051)`` (no
    brackets), ``Address("/run/app.sock", kind="unix")``,
    ``Address("app", kind="unix-abstract")`` (the name without its leading
    NUL byte). ``str()`` gives the form errors and logs use:
    ``127.0.0.1:50051``, ``[::1]:50051``, ``unix:/run/app.sock``,
    ``unix-abstract:app``.
    """

    #: The IP address (or host name) of a TCP address; the path or the
    #: abstract name of a Unix one.
    host: str
    #: The TCP port (0 for Unix sockets).
    port: int = 0
    #: ``"tcp"``, ``"unix"`` or ``"unix-abstract"``.
    kind: AddressKind = "tcp"

    def __str__(self) -> str:
        if self.kind == "tcp":
            return f"{_bracketed(self.host)}:{self.port}"
        return f"{self.kind}:{self.host}"

    @property
    def socket_path(self) -> str:
        """The name to ``connect()`` a Unix socket to (abstract names get their NUL)."""
        return "\0" + self.host if self.kind == "unix-abstract" else self.host


@dataclass(frozen=True, slots=True)
class Target:
    """A channel target split into its URI parts (see :func:`parse_target`)."""

    #: The target as the application wrote it.
    text: str
    #: The resolver's scheme: ``"dns"`` for targets without a known one.
    scheme: str
    #: The URI authority (``//authority/``), ``""`` if none.
    authority: str
    #: What the resolver resolves: ``host:port``, an address list, a path.
    endpoint: str


def parse_target(target: str, schemes: frozenset[str] | None = None) -> Target:
    """Split ``target`` into scheme, authority and endpoint (doc/naming.md).

    ``schemes`` are the schemes that resolvers are registered for (by
    default the built-in ones); a target starting with anything else is a
    DNS name, ``dns`` its scheme and the whole text its endpoint. Only the
    URI shape is checked here; the resolver of the scheme checks the
    endpoint when the channel is made.
    """
    known = schemes if schemes is not None else BUILTIN_SCHEMES
    if not target:
        raise ValueError("the target is empty (expected host:port or scheme:...)")
    scheme, colon, rest = target.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme) or scheme.lower() not in known:
        return Target(text=target, scheme="dns", authority="", endpoint=target)
    authority = ""
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        if not slash:
            raise ValueError(
                f"target {target!r}: expected {scheme}://authority/endpoint "
                f"(or {scheme}:///endpoint with no authority)"
            )
        if scheme.lower() == "unix":
            # unix://absolute_path: the path keeps its own leading slash.
            rest = "/" + rest
    return Target(text=target, scheme=scheme.lower(), authority=authority, endpoint=rest)


#: The schemes puregrpc resolves itself.
BUILTIN_SCHEMES = frozenset({"dns", "ipv4", "ipv6", "unix", "unix-abstract"})


def split_host_port(target: str, text: str, *, default_port: int | None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (port optional when ``default_port`` is given)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"target {target!r}: {text!r} has no closing ']'")
        if rest and not rest.startswith(":"):
            raise ValueError(f"target {target!r}: expected [address]:port, got {text!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ValueError(
            f"target {target!r}: an IPv6 address with a port goes in brackets: [address]:port"
        )
    else:
        host, port_text = text, None
    if not host:
        raise ValueError(f"target {target!r} has no host")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"target {target!r} has no port (expected host:port)")
        return host, default_port
    return host, _port(target, port_text)


def parse_dns_endpoint(target: Target) -> tuple[str, int]:
    """The host and port a ``dns`` target names; a plain target needs its port."""
    if target.authority:
        raise ValueError(
            f"target {target.text!r}: a DNS server in the authority "
            f"({target.authority!r}) is not supported; write dns:///host:port"
        )
    plain = target.endpoint == target.text
    return split_host_port(
        target.text, target.endpoint, default_port=None if plain else DEFAULT_PORT
    )


def parse_ip_list(target: Target) -> list[Address]:
    """The addresses of ``ipv4:a[:port],b[:port]`` or ``ipv6:[a]:port,b`` (port default 443)."""
    _no_authority(target)
    if not target.endpoint:
        raise ValueError(f"target {target.text!r} lists no address")
    version = 4 if target.scheme == "ipv4" else 6
    addresses = []
    for item in target.endpoint.split(","):
        if version == 6 and not item.startswith("["):
            host, port = item, DEFAULT_PORT  # a bare IPv6 address has no port
        else:
            host, port = split_host_port(target.text, item, default_port=DEFAULT_PORT)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"target {target.text!r}: {host!r} is not an IPv{version} address"
            ) from None
        if ip.version != version:
            raise ValueError(f"target {target.text!r}: {host!r} is not an IPv{version} address")
        addresses.append(Address(str(ip), port))
    return addresses


def parse_unix(target: Target) -> Address:
    """The socket of ``unix:path``, ``unix:///abs/path`` or ``unix-abstract:name``."""
    if target.scheme == "unix":
        if target.authority:
            raise ValueError(
                f"target {target.text!r}: unix://path must be absolute (unix:///path), "
                f"or write unix:relative/path"
            )
        if not target.endpoint or target.endpoint == "/":
            raise ValueError(f"target {target.text!r} has no socket path")
        return Address(target.endpoint, kind="unix")
    _no_authority(target)
    if not target.endpoint:
        raise ValueError(f"target {target.text!r} has no abstract socket name")
    if "\0" in target.endpoint:
        raise ValueError(f"target {target.text!r}: an abstract socket name has no NUL bytes")
    return Address(target.endpoint, kind="unix-abstract")


def is_ip_address(host: str) -> bool:
    """True if ``host`` is an IPv4 or IPv6 literal (no lookup needed)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _port(target: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"target {target!r} has an invalid port {text!r}")
    return int(text)


def _no_authority(target: Target) -> None:
    if target.authority:
        raise ValueError(
            f"target {target.text!r}: {target.scheme}: takes no authority ({target.authority!r})"
        )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
