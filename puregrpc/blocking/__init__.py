"""puregrpc.blocking: call gRPC services from synchronous code.

``with BlockingChannel("127.0.0.1:50051") as channel:`` then call through a
generated ``<Service>BlockingStub`` (generated beside ``<Service>Stub``)::

    reply = EchoBlockingStub(channel).Unary(EchoRequest(message="hi"), timeout=5)
    for reply in EchoBlockingStub(channel).ServerStream(EchoRequest(count=3)):
        print(reply.index)

The channel runs the async :class:`puregrpc.client.Channel` on a trio loop of
its own thread: the same wire, options, interceptors and errors
(:class:`puregrpc.RpcError`). Ctrl-C cancels the call in flight.
"""

from ._calls import BlockingBidiCall as BlockingBidiCall
from ._calls import BlockingResponseStream as BlockingResponseStream
from ._channel import BlockingChannel as BlockingChannel

__all__ = ["BlockingBidiCall", "BlockingChannel", "BlockingResponseStream"]
