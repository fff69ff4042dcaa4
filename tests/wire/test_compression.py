"""Tests for the per-message compression codecs (puregrpc/wire/_compression.py)."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.wire import (
    IDENTITY,
    SUPPORTED_ENCODINGS,
    LocalProtocolError,
    RemoteProtocolError,
    StatusCode,
)
from puregrpc.wire.codecs import (
    accept_encoding_value,
    compress,
    decompress,
    is_supported,
    parse_accept_encoding,
)

MiB = 1024 * 1024
CODECS = ("deflate", "gzip")


def test_supported_encodings_in_advertised_order() -> None:
    assert SUPPORTED_ENCODINGS == ("identity", "deflate", "gzip")
    assert IDENTITY == "identity"
    for name in SUPPORTED_ENCODINGS:
        assert is_supported(name)
    for name in ("snappy", "br", "GZIP", "", "zstd"):
        assert not is_supported(name)


@given(data=st.binary(max_size=4096), encoding=st.sampled_from(SUPPORTED_ENCODINGS))
def test_round_trip(data: bytes, encoding: str) -> None:
    packed = compress(encoding, data)
    assert type(packed) is bytes
    assert decompress(encoding, packed, max_size=len(data)) == data


@given(data=st.binary(max_size=1024), encoding=st.sampled_from(SUPPORTED_ENCODINGS))
def test_round_trip_memoryview(data: bytes, encoding: str) -> None:
    packed = compress(encoding, memoryview(data))
    assert decompress(encoding, memoryview(packed), max_size=len(data)) == data


def test_identity_is_unchanged() -> None:
    assert compress("identity", b"abc") == b"abc"
    assert compress("identity", memoryview(b"abc")) == b"abc"
    assert decompress("identity", b"abc", max_size=3) == b"abc"


def test_deflate_is_zlib_format() -> None:
    # RFC 1950: CMF 0x78 (deflate, 32 KiB window) and a header checksum.
    packed = compress("deflate", b"hello hello hello")
    assert packed[0] == 0x78
    assert (packed[0] * 256 + packed[1]) % 31 == 0
    assert zlib.decompress(packed) == b"hello hello hello"


def test_gzip_is_gzip_format() -> None:
    packed = compress("gzip", b"hello hello hello")
    assert packed[:3] == b"\x1f\x8b\x08"  # RFC 1952 magic + CM=deflate
    assert gzip.decompress(packed) == b"hello hello hello"


def test_decodes_standard_library_fixtures() -> None:
    payload = b"grpc " * 100
    assert decompress("deflate", zlib.compress(payload, 9), max_size=len(payload)) == payload
    assert decompress("gzip", gzip.compress(payload, mtime=0), max_size=len(payload)) == payload


def test_decodes_fixed_bytes() -> None:
    # zlib.compress(b"hi") and gzip.compress(b"hi", mtime=0), frozen as bytes.
    assert decompress("deflate", bytes.fromhex("789ccbc80400013b00d2"), 10) == b"hi"
    gz = bytes.fromhex("1f8b0800000000000203cbc80400ac2a93d802000000")
    assert decompress("gzip", gz, 10) == b"hi"


@pytest.mark.parametrize("encoding", CODECS)
def test_bomb_is_refused_without_inflating_it(encoding: str) -> None:
    bomb = compress(encoding, bytes(10 * MiB))
    assert len(bomb) < 64 * 1024  # ~10 KiB of input
    with pytest.raises(RemoteProtocolError) as info:
        decompress(encoding, bomb, max_size=4 * MiB)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "4194304" in str(info.value)
    assert encoding in str(info.value)


@pytest.mark.parametrize("encoding", CODECS)
def test_bomb_output_is_bounded(encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Spy on what zlib hands back: never more than max_size + 1 bytes.
    produced: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Spy)
    bomb = compress(encoding, bytes(10 * MiB))
    with pytest.raises(RemoteProtocolError):
        decompress(encoding, bomb, max_size=MiB)
    assert produced == [MiB + 1]


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_exact_max_size_allowed_one_more_refused(encoding: str) -> None:
    data = b"x" * 1000
    packed = compress(encoding, data)
    assert decompress(encoding, packed, max_size=1000) == data
    with pytest.raises(RemoteProtocolError) as info:
        decompress(encoding, packed, max_size=999)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("encoding", CODECS)
def test_empty_message_round_trips_with_zero_limit(encoding: str) -> None:
    assert decompress(encoding, compress(encoding, b""), max_size=0) == b""


@pytest.mark.parametrize("encoding", CODECS)
def test_truncated_input_is_internal(encoding: str) -> None:
    packed = compress(encoding, b"some message that is long enough" * 4)
    for cut in (0, 1, len(packed) // 2, len(packed) - 1):
        with pytest.raises(RemoteProtocolError) as info:
            decompress(encoding, packed[:cut], max_size=MiB)
        assert info.value.code == StatusCode.INTERNAL
        assert encoding in str(info.value)


@pytest.mark.parametrize("encoding", CODECS)
def test_corrupt_input_is_internal(encoding: str) -> None:
    packed = bytearray(compress(encoding, b"some message that is long enough" * 4))
    packed[-2] ^= 0xFF  # inside the checksum trailer
    with pytest.raises(RemoteProtocolError) as info:
        decompress(encoding, bytes(packed), max_size=MiB)
    assert info.value.code == StatusCode.INTERNAL
    assert f"corrupt {encoding}" in str(info.value)


@pytest.mark.parametrize("encoding", CODECS)
def test_garbage_is_internal(encoding: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decompress(encoding, b"\x00not compressed at all", max_size=MiB)
    assert info.value.code == StatusCode.INTERNAL


@pytest.mark.parametrize("encoding", CODECS)
def test_trailing_bytes_are_internal(encoding: str) -> None:
    packed = compress(encoding, b"payload") + b"junk"
    with pytest.raises(RemoteProtocolError) as info:
        decompress(encoding, packed, max_size=MiB)
    assert info.value.code == StatusCode.INTERNAL
    assert "after the end" in str(info.value)


def test_codecs_are_not_interchangeable() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decompress("gzip", compress("deflate", b"payload"), max_size=MiB)
    assert info.value.code == StatusCode.INTERNAL
    with pytest.raises(RemoteProtocolError):
        decompress("deflate", compress("gzip", b"payload"), max_size=MiB)


def test_unknown_encoding_on_receive_is_unimplemented() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decompress("snappy", b"...", max_size=MiB)
    assert info.value.code == StatusCode.UNIMPLEMENTED
    message = str(info.value)
    assert "'snappy'" in message
    assert "identity, deflate, gzip" in message


def test_unknown_encoding_on_send_is_local_error() -> None:
    with pytest.raises(LocalProtocolError, match=r"'br'.*identity, deflate, gzip"):
        compress("br", b"data")


def test_negative_max_size_is_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="max_size"):
        decompress("gzip", compress("gzip", b""), max_size=-1)


def test_identity_respects_max_size() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decompress("identity", b"12345", max_size=4)
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED


def test_accept_encoding_value() -> None:
    assert accept_encoding_value() == b"identity,deflate,gzip"
    assert accept_encoding_value(("gzip",)) == b"gzip"
    assert accept_encoding_value(["identity", "gzip"]) == b"identity,gzip"
    assert accept_encoding_value(()) == b""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"identity,deflate,gzip", ("identity", "deflate", "gzip")),
        ("identity, deflate , gzip", ("identity", "deflate", "gzip")),
        (b"GZip,\tSnappy", ("gzip", "snappy")),
        (b"gzip,,identity,", ("gzip", "identity")),
        (b"", ()),
        (b" , ", ()),
    ],
)
def test_parse_accept_encoding(value: str | bytes, expected: tuple[str, ...]) -> None:
    assert parse_accept_encoding(value) == expected


@given(st.lists(st.sampled_from(["identity", "deflate", "gzip", "snappy", "br"]), max_size=6))
def test_accept_encoding_round_trip(names: list[str]) -> None:
    assert parse_accept_encoding(accept_encoding_value(names)) == tuple(names)
