"""Tests for the Length-Prefixed-Message codec (puregrpc/wire/_framing.py)."""

from __future__ import annotations

import array
import dataclasses
import itertools
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puregrpc.wire import (
    DEFAULT_MAX_RECEIVE_MESSAGE_SIZE,
    LocalProtocolError,
    RemoteProtocolError,
    StatusCode,
)
from puregrpc.wire.codecs import (
    PREFIX_LENGTH,
    MessageDecoder,
    RawMessage,
    encode_prefix,
    frame_message,
)


def feed_all(decoder: MessageDecoder, chunks: list[bytes]) -> list[RawMessage]:
    """Feed every chunk in order and collect all completed messages."""
    out: list[RawMessage] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def one_byte_slices(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# -- constants and the prefix ---------------------------------------------------


def test_constants() -> None:
    assert PREFIX_LENGTH == 5
    assert DEFAULT_MAX_RECEIVE_MESSAGE_SIZE == 4 * 1024 * 1024
    assert MessageDecoder().max_message_size == DEFAULT_MAX_RECEIVE_MESSAGE_SIZE
    assert MessageDecoder(123).max_message_size == 123


@pytest.mark.parametrize(
    ("length", "compressed", "expected"),
    [
        (0, False, b"\x00\x00\x00\x00\x00"),
        (0, True, b"\x01\x00\x00\x00\x00"),
        (1, False, b"\x00\x00\x00\x00\x01"),
        (0x01020304, True, b"\x01\x01\x02\x03\x04"),  # big-endian
        (256, False, b"\x00\x00\x00\x01\x00"),
        (2**32 - 1, False, b"\x00\xff\xff\xff\xff"),  # largest Message-Length
    ],
)
def test_encode_prefix(length: int, compressed: bool, expected: bytes) -> None:
    prefix = encode_prefix(length, compressed)
    assert prefix == expected
    assert type(prefix) is bytes
    assert len(prefix) == PREFIX_LENGTH


def test_encode_prefix_default_is_uncompressed() -> None:
    assert encode_prefix(7)[0] == 0


@pytest.mark.parametrize("length", [-1, 2**32, 2**40])
def test_encode_prefix_out_of_range(length: int) -> None:
    with pytest.raises(LocalProtocolError, match=rf"{length} bytes.*0 to 4294967295"):
        encode_prefix(length)


# -- frame_message ----------------------------------------------------------------


def test_frame_message_layout() -> None:
    framed = frame_message(b"hello")
    assert framed == b"\x00\x00\x00\x00\x05hello"
    assert type(framed) is bytes
    assert frame_message(b"hi", compressed=True) == b"\x01\x00\x00\x00\x02hi"
    assert frame_message(b"") == b"\x00" * 5


def test_frame_message_accepts_memoryview() -> None:
    backing = bytearray(b"xxpayloadxx")
    framed = frame_message(memoryview(backing)[2:9])
    assert framed == b"\x00\x00\x00\x00\x07payload"
    assert type(framed) is bytes
    # The result is a copy: later changes to the buffer do not leak into it.
    backing[2:9] = b"PAYLOAD"
    assert framed.endswith(b"payload")


def test_frame_message_measures_memoryview_in_bytes() -> None:
    # A view of 2-byte items: the prefix must count 6 bytes, not 3 items.
    view = memoryview(array.array("H", [1, 2, 3]))
    framed = frame_message(view)
    assert framed[:5] == encode_prefix(6)
    assert len(framed) == 11


@pytest.mark.parametrize("compressed", [False, True])
def test_frame_message_round_trip(compressed: bool) -> None:
    payload = bytes(range(256)) * 3
    [message] = MessageDecoder().feed(frame_message(payload, compressed))
    assert message == RawMessage(
        data=payload, compressed=compressed, wire_length=PREFIX_LENGTH + len(payload)
    )


# -- RawMessage ---------------------------------------------------------------------


def test_raw_message_is_frozen_and_keyword_only() -> None:
    message = RawMessage(data=b"abc", compressed=False, wire_length=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.data = b"x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        RawMessage(b"abc", False, 8)  # type: ignore[call-arg]
    assert not hasattr(message, "__dict__")  # slotted


def test_raw_message_repr_is_short() -> None:
    message = RawMessage(data=b"z" * 1_000_000, compressed=True, wire_length=1_000_005)
    text = repr(message)
    assert text == "RawMessage(data=<1000000 bytes>, compressed=True, wire_length=1000005)"


# -- MessageDecoder: happy paths --------------------------------------------------


def test_many_messages_in_one_slice() -> None:
    payloads = [b"a", b"", b"bc" * 100, b"\x00\x01", b""]
    wire = b"".join(frame_message(p, compressed=i % 2 == 1) for i, p in enumerate(payloads))
    decoder = MessageDecoder()
    messages = decoder.feed(wire)
    assert [m.data for m in messages] == payloads
    assert [m.compressed for m in messages] == [False, True, False, True, False]
    assert [m.wire_length for m in messages] == [5 + len(p) for p in payloads]
    assert decoder.buffered == 0
    decoder.close()


def test_message_split_over_many_slices() -> None:
    payload = bytes(range(200)) * 50  # 10,000 bytes
    wire = frame_message(payload)
    decoder = MessageDecoder()
    chunks = [wire[i : i + 333] for i in range(0, len(wire), 333)]
    for chunk in chunks[:-1]:
        assert decoder.feed(chunk) == []
    [message] = decoder.feed(chunks[-1])
    assert message.data == payload
    assert message.wire_length == len(wire)
    assert decoder.buffered == 0


def test_one_byte_at_a_time() -> None:
    payloads = [b"first", b"", b"second message", b""]
    wire = b"".join(frame_message(p) for p in payloads)
    decoder = MessageDecoder()
    completed_at: list[int] = []
    messages: list[RawMessage] = []
    for i, chunk in enumerate(one_byte_slices(wire)):
        got = decoder.feed(chunk)
        completed_at.extend([i] * len(got))
        messages.extend(got)
    assert [m.data for m in messages] == payloads
    # Each message completes on its own last byte, not later.
    ends = [5 + 5 - 1, 10 + 5 - 1, 15 + 19 - 1, 34 + 5 - 1]
    assert completed_at == ends


def test_empty_messages() -> None:
    decoder = MessageDecoder()
    [message] = decoder.feed(encode_prefix(0))
    assert message == RawMessage(data=b"", compressed=False, wire_length=5)
    # Zero-length messages whose prefix is split across slices also complete.
    assert decoder.feed(b"\x01\x00") == []
    [message] = decoder.feed(b"\x00\x00\x00")
    assert message == RawMessage(data=b"", compressed=True, wire_length=5)
    assert decoder.buffered == 0
    assert decoder.feed(b"") == []


def test_empty_slice_mid_message_is_harmless() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(b"\x00\x00\x00\x00\x03a") == []
    assert decoder.feed(b"") == []
    assert decoder.buffered == 6
    [message] = decoder.feed(b"bc")
    assert message.data == b"abc"


def test_slice_finishing_one_message_and_starting_others() -> None:
    decoder = MessageDecoder()
    wire = frame_message(b"one") + frame_message(b"two") + frame_message(b"three")
    assert decoder.feed(wire[:6]) == []  # prefix + "o"
    # Finish "one", carry "two" whole and part of the third prefix.
    messages = decoder.feed(wire[6:18])
    assert [m.data for m in messages] == [b"one", b"two"]
    assert decoder.buffered == 2
    [message] = decoder.feed(wire[18:])
    assert message.data == b"three"


def test_buffered_counts_prefix_and_body_bytes() -> None:
    decoder = MessageDecoder()
    wire = frame_message(b"0123456789")
    seen = []
    for chunk in (wire[:2], wire[2:5], wire[5:6], wire[6:12], wire[12:]):
        decoder.feed(chunk)
        seen.append(decoder.buffered)
    assert seen == [2, 5, 6, 12, 0]
    # Messages completed in the fast path leave only the trailing remainder.
    decoder.feed(frame_message(b"xy") + b"\x00\x00\x00")
    assert decoder.buffered == 3


def test_memoryview_input_is_copied_before_feed_returns() -> None:
    decoder = MessageDecoder()
    backing = bytearray(frame_message(b"abcdef") + frame_message(b"ghij"))
    # Whole first message, and three body bytes of the second, from a mutable buffer.
    [first] = decoder.feed(memoryview(backing)[:11])
    assert decoder.feed(memoryview(backing)[11:19]) == []
    backing[:] = b"\xff" * len(backing)  # the caller reuses its buffer
    [second] = decoder.feed(b"j")
    assert first.data == b"abcdef"
    assert second.data == b"ghij"
    assert type(first.data) is bytes
    assert type(second.data) is bytes


def test_memoryview_of_wider_items_is_read_as_bytes() -> None:
    wire = frame_message(b"abcd")  # 9 bytes; pad to an even length
    view = memoryview(array.array("H", wire + b"\x00"))
    decoder = MessageDecoder()
    [message] = decoder.feed(view)
    assert message.data == b"abcd"
    assert decoder.buffered == 1  # the pad byte starts a new prefix


def test_byte_slices_are_kept_by_reference_not_copied() -> None:
    # Structural check of the no-copy design: a bytes slice that is entirely
    # body is held as-is (one more reference), never copied into a buffer.
    decoder = MessageDecoder()
    decoder.feed(encode_prefix(3 * 16384))
    chunk = bytes(range(256)) * 64
    before = sys.getrefcount(chunk)
    decoder.feed(chunk)
    assert sys.getrefcount(chunk) == before + 1
    decoder.feed(chunk)
    assert sys.getrefcount(chunk) == before + 2
    [message] = decoder.feed(chunk)
    assert message.data == chunk * 3
    assert sys.getrefcount(chunk) == before  # released once joined


def test_sixty_four_kib_one_byte_at_a_time() -> None:
    payload = bytes(range(256)) * 256
    wire = frame_message(payload)
    messages = feed_all(MessageDecoder(), one_byte_slices(wire))
    assert [m.data for m in messages] == [payload]


def test_one_mib_one_byte_at_a_time_completes() -> None:
    # A quadratic decoder (re-joining a growing buffer per slice) would copy
    # ~550 GB here and never finish; a linear one takes a fraction of a second.
    payload = b"\x5a" * (1 << 20)
    decoder = MessageDecoder()
    wire = frame_message(payload)
    feed = decoder.feed
    messages: list[RawMessage] = []
    for i in range(len(wire)):
        messages += feed(wire[i : i + 1])
    assert len(messages) == 1
    assert messages[0].data == payload
    assert messages[0].wire_length == (1 << 20) + 5


def test_four_mib_message_in_sixteen_kib_slices() -> None:
    payload = bytes(range(256)) * (DEFAULT_MAX_RECEIVE_MESSAGE_SIZE // 256)
    wire = frame_message(payload)
    decoder = MessageDecoder()
    chunks = [wire[i : i + 16384] for i in range(0, len(wire), 16384)]
    messages = feed_all(decoder, chunks)
    assert len(messages) == 1
    assert messages[0].data == payload  # exactly the default limit is allowed
    assert decoder.buffered == 0


# -- MessageDecoder: size limit ---------------------------------------------------


def test_max_size_exactly_allowed() -> None:
    decoder = MessageDecoder(max_message_size=10)
    [message] = decoder.feed(frame_message(b"x" * 10))
    assert message.data == b"x" * 10


@pytest.mark.parametrize("compressed", [False, True])
def test_one_byte_over_max_refused_from_prefix_alone(compressed: bool) -> None:
    decoder = MessageDecoder(max_message_size=10)
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(encode_prefix(11, compressed))  # no body byte sent yet
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert str(info.value) == "received message larger than max (11 vs. 10)"


def test_oversized_default_limit_message_text() -> None:
    decoder = MessageDecoder()
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(encode_prefix(5_000_000))
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert str(info.value) == "received message larger than max (5000000 vs. 4194304)"


def test_oversized_prefix_split_across_slices_is_refused() -> None:
    decoder = MessageDecoder(max_message_size=10)
    assert decoder.feed(b"\x00\x00\x00") == []
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(b"\x00\x0b")
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "(11 vs. 10)" in str(info.value)


def test_oversized_after_good_messages_in_same_slice() -> None:
    decoder = MessageDecoder(max_message_size=10)
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(frame_message(b"ok") + encode_prefix(2**32 - 1))
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "(4294967295 vs. 10)" in str(info.value)


def test_zero_max_size_allows_only_empty_messages() -> None:
    decoder = MessageDecoder(max_message_size=0)
    assert [m.data for m in decoder.feed(encode_prefix(0) * 2)] == [b"", b""]
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode_prefix(1))


def test_negative_max_size_rejected() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        MessageDecoder(max_message_size=-1)


# -- MessageDecoder: corrupt framing ----------------------------------------------


@pytest.mark.parametrize("flag", [2, 0x80, 0xFF])
def test_bad_flag_byte(flag: int) -> None:
    decoder = MessageDecoder()
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(bytes([flag]) + b"\x00\x00\x00\x01x")
    assert info.value.code == StatusCode.INTERNAL
    assert f"Compressed-Flag is {flag}, must be 0 or 1" in str(info.value)


def test_bad_flag_byte_in_split_prefix() -> None:
    decoder = MessageDecoder()
    decoder.feed(frame_message(b"ok")[:-1])  # leave the decoder mid-body
    decoder.feed(b"k\x07")  # finishes "ok", then one bad flag byte is buffered
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(b"\x00\x00\x00\x00")
    assert info.value.code == StatusCode.INTERNAL
    assert "Compressed-Flag is 7" in str(info.value)


def test_decoder_stays_broken_after_an_error() -> None:
    decoder = MessageDecoder(max_message_size=10)
    decoder.feed(b"\x00\x00\x00\x00\x02a")
    with pytest.raises(RemoteProtocolError) as first:
        decoder.feed(b"b" + encode_prefix(100))
    # Buffered data is dropped, and every later call repeats the same error.
    assert decoder.buffered == 0
    for call in (lambda: decoder.feed(frame_message(b"fine")), decoder.close):
        with pytest.raises(RemoteProtocolError) as again:
            call()
        assert again.value.code == first.value.code == StatusCode.RESOURCE_EXHAUSTED
        assert str(again.value) == str(first.value)


# -- MessageDecoder.close ---------------------------------------------------------


def test_close_when_clean() -> None:
    decoder = MessageDecoder()
    decoder.close()  # nothing ever received
    decoder.feed(frame_message(b"abc") + frame_message(b""))
    decoder.close()
    assert decoder.buffered == 0


def test_close_mid_prefix() -> None:
    decoder = MessageDecoder()
    decoder.feed(frame_message(b"whole") + b"\x00\x00\x00")
    with pytest.raises(RemoteProtocolError) as info:
        decoder.close()
    assert info.value.code == StatusCode.INTERNAL
    assert str(info.value) == (
        "stream ended inside a gRPC message: received only 3 of the 5 bytes of a "
        "message prefix (Compressed-Flag and Message-Length)"
    )


def test_close_mid_body() -> None:
    decoder = MessageDecoder()
    decoder.feed(encode_prefix(10))
    decoder.feed(b"ab")
    with pytest.raises(RemoteProtocolError) as info:
        decoder.close()
    assert info.value.code == StatusCode.INTERNAL
    assert str(info.value) == (
        "stream ended inside a gRPC message: received only 2 of the 10 bytes of a "
        "message body (7 bytes buffered with its prefix)"
    )
    # The decoder is now broken too.
    with pytest.raises(RemoteProtocolError, match="received only 2 of the 10"):
        decoder.feed(b"cdefghij")


def test_close_right_after_prefix() -> None:
    decoder = MessageDecoder()
    decoder.feed(encode_prefix(4, compressed=True))
    with pytest.raises(RemoteProtocolError, match="only 0 of the 4 bytes of a message body"):
        decoder.close()


# -- property: any framing, any cut points -----------------------------------------

messages_strategy = st.lists(st.tuples(st.binary(max_size=300), st.booleans()), max_size=12)


@given(messages=messages_strategy, data=st.data())
def test_round_trip_with_arbitrary_cuts(
    messages: list[tuple[bytes, bool]], data: st.DataObject
) -> None:
    wire = b"".join(frame_message(payload, compressed) for payload, compressed in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20), label="cuts"))
    as_view = data.draw(st.booleans(), label="as_view")
    bounds = [0, *cuts, len(wire)]
    chunks = [wire[a:b] for a, b in itertools.pairwise(bounds)]
    decoder = MessageDecoder()
    decoded: list[RawMessage] = []
    for chunk in chunks:
        decoded.extend(decoder.feed(memoryview(chunk) if as_view else chunk))
    decoder.close()
    assert [(m.data, m.compressed) for m in decoded] == messages
    assert [m.wire_length for m in decoded] == [PREFIX_LENGTH + len(p) for p, _ in messages]
    assert all(type(m.data) is bytes for m in decoded)
    assert decoder.buffered == 0


@given(messages=messages_strategy, cut=st.integers(0, 10_000))
def test_buffered_matches_the_incomplete_tail(messages: list[tuple[bytes, bool]], cut: int) -> None:
    wire = b"".join(frame_message(payload, compressed) for payload, compressed in messages)
    cut = min(cut, len(wire))
    decoder = MessageDecoder()
    decoded = decoder.feed(wire[:cut])
    consumed = sum(m.wire_length for m in decoded)
    assert decoder.buffered == cut - consumed
    assert [(m.data, m.compressed) for m in decoded] == messages[: len(decoded)]
