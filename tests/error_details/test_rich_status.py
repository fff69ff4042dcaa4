"""Building and reading google.rpc.Status trailers, without a network."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st

import puregrpc.error_details
from puregrpc import Metadata, RpcError, Status, StatusCode
from puregrpc.error_details import (
    BadRequest,
    DebugInfo,
    ErrorInfo,
    RetryInfo,
    StatusDetailsError,
    details_of,
    error_from_status,
    rich_error,
    status_of,
    unpack_details,
)

NON_OK = [code for code in StatusCode if code is not StatusCode.OK]


def _error_with(status: status_pb2.Status, code: StatusCode | None = None) -> RpcError:
    """An RpcError as a client would get it: ``status`` in the details trailer."""
    return RpcError(
        StatusCode(status.code) if code is None else code,
        status.message,
        details_bin=status.SerializeToString(),
    )


# ------------------------------------------------------------------ sending


def test_rich_error_agrees_with_its_status() -> None:
    error = rich_error(
        StatusCode.INVALID_ARGUMENT,
        "bad email",
        [ErrorInfo(reason="EMAIL", domain="example.test"), DebugInfo(detail="trace")],
    )
    assert error.code is StatusCode.INVALID_ARGUMENT
    assert error.details == "bad email"
    assert error.details_bin is not None
    status = status_pb2.Status.FromString(error.details_bin)
    assert status.code == 3
    assert status.message == "bad email"
    assert [d.type_url for d in status.details] == [
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.DebugInfo",
    ]
    info = ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "EMAIL"


def test_rich_error_without_details_still_sends_a_status() -> None:
    error = rich_error(StatusCode.NOT_FOUND, "no such book")
    status = status_of(error)
    assert status is not None
    assert (status.code, status.message, len(status.details)) == (5, "no such book", 0)


def test_rich_error_keeps_a_packed_any_as_is() -> None:
    packed = any_pb2.Any(type_url="example.test/Opaque", value=b"\x01\x02")
    status = status_of(rich_error(StatusCode.INTERNAL, "x", [packed]))
    assert status is not None
    assert list(status.details) == [packed]


def test_rich_error_carries_trailing_metadata() -> None:
    trailing = Metadata([("x-request-id", "42")])
    error = rich_error(StatusCode.ABORTED, "retry", trailing_metadata=trailing)
    assert list(error.trailing_metadata) == [("x-request-id", "42")]


def test_rich_error_refuses_ok() -> None:
    with pytest.raises(ValueError, match="non-OK"):
        rich_error(StatusCode.OK, "fine", [ErrorInfo(reason="R")])


def test_error_from_status_sends_that_status() -> None:
    status = status_pb2.Status(code=int(StatusCode.RESOURCE_EXHAUSTED), message="quota")
    status.details.add().Pack(RetryInfo(retry_delay=duration_pb2.Duration(seconds=30)))
    error = error_from_status(status, trailing_metadata=Metadata([("x-a", "b")]))
    assert error.code is StatusCode.RESOURCE_EXHAUSTED
    assert error.details == "quota"
    assert error.details_bin == status.SerializeToString()
    assert list(error.trailing_metadata) == [("x-a", "b")]
    assert details_of(error, RetryInfo)[0].retry_delay.seconds == 30


@pytest.mark.parametrize(("code", "match"), [(0, "non-OK"), (17, "17 is not a gRPC status")])
def test_error_from_status_refuses_ok_and_unknown_codes(code: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        error_from_status(status_pb2.Status(code=code, message="m"))


# ------------------------------------------------------------------ reading


def test_no_trailer_means_no_status_and_no_details() -> None:
    error = RpcError(StatusCode.UNAVAILABLE, "down")
    assert status_of(error) is None
    assert unpack_details(error) == []
    assert details_of(error, ErrorInfo) == []


def test_a_wire_status_can_be_read_too() -> None:
    error = rich_error(StatusCode.DATA_LOSS, "lost", [ErrorInfo(reason="DISK")])
    wire = Status(code=error.code, details=error.details, details_bin=error.details_bin)
    assert [info.reason for info in details_of(wire, ErrorInfo)] == ["DISK"]
    status = status_of(wire)
    assert status is not None and status.message == "lost"


def test_unpack_details_unpacks_known_types_and_keeps_unknown_ones() -> None:
    unknown = any_pb2.Any(type_url="type.googleapis.com/example.test.Nope", value=b"\x08\x01")
    error = rich_error(
        StatusCode.FAILED_PRECONDITION,
        "m",
        [
            BadRequest(field_violations=[BadRequest.FieldViolation(field="a")]),
            unknown,
            wrappers_pb2.Int64Value(value=-5),
            ErrorInfo(reason="LAST"),
        ],
    )
    details = unpack_details(error)
    assert [type(d) for d in details] == [
        BadRequest,
        any_pb2.Any,
        wrappers_pb2.Int64Value,
        ErrorInfo,
    ]
    assert details[0] == BadRequest(field_violations=[BadRequest.FieldViolation(field="a")])
    assert details[1] == unknown
    assert details[2] == wrappers_pb2.Int64Value(value=-5)
    assert details[3] == ErrorInfo(reason="LAST")


def test_details_of_picks_one_type_in_order() -> None:
    error = rich_error(
        StatusCode.INVALID_ARGUMENT,
        "m",
        [ErrorInfo(reason="one"), DebugInfo(detail="d"), ErrorInfo(reason="two")],
    )
    assert [info.reason for info in details_of(error, ErrorInfo)] == ["one", "two"]
    assert [info.detail for info in details_of(error, DebugInfo)] == ["d"]
    assert details_of(error, RetryInfo) == []


def test_code_disagreeing_with_grpc_status_raises() -> None:
    inner = status_pb2.Status(code=int(StatusCode.INTERNAL), message="m")
    inner.details.add().Pack(ErrorInfo(reason="R"))
    error = _error_with(inner, StatusCode.NOT_FOUND)
    for read in (status_of, unpack_details, lambda e: details_of(e, ErrorInfo)):
        with pytest.raises(StatusDetailsError, match=r"INTERNAL \(13\).*NOT_FOUND \(5\)"):
            read(error)
    # grpcio-status raises ValueError on the same mismatch; so do we.
    assert issubclass(StatusDetailsError, ValueError)


def test_code_grpc_does_not_define_is_named_by_number() -> None:
    error = _error_with(status_pb2.Status(code=99, message="m"), StatusCode.UNKNOWN)
    with pytest.raises(
        StatusDetailsError, match="carries code 99, but the call ended with UNKNOWN"
    ):
        status_of(error)


def test_trailer_that_is_no_status_raises() -> None:
    error = RpcError(StatusCode.INTERNAL, "m", details_bin=b"\xff\xff\xff")
    with pytest.raises(StatusDetailsError, match=r"\(3 bytes\) is not a google.rpc.Status"):
        status_of(error)


def test_empty_trailer_is_a_status_with_code_ok_so_it_disagrees() -> None:
    error = RpcError(StatusCode.INTERNAL, "m", details_bin=b"")
    with pytest.raises(StatusDetailsError, match=r"carries code OK \(0\)"):
        status_of(error)


def test_message_may_differ_from_grpc_message() -> None:
    error = _error_with(status_pb2.Status(code=int(StatusCode.ABORTED), message="original"))
    rewritten = RpcError(error.code, "rewritten by a proxy", details_bin=error.details_bin)
    status = status_of(rewritten)
    assert status is not None and status.message == "original"


def test_corrupt_known_detail_raises_but_other_types_still_read() -> None:
    status = status_pb2.Status(code=int(StatusCode.INTERNAL), message="m")
    status.details.append(
        any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=b"\x0a\xff")
    )
    status.details.add().Pack(ErrorInfo(reason="fine"))
    error = _error_with(status)
    with pytest.raises(StatusDetailsError, match=r"detail google\.rpc\.RetryInfo is corrupt"):
        unpack_details(error)
    with pytest.raises(StatusDetailsError, match="corrupt"):
        details_of(error, RetryInfo)
    assert [info.reason for info in details_of(error, ErrorInfo)] == ["fine"]


@given(
    code=st.sampled_from(NON_OK),
    message=st.text(),
    reason=st.text(),
    metadata=st.dictionaries(st.text(), st.text(), max_size=4),
    seconds=st.integers(min_value=0, max_value=315_576_000_000),
    nanos=st.integers(min_value=0, max_value=999_999_999),
)
def test_round_trip_through_the_trailer_bytes(
    code: StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str],
    seconds: int,
    nanos: int,
) -> None:
    delay = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    sent = rich_error(
        code, message, [ErrorInfo(reason=reason, metadata=metadata), RetryInfo(retry_delay=delay)]
    )
    # What a client rebuilds from grpc-status, grpc-message and the trailer.
    received = RpcError(sent.code, sent.details, details_bin=sent.details_bin)
    (info,) = details_of(received, ErrorInfo)
    (retry,) = details_of(received, RetryInfo)
    assert (info.reason, dict(info.metadata)) == (reason, metadata)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (seconds, nanos)
    status = status_of(received)
    assert status is not None and (status.code, status.message) == (code, message)


# ------------------------------------------------------------------ the module


def test_module_docstring_example_runs() -> None:
    results = doctest.testmod(puregrpc.error_details, raise_on_error=False, verbose=False)
    assert results.attempted >= 3
    assert results.failed == 0


def test_missing_googleapis_common_protos_names_the_extra() -> None:
    # A fresh interpreter in which google.rpc cannot be imported.
    script = "import sys; sys.modules['google.rpc'] = None; import puregrpc.error_details"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: puregrpc.error_details needs")
    assert "googleapis-common-protos" in last_line
    assert "pip install 'puregrpc[error-details]'" in last_line
