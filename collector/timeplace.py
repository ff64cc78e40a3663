"""Placing events in time: which month a press belongs to.

A month is the calendar month of the press time in the policy's time zone
(default Asia/Shanghai): a press at 23:59:59 on 31 October local time is an
October press, whenever it arrives.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from collector.errors import ConfigError

DEFAULT_TIMEZONE = "Asia/Shanghai"


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for ``name``; ``ConfigError`` for an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"timezone: unknown time zone {name!r}") from exc


def month_of(ms: int, tz: str = DEFAULT_TIMEZONE) -> str:
    """``'YYYY-MM'`` of epoch milliseconds ``ms`` in zone ``tz``."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=zone(tz))
    return f"{t.year:04d}-{t.month:02d}"


def month_bounds(month: str, tz: str = DEFAULT_TIMEZONE) -> tuple[int, int]:
    """Epoch ms ``[start, end)`` of ``'YYYY-MM'`` in zone ``tz``."""
    year, mon = parse_month(month)
    start = dt.datetime(year, mon, 1, tzinfo=zone(tz))
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone(tz))
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def parse_month(month: str) -> tuple[int, int]:
    """``(year, month)`` of ``'YYYY-MM'``; ``ConfigError`` naming the bad value."""
    parts = month.split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2 or not (parts[0] + parts[1]).isdigit():
        raise ConfigError(f"month {month!r}: expected YYYY-MM, e.g. 2026-10")
    year, mon = int(parts[0]), int(parts[1])
    if not 1 <= mon <= 12 or year < 2000:
        raise ConfigError(f"month {month!r}: no such month")
    return year, mon
