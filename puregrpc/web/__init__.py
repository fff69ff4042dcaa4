"""puregrpc.web: gRPC-Web (grpc/grpc doc/PROTOCOL-WEB.md) served by the puregrpc server, sans-IO.

A browser cannot read HTTP/2 trailers, so gRPC-Web moves the status into the
body (a last frame flagged 0x80), may base64 the whole body (the text mode),
and runs over HTTP/1.1 as well as HTTP/2. This package holds the parts that
need no I/O, on top of :mod:`puregrpc.wire`'s codecs:

* the body codec: the trailer frame, the streaming base64 decoder, a
  response decoder for clients and tests (:mod:`._framing`);
* content types and CORS (:mod:`._content_type`, :mod:`._cors`);
* :class:`WebServerConnection`, the HTTP/2 server connection that answers
  gRPC-Web calls beside native ones (:mod:`._h2`);
* :class:`Http1ServerConnection`, gRPC-Web over HTTP/1.1 on h11 (:mod:`._http1`);
* :func:`sniff`, which tells the two apart by a connection's first bytes;
* :class:`StaticSite`, pages served to GET and HEAD on the same port
  (``WebOptions.site``; :mod:`._static`).

``puregrpc.server.Server`` uses them (``ServerOptions.grpc_web``); see
docs/grpc-web.md.
"""

from ._content_type import BINARY_CONTENT_TYPE as BINARY_CONTENT_TYPE
from ._content_type import TEXT_CONTENT_TYPE as TEXT_CONTENT_TYPE
from ._content_type import WebMode as WebMode
from ._content_type import web_mode as web_mode
from ._cors import CorsPolicy as CorsPolicy
from ._framing import TRAILER_FLAG as TRAILER_FLAG
from ._framing import Base64StreamDecoder as Base64StreamDecoder
from ._framing import TextMessageDecoder as TextMessageDecoder
from ._framing import WebFrame as WebFrame
from ._framing import WebResponseDecoder as WebResponseDecoder
from ._framing import encode_text as encode_text
from ._framing import encode_trailer_frame as encode_trailer_frame
from ._framing import frame_request as frame_request
from ._framing import parse_trailer_block as parse_trailer_block
from ._framing import trailer_block as trailer_block
from ._h2 import WebServerConnection as WebServerConnection
from ._http1 import Http1ServerConnection as Http1ServerConnection
from ._options import WebOptions as WebOptions
from ._sniff import H2_PREFACE as H2_PREFACE
from ._sniff import Protocol as Protocol
from ._sniff import sniff as sniff
from ._static import PageAnswer as PageAnswer
from ._static import StaticFile as StaticFile
from ._static import StaticSite as StaticSite
from ._static import content_type_of as content_type_of

__all__ = [
    "BINARY_CONTENT_TYPE",
    "H2_PREFACE",
    "TEXT_CONTENT_TYPE",
    "TRAILER_FLAG",
    "Base64StreamDecoder",
    "CorsPolicy",
    "Http1ServerConnection",
    "PageAnswer",
    "Protocol",
    "StaticFile",
    "StaticSite",
    "TextMessageDecoder",
    "WebFrame",
    "WebMode",
    "WebOptions",
    "WebResponseDecoder",
    "WebServerConnection",
    "content_type_of",
    "encode_text",
    "encode_trailer_frame",
    "frame_request",
    "parse_trailer_block",
    "sniff",
    "trailer_block",
    "web_mode",
]
