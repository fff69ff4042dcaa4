"""Snapshots (``puregrpc.runtime``'s ``Channelz*`` values) to ``grpc.channelz.v1`` messages.

Field by field, what each message carries here:

* ``ChannelData`` / ``ServerData``: the call counts of the channel,
  subchannel or server (a channel counts each call once; a subchannel each
  call that opened a stream on its connection; a server each call that
  arrived, UNIMPLEMENTED ones included) and the time of the last start. No
  channel trace is kept (the field is optional in A14).
* ``SocketData``: the wire core's totals for the connection (streams
  started, succeeded and failed as A14 defines them, messages each way,
  PINGs sent), the times the transport stamped, and the connection-level
  flow-control windows: ``local_flow_control_window`` is what the peer
  granted us, ``remote_flow_control_window`` what we granted the peer.
* ``Address``: TCP as the IP's packed bytes and the port; Unix sockets by
  path (abstract ones with a leading ``@``); anything else (an in-memory
  stream) as ``other_address`` naming the stream type.
* ``Security``: TLS with the cipher suite (OpenSSL's name, so
  ``other_name``) and the peer's certificate; Python's ssl module does not
  expose our own certificate, so ``local_certificate`` stays empty.
"""

from __future__ import annotations

import ipaddress

from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import Int64Value

from ..runtime import (
    ChannelzAddress,
    ChannelzCalls,
    ChannelzChannel,
    ChannelzListenSocket,
    ChannelzServer,
    ChannelzSocket,
    ChannelzSubchannel,
)
from .protos import channelz_pb2 as pb

_STATES = {
    "IDLE": pb.ChannelConnectivityState.IDLE,
    "CONNECTING": pb.ChannelConnectivityState.CONNECTING,
    "READY": pb.ChannelConnectivityState.READY,
    "TRANSIENT_FAILURE": pb.ChannelConnectivityState.TRANSIENT_FAILURE,
    "SHUTDOWN": pb.ChannelConnectivityState.SHUTDOWN,
}


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _state(name: str) -> pb.ChannelConnectivityState:
    return pb.ChannelConnectivityState(state=_STATES.get(name, pb.ChannelConnectivityState.UNKNOWN))


def _channel_data(target: str, state: str, calls: ChannelzCalls) -> pb.ChannelData:
    return pb.ChannelData(
        state=_state(state),
        target=target,
        calls_started=calls.started,
        calls_succeeded=calls.succeeded,
        calls_failed=calls.failed,
        last_call_started_timestamp=_timestamp(calls.last_started),
    )


def address_message(address: ChannelzAddress) -> pb.Address:
    """A :class:`ChannelzAddress` as channelz's ``Address``."""
    if address.kind == "tcp":
        try:
            packed = ipaddress.ip_address(address.host.split("%", 1)[0]).packed
        except ValueError:
            return pb.Address(other_address=pb.Address.OtherAddress(name=str(address)))
        return pb.Address(
            tcpip_address=pb.Address.TcpIpAddress(ip_address=packed, port=address.port)
        )
    if address.kind == "unix":
        return pb.Address(uds_address=pb.Address.UdsAddress(filename=address.host))
    return pb.Address(other_address=pb.Address.OtherAddress(name=address.host))


def socket_ref(socket: ChannelzSocket | ChannelzListenSocket) -> pb.SocketRef:
    """The reference to a socket, named by its address(es)."""
    name = socket.name if isinstance(socket, ChannelzSocket) else str(socket.local)
    return pb.SocketRef(socket_id=socket.id, name=name)


def socket_message(socket: ChannelzSocket, *, summary: bool = False) -> pb.Socket:
    """A connection as channelz's ``Socket`` (``summary``: its ref and addresses only)."""
    message = pb.Socket(
        ref=socket_ref(socket),
        local=address_message(socket.local),
        remote=address_message(socket.remote),
        remote_name=str(socket.remote),
    )
    if summary:
        return message
    message.data.CopyFrom(
        pb.SocketData(
            streams_started=socket.streams_started,
            streams_succeeded=socket.streams_succeeded,
            streams_failed=socket.streams_failed,
            messages_sent=socket.messages_sent,
            messages_received=socket.messages_received,
            keep_alives_sent=socket.keepalives_sent,
            last_local_stream_created_timestamp=_timestamp(socket.last_local_stream_created),
            last_remote_stream_created_timestamp=_timestamp(socket.last_remote_stream_created),
            last_message_sent_timestamp=_timestamp(socket.last_message_sent),
            last_message_received_timestamp=_timestamp(socket.last_message_received),
            local_flow_control_window=Int64Value(value=socket.local_flow_control_window),
            remote_flow_control_window=Int64Value(value=socket.remote_flow_control_window),
        )
    )
    if socket.tls is not None:
        message.security.CopyFrom(
            pb.Security(
                tls=pb.Security.Tls(
                    other_name=socket.tls.cipher,
                    remote_certificate=socket.tls.remote_certificate,
                )
            )
        )
    return message


def listen_socket_message(socket: ChannelzListenSocket) -> pb.Socket:
    """A listening socket as channelz's ``Socket`` (its local address; no data)."""
    return pb.Socket(ref=socket_ref(socket), local=address_message(socket.local))


def server_message(server: ChannelzServer) -> pb.Server:
    """A server as channelz's ``Server`` (its listen sockets by reference)."""
    calls = server.calls
    return pb.Server(
        ref=pb.ServerRef(server_id=server.id, name=f"server {server.id}"),
        data=pb.ServerData(
            calls_started=calls.started,
            calls_succeeded=calls.succeeded,
            calls_failed=calls.failed,
            last_call_started_timestamp=_timestamp(calls.last_started),
        ),
        listen_socket=[socket_ref(socket) for socket in server.listen_sockets],
    )


def subchannel_ref(subchannel: ChannelzSubchannel) -> pb.SubchannelRef:
    """The reference to a subchannel, named by its address."""
    return pb.SubchannelRef(subchannel_id=subchannel.id, name=subchannel.target)


def channel_message(channel: ChannelzChannel) -> pb.Channel:
    """A top-level channel as channelz's ``Channel`` (subchannels by reference)."""
    return pb.Channel(
        ref=pb.ChannelRef(channel_id=channel.id, name=channel.target),
        data=_channel_data(channel.target, channel.state, channel.calls),
        subchannel_ref=[subchannel_ref(subchannel) for subchannel in channel.subchannels],
    )


def subchannel_message(subchannel: ChannelzSubchannel) -> pb.Subchannel:
    """A subchannel as channelz's ``Subchannel`` (its connection by reference)."""
    return pb.Subchannel(
        ref=subchannel_ref(subchannel),
        data=_channel_data(subchannel.target, subchannel.state, subchannel.calls),
        socket_ref=[socket_ref(socket) for socket in subchannel.sockets],
    )
