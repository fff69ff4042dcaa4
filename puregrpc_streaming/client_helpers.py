"""Client helpers for streaming.v1: resumable downloads, resuming watches, uploads.

These are the reconnection best practice, on the client side:

* :func:`download_file` writes to ``PATH.part``; when the connection is lost
  it reconnects with exponential backoff and asks for the rest with
  ``start_offset`` = the bytes it already has. A later run finds the
  ``.part`` file and continues from its size. At the end it checks the size
  the server announced (and a sha256, when it knows one), and only then
  renames the file into place.
* :class:`EventWatcher` reconnects a WatchEvents stream the same way and
  sends metadata ``last-event-id`` so the server replays what was missed;
  when the server says some of it is gone (a ``gap`` event), the watcher
  tells its ``on_gap`` callback, or raises :class:`EventsLost`.
* :func:`upload_file` streams a file in chunks with contiguous offsets and
  checks the server's size and checksum against its own.

All file IO runs in worker threads (``trio.open_file``), so a transfer never
stalls the event loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import trio

from puregrpc import RpcError, StatusCode
from puregrpc.client import BackoffPolicy, CallOptions, Channel, ChannelOptions

from .progress import Progress
from .protos import streaming_pb2
from .protos.streaming_puregrpc import StreamingServiceStub

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DownloadResult",
    "EventGap",
    "EventWatcher",
    "EventsLost",
    "RetryPolicy",
    "TransferError",
    "UploadResult",
    "client_tls_context",
    "download_file",
    "file_sha256",
    "open_channel",
    "part_path",
    "unwrap_group",
    "upload_file",
]

#: Upload chunk size: the top of the 16-64 KiB range the service recommends.
DEFAULT_CHUNK_SIZE = 64 * 1024

#: Hashing reads files in blocks this large.
_HASH_BLOCK = 1 << 20


class TransferError(Exception):
    """A transfer finished but its result is wrong (size or checksum mismatch)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how often a stream is reopened after a transient failure.

    Waits grow exponentially from ``initial_backoff`` (times ``multiplier``
    per failure, up to ``max_backoff``, randomised by ``jitter``). Progress
    (a chunk or an event received) resets the count, so ``attempts`` bounds
    consecutive failures, not the reconnections of a long transfer.
    """

    #: Consecutive failed attempts tolerated before giving up.
    attempts: int = 8
    initial_backoff: float = 0.2
    multiplier: float = 2.0
    max_backoff: float = 5.0
    #: Relative randomisation of each wait (0.2 = +-20%).
    jitter: float = 0.2
    #: Status codes worth another attempt: the connection or server went away.
    retryable: frozenset[StatusCode] = field(
        default_factory=lambda: frozenset(
            {StatusCode.UNAVAILABLE, StatusCode.ABORTED, StatusCode.INTERNAL, StatusCode.UNKNOWN}
        )
    )

    def delay(self, failures: int) -> float:
        """The wait before the next attempt after ``failures`` consecutive failures."""
        base = min(self.initial_backoff * self.multiplier ** max(failures - 1, 0), self.max_backoff)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def client_tls_context(
    ca_file: Path | None, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A TLS client context trusting ``ca_file`` (or the system store when ``None``).

    With ``cert`` (and ``key``, unless the key is in the same PEM) the client
    presents that certificate: the server's mutual TLS takes the user id
    from it.
    """
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load client certificate {cert} / key {key}: {exc}") from exc
    elif key is not None:
        raise ValueError("a client key needs its certificate (tls_cert)")
    return context


def unwrap_group(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups, else ``exc``.

    trio nurseries wrap what leaves them in an :class:`ExceptionGroup` even
    when only one task failed; callers want the :class:`RpcError` itself.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def open_channel(
    target: str,
    *,
    tls_ca: Path | None = None,
    tls: bool = False,
    server_name: str | None = None,
    token: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> AsyncIterator[Channel]:
    """A channel to ``target`` (``HOST:PORT``), over TLS if ``tls``, ``tls_ca`` or ``tls_cert``.

    ``token`` goes with every call as ``authorization: Bearer <token>``;
    ``tls_cert``/``tls_key`` are the client certificate of mutual TLS.
    Errors raised in the block come out as themselves, not wrapped in the
    exception group of the channel's nursery. The channel's own reconnection
    backoff is kept short (0.1 s growing to 2 s) because the helpers here
    pace their retries themselves; a connection attempt is given 5 s.
    """
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise ValueError("a bearer token must be non-empty and without spaces")
    defaults = CallOptions(metadata=[("authorization", f"Bearer {token}")] if token else None)
    options = ChannelOptions(
        backoff=BackoffPolicy(initial_backoff=0.1, max_backoff=2.0, min_connect_timeout=5.0),
        call_defaults=defaults,
    )
    secure = tls or tls_ca is not None or tls_cert is not None
    ssl_context = client_tls_context(tls_ca, cert=tls_cert, key=tls_key) if secure else None
    try:
        async with Channel(
            target, ssl_context=ssl_context, options=options, server_hostname=server_name
        ) as channel:
            yield channel
    except BaseExceptionGroup as group:
        # The channel's nursery wraps an error of the block in a group.
        inner = unwrap_group(group)
        if inner is group:
            raise
        raise inner from None


def part_path(dest: Path) -> Path:
    """Where a download to ``dest`` keeps its bytes until it is complete."""
    return dest.with_name(dest.name + ".part")


async def file_sha256(path: Path) -> str:
    """The lowercase hex sha256 of a file, hashed in a worker thread."""

    def digest() -> str:
        hasher = hashlib.sha256()
        with path.open("rb") as file:
            while block := file.read(_HASH_BLOCK):
                hasher.update(block)
        return hasher.hexdigest()

    return await trio.to_thread.run_sync(digest)


# ------------------------------------------------------------------ download


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadResult:
    """What :func:`download_file` fetched."""

    path: Path
    #: The server's name for the file (empty when no chunk was received).
    filename: str
    size: int
    #: Lowercase hex sha256 of the complete file.
    sha256: str
    #: Whether ``sha256`` matched an expected checksum (False: none was known).
    checksum_verified: bool
    #: Bytes found in ``PATH.part`` from an earlier, interrupted run.
    resumed_from: int
    #: Bytes received by this run.
    received: int
    #: Streams reopened after a transient failure.
    reconnects: int
    #: Seconds of the whole call, hashing an existing ``.part`` and fsync included.
    elapsed: float
    #: Seconds spent receiving (the streams and their backoffs): what a rate divides by.
    transfer_time: float


async def _hash_prefix(path: Path) -> tuple[hashlib._Hash, int]:
    """sha256 state and size of the bytes already in ``path`` (empty if missing)."""

    def run() -> tuple[hashlib._Hash, int]:
        hasher = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as file:
                while block := file.read(_HASH_BLOCK):
                    hasher.update(block)
                    size += len(block)
        except FileNotFoundError:
            pass
        return hasher, size

    return await trio.to_thread.run_sync(run)


async def download_file(
    stub: StreamingServiceStub,
    file_id: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    retry: RetryPolicy | None = None,
    attempt_timeout: float | None = None,
    progress: Progress | None = None,
    on_retry: Callable[[RpcError, float], None] | None = None,
) -> DownloadResult:
    """Download ``file_id`` to ``dest``, resuming and reconnecting as needed.

    Bytes go to ``dest.part`` first; an existing ``.part`` (from an
    interrupted run) is continued from its size. Transient failures
    (``retry.retryable``) reopen the stream from the last offset after a
    backoff (``on_retry(error, delay)`` is told first); other failures raise
    :class:`RpcError` and keep the ``.part`` for a later run.
    ``attempt_timeout`` is the gRPC deadline of each attempt. When the
    stream ends, the size must equal the ``total_size`` the server announced
    and, if ``expected_sha256`` is given, the sha256 must match; otherwise
    :class:`TransferError` is raised and the ``.part`` removed (its bytes are
    wrong, resuming would not help). On success the ``.part`` is fsynced and
    renamed to ``dest``.
    """
    policy = retry if retry is not None else RetryPolicy()
    part = part_path(dest)
    began = time.perf_counter()
    hasher, offset = await _hash_prefix(part)
    resumed_from = offset
    if progress is not None:
        progress.resume_at(offset)
    total: int | None = None
    filename = ""
    failures = 0
    reconnects = 0
    transfer_began = time.perf_counter()
    async with await trio.open_file(part, "ab") as out:
        while True:
            try:
                call = stub.DownloadFile(
                    streaming_pb2.DownloadRequest(file_id=file_id, start_offset=offset),
                    timeout=attempt_timeout,
                )
                async with call:
                    async for chunk in call:
                        if chunk.offset != offset:
                            raise TransferError(
                                f"server sent a chunk at offset {chunk.offset}, expected {offset}"
                            )
                        if total is None or chunk.total_size != total:
                            total = chunk.total_size
                            if progress is not None:
                                progress.total = total
                        filename = chunk.filename or filename
                        await out.write(chunk.content)
                        hasher.update(chunk.content)
                        offset += len(chunk.content)
                        failures = 0
                        if progress is not None:
                            progress.advance(len(chunk.content))
                break
            except RpcError as exc:
                if exc.code is StatusCode.OUT_OF_RANGE and resumed_from > 0:
                    raise TransferError(
                        f"{part} holds {resumed_from:,} bytes, more than file {file_id} has: "
                        "it is not a partial copy of this file; remove it and retry"
                    ) from None
                failures += 1
                if exc.code not in policy.retryable or failures > policy.attempts:
                    raise
                delay = policy.delay(failures)
                if on_retry is not None:
                    on_retry(exc, delay)
                reconnects += 1
                await out.flush()
                await trio.sleep(delay)
        transfer_time = time.perf_counter() - transfer_began
        await out.flush()
        await trio.to_thread.run_sync(os.fsync, out.fileno())
    sha256 = hasher.hexdigest()
    if total is not None and offset != total:
        await trio.Path(part).unlink(missing_ok=True)
        raise TransferError(
            f"download of {file_id} ended at {offset:,} bytes, the server announced {total:,}"
        )
    verified = False
    if expected_sha256 is not None:
        if sha256 != expected_sha256.lower():
            await trio.Path(part).unlink(missing_ok=True)
            raise TransferError(
                f"checksum mismatch for {file_id}: got sha256 {sha256}, expected {expected_sha256}"
            )
        verified = True
    await trio.Path(part).replace(dest)
    if progress is not None:
        progress.finish("(sha256 verified)" if verified else "")
    return DownloadResult(
        path=dest,
        filename=filename,
        size=offset,
        sha256=sha256,
        checksum_verified=verified,
        resumed_from=resumed_from,
        received=offset - resumed_from,
        reconnects=reconnects,
        elapsed=time.perf_counter() - began,
        transfer_time=transfer_time,
    )


# -------------------------------------------------------------------- upload


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadResult:
    """The server's answer to :func:`upload_file`, checked against the local file."""

    file_id: str
    size: int
    #: Lowercase hex sha256, as computed by both ends.
    checksum: str
    chunks: int
    elapsed: float


async def upload_file(
    stub: StreamingServiceStub,
    path: Path,
    *,
    filename: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    call_timeout: float | None = None,
    progress: Progress | None = None,
) -> UploadResult:
    """Upload the file at ``path`` as ``filename`` (default: its name).

    Chunks carry contiguous offsets from 0 and the total size; the first one
    also carries the filename; ``call_timeout`` is the call's gRPC deadline.
    The response must report the size sent and
    the sha256 computed locally while reading, or :class:`TransferError` is
    raised.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk size must be positive, not {chunk_size}")
    name = filename if filename is not None else path.name
    size = (await trio.Path(path).stat()).st_size
    if progress is not None:
        progress.total = size
    hasher = hashlib.sha256()
    chunks = 0
    began = time.perf_counter()

    async def chunks_of_file() -> AsyncIterator[streaming_pb2.FileChunk]:
        nonlocal chunks
        offset = 0
        # Read many chunks per worker-thread round trip: a hop per 64 KiB
        # would cost more than the read itself.
        block_size = max(chunk_size, _HASH_BLOCK // chunk_size * chunk_size)
        async with await trio.open_file(path, "rb") as file:
            while True:
                block = await file.read(block_size)
                if not block and chunks:
                    return
                hasher.update(block)
                view = memoryview(block)
                for start in range(0, max(len(block), 1), chunk_size):
                    content = bytes(view[start : start + chunk_size])
                    yield streaming_pb2.FileChunk(
                        content=content,
                        offset=offset,
                        total_size=size,
                        filename=name if offset == 0 else "",
                    )
                    chunks += 1
                    offset += len(content)
                    if progress is not None:
                        progress.advance(len(content))
                if not block:
                    return  # an empty file: one empty chunk names it

    response = await stub.UploadFile(chunks_of_file(), timeout=call_timeout)
    checksum = hasher.hexdigest()
    if response.size != size or response.checksum != checksum:
        raise TransferError(
            f"the server stored {response.size:,} bytes with sha256 {response.checksum}, "
            f"but {size:,} bytes with sha256 {checksum} were sent"
        )
    if progress is not None:
        progress.finish("(sha256 verified)")
    return UploadResult(
        file_id=response.file_id,
        size=size,
        checksum=checksum,
        chunks=chunks,
        elapsed=time.perf_counter() - began,
    )


# --------------------------------------------------------------------- watch


@dataclass(frozen=True, slots=True, kw_only=True)
class EventGap:
    """Events the server could not replay: what a ``gap`` event says."""

    #: The id the watch resumed after.
    last_event_id: str
    #: Where the replay went on from (the watcher continues after this id).
    resumed_after: str
    #: Why, in the server's words.
    reason: str


class EventsLost(Exception):
    """A resumed watch missed events (the server no longer has them), and no ``on_gap`` was set."""

    def __init__(self, gap: EventGap) -> None:
        super().__init__(gap.reason)
        self.gap = gap


def _gap_of(event: streaming_pb2.Event) -> EventGap:
    try:
        fields = json.loads(event.payload)
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    return EventGap(
        last_event_id=str(fields.get("last_event_id", "")),
        resumed_after=str(fields.get("resumed_after", event.id)),
        reason=str(fields.get("reason", "the server lost some events")),
    )


class EventWatcher:
    """A WatchEvents subscription that survives reconnections.

    ``async for event in watcher.events():`` yields events in order; after a
    transient failure (or the server ending the stream, e.g. to shed a slow
    subscriber, on shutdown, or when a deadline ends it) it reopens the stream with metadata
    ``last-event-id`` = the id of the last event yielded, so the server
    replays what was missed and nothing is seen twice.
    """

    def __init__(
        self,
        stub: StreamingServiceStub,
        *,
        event_types: Iterable[str] = (),
        filter: str = "",
        last_event_id: str | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[RpcError | None, float], None] | None = None,
        on_gap: Callable[[EventGap], None] | None = None,
    ) -> None:
        """Watch ``event_types`` matching ``filter``, after ``last_event_id`` if given.

        ``on_gap(gap)`` is told when a resume missed events the server no
        longer has (without it, :class:`EventsLost` is raised); gap events
        are never yielded.
        """
        self._stub = stub
        self._on_gap = on_gap
        self._request = streaming_pb2.WatchRequest(event_types=list(event_types), filter=filter)
        #: The id of the last event yielded (what a reconnection resumes after).
        self.last_event_id = last_event_id
        #: Streams reopened so far.
        self.reconnects = 0
        policy = retry if retry is not None else RetryPolicy()
        # A slow subscriber is ended with RESOURCE_EXHAUSTED, and a deadline
        # (a proxy's, a server's default) ends a watch that is still wanted
        # with DEADLINE_EXCEEDED: both resume as after UNAVAILABLE.
        self._retry = replace(
            policy,
            retryable=policy.retryable
            | {StatusCode.RESOURCE_EXHAUSTED, StatusCode.DEADLINE_EXCEEDED},
        )
        self._on_retry = on_retry

    async def events(self) -> AsyncGenerator[streaming_pb2.Event, None]:
        """The events, forever (until the caller stops or retries are exhausted).

        Close the generator when done (``aclose()``, or ``contextlib.aclosing``).
        """
        failures = 0
        while True:
            metadata = (
                [("last-event-id", self.last_event_id)] if self.last_event_id is not None else None
            )
            error: RpcError | None = None
            call = self._stub.WatchEvents(self._request, metadata=metadata)
            try:
                async with call:
                    async for event in call:
                        failures = 0
                        if event.type == "gap":
                            gap = _gap_of(event)
                            if self._on_gap is None:
                                raise EventsLost(gap)
                            self._on_gap(gap)
                            self.last_event_id = event.id
                            continue
                        self.last_event_id = event.id
                        yield event
            except RpcError as exc:
                if exc.code not in self._retry.retryable:
                    raise
                error = exc
            failures += 1
            if failures > self._retry.attempts:
                if error is not None:
                    raise error
                raise RpcError(StatusCode.UNAVAILABLE, "the server keeps ending the watch")
            delay = self._retry.delay(failures)
            if self._on_retry is not None:
                self._on_retry(error, delay)
            self.reconnects += 1
            await trio.sleep(delay)
