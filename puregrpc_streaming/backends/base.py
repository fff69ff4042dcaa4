"""The backend interfaces the handlers are written against, and their records.

Each interface is a small :class:`typing.Protocol`, async from the handler's
point of view, so that a backend shared by several server instances (object
storage, a message broker, a database server) can replace an embedded default
without touching the handlers. The embedded defaults live beside this module:
:mod:`.files` (local files), :mod:`.events` (an in-process bus) and
:mod:`.sqlite` (dataset, key-value and metrics stores in one SQLite file).

Errors a handler maps to a gRPC status are exceptions defined here, so every
backend raises the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from ..filters import Filter, Predicate

# ------------------------------------------------------------------ files


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """A committed upload."""

    #: Opaque, non-empty id chosen by the store.
    file_id: str
    #: The client's name for the file (a plain name, no directories).
    filename: str
    size: int
    #: Lowercase hex sha256 of the content.
    checksum: str
    #: Seconds since the epoch.
    created_at: float


class FileIdError(ValueError):
    """A file id that is malformed in a way that could reach outside the store."""


class FileNotFound(LookupError):
    """No committed file has this id."""


class UploadSessionBusy(Exception):
    """Another call is writing to this upload session right now."""


class UploadSessionMismatch(ValueError):
    """A resumed upload session is of another file (the message says how)."""


class UploadSessionsFull(Exception):
    """No room for another upload session."""


class UploadSink(Protocol):
    """An upload in progress: content goes to a temporary place until commit."""

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    @property
    def filename(self) -> str:
        """The name the file is uploaded as."""
        ...

    async def write(self, data: bytes) -> None:
        """Append ``data`` (hashing it as it goes)."""
        ...

    async def commit(self) -> StoredFile:
        """Make the content durable and visible under a new id; returns its record."""
        ...

    async def abort(self) -> None:
        """Discard everything written (idempotent; also safe after commit)."""
        ...

    async def suspend(self) -> None:
        """Keep what was written for a later :meth:`FileStore.resume_upload` (or abort).

        Only sessions can be suspended; any other upload is aborted.
        """
        ...


class FileReader(Protocol):
    """An open stored file, positioned at the offset it was opened at."""

    @property
    def file(self) -> StoredFile:
        """The file's record."""
        ...

    async def read(self, max_bytes: int) -> bytes:
        """The next at most ``max_bytes`` bytes; empty at the end."""
        ...

    async def aclose(self) -> None:
        """Release the file (idempotent)."""
        ...


class FileStore(Protocol):
    """Where uploads are kept."""

    async def begin_upload(self, filename: str) -> UploadSink:
        """Start an upload of ``filename`` (already validated by the caller)."""
        ...

    async def claim_session(self, key: str) -> int:
        """Claim upload session ``key`` for one call; the bytes it holds (0: none yet).

        Raises :class:`UploadSessionBusy` while another call holds the claim.
        """
        ...

    def release_session(self, key: str) -> None:
        """End a claim (idempotent; committing or suspending the upload also ends it)."""
        ...

    async def resume_upload(self, key: str, filename: str, total_size: int) -> UploadSink:
        """Continue (or start) claimed upload session ``key``; its ``size`` is where to go on.

        Raises :class:`UploadSessionMismatch` or :class:`UploadSessionsFull`.
        """
        ...

    async def stat(self, file_id: str) -> StoredFile:
        """The record of ``file_id``; raises :class:`FileIdError` or :class:`FileNotFound`."""
        ...

    async def open(self, file_id: str, offset: int) -> FileReader:
        """Open ``file_id`` at ``offset`` (0 <= offset <= size; the caller checks)."""
        ...


# ----------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class BusEvent:
    """One published event (or a heartbeat or gap marker made for one subscriber)."""

    #: Opaque to clients, chosen by the bus; unique across restarts and instances.
    id: str
    #: Where the event is in the bus's order (what resuming compares).
    position: int
    type: str
    #: The JSON object the event carries (what filters look at).
    payload: Mapping[str, Any]
    #: The same payload, encoded once as compact JSON (what watchers receive).
    payload_json: bytes
    #: Nanoseconds since the epoch, when it was published.
    timestamp_ns: int
    #: Who may see it: principals of :mod:`puregrpc_streaming.access`.
    audience: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How much of the log is kept: the newest events within all three bounds."""

    max_events: int = 100_000
    max_bytes: int = 256 << 20
    #: Seconds.
    max_age: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_bytes < 1 or not self.max_age > 0:
            raise ValueError("retention bounds must be positive")

    def oldest_kept_ns(self, now: float) -> int:
        """Events stamped before this (nanoseconds) are expired at ``now`` (seconds)."""
        return int((now - self.max_age) * 1e9)


class SubscriberTooSlow(Exception):
    """The subscriber fell too far behind and was cut off (resume from your last id)."""


class BusClosed(Exception):
    """The bus is shutting down: no more events will come."""


class BusUnavailable(BusClosed):
    """The bus's store cannot be reached (a shared bus's server is down): retry later.

    Raised by ``publish`` and ``subscribe``, and by a subscription's
    ``next`` when the outage ends it; nothing was published then. A
    subscriber resumes from its last id once the store is back.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        #: Seconds after which a retry may succeed (the bus's reconnect interval).
        self.retry_after = retry_after


class StoreUnavailable(Exception):
    """A shared store's server cannot be reached (PostgreSQL down): retry later.

    Nothing was written: the store's transaction did not commit.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        #: Seconds after which a retry may succeed.
        self.retry_after = retry_after


class Subscription(Protocol):
    """Events for one subscriber: first the replayed ones, then live ones."""

    async def next(self) -> BusEvent:
        """Wait for the next event.

        Raises :class:`SubscriberTooSlow` once cut off, :class:`BusClosed` when
        the bus shuts down.
        """
        ...

    def pending(self) -> int:
        """Events waiting to be taken (replayed ones included)."""
        ...

    @property
    def resume_id(self) -> str:
        """An id that, as ``after_id``, resumes exactly where the subscriber stands."""
        ...

    def heartbeat(self) -> BusEvent:
        """A ``heartbeat`` event for this idle subscriber, not stored.

        Its id resumes exactly where the subscriber stands: a subscription
        with it as ``after_id`` misses nothing and repeats nothing.
        """
        ...


class EventBus(Protocol):
    """Publish/subscribe of :class:`BusEvent`, with a durable, replayable history."""

    async def publish(
        self, type: str, payload: Mapping[str, Any], *, audience: Sequence[str] = ("*",)
    ) -> BusEvent:
        """Store an event, then offer it to every matching subscriber; never waits for them."""
        ...

    def subscribe(
        self,
        *,
        types: frozenset[str] = frozenset(),
        predicate: Predicate | None = None,
        after_id: str | None = None,
        visible: Callable[[BusEvent], bool] | None = None,
    ) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe for the ``async with`` block.

        ``types`` empty means every type; ``visible`` (the caller's access
        check) and ``predicate`` (applied to the payload) must both pass.
        With ``after_id``, stored events after it are delivered first (in
        order, without gap or duplicate with live ones); if some are no
        longer stored, a ``gap`` event says so first. An ``after_id`` the
        bus never issued raises :class:`ValueError`.
        """
        ...

    @property
    def subscriber_count(self) -> int:
        """Subscriptions currently open (on this server)."""
        ...

    @property
    def last_id(self) -> str:
        """The id of the most recent event this bus delivered."""
        ...

    def close(self, reason: str = "server shutting down") -> None:
        """End every subscription (their readers get :class:`BusClosed`)."""
        ...


# ---------------------------------------------------------------- dataset


class DatasetRow(NamedTuple):
    """One row of the dataset table (a tuple: pages of them are built in bulk)."""

    id: int
    category: str
    value: float
    data: bytes

    def as_record(self) -> dict[str, Any]:
        """The fields a ListRequest filter sees."""
        return {"id": self.id, "category": self.category, "value": self.value}


#: The fields a ListRequest filter may name, and the kind of each (all never null).
DATASET_COLUMNS: Mapping[str, Literal["number", "string"]] = {
    "id": "number",
    "category": "string",
    "value": "number",
}
#: Top-level field names of :meth:`DatasetRow.as_record`.
DATASET_FIELDS = tuple(DATASET_COLUMNS)


class QueryError(Exception):
    """A query was refused or failed (the message is safe to show the client).

    ``code`` names the gRPC status the failure corresponds to:
    INVALID_ARGUMENT (not a SELECT, a syntax error), PERMISSION_DENIED (a
    table the caller may not read), RESOURCE_EXHAUSTED (a row over the
    limit), DEADLINE_EXCEEDED (over the time limit).
    """

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryLimits:
    """What one query may cost."""

    #: Rows returned at most (more: ``truncated``).
    max_rows: int
    #: Seconds of database work (fetching included; waiting for the client not).
    time_limit: float
    #: Largest row, as encoded JSON (also the largest single value).
    max_row_bytes: int


class QueryCursor(Protocol):
    """The rows of one running query, fetched a batch at a time."""

    @property
    def truncated(self) -> bool:
        """True once the fetches stopped at ``max_rows`` with rows left over."""
        ...

    async def fetch(self) -> list[bytes]:
        """The next rows as JSON objects (a bounded batch); empty at the end.

        Raises :class:`QueryError` when a row is over the limit or time runs out.
        """
        ...


class QuerySession(Protocol):
    """A read-only connection for one InteractiveQuery stream."""

    def execute(self, sql: str, limits: QueryLimits) -> AbstractAsyncContextManager[QueryCursor]:
        """Start one SELECT for the block; raises :class:`QueryError` if refused."""
        ...


@dataclass(slots=True)
class DatasetCounters:
    """What a dataset store has done, for tests and logs (reads stop on cancel)."""

    pages_fetched: int = 0
    rows_fetched: int = 0
    queries_run: int = 0


class DatasetStore(Protocol):
    """The large read-only dataset."""

    counters: DatasetCounters

    async def page(
        self, after_id: int, limit: int, where: Filter | None = None
    ) -> list[DatasetRow]:
        """Up to ``limit`` rows with ``id > after_id`` that match ``where``, in id order.

        ``where`` names only fields of :data:`DATASET_COLUMNS`.
        """
        ...

    async def row_count(self) -> int:
        """Rows in the dataset."""
        ...

    def query_session(
        self, *, all_tables: bool = False
    ) -> AbstractAsyncContextManager[QuerySession]:
        """A read-only session for ad-hoc SELECTs of the dataset table (``all_tables``: any)."""
        ...


# -------------------------------------------------------------- key-value


@dataclass(frozen=True, slots=True, kw_only=True)
class KvRecord:
    """The current state of one key (``deleted``: a tombstone kept for its version)."""

    key: str
    value: bytes
    version: int
    deleted: bool
    #: Seconds since the epoch of the last change.
    updated_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class KvChange:
    """A change a client asks for."""

    key: str
    value: bytes
    #: The version the client last saw (0: "it does not exist").
    base_version: int
    delete: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class KvOutcome:
    """What happened to a :class:`KvChange`."""

    applied: bool
    #: The key's state after the attempt (``None``: it never existed).
    current: KvRecord | None
    #: Why a change was not applied.
    reason: str = ""


class KeyValueStore(Protocol):
    """Versioned records, changed with optimistic concurrency."""

    async def get(self, key: str) -> KvRecord | None:
        """The key's current state (tombstones included), or ``None``."""
        ...

    async def apply(self, change: KvChange) -> KvOutcome:
        """Apply ``change`` if its base version is current (atomically)."""
        ...


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSample:
    """One received metric, as stored."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Seconds since the epoch (the client's timestamp, or arrival time).
    timestamp: float


class MetricsStaging(Protocol):
    """Samples of one call, kept aside until :meth:`commit` stores them all at once."""

    async def add(self, samples: Sequence[MetricSample]) -> None:
        """Keep ``samples`` aside (they are not visible yet)."""
        ...

    async def commit(self) -> int:
        """Store every sample kept aside, in one transaction; returns how many."""
        ...


class MetricsStore(Protocol):
    """Where received metrics are kept."""

    def staging(self) -> AbstractAsyncContextManager[MetricsStaging]:
        """A staging area for the block: what is not committed when it ends is dropped."""
        ...


# ------------------------------------------------------------------ rooms


class MembershipFull(Exception):
    """A join would pass a bound of the room directory (the message says which)."""


class RoomStore(Protocol):
    """Who has joined which chat room (the audience of room messages)."""

    def is_member(self, room: str, user_id: str) -> bool:
        """True if ``user_id`` has joined ``room``; never waits."""
        ...

    async def join(self, room: str, user_id: str) -> None:
        """Make ``user_id`` a member of ``room`` for good; :class:`MembershipFull` if full."""
        ...


# ---------------------------------------------------------------- together


class Backends(Protocol):
    """Everything the service's handlers use (``EmbeddedBackends`` is one)."""

    @property
    def files(self) -> FileStore:
        """Uploads."""
        ...

    @property
    def events(self) -> EventBus:
        """The event bus (watchers, chat rooms and sync streams all ride on it)."""
        ...

    @property
    def dataset(self) -> DatasetStore:
        """The large dataset and its query sessions."""
        ...

    @property
    def kv(self) -> KeyValueStore:
        """The records of GetData and SyncData."""
        ...

    @property
    def metrics(self) -> MetricsStore:
        """Received metrics."""
        ...

    @property
    def rooms(self) -> RoomStore:
        """Chat room membership."""
        ...
