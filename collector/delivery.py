"""What every outgoing delivery with a ledger shares (the alert sinks, the provincial feed): the backoff between
attempts and what the ledger records of a failure."""

from __future__ import annotations


def retry_delay_ms(attempts: int, first_s: float, max_s: float) -> int:
    """Delay before attempt ``attempts + 1``: doubling from ``first_s``, capped at ``max_s``."""
    return int(min(max_s, first_s * 2 ** max(0, attempts - 1)) * 1000)


def failure_text(exc: BaseException) -> str:
    """What the ledger records of a failed delivery: the exception's type and message, at most 500 characters."""
    return f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
