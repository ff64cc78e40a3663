"""Counters of the running collector, rendered by ``prometheus_client`` on ``/metrics``; its health.

The pipeline and the sources update plain attributes in the event loop (no locks, nothing per event
but an integer add). A scrape turns them into metric families through a custom collector
(``MetricsCollector``), so ``prometheus_client`` does the text format: counter names end in
``_total``, latencies are histograms (``_bucket``/``_sum``/``_count``), values are exact (a counter
past 10⁶ keeps every digit) and label values are escaped.

``Metrics.health(grace_s)`` is what ``/healthz`` and ``/readyz`` answer: the sources that have been
down longer than the grace period, and a store that fails to commit (or has been committing for
longer than the grace period).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import sys
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.store.sqlite import SQLITE_MEMORY_USED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text exposition format promtool checks
COMMIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COMMIT_SLOW_S = 5.0  # a commit running this long is stuck, grace period or not (/readyz)
LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Histogram:
    """Observations counted into fixed buckets (upper bounds in seconds); a sum and a count."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def family(self, name: str, help_: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, n in zip((*(str(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        return HistogramMetricFamily(name, help_, buckets=buckets, sum_value=self.sum)


class Sources(dict[str, bool]):
    """Source name → connected; remembers when each one last changed (what ``/healthz`` judges)."""

    def __init__(self) -> None:
        super().__init__()
        self.since: dict[str, float] = {}  # name → time.monotonic() of the last change

    def __setitem__(self, name: str, up: bool) -> None:
        if self.get(name) is not up or name not in self.since:
            self.since[name] = time.monotonic()
        super().__setitem__(name, up)


@dataclasses.dataclass
class Metrics:
    """Plain counters; the pipeline and sources update them in the event loop (no locks needed)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    batches: int = 0
    last_batch_size: int = 0
    lag_ms_last: int = 0  # receive → commit of the oldest message in the last batch
    queue_depth: int = 0
    acks_sent: int = 0
    configs_resent: int = 0  # configs sent again because a box's status showed an older version
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    serial_skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    sources: Sources = dataclasses.field(default_factory=Sources)  # name → connected
    commit_seconds: Histogram = dataclasses.field(default_factory=lambda: Histogram(COMMIT_BUCKETS_S))
    lag_seconds: Histogram = dataclasses.field(default_factory=lambda: Histogram(LAG_BUCKETS_S))
    commit_failures: int = 0
    commit_error: str | None = None  # the last commit attempt failed with this (None once one succeeds)
    commit_started: float | None = None  # time.monotonic() when the commit in progress began
    # Event-loop lag: how late a 100 ms timer fires, over the last minute (600 samples).
    loop_lag_ms: collections.deque[float] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=600))

    async def watch_loop_lag(self, stop: asyncio.Event, every_s: float = 0.1) -> None:
        """Sample the event loop's lag until ``stop`` (a blocked loop shows here before anywhere else)."""
        while not stop.is_set():
            t = time.monotonic()
            await asyncio.sleep(every_s)
            self.loop_lag_ms.append(max(0.0, (time.monotonic() - t - every_s) * 1000))

    def loop_lag_p99_ms(self) -> float:
        lags = sorted(self.loop_lag_ms)
        return lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n

    # ---- the writer's commits ----

    def commit_begun(self) -> None:
        self.commit_started = time.monotonic()

    def commit_failed(self, error: str) -> None:
        self.commit_started = None
        self.commit_failures += 1
        self.commit_error = error

    def batch_committed(self, messages: int, stored: int, duplicates: int, commit_s: float, lag_s: float) -> None:
        """One batch of ``messages`` committed: ``stored`` new events, ``duplicates`` already there."""
        self.commit_started = None
        self.commit_error = None
        self.batches += 1
        self.last_batch_size = messages
        self.stored += stored
        self.duplicates += duplicates
        self.commit_seconds.observe(commit_s)
        self.lag_ms_last = int(lag_s * 1000)
        self.lag_seconds.observe(lag_s)

    # ---- health ----

    def health(self, grace_s: float) -> list[str]:
        """Why the collector is not healthy (empty: it is): sources down, or a store that does not commit,
        for longer than ``grace_s``."""
        now = time.monotonic()
        reasons = []
        for name, up in sorted(self.sources.items()):
            down_s = now - self.sources.since.get(name, now)
            if not up and down_s >= grace_s:
                reasons.append(f"{name}: disconnected for {down_s:.0f} s 已断开")
        if self.commit_error is not None:
            reasons.append(f"store: commit failed 存储写入失败 ({self.commit_error})")
        if self.commit_started is not None and now - self.commit_started >= max(grace_s, COMMIT_SLOW_S):
            reasons.append(f"store: a commit has been running for {now - self.commit_started:.0f} s 写入未完成")
        return reasons

    # ---- rendering ----

    def prometheus(self) -> bytes:
        """The counters in the Prometheus text exposition format (``CONTENT_TYPE``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MetricsCollector(self))
        return generate_latest(registry)


class MetricsCollector(Collector):
    """``prometheus_client`` collector over a ``Metrics`` (read at scrape time)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m

        def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"evalbox_{name}", help_, value=value)

        def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"evalbox_{name}", help_, value=value)

        def by_label(family: CounterMetricFamily | GaugeMetricFamily, values: dict[str, int]) -> Metric:
            for label, n in sorted(values.items()):
                family.add_metric([label], n)
            return family

        yield counter("received", "Messages received from all sources.", m.received)
        yield counter("events_stored", "Events newly stored.", m.stored)
        yield counter("events_duplicate", "Events already stored (acked again).", m.duplicates)
        yield counter("status", "Status messages and Last Wills.", m.statuses)
        yield by_label(
            CounterMetricFamily("evalbox_rejected", "Input rejected, by reason.", labels=["reason"]), m.rejected
        )
        yield by_label(
            CounterMetricFamily(
                "evalbox_serial_skipped", "Serial lines skipped by the framing decoder, by reason.", labels=["reason"]
            ),
            m.serial_skipped,
        )
        yield counter("batches", "Committed batches.", m.batches)
        yield counter("commit_failures", "Batch commits that failed (each is retried).", m.commit_failures)
        yield gauge("batch_size", "Messages in the last batch.", m.last_batch_size)
        yield m.commit_seconds.family("evalbox_commit_seconds", "Time to commit one batch.")
        yield m.lag_seconds.family(
            "evalbox_ingest_lag_seconds", "Receive to commit of the oldest message of each batch."
        )
        yield gauge("lag_seconds", "Receive to commit, oldest message of the last batch.", m.lag_ms_last / 1000)
        yield gauge(
            "loop_lag_p99_seconds", "Event-loop lag, 99th percentile over the last minute.", m.loop_lag_p99_ms() / 1000
        )
        yield gauge(
            "loop_lag_max_seconds",
            "Event-loop lag, maximum over the last minute.",
            max(m.loop_lag_ms, default=0.0) / 1000,
        )
        yield gauge(
            "python_allocated_blocks",
            "Memory blocks held by Python objects (grows with a leak; the SQLite page cache is not in it).",
            sys.getallocatedblocks(),
        )
        if SQLITE_MEMORY_USED is not None:
            yield gauge(
                "sqlite_memory_bytes",
                "Memory held by SQLite in this process, its page cache included (bounded by cache_size).",
                SQLITE_MEMORY_USED(),
            )
        yield gauge("queue_depth", "Messages waiting for the next batch.", m.queue_depth)
        yield counter("acks_sent", "Ack messages sent to boxes.", m.acks_sent)
        yield counter("configs_resent", "Configs sent again to boxes that run an older one.", m.configs_resent)
        yield by_label(
            GaugeMetricFamily(
                "evalbox_source_connected",
                "1 when the source (MQTT broker, serial port) is connected.",
                labels=["source"],
            ),
            {s: int(up) for s, up in m.sources.items()},
        )
