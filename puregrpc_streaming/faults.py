"""Storage faults as clear statuses: a full disk, a locked database, a read-only directory.

Without this, a handler that meets ``OSError(ENOSPC)`` or SQLite's
"database is locked" ends its call UNKNOWN, naming only the exception's
type. :class:`StorageFaultInterceptor` turns them into statuses that say
what happened and what to do:

* no space (ENOSPC, EDQUOT, or EFBIG: past the file size limit), SQLite's
  "database or disk is full": RESOURCE_EXHAUSTED naming the cause;
* SQLite's "database is locked" or "busy" (another process holds a lock
  longer than the busy timeout): UNAVAILABLE, nothing was written, retry;
* a read-only file system or a permission refusal (EROFS, EACCES, EPERM),
  SQLite's "attempt to write a readonly database": UNAVAILABLE naming it;
* a shared store or event bus that cannot reach its server (PostgreSQL or
  Redis down: :class:`~.backends.base.StoreUnavailable`,
  :class:`~.backends.base.BusUnavailable`): UNAVAILABLE with a
  ``google.rpc.RetryInfo`` saying when to retry (:func:`unavailable`).

Each is logged once at ERROR with the full cause, for the operator. What
the call had started is undone by the handlers (an upload's temporary file
is removed, a transaction rolled back) before the status goes out.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from puregrpc import RpcError, StatusCode
from puregrpc.error_details import RetryInfo, rich_error
from puregrpc.server import ServerCall, ServerContinuation

from .backends.base import BusUnavailable, StoreUnavailable

__all__ = ["StorageFaultInterceptor", "is_disk_full", "storage_fault", "unavailable"]

logger = logging.getLogger("puregrpc_streaming")

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def is_disk_full(error: BaseException) -> bool:
    """True if ``error`` says the disk (or a size limit) has no room for more."""
    if isinstance(error, OSError):
        return error.errno in _FULL
    return isinstance(error, sqlite3.OperationalError) and "full" in str(error)


def storage_fault(error: BaseException) -> RpcError | None:
    """The status ``error`` stands for, if it is a storage fault (else ``None``)."""
    if is_disk_full(error):
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return RpcError(
            StatusCode.RESOURCE_EXHAUSTED,
            f"the server's storage is full ({cause}): nothing was stored; "
            "retry once space is freed",
        )
    if isinstance(error, OSError) and error.errno in _READ_ONLY:
        return RpcError(
            StatusCode.UNAVAILABLE,
            f"the server cannot write its data directory ({error.strerror or error})",
        )
    if isinstance(error, sqlite3.OperationalError):
        text = str(error)
        if "locked" in text or "busy" in text:
            return RpcError(
                StatusCode.UNAVAILABLE,
                f"the server's database is locked by another process ({text}): "
                "nothing was written; retry",
            )
        if "readonly" in text or "read-only" in text:
            return RpcError(
                StatusCode.UNAVAILABLE, f"the server cannot write its database ({text})"
            )
    return None


def unavailable(error: BusUnavailable | StoreUnavailable, message: str | None = None) -> RpcError:
    """UNAVAILABLE for ``error`` (saying ``message``), its retry delay as a RetryInfo."""
    retry = RetryInfo()
    retry.retry_delay.FromNanoseconds(max(1, int(error.retry_after * 1e9)))
    text = message if message is not None else str(error)
    return rich_error(StatusCode.UNAVAILABLE, f"{text}; retry in {error.retry_after:g} s", [retry])


class StorageFaultInterceptor:
    """A server interceptor: storage faults (see the module) end calls with a clear status."""

    async def intercept(
        self, call: ServerCall[object, object], proceed: ServerContinuation
    ) -> None:
        """Run the call; re-raise a storage fault as its status."""
        try:
            await proceed(call)
        except (BusUnavailable, StoreUnavailable) as error:
            logger.warning("%s failed: %s", call.method.path, error)
            raise unavailable(error) from None
        except (OSError, sqlite3.Error) as error:
            status = storage_fault(error)
            if status is None:
                raise
            logger.error("%s failed on storage: %r", call.method.path, error)
            raise status from error
