"""HealthService in memory (puregrpc.testing), queried with puregrpc's own generated stub."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
from health_support import HealthServed, eventually

from puregrpc import RpcError, StatusCode
from puregrpc.client import ChannelOptions
from puregrpc.health import LIST_LIMIT, HealthService, ServingStatus
from puregrpc.health.protos.health_pb2 import (
    HealthCheckRequest,
    HealthCheckResponse,
    HealthListRequest,
)
from puregrpc.health.protos.health_puregrpc import HealthStub
from puregrpc.wire import ConnectionConfig

SERVING = HealthCheckResponse.SERVING
NOT_SERVING = HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = HealthCheckResponse.SERVICE_UNKNOWN


async def _check(stub: HealthStub, service: str) -> int:
    response = await stub.Check(HealthCheckRequest(service=service), timeout=5)
    return response.status


async def test_overall_status_starts_serving(stub: HealthStub) -> None:
    assert await _check(stub, "") == SERVING


async def test_check_unknown_service_is_not_found(stub: HealthStub) -> None:
    with pytest.raises(RpcError) as info:
        await _check(stub, "no.such.Service")
    assert info.value.code is StatusCode.NOT_FOUND
    assert "no.such.Service" in info.value.details


async def test_check_follows_set(served: HealthServed, stub: HealthStub) -> None:
    served.health.set("pkg.Svc", ServingStatus.NOT_SERVING)
    assert await _check(stub, "pkg.Svc") == NOT_SERVING
    served.health.set("pkg.Svc", ServingStatus.SERVING)
    assert await _check(stub, "pkg.Svc") == SERVING
    assert served.health.get("pkg.Svc") is ServingStatus.SERVING


async def test_list_reports_every_status(served: HealthServed, stub: HealthStub) -> None:
    served.health.set("a.A", ServingStatus.SERVING)
    served.health.set("b.B", ServingStatus.NOT_SERVING)
    response = await stub.List(HealthListRequest(), timeout=5)
    statuses = {name: entry.status for name, entry in response.statuses.items()}
    assert statuses == {"": SERVING, "a.A": SERVING, "b.B": NOT_SERVING}


async def test_list_past_the_limit_is_resource_exhausted(
    served: HealthServed, stub: HealthStub
) -> None:
    for index in range(LIST_LIMIT):
        served.health.set(f"svc.S{index}", ServingStatus.SERVING)
    with pytest.raises(RpcError) as info:
        await stub.List(HealthListRequest(), timeout=5)
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
    assert str(LIST_LIMIT) in info.value.details


async def test_watch_sends_current_status_then_changes(
    served: HealthServed, stub: HealthStub
) -> None:
    served.health.set("pkg.Svc", ServingStatus.SERVING)
    with trio.fail_after(5):
        async with stub.Watch(HealthCheckRequest(service="pkg.Svc")) as call:
            assert (await call.receive()).status == SERVING  # type: ignore[union-attr]
            served.health.set("pkg.Svc", ServingStatus.NOT_SERVING)
            assert (await call.receive()).status == NOT_SERVING  # type: ignore[union-attr]
            # Setting the same status again is not a change: nothing is sent.
            served.health.set("pkg.Svc", ServingStatus.NOT_SERVING)
            served.health.set("pkg.Svc", ServingStatus.SERVING)
            assert (await call.receive()).status == SERVING  # type: ignore[union-attr]


async def test_watch_unknown_service_waits_for_it(served: HealthServed, stub: HealthStub) -> None:
    with trio.fail_after(5):
        async with stub.Watch(HealthCheckRequest(service="late.Svc")) as call:
            assert (await call.receive()).status == SERVICE_UNKNOWN  # type: ignore[union-attr]
            served.health.set("late.Svc", ServingStatus.SERVING)
            assert (await call.receive()).status == SERVING  # type: ignore[union-attr]


async def test_slow_watcher_gets_the_latest_status_not_a_backlog(served: HealthServed) -> None:
    # A 16-byte stream window holds two 7-byte messages: the server's Watch
    # blocks in send while this client reads nothing.
    options = ChannelOptions(connection=ConnectionConfig(stream_window=16))
    flips = 1000
    with trio.fail_after(10):
        async with served.channel(options=options) as channel:
            stub = HealthStub(channel)
            async with stub.Watch(HealthCheckRequest(service="")) as call:
                assert (await call.receive()).status == SERVING  # type: ignore[union-attr]
                for index in range(flips):
                    status = ServingStatus.NOT_SERVING if index % 2 == 0 else ServingStatus.SERVING
                    served.health.set("", status)
                    await trio.lowlevel.checkpoint()  # let the watcher run (and block)
                final = served.health.get("")
                assert final is ServingStatus.SERVING
                received: list[int] = []
                while not received or received[-1] != final:
                    response = await call.receive()
                    assert response is not None
                    received.append(response.status)
                # A few messages got through before the window closed; the
                # rest of the flips collapsed into the latest status.
                assert len(received) <= 4, received
                served.health.set("", ServingStatus.NOT_SERVING)
                assert (await call.receive()).status == NOT_SERVING  # type: ignore[union-attr]


async def test_watchers_are_forgotten_when_calls_end(
    served: HealthServed, stub: HealthStub
) -> None:
    with trio.fail_after(5):
        for name in ("x.One", "x.Two"):
            async with stub.Watch(HealthCheckRequest(service=name)) as call:
                assert (await call.receive()).status == SERVICE_UNKNOWN  # type: ignore[union-attr]
    # The server notices the cancellations shortly after.
    await eventually(lambda: not served.health.watched)


async def test_graceful_shutdown_marks_everything_not_serving(
    served: HealthServed, stub: HealthStub
) -> None:
    served.health.set("pkg.Svc", ServingStatus.SERVING)
    with trio.fail_after(5):
        async with stub.Watch(HealthCheckRequest(service="pkg.Svc")) as call:
            assert (await call.receive()).status == SERVING  # type: ignore[union-attr]
            served.health.enter_graceful_shutdown()
            assert (await call.receive()).status == NOT_SERVING  # type: ignore[union-attr]
    # Later updates are ignored: nothing may report SERVING again.
    served.health.set("pkg.Svc", ServingStatus.SERVING)
    served.health.set("new.Svc", ServingStatus.SERVING)
    assert await _check(stub, "") == NOT_SERVING
    assert await _check(stub, "pkg.Svc") == NOT_SERVING
    with pytest.raises(RpcError) as info:
        await _check(stub, "new.Svc")
    assert info.value.code is StatusCode.NOT_FOUND


def test_set_rejects_bad_arguments() -> None:
    health = HealthService()
    with pytest.raises(ValueError, match="SERVICE_UNKNOWN"):
        health.set("pkg.Svc", ServingStatus.SERVICE_UNKNOWN)
    with pytest.raises(ValueError):
        health.set("pkg.Svc", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        health.set(b"pkg.Svc", ServingStatus.SERVING)  # type: ignore[arg-type]
    assert health.get("pkg.Svc") is None


def test_serving_status_matches_the_proto() -> None:
    values = HealthCheckResponse.ServingStatus.items()
    assert [(status.name, status.value) for status in ServingStatus] == values
