"""ClientCallLogInterceptor: a start and an end line per call, however the call ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import Channel
from puregrpc.interceptors import ClientCallLogInterceptor
from puregrpc.server import ServicerContext
from puregrpc.testing import serve_in_memory
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub

LOGGER = "test.client.calls"


class Echo(EchoServicer):
    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        if request.message == "fail":
            await context.abort(StatusCode.NOT_FOUND, "no such thing")
        return EchoReply(message=request.message)

    async def ServerStream(
        self, request: EchoRequest, context: ServicerContext
    ) -> AsyncIterator[EchoReply]:
        for index in range(request.count):
            yield EchoReply(index=index)
            await trio.sleep(0.01)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


async def test_each_call_logs_its_start_and_its_end_with_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    log = ClientCallLogInterceptor(logging.getLogger(LOGGER))
    async with (
        serve_in_memory(Echo()) as served,
        Channel(connect=served.connect, interceptors=[log]) as channel,
    ):
        stub = EchoStub(channel)
        await stub.Unary(EchoRequest(message="hi"), timeout=5)
        assert len([r async for r in stub.ServerStream(EchoRequest(count=3))]) == 3
        with pytest.raises(RpcError):
            await stub.Unary(EchoRequest(message="fail"))
    logged = lines(caplog)
    assert [level for level, _ in logged] == [
        logging.DEBUG,
        logging.INFO,
        logging.DEBUG,
        logging.INFO,
        logging.DEBUG,
        logging.WARNING,
    ]
    assert logged[0][1].startswith("/puregrpc.testing.Echo/Unary started (deadline: ")
    assert "ended OK after" in logged[1][1]
    assert logged[1][1].endswith("1 message(s) sent, 1 received")
    assert logged[2][1].endswith("(deadline: none)")
    assert logged[3][1].endswith("1 message(s) sent, 3 received")
    assert "ended NOT_FOUND: no such thing" in logged[5][1]
    (record,) = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert record.grpc_code == "NOT_FOUND"  # type: ignore[attr-defined]


async def test_a_call_abandoned_early_is_logged_cancelled_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    log = ClientCallLogInterceptor(logging.getLogger(LOGGER))
    async with (
        serve_in_memory(Echo()) as served,
        Channel(connect=served.connect, interceptors=[log]) as channel,
    ):
        async with EchoStub(channel).ServerStream(EchoRequest(count=100)) as call:
            assert (await call.receive()) is not None
        with trio.fail_after(5), pytest.raises(RpcError):
            await call.receive()  # later reads see the cancellation; no second line
    ((level, line),) = lines(caplog)
    assert level == logging.WARNING
    assert "ServerStream ended CANCELLED: cancelled by the client" in line
    assert line.endswith("1 message(s) sent, 1 received")
