"""Build and read the ``google.rpc.Status`` carried in ``grpc-status-details-bin``.

gRPC's richer error model (grpc.io "Error handling", and the comments of
``google/rpc/status.proto``): besides ``grpc-status`` and ``grpc-message``,
a failed call may end with the trailer ``grpc-status-details-bin``, a
serialized ``google.rpc.Status`` whose ``details`` are ``google.protobuf.Any``
messages (``google.rpc.ErrorInfo``, ``BadRequest``, ``RetryInfo``, ...). The
wire layer already carries the raw bytes (:attr:`puregrpc.Status.details_bin`);
this module turns them into messages and back.

Two rules shape it:

* The ``code`` inside the ``google.rpc.Status`` must equal the call's
  ``grpc-status``, so :func:`rich_error` takes the code once and writes it in
  both places, with the same message. grpcio-status's ``from_call`` raises
  ``ValueError`` when either differs, so anything we send passes it.
* A trailer that is not a ``google.rpc.Status``, whose code disagrees with
  ``grpc-status``, or whose known details are corrupt, is the peer's fault and
  raises :class:`StatusDetailsError` (a ``ValueError``, like grpcio-status's),
  never a bare ``DecodeError`` and never a silent ``None``: a client that
  branches on details should learn that they were unreadable. The messages
  may differ (a proxy may rewrite ``grpc-message``): the Status's own message
  is returned as sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from ..wire import Metadata, PuregrpcError, RpcError, Status, StatusCode

#: A detail message type, as passed to :func:`details_of`.
DetailT = TypeVar("DetailT", bound=Message)


class StatusDetailsError(PuregrpcError, ValueError):
    """``grpc-status-details-bin`` could not be used as the call's ``google.rpc.Status``.

    Raised by :func:`status_of`, :func:`unpack_details` and :func:`details_of`
    when the trailer is not a serialized ``google.rpc.Status``, when its
    ``code`` disagrees with the call's ``grpc-status``, or when a detail of a
    known type does not parse as that type. The call's own status (code and
    message) is still valid; only its details are lost.
    """


def rich_error(
    code: StatusCode,
    message: str,
    details: Iterable[Message] = (),
    *,
    trailing_metadata: Metadata | None = None,
) -> RpcError:
    """An :class:`~puregrpc.RpcError` carrying ``details`` in a ``google.rpc.Status``.

    Raise it from a handler to end the call with ``code`` and ``message``
    (``grpc-status`` / ``grpc-message``) and, in ``grpc-status-details-bin``,
    a ``google.rpc.Status`` with the same code and message whose ``details``
    are ``details`` packed into ``Any`` (an ``Any`` is kept as it is).
    Raises ValueError for OK: a call that succeeded has no error details.
    """
    if code is StatusCode.OK:
        raise ValueError("rich_error() needs a non-OK status code")
    status = status_pb2.Status(code=int(code), message=message)
    for detail in details:
        status.details.append(_pack(detail))
    return _error(status, code, trailing_metadata)


def error_from_status(
    status: status_pb2.Status, *, trailing_metadata: Metadata | None = None
) -> RpcError:
    """An :class:`~puregrpc.RpcError` for an already built ``google.rpc.Status``.

    The counterpart of grpcio-status's ``rpc_status.to_status``: the call
    ends with ``status.code`` and ``status.message``, and ``status`` itself
    travels in ``grpc-status-details-bin``. Raises ValueError when
    ``status.code`` is OK or not a gRPC status code.
    """
    try:
        code = StatusCode(status.code)
    except ValueError:
        raise ValueError(
            f"google.rpc.Status code {status.code} is not a gRPC status code"
        ) from None
    if code is StatusCode.OK:
        raise ValueError("error_from_status() needs a google.rpc.Status with a non-OK code")
    return _error(status, code, trailing_metadata)


def status_of(source: RpcError | Status) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a call ended with, or None if it sent none.

    ``source`` is the call's :class:`~puregrpc.RpcError` (or its
    :class:`~puregrpc.Status`). Raises :class:`StatusDetailsError` when the
    trailer does not parse as a ``google.rpc.Status`` or its code is not the
    call's code.
    """
    raw = source.details_bin
    if raw is None:
        return None
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError as exc:
        raise StatusDetailsError(
            f"grpc-status-details-bin ({len(raw)} bytes) is not a google.rpc.Status: {exc}"
        ) from exc
    if status.code != source.code:
        raise StatusDetailsError(
            f"grpc-status-details-bin carries code {_code_name(status.code)},"
            f" but the call ended with {source.code.name} ({int(source.code)})"
        )
    return status


def unpack_details(source: RpcError | Status) -> list[Message]:
    """Every detail of the call's ``google.rpc.Status``, unpacked where the type is known.

    A detail whose type is registered in protobuf's default descriptor pool
    (every ``google.rpc`` error detail, and any message whose ``_pb2`` module
    has been imported) comes back as that message; others stay
    ``google.protobuf.Any``, in their place. Empty when the call sent no
    ``google.rpc.Status``. Raises :class:`StatusDetailsError` like
    :func:`status_of`, or when a detail of a known type is corrupt.
    """
    status = status_of(source)
    if status is None:
        return []
    pool = descriptor_pool.Default()
    unpacked: list[Message] = []
    for packed in status.details:
        try:
            descriptor = pool.FindMessageTypeByName(packed.TypeName())
        except KeyError:
            unpacked.append(packed)
            continue
        message = message_factory.GetMessageClass(descriptor)()
        _unpack_into(packed, message)
        unpacked.append(message)
    return unpacked


def details_of(source: RpcError | Status, detail_type: type[DetailT]) -> list[DetailT]:
    """The details of the call's ``google.rpc.Status`` that are ``detail_type``, in order.

    For example ``details_of(error, BadRequest)``. Empty when the call sent
    no ``google.rpc.Status`` or none of that type. Raises
    :class:`StatusDetailsError` like :func:`status_of`, or when such a detail
    is corrupt.
    """
    status = status_of(source)
    if status is None:
        return []
    # What Any.Is() compares, spelled so that both descriptor types check.
    wanted = detail_type.DESCRIPTOR.full_name
    found: list[DetailT] = []
    for packed in status.details:
        if packed.TypeName() == wanted:
            message = detail_type()
            _unpack_into(packed, message)
            found.append(message)
    return found


def _pack(detail: Message) -> any_pb2.Any:
    """``detail`` as an ``Any`` (with the usual ``type.googleapis.com/`` URL)."""
    if isinstance(detail, any_pb2.Any):
        return detail
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def _unpack_into(packed: any_pb2.Any, message: Message) -> None:
    """Parse ``packed`` into ``message`` (its type already checked to match)."""
    try:
        packed.Unpack(message)
    except DecodeError as exc:
        raise StatusDetailsError(f"detail {packed.TypeName()} is corrupt: {exc}") from exc


def _error(status: status_pb2.Status, code: StatusCode, trailing: Metadata | None) -> RpcError:
    """The RpcError that ends a call with ``code`` and sends ``status`` as its details."""
    return RpcError(
        code,
        status.message,
        details_bin=status.SerializeToString(),
        trailing_metadata=trailing,
    )


def _code_name(code: int) -> str:
    """``INVALID_ARGUMENT (3)``, or just the number for a code gRPC does not define."""
    try:
        return f"{StatusCode(code).name} ({code})"
    except ValueError:
        return str(code)
