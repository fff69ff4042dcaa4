"""gRPC custom metadata: validation, the ``-bin`` codec and header conversion.

PROTOCOL-HTTP2.md, "Requests" defines Custom-Metadata as headers whose names
are ``1*( 0-9 / a-z / "_" / "-" / "." )``. A name ending in ``-bin`` carries
arbitrary bytes, base64-encoded on the wire; any other name carries printable
ASCII (``ASCII-Value``, 0x20-0x7E).

Two directions, two costs:

* **Outgoing** (:meth:`Metadata.add`, the constructor, :meth:`Metadata.extend`)
  validates every pair and raises :class:`LocalProtocolError` naming the key:
  a bad key or value is the caller's bug and must never reach the wire.
* **Incoming** (:meth:`Metadata.from_headers`) runs for every received header
  block, so it only does what safety needs: drop the headers gRPC itself owns,
  decode ``-bin`` values and enforce a size limit. PROTOCOL-HTTP2.md says
  implementations must not fail on odd-but-legal HTTP values, so received
  values are not re-validated.

Keys are case-insensitive and stored lower-case; order and repeats are kept,
because the order of values under one name is significant.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeAlias

from ._errors import LocalProtocolError, RemoteProtocolError
from ._status import StatusCode

#: A metadata value: ``str`` for ordinary keys, ``bytes`` for keys ending in ``-bin``.
MetadataValue: TypeAlias = str | bytes

#: Default limit for a received header block, counted like HTTP/2's
#: SETTINGS_MAX_HEADER_LIST_SIZE (name + value + 32 per field).
DEFAULT_MAX_METADATA_SIZE: int = 16 * 1024

# RFC 9113 section 6.5.2: each header field costs its name and value lengths
# plus 32 octets of overhead. PROTOCOL-HTTP2.md asks us to count the same way,
# with binary values measured after base64.
_FIELD_OVERHEAD = 32

# Header-Name (PROTOCOL-HTTP2.md): 0-9 a-z _ - .
_KEY_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz_-.")

# Names an application may not send as metadata: gRPC's own call-definition
# headers and the HTTP/1 connection-specific headers that HTTP/2 forbids
# outright (RFC 9113 section 8.2.2). Names starting with ':' (pseudo-headers)
# or 'grpc-' (reserved for gRPC, PROTOCOL-HTTP2.md) are refused by prefix.
_RESERVED_KEYS = frozenset(
    {
        "content-type",
        "te",
        "user-agent",
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    }
)
_RESERVED_PREFIXES = (":", "grpc-")

# The grpc-* names that are the application's to read and write (gRFC A6,
# "Exposed Retry Metadata" and "Pushback"): the client's retry layer sends
# grpc-previous-rpc-attempts and servers see it; a server sets
# grpc-retry-pushback-ms in its trailers and the retry layer reads it.
APPLICATION_GRPC_KEYS = frozenset({"grpc-previous-rpc-attempts", "grpc-retry-pushback-ms"})
_APPLICATION_GRPC_NAMES = frozenset(key.encode("ascii") for key in APPLICATION_GRPC_KEYS)

# Received names that are transport, not metadata. The common ones are listed
# so one frozenset lookup settles most headers; the prefix test below catches
# any other pseudo-header or grpc-* name. user-agent is deliberately absent:
# servers expose it to handlers, as grpcio does.
_TRANSPORT_HEADERS = frozenset(
    {
        b":method",
        b":scheme",
        b":path",
        b":authority",
        b":status",
        b"content-type",
        b"te",
        b"grpc-timeout",
        b"grpc-encoding",
        b"grpc-accept-encoding",
        b"grpc-status",
        b"grpc-message",
        b"grpc-status-details-bin",
    }
)
_TRANSPORT_PREFIXES = (b":", b"grpc-")

# Longest value quoted verbatim in an error message.
_QUOTE_LIMIT = 40


def _quote(value: str | bytes) -> str:
    """repr() of a value, shortened for error messages and reprs."""
    if len(value) > _QUOTE_LIMIT:
        return f"{value[:_QUOTE_LIMIT]!r}..."
    return repr(value)


def validate_key(key: str) -> str:
    """Check an outgoing metadata key and return it lower-cased.

    Raises :class:`LocalProtocolError` if the key is empty, contains anything
    but ``0-9 a-z _ - .`` (after lower-casing), or is reserved: a
    pseudo-header (``:path``), a ``grpc-`` name, ``content-type``, ``te``,
    ``user-agent`` or an HTTP connection header.
    """
    if not isinstance(key, str):
        raise LocalProtocolError(f"metadata key must be a str, got {type(key).__name__}: {key!r}")
    # isascii() first: str.lower() maps some non-ASCII letters (KELVIN SIGN)
    # onto ASCII ones, which would let them slip past the charset test.
    lowered = key.lower() if key.isascii() else key
    if lowered in _RESERVED_KEYS or (
        lowered.startswith(_RESERVED_PREFIXES) and lowered not in APPLICATION_GRPC_KEYS
    ):
        raise LocalProtocolError(f"metadata key {key!r} is reserved for gRPC itself")
    if not lowered:
        raise LocalProtocolError("metadata key must not be empty")
    if not _KEY_CHARS.issuperset(lowered):
        raise LocalProtocolError(
            f"metadata key {key!r} contains characters other than 0-9 a-z _ - ."
        )
    return lowered


def _validate_value(key: str, value: object) -> MetadataValue:
    """Check an outgoing value against its (validated, lower-case) key."""
    if key.endswith("-bin"):
        if isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        raise LocalProtocolError(
            f"metadata key {key!r} ends in '-bin', so its value must be bytes,"
            f" got {type(value).__name__}"
        )
    if isinstance(value, str):
        # For ASCII text, isprintable() is exactly "every char in 0x20-0x7E".
        if value.isascii() and value.isprintable():
            return value
        raise LocalProtocolError(
            f"metadata value for key {key!r} must be printable ASCII (0x20-0x7E),"
            f" got {_quote(value)}; use a key ending in '-bin' for other values"
        )
    raise LocalProtocolError(
        f"metadata value for key {key!r} must be a str, got {type(value).__name__};"
        " use a key ending in '-bin' for binary values"
    )


def _decode_bin(key: str, value: bytes) -> bytes:
    """Decode one received base64 value, padded or not (PROTOCOL-HTTP2.md requires both)."""
    missing = -len(value) % 4
    try:
        # strict_mode rejects characters outside the standard alphabet and
        # data after padding, instead of silently skipping them.
        return binascii.a2b_base64(value + b"=" * missing if missing else value, strict_mode=True)
    except binascii.Error as exc:
        raise RemoteProtocolError(
            f"metadata key {key!r} has a malformed base64 value {_quote(value)}: {exc}",
            StatusCode.INTERNAL,
        ) from None


class Metadata:
    """Ordered, multi-valued gRPC custom metadata (keys lower-case).

    Built from pairs or a mapping; every pair is validated (see
    :func:`validate_key`): keys ending in ``-bin`` take ``bytes``, all others
    take printable-ASCII ``str``. Iterating yields ``(key, value)`` pairs in
    insertion order; lookups are case-insensitive and return the first value.
    """

    __slots__ = ("_items",)

    _items: list[tuple[str, MetadataValue]]

    def __init__(
        self,
        items: Iterable[tuple[str, MetadataValue]] | Mapping[str, MetadataValue] | None = None,
    ) -> None:
        self._items = []
        if items is not None:
            self.extend(items)

    @classmethod
    def _trusted(cls, items: list[tuple[str, MetadataValue]]) -> Metadata:
        """Wrap pairs that are already validated or were received; takes ownership."""
        self = cls.__new__(cls)
        self._items = items
        return self

    def add(self, key: str, value: MetadataValue) -> None:
        """Append one value under ``key``, after any values already there."""
        key = validate_key(key)
        self._items.append((key, _validate_value(key, value)))

    def extend(
        self,
        other: Iterable[tuple[str, MetadataValue]] | Mapping[str, MetadataValue],
    ) -> None:
        """Append every pair of ``other`` in order.

        Pairs from another :class:`Metadata` are taken as they are (already
        validated, or received from a peer and so safe to echo back); anything
        else is validated first, and nothing is added if any pair is invalid.
        """
        if isinstance(other, Metadata):
            self._items.extend(other._items)
            return
        pairs = other.items() if isinstance(other, Mapping) else other
        checked = []
        for key, value in pairs:
            lowered = validate_key(key)
            checked.append((lowered, _validate_value(lowered, value)))
        self._items.extend(checked)

    def get(self, key: str, default: MetadataValue | None = None) -> MetadataValue | None:
        """Return the first value under ``key``, or ``default``."""
        key = key.lower()
        for name, value in self._items:
            if name == key:
                return value
        return default

    def get_all(self, key: str) -> list[MetadataValue]:
        """Return every value under ``key`` in order (an empty list if none)."""
        key = key.lower()
        return [value for name, value in self._items if name == key]

    def keys(self) -> list[str]:
        """Return the distinct keys in first-seen order."""
        return list(dict.fromkeys(name for name, _ in self._items))

    def copy(self) -> Metadata:
        """Return an independent copy (the values themselves are immutable)."""
        return Metadata._trusted(self._items.copy())

    def __getitem__(self, key: str) -> MetadataValue:
        """Return the first value under ``key``; raise KeyError if there is none."""
        lowered = key.lower()
        for name, value in self._items:
            if name == lowered:
                return value
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        """True if at least one value is stored under ``key``."""
        if not isinstance(key, str):
            return False
        key = key.lower()
        return any(name == key for name, _ in self._items)

    def __len__(self) -> int:
        """Number of (key, value) pairs, counting repeats."""
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, MetadataValue]]:
        """Iterate over (key, value) pairs in order."""
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        """Equal when both hold the same pairs in the same order."""
        if isinstance(other, Metadata):
            return self._items == other._items
        return NotImplemented

    # Mutable, so unhashable (defining __eq__ alone would do this implicitly).
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        pairs = ", ".join(f"({name!r}, {_quote(value)})" for name, value in self._items)
        return f"Metadata([{pairs}])"

    @property
    def size(self) -> int:
        """Encoded size as HTTP/2 counts a header list: name + value + 32 per pair.

        Binary values count at their unpadded base64 length, as sent.
        """
        total = 0
        for name, value in self._items:
            # ceil(4n / 3) is the unpadded base64 length of n bytes.
            length = len(value) if isinstance(value, str) else (len(value) * 4 + 2) // 3
            total += len(name) + length + _FIELD_OVERHEAD
        return total

    def to_headers(self) -> list[tuple[bytes, bytes]]:
        """Encode as HTTP/2 header fields, in order.

        ``bytes`` values are base64-encoded (standard alphabet) without padding,
        as PROTOCOL-HTTP2.md recommends emitting; ``str`` values are sent as
        they are. latin-1 (not ASCII) so received values can be echoed back.
        """
        b2a = binascii.b2a_base64
        return [
            (
                name.encode("latin-1"),
                b2a(value, newline=False).rstrip(b"=")
                if isinstance(value, bytes)
                else value.encode("latin-1"),
            )
            for name, value in self._items
        ]

    @classmethod
    def from_headers(
        cls,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        max_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> Metadata:
        """Build the application-visible metadata of a received header block.

        Skips pseudo-headers, ``content-type``, ``te`` and every ``grpc-``
        name (gRPC's own headers, handled by the connection); keeps everything
        else, including ``user-agent``. ``-bin`` values are base64-decoded,
        padded or not; values joined with ``,`` by an intermediary are split
        back into separate values (PROTOCOL-HTTP2.md requires this for binary
        headers). Other values become ``str`` via latin-1, which never fails.

        ``max_size`` bounds the *whole* block, skipped headers included,
        counted like HTTP/2's header list size.

        Raises :class:`RemoteProtocolError` with RESOURCE_EXHAUSTED when the
        block is larger than ``max_size``, and with INTERNAL for a ``-bin``
        value that is not valid base64.
        """
        items: list[tuple[str, MetadataValue]] = []
        append = items.append
        size = 0
        fields = iter(headers)
        for name, value in fields:
            size += len(name) + len(value) + _FIELD_OVERHEAD
            if size > max_size:
                # Finish counting (cheap: lengths only) so the error can say
                # how large the block was, but decode nothing more.
                size += sum(len(n) + len(v) + _FIELD_OVERHEAD for n, v in fields)
                raise RemoteProtocolError(
                    f"received header block is {size} bytes, over the limit of {max_size}"
                    " bytes (counted as name + value + 32 per header)",
                    StatusCode.RESOURCE_EXHAUSTED,
                )
            if name in _TRANSPORT_HEADERS or (
                name.startswith(_TRANSPORT_PREFIXES) and name not in _APPLICATION_GRPC_NAMES
            ):
                continue
            key = name.decode("latin-1")
            if not name.endswith(b"-bin"):
                append((key, value.decode("latin-1")))
            elif b"," in value:
                for part in value.split(b","):
                    # ", " is the usual joiner; base64 never contains spaces.
                    append((key, _decode_bin(key, part.strip(b" \t"))))
            else:
                append((key, _decode_bin(key, value)))
        return cls._trusted(items)
