"""puregrpc.runtime: the trio machinery shared by the server and the client.

One :class:`Transport` per connection drives a sans-IO ``puregrpc.wire``
connection over any trio stream: a reader task feeds it the bytes it reads, a
writer task sends what it queues in one ``send_all`` per batch; drivers act
on the connection inside :meth:`Transport.send_context`. Each call has a
role-specific stream, :class:`ServerCallStream` or :class:`ClientCallStream`,
whose verbs change the state machine and schedule the write in one step:
receive a message (returning flow-control credit as it is taken), send one
(waiting while the peer's window is closed), end or cancel the call.
:class:`KeepalivePolicy` decides when to ping, told the time;
:func:`require_trio` says so clearly when used outside trio.
:mod:`._method` describes RPC methods for generated code; :mod:`._channelz`
holds the ids, call counts, registry and snapshots channelz reports.
"""

from ._call_stream import CallStream as CallStream
from ._call_stream import ClientCallStream as ClientCallStream
from ._call_stream import ServerCallStream as ServerCallStream
from ._channelz import CHANNELZ as CHANNELZ
from ._channelz import CallCounts as CallCounts
from ._channelz import ChannelzAddress as ChannelzAddress
from ._channelz import ChannelzCalls as ChannelzCalls
from ._channelz import ChannelzChannel as ChannelzChannel
from ._channelz import ChannelzListenSocket as ChannelzListenSocket
from ._channelz import ChannelzRegistry as ChannelzRegistry
from ._channelz import ChannelzServer as ChannelzServer
from ._channelz import ChannelzSocket as ChannelzSocket
from ._channelz import ChannelzSubchannel as ChannelzSubchannel
from ._channelz import ChannelzTls as ChannelzTls
from ._channelz import next_channelz_id as next_channelz_id
from ._channelz import socket_address as socket_address
from ._channelz import stream_addresses as stream_addresses
from ._keepalive import KeepalivePolicy as KeepalivePolicy
from ._method import Cardinality as Cardinality
from ._method import Method as Method
from ._method import raw_method as raw_method
from ._tracing import TRACE_ENV_VAR as TRACE_ENV_VAR
from ._tracing import tracer_or_environment as tracer_or_environment
from ._transport import READ_SIZE as READ_SIZE
from ._transport import Transport as Transport
from ._trio_only import require_trio as require_trio
from ._wire_roles import ServerWire as ServerWire
from ._wire_roles import WireConnection as WireConnection

__all__ = [
    "CHANNELZ",
    "READ_SIZE",
    "TRACE_ENV_VAR",
    "CallCounts",
    "CallStream",
    "Cardinality",
    "ChannelzAddress",
    "ChannelzCalls",
    "ChannelzChannel",
    "ChannelzListenSocket",
    "ChannelzRegistry",
    "ChannelzServer",
    "ChannelzSocket",
    "ChannelzSubchannel",
    "ChannelzTls",
    "ClientCallStream",
    "KeepalivePolicy",
    "Method",
    "ServerCallStream",
    "ServerWire",
    "Transport",
    "WireConnection",
    "next_channelz_id",
    "raw_method",
    "require_trio",
    "socket_address",
    "stream_addresses",
    "tracer_or_environment",
]
