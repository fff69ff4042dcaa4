"""puregrpc.runtime: the trio machinery shared by the server and the client.

One :class:`~._transport.Transport` per connection drives a sans-IO
``puregrpc.wire`` connection over a trio stream: a reader task feeds it the
bytes it reads, a writer task sends what it queues in one ``send_all`` per
batch. :class:`~._call_stream.CallStream` is one call's view of it: receive a
message (returning flow-control credit as it is taken), send a message
(waiting while the peer's window is closed). :mod:`._method` describes RPC
methods for generated code.
"""

from ._call_stream import CallStream as CallStream
from ._method import Cardinality as Cardinality
from ._method import Method as Method
from ._method import raw_method as raw_method
from ._transport import Transport as Transport

__all__ = ["CallStream", "Cardinality", "Method", "Transport", "raw_method"]
