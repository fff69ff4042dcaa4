"""BatchProcess: work items processed as they arrive, answered in one bounded response.

The response must fit in one gRPC message (4 MiB, what clients accept by
default), so its size is accounted for while the items are processed: an
item whose result would take the response past :data:`RESPONSE_BUDGET` is
reported as that item's failure (saying so) at once, and processing goes on
with the next; the failures list has a share of its own. Nothing is done
and then refused at the end. Item ids name the items in the answer, so each
must be unique in the call (a repeat is INVALID_ARGUMENT naming it, where
results used to be merged silently).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from puregrpc import StatusCode
from puregrpc.server import RequestIterator, ServicerContext

from ..access import owner_audience
from ..authentication import caller_of
from ..backends.base import EventBus
from ..protos import streaming_pb2 as pb
from ._common import MAX_MESSAGE_BYTES, fail, invalid

logger = logging.getLogger("puregrpc_streaming.processing")

#: BatchProcess keeps at most this many results and failures in its answer.
MAX_RESULTS = 1_000
MAX_FAILURES = 10_000
#: Items one call may send (each id is remembered, to refuse repeats).
MAX_ITEMS = 100_000
MAX_ITEM_ID = 256
#: Bytes of the response the results and failures may use (the rest: headroom)...
RESPONSE_BUDGET = MAX_MESSAGE_BYTES - 64 * 1024
#: ...of which failures may use this much, whatever the results took.
FAILURES_BUDGET = 512 * 1024
#: A failure's message is cut to this many characters.
MAX_ERROR = 500
#: Payloads larger than this are processed in a worker thread.
_THREAD_THRESHOLD = 256 * 1024


class ItemError(Exception):
    """One BatchProcess item failed (the message goes into its ItemFailure)."""


def _text(payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError as exc:
        raise ItemError(f"payload is not UTF-8 text (byte {exc.start})") from None


def _json_validate(payload: bytes) -> str:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ItemError(f"invalid JSON: {exc}") from None
    return f"valid JSON {type(value).__name__}"


#: The operations of BatchProcess: payload -> result text (or ItemError).
OPERATIONS: dict[str, Callable[[bytes], str]] = {
    "uppercase": lambda payload: _text(payload).upper(),
    "reverse": lambda payload: _text(payload)[::-1],
    "sha256": lambda payload: hashlib.sha256(payload).hexdigest(),
    "word_count": lambda payload: str(len(_text(payload).split())),
    "json_validate": _json_validate,
}


@dataclass(slots=True)
class ProcessingCounters:
    """Progress visible while a stream is open (items are processed on arrival)."""

    batch_items_processed: int = 0


def _entry_size(*texts: str) -> int:
    """About what an entry of ``texts`` adds to the encoded response (tags, lengths)."""
    return sum(len(t.encode()) + 5 for t in texts) + 5


class _Answer:
    """The response under construction, and what it may still take."""

    def __init__(self) -> None:
        self.response = pb.ProcessResponse()
        self.results_bytes = 0
        self.failures_bytes = 0

    def failure(self, item_id: str, index: int, error: str) -> None:
        response = self.response
        response.failed += 1
        error = error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"
        size = _entry_size(item_id, error) + 10
        if len(response.failures) >= MAX_FAILURES or self.failures_bytes + size > FAILURES_BUDGET:
            return  # counted, not listed: the counts are always complete
        self.failures_bytes += size
        response.failures.add(item_id=item_id, index=index, error=error)

    def result(self, item_id: str, index: int, result: str) -> None:
        response = self.response
        if len(response.results) >= MAX_RESULTS:
            response.succeeded += 1  # counted, not listed (the first 1,000 are)
            return
        size = _entry_size(item_id, result)
        if self.results_bytes + size > RESPONSE_BUDGET - FAILURES_BUDGET:
            self.failure(
                item_id,
                index,
                f"its result ({size:,} bytes) would take the response past its limit "
                f"({RESPONSE_BUDGET:,} bytes for results and failures); send it in another call",
            )
            return
        self.results_bytes += size
        response.succeeded += 1
        response.results[item_id] = result


class ProcessingHandlers:
    """Processes work items."""

    def __init__(self, events: EventBus, *, limiter: trio.CapacityLimiter | None = None) -> None:
        """Announce summaries on ``events``; large payloads run under ``limiter``."""
        self._events = events
        self._limiter = limiter if limiter is not None else trio.CapacityLimiter(2)
        self.counters = ProcessingCounters()

    async def batch_process(
        self, requests: RequestIterator[pb.ProcessRequest], context: ServicerContext
    ) -> pb.ProcessResponse:
        """Process each item as it arrives; answer counts, results and per-item failures.

        Operations: ``uppercase``, ``reverse``, ``word_count`` (UTF-8 text),
        ``sha256`` (any bytes), ``json_validate``. An unknown operation, a
        payload the operation cannot take, or a result too big for the
        response fails that item only. The answer keeps the first 1,000
        results and 10,000 failures within the response's size (the counts
        are always complete). ``item_id`` defaults to the item's index; a
        repeated one is INVALID_ARGUMENT, and so is one over 256 characters.
        """
        answer = _Answer()
        seen: dict[str, int] = {}
        index = 0
        async for item in requests:
            item_id = item.item_id or str(index)
            if len(item_id) > MAX_ITEM_ID:
                invalid(f"item #{index}: item_id is longer than {MAX_ITEM_ID} characters")
            first = seen.get(item_id)
            if first is not None:
                invalid(
                    f"item_id {item_id!r} is used twice (items #{first} and #{index}): "
                    "item ids must be unique in a call"
                )
            if index >= MAX_ITEMS:
                fail(StatusCode.RESOURCE_EXHAUSTED, f"more than {MAX_ITEMS} items in one call")
            seen[item_id] = index
            try:
                result = await self._run(item)
            except ItemError as exc:
                answer.failure(item_id, index, str(exc))
            else:
                answer.result(item_id, index, result)
            answer.response.total += 1
            index += 1
            self.counters.batch_items_processed += 1
        response = answer.response
        await self._events.publish(
            "batch.processed",
            {"total": response.total, "succeeded": response.succeeded, "failed": response.failed},
            audience=owner_audience(caller_of(context)),
        )
        return response

    async def _run(self, item: pb.ProcessRequest) -> str:
        operation = OPERATIONS.get(item.operation)
        if operation is None:
            raise ItemError(
                f"unknown operation {item.operation!r}; use one of {', '.join(OPERATIONS)}"
            )
        if len(item.payload) > _THREAD_THRESHOLD:
            return await trio.to_thread.run_sync(operation, item.payload, limiter=self._limiter)
        return operation(item.payload)
