"""Per-message compression codecs (grpc/grpc doc/compression.md).

gRPC compresses *individual messages*, never the stream: a message whose
Compressed-Flag is 1 was compressed with the codec named by the call's
``grpc-encoding`` header, with a fresh compression context for every message
(PROTOCOL-HTTP2.md, "Length-Prefixed-Message"). So every function here is a
pure ``bytes -> bytes`` transform with no state carried between calls.

Three codecs, the ones every gRPC implementation ships:

``identity``
    No compression. Never sent as ``grpc-encoding`` (an absent header means
    the same thing), but always advertised in ``grpc-accept-encoding``.
``deflate``
    The zlib format of RFC 1950 (a 2-byte header, a DEFLATE body and an
    Adler-32 trailer), which is what grpc-core and grpc-java emit under this
    name - not the raw DEFLATE of RFC 1951.
``gzip``
    The gzip format of RFC 1952 (a 10-byte header, a DEFLATE body, CRC-32 and
    length).

Both real codecs are driven through :mod:`zlib` alone: ``wbits`` selects the
container (15 = zlib, 31 = gzip), so one C call compresses a message and no
Python-level header handling runs per message.

Decompression is the dangerous direction: a few KiB of hostile input can
inflate to gigabytes. :func:`decompress` therefore asks zlib for at most
``max_size + 1`` bytes, so a "zip bomb" costs at most one byte more than the
caller's limit before it is refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from ._errors import LocalProtocolError, RemoteProtocolError
from ._status import StatusCode

#: The name of "no compression", valid in both ``grpc-encoding`` and
#: ``grpc-accept-encoding``.
IDENTITY = "identity"

#: Every encoding this implementation can compress and decompress, in the
#: order it advertises them in ``grpc-accept-encoding``.
SUPPORTED_ENCODINGS: tuple[str, ...] = ("identity", "deflate", "gzip")

# zlib ``wbits`` per codec: 15 is a 32 KiB window in the zlib container
# (RFC 1950), adding 16 switches the container to gzip (RFC 1952). Identity
# has no entry; it never reaches zlib.
_WBITS: dict[str, int] = {"deflate": zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS}

# Membership test for the hot path (every message of a compressed call).
_SUPPORTED: frozenset[str] = frozenset(SUPPORTED_ENCODINGS)

# Computed once: the header value for the default list, and the text error
# messages quote when naming what we would have accepted.
_DEFAULT_ACCEPT_ENCODING: bytes = ",".join(SUPPORTED_ENCODINGS).encode("ascii")
_SUPPORTED_TEXT: str = ", ".join(SUPPORTED_ENCODINGS)


def is_supported(name: str) -> bool:
    """Return True if ``name`` is an encoding this module can (de)compress.

    Names are compared exactly: gRPC content-codings are lower-case tokens,
    and :func:`parse_accept_encoding` already lower-cases what peers send.
    """
    return name in _SUPPORTED


def compress(encoding: str, data: bytes | memoryview) -> bytes:
    """Compress one message with ``encoding``.

    ``identity`` returns the message unchanged (as ``bytes``). An encoding we
    do not support raises :class:`LocalProtocolError`: the caller picked it,
    so it is a bug on our side, and nothing has been sent.
    """
    wbits = _WBITS.get(encoding)
    if wbits is None:
        if encoding == IDENTITY:
            return bytes(data)
        raise LocalProtocolError(
            f"cannot compress with unsupported encoding {encoding!r}; "
            f"supported encodings: {_SUPPORTED_TEXT}"
        )
    # zlib.compress grew ``wbits`` in Python 3.11: one C call, no
    # compressobj/flush round trip per message.
    return zlib.compress(data, wbits=wbits)


def decompress(encoding: str, data: bytes | memoryview, max_size: int) -> bytes:
    """Decompress one message that was compressed with ``encoding``.

    Never produces more than ``max_size`` bytes:

    * output that would exceed ``max_size`` raises :class:`RemoteProtocolError`
      with RESOURCE_EXHAUSTED, after inflating at most ``max_size + 1`` bytes;
    * corrupt or truncated input, or bytes after the end of the compressed
      stream, raise it with INTERNAL, naming the encoding;
    * an encoding we do not support raises it with UNIMPLEMENTED, naming the
      encoding and listing the supported ones (compression.md, "Compression
      Method Asymmetry Between Peers"). A *client* that gets this from a
      server's message should end the call with INTERNAL instead, as that
      same section asks; it can re-raise with the other code.

    ``identity`` returns the message unchanged, subject to the same size limit.
    Whether a Compressed-Flag of 1 is allowed at all under ``identity`` is the
    framing layer's decision, not this function's.
    """
    if max_size < 0:
        raise LocalProtocolError(f"max_size must be >= 0, got {max_size}")
    wbits = _WBITS.get(encoding)
    if wbits is None:
        if encoding == IDENTITY:
            if len(data) > max_size:
                raise RemoteProtocolError(
                    f"message of {len(data)} bytes exceeds the limit of {max_size} bytes",
                    StatusCode.RESOURCE_EXHAUSTED,
                )
            return bytes(data)
        raise RemoteProtocolError(
            f"message compressed with unsupported encoding {encoding!r}; "
            f"supported encodings: {_SUPPORTED_TEXT}",
            StatusCode.UNIMPLEMENTED,
        )
    inflater = zlib.decompressobj(wbits)
    try:
        # max_length caps the output buffer zlib allocates: asking for one
        # byte more than allowed tells "exactly max_size" apart from "more".
        # (max_length=0 would mean "unlimited", but max_size + 1 >= 1.)
        out = inflater.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise RemoteProtocolError(
            f"corrupt {encoding}-compressed message: {exc}", StatusCode.INTERNAL
        ) from None
    if len(out) > max_size:
        raise RemoteProtocolError(
            f"{encoding}-compressed message inflates to more than the limit of {max_size} bytes",
            StatusCode.RESOURCE_EXHAUSTED,
        )
    # With room left in the output buffer zlib consumed all input it could;
    # if it has still not seen the end-of-stream marker and checksum, the
    # message was cut short.
    if not inflater.eof:
        raise RemoteProtocolError(
            f"truncated {encoding}-compressed message: the compressed stream ends early",
            StatusCode.INTERNAL,
        )
    # One message is one compressed stream; anything after its trailer is
    # garbage (or a second gzip member, which no gRPC peer sends).
    if inflater.unused_data:
        raise RemoteProtocolError(
            f"corrupt {encoding}-compressed message: {len(inflater.unused_data)} "
            "bytes after the end of the compressed stream",
            StatusCode.INTERNAL,
        )
    return out


def accept_encoding_value(encodings: Sequence[str] = SUPPORTED_ENCODINGS) -> bytes:
    """Format ``encodings`` as a ``grpc-accept-encoding`` header value.

    ``accept_encoding_value()`` is ``b"identity,deflate,gzip"`` (computed once;
    this runs for every call). The grammar is ``Content-Coding *("," Content-Coding)``
    (PROTOCOL-HTTP2.md, Message-Accept-Encoding), so no spaces are added.
    """
    if encodings is SUPPORTED_ENCODINGS:
        return _DEFAULT_ACCEPT_ENCODING
    return ",".join(encodings).encode("ascii")


def parse_accept_encoding(value: str | bytes) -> tuple[str, ...]:
    """Parse a ``grpc-accept-encoding`` header value into encoding names.

    Lenient on purpose, as the value only steers what we *send*: names are
    split on ``,``, stripped of spaces and tabs (some peers write ``"a, b"``),
    lower-cased, and empty entries dropped. Unknown names are kept; callers
    intersect with :data:`SUPPORTED_ENCODINGS` themselves.
    """
    cached = _ACCEPT_CACHE.get(value)
    if cached is not None:
        return cached
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    names = []
    for part in text.split(","):
        name = part.strip(" \t").lower()
        if name:
            names.append(name)
    parsed = tuple(names)
    # Bounded in entries and key length, so a peer sending a new (or huge)
    # value per call cannot grow it; the values real peers send were seeded
    # below and stay cached regardless.
    if len(_ACCEPT_CACHE) < _ACCEPT_CACHE_LIMIT and len(value) <= 128:
        _ACCEPT_CACHE[value] = parsed
    return parsed


# Almost every peer sends one of a handful of grpc-accept-encoding values on
# every call; remembering their parse saves a split/strip/lower per call.
_ACCEPT_CACHE: dict[str | bytes, tuple[str, ...]] = {}
_ACCEPT_CACHE_LIMIT = 64
for _value in (
    _DEFAULT_ACCEPT_ENCODING,  # ourselves
    b"identity, deflate, gzip",  # grpc-core (grpcio, C++, Ruby, ...)
    b"identity,gzip",
    b"gzip",  # grpc-go and grpc-java with gzip registered
):
    parse_accept_encoding(_value)
del _value
