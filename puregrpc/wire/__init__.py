"""puregrpc.wire: the sans-IO gRPC-over-HTTP/2 core.

Bytes in, events out; calls in, bytes out. No sockets, no trio, no clock:
drivers (``puregrpc.server``, ``puregrpc.client``) own the I/O. See
``_connection.py`` for the theory of operation and ``_flow.py`` for how flow
control credit goes back to the peer only as messages are consumed.
"""

from ._client_connection import ClientConnection as ClientConnection
from ._compression import IDENTITY as IDENTITY
from ._compression import SUPPORTED_ENCODINGS as SUPPORTED_ENCODINGS
from ._compression import compress as compress
from ._compression import decompress as decompress
from ._connection import DEFAULT_CONNECTION_WINDOW as DEFAULT_CONNECTION_WINDOW
from ._connection import DEFAULT_STREAM_WINDOW as DEFAULT_STREAM_WINDOW
from ._connection import CallState as CallState
from ._connection import ConnectionConfig as ConnectionConfig
from ._connection import GrpcConnection as GrpcConnection
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import ProtocolError as ProtocolError
from ._errors import PuregrpcError as PuregrpcError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import RpcError as RpcError
from ._events import CallEnded as CallEnded
from ._events import CallStarted as CallStarted
from ._events import ConnectionClosed as ConnectionClosed
from ._events import Event as Event
from ._events import HalfClosed as HalfClosed
from ._events import MessageReceived as MessageReceived
from ._events import PingAcknowledged as PingAcknowledged
from ._events import PingReceived as PingReceived
from ._events import ResponseHeaders as ResponseHeaders
from ._events import SettingsChanged as SettingsChanged
from ._events import StreamReset as StreamReset
from ._events import WindowOpened as WindowOpened
from ._flow import ConnectionStatistics as ConnectionStatistics
from ._flow import StreamStatistics as StreamStatistics
from ._framing import DEFAULT_MAX_RECEIVE_MESSAGE_SIZE as DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
from ._framing import MessageDecoder as MessageDecoder
from ._framing import RawMessage as RawMessage
from ._framing import encode_prefix as encode_prefix
from ._framing import frame_message as frame_message
from ._headers import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
from ._headers import RequestRejected as RequestRejected
from ._metadata import DEFAULT_MAX_METADATA_SIZE as DEFAULT_MAX_METADATA_SIZE
from ._metadata import Metadata as Metadata
from ._metadata import MetadataValue as MetadataValue
from ._server_connection import ServerConnection as ServerConnection
from ._status import Status as Status
from ._status import StatusCode as StatusCode
from ._status import decode_grpc_message as decode_grpc_message
from ._status import encode_grpc_message as encode_grpc_message
from ._status import http_status_to_code as http_status_to_code
from ._timeout import decode_timeout as decode_timeout
from ._timeout import encode_timeout as encode_timeout
from ._trace import FRAME_TYPE_NAMES as FRAME_TYPE_NAMES
from ._trace import NULL_TRACER as NULL_TRACER
from ._trace import FrameScanner as FrameScanner
from ._trace import ListTracer as ListTracer
from ._trace import NullTracer as NullTracer
from ._trace import Tracer as Tracer
from ._trace import TraceRecord as TraceRecord
from ._trace import next_connection_id as next_connection_id

__all__ = [name for name in dir() if not name.startswith("_")]
