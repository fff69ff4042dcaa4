"""The gRPC codecs under the connection state machines, as pure functions.

Everything here turns values into header fields or bytes and back, with no
connection state: the Length-Prefixed-Message framing, request / response /
trailer header blocks (with the validation gRPC needs), ``grpc-status`` and
``grpc-message``, ``grpc-timeout``, message compression, metadata keys, and
the HPACK coders that code each repeated header block once.
:mod:`puregrpc.wire`'s connections use them; so can another transport
(gRPC-Web, a proxy, a test that forges what a peer sends).
"""

from ._compression import accept_encoding_value as accept_encoding_value
from ._compression import compress as compress
from ._compression import decompress as decompress
from ._compression import is_supported as is_supported
from ._compression import parse_accept_encoding as parse_accept_encoding
from ._framing import PREFIX_LENGTH as PREFIX_LENGTH
from ._framing import MessageDecoder as MessageDecoder
from ._framing import RawMessage as RawMessage
from ._framing import encode_prefix as encode_prefix
from ._framing import frame_message as frame_message
from ._hpack_cache import CachingDecoder as CachingDecoder
from ._hpack_cache import CachingEncoder as CachingEncoder
from ._metadata import validate_key as validate_key
from ._request_headers import RequestHead as RequestHead
from ._request_headers import RequestRejected as RequestRejected
from ._request_headers import build_request_headers as build_request_headers
from ._request_headers import parse_request_headers as parse_request_headers
from ._response_headers import ResponseHead as ResponseHead
from ._response_headers import build_response_headers as build_response_headers
from ._response_headers import build_trailers as build_trailers
from ._response_headers import build_trailers_only as build_trailers_only
from ._response_headers import parse_response_headers as parse_response_headers
from ._response_headers import parse_trailers as parse_trailers
from ._response_headers import parse_trailers_only as parse_trailers_only
from ._status_codec import decode_grpc_message as decode_grpc_message
from ._status_codec import encode_grpc_message as encode_grpc_message
from ._status_codec import h2_error_to_code as h2_error_to_code
from ._status_codec import http_status_to_code as http_status_to_code
from ._status_codec import parse_grpc_status as parse_grpc_status
from ._status_codec import status_from_h2_reset as status_from_h2_reset
from ._timeout import MAX_TIMEOUT_VALUE as MAX_TIMEOUT_VALUE
from ._timeout import decode_timeout as decode_timeout
from ._timeout import encode_timeout as encode_timeout

__all__ = [
    "MAX_TIMEOUT_VALUE",
    "PREFIX_LENGTH",
    "CachingDecoder",
    "CachingEncoder",
    "MessageDecoder",
    "RawMessage",
    "RequestHead",
    "RequestRejected",
    "ResponseHead",
    "accept_encoding_value",
    "build_request_headers",
    "build_response_headers",
    "build_trailers",
    "build_trailers_only",
    "compress",
    "decode_grpc_message",
    "decode_timeout",
    "encode_grpc_message",
    "encode_prefix",
    "encode_timeout",
    "frame_message",
    "h2_error_to_code",
    "http_status_to_code",
    "is_supported",
    "parse_accept_encoding",
    "parse_grpc_status",
    "parse_request_headers",
    "parse_response_headers",
    "parse_trailers",
    "parse_trailers_only",
    "status_from_h2_reset",
    "validate_key",
]
