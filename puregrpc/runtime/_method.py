"""RPC method descriptors: what generated code hands to the server and client."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class Cardinality(enum.Enum):
    """The four gRPC call types: how many messages flow each way."""

    UNARY_UNARY = "unary_unary"
    UNARY_STREAM = "unary_stream"
    STREAM_UNARY = "stream_unary"
    STREAM_STREAM = "stream_stream"

    @property
    def client_streaming(self) -> bool:
        """True when the client sends a stream of requests."""
        return self in (Cardinality.STREAM_UNARY, Cardinality.STREAM_STREAM)

    @property
    def server_streaming(self) -> bool:
        """True when the server sends a stream of responses."""
        return self in (Cardinality.UNARY_STREAM, Cardinality.STREAM_STREAM)


@dataclass(frozen=True, slots=True, kw_only=True)
class Method(Generic[RequestT, ResponseT]):
    """One RPC method: its path, call type and message codecs.

    Generated ``*_puregrpc.py`` modules define one per method; hand-written
    code can build them too, with any serialization (protobuf, JSON, raw
    bytes).
    """

    #: ``/package.Service/Method``.
    path: str
    #: The call type.
    cardinality: Cardinality
    #: Turns a request object into bytes (client side).
    request_serializer: Callable[[RequestT], bytes]
    #: Turns bytes into a request object (server side).
    request_deserializer: Callable[[bytes], RequestT]
    #: Turns a response object into bytes (server side).
    response_serializer: Callable[[ResponseT], bytes]
    #: Turns bytes into a response object (client side).
    response_deserializer: Callable[[bytes], ResponseT]

    @property
    def service(self) -> str:
        """``package.Service``."""
        return self.path[1:].rpartition("/")[0]

    @property
    def name(self) -> str:
        """``Method``."""
        return self.path.rpartition("/")[2]


def _identity(data: bytes) -> bytes:
    return data


def raw_method(path: str, cardinality: Cardinality) -> Method[bytes, bytes]:
    """A method whose requests and responses are raw bytes (no serialization)."""
    return Method(
        path=path,
        cardinality=cardinality,
        request_serializer=_identity,
        request_deserializer=_identity,
        response_serializer=_identity,
        response_deserializer=_identity,
    )
