"""gRPC status codes and statuses: the leaf of the wire package.

Sources: grpc/grpc ``doc/statuscodes.md`` (the codes) and
``doc/PROTOCOL-HTTP2.md`` ("Status", "Status-Message"). This module imports
nothing from puregrpc, so every other module (errors, codecs, events) can
import it without a cycle. The header codecs for ``grpc-status`` and
``grpc-message`` live in :mod:`._status_codec`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StatusCode(enum.IntEnum):
    """The 17 gRPC status codes, with their wire values."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """The outcome of a call: what ``grpc-status`` and friends said, or what we synthesized."""

    #: The gRPC status code.
    code: StatusCode
    #: Human-readable description (the ``grpc-message`` header), already
    #: percent-decoded. gRPC's documents call it the status message; the
    #: APIs of every gRPC library, this one included, call it ``details``.
    details: str = ""
    #: Raw ``grpc-status-details-bin`` payload (usually a serialized
    #: ``google.rpc.Status``), base64-decoded but otherwise untouched; None if absent.
    details_bin: bytes | None = None

    @property
    def ok(self) -> bool:
        """True when the call succeeded (``code`` is OK)."""
        return self.code is StatusCode.OK

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name
