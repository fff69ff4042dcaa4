"""puregrpc.client: call gRPC methods from a trio program.

``async with Channel("127.0.0.1:50051") as channel:`` then call through a
generated stub, or directly with ``channel.unary_unary(method, request)`` and
friends. Every call returns a :class:`ClientCall`.
"""

from ._backoff import Backoff as Backoff
from ._backoff import BackoffPolicy as BackoffPolicy
from ._call import ClientCall as ClientCall
from ._channel import Channel as Channel
from ._channel import ChannelOptions as ChannelOptions
from ._subchannel import parse_target as parse_target

__all__ = ["Backoff", "BackoffPolicy", "Channel", "ChannelOptions", "ClientCall", "parse_target"]
