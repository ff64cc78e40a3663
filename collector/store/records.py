"""What the ingest writer takes and gives: event rows, device status, rejected input, the registry's boxes."""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.errors import UsageError

# Column order of an event row as the pipeline builds it (a plain tuple: no per-row object).
EVENT_COLUMNS = (
    "device_id",
    "boot",
    "seq",
    "type",
    "officer_id",
    "window_id",
    "press_ms",
    "device_ts_ms",
    "uptime_ms",
    "recv_ms",
    "month",
    "level",
    "scale",
    "invite_no",
    "ticket",
    "flags",
    "kind",
    "source",
)
EventRow = tuple[Any, ...]
COLUMN = {name: i for i, name in enumerate(EVENT_COLUMNS)}


@dataclasses.dataclass(frozen=True, slots=True)
class BoxSettings:
    """The session settings a box gets in its signed config (protocol ``config``: ``n iw mi g hr``)."""

    scale: int = 2
    invite_ms: int = 10_000
    min_interval_ms: int = 5_000
    gated: bool = True
    hours: tuple[int, int] | None = None  # local minutes [open, close)

    def __post_init__(self) -> None:
        if not 2 <= self.scale <= 5:
            raise UsageError(f"scale {self.scale}: a box has 2 to 5 rating keys / 评价键数为2至5")
        if not 1_000 <= self.invite_ms <= 600_000:
            raise UsageError(f"invite window {self.invite_ms} ms: use 1 s to 10 min / 邀评时长应为1秒至10分钟")
        if not 0 <= self.min_interval_ms <= 600_000:
            raise UsageError(f"minimum interval {self.min_interval_ms} ms: use 0 to 10 min / 最小间隔应为0至10分钟")
        if self.hours is not None and not 0 <= self.hours[0] < self.hours[1] <= 24 * 60:
            raise UsageError(f"opening hours {self.hours}: open must come before close / 营业时间有误")


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    """A provisioned box as the pipeline needs it."""

    id: str
    window_id: str
    key: bytes
    boot_floor: int = 0
    status: str = "unknown"
    last_seen_ms: int | None = None
    boot: int | None = None
    uptime_ms: int | None = None
    settings: BoxSettings = dataclasses.field(default_factory=BoxSettings)
    settings_cv: int = 1
    transport: str = "mqtt"  # mqtt | serial


ClockRef = tuple[str, int, int, int]  # device, boot, recv_ms, uptime_ms: the boot began at recv_ms - uptime_ms


@dataclasses.dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A box's heartbeat (``msg`` is the decoded status) or its Last Will (``msg`` None: offline)."""

    device_id: str
    at_ms: int
    msg: dict[str, Any] | None


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Input refused by the pipeline, kept for inspection (bounded) and counted by ``reason``."""

    at_ms: int
    reason: str
    source: str  # mqtt | serial
    origin: str  # topic or port
    detail: str
    raw: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Officer:
    """An officer to register: badge number, name, unit and usual window."""

    id: str
    name: str
    unit_id: str
    window_id: str | None = None
