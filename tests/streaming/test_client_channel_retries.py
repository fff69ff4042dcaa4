"""The helpers' channel retries the service's reads before any response (gRFC A6)."""

from __future__ import annotations

import pytest

from puregrpc import RpcError, StatusCode
from puregrpc.server import Server, ServicerContext
from puregrpc_streaming.client_helpers import RETRIED_READS, open_channel
from puregrpc_streaming.protos import streaming_pb2
from puregrpc_streaming.protos.streaming_puregrpc import (
    StreamingServiceServicer,
    StreamingServiceStub,
)


class Flaky(StreamingServiceServicer):
    """GetData fails UNAVAILABLE ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[str | None] = []

    async def GetData(
        self, request: streaming_pb2.GetDataRequest, context: ServicerContext
    ) -> streaming_pb2.GetDataResponse:
        previous = context.invocation_metadata().get("grpc-previous-rpc-attempts")
        self.attempts.append(previous if isinstance(previous, str) else None)
        if len(self.attempts) <= self.failures:
            raise RpcError(StatusCode.UNAVAILABLE, "warming up")
        return streaming_pb2.GetDataResponse(key=request.key, value=b"v", version=1)


async def test_a_read_that_fails_unavailable_is_retried_by_the_channel() -> None:
    service = Flaky(failures=2)
    server = Server([service])
    async with (
        server.listening("127.0.0.1", 0),
        open_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        reply = await StreamingServiceStub(channel).GetData(
            streaming_pb2.GetDataRequest(key="k"), timeout=10
        )
    assert (reply.key, reply.value) == ("k", b"v")
    assert service.attempts == [None, "1", "2"]


async def test_retries_stop_at_the_policy_s_attempts() -> None:
    service = Flaky(failures=10)
    server = Server([service])
    async with (
        server.listening("127.0.0.1", 0),
        open_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        with pytest.raises(RpcError) as caught:
            await StreamingServiceStub(channel).GetData(
                streaming_pb2.GetDataRequest(key="k"), timeout=10
            )
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert len(service.attempts) == 4
    assert "GetData" in RETRIED_READS and "UploadFile" not in RETRIED_READS
