"""Showing a gRPC message payload: decoded protobuf when the schema is known.

The schema is "known" when the generated ``_pb2`` module of the service has
been imported anywhere in the process: importing it registers the service
in protobuf's default descriptor pool, where the method path
``/package.Service/Method`` leads to the request and response types. No
registration step, no configuration; unknown methods and payloads that do
not parse show as a short hex preview instead.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError, Message

#: Longest text shown for one message, in characters.
MAX_VALUE_CHARS = 160
#: Bytes shown in a hex preview.
_HEX_PREVIEW = 16


@functools.lru_cache(maxsize=256)
def _message_types(path: str) -> tuple[type[Message], type[Message]] | None:
    """The (request, response) classes of ``/pkg.Service/Method``, if registered."""
    service_name, _, method_name = path.lstrip("/").partition("/")
    if not service_name or not method_name:
        return None
    pool = descriptor_pool.Default()
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        return None
    method = service.methods_by_name.get(method_name)
    if method is None:
        return None
    return (
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
    )


def hex_preview(payload: bytes) -> str:
    """The first bytes of ``payload`` in hex, with the total length if cut."""
    head = payload[:_HEX_PREVIEW].hex()
    return f"0x{head}" + (f"... ({len(payload)} bytes)" if len(payload) > _HEX_PREVIEW else "")


def describe_message(path: str | None, request: bool, payload: bytes) -> str:
    """A one-line view of one message of the call on ``path``.

    ``request`` says which of the method's two types to parse. Falls back to
    :func:`hex_preview` when the method is unknown or the bytes do not parse.
    """
    types = _message_types(path) if path else None
    if types is not None:
        message = (types[0] if request else types[1])()
        try:
            message.ParseFromString(payload)
        except DecodeError:
            return hex_preview(payload)
        text = text_format.MessageToString(message, as_one_line=True)
        text = (
            f"{message.DESCRIPTOR.name} {{{text}}}" if text else f"{message.DESCRIPTOR.name} {{}}"
        )
        return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."
    return hex_preview(payload)
