"""HealthService queried by grpcio-health-checking's own stub, and sharing its pool."""

from __future__ import annotations

import grpc
import pytest
import trio
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2 as grpcio_health_pb2
from grpc_health.v1 import health_pb2_grpc
from health_support import HealthServed, eventually

from puregrpc.health import ServingStatus
from puregrpc.health.protos import health_pb2

pytestmark = pytest.mark.interop

SERVING = grpcio_health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = grpcio_health_pb2.HealthCheckResponse.NOT_SERVING


def test_both_modules_share_one_descriptor() -> None:
    # Same file name and content in the default pool: protobuf accepts the
    # second registration and both modules see the same descriptors.
    assert health_pb2.DESCRIPTOR.name == "grpc_health/v1/health.proto"
    assert health_pb2.DESCRIPTOR is grpcio_health_pb2.DESCRIPTOR
    assert descriptor_pool.Default().FindServiceByName("grpc.health.v1.Health").methods_by_name
    request = health_pb2.HealthCheckRequest(service="x")
    assert grpcio_health_pb2.HealthCheckRequest.FromString(request.SerializeToString()) == request


async def test_grpcio_check_and_list(served_on_loopback: HealthServed) -> None:
    served_on_loopback.health.set("pkg.Svc", ServingStatus.NOT_SERVING)

    def calls() -> tuple[int, int, grpc.StatusCode, dict[str, int]]:
        with grpc.insecure_channel(served_on_loopback.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            overall = stub.Check(grpcio_health_pb2.HealthCheckRequest(service=""), timeout=5)
            svc = stub.Check(grpcio_health_pb2.HealthCheckRequest(service="pkg.Svc"), timeout=5)
            try:
                stub.Check(grpcio_health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            except grpc.RpcError as exc:
                unknown = exc.code()
            else:
                raise AssertionError("Check of an unknown service succeeded")
            listed = stub.List(grpcio_health_pb2.HealthListRequest(), timeout=5)
            statuses = {name: entry.status for name, entry in listed.statuses.items()}
            return overall.status, svc.status, unknown, statuses

    with trio.fail_after(10):
        overall, svc, unknown, statuses = await trio.to_thread.run_sync(calls)
    assert (overall, svc) == (SERVING, NOT_SERVING)
    assert unknown is grpc.StatusCode.NOT_FOUND
    assert statuses == {"": SERVING, "pkg.Svc": NOT_SERVING}


async def test_grpcio_watch_sees_a_change(served_on_loopback: HealthServed) -> None:
    served_on_loopback.health.set("pkg.Svc", ServingStatus.SERVING)

    def watch() -> list[int]:
        with grpc.insecure_channel(served_on_loopback.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            responses = stub.Watch(
                grpcio_health_pb2.HealthCheckRequest(service="pkg.Svc"), timeout=10
            )
            try:
                seen = [next(responses).status]
                # The change is made on the trio thread, while this watch is open.
                trio.from_thread.run_sync(
                    served_on_loopback.health.set, "pkg.Svc", ServingStatus.NOT_SERVING
                )
                seen.append(next(responses).status)
                return seen
            finally:
                responses.cancel()

    with trio.fail_after(10):
        seen = await trio.to_thread.run_sync(watch)
    assert seen == [SERVING, NOT_SERVING]
    # The cancelled watch leaves no watcher behind.
    await eventually(lambda: not served_on_loopback.health.watched)
