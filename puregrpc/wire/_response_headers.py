"""Response header blocks: response headers, trailers and trailers-only responses.

Sources: grpc/grpc ``doc/PROTOCOL-HTTP2.md`` (Response-Headers, Trailers,
Trailers-Only) and ``doc/http-grpc-status-mapping.md`` (answers from things
that are not gRPC servers). The server builds them; the client validates and
parses them (see :mod:`._header_fields`).
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from ._compression import IDENTITY, SUPPORTED_ENCODINGS, parse_accept_encoding
from ._errors import LocalProtocolError, RemoteProtocolError
from ._header_fields import (
    CONTENT_TYPE_GRPC,
    NO_PSEUDO,
    RESPONSE_PSEUDO,
    Malformed,
    append_call_fields,
    describe_content_type,
    http_status_text,
    is_grpc_content_type,
    scan,
)
from ._metadata import DEFAULT_MAX_METADATA_SIZE, Metadata, _decode_bin, _quote
from ._status import Status, StatusCode
from ._status_codec import (
    decode_grpc_message,
    encode_grpc_message,
    http_status_to_code,
    parse_grpc_status,
)

_STATUS_200 = (b":status", b"200")

_GRPC_STATUS_FIELDS = {
    code: (b"grpc-status", str(int(code)).encode("ascii")) for code in StatusCode
}


# --- Responses and trailers: building (server side) -------------------------------


def build_response_headers(
    *,
    metadata: Metadata | None = None,
    encoding: str | None = None,
    accept_encoding: Sequence[str] = SUPPORTED_ENCODINGS,
    content_type: bytes = b"application/grpc",
) -> list[tuple[bytes, bytes]]:
    """Build the response header block (initial metadata), sent without END_STREAM.

    Order: ``:status 200``, ``content-type``, ``grpc-encoding`` (unless
    None/identity), ``grpc-accept-encoding`` (unless empty), then ``metadata``.
    """
    headers = [
        _STATUS_200,
        CONTENT_TYPE_GRPC
        if content_type == b"application/grpc"
        else (b"content-type", content_type),
    ]
    return append_call_fields(headers, encoding, accept_encoding, metadata)


def _append_status(
    headers: list[tuple[bytes, bytes]], status: Status, metadata: Metadata | None
) -> list[tuple[bytes, bytes]]:
    """Append the Trailers fields (PROTOCOL-HTTP2.md, "Responses") and return ``headers``."""
    # "Status must be sent in Trailers even if the status code is OK."
    headers.append(_GRPC_STATUS_FIELDS[status.code])
    if status.details:
        # Percent-encoding keeps any text (UTF-8, newlines) a legal field value.
        message = encode_grpc_message(status.details).encode("ascii")
        # ...except edge spaces, which it leaves alone but RFC 9113 §8.2.1
        # makes malformed (tabs already became %09): escape those as %20.
        if message[0] == 0x20 or message[-1] == 0x20:
            core = message.strip(b" ")
            lead = len(message) - len(message.lstrip(b" "))
            trail = len(message) - lead - len(core)
            message = b"%20" * lead + core + b"%20" * trail
        headers.append((b"grpc-message", message))
    if status.details_bin is not None:
        # Binary header: base64 without padding, as PROTOCOL-HTTP2.md says to emit.
        encoded = binascii.b2a_base64(status.details_bin, newline=False).rstrip(b"=")
        headers.append((b"grpc-status-details-bin", encoded))
    if metadata is not None:
        headers += metadata.to_headers()
    return headers


def build_trailers(status: Status, metadata: Metadata | None = None) -> list[tuple[bytes, bytes]]:
    """Build the trailers that end a call (sent with END_STREAM after the response headers).

    Order: ``grpc-status``, ``grpc-message`` (percent-encoded; omitted when
    empty), ``grpc-status-details-bin`` (when set), then ``metadata``.
    """
    return _append_status([], status, metadata)


def build_trailers_only(
    status: Status,
    metadata: Metadata | None = None,
    *,
    http_status: int = 200,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> list[tuple[bytes, bytes]]:
    """Build a Trailers-Only response: one HEADERS block, sent with END_STREAM.

    For calls that fail before any response headers went out: ``:status``,
    ``content-type: application/grpc``, ``extra_headers`` (e.g. the
    ``grpc-accept-encoding`` of a :class:`RequestRejected`), then the trailer
    fields as :func:`build_trailers` orders them.
    """
    if http_status == 200:
        status_field = _STATUS_200
    elif 200 <= http_status <= 599:
        status_field = (b":status", str(http_status).encode("ascii"))
    else:
        # 1xx is not a final response; anything else is not an HTTP status.
        raise LocalProtocolError(f"trailers-only :status must be 200-599, got {http_status}")
    headers = [status_field, CONTENT_TYPE_GRPC]
    headers += extra_headers
    return _append_status(headers, status, metadata)


# --- Responses and trailers: parsing (client side) --------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead:
    """A validated response header block (initial metadata), as the client sees it."""

    #: ``:status``; always 200 here (anything else raised).
    http_status: int
    #: The full content-type, e.g. ``application/grpc+proto``.
    content_type: str
    #: ``grpc-encoding`` of the server's messages; ``identity`` when absent.
    #: Not checked against what we support: only a *compressed* message in an
    #: unknown encoding is an error (compression.md: INTERNAL on the client).
    encoding: str
    #: ``grpc-accept-encoding`` of the server, lower-cased; empty when absent.
    accept_encoding: tuple[str, ...]
    #: The server's initial metadata.
    metadata: Metadata


def _scan_response(
    headers: Sequence[tuple[bytes, bytes]],
    pseudo_allowed: frozenset[bytes],
    block: str,
    max_metadata_size: int,
) -> tuple[dict[bytes, bytes], Metadata]:
    """Scan a block from the server; malformed or oversized blocks raise RemoteProtocolError."""
    try:
        fields, custom, size = scan(headers, pseudo_allowed, block)
    except Malformed as exc:
        # The stream is unusable; INTERNAL is what a PROTOCOL_ERROR reset
        # maps to (PROTOCOL-HTTP2.md, "Errors").
        raise RemoteProtocolError(str(exc), StatusCode.INTERNAL) from None
    if size > max_metadata_size:
        raise RemoteProtocolError(
            f"{block}: {size} bytes, over the limit of {max_metadata_size} bytes"
            " (counted as name + value + 32 per header)",
            StatusCode.RESOURCE_EXHAUSTED,
        )
    return fields, Metadata.from_headers(custom, max_size=max_metadata_size)


def _parse_http_status(raw: bytes | None, block: str) -> int:
    """Parse ``:status``: exactly three ASCII digits (RFC 9110 §15), required in responses."""
    if raw is None:
        raise RemoteProtocolError(f"{block}: missing :status pseudo-header", StatusCode.INTERNAL)
    if len(raw) != 3 or not raw.isdigit():
        raise RemoteProtocolError(f"{block}: malformed :status {_quote(raw)}", StatusCode.INTERNAL)
    return int(raw)


def _status_from_fields(raw_status: bytes, fields: dict[bytes, bytes]) -> Status:
    """Build the :class:`Status` of a block that carried ``grpc-status``.

    A malformed ``grpc-status`` gives UNKNOWN, saying so (how the call
    ended is unknown; the block's metadata is still good). A malformed
    ``grpc-status-details-bin`` raises :class:`RemoteProtocolError` with
    INTERNAL; ``grpc-message`` never fails to decode (PROTOCOL-HTTP2.md
    forbids erroring on it).
    """
    try:
        code = parse_grpc_status(raw_status)
    except RemoteProtocolError as exc:
        return Status(code=exc.code, details=str(exc))
    raw_message = fields.get(b"grpc-message")
    raw_details = fields.get(b"grpc-status-details-bin")
    return Status(
        code=code,
        details=decode_grpc_message(raw_message) if raw_message else "",
        # Padded or not: PROTOCOL-HTTP2.md requires accepting both.
        details_bin=None
        if raw_details is None
        else _decode_bin("grpc-status-details-bin", raw_details),
    )


def parse_response_headers(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> ResponseHead:
    """Validate and parse response headers that arrived *without* END_STREAM.

    Raises :class:`RemoteProtocolError` when this is not a usable gRPC response:

    * malformed HTTP/2 (a pseudo-header other than ``:status``, upper-case or
      illegal names, connection-specific fields, bad values) or a missing or
      malformed ``:status``: INTERNAL;
    * ``:status`` other than 200: the code http-grpc-status-mapping.md gives
      that status, with a message starting ``"HTTP status 503 ..."``;
    * content-type missing or not ``application/grpc*``: the mapping's code
      for 200, UNKNOWN (an intermediary answered, not a gRPC server);
    * an oversized block: RESOURCE_EXHAUSTED; bad ``-bin`` base64: INTERNAL.
    """
    fields, metadata = _scan_response(
        headers, RESPONSE_PSEUDO, "response headers", max_metadata_size
    )
    http_status = _parse_http_status(fields.get(b":status"), "response headers")
    content_type = fields.get(b"content-type")
    if http_status != 200:
        raise RemoteProtocolError(
            f"{http_status_text(http_status)}: the server answered with an HTTP error,"
            f" not a gRPC response ({describe_content_type(content_type)})",
            http_status_to_code(http_status),
        )
    if content_type is None or not is_grpc_content_type(content_type):
        raise RemoteProtocolError(
            f"response has {describe_content_type(content_type)}, not application/grpc:"
            " the server is not a gRPC server",
            http_status_to_code(http_status),
        )
    raw_encoding = fields.get(b"grpc-encoding")
    raw_accept = fields.get(b"grpc-accept-encoding")
    return ResponseHead(
        http_status=http_status,
        content_type=content_type.decode("latin-1"),
        encoding=IDENTITY if raw_encoding is None else raw_encoding.decode("latin-1"),
        accept_encoding=() if raw_accept is None else parse_accept_encoding(raw_accept),
        metadata=metadata,
    )


def parse_trailers(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> tuple[Status, Metadata]:
    """Parse the trailers (END_STREAM) that follow response headers.

    Returns the call's :class:`Status` and trailing metadata. Trailers without
    ``grpc-status`` yield UNKNOWN (the server never said how the call ended:
    doc/statuscodes.md, doc/http-grpc-status-mapping.md), and so does a
    malformed one (not a decimal integer). Raises
    :class:`RemoteProtocolError` with INTERNAL for any pseudo-header (RFC
    9113 §8.1) or other malformed field, or a malformed
    ``grpc-status-details-bin``; RESOURCE_EXHAUSTED when the block exceeds
    ``max_metadata_size``.
    """
    fields, metadata = _scan_response(headers, NO_PSEUDO, "trailers", max_metadata_size)
    raw_status = fields.get(b"grpc-status")
    if raw_status is None:
        missing = "missing grpc-status in trailers: the server did not say how the call ended"
        return Status(code=StatusCode.UNKNOWN, details=missing), metadata
    return _status_from_fields(raw_status, fields), metadata


def parse_trailers_only(
    headers: Sequence[tuple[bytes, bytes]], *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> tuple[Status, Metadata]:
    """Parse a Trailers-Only response: the first and only block, with END_STREAM.

    It carries ``:status`` and the trailer fields together. When
    ``grpc-status`` is present it wins, whatever ``:status`` and content-type
    say (http-grpc-status-mapping.md: "If grpc-status was provided, it must be
    used"). Without it the status is synthesized from ``:status`` by that
    mapping (200 -> UNKNOWN, 503 -> UNAVAILABLE, ...), with a message starting
    ``"HTTP status N"`` (PROTOCOL-HTTP2.md: implementations "must synthesize
    a Status & Status-Message").

    Raises :class:`RemoteProtocolError` like :func:`parse_response_headers`
    for a malformed block or ``:status``; status fields are read as
    :func:`parse_trailers` reads them.
    """
    fields, metadata = _scan_response(
        headers, RESPONSE_PSEUDO, "trailers-only response", max_metadata_size
    )
    http_status = _parse_http_status(fields.get(b":status"), "trailers-only response")
    raw_status = fields.get(b"grpc-status")
    if raw_status is not None:
        return _status_from_fields(raw_status, fields), metadata
    content_type = fields.get(b"content-type")
    message = f"{http_status_text(http_status)} without grpc-status"
    if content_type is None or not is_grpc_content_type(content_type):
        message += f" ({describe_content_type(content_type)}: not a gRPC server)"
    return Status(code=http_status_to_code(http_status), details=message), metadata
