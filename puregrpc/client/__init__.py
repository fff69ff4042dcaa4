"""puregrpc.client: call gRPC methods from a trio program.

``async with Channel("127.0.0.1:50051") as channel:`` then call through a
generated stub, or directly with ``channel.unary_unary(method, request)`` and
friends. Each call type has its own call object (:class:`UnaryUnaryCall`,
:class:`UnaryStreamCall`, :class:`StreamUnaryCall`, :class:`StreamStreamCall`,
all :class:`ClientCall`); per-call settings are one :class:`CallOptions` or
the same keywords; :class:`ClientInterceptor` objects given to the channel
wrap every call. :class:`ConnectivityState` is what
:meth:`Channel.get_state` and :meth:`Channel.wait_for_state_change` report;
keepalive pings are set up in :class:`ChannelOptions` (``keepalive_time``...).
"""

from ._backoff import Backoff as Backoff
from ._backoff import BackoffPolicy as BackoffPolicy
from ._call import ClientCall as ClientCall
from ._call import Requests as Requests
from ._call import StreamStreamCall as StreamStreamCall
from ._call import StreamUnaryCall as StreamUnaryCall
from ._call import UnaryStreamCall as UnaryStreamCall
from ._call import UnaryUnaryCall as UnaryUnaryCall
from ._channel import Channel as Channel
from ._channel import ChannelOptions as ChannelOptions
from ._connectivity import ConnectivityState as ConnectivityState
from ._interceptor import ClientCallDetails as ClientCallDetails
from ._interceptor import ClientContinuation as ClientContinuation
from ._interceptor import ClientInterceptor as ClientInterceptor
from ._interceptor import ClientStream as ClientStream
from ._interceptor import ForwardingClientStream as ForwardingClientStream
from ._options import CallKeywords as CallKeywords
from ._options import CallOptions as CallOptions
from ._options import MetadataLike as MetadataLike
from ._subchannel import parse_target as parse_target

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "CallKeywords",
    "CallOptions",
    "Channel",
    "ChannelOptions",
    "ClientCall",
    "ClientCallDetails",
    "ClientContinuation",
    "ClientInterceptor",
    "ClientStream",
    "ConnectivityState",
    "ForwardingClientStream",
    "MetadataLike",
    "Requests",
    "StreamStreamCall",
    "StreamUnaryCall",
    "UnaryStreamCall",
    "UnaryUnaryCall",
    "parse_target",
]
