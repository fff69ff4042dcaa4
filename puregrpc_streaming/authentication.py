"""Authenticating the service's callers: :class:`CallerInterceptor` and :func:`caller_of`.

The interceptor runs before every call of ``streaming.v1.StreamingService``
(health checks and reflection stay open) and settles who is calling:

1. a client certificate: when the server does mutual TLS, the connection's
   certificate identity (recorded by :mod:`.tls` in :class:`PeerIdentities`
   under the connection's peer name);
2. otherwise a bearer token in the ``authorization`` metadata, looked up in
   the token table with :func:`puregrpc.interceptors.bearer_tokens`
   (constant-time comparison);
3. otherwise, in open development mode (neither tokens nor a client CA
   configured), the anonymous caller of the call's connection: each
   accepted connection gets an id of its own (:func:`anonymous_connections`
   records it under the peer name, for as long as the connection is open),
   so two anonymous clients are two callers, and a connection that reuses
   a closed one's address and port is a new caller, not the old one. (A
   server that does not accept its connections through
   :func:`anonymous_connections` names them by peer name instead.) With
   authentication configured, the call ends UNAUTHENTICATED and its handler
   never runs.

Handlers read the result with :func:`caller_of`. puregrpc's
:class:`~puregrpc.interceptors.AuthInterceptor` cannot do this alone: its
authenticators see the metadata, not the connection the certificate came
on (see the report of issue #14 for the library change that would help).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from puregrpc import RpcError, StatusCode
from puregrpc.interceptors import bearer_tokens, identity_of
from puregrpc.server import ServerCall, ServerContinuation, ServicerContext

from .identity import ANONYMOUS, Identity, anonymous_on

__all__ = [
    "SERVICE_PATH",
    "CallerInterceptor",
    "PeerIdentities",
    "anonymous_connections",
    "caller_of",
    "peer_name",
]

#: The service whose calls need a caller (health and reflection stay open).
SERVICE_PATH = "streaming.v1.StreamingService"
#: Where the caller is kept in ``context.state``.
_CALLER_KEY = "puregrpc_streaming.caller"


class PeerIdentities:
    """Certificate identities of the open mutual-TLS connections, by peer name.

    :mod:`.tls` adds a connection's identity before serving it and removes it
    when the connection ends, so a peer name (``ipv4:host:port``, unique
    among open connections) never maps to a closed connection's user.
    """

    def __init__(self) -> None:
        self._by_peer: dict[str, Identity] = {}

    def add(self, peer: str, identity: Identity) -> None:
        """Record the identity of the connection named ``peer``."""
        self._by_peer[peer] = identity

    def remove(self, peer: str) -> None:
        """Forget ``peer`` (its connection ended)."""
        self._by_peer.pop(peer, None)

    def get(self, peer: str) -> Identity | None:
        """The identity of ``peer``'s certificate, if it presented one."""
        return self._by_peer.get(peer)

    def __len__(self) -> int:
        """Connections with a certificate identity."""
        return len(self._by_peer)


def peer_name(stream: trio.SocketStream) -> str:
    """``ipv4:host:port`` / ``ipv6:[host]:port`` of an accepted connection (OSError if gone)."""
    address = stream.socket.getpeername()
    if stream.socket.family == socket.AF_INET6:
        return f"ipv6:[{address[0]}]:{address[1]}"
    return f"ipv4:{address[0]}:{address[1]}"


def anonymous_connections(
    handle: Callable[..., Awaitable[None]], connections: PeerIdentities
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """Wrap ``handle(stream, peer=...)`` (``Server.handle_stream``) for open development mode.

    Each accepted connection is recorded in ``connections``, under its peer
    name, as an anonymous caller with a random id of its own
    (:func:`~.identity.anonymous_on`) for as long as it is open.
    """

    async def serve(stream: trio.SocketStream) -> None:
        try:
            peer = peer_name(stream)
        except OSError:  # gone before we looked
            await trio.aclose_forcefully(stream)
            return
        connections.add(peer, anonymous_on(secrets.token_hex(8)))
        try:
            await handle(stream, peer=peer)
        finally:
            connections.remove(peer)

    return serve


def caller_of(context: ServicerContext) -> Identity:
    """The caller of this call (anonymous when nothing authenticated it).

    An identity left by puregrpc's own ``AuthInterceptor`` counts too (a
    plain value is taken as the user id), for servers that configure that
    one instead of :class:`CallerInterceptor`.
    """
    found = context.state.get(_CALLER_KEY)
    if isinstance(found, Identity):
        return found
    other = identity_of(context)
    if isinstance(other, Identity):
        return other
    if other is not None:
        return Identity(user_id=str(other), source="token")
    return ANONYMOUS


class CallerInterceptor:
    """Settles the caller of each call of the service (see the module docstring).

    ``tokens`` maps bearer tokens to identities; ``peers`` holds the
    certificate identities of mutual-TLS connections (``None``: no mutual
    TLS). With no tokens and no ``peers`` the server is in open
    development mode and every caller is anonymous: the one ``connections``
    holds for its connection (see :func:`anonymous_connections`), or else
    one named by the call's peer.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, Identity] | None = None,
        peers: PeerIdentities | None = None,
        connections: PeerIdentities | None = None,
    ) -> None:
        self._tokens = dict(tokens or {})
        self._peers = peers
        self._connections = connections
        self._bearer = bearer_tokens(self._tokens) if self._tokens else None

    @property
    def open_mode(self) -> bool:
        """True when nothing is checked: every caller is anonymous."""
        return self._bearer is None and self._peers is None

    def describe(self) -> str:
        """How callers are authenticated, for the server's first log line."""
        if self.open_mode:
            return (
                "open development mode: no --tokens and no --client-ca, so callers are "
                "anonymous, each connection a caller of its own (Chat takes a declared "
                "user-id; authorization still applies)"
            )
        ways = []
        if self._bearer is not None:
            ways.append(f"bearer tokens ({len(self._tokens)} known)")
        if self._peers is not None:
            ways.append("client certificates (mutual TLS)")
        return "callers authenticated by " + " and ".join(ways)

    def _wanted(self) -> str:
        ways = []
        if self._bearer is not None:
            ways.append("a bearer token in the 'authorization' metadata")
        if self._peers is not None:
            ways.append("a client certificate")
        return " or ".join(ways)

    async def intercept(self, call: ServerCall[Any, Any], proceed: ServerContinuation) -> None:
        """Find the caller, then run the call (or end it UNAUTHENTICATED)."""
        method = call.method
        if method.service != SERVICE_PATH:
            await proceed(call)
            return
        context = call.context
        identity: Identity | None = None
        if self._peers is not None:
            identity = self._peers.get(context.peer())
        if identity is None and self._bearer is not None:
            found = await self._bearer(call.metadata, method)
            if isinstance(found, Identity):
                identity = found
            elif "authorization" in call.metadata:
                raise RpcError(
                    StatusCode.UNAUTHENTICATED,
                    f"{method.path}: the bearer token in 'authorization' is not valid",
                )
        if identity is None:
            if not self.open_mode:
                raise RpcError(StatusCode.UNAUTHENTICATED, f"{method.path} needs {self._wanted()}")
            peer = context.peer()
            known = self._connections.get(peer) if self._connections is not None else None
            identity = known if known is not None else anonymous_on(f"peer {peer}")
        context.state[_CALLER_KEY] = identity
        await proceed(call)
