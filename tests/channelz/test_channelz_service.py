"""Channelz: the Python snapshots and the grpc.channelz.v1 service, from puregrpc's client."""

from __future__ import annotations

import socket

import pytest
import trio
from channelz_support import (
    CALLS,
    REPLIES,
    REQUESTS,
    SUCCEEDED,
    Served,
    channelz_server,
    make_traffic,
)

from puregrpc import RpcError, StatusCode
from puregrpc.channelz import CHANNELZ
from puregrpc.channelz.protos import channelz_pb2 as pb
from puregrpc.channelz.protos.channelz_puregrpc import ChannelzStub
from puregrpc.client import Channel, ChannelOptions
from puregrpc.testing.protos.echo_pb2 import EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoStub


async def test_server_snapshot_counts_calls_streams_and_messages(served: Served) -> None:
    async with Channel(served.target) as channel:
        await make_traffic(channel)
        snapshot = served.server.channelz()
    assert snapshot.id == served.server.channelz_id
    calls = snapshot.calls
    assert (calls.started, calls.succeeded, calls.failed) == (CALLS, SUCCEEDED, 1)
    assert calls.last_started is not None
    (listen,) = snapshot.listen_sockets
    assert (listen.local.kind, listen.local.host, listen.local.port) == (
        "tcp",
        "127.0.0.1",
        served.server.port,
    )
    (connection,) = snapshot.sockets
    assert connection.streams_started == connection.streams_succeeded == CALLS
    assert connection.streams_failed == 0
    assert (connection.messages_sent, connection.messages_received) == (REPLIES, REQUESTS)
    assert connection.last_remote_stream_created is not None
    assert connection.last_local_stream_created is None  # a server's streams are the client's
    assert connection.last_message_sent is not None
    assert connection.last_message_received is not None
    assert connection.local.port == served.server.port
    assert connection.remote.host == "127.0.0.1" and connection.remote.port > 0
    assert connection.local_flow_control_window > 0 and connection.remote_flow_control_window > 0
    assert connection.tls is None


async def test_channel_snapshot_counts_calls_per_channel_and_subchannel(served: Served) -> None:
    async with Channel(served.target) as channel:
        await make_traffic(channel)
        snapshot = channel.channelz()
    assert snapshot.id == channel.channelz_id
    assert (snapshot.target, snapshot.state) == (served.target, "READY")
    assert (snapshot.calls.started, snapshot.calls.succeeded, snapshot.calls.failed) == (
        CALLS,
        SUCCEEDED,
        1,
    )
    (subchannel,) = snapshot.subchannels
    assert subchannel.target == served.target and subchannel.state == "READY"
    assert (subchannel.calls.started, subchannel.calls.succeeded) == (CALLS, SUCCEEDED)
    (connection,) = subchannel.sockets
    assert (connection.messages_sent, connection.messages_received) == (REQUESTS, REPLIES)
    assert connection.streams_started == connection.streams_succeeded == CALLS
    assert connection.last_local_stream_created is not None
    assert connection.last_remote_stream_created is None
    assert connection.remote.port == served.server.port


async def test_a_call_that_never_reached_a_server_fails_on_the_channel_only() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(RpcError) as caught:
            await EchoStub(channel).Unary(EchoRequest(message="x"), timeout=5)
        assert caught.value.code is StatusCode.UNAVAILABLE
        snapshot = channel.channelz()
    assert (snapshot.calls.started, snapshot.calls.succeeded, snapshot.calls.failed) == (1, 0, 1)
    (subchannel,) = snapshot.subchannels
    assert subchannel.calls.started == 0 and subchannel.sockets == ()
    assert subchannel.state == "TRANSIENT_FAILURE"


async def test_registry_lists_live_servers_and_channels_only(served: Served) -> None:
    other = channelz_server()
    async with other.listening("127.0.0.1", 0), Channel(served.target) as channel:
        server_ids = [s.id for s in CHANNELZ.servers()]
        assert served.server.channelz_id in server_ids and other.channelz_id in server_ids
        assert server_ids == sorted(server_ids)
        assert channel.channelz_id in [c.id for c in CHANNELZ.channels()]
    assert other.channelz_id not in [s.id for s in CHANNELZ.servers()]
    assert channel.channelz_id not in [c.id for c in CHANNELZ.channels()]


async def test_the_service_reports_servers_sockets_channels_and_subchannels(
    served: Served,
) -> None:
    async with Channel(served.target) as traffic, Channel(served.target) as query:
        await make_traffic(traffic)
        stub = ChannelzStub(query)
        server_id = served.server.channelz_id

        servers = await stub.GetServers(pb.GetServersRequest(), timeout=5)
        assert servers.end
        (mine,) = [s for s in servers.server if s.ref.server_id == server_id]
        # The channelz calls so far count too: GetServers itself has started.
        assert mine.data.calls_started == CALLS + 1
        assert mine.data.calls_succeeded == SUCCEEDED and mine.data.calls_failed == 1
        assert mine.data.last_call_started_timestamp.seconds > 0
        (listen_ref,) = mine.listen_socket

        got = await stub.GetServer(pb.GetServerRequest(server_id=server_id), timeout=5)
        assert got.server.ref.server_id == server_id

        refs = await stub.GetServerSockets(
            pb.GetServerSocketsRequest(server_id=server_id), timeout=5
        )
        assert refs.end and len(refs.socket_ref) == 2  # the traffic's and the query's
        by_id = {}
        for ref in refs.socket_ref:
            found = await stub.GetSocket(pb.GetSocketRequest(socket_id=ref.socket_id), timeout=5)
            by_id[ref.socket_id] = found.socket
        busiest = max(by_id.values(), key=lambda s: s.data.messages_sent)
        assert busiest.data.streams_started == busiest.data.streams_succeeded == CALLS
        assert busiest.data.messages_sent == REPLIES
        assert busiest.data.messages_received == REQUESTS
        assert busiest.data.remote_flow_control_window.value > 0
        assert busiest.local.tcpip_address.ip_address == socket.inet_aton("127.0.0.1")
        assert busiest.local.tcpip_address.port == served.server.port

        listen = await stub.GetSocket(
            pb.GetSocketRequest(socket_id=listen_ref.socket_id), timeout=5
        )
        assert listen.socket.local.tcpip_address.port == served.server.port
        assert not listen.socket.HasField("remote")

        summary = await stub.GetSocket(
            pb.GetSocketRequest(socket_id=busiest.ref.socket_id, summary=True), timeout=5
        )
        assert not summary.socket.HasField("data") and summary.socket.HasField("remote")

        top = await stub.GetTopChannels(pb.GetTopChannelsRequest(), timeout=5)
        (traced,) = [c for c in top.channel if c.ref.channel_id == traffic.channelz_id]
        assert traced.data.state.state == pb.ChannelConnectivityState.READY
        assert traced.data.target == served.target
        assert (traced.data.calls_started, traced.data.calls_succeeded) == (CALLS, SUCCEEDED)
        (sub_ref,) = traced.subchannel_ref

        sub = await stub.GetSubchannel(
            pb.GetSubchannelRequest(subchannel_id=sub_ref.subchannel_id), timeout=5
        )
        assert sub.subchannel.data.calls_started == CALLS
        (client_socket_ref,) = sub.subchannel.socket_ref
        client_socket = await stub.GetSocket(
            pb.GetSocketRequest(socket_id=client_socket_ref.socket_id), timeout=5
        )
        data = client_socket.socket.data
        assert (data.messages_sent, data.messages_received) == (REQUESTS, REPLIES)
        assert data.last_local_stream_created_timestamp.seconds > 0

        channel = await stub.GetChannel(
            pb.GetChannelRequest(channel_id=traffic.channelz_id), timeout=5
        )
        assert channel.channel.ref.channel_id == traffic.channelz_id


async def test_lists_are_paged_by_id(served: Served) -> None:
    async with Channel(served.target) as first, Channel(served.target) as second:
        await make_traffic(first)
        await make_traffic(second)
        stub = ChannelzStub(first)
        seen: list[int] = []
        start = 0
        for _ in range(50):  # bounded: far more pages than there are channels
            page = await stub.GetTopChannels(
                pb.GetTopChannelsRequest(start_channel_id=start, max_results=1), timeout=5
            )
            assert len(page.channel) <= 1
            seen.extend(c.ref.channel_id for c in page.channel)
            if page.end:
                break
            start = page.channel[-1].ref.channel_id + 1
        else:
            raise AssertionError("paging never reached the end")
        assert seen == sorted(seen)
        assert {first.channelz_id, second.channelz_id} <= set(seen)
        after = await stub.GetTopChannels(
            pb.GetTopChannelsRequest(start_channel_id=max(seen) + 1), timeout=5
        )
        assert after.end and not after.channel


async def test_unknown_ids_and_bad_pages_are_refused_with_the_right_codes(served: Served) -> None:
    async with Channel(served.target) as channel:
        stub = ChannelzStub(channel)
        missing = 10**15
        calls = [
            stub.GetServer(pb.GetServerRequest(server_id=missing), timeout=5),
            stub.GetChannel(pb.GetChannelRequest(channel_id=missing), timeout=5),
            stub.GetSubchannel(pb.GetSubchannelRequest(subchannel_id=missing), timeout=5),
            stub.GetSocket(pb.GetSocketRequest(socket_id=missing), timeout=5),
            stub.GetServerSockets(pb.GetServerSocketsRequest(server_id=missing), timeout=5),
        ]
        for call in calls:
            with pytest.raises(RpcError) as caught:
                await call
            assert caught.value.code is StatusCode.NOT_FOUND
            assert str(missing) in caught.value.details
        with pytest.raises(RpcError) as caught:
            await stub.GetServers(pb.GetServersRequest(max_results=-1), timeout=5)
        assert caught.value.code is StatusCode.INVALID_ARGUMENT
        assert "max_results" in caught.value.details


async def test_keepalive_pings_are_counted_on_the_pinging_side(served: Served) -> None:
    options = ChannelOptions(keepalive_time=0.05, keepalive_timeout=2, keepalive_without_calls=True)
    async with Channel(served.target, options=options) as channel:
        await make_traffic(channel)
        with trio.fail_after(5):
            while True:
                (subchannel,) = channel.channelz().subchannels
                if subchannel.sockets and subchannel.sockets[0].keepalives_sent >= 2:
                    break
                await trio.sleep(0.05)
