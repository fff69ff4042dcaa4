"""Rich errors between puregrpc and grpcio-status, in both directions."""

from __future__ import annotations

import grpc
import pytest
import trio
from error_details_support import (
    FAIL,
    MISMATCH,
    SCENARIOS,
    STREAM_FAIL,
    GrpcioServed,
    expect_rpc_error,
    grpcio_code,
    in_thread,
)
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

from puregrpc import StatusCode
from puregrpc.client import Channel
from puregrpc.error_details import (
    BadRequest,
    RetryInfo,
    StatusDetailsError,
    details_of,
    status_of,
    unpack_details,
)

pytestmark = pytest.mark.interop


def _grpcio_fail(
    channel: grpc.Channel, path: str, request: bytes
) -> tuple[grpc.StatusCode, str, status_pb2.Status | None]:
    """Call ``path`` from grpcio; return code, details and ``rpc_status.from_call``."""
    try:
        channel.unary_unary(path)(request, timeout=5)
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code(), exc.details(), rpc_status.from_call(exc)
    raise AssertionError("the call succeeded")


def _unpacked(status: status_pb2.Status) -> list[Message]:
    """``status.details`` unpacked by grpcio users' usual means (``Any.Unpack``)."""
    out: list[Message] = []
    for packed in status.details:
        if packed.type_url.startswith("type.googleapis.com/example.test."):
            out.append(packed)
            continue
        descriptor = descriptor_pool.Default().FindMessageTypeByName(packed.TypeName())
        message = message_factory.GetMessageClass(descriptor)()
        assert packed.Unpack(message)
        out.append(message)
    return out


# ------------------------------------------------------ puregrpc server -> grpcio client


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_grpcio_status_reads_our_rich_error(grpcio_channel: grpc.Channel, name: str) -> None:
    scenario = SCENARIOS[name]
    with trio.fail_after(10):
        code, details, status = await in_thread(
            lambda: _grpcio_fail(grpcio_channel, FAIL.path, name.encode())
        )
    assert grpcio_code(code) is scenario.code
    assert details == scenario.message
    # from_call raises ValueError unless code and message both agree.
    assert status is not None
    assert (status.code, status.message) == (scenario.code, scenario.message)
    assert _unpacked(status) == scenario.details


async def test_grpcio_status_reads_our_rich_error_after_a_stream(
    grpcio_channel: grpc.Channel,
) -> None:
    def run() -> tuple[list[bytes], status_pb2.Status | None]:
        call = grpcio_channel.unary_stream(STREAM_FAIL.path)(b"retry", timeout=5)
        received: list[bytes] = []
        with pytest.raises(grpc.RpcError):
            for response in call:
                received.append(response)
        return received, rpc_status.from_call(call)

    with trio.fail_after(10):
        received, status = await in_thread(run)
    assert received == [b"one", b"two"]
    assert status is not None and status.code == StatusCode.UNAVAILABLE
    retry = RetryInfo()
    assert status.details[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (3, 250_000_000)


# ------------------------------------------------------ grpcio server -> puregrpc client


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_we_read_grpcio_status_errors(grpcio_server: GrpcioServed, name: str) -> None:
    scenario = SCENARIOS[name]
    async with Channel(grpcio_server.target) as channel:
        with trio.fail_after(10):
            error = await expect_rpc_error(channel.unary_unary(FAIL, name.encode()))
    assert error.code is scenario.code
    assert error.details == scenario.message
    status = status_of(error)
    assert status is not None
    assert (status.code, status.message) == (scenario.code, scenario.message)
    assert unpack_details(error) == scenario.details


async def test_we_read_grpcio_non_ascii_details(grpcio_server: GrpcioServed) -> None:
    async with Channel(grpcio_server.target) as channel:
        with trio.fail_after(10):
            error = await expect_rpc_error(channel.unary_unary(FAIL, b"bad-request"))
    assert error.details == "Ungültige Anfrage: „E-Mail“ fehlt — 请重试 ✉️"
    (bad_request,) = details_of(error, BadRequest)
    assert bad_request.field_violations[1].description == "名前は必須です"


async def test_we_read_grpcio_status_after_a_stream(grpcio_server: GrpcioServed) -> None:
    received = []
    async with Channel(grpcio_server.target) as channel:
        call = channel.unary_stream(STREAM_FAIL, b"retry")

        async def read_all() -> None:
            async for response in call:
                received.append(response)

        with trio.fail_after(10):
            error = await expect_rpc_error(read_all())
    assert received == [b"one", b"two"]
    (retry,) = details_of(error, RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 3250


async def test_grpcio_server_code_mismatch_is_reported(grpcio_server: GrpcioServed) -> None:
    async with Channel(grpcio_server.target) as channel:
        with trio.fail_after(10):
            error = await expect_rpc_error(channel.unary_unary(MISMATCH, b""))
    assert error.code is StatusCode.NOT_FOUND
    with pytest.raises(StatusDetailsError, match=r"INTERNAL \(13\).*NOT_FOUND \(5\)"):
        status_of(error)
