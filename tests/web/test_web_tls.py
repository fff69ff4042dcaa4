"""gRPC-Web over TLS: ALPN picks HTTP/2 or HTTP/1.1; without ALPN the first bytes do."""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme
from test_web_calls import Echo
from web_clients import H2Client, Http1Client

from puregrpc import StatusCode
from puregrpc.server import Server
from puregrpc.testing.protos import echo_pb2


@pytest.mark.parametrize("alpn", [["http/1.1"], ["h2"], None], ids=["http1", "h2", "no-alpn"])
async def test_web_calls_over_tls(alpn: list[str] | None) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    if alpn is not None:
        client_tls.set_alpn_protocols(alpn)
    request = echo_pb2.EchoRequest(message="secure").SerializeToString()
    async with Server([Echo()], ssl_context=server_tls).listening("127.0.0.1", 0) as server:
        with trio.fail_after(10):
            tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
            tls = trio.SSLStream(tcp, client_tls, server_hostname="127.0.0.1")
            await tls.do_handshake()
            assert tls.selected_alpn_protocol() == (alpn[0] if alpn else None)
            client = H2Client(tls) if alpn == ["h2"] else Http1Client(tls)
            if isinstance(client, H2Client):
                client.conn.initiate_connection()
                await client.flush()
            try:
                response = await client.call(
                    "Unary", request, metadata=[("origin", "https://127.0.0.1")]
                )
            finally:
                await tls.aclose()
    # Same origin over https: served, and the page may read the answer.
    assert response.final.code is StatusCode.OK
    assert echo_pb2.EchoReply.FromString(response.messages[0]).message == "secure"
