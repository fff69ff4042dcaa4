"""puregrpc.wire: the sans-IO gRPC-over-HTTP/2 core.

Bytes in, events out; calls in, bytes out. No sockets, no trio, no clock:
drivers (``puregrpc.runtime`` under ``puregrpc.server`` and
``puregrpc.client``) own the I/O. See ``_connection.py`` for the theory of
operation, ``_lifecycle.py`` for a call's states, ``_inbound_flow.py`` for how
flow-control credit goes back to the peer only as messages are consumed, and
``_outbound_flow.py`` for how a sender waits while the peer's window is closed.

This module exports what a driver or an application needs: the connection
state machines and their configuration, events, statuses, metadata, errors,
statistics and the tracer hook. The codecs underneath (framing, headers,
status, timeout, compression) are public in :mod:`puregrpc.wire.codecs`, for
those who build another transport on them.
"""

from ._client_connection import ClientConnection as ClientConnection
from ._compression import IDENTITY as IDENTITY
from ._compression import SUPPORTED_ENCODINGS as SUPPORTED_ENCODINGS
from ._config import DEFAULT_CONNECTION_WINDOW as DEFAULT_CONNECTION_WINDOW
from ._config import DEFAULT_STREAM_WINDOW as DEFAULT_STREAM_WINDOW
from ._config import ConnectionConfig as ConnectionConfig
from ._connection import GrpcConnection as GrpcConnection
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import ProtocolError as ProtocolError
from ._errors import PuregrpcError as PuregrpcError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._events import CallEnded as CallEnded
from ._events import CallStarted as CallStarted
from ._events import ConnectionClosed as ConnectionClosed
from ._events import EndCause as EndCause
from ._events import Event as Event
from ._events import HalfClosed as HalfClosed
from ._events import MessageReceived as MessageReceived
from ._events import PingAcknowledged as PingAcknowledged
from ._events import PingReceived as PingReceived
from ._events import ResponseHeaders as ResponseHeaders
from ._events import SettingsChanged as SettingsChanged
from ._events import WindowOpened as WindowOpened
from ._framing import DEFAULT_MAX_RECEIVE_MESSAGE_SIZE as DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
from ._h2_connection import H2_INTERNALS as H2_INTERNALS
from ._h2_connection import SUPPORTED_H2 as SUPPORTED_H2
from ._h2_connection import H2Connection as H2Connection
from ._h2_connection import check_h2_compatibility as check_h2_compatibility
from ._lifecycle import CallState as CallState
from ._metadata import DEFAULT_MAX_METADATA_SIZE as DEFAULT_MAX_METADATA_SIZE
from ._metadata import Metadata as Metadata
from ._metadata import MetadataValue as MetadataValue
from ._request_headers import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
from ._rpc_error import RpcError as RpcError
from ._server_connection import ServerConnection as ServerConnection
from ._statistics import ConnectionStatistics as ConnectionStatistics
from ._statistics import ConnectionTotals as ConnectionTotals
from ._statistics import StreamStatistics as StreamStatistics
from ._status import Status as Status
from ._status import StatusCode as StatusCode
from ._trace import NULL_TRACER as NULL_TRACER
from ._trace import ListTracer as ListTracer
from ._trace import NullTracer as NullTracer
from ._trace import Tracer as Tracer
from ._trace import TraceRecord as TraceRecord

__all__ = [
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_MAX_METADATA_SIZE",
    "DEFAULT_MAX_RECEIVE_MESSAGE_SIZE",
    "DEFAULT_STREAM_WINDOW",
    "DEFAULT_USER_AGENT",
    "H2_INTERNALS",
    "IDENTITY",
    "NULL_TRACER",
    "SUPPORTED_ENCODINGS",
    "SUPPORTED_H2",
    "CallEnded",
    "CallStarted",
    "CallState",
    "ClientConnection",
    "ConnectionClosed",
    "ConnectionConfig",
    "ConnectionStatistics",
    "ConnectionTotals",
    "EndCause",
    "Event",
    "GrpcConnection",
    "H2Connection",
    "HalfClosed",
    "ListTracer",
    "LocalProtocolError",
    "MessageReceived",
    "Metadata",
    "MetadataValue",
    "NullTracer",
    "PingAcknowledged",
    "PingReceived",
    "ProtocolError",
    "PuregrpcError",
    "RemoteProtocolError",
    "ResponseHeaders",
    "RpcError",
    "ServerConnection",
    "SettingsChanged",
    "Status",
    "StatusCode",
    "StreamStatistics",
    "TraceRecord",
    "Tracer",
    "WindowOpened",
    "check_h2_compatibility",
]
