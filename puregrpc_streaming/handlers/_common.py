"""What the handler modules share: settings, statuses, timestamps, nurseries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn

import trio
from google.protobuf.timestamp_pb2 import Timestamp

from puregrpc import RpcError, StatusCode
from puregrpc.server import ServicerContext


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """The knobs of the service (``ServeConfig`` fills them from the command line)."""

    #: Largest accepted upload; more -> RESOURCE_EXHAUSTED.
    max_upload_bytes: int = 1 << 30
    #: Seconds of silence on a WatchEvents stream before a heartbeat event.
    heartbeat_interval: float = 15.0
    #: DownloadFile chunk size, 16..64 KiB.
    chunk_size: int = 64 * 1024
    #: ListLargeDataset rows per database round trip when the request says 0.
    batch_size: int = 100
    #: Time limit of one InteractiveQuery statement, in seconds.
    query_timeout: float = 5.0
    #: Largest InteractiveQuery row (encoded JSON, hence response message) and value.
    max_query_row_bytes: int = 1 << 20
    #: Chat messages a caller may send per second, and in one burst.
    chat_rate: float = 20.0
    chat_burst: int = 50

    def __post_init__(self) -> None:
        if not 16 * 1024 <= self.chunk_size <= 64 * 1024:
            raise ValueError(f"chunk_size must be 16 KiB..64 KiB, got {self.chunk_size}")
        if self.max_upload_bytes < 0:
            raise ValueError("max_upload_bytes must not be negative")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        if not 1 <= self.batch_size <= MAX_PAGE_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_PAGE_SIZE}, got {self.batch_size}")
        if self.query_timeout <= 0:
            raise ValueError("query_timeout must be positive")
        if not self.chat_rate > 0 or self.chat_burst < 1:
            raise ValueError("chat_rate and chat_burst must be positive")
        if not 1024 <= self.max_query_row_bytes <= MAX_MESSAGE_BYTES - 1024:
            raise ValueError(
                f"max_query_row_bytes must be 1 KiB..{MAX_MESSAGE_BYTES - 1024}, "
                f"got {self.max_query_row_bytes}"
            )


#: Largest ListRequest.page_size.
MAX_PAGE_SIZE = 10_000
#: Seconds calls in flight get to finish when the server stops (the default).
SHUTDOWN_GRACE = 3.0
#: The largest message gRPC clients accept by default (4 MiB): no response may be bigger.
MAX_MESSAGE_BYTES = 4 << 20


def fail(code: StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` and ``message``."""
    raise RpcError(code, message)


def invalid(message: str) -> NoReturn:
    """End the call with INVALID_ARGUMENT."""
    raise RpcError(StatusCode.INVALID_ARGUMENT, message)


def timestamp_ns(nanoseconds: int) -> Timestamp:
    """A protobuf Timestamp from nanoseconds since the epoch."""
    stamp = Timestamp()
    stamp.FromNanoseconds(nanoseconds)
    return stamp


def metadata_text(context: ServicerContext, key: str) -> str | None:
    """The first text value of ``key`` in the call's metadata, or ``None``."""
    try:
        value = context.invocation_metadata()[key]
    except KeyError:
        return None
    if isinstance(value, bytes):
        invalid(f"metadata {key!r} must be text")
    return value


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


@asynccontextmanager
async def flat_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery whose failures reach the server as a plain status.

    trio wraps whatever leaves a nursery in an ExceptionGroup; the server
    maps only :class:`RpcError` to a status (anything else is UNKNOWN). So an
    RpcError inside the group is raised on its own, and so is a lone error.
    Cancellation is left alone (trio handles Cancelled inside groups).
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        for leaf in leaves:
            if isinstance(leaf, RpcError):
                raise leaf from None
        errors = [leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)]
        if len(errors) == 1 and len(leaves) == 1:
            raise errors[0] from None
        if not errors:
            # Only cancellations: one of them, bare, reaches its cancel scope
            # the same way, and the server's status is not UNKNOWN.
            raise leaves[0] from None
        raise
