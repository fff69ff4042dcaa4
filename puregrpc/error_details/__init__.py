"""puregrpc.error_details: rich error details in ``grpc-status-details-bin``.

A handler raises :func:`rich_error` to end its call with a status *and*
typed details (the ``google.rpc`` error detail messages, re-exported here,
or any protobuf message); a client reads them back from the
:class:`~puregrpc.RpcError` it caught with :func:`details_of` (one type) or
:func:`unpack_details` (all of them). The trailer is the ``google.rpc.Status``
that grpcio-status reads and writes, so errors cross between puregrpc and
grpcio in both directions. A trailer that is unreadable, or whose code
disagrees with the call's, raises :class:`StatusDetailsError` (a
``ValueError``, as in grpcio-status) rather than being skipped: a client that
branches on details learns that they were lost.

Needs the ``googleapis-common-protos`` package: ``pip install
'puregrpc[error-details]'``. Its modules ship ``.pyi`` stubs without a
``py.typed`` marker, so ``mypy`` checks them only with
``follow_untyped_imports = true`` for ``google.rpc.*``.

Usage (the client's ``RpcError`` equals what the handler raised; here both
ends run in one process)::

    >>> from puregrpc import RpcError, StatusCode
    >>> from puregrpc.error_details import BadRequest, RetryInfo, details_of, rich_error
    >>> def check_email(email: str) -> None:  # inside a handler
    ...     if "@" not in email:
    ...         violation = BadRequest.FieldViolation(field="email", description="needs an @")
    ...         retry = RetryInfo()
    ...         retry.retry_delay.FromSeconds(2)
    ...         raise rich_error(
    ...             StatusCode.INVALID_ARGUMENT,
    ...             "invalid email",
    ...             [BadRequest(field_violations=[violation]), retry],
    ...         )
    >>> try:  # around the client's call
    ...     check_email("nobody")
    ... except RpcError as error:
    ...     for bad_request in details_of(error, BadRequest):
    ...         for violation in bad_request.field_violations:
    ...             print(error.code.name, violation.field, violation.description)
    ...     print([info.retry_delay.ToSeconds() for info in details_of(error, RetryInfo)])
    INVALID_ARGUMENT email needs an @
    [2]
"""

try:
    from google.rpc import error_details_pb2 as _error_details_pb2
    from google.rpc import status_pb2 as _status_pb2  # noqa: F401 (checks it is there)
except ImportError as exc:
    raise ImportError(
        "puregrpc.error_details needs the googleapis-common-protos package (google.rpc):"
        " install it with `pip install 'puregrpc[error-details]'`"
    ) from exc

from ._rich_status import StatusDetailsError as StatusDetailsError
from ._rich_status import details_of as details_of
from ._rich_status import error_from_status as error_from_status
from ._rich_status import rich_error as rich_error
from ._rich_status import status_of as status_of
from ._rich_status import unpack_details as unpack_details

#: Describes the cause of the error with structured details.
ErrorInfo = _error_details_pb2.ErrorInfo
#: When the client may retry a failed request (``retry_delay``, a Duration).
RetryInfo = _error_details_pb2.RetryInfo
#: Debugging information: a stack trace and detail text.
DebugInfo = _error_details_pb2.DebugInfo
#: How a quota check failed (``violations``).
QuotaFailure = _error_details_pb2.QuotaFailure
#: Which preconditions failed (``violations``).
PreconditionFailure = _error_details_pb2.PreconditionFailure
#: Which request fields were invalid (``field_violations``).
BadRequest = _error_details_pb2.BadRequest
#: The request a client may attach to a bug report (``request_id``, ``serving_data``).
RequestInfo = _error_details_pb2.RequestInfo
#: The resource being accessed (``resource_type``, ``resource_name``, ``owner``).
ResourceInfo = _error_details_pb2.ResourceInfo
#: Links to documentation or help (``links``).
Help = _error_details_pb2.Help
#: An error message in a given locale (``locale``, ``message``).
LocalizedMessage = _error_details_pb2.LocalizedMessage

__all__ = [
    "BadRequest",
    "DebugInfo",
    "ErrorInfo",
    "Help",
    "LocalizedMessage",
    "PreconditionFailure",
    "QuotaFailure",
    "RequestInfo",
    "ResourceInfo",
    "RetryInfo",
    "StatusDetailsError",
    "details_of",
    "error_from_status",
    "rich_error",
    "status_of",
    "unpack_details",
]
