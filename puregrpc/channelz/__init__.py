"""puregrpc.channelz: gRPC's channelz (gRFC A14), served and as plain Python values.

Channelz lets an operator look inside a running process: its servers (calls
started, succeeded, failed; listen sockets; open connections), its client
channels and their subchannels (target, connectivity state, calls), and
each connection's socket data (streams and messages each way, keepalives,
flow-control windows, addresses, TLS). One line serves it::

    enable_channelz(server)

and any channelz client reads it: grpcio-channelz's stubs, grpcdebug,
grpc-go's channelz tooling. Without a gRPC call, the same data is
``server.channelz()`` and ``channel.channelz()`` (frozen dataclasses:
:class:`ChannelzServer`, :class:`ChannelzChannel`, and the values inside
them), and :data:`CHANNELZ` lists every live server and channel.

The message classes are in :mod:`puregrpc.channelz.protos.channelz_pb2`;
their descriptors share protobuf's default pool with grpcio-channelz's
(same file name, same content), so both can be imported in one process.
"""

from ..runtime import CHANNELZ as CHANNELZ
from ..runtime import ChannelzAddress as ChannelzAddress
from ..runtime import ChannelzCalls as ChannelzCalls
from ..runtime import ChannelzChannel as ChannelzChannel
from ..runtime import ChannelzListenSocket as ChannelzListenSocket
from ..runtime import ChannelzRegistry as ChannelzRegistry
from ..runtime import ChannelzServer as ChannelzServer
from ..runtime import ChannelzSocket as ChannelzSocket
from ..runtime import ChannelzSubchannel as ChannelzSubchannel
from ..runtime import ChannelzTls as ChannelzTls
from ._service import DEFAULT_PAGE_SIZE as DEFAULT_PAGE_SIZE
from ._service import ChannelzService as ChannelzService
from ._service import enable_channelz as enable_channelz

__all__ = [
    "CHANNELZ",
    "DEFAULT_PAGE_SIZE",
    "ChannelzAddress",
    "ChannelzCalls",
    "ChannelzChannel",
    "ChannelzListenSocket",
    "ChannelzRegistry",
    "ChannelzServer",
    "ChannelzService",
    "ChannelzSocket",
    "ChannelzSubchannel",
    "ChannelzTls",
    "enable_channelz",
]
