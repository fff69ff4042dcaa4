"""The error tree of puregrpc's protocol core.

Every exception puregrpc raises on purpose derives from :class:`PuregrpcError`:

* :class:`ProtocolError` - the HTTP/2 or gRPC protocol was violated. It
  carries ``code``, the gRPC status the affected call ends with, so a driver
  can turn any protocol error into a status without a lookup table.

  * :class:`LocalProtocolError` - *we* were asked to do something the protocol
    forbids (send on a closed stream, reserved metadata, a malformed timeout
    to encode, a message over the send limit). A bug in the caller, or a
    limit it must respect; nothing went on the wire. The wire core raises
    only this one: drivers map it to a status (``code``).
  * :class:`RemoteProtocolError` - the *peer* sent something malformed. The
    connection state machine turns these into RST_STREAM or GOAWAY itself;
    codecs raise them so the state machine knows what to answer.

* :class:`~._rpc_error.RpcError` - an expected, per-call failure with a gRPC
  status, for application code (defined in :mod:`._rpc_error`).
"""

from __future__ import annotations

from ._status import StatusCode


class PuregrpcError(Exception):
    """Base class of every exception raised by puregrpc on purpose."""


class ProtocolError(PuregrpcError):
    """The HTTP/2 or gRPC protocol was violated, by us or by the peer.

    ``code`` is the gRPC status the affected call ends with (for example
    INTERNAL for a truncated message, RESOURCE_EXHAUSTED for an oversized one).
    """

    def __init__(self, message: str, code: StatusCode = StatusCode.INTERNAL) -> None:
        super().__init__(message)
        #: The gRPC status the affected call ends with.
        self.code: StatusCode = code


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol forbids; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""
