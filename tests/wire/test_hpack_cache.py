"""CachingEncoder / CachingDecoder: the same bytes and headers as hpack's own, always."""

from __future__ import annotations

import pytest
from hpack import Decoder, Encoder, HPACKError, OversizedHeaderListError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from puregrpc.wire.codecs import CachingDecoder, CachingEncoder

Header = tuple[bytes, bytes]

# A small vocabulary, so that lists repeat and the dynamic table fills,
# evicts and is hit, plus the odd fresh value that inserts.
_names = st.sampled_from([b":path", b"content-type", b"grpc-timeout", b"x-id", b"user-agent"])
_values = st.one_of(
    st.sampled_from([b"/pkg.S/M", b"application/grpc", b"1S", b"a", b"b" * 40]),
    st.binary(min_size=0, max_size=30),
)
# Some fields sensitive (hpack's 3-tuples): never indexed, so literals that
# leave the table alone, which the cache serves too.
_fields = st.one_of(
    st.tuples(_names, _values),
    st.tuples(_names, _values, st.just(True)),
)
_header_lists = st.lists(_fields, min_size=0, max_size=6)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("headers"), _header_lists),
        st.tuples(st.just("resize"), st.sampled_from([0, 64, 256, 4096])),
    ),
    min_size=1,
    max_size=40,
)


def indexed_only(block: bytes) -> bool:
    """Only one-byte indexed fields (RFC 7541 §6.1): a header list fully in the table."""
    return bool(block) and all(0x81 <= byte <= 0xFE for byte in block)


UNARY_REQUEST: list[Header] = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Echo/Unary"),
    (b":authority", b"localhost"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
    (b"user-agent", b"puregrpc/test"),
]


_RESIZED_BETWEEN_BLOCKS: list[tuple[str, object]] = [
    ("resize", 0),
    (
        "headers",
        [
            (b":path", b"/pkg.S/M"),
            (b"content-type", b"application/grpc", True),
            (b"content-type", b""),
        ],
    ),
    ("resize", 64),
    ("resize", 64),
    (
        "headers",
        [
            (b":path", b"/pkg.S/M"),
            (b"content-type", b"application/grpc", True),
            (b"content-type", b""),
        ],
    ),
]


@settings(max_examples=500, deadline=None)
@given(_steps, st.sampled_from([0, 1, 3]))
# Found by this test: a block cached while the table was empty, then the
# table grown between blocks (as the peer's SETTINGS do).
@example(_RESIZED_BETWEEN_BLOCKS, 1)
def test_caching_coders_match_hpack_block_for_block(
    steps: list[tuple[str, object]], repeat: int
) -> None:
    plain_encoder, caching_encoder = Encoder(), CachingEncoder()
    plain_decoder, caching_decoder = Decoder(), CachingDecoder()
    for kind, value in steps:
        if kind == "resize":
            assert isinstance(value, int)
            plain_encoder.header_table_size = caching_encoder.header_table_size = value
            continue
        assert isinstance(value, list)
        for _ in range(1 + repeat):  # repeats are what the cache serves
            expected = plain_encoder.encode(list(value))
            block = caching_encoder.encode(list(value))
            assert block == expected
            try:
                expected_headers = list(plain_decoder.decode(block, raw=True))
            except HPACKError as error:
                # hpack's encoder can lose a table growth between two
                # blocks; whatever hpack then does, the cache must do too.
                with pytest.raises(type(error)):
                    caching_decoder.decode(block, raw=True)
                return
            decoded = list(caching_decoder.decode(block, raw=True))
            assert decoded == expected_headers
            assert [tuple(h) for h in decoded] == [tuple(h)[:2] for h in value]


def test_a_repeated_request_becomes_an_indexed_only_block_served_from_cache() -> None:
    encoder, decoder = CachingEncoder(), CachingDecoder()
    first = encoder.encode(list(UNARY_REQUEST))
    assert not indexed_only(first)  # literals: the first call fills the table
    decoder.decode(first, raw=True)
    second = encoder.encode(list(UNARY_REQUEST))
    assert indexed_only(second) and len(second) == len(UNARY_REQUEST)
    assert encoder.encode(list(UNARY_REQUEST)) is second  # the cached block itself
    decoded = decoder.decode(second, raw=True)
    again = decoder.decode(second, raw=True)
    assert again == decoded and again is not decoded  # a fresh list each time
    assert [tuple(h) for h in again] == UNARY_REQUEST


def test_a_cached_block_still_obeys_the_header_list_limit() -> None:
    encoder, decoder = CachingEncoder(), CachingDecoder()
    decoder.decode(encoder.encode(list(UNARY_REQUEST)), raw=True)
    block = encoder.encode(list(UNARY_REQUEST))
    decoder.decode(block, raw=True)  # cached now
    decoder.max_header_list_size = 100
    with pytest.raises(OversizedHeaderListError):
        decoder.decode(block, raw=True)


def test_a_block_with_literals_that_insert_nothing_is_cached_too() -> None:
    # A peer's encoder may send a field as a literal "never indexed" every
    # time (a token, say): the block repeats byte for byte and changes no
    # table, so the encoder's cache keeps it and both coders stay in step.
    fields = [*UNARY_REQUEST, (b"authorization", b"Bearer abc", True)]
    encoder, decoder, plain = CachingEncoder(), CachingDecoder(), Decoder()
    blocks = [encoder.encode(list(fields)) for _ in range(3)]
    assert blocks[1] == blocks[2] and not indexed_only(blocks[1])
    assert encoder.encode(list(fields)) is blocks[2]
    for block in blocks:
        assert decoder.decode(block, raw=True) == plain.decode(block, raw=True)
