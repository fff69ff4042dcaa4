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
:mod:`._method` describes RPC methods for generated code.
"""

from ._call_stream import CallStream as CallStream
from ._call_stream import ClientCallStream as ClientCallStream
from ._call_stream import ServerCallStream as ServerCallStream
from ._keepalive import KeepalivePolicy as KeepalivePolicy
from ._method import Cardinality as Cardinality
from ._method import Method as Method
from ._method import raw_method as raw_method
from ._tracing import TRACE_ENV_VAR as TRACE_ENV_VAR
from ._tracing import tracer_or_environment as tracer_or_environment
from ._transport import Transport as Transport
from ._trio_only import require_trio as require_trio

__all__ = [
    "TRACE_ENV_VAR",
    "CallStream",
    "Cardinality",
    "ClientCallStream",
    "KeepalivePolicy",
    "Method",
    "ServerCallStream",
    "Transport",
    "raw_method",
    "require_trio",
    "tracer_or_environment",
]
