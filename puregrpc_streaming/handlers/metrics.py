"""CollectMetrics: a client stream summarised as it arrives, stored all or nothing.

Samples are checked and aggregated as they arrive and written in batches to
a *staging* area of the metrics store (a temporary table of the call's own
connection: no lock on the database, bounded memory), and moved into the
metrics table in one transaction only when the whole stream was good. A
call that fails (a NaN at sample 1,001, a cancel, a disconnect) stores
nothing, so a client may simply retry it without counting anything twice.

Aggregates: ``aggregates[name]`` is the sum (as in the seed), and
``name#count``, ``name#min``, ``name#max`` and ``name#mean`` come with it.
Metric names may not contain ``#``, so a derived key can never be the name
of another metric (a metric called ``cpu.count`` used to overwrite the count
of ``cpu``).

The summary must fit in one response (:data:`~._common.MAX_MESSAGE_BYTES`,
what gRPC clients accept): each distinct name adds five map entries, so a
call whose names would take it past :data:`SUMMARY_BUDGET` ends
RESOURCE_EXHAUSTED as soon as that name arrives, having stored nothing.
Before, such a call stored every sample and then failed on the client's
message limit, so a retry counted them all twice.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from puregrpc import StatusCode
from puregrpc.server import RequestIterator, ServicerContext

from ..access import owner_audience
from ..authentication import caller_of
from ..backends.base import EventBus, MetricSample, MetricsStore
from ..protos import streaming_pb2 as pb
from ._common import MAX_MESSAGE_BYTES, fail, invalid

logger = logging.getLogger("puregrpc_streaming.metrics")

#: Distinct metric names one CollectMetrics call may aggregate.
MAX_METRIC_NAMES = 10_000
MAX_METRIC_NAME = 200
MAX_LABELS = 32
#: Samples written to the staging area per round trip.
METRICS_WRITE_BATCH = 500
#: Separates a metric's name from the name of a derived aggregate.
AGGREGATE_SEPARATOR = "#"
#: The derived aggregates of every metric name.
DERIVED = ("count", "min", "max", "mean")
#: Bytes the aggregates of a summary may take (its ``total_count`` needs a few more).
SUMMARY_BUDGET = MAX_MESSAGE_BYTES - 1024


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


def aggregate_key(name: str, derived: str) -> str:
    """The ``aggregates`` key of a derived aggregate (``cpu#count``)."""
    return f"{name}{AGGREGATE_SEPARATOR}{derived}"


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _entry_size(key: str) -> int:
    """Encoded bytes of one ``aggregates`` entry (a map<string, double> field)."""
    length = len(key.encode())
    inner = 1 + _varint_size(length) + length + 9  # key field; value: tag and 8 bytes
    return 1 + _varint_size(inner) + inner


def summary_size(name: str) -> int:
    """Bytes a metric name's five aggregates add to the summary."""
    return _entry_size(name) + sum(_entry_size(aggregate_key(name, d)) for d in DERIVED)


def _check(metric: pb.Metric, index: int) -> None:
    if not metric.name or len(metric.name) > MAX_METRIC_NAME:
        invalid(f"metric #{index} needs a name of 1..{MAX_METRIC_NAME} characters")
    if AGGREGATE_SEPARATOR in metric.name:
        invalid(
            f"metric #{index} ({metric.name!r}): names may not contain {AGGREGATE_SEPARATOR!r}, "
            "which separates derived aggregates (name#count)"
        )
    if not math.isfinite(metric.value):
        invalid(f"metric #{index} ({metric.name}) has a non-finite value {metric.value}")
    if len(metric.labels) > MAX_LABELS:
        invalid(f"metric #{index} ({metric.name}) has more than {MAX_LABELS} labels")


def _sample(metric: pb.Metric) -> MetricSample:
    stamp = metric.timestamp.ToNanoseconds() / 1e9 if metric.HasField("timestamp") else time.time()
    return MetricSample(
        name=metric.name, value=metric.value, labels=dict(metric.labels), timestamp=stamp
    )


class MetricsHandlers:
    """Aggregates and stores metrics."""

    def __init__(self, metrics: MetricsStore, events: EventBus) -> None:
        """Store metrics in ``metrics``; announce summaries on ``events``."""
        self._metrics = metrics
        self._events = events
        #: Samples received since start (visible while a stream is open).
        self.received = 0

    async def collect_metrics(
        self, requests: RequestIterator[pb.Metric], context: ServicerContext
    ) -> pb.MetricsSummary:
        """Aggregate per name and store every sample, all or nothing (see the module)."""
        aggregates: dict[str, _Aggregate] = {}
        pending: list[MetricSample] = []
        total = 0
        summary_bytes = 0
        async with self._metrics.staging() as staging:
            async for metric in requests:
                _check(metric, total)
                aggregate = aggregates.get(metric.name)
                if aggregate is None:
                    if len(aggregates) >= MAX_METRIC_NAMES:
                        fail(
                            StatusCode.RESOURCE_EXHAUSTED,
                            f"more than {MAX_METRIC_NAMES} distinct metric names in one call",
                        )
                    summary_bytes += summary_size(metric.name)
                    if summary_bytes > SUMMARY_BUDGET:
                        fail(
                            StatusCode.RESOURCE_EXHAUSTED,
                            f"metric #{total} ({metric.name}): the aggregates of "
                            f"{len(aggregates) + 1:,} distinct names would take the summary "
                            f"past {SUMMARY_BUDGET:,} bytes; nothing was stored, send fewer "
                            "(or shorter) names per call",
                        )
                    aggregate = aggregates[metric.name] = _Aggregate()
                aggregate.add(metric.value)
                total += 1
                self.received += 1
                pending.append(_sample(metric))
                if len(pending) >= METRICS_WRITE_BATCH:
                    await staging.add(pending)
                    pending = []
            await staging.add(pending)
            await staging.commit()
        summary = pb.MetricsSummary(total_count=total)
        for name, aggregate in aggregates.items():
            summary.aggregates[name] = aggregate.total
            summary.aggregates[aggregate_key(name, "count")] = aggregate.count
            summary.aggregates[aggregate_key(name, "min")] = aggregate.low
            summary.aggregates[aggregate_key(name, "max")] = aggregate.high
            summary.aggregates[aggregate_key(name, "mean")] = aggregate.total / aggregate.count
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
