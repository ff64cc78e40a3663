"""Counting presses into rates and bands, with exact integer arithmetic.

Decisions (the band, the sanction) use integers only; the Wilson interval is
a float used for ranking and display; percentages are cut, never rounded up,
at the edge (``pct_text``), so 99.996% shows as 99.99%, never 100.00%.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from fractions import Fraction

from collector.errors import StoreError
from collector.report.policy import Policy

PRESS_KINDS = ("rated", "unsolicited", "misuse")
ROLLUP_KINDS = (*PRESS_KINDS, "invite", "unrated")
BANDS = ("met", "below_target", "below_floor", "no_ratings")
Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclasses.dataclass(frozen=True)
class RollupRow:
    """One rollup row (or the same shape computed from raw events)."""

    officer: str
    window: str
    kind: str
    level: int
    scale: int
    late: int
    n: int


@dataclasses.dataclass
class Tally:
    """Counts of one officer, window or unit in one month (a mutable accumulator)."""

    rated: int = 0
    satisfied: int = 0
    bad: int = 0
    levels: dict[int, list[int]] = dataclasses.field(default_factory=dict)  # scale -> count per level
    invites: int = 0
    unrated: int = 0
    unsolicited: int = 0
    misuse: int = 0
    events: int = 0

    def add(self, row: RollupRow, policy: Policy) -> None:
        """Count one rollup row under ``policy``."""
        self.events += row.n
        if row.kind == "invite":
            self.invites += row.n
            return
        if row.kind == "unrated":
            self.unrated += row.n
            return
        if row.kind not in PRESS_KINDS:
            raise StoreError(f"rollups: unknown kind {row.kind!r}")
        if row.scale not in policy.satisfied or not 1 <= row.level <= row.scale:
            raise StoreError(
                f"rollups: press with level {row.level} on scale {row.scale} "
                f"(officer {row.officer!r}, window {row.window!r}); run `evalbox rebuild`"
            )
        if row.kind == "unsolicited":
            self.unsolicited += row.n
        elif row.kind == "misuse":
            self.misuse += row.n
        if row.kind not in policy.counted_kinds():
            return
        self.rated += row.n
        self.levels.setdefault(row.scale, [0] * row.scale)[row.level - 1] += row.n
        if row.level in policy.satisfied[row.scale]:
            self.satisfied += row.n
        if row.level in policy.bad[row.scale]:
            self.bad += row.n


def tally(rows: Iterable[RollupRow], policy: Policy) -> Tally:
    t = Tally()
    for row in rows:
        t.add(row, policy)
    return t


def band(satisfied: int, rated: int, policy: Policy) -> str:
    """``met`` / ``below_target`` / ``below_floor`` / ``no_ratings``, in integers only.

    ``satisfied*100 >= floor*rated`` with the percentages as exact fractions
    (cross-multiplied by their denominators).
    """
    if rated == 0:
        return "no_ratings"
    if not 0 <= satisfied <= rated:
        raise ValueError(f"satisfied {satisfied} outside 0..{rated}")

    def reaches(pct: Fraction) -> bool:
        return satisfied * 100 * pct.denominator >= pct.numerator * rated

    if reaches(policy.target):
        return "met"
    return "below_target" if reaches(policy.floor) else "below_floor"


def wilson(satisfied: int, rated: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of ``satisfied/rated``; ``None`` with nothing rated."""
    if rated == 0:
        return None
    p = satisfied / rated
    denom = 1 + z * z / rated
    centre = p + z * z / (2 * rated)
    half = z * math.sqrt(p * (1 - p) / rated + z * z / (4 * rated * rated))
    low = max(0.0, (centre - half) / denom)
    high = min(1.0, (centre + half) / denom)
    if satisfied == rated:
        high = 1.0
    if satisfied == 0:
        low = 0.0
    return low, high


def ratio(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den else None


def pct_text(value: Fraction | None, digits: int = 2) -> str:
    """A fraction as a percentage cut (not rounded) to ``digits`` decimals; '—' for none."""
    if value is None:
        return "—"
    scale = 10**digits
    cut = (value.numerator * 100 * scale) // value.denominator
    whole, part = divmod(cut, scale)
    return f"{whole}.{part:0{digits}d}" if digits else str(whole)


def pct_cut(value: Fraction | None, digits: int = 2) -> Fraction | None:
    """The fraction cut down to ``digits`` decimals of a percent (what ``pct_text`` shows)."""
    if value is None:
        return None
    scale = 100 * 10**digits
    return Fraction((value.numerator * scale) // value.denominator, scale)
