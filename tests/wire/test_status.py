"""Tests for puregrpc.wire._status: codes, grpc-message, grpc-status and synthesized statuses."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.wire import RemoteProtocolError, Status, StatusCode
from puregrpc.wire.codecs import (
    decode_grpc_message,
    encode_grpc_message,
    h2_error_to_code,
    http_status_to_code,
    parse_grpc_status,
    status_from_h2_reset,
)

# The interop suite's "special status message" (grpc/grpc doc/interop-test-descriptions.md).
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"


# --- StatusCode / Status -------------------------------------------------------------


def test_all_seventeen_codes_have_their_wire_values() -> None:
    expected = {
        "OK": 0,
        "CANCELLED": 1,
        "UNKNOWN": 2,
        "INVALID_ARGUMENT": 3,
        "DEADLINE_EXCEEDED": 4,
        "NOT_FOUND": 5,
        "ALREADY_EXISTS": 6,
        "PERMISSION_DENIED": 7,
        "RESOURCE_EXHAUSTED": 8,
        "FAILED_PRECONDITION": 9,
        "ABORTED": 10,
        "OUT_OF_RANGE": 11,
        "UNIMPLEMENTED": 12,
        "INTERNAL": 13,
        "UNAVAILABLE": 14,
        "DATA_LOSS": 15,
        "UNAUTHENTICATED": 16,
    }
    assert {code.name: code.value for code in StatusCode} == expected


def test_status_defaults_and_ok() -> None:
    status = Status(code=StatusCode.OK)
    assert status.ok
    assert status.details == ""
    assert status.details_bin is None
    assert not Status(code=StatusCode.CANCELLED, details="bye").ok


def test_status_is_frozen_slotted_and_keyword_only() -> None:
    status = Status(code=StatusCode.INTERNAL, details_bin=b"\x08\x0d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.code = StatusCode.OK  # type: ignore[misc]
    assert not hasattr(status, "__dict__")
    with pytest.raises(TypeError):
        Status(StatusCode.OK)  # type: ignore[call-arg]


# --- grpc-message ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("", ""),
        ("plain message", "plain message"),
        ("100%", "100%25"),
        ("%25", "%2525"),
        ("tab\there", "tab%09here"),
        ("line\nbreak", "line%0Abreak"),
        ("del\x7f", "del%7F"),
        ("é", "%C3%A9"),
        ("☺", "%E2%98%BA"),
        ("😈", "%F0%9F%98%88"),
        ("~ !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}", "~ !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}"),
    ],
)
def test_encode_grpc_message_examples(text: str, encoded: str) -> None:
    assert encode_grpc_message(text) == encoded
    assert decode_grpc_message(encoded) == text
    assert decode_grpc_message(encoded.encode("ascii")) == text


def test_encode_fast_path_returns_the_same_object() -> None:
    message = "nothing to escape here"
    assert encode_grpc_message(message) is message


def test_special_interop_message_round_trips() -> None:
    encoded = encode_grpc_message(SPECIAL_MESSAGE)
    assert encoded == (
        "%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and non-BMP %F0%9F%98%88%09%0A"
    )
    assert decode_grpc_message(encoded) == SPECIAL_MESSAGE
    assert decode_grpc_message(encoded.encode("ascii")) == SPECIAL_MESSAGE


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("%", "%"),
        ("%%", "%%"),
        ("%G1", "%G1"),
        ("%1G", "%1G"),
        ("abc%4", "abc%4"),
        ("%4", "%4"),
        ("a%2", "a%2"),
        ("%41%", "A%"),
        ("%%41", "%A"),
        ("%e2%98%ba", "☺"),  # lower-case hex is accepted on receipt
        ("%FF", "\ufffd"),  # invalid UTF-8 -> replacement character
        ("ok %E2%98 cut", "ok \ufffd cut"),
    ],
)
def test_decode_is_tolerant_of_broken_escapes(value: str, decoded: str) -> None:
    assert decode_grpc_message(value) == decoded
    assert decode_grpc_message(value.encode("ascii")) == decoded


def test_decode_raw_utf8_bytes_without_escapes() -> None:
    assert decode_grpc_message("héllo ☺".encode()) == "héllo ☺"
    assert decode_grpc_message(b"bad \xff byte") == "bad \ufffd byte"


def test_decode_str_is_taken_as_received_octets() -> None:
    # A str made by latin-1-decoding raw UTF-8 octets is re-read as UTF-8.
    assert decode_grpc_message("h\xc3\xa9%21") == "hé!"
    # Text that cannot be octets (non-latin-1) is kept as Unicode.
    assert decode_grpc_message("☺ %21") == "☺ !"


def test_encode_lone_surrogate_does_not_raise() -> None:
    encoded = encode_grpc_message("x\ud800y")
    assert encoded == "x%ED%A0%80y"
    assert decode_grpc_message(encoded) == "x\ufffd\ufffd\ufffdy"


@given(st.text())
def test_encode_decode_round_trip(text: str) -> None:
    encoded = encode_grpc_message(text)
    assert decode_grpc_message(encoded) == text
    # Always printable ASCII, so always a legal header value.
    assert encoded.isascii() and encoded.isprintable()


@given(st.binary())
def test_decode_never_raises(raw: bytes) -> None:
    assert isinstance(decode_grpc_message(raw), str)
    assert isinstance(decode_grpc_message(raw.decode("latin-1")), str)


# --- grpc-status -----------------------------------------------------------------------


@pytest.mark.parametrize("code", list(StatusCode))
def test_parse_every_known_code(code: StatusCode) -> None:
    assert parse_grpc_status(str(int(code))) is code
    assert parse_grpc_status(str(int(code)).encode()) is code


@pytest.mark.parametrize("value", ["17", "99", "1000", b"4294967296", "9" * 5000])
def test_parse_unknown_codes_become_unknown(value: str | bytes) -> None:
    assert parse_grpc_status(value) is StatusCode.UNKNOWN


@pytest.mark.parametrize(("value", "code"), [("00", 0), ("014", 14), (b"0013", 13), ("017", 2)])
def test_parse_tolerates_leading_zeros(value: str | bytes, code: int) -> None:
    assert parse_grpc_status(value) == code


@pytest.mark.parametrize(
    "value", ["", b"", "-1", "+1", " 0", "0 ", "1.0", "0x1", "ok", "²", "\u0661", b"\xff", "1e3"]
)
def test_parse_rejects_non_decimal(value: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed grpc-status") as info:
        parse_grpc_status(value)
    assert info.value.code is StatusCode.UNKNOWN
    assert repr(value) in str(info.value)


def test_parse_error_quotes_a_huge_value_briefly() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_grpc_status("x" * 10_000)
    assert len(str(info.value)) < 200


# --- synthesized statuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (400, StatusCode.INTERNAL),
        (401, StatusCode.UNAUTHENTICATED),
        (403, StatusCode.PERMISSION_DENIED),
        (404, StatusCode.UNIMPLEMENTED),
        (429, StatusCode.UNAVAILABLE),
        (431, StatusCode.INTERNAL),
        (502, StatusCode.UNAVAILABLE),
        (503, StatusCode.UNAVAILABLE),
        (504, StatusCode.UNAVAILABLE),
        (200, StatusCode.UNKNOWN),
        (100, StatusCode.UNKNOWN),
        (302, StatusCode.UNKNOWN),
        (415, StatusCode.UNKNOWN),
        (500, StatusCode.UNKNOWN),
        (599, StatusCode.UNKNOWN),
    ],
)
def test_http_status_mapping(http_status: int, code: StatusCode) -> None:
    assert http_status_to_code(http_status) is code


@pytest.mark.parametrize(
    ("error_code", "code"),
    [
        (0x0, StatusCode.INTERNAL),  # NO_ERROR
        (0x1, StatusCode.INTERNAL),  # PROTOCOL_ERROR
        (0x2, StatusCode.INTERNAL),  # INTERNAL_ERROR
        (0x3, StatusCode.INTERNAL),  # FLOW_CONTROL_ERROR
        (0x4, StatusCode.INTERNAL),  # SETTINGS_TIMEOUT
        (0x5, StatusCode.INTERNAL),  # STREAM_CLOSED
        (0x6, StatusCode.INTERNAL),  # FRAME_SIZE_ERROR
        (0x7, StatusCode.UNAVAILABLE),  # REFUSED_STREAM
        (0x8, StatusCode.CANCELLED),  # CANCEL
        (0x9, StatusCode.INTERNAL),  # COMPRESSION_ERROR
        (0xA, StatusCode.INTERNAL),  # CONNECT_ERROR
        (0xB, StatusCode.RESOURCE_EXHAUSTED),  # ENHANCE_YOUR_CALM
        (0xC, StatusCode.PERMISSION_DENIED),  # INADEQUATE_SECURITY
        (0xD, StatusCode.INTERNAL),  # HTTP_1_1_REQUIRED
        (0xE, StatusCode.INTERNAL),  # unknown
        (0xFFFF_FFFF, StatusCode.INTERNAL),  # unknown
    ],
)
def test_h2_error_mapping(error_code: int, code: StatusCode) -> None:
    assert h2_error_to_code(error_code) is code
    assert status_from_h2_reset(error_code).code is code


def test_h2_error_mapping_accepts_h2_enum() -> None:
    from h2.errors import ErrorCodes

    assert h2_error_to_code(ErrorCodes.CANCEL) is StatusCode.CANCELLED
    assert h2_error_to_code(ErrorCodes.REFUSED_STREAM) is StatusCode.UNAVAILABLE


def test_status_from_h2_reset_messages() -> None:
    cancel = status_from_h2_reset(8)
    assert cancel == Status(
        code=StatusCode.CANCELLED, details="stream reset by peer with error code CANCEL (8)"
    )
    assert "REFUSED_STREAM (7)" in status_from_h2_reset(7).details
    assert "bandwidth" in status_from_h2_reset(11).details
    assert "UNKNOWN (99)" in status_from_h2_reset(99).details
    assert not status_from_h2_reset(0).ok
