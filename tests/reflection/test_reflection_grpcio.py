"""Reflection on a puregrpc server, queried by grpcio clients.

v1alpha through grpcio-reflection's own client, which builds a descriptor
pool from our answers; v1 through a plain grpcio bidi call with our v1
message classes (grpcio-reflection ships no v1 client).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import pytest
import trio
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2 as grpcio_reflection_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from reflection_support import REFLECTION_SERVICES, SERVED_SERVICES

from puregrpc.reflection.protos.v1 import reflection_pb2 as v1
from puregrpc.reflection.protos.v1alpha import reflection_pb2 as v1alpha
from puregrpc.server import Server

pytestmark = pytest.mark.interop

T = TypeVar("T")

V1_PATH = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


async def _with_channel(server: Server, work: Callable[[grpc.Channel], T]) -> T:
    """Run blocking grpcio ``work`` on a channel to ``server``, in a worker thread."""

    def run() -> T:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            return work(channel)

    with trio.fail_after(15):
        return await trio.to_thread.run_sync(run)


def _file_names(response: v1.ServerReflectionResponse) -> list[str]:
    return [
        descriptor_pb2.FileDescriptorProto.FromString(data).name
        for data in response.file_descriptor_response.file_descriptor_proto
    ]


def test_v1alpha_module_shares_the_pool_with_grpcio_reflection() -> None:
    assert v1alpha.DESCRIPTOR.name == "grpc_reflection/v1alpha/reflection.proto"
    assert v1alpha.DESCRIPTOR is grpcio_reflection_pb2.DESCRIPTOR


async def test_grpcio_reflection_client_builds_a_pool(served: Server) -> None:
    def explore(channel: grpc.Channel) -> dict[str, Any]:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("grpc.testing.TestService")
        unary = service.methods_by_name["UnaryCall"]
        request = pool.FindMessageTypeByName("grpc.testing.SimpleRequest")
        nested = pool.FindMessageTypeByName("grpc.testing.LoadBalancerStatsResponse.RpcsByPeer")
        response_type = request.fields_by_name["response_type"].enum_type
        assert response_type is not None
        health = pool.FindServiceByName("grpc.health.v1.Health")
        reflection = pool.FindServiceByName("grpc.reflection.v1.ServerReflection")
        try:
            pool.FindMessageTypeByName("no.such.Message")
        except KeyError:
            missing = True
        else:
            missing = False
        return {
            "services": list(database.get_services()),
            "methods": sorted(service.methods_by_name),
            "unary": (unary.input_type.full_name, unary.output_type.full_name),
            "empty_call_input": service.methods_by_name["EmptyCall"].input_type.full_name,
            "request_fields": sorted(request.fields_by_name),
            "response_type_enum": response_type.full_name,
            "nested_fields": sorted(nested.fields_by_name),
            "test_file_deps": [dep.name for dep in service.file.dependencies],
            "health_methods": sorted(health.methods_by_name),
            "reflection_file": reflection.file.name,
            "missing": missing,
        }

    found = await _with_channel(served, explore)
    assert found["services"] == sorted(SERVED_SERVICES + REFLECTION_SERVICES)
    assert "UnaryCall" in found["methods"]
    assert "StreamingOutputCall" in found["methods"]
    assert found["unary"] == ("grpc.testing.SimpleRequest", "grpc.testing.SimpleResponse")
    assert found["empty_call_input"] == "grpc.testing.Empty"
    assert {"response_type", "response_size", "payload"} <= set(found["request_fields"])
    assert found["response_type_enum"] == "grpc.testing.PayloadType"
    assert found["nested_fields"] == ["rpcs_by_peer"]
    assert found["test_file_deps"] == [
        "puregrpc/interop/protos/empty.proto",
        "puregrpc/interop/protos/messages.proto",
    ]
    assert found["health_methods"] == ["Check", "List", "Watch"]
    assert found["reflection_file"] == "grpc_reflection/v1/reflection.proto"
    assert found["missing"] is True


async def test_grpcio_reflection_finds_extensions(extension_served: Server) -> None:
    # protobuf's DescriptorDatabase base class answers None to
    # FindFileContainingExtension, so the descriptor database never asks the
    # server for it: ask with grpcio-reflection's stub instead.
    def explore(channel: grpc.Channel) -> tuple[list[int], list[str], str]:
        database = ProtoReflectionDescriptorDatabase(channel)
        numbers = sorted(database.FindAllExtensionNumbers("ext.Base"))
        inner = database.FindFileContainingSymbol("ext.Base.Inner")
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = grpcio_reflection_pb2.ServerReflectionRequest(
            file_containing_extension=grpcio_reflection_pb2.ExtensionRequest(
                containing_type="ext.Base", extension_number=150
            )
        )
        (response,) = stub.ServerReflectionInfo(iter([request]), timeout=10)
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(data).name
            for data in response.file_descriptor_response.file_descriptor_proto
        ]
        return numbers, files, inner.name

    numbers, files, inner = await _with_channel(extension_served, explore)
    assert numbers == [123, 150]
    assert files == ["ext/more.proto", "ext/base.proto"]
    assert inner == "ext/base.proto"


async def test_v1_over_one_grpcio_stream(served: Server) -> None:
    requests = [
        v1.ServerReflectionRequest(host="h", list_services=""),
        v1.ServerReflectionRequest(file_containing_symbol="grpc.testing.TestService"),
        # Already sent on this stream with its dependencies: only the file itself.
        v1.ServerReflectionRequest(file_containing_symbol="grpc.testing.SimpleRequest"),
        v1.ServerReflectionRequest(file_containing_symbol="grpc.testing.TestService.UnaryCall"),
        v1.ServerReflectionRequest(file_by_filename="puregrpc/interop/protos/empty.proto"),
        v1.ServerReflectionRequest(file_by_filename="no/such.proto"),
        v1.ServerReflectionRequest(file_containing_symbol="grpc.testing.Nope"),
        v1.ServerReflectionRequest(
            file_containing_extension=v1.ExtensionRequest(
                containing_type="grpc.testing.SimpleRequest", extension_number=99
            )
        ),
        v1.ServerReflectionRequest(all_extension_numbers_of_type="no.Such"),
        v1.ServerReflectionRequest(host="nothing asked"),
    ]

    def call(channel: grpc.Channel) -> list[v1.ServerReflectionResponse]:
        info = channel.stream_stream(
            V1_PATH,
            request_serializer=v1.ServerReflectionRequest.SerializeToString,
            response_deserializer=v1.ServerReflectionResponse.FromString,
        )
        return list(info(iter(requests), timeout=10))

    responses = await _with_channel(served, call)
    assert [response.original_request for response in responses] == requests
    listed, service, message, method, empty, *errors = responses
    assert listed.valid_host == "h"
    assert [s.name for s in listed.list_services_response.service] == sorted(
        SERVED_SERVICES + REFLECTION_SERVICES
    )
    assert _file_names(service) == [
        "puregrpc/interop/protos/test.proto",
        "puregrpc/interop/protos/empty.proto",
        "puregrpc/interop/protos/messages.proto",
    ]
    assert _file_names(message) == ["puregrpc/interop/protos/messages.proto"]
    assert _file_names(method) == ["puregrpc/interop/protos/test.proto"]
    assert _file_names(empty) == ["puregrpc/interop/protos/empty.proto"]
    codes = [response.error_response.error_code for response in errors]
    assert codes == [grpc.StatusCode.NOT_FOUND.value[0]] * 4 + [
        grpc.StatusCode.INVALID_ARGUMENT.value[0]
    ]
    messages = [response.error_response.error_message for response in errors]
    assert "no/such.proto" in messages[0]
    assert "grpc.testing.Nope" in messages[1]
    assert "99" in messages[2]
    assert "no.Such" in messages[3]
    assert "list_services" in messages[4]
