"""Call options: one CallOptions or the same keywords, merged with the channel's defaults."""

from __future__ import annotations

import dataclasses

import pytest
import trio
from client_calls_support import ReportingEcho, echo_channel

from puregrpc import Metadata, RpcError, StatusCode
from puregrpc.client import CallOptions, ChannelOptions
from puregrpc.runtime import Cardinality, raw_method
from puregrpc.testing.protos.echo_pb2 import EchoReply, EchoRequest
from puregrpc.testing.protos.echo_puregrpc import EchoStub
from puregrpc.wire import LocalProtocolError


def test_call_options_are_frozen_and_check_their_values() -> None:
    options = CallOptions(timeout=2, metadata={"x-a": "1"})
    assert options.metadata == Metadata([("x-a", "1")])
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="non-negative"):
        CallOptions(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        CallOptions(timeout=float("nan"))
    with pytest.raises(LocalProtocolError, match="'Bad Key' contains characters"):
        CallOptions(metadata={"Bad Key": "v"})


def test_merged_lets_set_fields_win_and_adds_metadata() -> None:
    defaults = CallOptions(timeout=10, metadata=[("x-a", "1")], compression="gzip")
    merged = defaults.merged(CallOptions(timeout=1, metadata=[("x-b", "2")]))
    assert merged.timeout == 1
    assert merged.compression == "gzip"
    assert merged.wait_for_ready is None
    assert merged.metadata == Metadata([("x-a", "1"), ("x-b", "2")])
    assert defaults.metadata == Metadata([("x-a", "1")])  # the defaults are untouched


async def test_channel_defaults_and_call_options_meet_in_one_merge() -> None:
    service = ReportingEcho()
    defaults = CallOptions(timeout=30, metadata=[("x-channel", "c")], compression="gzip")
    async with echo_channel(service, options=ChannelOptions(call_defaults=defaults)) as channel:
        stub = EchoStub(channel)
        await stub.Unary(EchoRequest(message="a"))
        await stub.Unary(
            EchoRequest(message="b"),
            options=CallOptions(timeout=5, metadata=[("x-call", "o")]),
            metadata=[("x-keyword", "k")],
            compression="identity",
        )
    first, second = service.seen
    assert first.metadata.get_all("x-channel") == ["c"]
    assert first.time_remaining is not None and 25 < first.time_remaining <= 30
    assert first.compressed == [True]
    # Metadata adds up (channel, options, keywords); a keyword wins over options.
    assert [k for k, _ in second.metadata if k.startswith("x-")] == [
        "x-channel",
        "x-call",
        "x-keyword",
    ]
    assert second.time_remaining is not None and second.time_remaining <= 5
    assert second.compressed == [False]  # "identity" turns the channel's gzip off


async def test_keyword_forms_work_on_every_call_type() -> None:
    service = ReportingEcho()
    async with echo_channel(service) as channel:
        stub = EchoStub(channel)
        metadata = {"x-k": "v"}
        await stub.Unary(EchoRequest(message="u"), timeout=5, metadata=metadata)
        replies = [
            r async for r in stub.ServerStream(EchoRequest(count=2), timeout=5, metadata=metadata)
        ]
        joined = await stub.ClientStream(
            [EchoRequest(message="x"), EchoRequest(message="y")],
            timeout=5,
            metadata=metadata,
            compression="gzip",
        )
        echoed = [r async for r in stub.Bidi([EchoRequest(message="z")], wait_for_ready=True)]
    assert len(replies) == 2
    assert joined.message == "x+y"
    assert [r.message for r in echoed] == ["z"]
    assert [s.metadata.get_all("x-k") for s in service.seen[:3]] == [["v"]] * 3
    assert service.seen[2].compressed == [True, True]
    assert service.seen[3].time_remaining is None


async def test_raw_channel_methods_take_the_same_options() -> None:
    service = ReportingEcho()
    async with echo_channel(service) as channel:
        method = raw_method("/puregrpc.testing.Echo/Unary", Cardinality.UNARY_UNARY)
        request = EchoRequest(message="raw").SerializeToString()
        reply = await channel.unary_unary(
            method, request, options=CallOptions(metadata=[("x-r", "1")]), timeout=5
        )
    assert EchoReply.FromString(reply).message == "raw"
    assert service.seen[0].metadata.get_all("x-r") == ["1"]


async def test_an_unknown_keyword_is_a_type_error_naming_it() -> None:
    async with echo_channel(ReportingEcho()) as channel:
        with pytest.raises(TypeError, match=r"unknown call option.*tiemout"):
            EchoStub(channel).Unary(EchoRequest(), tiemout=1)  # type: ignore[call-arg]


async def test_a_timeout_from_options_ends_the_call_deadline_exceeded() -> None:
    async with echo_channel(ReportingEcho()) as channel:
        call = EchoStub(channel).Bidi(options=CallOptions(timeout=0.2))
        with trio.fail_after(5), pytest.raises(RpcError) as caught:
            await call.receive()
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
