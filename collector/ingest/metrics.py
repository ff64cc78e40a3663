"""Counters of the running collector, rendered as Prometheus text on ``/metrics``."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import sys
import time

from collector.store.sqlite import SQLITE_MEMORY_USED


@dataclasses.dataclass
class Metrics:
    """Plain counters; the pipeline and sources update them in the event loop (no locks needed)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    batches: int = 0
    last_batch_size: int = 0
    commit_ms_sum: float = 0.0
    commit_ms_max: float = 0.0
    lag_ms_last: int = 0  # receive → commit of the oldest message in the last batch
    queue_depth: int = 0
    acks_sent: int = 0
    configs_resent: int = 0  # configs sent again because a box's status showed an older version
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    serial_skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    sources: dict[str, bool] = dataclasses.field(default_factory=dict)  # name → connected
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

    def prometheus(self) -> str:
        """The counters in the Prometheus text exposition format."""
        lines = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP evalbox_{name} {help_}")
            lines.append(f"# TYPE evalbox_{name} {kind}")
            for labels, value in samples:
                lines.append(f"evalbox_{name}{labels} {value:g}")

        metric("received_total", "counter", "Messages received from all sources.", [("", self.received)])
        metric("events_stored_total", "counter", "Events newly stored.", [("", self.stored)])
        metric("events_duplicate_total", "counter", "Events already stored (acked again).", [("", self.duplicates)])
        metric("status_total", "counter", "Status messages and Last Wills.", [("", self.statuses)])
        metric(
            "rejected_total",
            "counter",
            "Input rejected, by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.rejected.items())],
        )
        metric(
            "serial_skipped_total",
            "counter",
            "Serial lines skipped by the framing decoder, by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.serial_skipped.items())],
        )
        metric("batches_total", "counter", "Committed batches.", [("", self.batches)])
        metric("batch_size", "gauge", "Messages in the last batch.", [("", self.last_batch_size)])
        metric("commit_seconds_sum", "counter", "Time spent committing batches.", [("", self.commit_ms_sum / 1000)])
        metric("commit_seconds_max", "gauge", "Longest batch commit.", [("", self.commit_ms_max / 1000)])
        metric(
            "lag_seconds",
            "gauge",
            "Receive to commit, oldest message of the last batch.",
            [("", self.lag_ms_last / 1000)],
        )
        metric(
            "loop_lag_p99_seconds",
            "gauge",
            "Event-loop lag, 99th percentile over the last minute.",
            [("", self.loop_lag_p99_ms() / 1000)],
        )
        metric(
            "loop_lag_max_seconds",
            "gauge",
            "Event-loop lag, maximum over the last minute.",
            [("", max(self.loop_lag_ms, default=0.0) / 1000)],
        )
        metric(
            "python_allocated_blocks",
            "gauge",
            "Memory blocks held by Python objects (grows with a leak; the SQLite page cache is not in it).",
            [("", sys.getallocatedblocks())],
        )
        if SQLITE_MEMORY_USED is not None:
            metric(
                "sqlite_memory_bytes",
                "gauge",
                "Memory held by SQLite in this process, its page cache included (bounded by cache_size).",
                [("", SQLITE_MEMORY_USED())],
            )
        metric("queue_depth", "gauge", "Messages waiting for the next batch.", [("", self.queue_depth)])
        metric("acks_sent_total", "counter", "Ack messages sent to boxes.", [("", self.acks_sent)])
        metric(
            "configs_resent_total", "counter", "Configs sent again to boxes that run an older one.",
            [("", self.configs_resent)],
        )  # fmt: skip
        metric(
            "source_connected",
            "gauge",
            "1 when the source (MQTT broker, serial port) is connected.",
            [(f'{{source="{s}"}}', int(up)) for s, up in sorted(self.sources.items())],
        )
        return "\n".join(lines) + "\n"
