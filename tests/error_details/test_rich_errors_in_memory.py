"""Rich errors end to end in memory: raised by a puregrpc server, read by a puregrpc client."""

from __future__ import annotations

import pytest
import trio
from error_details_support import (
    FAIL,
    GARBAGE,
    MISMATCH,
    SCENARIOS,
    STREAM_FAIL,
    UNKNOWN_TYPE_URL,
    expect_rpc_error,
)
from google.protobuf import any_pb2, wrappers_pb2

from puregrpc import StatusCode
from puregrpc.client import Channel
from puregrpc.error_details import (
    BadRequest,
    ErrorInfo,
    LocalizedMessage,
    RetryInfo,
    StatusDetailsError,
    details_of,
    status_of,
    unpack_details,
)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_arrives_whole(channel: Channel, name: str) -> None:
    scenario = SCENARIOS[name]
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(FAIL, name.encode()))
    assert error.code is scenario.code
    assert error.details == scenario.message
    status = status_of(error)
    assert status is not None
    assert (status.code, status.message) == (scenario.code, scenario.message)
    assert unpack_details(error) == scenario.details


async def test_non_ascii_message_and_details(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(FAIL, b"bad-request"))
    # grpc-message went percent-encoded; the Status message as UTF-8 protobuf.
    assert error.details == "Ungültige Anfrage: „E-Mail“ fehlt — 请重试 ✉️"
    status = status_of(error)
    assert status is not None and status.message == error.details
    (bad_request,) = details_of(error, BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("email", "darf nicht leer sein"),
        ("name", "名前は必須です"),
    ]
    (localized,) = details_of(error, LocalizedMessage)
    assert (localized.locale, localized.message) == ("ja-JP", "メールアドレスがありません")


async def test_retry_info_delay_round_trips(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(FAIL, b"retry"))
    assert error.code is StatusCode.UNAVAILABLE
    (retry,) = details_of(error, RetryInfo)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (3, 250_000_000)
    assert retry.retry_delay.ToMilliseconds() == 3250
    (info,) = details_of(error, ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "OVERLOADED",
        "example.test",
        {"zone": "eu-1"},
    )


async def test_unknown_detail_stays_any_and_foreign_types_unpack(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(FAIL, b"foreign"))
    unknown, wrapped = unpack_details(error)
    assert isinstance(unknown, any_pb2.Any)
    assert (unknown.type_url, unknown.value) == (UNKNOWN_TYPE_URL, b"\x08\x07")
    assert wrapped == wrappers_pb2.StringValue(value="a wrapped string")


async def test_details_after_streamed_responses(channel: Channel) -> None:
    # Trailers that follow messages, not a Trailers-Only response.
    received = []
    with trio.fail_after(5):
        call = channel.unary_stream(STREAM_FAIL, b"retry")

        async def read_all() -> None:
            async for response in call:
                received.append(response)

        error = await expect_rpc_error(read_all())
    assert received == [b"one", b"two"]
    assert error.code is StatusCode.UNAVAILABLE
    assert [r.retry_delay.seconds for r in details_of(error, RetryInfo)] == [3]


async def test_server_code_disagreeing_with_its_status_is_reported(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(MISMATCH, b""))
    # The call's own status stands; only the details are refused.
    assert (error.code, error.details) == (StatusCode.NOT_FOUND, "not found")
    with pytest.raises(StatusDetailsError, match=r"INTERNAL.*NOT_FOUND"):
        status_of(error)


async def test_trailer_that_is_no_status_is_reported(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(channel.unary_unary(GARBAGE, b""))
    assert error.code is StatusCode.NOT_FOUND
    assert error.details_bin == b"\xff\xff\xff"
    with pytest.raises(StatusDetailsError, match=r"not a google\.rpc\.Status"):
        unpack_details(error)
