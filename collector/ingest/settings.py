"""What the ingest sources and the batcher are configured with (``[mqtt]``, ``[[serial]]``, ``[batch]``).

Built and checked by the configuration loader (``collector.config``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MqttConfig:
    """The broker the collector subscribes to, and how."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    client_id: str = "evalbox-collector"
    shared_group: str | None = None
    clean_session: bool = False
    keepalive: int = 30
    box_silent_s: int = 300  # a box heard from longer ago than this is marked offline (0: only its Last Will)
    probe_timeout_s: float = 5.0  # with shared_group: how long the start-up check waits for its probe


@dataclasses.dataclass(frozen=True)
class SerialConfig:
    """One box on a serial line."""

    port: str
    baud: int = 115200
    device: str | None = None  # the box on this line: its config and commands go out as soon as the port opens


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """When a batch is committed: this many messages waiting, or this long after the first."""

    max_events: int = 1000
    max_ms: int = 20


@dataclasses.dataclass(frozen=True)
class HealthConfig:
    """``/healthz``: how long a source may be down (or a commit fail) before the collector reports unhealthy."""

    grace_s: float = 30.0
