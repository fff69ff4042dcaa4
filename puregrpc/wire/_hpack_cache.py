"""HPACK for repeated header blocks: encode and decode each distinct block once.

Most gRPC header blocks repeat exactly. After the first call on a
connection, every field of a typical request (``:method POST``, the path,
``content-type``, ``te``, ``user-agent``...), response (``:status 200``,
``content-type``) and OK trailer (``grpc-status: 0``) sits in the HPACK
dynamic table, so the encoder emits the same *indexed-only* block, one byte
per field, call after call; and the decoder turns that same block into the
same list of fields. hpack does both field by field in Python, with debug
logging per field: about a seventh of a unary call's CPU time.

The invariant that makes caching sound: a block made only of indexed field
representations (RFC 7541 §6.1) neither reads nor writes anything but the
table entries it names, and changes nothing, not even their order. So as
long as every block coded since an entry was cached was also indexed-only,
the dynamic table is the same, and the cached answer is the answer. Any
other block (a literal with incremental indexing inserts and may evict; a
dynamic table size update resizes) clears the cache first, and a pending
table size change bypasses it on the encoder side.

"Indexed-only" is tested on the block's bytes in C: every byte in
``0x81..0xFE``, i.e. a one-byte indexed representation (index 1-126). Longer
indices, whose continuation bytes are below 0x80, simply go uncached.

Both classes are drop-in subclasses of hpack's :class:`~hpack.Encoder` and
:class:`~hpack.Decoder`, installed on puregrpc's h2 connection; they use
hpack's ``header_table.resized`` flag and ``_assert_valid_table_size`` (see
``H2_INTERNALS`` in ``_h2_connection.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple, OversizedHeaderListError

#: One-byte indexed field representations: a block of only these bytes is indexed-only.
_INDEXED_BYTES = bytes(range(0x81, 0xFF))
#: Distinct blocks remembered per direction (cleared whole when full).
CACHE_LIMIT = 32
#: RFC 7541 §4.1: an entry's size is its name and value plus 32.
_ENTRY_OVERHEAD = 32


def indexed_only(block: bytes) -> bool:
    """True if ``block`` is non-empty and made only of one-byte indexed representations."""
    return bool(block) and not block.translate(None, _INDEXED_BYTES)


class CachingEncoder(Encoder):
    """hpack's encoder; a header list once encoded to an indexed-only block comes from cache."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[Any, ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        """Encode ``headers`` (a list of ``(name, value)`` byte pairs, as h2 passes them)."""
        key: tuple[Any, ...] | None = None
        if type(headers) is list and not self.header_table.resized:
            key = tuple(headers)
            block = self._blocks.get(key)
            if block is not None:
                return block
        block = super().encode(headers, huffman)
        if key is not None and indexed_only(block):
            if len(self._blocks) >= CACHE_LIMIT:
                self._blocks.clear()
            self._blocks[key] = block
        else:
            self._blocks.clear()  # the table may have changed
        return block


class CachingDecoder(Decoder):
    """hpack's decoder, answering an indexed-only block it has decoded before from cache."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self._lists: dict[bytes, tuple[list[HeaderTuple], int]] = {}

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        """Decode one header block (h2 asks for ``raw`` byte pairs)."""
        block = data if type(data) is bytes else bytes(data)
        if raw:
            hit = self._lists.get(block)
            if hit is not None:
                headers, size = hit
                if size > self.max_header_list_size:
                    raise OversizedHeaderListError(
                        f"A header list larger than {self.max_header_list_size} has been received"
                    )
                self._assert_valid_table_size()
                return list(headers)
        decoded = list(super().decode(block, raw))
        if raw and indexed_only(block):
            if len(self._lists) >= CACHE_LIMIT:
                self._lists.clear()
            size = sum(_ENTRY_OVERHEAD + len(name) + len(value) for name, value in decoded)
            self._lists[block] = (list(decoded), size)
        else:
            self._lists.clear()  # the table may have changed
        return decoded
