"""Reflection queried by puregrpc's own client, v1 and v1alpha; enabling it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
import trio
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor
from reflection_support import REFLECTION_SERVICES, SERVED_SERVICES

from puregrpc import StatusCode
from puregrpc.client import Channel
from puregrpc.health import HealthService
from puregrpc.reflection import SERVICE_NAMES, enable_reflection
from puregrpc.reflection.protos.v1 import reflection_pb2 as v1
from puregrpc.reflection.protos.v1 import reflection_puregrpc as v1_services
from puregrpc.reflection.protos.v1alpha import reflection_pb2 as v1alpha
from puregrpc.reflection.protos.v1alpha import reflection_puregrpc as v1alpha_services
from puregrpc.server import Server

ALL_SERVICES = sorted(SERVED_SERVICES + REFLECTION_SERVICES)


def _file_names(response: Any) -> list[str]:
    return [
        descriptor_pb2.FileDescriptorProto.FromString(data).name
        for data in response.file_descriptor_response.file_descriptor_proto
    ]


@pytest.mark.parametrize("version", [v1, v1alpha], ids=["v1", "v1alpha"])
async def test_puregrpc_client_talks_to_both_versions(served: Server, version: Any) -> None:
    services = v1_services if version is v1 else v1alpha_services
    with trio.fail_after(5):
        async with Channel(f"127.0.0.1:{served.port}") as channel:
            stub = services.ServerReflectionStub(channel)
            async with stub.ServerReflectionInfo() as call:
                # Request, answer, request...: one stream, interleaved.
                await call.send(version.ServerReflectionRequest(list_services="*"))
                listed = await call.receive()
                await call.send(
                    version.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health")
                )
                health = await call.receive()
                await call.send(
                    version.ServerReflectionRequest(
                        file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus"
                    )
                )
                nested_enum = await call.receive()
                await call.send(version.ServerReflectionRequest())
                nothing = await call.receive()
                await call.done_writing()
                assert await call.receive() is None
    assert [service.name for service in listed.list_services_response.service] == ALL_SERVICES
    assert _file_names(health) == ["grpc_health/v1/health.proto"]
    assert _file_names(nested_enum) == ["grpc_health/v1/health.proto"]
    assert nothing.error_response.error_code == StatusCode.INVALID_ARGUMENT
    assert nothing.original_request == version.ServerReflectionRequest()


async def test_extension_numbers(extension_served: Server) -> None:
    with trio.fail_after(5):
        async with Channel(f"127.0.0.1:{extension_served.port}") as channel:
            stub = v1_services.ServerReflectionStub(channel)
            requests = [
                v1.ServerReflectionRequest(all_extension_numbers_of_type="ext.Base"),
                v1.ServerReflectionRequest(all_extension_numbers_of_type="ext.Base.Inner"),
                v1.ServerReflectionRequest(
                    file_containing_extension=v1.ExtensionRequest(
                        containing_type="ext.Base", extension_number=123
                    )
                ),
                v1.ServerReflectionRequest(
                    file_containing_extension=v1.ExtensionRequest(
                        containing_type="ext.Base", extension_number=124
                    )
                ),
            ]
            base, inner, extension, missing = [
                response async for response in stub.ServerReflectionInfo(requests)
            ]
    assert base.all_extension_numbers_response.base_type_name == "ext.Base"
    assert list(base.all_extension_numbers_response.extension_number) == [123, 150]
    assert inner.all_extension_numbers_response.base_type_name == "ext.Base.Inner"
    assert list(inner.all_extension_numbers_response.extension_number) == []
    assert _file_names(extension) == ["ext/more.proto", "ext/base.proto"]
    assert missing.error_response.error_code == StatusCode.NOT_FOUND
    assert "124" in missing.error_response.error_message


async def test_services_added_later_are_listed() -> None:
    server = Server()
    enable_reflection(server)
    server.add_service(HealthService())
    with trio.fail_after(5):
        async with (
            server.listening("127.0.0.1", 0),
            Channel(f"127.0.0.1:{server.port}") as channel,
        ):
            stub = v1_services.ServerReflectionStub(channel)
            requests = [v1.ServerReflectionRequest(list_services="")]
            (listed,) = [response async for response in stub.ServerReflectionInfo(requests)]
    names = [service.name for service in listed.list_services_response.service]
    assert names == sorted(["grpc.health.v1.Health", *SERVICE_NAMES])


def test_enabling_twice_is_an_error() -> None:
    server = Server()
    enable_reflection(server)
    with pytest.raises(ValueError, match="registered twice"):
        enable_reflection(server)


def _shape(message: Descriptor) -> list[tuple[str, int, int, str]]:
    return [
        (
            field.name,
            field.number,
            field.type,
            field.message_type.name if field.message_type else "",
        )
        for field in message.fields
    ]


def test_v1_and_v1alpha_messages_have_one_wire_format() -> None:
    # The v1alpha handler converts to and from v1 through bytes: that is
    # exact only while every message has the same fields and numbers.
    v1_file, v1alpha_file = v1.DESCRIPTOR, v1alpha.DESCRIPTOR
    assert sorted(v1_file.message_types_by_name) == sorted(v1alpha_file.message_types_by_name)
    for name, message in v1_file.message_types_by_name.items():
        assert _shape(message) == _shape(v1alpha_file.message_types_by_name[name]), name


def test_service_is_described_with_only_its_puregrpc_module_imported() -> None:
    # A fresh interpreter: in this one, other tests have imported test_pb2.
    script = textwrap.dedent(
        """
        from puregrpc.interop.protos.test_puregrpc import TestServiceServicer
        from puregrpc.reflection import enable_reflection
        from puregrpc.reflection.protos.v1 import reflection_pb2 as v1
        from puregrpc.server import Server

        server = Server([TestServiceServicer()])
        session = enable_reflection(server).open_session()
        request = v1.ServerReflectionRequest(file_containing_symbol="grpc.testing.TestService")
        response = session.answer(request)
        raise SystemExit(response.WhichOneof("message_response") != "file_descriptor_response")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert result.returncode == 0
