"""ServicerContext.auth_context / peer_identities: who the client is under mutual TLS."""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme

from puregrpc.client import Channel
from puregrpc.server import Server, ServicerContext
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub


class WhoAmI(EchoServicer):
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, list[bytes]], list[bytes] | None, str | None]] = []

    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        self.seen.append(
            (context.auth_context(), context.peer_identities(), context.peer_identity_key())
        )
        return EchoReply()


def _server_tls(ca: trustme.CA, *, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _call(server: Server, tls: ssl.SSLContext | None) -> None:
    async with server.listening("127.0.0.1", 0):
        target = f"127.0.0.1:{server.ports[0]}"
        async with Channel(target, ssl_context=tls) as channel:
            with trio.fail_after(10):
                await EchoStub(channel).Unary(EchoRequest())


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def test_mutual_tls_names_the_client_by_its_certificate(ca: trustme.CA) -> None:
    service = WhoAmI()
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    ca.issue_cert("alice@example.com", "alice.example", common_name="alice").configure_cert(
        client_tls
    )
    await _call(
        Server([service], ssl_context=_server_tls(ca, require_client_cert=True)), client_tls
    )
    [(auth, identities, key)] = service.seen
    assert auth["transport_security_type"] == [b"ssl"]
    assert auth["x509_common_name"] == [b"alice"]
    assert auth["x509_subject_alternative_name"] == [b"alice@example.com", b"alice.example"]
    assert auth["x509_pem_cert"][0].startswith(b"-----BEGIN CERTIFICATE-----")
    assert key == "x509_subject_alternative_name"
    assert identities == [b"alice@example.com", b"alice.example"]


async def test_plain_tls_and_cleartext_have_no_identity(ca: trustme.CA) -> None:
    service = WhoAmI()
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    await _call(
        Server([service], ssl_context=_server_tls(ca, require_client_cert=False)), client_tls
    )
    await _call(Server([service]), None)
    (tls_auth, tls_ids, tls_key), (clear_auth, clear_ids, clear_key) = service.seen
    assert tls_auth == {"transport_security_type": [b"ssl"]}
    assert (tls_ids, tls_key) == (None, None)
    assert clear_auth == {"transport_security_type": [b"insecure"]}
    assert (clear_ids, clear_key) == (None, None)
