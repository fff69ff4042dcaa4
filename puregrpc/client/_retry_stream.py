"""The retry layer: one call, made of one or more attempts (gRFC A6).

Theory of operation. Every call of a channel is a :class:`RetryingStream`
(what interceptors get back from ``proceed``: they see one call). Below it,
each *attempt* is a :class:`~._channel_stream.ChannelStream` of raw bytes,
opened through the channel's stream opener, which asks
``CallRouter.pick`` for a connection: so a retry or a hedge may go to
another backend. Requests are serialized here once and kept in a buffer,
so that a new attempt can be sent everything the call has sent so far::

    call object / interceptors
            │  send / done_writing / receive / initial_metadata
            ▼
    RetryingStream ── buffer of requests (bytes) ── replayed to each attempt
            │
            ├── attempt 1: ChannelStream ── pick ── backend a   (failed: UNAVAILABLE)
            └── attempt 2: ChannelStream ── pick ── backend b   (headers: committed)

Until the call is *committed*, an attempt that fails may be followed by
another; once committed, the chosen attempt is the call, and the buffer is
let go (a request then goes straight to the attempt, with no bookkeeping).
A call without a policy keeps only references to its serialized requests,
never copies, for its one possible transparent retry. A call commits when
an attempt's response headers arrive (the application may have seen them:
nothing can be taken back after that), when its requests no longer fit in
the buffer (the per-call or the per-channel limit: it goes on, unretried),
when an attempt fails and none may follow, and when it is cancelled.

Which attempt may follow (``_next_attempt``):

* **transparent retry**: an attempt that ended provably unseen by the
  server (``never_processed``: RST_STREAM REFUSED_STREAM, or opened above a
  GOAWAY's last stream id) is sent again at once, on a fresh pick, once per
  call, with or without a policy; it counts against neither ``maxAttempts``
  nor the throttle. (An attempt that never left the client, its connection
  closing before the headers went out, is redone by the opener itself.)
* **retryPolicy**: a retryable code, attempts left, the throttle allowing,
  and no "stop" pushback: wait the backoff (or the pushback), then retry.
* **hedgingPolicy**: attempts start every ``hedgingDelay`` (at once after a
  non-fatal failure, or after the pushback) while none has answered; the
  first to get response headers, or to end OK or with a fatal code, wins
  and the others are cancelled (RST_STREAM CANCEL).

The call's deadline covers every attempt and every wait between them. All
waits happen inside the caller's own operations (``receive``,
``initial_metadata``, ``send``), hedges' watchers in a nursery there: the
layer has no task of its own, so nothing outlives the call.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, TypeVar

import trio

from ..runtime import CallCounts, Cardinality, Method, raw_method
from ..wire import Metadata, RpcError, Status, StatusCode
from ._channel_stream import ChannelStream, StreamOpener, UnaryOpener
from ._interceptor import ClientCallDetails, ClientStream
from ._replay import Attempt, Replay
from ._retry_rules import (
    MAX_ATTEMPTS,
    PREVIOUS_ATTEMPTS_KEY,
    PUSHBACK_KEY,
    STOP,
    RetryBuffer,
    RetryThrottle,
    parse_pushback,
    retry_backoff,
)
from ._service_config import HedgingPolicy, MethodConfig, RetryPolicy

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


@dataclass(slots=True, kw_only=True)
class RetrySupport:
    """What the retry layer shares across a channel's calls."""

    #: Opens one attempt's HTTP/2 stream (through ``CallRouter.pick``).
    open_stream: StreamOpener
    #: Opens a unary attempt with its request without a wait, where it can.
    open_unary_now: UnaryOpener | None = None
    #: Requests held for replay, under the channel's budget.
    buffer: RetryBuffer
    #: The ``retryThrottling`` bucket, if the service config has one.
    throttle: RetryThrottle | None = None
    #: Retry and hedging policies apply (transparent retries always do).
    policies_enabled: bool = True
    #: Draws the backoff waits (seeded in tests).
    rng: random.Random = field(default_factory=random.Random)
    #: The channel's call counts (channelz): one start and one end per call.
    calls: CallCounts | None = None


class RetryingStream(ClientStream[RequestT, ResponseT]):
    """A call's :class:`ClientStream` over one or more attempts (see the module doc)."""

    __slots__ = (
        "_attempts",
        "_counted",
        "_counted_success",
        "_deciding",
        "_decision_lot",
        "_details",
        "_hedging",
        "_live",
        "_max_attempts",
        "_max_request",
        "_max_response",
        "_next_hedge_at",
        "_no_more_hedges",
        "_overflowed",
        "_raw_details",
        "_replay",
        "_retries",
        "_retry",
        "_status",
        "_support",
        "_transparent_left",
        "_wait_scope",
        "_winner",
        "_winner_if_last",
    )

    def __init__(
        self,
        details: ClientCallDetails,
        support: RetrySupport,
        method_config: MethodConfig | None = None,
    ) -> None:
        self._details = details
        self._support = support
        retry: RetryPolicy | None = None
        hedging: HedgingPolicy | None = None
        if method_config is not None and support.policies_enabled:
            retry, hedging = method_config.retry_policy, method_config.hedging_policy
        self._retry = retry
        self._hedging = hedging
        policy = retry or hedging
        self._max_attempts = 1 if policy is None else min(policy.max_attempts, MAX_ATTEMPTS)
        self._max_request = method_config.max_request_message_bytes if method_config else None
        self._max_response = method_config.max_response_message_bytes if method_config else None
        # Attempts deal in bytes: requests are serialized (and responses
        # parsed) once, here.
        self._raw_details = ClientCallDetails(
            _raw(details.path, details.cardinality),
            details.metadata,
            details.deadline,
            details.compression,
            details.wait_for_ready,
        )
        #: The requests, kept for the attempts to come (until the commit).
        self._replay = Replay(support.buffer)
        #: Attempts running and not yet decided about.
        self._live: list[Attempt] = []
        #: The attempt the call committed to (None: not committed, or none to commit to).
        self._winner: Attempt | None = None
        #: The call's own end (cancelled, deadline between attempts, a size limit).
        self._status: Status | None = None
        #: Attempts started that count against maxAttempts.
        self._attempts = 0
        self._transparent_left = 1
        #: Retries since the last pushback (the backoff's exponent).
        self._retries = 0
        #: A request did not fit in the buffer: no attempt may follow.
        self._overflowed = False
        self._counted_success = False
        #: For the channel's counts: 0 not started, 1 started, 2 ended.
        self._counted = 0
        #: When the next hedged attempt may start.
        self._next_hedge_at = math.inf
        #: A pushback or the throttle said: no more hedges.
        self._no_more_hedges = False
        #: The last attempt that failed (the call's outcome if none succeeds).
        self._winner_if_last: Attempt | None = None
        # One task at a time decides what follows a failed attempt: a flag
        # and a lot (no checkpoint when free, unlike trio.Lock).
        self._deciding = False
        self._decision_lot = trio.lowlevel.ParkingLot()
        #: The scope of a wait between attempts (cancel() ends it).
        self._wait_scope: trio.CancelScope | None = None

    # ------------------------------------------------------------ outcome

    @property
    def details(self) -> ClientCallDetails:
        """What the call is."""
        return self._details

    @property
    def committed(self) -> bool:
        """Whether the call has settled on one attempt (or ended without one)."""
        return self._winner is not None or self._status is not None

    @property
    def attempts(self) -> int:
        """Attempts started that count against ``maxAttempts`` (transparent retries do not)."""
        return self._attempts

    @property
    def status(self) -> Status | None:
        """How the call ended, once it has."""
        if self._status is not None:
            return self._status
        winner = self._winner
        return winner.stream.status if winner is not None else None

    @property
    def trailing_metadata(self) -> Metadata:
        """The committed attempt's trailing metadata (empty until the call has ended)."""
        winner = self._winner
        return winner.stream.trailing_metadata if winner is not None else Metadata()

    @property
    def last_response_compressed(self) -> bool:
        """Whether the last response received arrived compressed."""
        winner = self._winner
        return winner.stream.last_response_compressed if winner is not None else False

    async def initial_metadata(self) -> Metadata:
        """Wait for the response headers of the attempt the call commits to."""
        winner = await self._committed_attempt()
        return await winner.stream.initial_metadata()

    # ----------------------------------------------------------- requests

    async def start(self) -> None:
        """Start the first attempt now (request headers go out)."""
        if self._attempts == 0 and not self.committed:
            await self._launch()

    async def send(self, request: RequestT, *, compress: bool = True) -> None:
        """Send one request, to every attempt running (and kept for the ones to come)."""
        if self._replay.done_writing:
            self._refuse_send()
        data = self._serialize(request)
        winner = self._winner
        if winner is not None and self._replay.settled:
            # Committed, and the attempt has everything kept: straight to it.
            await winner.stream.send(data, compress=compress)
            return
        await self.start()
        if not self.committed:
            if self._replay.keep(data, compress):
                await self._send_kept()
                return
            # Over the buffer's limit: the call goes on as it is, unretried.
            self._overflow()
            if not self.committed:
                # No attempt runs: one is being decided on; it gets the
                # buffer replayed, then this request, and the call.
                async with self._decision():
                    pass
                self._overflow()
                if not self.committed:
                    self._commit_to_last_failure()
        winner = await self._sending_attempt()
        await self._replay.catch_up(winner, then_release=True)
        await winner.stream.send(data, compress=compress)

    async def done_writing(self) -> None:
        """Half-close, on every attempt running and the ones to come."""
        if self._replay.done_writing:
            return
        self._replay.done_writing = True
        await self.start()
        if not self.committed:
            await self._send_kept()
            return
        winner = await self._sending_attempt()
        await self._replay.catch_up(winner, then_release=True)

    async def send_last(self, request: RequestT) -> None:
        """Send ``request`` and half-close (a unary request): one step for the first attempt."""
        if self._replay.done_writing:
            self._refuse_send()
        data = self._serialize(request)
        if self._attempts == 0 and not self.committed and self._replay.keep(data):
            self._replay.done_writing = True
            await self._launch()
            return
        await self.send(request)
        await self.done_writing()

    # ---------------------------------------------------------- responses

    async def receive(self) -> ResponseT | None:
        """The next response of the committed attempt, or ``None`` after the last one."""
        winner = self._winner
        if winner is None:
            winner = await self._committed_attempt()
        try:
            data = await winner.stream.receive()
        except RpcError:
            self._count_end(False)
            raise
        if data is None:
            self._count_end(True)
            throttle = self._support.throttle
            if throttle is not None and not self._counted_success:
                self._counted_success = True
                throttle.succeeded()
            return None
        limit = self._max_response
        if limit is not None and len(data) > limit:
            self._fail(
                StatusCode.RESOURCE_EXHAUSTED,
                f"{self._details.path}: received a response of {len(data)} bytes, over the "
                f"service config's maxResponseMessageBytes ({limit})",
            )
        try:
            response: ResponseT = self._details.method.response_deserializer(data)
        except Exception as exc:
            self._fail(
                StatusCode.INTERNAL,
                f"{self._details.path}: could not deserialize a response "
                f"({type(exc).__name__}: {exc})",
            )
        return response

    # --------------------------------------------------------- lifecycle

    def cancel(self, details: str = "cancelled by the client") -> None:
        """Cancel the call: every attempt is reset (RST_STREAM CANCEL)."""
        winner = self._winner
        if winner is not None:
            winner.stream.cancel(details)
            if winner.stream.status is None or not winner.stream.status.ok:
                self._count_end(False)
            return
        if self._status is None:
            self._status = Status(code=StatusCode.CANCELLED, details=details)
            self._count_end(False)
        self._commit(None)
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    # ------------------------------------------------------ the attempts

    async def _launch(self, *, transparent: bool = False) -> None:
        """Start an attempt on a fresh pick and send it what the call has sent so far."""
        calls = self._support.calls
        if self._counted == 0 and calls is not None:
            self._counted = 1
            calls.call_started()
        if not transparent:
            self._attempts += 1
            if self._hedging is not None:
                self._next_hedge_at = trio.current_time() + self._hedging.hedging_delay
        details = self._raw_details
        previous = self._attempts - 1
        if previous:
            # A6: the server may see how many attempts came before (a
            # transparent retry repeats its attempt's number, as grpc-java).
            metadata = details.metadata.copy()
            metadata.add(PREVIOUS_ATTEMPTS_KEY, str(previous))
            details = replace(details, metadata=metadata)
        attempt = Attempt(
            ChannelStream(details, self._support.open_stream, self._support.open_unary_now)
        )
        self._live.append(attempt)
        try:
            if self._replay.is_unary():
                # Headers, the request and the half-close in one step.
                await self._replay.send_unary(attempt)
                return
            await attempt.stream.start()
        except RpcError:
            return  # the attempt's end is its status: whoever waits on it decides
        await self._replay.catch_up(attempt)

    async def _send_kept(self) -> None:
        """Bring every running attempt up to date with the kept requests (before the commit).

        An attempt that ended meanwhile is left for the receiving side to
        decide about (it may be retried, with everything kept).
        """
        live = self._live
        if len(live) == 1:
            await self._replay.catch_up(live[0])  # the common case: no hedges
            return
        for attempt in list(live):
            await self._replay.catch_up(attempt)

    async def _sending_attempt(self) -> Attempt:
        """The attempt a committed call sends on; raises the call's status if there is none."""
        winner = self._winner
        if winner is None:
            self._raise_status()
        return winner

    # ----------------------------------------------------------- deciding

    async def _committed_attempt(self) -> Attempt:
        """Run attempts until the call commits to one; raise the call's status if it has none."""
        await self.start()
        try:
            while not self.committed:
                if self._hedging is not None:
                    await self._hedge_round()
                else:
                    await self._retry_round()
        except BaseException as exc:
            if not isinstance(exc, Exception):
                self.cancel()  # interrupted (the caller's scope): no attempt is left open
            raise
        return await self._sending_attempt()

    async def _retry_round(self) -> None:
        """Wait for the running attempt's headers or end; after an end, decide what follows."""
        if not self._live:
            # Another task is deciding (a sender saw the failure first): wait for it.
            async with self._decision():
                pass
            if not self._live and not self.committed:
                self._end(Status(code=StatusCode.INTERNAL, details="retry: no attempt left"))
            return
        attempt = self._live[0]
        try:
            # Bounded by the call's deadline (the attempt ends DEADLINE_EXCEEDED).
            await attempt.stream.initial_metadata()
        except RpcError:
            pass  # its end is its status
        if attempt.stream.response_headers_received:
            self._commit(attempt)
            return
        async with self._decision():
            if self.committed or attempt not in self._live:
                return
            self._live.remove(attempt)
            self._winner_if_last = attempt
            delay = self._next_attempt(attempt)
            if delay is None:
                self._commit(attempt)
                return
            if delay > 0 and not await self._pause(delay):
                return
            await self._launch(transparent=delay == 0 and self._is_transparent(attempt))

    async def _hedge_round(self) -> None:
        """One look at the hedged attempts: commit to a winner, start the next, or wait."""
        policy = self._hedging
        assert policy is not None
        now = trio.current_time()
        for attempt in list(self._live):
            stream = attempt.stream
            if stream.response_headers_received:
                self._commit(attempt)
                return
            status = stream.status
            if status is None:
                continue
            self._live.remove(attempt)
            if self._is_transparent(attempt) and self._transparent_left:
                self._transparent_left -= 1
                await self._launch(transparent=True)
                return
            if status.ok or status.code not in policy.non_fatal_status_codes or self._expired():
                self._commit(attempt)
                return
            self._winner_if_last = attempt
            pushback = parse_pushback(_strings(stream.trailing_metadata, PUSHBACK_KEY))
            throttle = self._support.throttle
            allowed = throttle.failed() if throttle is not None else True
            if pushback == STOP or not allowed:
                self._no_more_hedges = True
            # A6: after a non-fatal failure the next hedge goes at once (or
            # after the pushback); later ones hedgingDelay after it.
            self._next_hedge_at = now + (pushback or 0.0)
        can_start = (
            self._attempts < self._max_attempts
            and not self._overflowed
            and not self._no_more_hedges
        )
        if can_start and now >= self._next_hedge_at:
            throttle = self._support.throttle
            if throttle is not None and not throttle.allows:
                self._no_more_hedges = True  # A6: a drained bucket sends no hedge
                return
            await self._launch()
            return
        if not self._live and not can_start:
            self._commit_to_last_failure()
            return
        with self._deadline_scope() as scope:
            async with trio.open_nursery() as nursery:
                for attempt in self._live:
                    nursery.start_soon(self._watch, attempt, nursery.cancel_scope)
                if can_start:
                    nursery.start_soon(self._sleep_then_cancel, self._next_hedge_at, nursery)
        if scope.cancelled_caught:
            self._end(Status(code=StatusCode.DEADLINE_EXCEEDED, details="deadline exceeded"))

    # ------------------------------------------------------------ helpers

    def _next_attempt(self, failed: Attempt) -> float | None:
        """After ``failed`` ended: seconds until the next attempt (0: at once), or None: commit."""
        stream = failed.stream
        status = stream.status
        if status is None or status.ok or self._overflowed:
            return None
        if self._is_transparent(failed) and self._transparent_left:
            self._transparent_left -= 1
            return 0.0
        policy = self._retry
        if policy is None or status.code not in policy.retryable_status_codes:
            return None
        if self._expired():
            return None
        pushback = parse_pushback(_strings(stream.trailing_metadata, PUSHBACK_KEY))
        throttle = self._support.throttle
        allowed = throttle.failed() if throttle is not None else True
        if pushback == STOP or not allowed or self._attempts >= self._max_attempts:
            return None
        if pushback is not None:
            # A6: after a pushback, the backoff starts over from initialBackoff.
            self._retries = 0
            return max(pushback, 1e-6)
        self._retries += 1
        return max(retry_backoff(policy, self._retries, self._support.rng), 1e-6)

    def _is_transparent(self, attempt: Attempt) -> bool:
        return attempt.stream.never_processed and not self._overflowed

    async def _wait_for_answer(self, attempt: Attempt) -> None:
        """Until the attempt's response headers arrive or it ends."""
        stream = attempt.stream
        await stream.wait_answer()
        if not stream.response_headers_received and stream.status is None:
            # The connection went away without ending the call (should not happen).
            stream.cancel("the attempt's connection closed")

    async def _watch(self, attempt: Attempt, scope: trio.CancelScope) -> None:
        await self._wait_for_answer(attempt)
        scope.cancel()

    @staticmethod
    async def _sleep_then_cancel(when: float, nursery: trio.Nursery) -> None:
        await trio.sleep_until(when)
        nursery.cancel_scope.cancel()

    async def _pause(self, delay: float) -> bool:
        """Wait ``delay`` seconds between attempts; False if the call ended meanwhile.

        The call's deadline ends the wait (and the call, DEADLINE_EXCEEDED).
        """
        with self._deadline_scope() as scope:
            self._wait_scope = scope
            try:
                await trio.sleep(delay)
            finally:
                self._wait_scope = None
        if scope.cancelled_caught and self._expired():
            self._end(Status(code=StatusCode.DEADLINE_EXCEEDED, details="deadline exceeded"))
        return not self.committed

    def _deadline_scope(self) -> trio.CancelScope:
        deadline = self._details.deadline
        return trio.CancelScope(deadline=math.inf if deadline is None else deadline)

    def _expired(self) -> bool:
        deadline = self._details.deadline
        return deadline is not None and trio.current_time() >= deadline

    def _decision(self) -> _Guard:
        """``async with self._decision():`` one task at a time decides what follows an attempt."""
        return _Guard(self)

    def _commit(self, attempt: Attempt | None) -> None:
        """Settle on ``attempt`` (None: the call ended above its attempts); cancel the others."""
        if self._winner is not None:
            return
        self._winner = attempt
        for other in self._live:
            if other is not attempt:
                other.stream.cancel("another attempt of the call won")
        self._live = []
        if attempt is None or self._replay.has_all(attempt):
            self._replay.release(attempt)

    def _commit_to_last_failure(self) -> None:
        """No attempt is left: the last one that failed is the call's outcome."""
        if self._winner_if_last is not None:
            self._commit(self._winner_if_last)
        else:
            self._end(Status(code=StatusCode.UNAVAILABLE, details="no attempt of the call is left"))

    def _overflow(self) -> None:
        """The requests no longer fit in the buffer: commit to the attempt that has them all."""
        self._overflowed = True
        live = [a for a in self._live if a.stream.status is None] or self._live
        if live:
            self._commit(max(live, key=lambda a: a.sent))

    def _end(self, status: Status) -> None:
        """End the call here with ``status`` (every attempt cancelled)."""
        if self._status is None:
            self._status = status
        self._count_end(status.ok)
        for attempt in self._live:
            attempt.stream.cancel(status.details)
        self._live = []
        self._replay.release(self._winner)

    def _fail(self, code: StatusCode, details: str) -> NoReturn:
        """Fail the call with ``code`` (its attempt reset) and raise it."""
        self._end(Status(code=code, details=details))
        winner = self._winner
        if winner is not None:
            winner.stream.cancel(details)
        self._raise_status()

    def _serialize(self, request: RequestT) -> bytes:
        try:
            data = self._details.method.request_serializer(request)
        except Exception as exc:
            self._fail(
                StatusCode.INTERNAL,
                f"{self._details.path}: could not serialize the request "
                f"({type(exc).__name__}: {exc})",
            )
        limit = self._max_request
        if limit is not None and len(data) > limit:
            self._fail(
                StatusCode.RESOURCE_EXHAUSTED,
                f"{self._details.path}: a request of {len(data)} bytes is over the service "
                f"config's maxRequestMessageBytes ({limit})",
            )
        return data

    def _refuse_send(self) -> NoReturn:
        status = self.status
        path = self._details.path
        if status is not None and not status.ok:
            self._raise_status()
        if status is not None:
            raise RpcError(
                StatusCode.FAILED_PRECONDITION,
                f"{path}: send() after the call ended (status {status.code.name})",
            )
        raise RpcError(StatusCode.FAILED_PRECONDITION, f"{path}: send() after done_writing()")

    def _count_end(self, ok: bool) -> None:
        """The call's outcome is known: count it on the channel, once."""
        calls = self._support.calls
        if self._counted == 1 and calls is not None:
            self._counted = 2
            calls.call_ended(ok)

    def _raise_status(self) -> NoReturn:
        status = self._status
        winner = self._winner
        if status is None and winner is not None:
            status = winner.stream.status
        if status is None:
            status = Status(code=StatusCode.UNKNOWN, details="the call ended without a status")
        self._count_end(status.ok)
        raise RpcError.from_status(status, trailing_metadata=self.trailing_metadata)


class _Guard:
    """One task at a time decides what follows an attempt (a flag and a lot: no checkpoint)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: RetryingStream[Any, Any]) -> None:
        self._stream = stream

    async def __aenter__(self) -> None:
        stream = self._stream
        while stream._deciding:
            await stream._decision_lot.park()
        stream._deciding = True

    async def __aexit__(self, *exc_info: object) -> None:
        stream = self._stream
        stream._deciding = False
        stream._decision_lot.unpark_all()


@functools.lru_cache(maxsize=1024)
def _raw(path: str, cardinality: Cardinality) -> Method[bytes, bytes]:
    """The bytes-in, bytes-out method attempts use (one per path, not one per call)."""
    return raw_method(path, cardinality)


def _strings(metadata: Metadata, key: str) -> list[str | bytes]:
    return list(metadata.get_all(key))
