"""RpcError: a call ended with a non-OK status, as application code sees it."""

from __future__ import annotations

from ._errors import PuregrpcError
from ._metadata import Metadata
from ._status import Status, StatusCode


class RpcError(PuregrpcError):
    """A call ended with a non-OK gRPC status.

    Carries the call's :class:`Status` (``status``: its ``code``, the
    human-readable ``details``, already percent-decoded, and the raw
    ``grpc-status-details-bin`` bytes, ``details_bin``, usually a serialized
    ``google.rpc.Status``) and the call's metadata. Handlers raise it to end a
    call with a status; clients catch it around calls.
    """

    __slots__ = ("initial_metadata", "status", "trailing_metadata")

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        *,
        details_bin: bytes | None = None,
        trailing_metadata: Metadata | None = None,
        initial_metadata: Metadata | None = None,
    ) -> None:
        super().__init__(code, details)
        #: The call's final status.
        self.status = Status(code=code, details=details, details_bin=details_bin)
        #: Trailing metadata of the failed call.
        self.trailing_metadata = trailing_metadata if trailing_metadata is not None else Metadata()
        #: Initial (response header) metadata, when the server sent any.
        self.initial_metadata = initial_metadata if initial_metadata is not None else Metadata()

    @classmethod
    def from_status(
        cls,
        status: Status,
        *,
        trailing_metadata: Metadata | None = None,
        initial_metadata: Metadata | None = None,
    ) -> RpcError:
        """The error of a call that ended with ``status``."""
        return cls(
            status.code,
            status.details,
            details_bin=status.details_bin,
            trailing_metadata=trailing_metadata,
            initial_metadata=initial_metadata,
        )

    @property
    def code(self) -> StatusCode:
        """The gRPC status code."""
        return self.status.code

    @property
    def details(self) -> str:
        """The status message sent in ``grpc-message``."""
        return self.status.details

    @property
    def details_bin(self) -> bytes | None:
        """The raw ``grpc-status-details-bin`` payload, if any."""
        return self.status.details_bin

    def __str__(self) -> str:
        return str(self.status)

    def __repr__(self) -> str:
        return f"RpcError({self.code.name}, {self.details!r})"
