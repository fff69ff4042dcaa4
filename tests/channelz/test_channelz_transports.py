"""Channelz's socket ends and security over TLS, Unix sockets and memory streams."""

from __future__ import annotations

import ssl
from pathlib import Path

import trio
import trustme
from channelz_support import CALLS, channelz_server, make_traffic

from puregrpc.channelz.protos import channelz_pb2 as pb
from puregrpc.channelz.protos.channelz_puregrpc import ChannelzStub
from puregrpc.client import Channel
from puregrpc.testing import serve_in_memory


async def test_tls_sockets_report_the_cipher_and_the_peer_certificate() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    server = channelz_server(server_tls)
    async with (
        server.listening("127.0.0.1", 0),
        Channel(f"127.0.0.1:{server.port}", ssl_context=client_tls) as channel,
    ):
        await make_traffic(channel)
        (client_side,) = channel.channelz().subchannels[0].sockets
        (server_side,) = server.channelz().sockets
        stub = ChannelzStub(channel)
        answer = await stub.GetSocket(pb.GetSocketRequest(socket_id=client_side.id), timeout=5)
    assert client_side.tls is not None and client_side.tls.cipher
    # The client sees the server's certificate; the server got none from the client.
    assert client_side.tls.remote_certificate.startswith(b"\x30")
    assert server_side.tls is not None and server_side.tls.remote_certificate == b""
    assert answer.socket.security.tls.other_name == client_side.tls.cipher
    assert answer.socket.security.tls.remote_certificate == client_side.tls.remote_certificate


async def test_unix_socket_servers_report_their_path(tmp_path: Path) -> None:
    path = str(tmp_path / "channelz.sock")
    server = channelz_server()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_unix, path)
        async with Channel(f"unix:{path}") as channel:
            await make_traffic(channel)
            snapshot = server.channelz()
            reply = await ChannelzStub(channel).GetServer(
                pb.GetServerRequest(server_id=server.channelz_id), timeout=5
            )
            (listen_ref,) = reply.server.listen_socket
            listen = await ChannelzStub(channel).GetSocket(
                pb.GetSocketRequest(socket_id=listen_ref.socket_id), timeout=5
            )
        await server.stop(grace=1)
    (listen_socket,) = snapshot.listen_sockets
    assert (listen_socket.local.kind, listen_socket.local.host) == ("unix", path)
    assert str(listen_socket.local) == f"unix:{path}"
    assert listen.socket.local.uds_address.filename == path
    assert snapshot.sockets[0].streams_started == CALLS


async def test_memory_streams_are_named_other_addresses() -> None:
    server = channelz_server()
    async with serve_in_memory(server) as served, served.channel() as channel:
        await make_traffic(channel)
        (connection,) = server.channelz().sockets
        reply = await ChannelzStub(channel).GetSocket(
            pb.GetSocketRequest(socket_id=connection.id), timeout=5
        )
    assert connection.local.kind == connection.remote.kind == "other"
    assert connection.local.port == -1
    assert reply.socket.local.other_address.name == connection.local.host
