"""Our channelz service read by grpcio-channelz's own stubs, and sharing its descriptors."""

from __future__ import annotations

import grpc
import pytest
import trio
from channelz_support import CALLS, REPLIES, REQUESTS, SUCCEEDED, Served, make_traffic
from grpc_channelz.v1 import channelz_pb2 as grpcio_pb
from grpc_channelz.v1 import channelz_pb2_grpc

from puregrpc.channelz.protos import channelz_pb2
from puregrpc.client import Channel

pytestmark = pytest.mark.interop


def test_both_modules_share_one_descriptor() -> None:
    assert channelz_pb2.DESCRIPTOR.name == "grpc_channelz/v1/channelz.proto"
    assert channelz_pb2.DESCRIPTOR is grpcio_pb.DESCRIPTOR


async def test_grpcio_lists_our_server_its_sockets_and_their_counts(served: Served) -> None:
    async with Channel(served.target) as channel:
        await make_traffic(channel)
        server_id = served.server.channelz_id

        def query() -> tuple[grpcio_pb.Server, list[grpcio_pb.Socket]]:
            with grpc.insecure_channel(served.target) as grpc_channel:
                stub = channelz_pb2_grpc.ChannelzStub(grpc_channel)
                servers = stub.GetServers(grpcio_pb.GetServersRequest(), timeout=5)
                (mine,) = [s for s in servers.server if s.ref.server_id == server_id]
                refs = stub.GetServerSockets(
                    grpcio_pb.GetServerSocketsRequest(server_id=server_id), timeout=5
                )
                sockets = [
                    stub.GetSocket(
                        grpcio_pb.GetSocketRequest(socket_id=ref.socket_id), timeout=5
                    ).socket
                    for ref in refs.socket_ref
                ]
                return mine, sockets

        with trio.fail_after(20):
            mine, sockets = await trio.to_thread.run_sync(query)
    # GetServers itself had started when it took the snapshot, and not ended.
    assert mine.data.calls_started == CALLS + 1
    assert mine.data.calls_succeeded == SUCCEEDED and mine.data.calls_failed == 1
    assert len(mine.listen_socket) == 1
    assert len(sockets) == 2  # our traffic channel's connection and grpcio's
    ours = next(s for s in sockets if s.data.messages_sent == REPLIES)
    assert ours.data.messages_received == REQUESTS
    assert ours.data.streams_started == ours.data.streams_succeeded == CALLS
    assert ours.data.streams_failed == 0
    assert ours.local.tcpip_address.port == served.server.port
    grpcio_socket = next(s for s in sockets if s is not ours)
    # grpcio's connection carried its own queries, GetSocket included.
    assert grpcio_socket.data.streams_started >= 2
    assert grpcio_socket.data.last_remote_stream_created_timestamp.seconds > 0


async def test_grpcio_reads_a_channel_and_its_subchannel(served: Served) -> None:
    async with Channel(served.target) as channel:
        await make_traffic(channel)

        def query() -> tuple[grpcio_pb.Channel, grpcio_pb.Subchannel]:
            with grpc.insecure_channel(served.target) as grpc_channel:
                stub = channelz_pb2_grpc.ChannelzStub(grpc_channel)
                found = stub.GetChannel(
                    grpcio_pb.GetChannelRequest(channel_id=channel.channelz_id), timeout=5
                ).channel
                (ref,) = found.subchannel_ref
                sub = stub.GetSubchannel(
                    grpcio_pb.GetSubchannelRequest(subchannel_id=ref.subchannel_id), timeout=5
                ).subchannel
                return found, sub

        with trio.fail_after(20):
            found, sub = await trio.to_thread.run_sync(query)
    assert found.data.target == served.target
    assert found.data.state.state == grpcio_pb.ChannelConnectivityState.READY
    assert (found.data.calls_started, found.data.calls_succeeded, found.data.calls_failed) == (
        CALLS,
        SUCCEEDED,
        1,
    )
    assert sub.data.calls_started == CALLS and len(sub.socket_ref) == 1
