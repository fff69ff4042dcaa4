"""The status half of a call's trailers: ``grpc-status`` and ``grpc-message``.

Sources: grpc/grpc ``doc/PROTOCOL-HTTP2.md`` (``grpc-status``,
``grpc-message`` and the RST_STREAM "Errors" table) and
``doc/http-grpc-status-mapping.md`` (what a client does when an intermediary
answered instead of a gRPC server).

Everything here is a pure function over header values: the connection state
machine calls :func:`parse_grpc_status` / :func:`decode_grpc_message` on
received trailers, :func:`encode_grpc_message` when it sends them, and
:func:`http_status_to_code` / :func:`status_from_h2_reset` to *synthesize* a
status when the peer never sent one (PROTOCOL-HTTP2.md, "Responses":
"Implementations must synthesize a Status & Status-Message").
"""

from __future__ import annotations

from ._errors import RemoteProtocolError
from ._status import Status, StatusCode

# --- grpc-message: percent-encoding ------------------------------------------------
#
# PROTOCOL-HTTP2.md, "Responses": Status-Message is UTF-8 then percent-encoded;
# Percent-Byte-Unencoded is %x20-24 / %x26-7E (printable ASCII except '%'), every
# other byte becomes "%" 2HEXDIGIT. We emit uppercase hex as the grammar shows.

# One entry per byte value, so encoding is a C-level map over the UTF-8 bytes
# instead of a Python loop with per-byte branches.
_PERCENT_ENCODE: tuple[str, ...] = tuple(
    chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in range(256)
)

# Two hex digits (either case: decoding is tolerant) -> the byte they denote.
_HEX_PAIRS: dict[bytes, bytes] = {
    f"{hi}{lo}".encode(): bytes([int(hi + lo, 16)])
    for hi in "0123456789abcdefABCDEF"
    for lo in "0123456789abcdefABCDEF"
}


def encode_grpc_message(message: str) -> str:
    """Percent-encode a status message for the ``grpc-message`` header.

    The message is UTF-8 encoded, then every byte outside printable ASCII
    (0x20-0x7E), and ``%`` itself, becomes ``%XX`` with uppercase hex. The
    result is always printable ASCII and safe as an HTTP/2 header value.
    """
    # Fast path: almost every status message is plain printable ASCII.
    # (For ASCII text, isprintable() is exactly "every char in 0x20-0x7E".)
    if message.isascii() and message.isprintable() and "%" not in message:
        return message
    # surrogatepass: a lone surrogate must not make error reporting itself
    # fail; it is carried through as its (invalid) UTF-8 bytes, which the
    # receiving side's errors="replace" turns into U+FFFD.
    return "".join(map(_PERCENT_ENCODE.__getitem__, message.encode("utf-8", "surrogatepass")))


def decode_grpc_message(value: str | bytes) -> str:
    """Decode a ``grpc-message`` header value into text; never raises.

    PROTOCOL-HTTP2.md requires that decoding invalid values must not error or
    drop the message, so: valid ``%XX`` sequences are decoded (either hex case),
    broken ones (``%``, ``%G1``, a trailing ``%4``) are kept as they are, and
    bytes that are not valid UTF-8 become U+FFFD.

    A ``str`` value is taken to be the header's characters as received (one
    character per octet, as a latin-1 decoding gives); text that is not
    latin-1 is taken as already decoded Unicode.
    """
    if isinstance(value, str):
        # Fast path: plain ASCII with nothing to decode is already the answer.
        if "%" not in value and value.isascii():
            return value
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(value)
    if b"%" not in raw:
        return raw.decode("utf-8", "replace")
    # Split on '%': every piece after the first began right after a '%'. A piece
    # whose first two bytes are hex is an escape; anything else keeps its '%'.
    first, *rest = raw.split(b"%")
    out = [first]
    for piece in rest:
        decoded = _HEX_PAIRS.get(piece[:2])
        if decoded is None:
            out.append(b"%")
            out.append(piece)
        else:
            out.append(decoded)
            out.append(piece[2:])
    return b"".join(out).decode("utf-8", "replace")


# --- grpc-status -------------------------------------------------------------------

# The canonical spellings, looked up directly; covers every well-formed value.
_STATUS_BY_TEXT: dict[str | bytes, StatusCode] = {
    **{str(int(code)): code for code in StatusCode},
    **{str(int(code)).encode(): code for code in StatusCode},
}

# Longest value quoted verbatim in an error message; a hostile peer should not
# be able to make us build (and log) a multi-kilobyte exception string.
_QUOTE_LIMIT = 40


def _quote(value: str | bytes) -> str:
    """repr() of a header value, shortened for use in an error message."""
    if len(value) > _QUOTE_LIMIT:
        return f"{value[:_QUOTE_LIMIT]!r}... ({len(value)} chars)"
    return repr(value)


def parse_grpc_status(value: str | bytes) -> StatusCode:
    """Parse a ``grpc-status`` header value.

    The value is ASCII decimal digits (PROTOCOL-HTTP2.md, "Status"). 0-16 map
    to their :class:`StatusCode`; any other non-negative integer becomes
    UNKNOWN, as doc/statuscodes.md asks of codes a client does not know. A
    value that is not a decimal integer raises :class:`RemoteProtocolError`
    with code UNKNOWN: the peer broke the protocol, and how the call really
    ended is unknown (doc/statuscodes.md: UNKNOWN is for errors that carry
    no usable status).
    """
    code = _STATUS_BY_TEXT.get(value)
    if code is not None:
        return code
    # isdigit() alone accepts non-ASCII digits such as '²' or Arabic-Indic
    # digits; the grammar allows only 0-9.
    if value and value.isascii() and value.isdigit():
        # A well-formed but unknown (or zero-padded) value. Not int(): Python
        # refuses to convert very long digit strings, and we need no value
        # beyond "is it one of ours".
        digits = value.lstrip(b"0") if isinstance(value, bytes) else value.lstrip("0")
        if not digits:
            return StatusCode.OK  # "00": leading zeros are tolerated on receipt
        return _STATUS_BY_TEXT.get(digits, StatusCode.UNKNOWN)
    raise RemoteProtocolError(
        f"malformed grpc-status {_quote(value)}: expected a decimal integer such as '0' or '14'",
        StatusCode.UNKNOWN,
    )


# --- Synthesized statuses ----------------------------------------------------------

# doc/http-grpc-status-mapping.md, only for responses without grpc-status.
# Everything not listed, including 200, is UNKNOWN: a real OK carries grpc-status.
_HTTP_STATUS_TO_CODE: dict[int, StatusCode] = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    431: StatusCode.INTERNAL,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


def http_status_to_code(http_status: int) -> StatusCode:
    """Map the HTTP ``:status`` of a response without ``grpc-status`` to a gRPC code.

    Follows doc/http-grpc-status-mapping.md. Use it only when the response
    carried no ``grpc-status``; when it did, that value wins.
    """
    return _HTTP_STATUS_TO_CODE.get(http_status, StatusCode.UNKNOWN)


# HTTP/2 error code names (RFC 9113 section 7), for readable messages.
_H2_ERROR_NAMES: tuple[str, ...] = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)

# PROTOCOL-HTTP2.md, "Errors": RST_STREAM code -> gRPC code. Every code not
# listed maps to INTERNAL: NO_ERROR (a real success sends grpc-status 0), the
# framing/flow-control errors, STREAM_CLOSED (the doc gives no mapping; a reset
# stream must still end the call with *some* status), HTTP_1_1_REQUIRED and
# codes newer than this table.
_H2_ERROR_TO_CODE: dict[int, StatusCode] = {
    # No processing happened; the call may be retried, possibly elsewhere.
    0x7: StatusCode.UNAVAILABLE,  # REFUSED_STREAM
    # The doc maps a *server's* CANCEL to CANCELLED; a client's CANCEL is the
    # call's cancellation, which the server side also reports as CANCELLED.
    0x8: StatusCode.CANCELLED,  # CANCEL
    0xB: StatusCode.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM
    0xC: StatusCode.PERMISSION_DENIED,  # INADEQUATE_SECURITY
}

# The extra detail the doc asks for alongside two of the mappings.
_H2_ERROR_DETAIL: dict[int, str] = {
    0xB: ": the exhausted resource is bandwidth",
    0xC: ": the transport is not secure enough for this call",
}


def h2_error_to_code(error_code: int) -> StatusCode:
    """Map an HTTP/2 RST_STREAM error code to the gRPC code the call ends with.

    Follows the "Errors" table of PROTOCOL-HTTP2.md; unknown codes map to INTERNAL.
    """
    return _H2_ERROR_TO_CODE.get(error_code, StatusCode.INTERNAL)


def h2_error_name(error_code: int) -> str:
    """``"CANCEL (8)"``: an HTTP/2 error code with its RFC 9113 name, for messages."""
    known = 0 <= error_code < len(_H2_ERROR_NAMES)
    return f"{_H2_ERROR_NAMES[error_code] if known else 'UNKNOWN'} ({error_code})"


def status_from_h2_reset(error_code: int) -> Status:
    """Synthesize the :class:`Status` of a call whose stream the peer reset.

    The message names the HTTP/2 error code, for example
    ``"stream reset by peer with error code CANCEL (8)"``.
    """
    detail = _H2_ERROR_DETAIL.get(error_code, "")
    return Status(
        code=h2_error_to_code(error_code),
        details=f"stream reset by peer with error code {h2_error_name(error_code)}{detail}",
    )
