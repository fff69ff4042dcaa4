"""Tests for puregrpc.wire._metadata: validation, lookups and the header codec."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.wire import (
    DEFAULT_MAX_METADATA_SIZE,
    LocalProtocolError,
    Metadata,
    MetadataValue,
    RemoteProtocolError,
    StatusCode,
)
from puregrpc.wire.codecs import validate_key

# --- container behaviour -------------------------------------------------------------


def test_order_and_repeated_values_are_kept() -> None:
    md = Metadata([("b", "1"), ("a", "2"), ("b", "3"), ("c-bin", b"\x00")])
    assert list(md) == [("b", "1"), ("a", "2"), ("b", "3"), ("c-bin", b"\x00")]
    assert len(md) == 4
    assert md.keys() == ["b", "a", "c-bin"]
    assert md.get_all("b") == ["1", "3"]
    assert md["b"] == "1"
    assert md.get("b") == "1"
    md.add("a", "4")
    assert md.get_all("a") == ["2", "4"]
    assert list(md)[-1] == ("a", "4")


def test_keys_are_case_insensitive_and_stored_lower_case() -> None:
    md = Metadata([("X-Request-ID", "abc")])
    md.add("x-REQUEST-id", "def")
    assert list(md) == [("x-request-id", "abc"), ("x-request-id", "def")]
    assert md["X-REQUEST-ID"] == "abc"
    assert md.get_all("X-Request-Id") == ["abc", "def"]
    assert "X-Request-Id" in md
    assert md.get("X-REQUEST-ID") == "abc"


def test_missing_keys() -> None:
    md = Metadata()
    assert len(md) == 0
    assert not md
    assert md.get("nope") is None
    assert md.get("nope", "fallback") == "fallback"
    assert md.get_all("nope") == []
    assert "nope" not in md
    assert 42 not in md
    with pytest.raises(KeyError, match="nope"):
        md["nope"]


def test_mapping_constructor() -> None:
    mapping: dict[str, MetadataValue] = {"Authorization": "Bearer t", "trace-bin": b"\x01\x02"}
    md = Metadata(mapping)
    assert list(md) == [("authorization", "Bearer t"), ("trace-bin", b"\x01\x02")]


def test_bytearray_and_memoryview_become_bytes() -> None:
    pairs = [("a-bin", bytearray(b"\x01")), ("b-bin", memoryview(b"\x02"))]
    md = Metadata(pairs)  # type: ignore[arg-type]
    assert list(md) == [("a-bin", b"\x01"), ("b-bin", b"\x02")]
    assert all(type(value) is bytes for _, value in md)


def test_equality_copy_and_extend() -> None:
    md = Metadata([("a", "1"), ("b-bin", b"2")])
    clone = md.copy()
    assert clone == md
    assert clone is not md
    clone.add("c", "3")
    assert clone != md
    assert len(md) == 2
    assert md != [("a", "1"), ("b-bin", b"2")]
    assert Metadata([("a", "1"), ("b", "2")]) != Metadata([("b", "2"), ("a", "1")])

    md.extend(Metadata([("z", "9")]))
    md.extend([("Y", "8")])
    md.extend({"x": "7"})
    assert md.keys() == ["a", "b-bin", "z", "y", "x"]


def test_extend_is_all_or_nothing() -> None:
    md = Metadata([("a", "1")])
    with pytest.raises(LocalProtocolError):
        md.extend([("b", "2"), ("grpc-status", "0")])
    assert list(md) == [("a", "1")]


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Metadata())


def test_repr_is_short() -> None:
    md = Metadata([("a", "1"), ("big-bin", b"\x00" * 10_000)])
    text = repr(md)
    assert text.startswith("Metadata([('a', '1'), ('big-bin', b'\\x00")
    assert len(text) < 300


# --- validation ------------------------------------------------------------------------

RESERVED = [
    ":path",
    ":authority",
    ":status",
    "grpc-status",
    "grpc-message",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-status-details-bin",
    "grpc-anything",
    "content-type",
    "te",
    "user-agent",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "GRPC-Status",
    "Content-Type",
]


@pytest.mark.parametrize("key", RESERVED)
def test_reserved_keys_are_refused(key: str) -> None:
    with pytest.raises(LocalProtocolError, match="reserved for gRPC itself") as info:
        validate_key(key)
    assert repr(key) in str(info.value)
    with pytest.raises(LocalProtocolError, match="reserved"):
        Metadata().add(key, "v")
    with pytest.raises(LocalProtocolError, match="reserved"):
        Metadata([(key, "v")])


@pytest.mark.parametrize("key", ["a b", "a:b", "a/b", "é", "a\x00", "k\u212a", "tab\t", "x=y"])
def test_bad_key_characters(key: str) -> None:
    with pytest.raises(LocalProtocolError, match="0-9 a-z _ - ") as info:
        validate_key(key)
    assert repr(key) in str(info.value)


def test_empty_and_non_str_keys() -> None:
    with pytest.raises(LocalProtocolError, match="must not be empty"):
        validate_key("")
    with pytest.raises(LocalProtocolError, match="must be a str, got bytes"):
        validate_key(b"key")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["a", "x-request-id", "my_key.v2", "0", "trace-bin", "-", "grpc"])
def test_good_keys(key: str) -> None:
    assert validate_key(key) == key
    assert validate_key(key.upper()) == key


def test_bin_key_requires_bytes() -> None:
    with pytest.raises(LocalProtocolError, match=r"'trace-bin' ends in '-bin'.*must be bytes"):
        Metadata().add("trace-bin", "text")


@pytest.mark.parametrize("value", ["caf\xe9", "tab\there", "new\nline", "\x7f", "\x00", "☺"])
def test_ascii_key_requires_printable_ascii(value: str) -> None:
    with pytest.raises(LocalProtocolError, match=r"'k' must be printable ASCII.*'-bin'"):
        Metadata().add("k", value)


def test_ascii_key_refuses_bytes() -> None:
    with pytest.raises(LocalProtocolError, match=r"must be a str, got bytes.*'-bin'"):
        Metadata().add("k", b"raw")
    with pytest.raises(LocalProtocolError, match="must be a str, got int"):
        Metadata().add("k", 3)  # type: ignore[arg-type]


def test_ascii_value_edge_cases_accepted() -> None:
    md = Metadata([("k", ""), ("k", " ~ spaced ~ "), ("k", "".join(map(chr, range(0x20, 0x7F))))])
    assert len(md) == 3


# --- size and header encoding ----------------------------------------------------------


def test_size_counts_like_http2() -> None:
    md = Metadata([("ab", "xyz"), ("d-bin", b"\x00\x01")])
    # 2 + 3 + 32, then 5 + len("AAE") + 32.
    assert md.size == 37 + 40
    assert md.size == sum(len(n) + len(v) + 32 for n, v in md.to_headers())


def test_to_headers_encodes_bin_unpadded() -> None:
    md = Metadata([("a", "1"), ("x-bin", b"\xfb\xff"), ("y-bin", b""), ("z-bin", b"abc")])
    assert md.to_headers() == [
        (b"a", b"1"),
        (b"x-bin", b"+/8"),  # standard alphabet, not URL-safe; no '='
        (b"y-bin", b""),
        (b"z-bin", b"YWJj"),
    ]


REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Svc/Method"),
    (b":authority", b"localhost"),
    (b":protocol", b"future-pseudo"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
    (b"grpc-timeout", b"1S"),
    (b"grpc-encoding", b"gzip"),
    (b"grpc-accept-encoding", b"gzip"),
    (b"grpc-message-type", b"pkg.Req"),
    (b"grpc-trace-bin", b"AAE"),
    (b"user-agent", b"grpc-python/1.0"),
    (b"x-request-id", b"abc"),
    (b"trace-bin", b"AAE"),
]


def test_from_headers_skips_transport_headers_but_keeps_user_agent() -> None:
    md = Metadata.from_headers(REQUEST_HEADERS)
    assert list(md) == [
        ("user-agent", "grpc-python/1.0"),
        ("x-request-id", "abc"),
        ("trace-bin", b"\x00\x01"),
    ]


def test_from_headers_skips_trailer_headers() -> None:
    trailers = [
        (b"grpc-status", b"3"),
        (b"grpc-message", b"bad"),
        (b"grpc-status-details-bin", b"CAM"),
        (b"why", b"because"),
    ]
    assert list(Metadata.from_headers(trailers)) == [("why", "because")]


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"YQ", b"a"),
        (b"YQ==", b"a"),
        (b"YQ=", b"a"),
        (b"YWI", b"ab"),
        (b"YWI=", b"ab"),
        (b"YWJj", b"abc"),
        (b"", b""),
        (b"+/8", b"\xfb\xff"),
        (b"+/8=", b"\xfb\xff"),
    ],
)
def test_from_headers_accepts_padded_and_unpadded_base64(wire: bytes, value: bytes) -> None:
    assert Metadata.from_headers([(b"k-bin", wire)]).get_all("k-bin") == [value]


def test_from_headers_splits_comma_joined_bin_values() -> None:
    md = Metadata.from_headers([(b"k-bin", b"YQ, YWI=,YWJj"), (b"plain", b"a, b")])
    assert md.get_all("k-bin") == [b"a", b"ab", b"abc"]
    assert md.get_all("plain") == ["a, b"]  # only binary headers are split


@pytest.mark.parametrize("wire", [b"Y", b"YQ==YQ", b"-_8", b"YQ!", b"=YQ", b"YQ\n", b"Y,YQ"])
def test_from_headers_rejects_malformed_base64(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="'k-bin' has a malformed base64") as info:
        Metadata.from_headers([(b"k-bin", wire)])
    assert info.value.code is StatusCode.INTERNAL


def test_from_headers_decodes_non_ascii_values_as_latin1_and_can_echo_them() -> None:
    md = Metadata.from_headers([(b"k", b"caf\xe9\x80")])
    assert md["k"] == "caf\xe9\x80"
    echoed = Metadata(md)  # received metadata may be sent back unchanged
    assert echoed.to_headers() == [(b"k", b"caf\xe9\x80")]


def test_from_headers_enforces_max_size() -> None:
    headers = [(b"k", b"v" * 100), (b"other", b"v" * 100), (b"x-bin", b"!!!!")]
    total = sum(len(n) + len(v) + 32 for n, v in headers)
    # Exactly at the limit is fine.
    with pytest.raises(RemoteProtocolError, match="malformed base64"):
        Metadata.from_headers(headers, max_size=total)
    with pytest.raises(RemoteProtocolError) as info:
        Metadata.from_headers(headers, max_size=total - 1)
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
    # Both sizes are reported, and the over-limit check fired before decoding
    # the malformed value (no INTERNAL error).
    assert f"{total} bytes" in str(info.value)
    assert f"limit of {total - 1} bytes" in str(info.value)


def test_from_headers_counts_skipped_headers_too() -> None:
    headers = [(b":path", b"/" + b"p" * 200), (b"k", b"v")]
    with pytest.raises(RemoteProtocolError) as info:
        Metadata.from_headers(headers, max_size=200)
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED


def test_default_max_size() -> None:
    assert DEFAULT_MAX_METADATA_SIZE == 16 * 1024
    big = [(b"k", b"v" * (DEFAULT_MAX_METADATA_SIZE - 33))]
    assert len(Metadata.from_headers(big)) == 1
    with pytest.raises(RemoteProtocolError):
        Metadata.from_headers([(b"k", b"v" * (DEFAULT_MAX_METADATA_SIZE - 32))])


# --- round trip (hypothesis) -----------------------------------------------------------

_KEY_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz_-."
_RESERVED_SET = frozenset(RESERVED)
_base_keys = st.text(_KEY_ALPHABET, min_size=1, max_size=20).filter(
    lambda k: k not in _RESERVED_SET and not k.startswith("grpc-")
)
_ascii_pairs = st.tuples(
    _base_keys.filter(lambda k: not k.endswith("-bin")),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
_bin_pairs = st.tuples(_base_keys.map(lambda k: k + "-bin"), st.binary(max_size=40))
_pairs = st.lists(st.one_of(_ascii_pairs, _bin_pairs), max_size=10)


@given(_pairs)
def test_headers_round_trip(pairs: list[tuple[str, MetadataValue]]) -> None:
    md = Metadata(pairs)
    headers = md.to_headers()
    assert md.size == sum(len(n) + len(v) + 32 for n, v in headers)
    for name, wire in headers:
        if name.endswith(b"-bin"):
            assert b"=" not in wire  # emitted unpadded
    back = Metadata.from_headers(headers, max_size=md.size)
    assert back == md
    assert list(back) == pairs


@given(st.binary(max_size=64))
def test_bin_values_decode_padded_or_not(value: bytes) -> None:
    padded = base64.b64encode(value)
    for wire in (padded, padded.rstrip(b"=")):
        assert Metadata.from_headers([(b"k-bin", wire)])["k-bin"] == value
