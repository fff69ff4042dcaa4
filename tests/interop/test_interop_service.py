"""Server features beyond the 18 cases: HalfDuplexCall, interval_us, bad requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from puregrpc.client import Channel
from puregrpc.interop.protos import messages_pb2, test_puregrpc
from puregrpc.interop.server import make_server
from puregrpc.wire import RpcError, StatusCode


@pytest.fixture
async def stub() -> AsyncIterator[test_puregrpc.TestServiceStub]:
    server = make_server()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, "127.0.0.1", 0)
        async with Channel(f"127.0.0.1:{port}") as channel:
            yield test_puregrpc.TestServiceStub(channel)
        await server.stop(grace=1)


def _request(*sizes: int, interval_us: int = 0) -> messages_pb2.StreamingOutputCallRequest:
    return messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(size=size, interval_us=interval_us) for size in sizes
        ]
    )


async def test_half_duplex_answers_after_the_half_close(
    stub: test_puregrpc.TestServiceStub,
) -> None:
    with trio.fail_after(10):
        call = stub.HalfDuplexCall(timeout=5)
        async with call:
            await call.send(_request(3))
            await call.send(_request(5, 7))
            await call.done_writing()
            sizes = [len(r.payload.body) async for r in call]
    assert sizes == [3, 5, 7]


async def test_interval_us_is_observed(stub: test_puregrpc.TestServiceStub) -> None:
    with trio.fail_after(10):
        call = stub.StreamingOutputCall(_request(1, 2, interval_us=20_000), timeout=5)
        sizes = [len(r.payload.body) async for r in call]
    assert sizes == [1, 2]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (messages_pb2.SimpleRequest(response_size=-1), StatusCode.INVALID_ARGUMENT),
        (messages_pb2.SimpleRequest(response_size=1 << 30), StatusCode.INVALID_ARGUMENT),
        (messages_pb2.SimpleRequest(response_type=7), StatusCode.INVALID_ARGUMENT),
        (
            messages_pb2.SimpleRequest(response_status=messages_pb2.EchoStatus(code=99)),
            StatusCode.UNKNOWN,
        ),
    ],
)
async def test_bad_unary_requests_get_a_clear_status(
    stub: test_puregrpc.TestServiceStub, request_: messages_pb2.SimpleRequest, code: StatusCode
) -> None:
    with trio.fail_after(10), pytest.raises(RpcError) as caught:
        await stub.UnaryCall(request_, timeout=5)
    assert caught.value.code == code


async def test_methods_outside_the_features_are_unimplemented(
    stub: test_puregrpc.TestServiceStub,
) -> None:
    with trio.fail_after(10), pytest.raises(RpcError) as caught:
        await stub.CacheableUnaryCall(messages_pb2.SimpleRequest(), timeout=5)
    assert caught.value.code == StatusCode.UNIMPLEMENTED
