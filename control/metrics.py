"""Prometheus metrics, defined once for every process.

`mittr serve` points PROMETHEUS_MULTIPROC_DIR at one directory for the API workers and the shards
(prometheus-client's multiprocess mode): each process writes its own files there and GET /metrics,
served by any API worker, adds them all up. Facts that live in Postgres (queue depth, breaker
states, leases, shard figures) are read at scrape time instead of being kept by any one process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from control.services.rollups import LATENCY_BOUNDS_MS

if TYPE_CHECKING:
    from control.services.engine_status import EngineStatus

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

EVENTS_INGESTED = Counter("mittr_events_ingested", "Events accepted by the API", ["route"])
DELIVERIES = Counter("mittr_deliveries", "Delivery attempts recorded, by outcome (poll acks count as success)",
                     ["outcome"])
ATTEMPT_SECONDS = Histogram("mittr_attempt_duration_seconds", "HTTP time of delivery attempts",
                            buckets=[b / 1000 for b in LATENCY_BOUNDS_MS])
OVERHEAD_SECONDS = Histogram("mittr_processing_overhead_seconds",
                             "Engine time per attempt outside the network (processingOverheadUs)",
                             buckets=(25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 0.1))
HTTP_REQUESTS = Counter("mittr_http_requests", "API requests answered, by method and status class",
                        ["method", "status"])


def count_ingested(route: str, n: int = 1) -> None:
    if n > 0:
        EVENTS_INGESTED.labels(route).inc(n)


def count_request(method: str, status: int) -> None:
    HTTP_REQUESTS.labels(method, f"{status // 100}xx").inc()


def _observe_many(hist: Histogram, values: list[float]) -> None:
    """Observe a batch with one write per touched bucket rather than one per value: in multiprocess
    mode each write is a locked mmap update, and the writer records thousands of attempts a second."""
    buckets = getattr(hist, "_buckets", None)
    total = getattr(hist, "_sum", None)
    bounds = getattr(hist, "_upper_bounds", None)
    if buckets is None or total is None or bounds is None:   # a prometheus-client without them
        for v in values:
            hist.observe(v)
        return
    counts = [0] * len(bounds)
    for v in values:
        for i, bound in enumerate(bounds):
            if v <= bound:
                counts[i] += 1
                break
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    total.inc(sum(values))


def observe_attempts(attempts: Iterable[tuple[str, int, int]]) -> None:
    """Recorded attempts as (outcome, durationMs, processingOverheadUs)."""
    by_outcome: dict[str, int] = {}
    durations: list[float] = []
    overheads: list[float] = []
    for outcome, duration_ms, overhead_us in attempts:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        durations.append(duration_ms / 1000)
        overheads.append(overhead_us / 1_000_000)
    for outcome, n in by_outcome.items():
        DELIVERIES.labels(outcome).inc(n)
    if durations:
        _observe_many(ATTEMPT_SECONDS, durations)
        _observe_many(OVERHEAD_SECONDS, overheads)


def count_acknowledged(n: int) -> None:
    if n > 0:
        DELIVERIES.labels("success").inc(n)


@dataclass
class DatabaseFigures:
    """What Postgres knows at scrape time (read by control/services/stats.py)."""

    queue: dict[str, int] = field(default_factory=dict)                   # task state -> count
    breakers: dict[str, int] = field(default_factory=dict)                # circuit state -> endpoints
    leases: list[tuple[str, str, bool]] = field(default_factory=list)     # slot, owner, live
    shards: list[tuple[str, int, int]] = field(default_factory=list)      # slot, buffered, in flight
    engine: EngineStatus | None = None    # members, ranges, backlog per range (`mittr status`)


def _families(fig: DatabaseFigures) -> Iterator[Metric]:
    queue = GaugeMetricFamily("mittr_queue_depth", "Deliveries not finished, by state", labels=["state"])
    for state in ("queued", "delivering", "failed"):
        queue.add_metric([state], fig.queue.get(state, 0))
    yield queue
    breakers = GaugeMetricFamily("mittr_breaker_endpoints", "Endpoints by circuit breaker state", labels=["state"])
    for state in ("closed", "open", "half_open"):
        breakers.add_metric([state], fig.breakers.get(state, 0))
    yield breakers
    leases = GaugeMetricFamily("mittr_lease_owned", "1 while a shard holds a live lease on the partition range",
                               labels=["slot", "owner"])
    for slot, owner, live in fig.leases:
        leases.add_metric([slot, owner], 1 if live else 0)
    yield leases
    buffered = GaugeMetricFamily("mittr_shard_buffered", "Tasks a shard holds in memory", labels=["slot"])
    in_flight = GaugeMetricFamily("mittr_shard_in_flight", "Requests a shard has in flight", labels=["slot"])
    for slot, held, flying in fig.shards:
        buffered.add_metric([slot], held)
        in_flight.add_metric([slot], flying)
    yield buffered
    yield in_flight
    if fig.engine is not None:
        yield from _engine_families(fig.engine)


def _engine_families(status: EngineStatus) -> Iterator[Metric]:
    """Membership and ranges, as `mittr status` shows them (control/services/engine_status.py)."""
    up = GaugeMetricFamily("mittr_engine_member_up", "1 while an engine member heartbeats within the lease TTL",
                           labels=["member", "host"])
    shards = GaugeMetricFamily("mittr_engine_member_shards", "Shards an engine member runs", labels=["member", "host"])
    beat = GaugeMetricFamily("mittr_engine_member_heartbeat_age_seconds", "Seconds since a member's last heartbeat",
                             labels=["member", "host"])
    for m in status.members:
        up.add_metric([m.id, m.host], 1 if m.live else 0)
        shards.add_metric([m.id, m.host], m.shards)
        beat.add_metric([m.id, m.host], m.heartbeat_age_s)
    yield from (up, shards, beat)
    labels = ["slot", "owner", "member"]
    epoch = GaugeMetricFamily("mittr_lease_epoch", "Fencing epoch of the lease on a partition range", labels=labels)
    age = GaugeMetricFamily("mittr_lease_renewed_age_seconds", "Seconds since the lease was last renewed",
                            labels=labels)
    backlog = GaugeMetricFamily("mittr_range_backlog", "Unfinished deliveries (queued, failed, delivering) "
                                "in the partition range", labels=labels)
    for r in status.ranges:
        values = [r.slot, r.owner, r.member or ""]
        epoch.add_metric(values, r.epoch)
        age.add_metric(values, r.renewed_age_s)
        backlog.add_metric(values, r.backlog)
    yield from (epoch, age, backlog)
    unleased = GaugeMetricFamily("mittr_unleased_backlog", "Unfinished deliveries in partitions no live lease covers")
    unleased.add_metric([], status.unleased_backlog)
    yield unleased


class _Fixed:
    """A collector that yields figures read beforehand (collectors are synchronous; the DB is not)."""

    def __init__(self, fig: DatabaseFigures) -> None:
        self.fig = fig

    def collect(self) -> Iterator[Metric]:
        return _families(self.fig)


def exposition(fig: DatabaseFigures) -> bytes:
    """The text exposition: every process's metrics (multiprocess mode) or this one's, plus the DB figures."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        own = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY
        own = generate_latest(REGISTRY)
    db = CollectorRegistry()
    db.register(_Fixed(fig))
    return own + generate_latest(db)


def prepare_multiproc_dir(configured: str) -> tuple[str, bool]:
    """The directory the processes of one run share, emptied of an earlier run's files.
    Returns (path, made): a directory we made is ours to remove at exit."""
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
        return str(path), False
    return tempfile.mkdtemp(prefix="mittr-prometheus-"), True


def remove_multiproc_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def forget_process(pid: int, path: str) -> None:
    """A child exited: drop its live gauges (counters and histograms keep counting)."""
    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
