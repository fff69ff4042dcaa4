"""Health checking and reflection on the streaming server, asked by grpcio's own clients."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from service_support import in_thread, running

from puregrpc_streaming.server import SERVICE_NAME

pytestmark = pytest.mark.interop


async def test_health_check_with_grpcio(tmp_path: Path) -> None:
    async with running(tmp_path) as served:

        def check(service: str) -> int:
            with grpc.insecure_channel(served.address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                request = health_pb2.HealthCheckRequest(service=service)
                return int(stub.Check(request, timeout=5).status)

        assert await in_thread(check, "") == health_pb2.HealthCheckResponse.SERVING
        assert await in_thread(check, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
        served.running.health.enter_graceful_shutdown()
        assert await in_thread(check, SERVICE_NAME) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_with_grpcio(tmp_path: Path) -> None:
    async with running(tmp_path) as served:

        def explore() -> tuple[list[str], list[str], str]:
            with grpc.insecure_channel(served.address) as channel:
                database = ProtoReflectionDescriptorDatabase(channel)
                services = sorted(database.get_services())
                pool = descriptor_pool.DescriptorPool(database)
                service = pool.FindServiceByName(SERVICE_NAME)
                methods = sorted(m.name for m in service.methods)
                chunk = pool.FindMessageTypeByName("streaming.v1.FileChunk")
                return services, methods, chunk.fields_by_name["offset"].full_name

        services, methods, field = await in_thread(explore)
    assert SERVICE_NAME in services
    assert "grpc.health.v1.Health" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services
    assert "grpc.reflection.v1.ServerReflection" in services
    assert methods == sorted(
        [
            "GetData",
            "DownloadFile",
            "WatchEvents",
            "ListLargeDataset",
            "UploadFile",
            "CollectMetrics",
            "BatchProcess",
            "Chat",
            "SyncData",
            "InteractiveQuery",
        ]
    )
    assert field == "streaming.v1.FileChunk.offset"
