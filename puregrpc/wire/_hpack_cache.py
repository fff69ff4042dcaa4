"""HPACK for repeated header blocks: encode and decode each distinct block once.

Most gRPC header blocks repeat exactly. After the first call on a
connection, every field of a typical request (``:method POST``, the path,
``content-type``, ``te``, ``user-agent``...), response (``:status 200``,
``content-type``) and OK trailer (``grpc-status: 0``) sits in the HPACK
dynamic table, so the encoder emits the same *indexed-only* block, one byte
per field, call after call; and the decoder turns that same block into the
same list of fields. hpack does both field by field in Python, with debug
logging per field: about a seventh of a unary call's CPU time.

The invariant that makes caching sound: coding a block that inserts
nothing into the dynamic table (indexed fields, literals without indexing or
never indexed; RFC 7541 §6.1-6.2) reads only the table and changes nothing
in it, not even its order. So as long as every block coded since an entry
was cached left the table as it was, the cached answer is the answer. A
block that changed the table (a literal with incremental indexing inserts
and may evict; a size update resizes) clears the cache, and so does a
table found changed between blocks (h2 resizing the encoder's table when the
peer's SETTINGS say so); a pending table size change bypasses the cache on
the encoder side.

Whether a block changed the table is read off the table itself, in
constant time: an insertion always puts a new entry object at the front,
and a resize changes the maximum size, so (length, front entry, maximum
size) before and after tells. In a steady stream of calls this makes every
repeated block a hit on both sides, whatever the peer's encoder does with
the fields it chooses not to index.

Both classes are drop-in subclasses of hpack's :class:`~hpack.Encoder` and
:class:`~hpack.Decoder`, installed on puregrpc's h2 connection; they use
hpack's ``header_table`` (``resized``, ``dynamic_entries``, ``maxsize``) and
``_assert_valid_table_size`` (see ``H2_INTERNALS`` in ``_h2_connection.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple, OversizedHeaderListError
from hpack.table import HeaderTable

#: Distinct blocks remembered per direction (cleared whole when full).
CACHE_LIMIT = 32
#: RFC 7541 §4.1: an entry's size is its name and value plus 32.
_ENTRY_OVERHEAD = 32


def table_mark(table: HeaderTable) -> tuple[int, object, int]:
    """What changes whenever ``table`` changes: (entries, the front entry, maximum size)."""
    entries = table.dynamic_entries
    return len(entries), entries[0] if entries else None, table.maxsize


def _same_table(before: tuple[int, object, int], after: tuple[int, object, int]) -> bool:
    return before[0] == after[0] and before[1] is after[1] and before[2] == after[2]


class CachingEncoder(Encoder):
    """hpack's encoder; a header list it encoded without changing the table comes from cache."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[Any, ...], bytes] = {}
        #: The table as the cached blocks found it.
        self._mark = table_mark(self.header_table)

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        """Encode ``headers`` (a list of ``(name, value)`` byte pairs, as h2 passes them)."""
        before = table_mark(self.header_table)
        if not _same_table(self._mark, before):
            self._blocks.clear()  # resized between blocks (the peer's SETTINGS)
        key: tuple[Any, ...] | None = None
        if type(headers) is list and not self.header_table.resized:
            key = tuple(headers)
            block = self._blocks.get(key)
            if block is not None:
                return block
        block = super().encode(headers, huffman)
        self._mark = after = table_mark(self.header_table)
        if key is not None and _same_table(before, after):
            if len(self._blocks) >= CACHE_LIMIT:
                self._blocks.clear()
            self._blocks[key] = block
        else:
            self._blocks.clear()  # the table changed
        return block


class CachingDecoder(Decoder):
    """hpack's decoder; a block it decoded without changing the table comes from cache."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self._lists: dict[bytes, tuple[list[HeaderTuple], int]] = {}
        #: The table as the cached lists found it.
        self._mark = table_mark(self.header_table)

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        """Decode one header block (h2 asks for ``raw`` byte pairs)."""
        block = data if type(data) is bytes else bytes(data)
        before = table_mark(self.header_table)
        if not _same_table(self._mark, before):
            self._lists.clear()  # resized between blocks
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
        self._mark = after = table_mark(self.header_table)
        if raw and _same_table(before, after):
            if len(self._lists) >= CACHE_LIMIT:
                self._lists.clear()
            size = sum(_ENTRY_OVERHEAD + len(name) + len(value) for name, value in decoded)
            self._lists[block] = (list(decoded), size)
        else:
            self._lists.clear()  # the table changed
        return decoded
