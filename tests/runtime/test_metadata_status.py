"""Metadata (incl. ``-bin``), trailers-only responses and status details, both ways."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import trio
from runtime_support import (
    ABORT,
    ECHO,
    HANG,
    STREAM_ABORT,
    GrpcioServed,
    Served,
    expect_rpc_error,
    in_thread,
)

from puregrpc import Metadata, StatusCode
from puregrpc.client import Channel

BINARY = bytes(range(256))
UNICODE = "ünïcödé ✓ 日本語 100% sure\ttab\r\nnewline 🙂"


def request_metadata() -> Metadata:
    return Metadata(
        [
            ("x-text", "plain value"),
            ("x-multi", "first"),
            ("x-multi", "second"),
            ("x-blob-bin", BINARY),
            ("x-empty-bin", b""),
        ]
    )


def assert_echoed(metadata: Metadata) -> None:
    assert metadata.get("x-text") == "plain value"
    assert metadata.get_all("x-multi") == ["first", "second"]
    assert metadata.get("x-blob-bin") == BINARY
    assert metadata.get("x-empty-bin") == b""


# ------------------------------------------------------------ puregrpc <-> puregrpc


async def test_metadata_round_trip_initial_and_trailing(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.unary_unary(ECHO, b"m", metadata=request_metadata())
        assert await call == b"m"
        assert_echoed(await call.initial_metadata())
        assert_echoed(call.trailing_metadata)


async def test_metadata_as_pairs(channel: Channel) -> None:
    with trio.fail_after(5):
        call = channel.unary_unary(ECHO, b"m", metadata=[("x-k", "v"), ("x-k-bin", b"\x00")])
        await call
        assert call.trailing_metadata.get("x-k") == "v"
        assert call.trailing_metadata.get("x-k-bin") == b"\x00"


async def test_oversized_request_metadata_is_refused(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(
            channel.unary_unary(ECHO, b"x", metadata=[("x-big", "a" * 20_000)])
        )
        assert error.code is StatusCode.RESOURCE_EXHAUSTED
        # Only that call fails.
        assert await channel.unary_unary(ECHO, b"next") == b"next"


async def test_trailers_only_response(channel: Channel) -> None:
    metadata = Metadata([("x-details", "no such thing"), ("x-why-bin", b"\xff\x00")])
    with trio.fail_after(5):
        call = channel.unary_unary(ABORT, b"%d" % StatusCode.NOT_FOUND, metadata=metadata)
        error = await expect_rpc_error(call)
    assert error.code is StatusCode.NOT_FOUND
    assert error.details == "no such thing"
    assert error.trailing_metadata.get("x-why-bin") == b"\xff\x00"
    assert len(error.initial_metadata) == 0
    assert call.code is StatusCode.NOT_FOUND
    assert call.details == "no such thing"
    assert call.trailing_metadata.get("x-why-bin") == b"\xff\x00"


async def test_error_after_messages(channel: Channel) -> None:
    metadata = Metadata([("x-details", "ran out")])
    with trio.fail_after(5):
        call = channel.unary_stream(STREAM_ABORT, b"%d" % StatusCode.ABORTED, metadata=metadata)
        assert await call.receive() == b"one"
        assert await call.receive() == b"two"
        error = await expect_rpc_error(call.receive())
    assert error.code is StatusCode.ABORTED
    assert error.details == "ran out"
    assert call.code is StatusCode.ABORTED


@pytest.mark.parametrize(
    "code", [c for c in StatusCode if c is not StatusCode.OK], ids=lambda c: c.name
)
async def test_every_status_code_round_trips(channel: Channel, code: StatusCode) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(
            channel.unary_unary(ABORT, b"%d" % code, metadata=[("x-details", code.name)])
        )
    assert error.code is code
    assert error.details == code.name


async def test_unicode_status_message(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(
            channel.unary_unary(
                ABORT,
                b"%d" % StatusCode.INVALID_ARGUMENT,
                metadata=[("x-details-bin", UNICODE.encode())],
            )
        )
    assert error.code is StatusCode.INVALID_ARGUMENT
    assert error.details == UNICODE


async def test_details_bin_round_trip(channel: Channel) -> None:
    with trio.fail_after(5):
        error = await expect_rpc_error(
            channel.unary_unary(
                ABORT,
                b"%d" % StatusCode.FAILED_PRECONDITION,
                metadata=[("x-details", "see details"), ("x-status-bin", BINARY)],
            )
        )
    assert error.code is StatusCode.FAILED_PRECONDITION
    assert error.details == "see details"
    assert error.details_bin == BINARY


async def test_initial_metadata_before_any_message(server: Served, channel: Channel) -> None:
    # HANG sends its headers and then waits forever without a message:
    # initial_metadata() must resolve from the HEADERS frame alone.
    with trio.fail_after(5):
        async with channel.unary_stream(HANG, b"silent", metadata=[("x-early", "yes")]) as call:
            initial = await call.initial_metadata()
            assert initial.get("x-early") == "yes"
            assert call.code is None


# ------------------------------------------------------------ grpcio client -> puregrpc


def grpcio_call(
    channel: grpc.Channel, path: str, request: bytes, metadata: tuple[tuple[str, Any], ...]
) -> tuple[Any, ...]:
    """A blocking unary call; returns (code, details, response, initial, trailing)."""
    multicallable = channel.unary_unary(path)
    try:
        response, call = multicallable.with_call(request, metadata=metadata, timeout=5)
    except grpc.RpcError as exc:
        return (
            exc.code(),
            exc.details(),
            None,
            dict(exc.initial_metadata() or ()),
            tuple(exc.trailing_metadata() or ()),
        )
    return (
        call.code(),
        call.details(),
        response,
        dict(call.initial_metadata() or ()),
        tuple(call.trailing_metadata() or ()),
    )


GRPCIO_METADATA = (
    ("x-text", "plain value"),
    ("x-multi", "first"),
    ("x-multi", "second"),
    ("x-blob-bin", BINARY),
)


@pytest.mark.interop
async def test_grpcio_client_metadata_round_trip(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    with trio.fail_after(5):
        code, _, response, initial, trailing = await in_thread(
            grpcio_call, grpcio_channel, ECHO.path, b"hi", GRPCIO_METADATA
        )
    assert code is grpc.StatusCode.OK
    assert response == b"hi"
    assert initial["x-text"] == "plain value"
    assert initial["x-blob-bin"] == BINARY
    assert [v for k, v in trailing if k == "x-multi"] == ["first", "second"]
    assert ("x-blob-bin", BINARY) in trailing


@pytest.mark.interop
async def test_grpcio_client_sees_puregrpc_error_status(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    metadata = (
        ("x-details-bin", UNICODE.encode()),
        ("x-status-bin", BINARY),
        ("x-extra-bin", b"\x01\x02"),
    )
    with trio.fail_after(5):
        code, details, _, initial, trailing = await in_thread(
            grpcio_call, grpcio_channel, ABORT.path, b"%d" % StatusCode.PERMISSION_DENIED, metadata
        )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert details == UNICODE
    assert ("x-extra-bin", b"\x01\x02") in trailing
    assert ("grpc-status-details-bin", BINARY) in trailing
    assert initial == {}


@pytest.mark.interop
async def test_grpcio_client_error_after_messages(
    server: Served, grpcio_channel: grpc.Channel
) -> None:
    def run() -> tuple[list[bytes], grpc.StatusCode, str]:
        responses = grpcio_channel.unary_stream(STREAM_ABORT.path)(
            b"%d" % StatusCode.DATA_LOSS, metadata=(("x-details", "lost"),), timeout=5
        )
        received = []
        try:
            for response in responses:
                received.append(response)
        except grpc.RpcError:
            pass
        return received, responses.code(), responses.details()

    with trio.fail_after(5):
        received, code, details = await in_thread(run)
    assert received == [b"one", b"two"]
    assert code is grpc.StatusCode.DATA_LOSS
    assert details == "lost"


# ------------------------------------------------------------ puregrpc client -> grpcio


@pytest.mark.interop
async def test_metadata_round_trip_with_grpcio_server(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            call = channel.unary_unary(ECHO, b"m", metadata=request_metadata())
            assert await call == b"m"
            assert_echoed(await call.initial_metadata())
            assert_echoed(call.trailing_metadata)
    received = dict(grpcio_server.probe.metadata)
    assert received["x-blob-bin"] == BINARY
    assert [v for k, v in grpcio_server.probe.metadata if k == "x-multi"] == ["first", "second"]


@pytest.mark.interop
async def test_grpcio_server_trailers_only_error(grpcio_server: GrpcioServed) -> None:
    metadata = [
        ("x-details-bin", UNICODE.encode()),
        ("x-status-bin", BINARY),
        ("x-why-bin", b"\xff\x00"),
    ]
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            error = await expect_rpc_error(
                channel.unary_unary(ABORT, b"%d" % StatusCode.UNAUTHENTICATED, metadata=metadata)
            )
    assert error.code is StatusCode.UNAUTHENTICATED
    assert error.details == UNICODE
    assert error.details_bin == BINARY
    assert error.trailing_metadata.get("x-why-bin") == b"\xff\x00"


@pytest.mark.interop
async def test_grpcio_server_error_after_messages(grpcio_server: GrpcioServed) -> None:
    with trio.fail_after(5):
        async with Channel(grpcio_server.target) as channel:
            call = channel.unary_stream(
                STREAM_ABORT, b"%d" % StatusCode.OUT_OF_RANGE, metadata=[("x-details", "end")]
            )
            assert await call.receive() == b"one"
            assert await call.receive() == b"two"
            error = await expect_rpc_error(call.receive())
    assert error.code is StatusCode.OUT_OF_RANGE
    assert error.details == "end"
