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

from collector.report.policy import SCALES, Policy
from collector.store.rollups import ROLLUP_KINDS as ROLLUP_KINDS  # the rollups' kinds, one definition

BANDS = ("met", "below_target", "below_floor", "no_ratings")
LEVEL_COLUMNS = tuple((s, lv) for s in SCALES for lv in range(1, s + 1))  # (scale, level), 14 of them
Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclasses.dataclass(slots=True)
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

    def merge(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        self.rated += other.rated
        self.satisfied += other.satisfied
        self.bad += other.bad
        self.invites += other.invites
        self.unrated += other.unrated
        self.unsolicited += other.unsolicited
        self.misuse += other.misuse
        self.events += other.events
        for scale, counts in other.levels.items():
            mine = self.levels.setdefault(scale, [0] * scale)
            for i, c in enumerate(counts):
                mine[i] += c


def merged(parts: Iterable[Tally]) -> Tally:
    """The sum of ``parts`` (a single part is returned as is: treat the result as read-only)."""
    items = parts if isinstance(parts, list) else list(parts)
    if len(items) == 1:
        return items[0]
    t = Tally()
    for part in items:
        if part.events:
            t.merge(part)
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
