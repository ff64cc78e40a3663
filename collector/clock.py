"""The wall clock, in the one unit the store keeps times in: Unix epoch milliseconds (UTC)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Now, in epoch milliseconds."""
    return int(time.time() * 1000)
