"""Servers with reflection enabled, on 127.0.0.1.

``served``: the interop TestService, the health service and reflection, with
descriptors from protobuf's default pool. ``extension_pool`` and
``extension_served``: a private pool holding a proto2 message with
extensions (the default pool has none we could rely on), served the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool

from puregrpc.health import HealthService

# test.proto declares only services, so test_puregrpc does not import its
# _pb2 module, and without that import the pool has no TestService to
# describe (see test_reflection_service.py's xfail): import it, as grpcio's
# reflection docs also ask.
from puregrpc.interop.protos import test_pb2  # noqa: F401
from puregrpc.interop.protos.test_puregrpc import TestServiceServicer
from puregrpc.reflection import enable_reflection
from puregrpc.server import Server


@pytest.fixture
async def served() -> AsyncIterator[Server]:
    """TestService, health and reflection (the one documented line) on one server."""
    server = Server([TestServiceServicer(), HealthService()])
    enable_reflection(server)
    async with server.listening("127.0.0.1", 0):
        yield server


def _extension_files() -> list[descriptor_pb2.FileDescriptorProto]:
    base = descriptor_pb2.FileDescriptorProto(name="ext/base.proto", package="ext", syntax="proto2")
    message = base.message_type.add(name="Base")
    message.extension_range.add(start=100, end=200)
    nested = message.nested_type.add(name="Inner")
    nested.field.add(
        name="id",
        number=1,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    )
    more = descriptor_pb2.FileDescriptorProto(
        name="ext/more.proto", package="ext", syntax="proto2", dependency=["ext/base.proto"]
    )
    for name, number in (("note", 150), ("extra", 123)):
        more.extension.add(
            name=name,
            number=number,
            extendee=".ext.Base",
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        )
    return [base, more]


@pytest.fixture
def extension_pool() -> DescriptorPool:
    """A private pool: ``ext.Base`` (with ``ext.Base.Inner``) and extensions 123, 150."""
    pool = DescriptorPool()
    for file in _extension_files():
        pool.Add(file)
    return pool


@pytest.fixture
async def extension_served(extension_pool: DescriptorPool) -> AsyncIterator[Server]:
    """Reflection answering from ``extension_pool``."""
    server = Server()
    enable_reflection(server, pool=extension_pool)
    async with server.listening("127.0.0.1", 0):
        yield server
