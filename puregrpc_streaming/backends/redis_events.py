"""The event bus on Redis Streams: one retained, resumable log shared by every instance.

Theory of operation:

* **The log is a Redis stream.** :meth:`RedisEventLog.append` adds an entry
  with ``XADD`` (Redis chooses the id, ``<ms>-<seq>``, increasing) and trims
  the stream to the retention's event count, bytes and age in the same Lua
  script (each entry keeps its size, the sum of the retained sizes is kept
  under ``<stream>:bytes``; sizes are counted as the embedded log counts them),
  recording the last id it trimmed under ``<stream>:pruned``, so a resume
  from before it is a *gap*, reported (never silent), as with the embedded
  log. The stream id **is** the event id clients see: any instance resumes
  any other's ids. Internally an id is also a *position*, an integer with
  the same order (``ms << 20 | seq``), which the subscriber machinery of
  :mod:`.events` compares.
* **Live delivery comes from the stream too.** Each bus runs one reader
  (:meth:`RedisEventBus.run`) that blocks in ``XREAD`` after the last id it
  delivered and offers every new entry, whichever instance added it (this
  one's included), to its local subscribers' bounded mailboxes, exactly as
  the embedded bus fans out (:class:`.events.SubscriberSet`). ``publish`` only
  appends: an event reaches its watchers through the reader, in the
  stream's order, on every instance alike.
* **Resuming** is the embedded bus's: a subscription registers with the
  reader's last id as its *boundary* (no checkpoint in between), replays the
  stream after ``after_id`` up to the boundary in pages (``XRANGE``), then
  takes live entries, all past the boundary: no gap, no duplicate
  (:class:`.events.BusSubscriber`).
* **Redis down.** Commands run with short socket timeouts and no client-side
  retries. A failed ``publish`` or ``subscribe`` raises
  :class:`~.base.BusUnavailable` (UNAVAILABLE for the caller, with a retry
  delay); a failed ``XREAD`` marks the bus down and ends every open
  subscription with :class:`~.base.BusUnavailable` (watchers get
  UNAVAILABLE and resume from their last id). The reader retries with a
  capped doubling delay and, once ``XREAD`` succeeds again, goes on from
  the last id it delivered: whatever other instances added meanwhile is
  delivered then. A Redis that restarts must keep its data (AOF or RDB) for
  the retained log to survive it.

The client is redis-py's synchronous one, each command in a worker thread
(``trio.to_thread``): redis-py's asyncio client needs asyncio, and the
trio-native Redis clients are unmaintained. Commands share a pool of
``threads`` connections behind a limiter of as many threads; the blocking
``XREAD`` has a connection and a one-thread limiter of its own, so it never
delays a publish. Its ``BLOCK`` is short (:data:`READ_BLOCK_MS`): a
cancelled read's thread is abandoned and ends by itself within that time.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..access import EVERYONE
from ..filters import Predicate
from .base import BusEvent, BusUnavailable, Retention
from .event_log import PAGE_EVENTS, LoggedEvent, LogPage, event_size
from .events import (
    DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_SIZE,
    MAX_EVENT_BYTES,
    BusSubscriber,
    SubscriberSet,
    encode_payload,
    from_log,
    gap_event,
)

__all__ = [
    "READ_BLOCK_MS",
    "RedisEventBus",
    "RedisEventLog",
    "RedisSettings",
    "open_redis_event_bus",
    "parse_stream_id",
    "stream_id",
]

logger = logging.getLogger("puregrpc_streaming.events")

T = TypeVar("T")

#: Milliseconds one ``XREAD`` blocks waiting for new entries.
READ_BLOCK_MS = 1000
#: Bits of a position that hold the id's sequence number.
_SEQ_BITS = 20

# KEYS: stream, pruned marker, retained bytes. ARGV: type, payload, audience,
# timestamp_ns, size, max events, max bytes, oldest ms kept by age.
# Appends the entry, then trims the oldest entries (never the new one) while
# any bound is passed: count, bytes (the sizes kept in each entry's ``s`` and
# summed under the bytes key) or age (the id's milliseconds). Returns the
# new entry's id.
_APPEND = """
local stream, marker, counter = KEYS[1], KEYS[2], KEYS[3]
local function size_of(fields)
  local t, p, a, s = '', '', '', nil
  for i = 1, #fields, 2 do
    local k, v = fields[i], fields[i + 1]
    if k == 's' then s = tonumber(v) elseif k == 't' then t = v
    elseif k == 'p' then p = v elseif k == 'a' then a = v end
  end
  return s or (#p + #t + #a + 64)
end
if redis.call('EXISTS', counter) == 0 or redis.call('XLEN', stream) == 0 then
  -- No count kept yet (or the stream is new): count what is there.
  local total, after = 0, '-'
  while true do
    local chunk = redis.call('XRANGE', stream, after, '+', 'COUNT', 256)
    if #chunk == 0 then break end
    for _, e in ipairs(chunk) do total = total + size_of(e[2]) end
    after = '(' .. chunk[#chunk][1]
  end
  redis.call('SET', counter, total)
end
local id = redis.call('XADD', stream, '*', 't', ARGV[1], 'p', ARGV[2], 'a', ARGV[3],
  'ts', ARGV[4], 's', ARGV[5])
local total = redis.call('INCRBY', counter, ARGV[5])
local count = redis.call('XLEN', stream)
local max_events, max_bytes, oldest_ms = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local last = false
while true do
  local chunk = redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)
  local removed = 0
  for _, e in ipairs(chunk) do
    if e[1] == id then break end
    local ms = tonumber(string.match(e[1], '^(%d+)-'))
    if count <= max_events and total <= max_bytes and ms >= oldest_ms then break end
    total = total - size_of(e[2])
    count = count - 1
    last = e[1]
    removed = removed + 1
  end
  if removed == 0 then break end
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  redis.call('XTRIM', stream, 'MINID', ms .. '-' .. (tonumber(seq) + 1))
  if removed < #chunk then break end
end
if last then
  redis.call('SET', marker, last)
  redis.call('SET', counter, total)
end
return id
"""


def stream_id(position: int) -> str:
    """The stream id ``<ms>-<seq>`` of a position."""
    return f"{position >> _SEQ_BITS}-{position & ((1 << _SEQ_BITS) - 1)}"


def parse_stream_id(event_id: str) -> int:
    """The position of a stream id (or a heartbeat's ``<id>.<n>``); ValueError if not one."""
    head, _, tail = event_id.strip().partition(".")
    ms, dash, seq = head.partition("-")
    digits = (ms, seq) if dash else (ms, "0")
    if not all(part.isascii() and part.isdigit() and len(part) <= 15 for part in digits):
        raise ValueError(f"{event_id!r} is not an event id of this event bus")
    if tail and not (tail.isascii() and tail.isdigit() and len(tail) <= 19):
        raise ValueError(f"{event_id!r} is not an event id of this event bus")
    if int(digits[1]) >> _SEQ_BITS:
        raise ValueError(f"{event_id!r}: sequence number out of range")
    return int(digits[0]) << _SEQ_BITS | int(digits[1])


def _position(entry_id: bytes | str) -> int:
    return parse_stream_id(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    """Where the shared event log lives, and how the bus talks to it."""

    #: ``redis://[:password@]host:port/db`` (or ``unix:///path``).
    url: str
    #: The stream's key (instances sharing it share events).
    stream: str = "puregrpc-streaming:events"
    #: Connections (and worker threads) for publish and replay reads.
    threads: int = 4
    #: Seconds a command may take before Redis counts as down.
    timeout: float = 2.0
    #: Reconnect delays of the reader: first, and the cap of its doubling.
    retry_min: float = 0.1
    retry_max: float = 2.0
    retention: Retention = field(default_factory=Retention)

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"redis threads must be 1..64, got {self.threads}")
        if not 0 < self.retry_min <= self.retry_max:
            raise ValueError("need 0 < retry_min <= retry_max")


def _client(settings: RedisSettings, *, max_connections: int, read_timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        settings.url,
        max_connections=max_connections,
        socket_timeout=read_timeout,
        socket_connect_timeout=settings.timeout,
        # Our own retry policy: an outage must surface at once, not after
        # the client's retries.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedisEventLog:
    """The stream: append, read a page, and its bounds (a :class:`.events.PagedLog`)."""

    def __init__(self, client: redis.Redis, settings: RedisSettings) -> None:
        self._client = client
        self._settings = settings
        self._stream = settings.stream
        self._pruned_key = f"{settings.stream}:pruned"
        self._bytes_key = f"{settings.stream}:bytes"
        self._append = client.register_script(_APPEND)
        self._limiter = trio.CapacityLimiter(settings.threads)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run one blocking Redis operation in a worker thread; BusUnavailable if Redis is down."""
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BusUnavailable(
                f"the event bus (Redis) is unavailable: {exc}",
                retry_after=self._settings.retry_max,
            ) from None

    async def append(
        self, type: str, payload_json: bytes, audience: Sequence[str], timestamp_ns: int
    ) -> int:
        """Add one event; its position (from the stream id Redis gave it)."""
        retention = self._settings.retention
        oldest_ms = max(0, time.time_ns() // 1_000_000 - int(retention.max_age * 1000))
        audience_json = json.dumps(list(audience))
        entry_id = await self.call(
            functools.partial(
                self._append,
                keys=[self._stream, self._pruned_key, self._bytes_key],
                args=[
                    type,
                    payload_json,
                    audience_json,
                    timestamp_ns,
                    event_size(type, payload_json, audience),
                    retention.max_events,
                    retention.max_bytes,
                    oldest_ms,
                ],
            )
        )
        return _position(entry_id)

    async def last_position(self) -> int:
        """The position of the stream's newest entry (0: empty)."""
        newest = await self.call(
            functools.partial(self._client.xrevrange, self._stream, "+", "-", count=1)
        )
        return _newest(newest)

    async def read(self, after: int, upto: int) -> LogPage:
        """Events with ``after < position <= upto``, oldest first, one page at most."""

        def run() -> list[Any]:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.xrange(
                    self._stream, f"({stream_id(after)}", stream_id(upto), count=PAGE_EVENTS
                )
                pipe.get(self._pruned_key)
                pipe.xrevrange(self._stream, "+", "-", count=1)
                return pipe.execute()

        entries, pruned, newest = await self.call(run)
        last = _newest(newest)
        return LogPage(
            events=[_logged(entry_id, fields) for entry_id, fields in entries],
            pruned_upto=_position(pruned) if pruned else 0,
            # The newest entry is never trimmed: a boundary past it means the
            # stream lost data (a Redis without persistence restarted), and
            # a resume from there is reported as a gap.
            last_position=last,
        )


def _newest(entries: Any) -> int:
    """The position of the one entry of an ``XREVRANGE + - COUNT 1`` (0: none)."""
    return _position(entries[0][0]) if entries else 0


def _logged(entry_id: bytes, fields: Mapping[bytes, bytes]) -> LoggedEvent:
    return LoggedEvent(
        position=_position(entry_id),
        type=fields[b"t"].decode(),
        payload_json=fields[b"p"],
        audience=tuple(json.loads(fields[b"a"])),
        timestamp_ns=int(fields[b"ts"]),
    )


class RedisEventBus:
    """An :class:`~.base.EventBus` whose log and live feed are one Redis stream."""

    def __init__(
        self,
        log: RedisEventLog,
        reader: redis.Redis,
        settings: RedisSettings,
        *,
        last_position: int = 0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
    ) -> None:
        """Publish to ``log``; ``reader`` (a client of its own) feeds the live subscribers."""
        self._log = log
        self._reader = reader
        self._settings = settings
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self._reader_limiter = trio.CapacityLimiter(1)
        self._subscribers = SubscriberSet()
        self._last_position = last_position
        #: Why Redis is unreachable now (None: it is reachable).
        self.down: str | None = None
        #: Events this instance published; outages the reader saw.
        self.published = 0
        self.outages = 0

    # ------------------------------------------------------ SubscriberSource

    @property
    def log(self) -> RedisEventLog:
        """The stream, where replays read."""
        return self._log

    @property
    def last_position(self) -> int:
        """The position of the last entry the reader delivered (or the stream's, at start)."""
        return self._last_position

    def event_id(self, position: int) -> str:
        """An event's id: its stream id."""
        return stream_id(position)

    def gap(self, requested: str, after: int, resumed: int, reason: str) -> BusEvent:
        """The ``gap`` event a replay starts with when the stream lost what followed ``after``."""
        return gap_event(requested, stream_id(resumed), resumed, reason)

    # -------------------------------------------------------------- EventBus

    @property
    def subscriber_count(self) -> int:
        """Subscriptions currently open on this instance."""
        return len(self._subscribers)

    @property
    def cut_off(self) -> int:
        """Subscribers cut off for being slow, since start."""
        return self._subscribers.cut_off

    @property
    def last_id(self) -> str:
        """The stream id of the last event delivered here."""
        return stream_id(self._last_position)

    async def publish(
        self, type: str, payload: Mapping[str, Any], *, audience: Sequence[str] = EVERYONE
    ) -> BusEvent:
        """Append one event to the stream (the readers deliver it); BusUnavailable if down."""
        payload_json = encode_payload(payload)
        if len(payload_json) > MAX_EVENT_BYTES:
            raise ValueError(
                f"event payload of {len(payload_json)} bytes is over {MAX_EVENT_BYTES}"
            )
        audience = tuple(audience)
        stamp = time.time_ns()
        with trio.CancelScope(shield=True):
            # Appended or not, never unknown to the caller: the append is short.
            position = await self._log.append(type, payload_json, audience, stamp)
        self.published += 1
        return BusEvent(
            id=stream_id(position),
            position=position,
            type=type,
            payload=payload,
            payload_json=payload_json,
            timestamp_ns=stamp,
            audience=audience,
        )

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        types: frozenset[str] = frozenset(),
        predicate: Predicate | None = None,
        after_id: str | None = None,
        visible: Callable[[BusEvent], bool] | None = None,
    ) -> AsyncIterator[BusSubscriber]:
        """Subscribe for the block; see :meth:`~.base.EventBus.subscribe`.

        Raises :class:`~.base.BusUnavailable` while Redis is down, and
        :class:`ValueError` for an ``after_id`` that is not a stream id.
        """
        after = parse_stream_id(after_id) if after_id is not None else None
        if self.down is not None and self._subscribers.closed is None:
            raise self._unavailable()
        async with self._subscribers.register(
            self,
            types=types,
            predicate=predicate,
            visible=visible,
            after=after,
            after_id=after_id,
        ) as subscriber:
            yield subscriber

    def close(self, reason: str = "server shutting down") -> None:
        """End every subscription (their readers get :class:`~.base.BusClosed`)."""
        self._subscribers.close(reason)

    # ---------------------------------------------------------------- reader

    def _unavailable(self) -> BusUnavailable:
        return BusUnavailable(
            f"the event bus (Redis) is unavailable: {self.down}",
            retry_after=self._settings.retry_max,
        )

    def _went_down(self, error: Exception) -> None:
        if self.down is None:
            self.outages += 1
            logger.error("event bus: Redis unreachable (%s); retrying", error)
        self.down = str(error) or type(error).__name__
        failure = self._unavailable()
        self._subscribers.end_all(str(failure), failure)

    async def _read_once(self) -> list[Any]:
        """One ``XREAD BLOCK``: ``[(stream, [(id, fields), ...])]``, empty if nothing came."""
        streams: dict[Any, Any] = {self._settings.stream: stream_id(self._last_position)}

        def read() -> list[Any]:
            result = self._reader.xread(streams, count=PAGE_EVENTS, block=READ_BLOCK_MS)
            # RESP2 answers a list of [stream, entries]; RESP3 a mapping.
            return list(result.items()) if isinstance(result, dict) else list(result)

        return await trio.to_thread.run_sync(
            read, limiter=self._reader_limiter, abandon_on_cancel=True
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver the stream's new entries to the subscribers until cancelled."""
        delay = self._settings.retry_min
        task_status.started()
        while True:
            try:
                result = await self._read_once()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._went_down(exc)
                await trio.sleep(delay)
                delay = min(delay * 2, self._settings.retry_max)
                continue
            if self.down is not None:
                logger.warning("event bus: Redis reachable again; delivering from %s", self.last_id)
                self.down = None
            delay = self._settings.retry_min
            for _, entries in result:
                for entry_id, fields in entries:
                    event = from_log(_logged(entry_id, fields), stream_id)
                    self._last_position = max(self._last_position, event.position)
                    self._subscribers.offer(event)


@asynccontextmanager
async def open_redis_event_bus(
    settings: RedisSettings, *, queue_bytes: int = DEFAULT_QUEUE_BYTES
) -> AsyncIterator[RedisEventBus]:
    """A :class:`RedisEventBus` on ``settings``, its reader running, for the block.

    Redis must be reachable at start (else :class:`ConnectionError`): the
    bus begins after the stream's newest entry.
    """
    commands = _client(settings, max_connections=settings.threads, read_timeout=settings.timeout)
    reader = _client(
        settings, max_connections=1, read_timeout=settings.timeout + READ_BLOCK_MS / 1000
    )
    try:
        log = RedisEventLog(commands, settings)
        try:
            last = await log.last_position()
        except BusUnavailable as exc:
            raise ConnectionError(f"cannot start the event bus: {exc}") from None
        bus = RedisEventBus(log, reader, settings, last_position=last, queue_bytes=queue_bytes)
        logger.info("event bus on Redis stream %r, after %s", settings.stream, bus.last_id)
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            try:
                yield bus
            finally:
                bus.close()
                nursery.cancel_scope.cancel()
    finally:
        commands.close()
        reader.close()
