"""TLS for the service: server contexts, and mutual TLS with certificate identities.

With a client CA (``serve --client-ca PEM``) the server asks every client
for a certificate signed by that CA. puregrpc's server does not hand a
connection's certificate to handlers, so for mutual TLS the service accepts
connections itself (:func:`mutual_tls_handler`): it runs the TLS handshake,
reads the client's certificate, records its identity in
:class:`~.authentication.PeerIdentities` under a peer name unique among
open connections, and hands the finished TLS stream to
:meth:`puregrpc.server.Server.handle_stream` (which then skips the
handshake). The identity is forgotten when the connection ends.

A certificate's user id is its subject common name, or else its first
subject alternative name (URI, e-mail, DNS name, in that order of
preference). A client without a certificate may still authenticate with a
bearer token, when tokens are configured too.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from puregrpc.server import Server

from .authentication import PeerIdentities, peer_name
from .identity import ADMIN_ROLE, Identity

__all__ = ["certificate_identity", "certificate_user", "mutual_tls_handler", "server_ssl_context"]

logger = logging.getLogger("puregrpc_streaming.tls")

#: Seconds a client gets to finish the TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
_SAN_PREFERENCE = ("URI", "email", "DNS")


def server_ssl_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context for ``cert``/``key``; with ``client_ca``, asking for client certificates.

    Client certificates are optional at the TLS level (``CERT_OPTIONAL``):
    one that is presented must verify against ``client_ca``, and a client
    without one is refused by the service unless it sends a bearer token.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load client CA {client_ca}: {exc}") from exc
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def certificate_user(certificate: dict[str, Any]) -> str | None:
    """The user id of a certificate (``SSLSocket.getpeercert()`` form), or ``None``."""
    for rdn in certificate.get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and value:
                return str(value)
    alternatives = certificate.get("subjectAltName", ())
    for kind in _SAN_PREFERENCE:
        for name, value in alternatives:
            if name == kind and value:
                return str(value)
    return None


def certificate_identity(certificate: dict[str, Any], admins: frozenset[str]) -> Identity | None:
    """The :class:`Identity` of a verified client certificate (``admins`` get role admin)."""
    user = certificate_user(certificate)
    if user is None:
        return None
    identity = Identity(user_id=user, source="certificate")
    if user in admins:
        identity = replace(identity, roles=frozenset({ADMIN_ROLE}))
    return identity


async def _serve_connection(
    server: Server,
    stream: trio.SocketStream,
    context: ssl.SSLContext,
    peers: PeerIdentities,
    admins: frozenset[str],
) -> None:
    try:
        peer = peer_name(stream)
    except OSError:
        await trio.aclose_forcefully(stream)
        return
    tls = trio.SSLStream(stream, context, server_side=True)
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            await tls.do_handshake()
    except (trio.BrokenResourceError, trio.TooSlowError, OSError) as exc:
        logger.info("TLS handshake with %s failed: %r", peer, exc)
        await trio.aclose_forcefully(stream)
        return
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    certificate = tls.getpeercert()
    identity = certificate_identity(certificate, admins) if certificate else None
    if certificate and identity is None:
        logger.info("client certificate of %s names no user (no CN, no SAN)", peer)
    if identity is not None:
        peers.add(peer, identity)
    try:
        await server.handle_stream(tls, peer=peer)
    finally:
        peers.remove(peer)


def mutual_tls_handler(
    server: Server,
    *,
    context: ssl.SSLContext,
    peers: PeerIdentities,
    admins: frozenset[str] = frozenset(),
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """What serves one accepted connection with mutual TLS (for :func:`.listening.accept_loop`).

    It runs the handshake, settles the client certificate's identity and
    hands the TLS stream to ``server``, which must have been built with the
    same ``context`` (it sets ALPN h2 on it).
    """

    async def handle(stream: trio.SocketStream) -> None:
        await _serve_connection(server, stream, context, peers, admins)

    return handle
