"""The month so far, for a unit leader: who may fall below the floor before the month ends.

Pure functions over the report's lines (``MonthlyReport``): no figure here is
counted anew, each comes from a line the monthly report made under the policy.

- ``absorbable(satisfied, rated, floor)`` — how many more unsatisfied ratings
  (with no satisfied one between them) a line can take and still be at or
  above the floor, in integers as ``rates.band`` decides: an officer exactly
  at the floor can absorb none. ``None`` when the floor is 0 (no line can
  fall below it).
- ``officer_outlooks(report, now_ms)`` — each officer at or above the floor
  with their margin and an end-of-month projection: the ratings still to come
  at the officer's pace so far (rated ÷ the elapsed share of the month), of
  which the unit's unsatisfied share this month are unsatisfied (rounded up).
  An officer is **at risk** when one more unsatisfied rating puts them below
  the floor (``absorb == 0``), or when the projection ends the month below it.
- ``compare(now, last)`` — this month so far beside last month, unit by unit.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from collector.report.monthly import Line, MonthlyReport
from collector.report.policy import Policy
from collector.report.rates import band, ratio
from collector.timeplace import month_bounds


def absorbable(satisfied: int, rated: int, floor: Fraction) -> int | None:
    """Unsatisfied ratings still absorbable at or above ``floor`` (a percentage); negative: already below.

    The largest ``k`` with ``satisfied * 100 >= floor * (rated + k)``, exactly
    (``band(satisfied, rated + k)`` is not below the floor, ``rated + k + 1`` is).
    """
    if floor <= 0:
        return None
    return (satisfied * 100 * floor.denominator) // floor.numerator - rated


def elapsed_share(month: str, timezone: str, now_ms: int) -> Fraction:
    """How much of ``month`` has passed at ``now_ms`` (0 before it, 1 after it), exactly."""
    start, end = month_bounds(month, timezone)
    return Fraction(min(max(now_ms - start, 0), end - start), end - start)


@dataclasses.dataclass(frozen=True)
class Outlook:
    """One officer's month so far and where it may end."""

    line: Line
    absorb: int  # unsatisfied ratings still absorbable at or above the floor
    to_come: int  # ratings expected before the month ends, at the officer's pace so far
    unsatisfied_to_come: int  # of which unsatisfied at the unit's share this month (rounded up)
    projected_rate: Fraction | None
    projected_band: str
    at_risk: bool

    @property
    def reason(self) -> str:
        """``one_more`` (the next unsatisfied rating is enough), ``projection``, or ``''``."""
        if not self.at_risk:
            return ""
        return "one_more" if self.absorb == 0 else "projection"


def officer_outlooks(report: MonthlyReport, now_ms: int, policy: Policy | None = None) -> list[Outlook]:
    """Every officer of ``report`` with ratings and at or above the floor, the ones at risk first.

    Ordered by risk, then margin (fewest absorbable first), then officer id.
    """
    policy = policy or report.policy
    share = elapsed_share(report.month, report.timezone, now_ms)
    unit_share = {u.key: ratio(u.unsatisfied, u.rated) for u in report.units}
    total_share = ratio(report.total.unsatisfied, report.total.rated)
    out = []
    for ln in report.officers:
        if ln.rated == 0 or ln.band == "below_floor":
            continue
        absorb = absorbable(ln.satisfied, ln.rated, policy.floor)
        if absorb is None:  # a floor of 0: nobody can fall below it
            continue
        # ratings still to come at the pace so far; none once the month is over
        to_come = 0 if share in (0, 1) else math.ceil(ln.rated * (1 - share) / share)
        q = unit_share.get(ln.unit) or total_share or Fraction(0)
        bad_to_come = math.ceil(to_come * q)
        end_rated, end_satisfied = ln.rated + to_come, ln.satisfied + to_come - bad_to_come
        end_band = band(end_satisfied, end_rated, policy)
        at_risk = absorb == 0 or end_band == "below_floor"
        out.append(Outlook(ln, absorb, to_come, bad_to_come, ratio(end_satisfied, end_rated), end_band, at_risk))
    out.sort(key=lambda o: (not o.at_risk, o.absorb, o.line.key))
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A unit's (or the total's) line this month so far beside last month's (None: no data then)."""

    key: str
    name: str
    now: Line | None
    last: Line | None

    @property
    def change(self) -> Fraction | None:
        """This month's rate minus last month's, in percentage points; None unless both have ratings."""
        if self.now is None or self.last is None or self.now.rate is None or self.last.rate is None:
            return None
        return (self.now.rate - self.last.rate) * 100


def compare(now: MonthlyReport | None, last: MonthlyReport | None) -> list[Comparison]:
    """Each unit of either report, then the total (key ``''``), this month beside last month."""
    now_units = {u.key: u for u in (now.units if now else [])}
    last_units = {u.key: u for u in (last.units if last else [])}
    keys = sorted((set(now_units) | set(last_units)) - {""})  # "": windows in no unit, in the total only
    rows = [Comparison(k, (now_units.get(k) or last_units[k]).name, now_units.get(k), last_units.get(k)) for k in keys]
    if len(keys) != 1 and (now or last):  # the total, unless it is the one unit's line again (or nothing)
        rows.append(Comparison("", "", now.total if now else None, last.total if last else None))
    return rows
