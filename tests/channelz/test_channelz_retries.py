"""Channelz under retries: a channel counts each call once, its subchannel each attempt."""

from __future__ import annotations

import json

from puregrpc import RpcError, StatusCode
from puregrpc.client import ChannelOptions
from puregrpc.server import ServicerContext
from puregrpc.testing import serve_in_memory
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoServicer, EchoStub

RETRIES = ChannelOptions(
    service_config=json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": "puregrpc.testing.Echo"}],
                    "retryPolicy": {
                        "maxAttempts": 4,
                        "initialBackoff": "0.01s",
                        "maxBackoff": "0.02s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )
)


class FailsTwice(EchoServicer):
    """Each message fails its first two attempts UNAVAILABLE; "never" always fails."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def Unary(self, request: EchoRequest, context: ServicerContext) -> EchoReply:
        count = self.seen[request.message] = self.seen.get(request.message, 0) + 1
        if request.message == "never" or count <= 2:
            raise RpcError(StatusCode.UNAVAILABLE, f"attempt {count} refused")
        return EchoReply(message=request.message)


async def test_a_call_retried_twice_is_one_call_and_three_attempts() -> None:
    async with (
        serve_in_memory(FailsTwice(), channel_options=RETRIES) as served,
        served.channel() as channel,
    ):
        stub = EchoStub(channel)
        assert (await stub.Unary(EchoRequest(message="a"), timeout=5)).message == "a"
        try:
            await stub.Unary(EchoRequest(message="never"), timeout=5)
        except RpcError as exc:
            assert exc.code is StatusCode.UNAVAILABLE
        else:
            raise AssertionError("the always-failing call succeeded")
        snapshot = channel.channelz()
        server = served.server.channelz()
    calls = snapshot.calls
    assert (calls.started, calls.succeeded, calls.failed) == (2, 1, 1)
    (subchannel,) = snapshot.subchannels
    # 3 attempts for "a" (2 refused), 4 for "never" (maxAttempts).
    assert (subchannel.calls.started, subchannel.calls.succeeded) == (7, 1)
    assert subchannel.calls.failed == 6
    assert (server.calls.started, server.calls.succeeded, server.calls.failed) == (7, 1, 6)
