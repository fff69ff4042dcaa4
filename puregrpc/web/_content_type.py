"""gRPC-Web content types (PROTOCOL-WEB.md, Content-Type) and what a request asks for."""

from __future__ import annotations

from dataclasses import dataclass

#: What a binary gRPC-Web response is labelled.
BINARY_CONTENT_TYPE = b"application/grpc-web+proto"
#: What a text (base64) gRPC-Web response is labelled.
TEXT_CONTENT_TYPE = b"application/grpc-web-text+proto"

_BINARY = b"application/grpc-web"
_TEXT = b"application/grpc-web-text"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebMode:
    """How one gRPC-Web call encodes its bodies."""

    #: The request body is base64 (``application/grpc-web-text``).
    text_request: bool
    #: The response body is base64: a text request, or ``accept`` asked for it.
    text_response: bool

    @property
    def content_type(self) -> bytes:
        """The response's content-type."""
        return TEXT_CONTENT_TYPE if self.text_response else BINARY_CONTENT_TYPE

    @property
    def name(self) -> str:
        """``grpc-web`` or ``grpc-web-text``, for traces and logs."""
        return "grpc-web-text" if self.text_request else "grpc-web"


def is_web_content_type(value: bytes) -> bool:
    """True for any ``application/grpc-web...`` media type, served or not.

    Lets a server tell "a gRPC-Web request it cannot serve" (``+json``:
    415 with a gRPC-Web answer) from "not gRPC-Web at all".
    """
    return value.lower().startswith(_BINARY)


def web_mode(content_type: bytes, accept: bytes | None = None) -> WebMode | None:
    """The mode of a request with this content-type, or None if it is not one we serve.

    Served: ``application/grpc-web`` and ``application/grpc-web-text``, bare or
    ``+proto``, with any ``;parameters``; media types compare case-insensitively.
    Other message codecs (``+json``, ``+thrift``) are not served: the handlers
    speak protobuf. A binary request whose ``accept`` names
    ``application/grpc-web-text`` gets a text response (PROTOCOL-WEB.md,
    Text-encoded response streams).
    """
    media = content_type.split(b";", 1)[0].strip().lower()
    base, _, codec = media.partition(b"+")
    if codec not in (b"", b"proto"):
        return None
    if base == _TEXT:
        return WebMode(text_request=True, text_response=True)
    if base != _BINARY:
        return None
    text_response = accept is not None and _TEXT in accept.lower()
    return WebMode(text_request=False, text_response=text_response)
