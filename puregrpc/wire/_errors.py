"""The error tree of puregrpc.

Every exception puregrpc raises on purpose derives from :class:`PuregrpcError`:

* :class:`ProtocolError` - the HTTP/2 or gRPC protocol was violated.

  * :class:`LocalProtocolError` - *we* were asked to do something the protocol
    forbids (send on a closed stream, reserved metadata, a malformed timeout
    to encode). A bug in the caller; nothing went on the wire.
  * :class:`RemoteProtocolError` - the *peer* sent something malformed. The
    connection state machine turns these into RST_STREAM or GOAWAY itself;
    codecs raise them so the state machine knows what to answer.

* :class:`RpcError` - an expected, per-call failure with a gRPC status. This is
  what application code catches around a call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._metadata import Metadata
    from ._status import StatusCode


class PuregrpcError(Exception):
    """Base class of every exception raised by puregrpc on purpose."""


class ProtocolError(PuregrpcError):
    """The HTTP/2 or gRPC protocol was violated, by us or by the peer."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol forbids; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids.

    ``code`` is the gRPC status the call should end with (for example INTERNAL
    for a truncated message, RESOURCE_EXHAUSTED for an oversized one).
    """

    def __init__(self, message: str, code: StatusCode | None = None) -> None:
        super().__init__(message)
        from ._status import StatusCode

        #: The gRPC status the affected call ends with.
        self.code: StatusCode = StatusCode.INTERNAL if code is None else code


class RpcError(PuregrpcError):
    """A call ended with a non-OK gRPC status.

    Carries everything the peer said about the failure: the status ``code``,
    the human-readable ``details`` (already percent-decoded), the raw
    ``grpc-status-details-bin`` bytes (``details_bin``, usually a serialized
    ``google.rpc.Status``) and the ``trailing_metadata``.
    """

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        *,
        trailing_metadata: Metadata | None = None,
        details_bin: bytes | None = None,
        initial_metadata: Metadata | None = None,
    ) -> None:
        super().__init__(code, details)
        from ._metadata import Metadata

        #: The gRPC status code.
        self.code = code
        #: The status message sent in ``grpc-message``.
        self.details = details
        #: Trailing metadata of the failed call.
        self.trailing_metadata = trailing_metadata if trailing_metadata is not None else Metadata()
        #: Initial (response header) metadata, when the server sent any.
        self.initial_metadata = initial_metadata if initial_metadata is not None else Metadata()
        #: The raw ``grpc-status-details-bin`` payload, if any.
        self.details_bin = details_bin

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name

    def __repr__(self) -> str:
        return f"RpcError({self.code.name}, {self.details!r})"
