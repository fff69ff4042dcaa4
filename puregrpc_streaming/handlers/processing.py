"""CollectMetrics and BatchProcess: client streams summarised as they arrive."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from puregrpc import StatusCode
from puregrpc.server import RequestIterator, ServicerContext

from ..access import owner_audience
from ..authentication import caller_of
from ..backends.base import EventBus, MetricSample, MetricsStore
from ..protos import streaming_pb2 as pb
from ._common import fail, invalid

logger = logging.getLogger("puregrpc_streaming.processing")

#: Distinct metric names one CollectMetrics call may aggregate.
MAX_METRIC_NAMES = 10_000
MAX_METRIC_NAME = 200
MAX_LABELS = 32
#: Samples written to the metrics store per transaction.
METRICS_WRITE_BATCH = 500
#: BatchProcess keeps at most this many results and failures in its answer.
MAX_RESULTS = 1_000
MAX_FAILURES = 10_000
#: Payloads larger than this are processed in a worker thread.
_THREAD_THRESHOLD = 256 * 1024


@dataclass(slots=True)
class _Aggregate:
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


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

    metrics_received: int = 0
    batch_items_processed: int = 0


class ProcessingHandlers:
    """Aggregates metrics and processes work items."""

    def __init__(self, metrics: MetricsStore, events: EventBus) -> None:
        """Store metrics in ``metrics``; announce summaries on ``events``."""
        self._metrics = metrics
        self._events = events
        self.counters = ProcessingCounters()

    async def collect_metrics(
        self, requests: RequestIterator[pb.Metric], context: ServicerContext
    ) -> pb.MetricsSummary:
        """Aggregate per name (sum, count, min, max, mean) and store every sample.

        ``aggregates[name]`` is the sum (as in the seed); ``name.count``,
        ``name.min``, ``name.max`` and ``name.mean`` come with it. Samples are
        written in batches as they arrive, with their labels.
        """
        aggregates: dict[str, _Aggregate] = {}
        pending: list[MetricSample] = []
        total = 0
        async for metric in requests:
            if not metric.name or len(metric.name) > MAX_METRIC_NAME:
                invalid(f"metric #{total} needs a name of 1..{MAX_METRIC_NAME} characters")
            if not math.isfinite(metric.value):
                invalid(f"metric #{total} ({metric.name}) has a non-finite value {metric.value}")
            if len(metric.labels) > MAX_LABELS:
                invalid(f"metric #{total} ({metric.name}) has more than {MAX_LABELS} labels")
            aggregate = aggregates.get(metric.name)
            if aggregate is None:
                if len(aggregates) >= MAX_METRIC_NAMES:
                    fail(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"more than {MAX_METRIC_NAMES} distinct metric names in one call",
                    )
                aggregate = aggregates[metric.name] = _Aggregate()
            aggregate.add(metric.value)
            total += 1
            self.counters.metrics_received += 1
            stamp = (
                metric.timestamp.ToNanoseconds() / 1e9
                if metric.HasField("timestamp")
                else time.time()
            )
            pending.append(
                MetricSample(
                    name=metric.name,
                    value=metric.value,
                    labels=dict(metric.labels),
                    timestamp=stamp,
                )
            )
            if len(pending) >= METRICS_WRITE_BATCH:
                await self._metrics.record(pending)
                pending = []
        await self._metrics.record(pending)
        summary = pb.MetricsSummary(total_count=total)
        for name, aggregate in aggregates.items():
            summary.aggregates[name] = aggregate.total
            summary.aggregates[f"{name}.count"] = aggregate.count
            summary.aggregates[f"{name}.min"] = aggregate.low
            summary.aggregates[f"{name}.max"] = aggregate.high
            summary.aggregates[f"{name}.mean"] = aggregate.total / aggregate.count
        await self._events.publish(
            "metrics.collected",
            {
                "total_count": total,
                "names": sorted(aggregates)[:100],
                "name_count": len(aggregates),
            },
            audience=owner_audience(caller_of(context)),
        )
        return summary

    async def batch_process(
        self, requests: RequestIterator[pb.ProcessRequest], context: ServicerContext
    ) -> pb.ProcessResponse:
        """Process each item as it arrives; answer counts, results and per-item failures.

        Operations: ``uppercase``, ``reverse``, ``word_count`` (UTF-8 text),
        ``sha256`` (any bytes), ``json_validate``. An unknown operation or a
        payload the operation cannot take fails that item only. The answer
        keeps the first 1,000 results and 10,000 failures (the counts are
        always complete).
        """
        response = pb.ProcessResponse()
        index = 0
        async for item in requests:
            item_id = item.item_id or str(index)
            try:
                operation = OPERATIONS.get(item.operation)
                if operation is None:
                    raise ItemError(
                        f"unknown operation {item.operation!r}; use one of {', '.join(OPERATIONS)}"
                    )
                if len(item.payload) > _THREAD_THRESHOLD:
                    result = await trio.to_thread.run_sync(operation, item.payload)
                else:
                    result = operation(item.payload)
            except ItemError as exc:
                response.failed += 1
                if len(response.failures) < MAX_FAILURES:
                    response.failures.add(item_id=item_id, index=index, error=str(exc))
            else:
                response.succeeded += 1
                if len(response.results) < MAX_RESULTS:
                    response.results[item_id] = result
            response.total += 1
            index += 1
            self.counters.batch_items_processed += 1
        await self._events.publish(
            "batch.processed",
            {"total": response.total, "succeeded": response.succeeded, "failed": response.failed},
            audience=owner_audience(caller_of(context)),
        )
        return response
