"""Who may fall below the floor before the month ends (collector/report/outlook.py).

``absorbable`` agrees with ``band`` at every boundary (exhaustively for small samples); the outlook of a
seeded store names an officer exactly at the floor, a one-rating officer and one whose unit's unsatisfied
share takes them below by the month's end, and nobody once the month is over.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from collector.report import Policy, band, monthly_report
from collector.report.outlook import absorbable, compare, elapsed_share, officer_outlooks
from collector.store import connect
from tests.web.seed import MONTH, local_ms, seed

FLOORS = [Fraction(95), Fraction(90), Fraction(80), Fraction(1905, 20), Fraction(100), Fraction(1, 3)]


@pytest.mark.parametrize("floor", FLOORS, ids=str)
def test_absorbable_is_the_last_unsatisfied_rating_band_allows(floor: Fraction) -> None:
    policy = Policy(target=Fraction(100), floor=floor)
    for rated in range(0, 61):
        for satisfied in range(0, rated + 1):
            k = absorbable(satisfied, rated, floor)
            assert k is not None
            if band(satisfied, rated, policy) == "below_floor":
                assert k < 0, (satisfied, rated)
                continue
            if rated:
                assert k >= 0, (satisfied, rated)
            # k more unsatisfied ratings: still at or above the floor (a first rating too); k + 1: below it
            if rated + k > 0:
                assert band(satisfied, rated + k, policy) != "below_floor", (satisfied, rated, k)
            assert band(satisfied, rated + k + 1, policy) == "below_floor", (satisfied, rated, k)


def test_boundaries_by_hand() -> None:
    floor = Fraction(95)
    assert absorbable(19, 20, floor) == 0  # exactly at the floor (95.00%): the next unsatisfied rating is below
    assert absorbable(1, 1, floor) == 0  # one rating, satisfied: 1/2 is 50%
    assert absorbable(20, 20, floor) == 1  # 20/21 = 95.2%, 20/22 = 90.9%
    assert absorbable(57, 59, floor) == 1
    assert absorbable(0, 0, floor) == 0
    assert absorbable(39, 41, floor) == 0  # 95.12%
    assert absorbable(38, 41, floor) == -1  # 92.68%: already below
    assert absorbable(5, 10, Fraction(0)) is None  # a floor of 0: nobody falls below it


async def _outlook_store(url: str) -> dict[str, object]:
    """The web seed (October 2026) plus O4 exactly at the floor, O5 and O6 in U2, O7 with one rating."""
    db = connect(url)
    await db.open()
    try:
        s = await seed(db)
        async with db.transaction() as tx:
            for oid, name, uid, wid in (("O5", "刘洋", "U2", "W2"), ("O6", "陈静", "U2", "W2"),
                                        ("O7", "杨帆", "U1", "W1")):  # fmt: skip
                await tx.execute(
                    "INSERT INTO officers (id, name, unit_id, window_id) VALUES (?, ?, ?, ?)", (oid, name, uid, wid)
                )
        minute = iter(range(100_000))

        async def presses(officer: str, window: str, good: int, bad: int) -> None:
            box = "box-1" if window == "W1" else "box-2"
            for level in [1] * good + [2] * bad:
                n = next(minute)
                await s.press(box, officer, window, local_ms(1 + n // 600, 8) + (n % 600) * 60_000, level)

        await presses("O4", "W1", 19, 1)  # 95.00%: exactly the floor
        await presses("O5", "W2", 57, 2)  # 96.61%: absorbs one more
        await presses("O6", "W2", 0, 10)  # below the floor: not in the outlook, but in U2's unsatisfied share
        await presses("O7", "W1", 1, 0)  # one rating
        policy = Policy()
        report = await monthly_report(db, MONTH, policy)
        mid = local_ms(16, 0)  # 15 of October's 31 days have passed
        return {
            "mid": {o.line.key: o for o in officer_outlooks(report, mid)},
            "order": [o.line.key for o in officer_outlooks(report, mid)],
            "after": {o.line.key: o for o in officer_outlooks(report, local_ms(1, 0, month=11))},
            "share": elapsed_share(MONTH, policy.timezone, mid),
            "units": {c.key: c for c in compare(report, None)},
        }
    finally:
        await db.close()


def test_officers_at_risk_in_a_seeded_month(store_url: str) -> None:
    got = asyncio.run(_outlook_store(store_url))
    assert got["share"] == Fraction(15, 31)
    mid = got["mid"]
    assert isinstance(mid, dict)
    # O3 (80%) and O6 (0%) are below the floor already: not "at risk", they are below
    assert set(mid) == {"O1", "O2", "O4", "O5", "O7"}
    o4 = mid["O4"]
    assert (o4.line.rated, o4.line.satisfied, o4.absorb, o4.at_risk, o4.reason) == (20, 19, 0, True, "one_more")
    o7 = mid["O7"]
    assert (o7.line.rated, o7.absorb, o7.at_risk, o7.reason) == (1, 0, True, "one_more")
    # O5: 57/59 absorbs one; at its pace ceil(59 * 16/15) = 63 more ratings, U2's unsatisfied share
    # (2 + 2 + 10) / (10 + 59 + 10) = 14/79 of them unsatisfied: ceil(11.16) = 12 -> 108/122 = 88.5%
    o5 = mid["O5"]
    assert (o5.absorb, o5.to_come, o5.unsatisfied_to_come) == (1, 63, 12)
    assert o5.projected_rate == Fraction(108, 122) and o5.projected_band == "below_floor"
    assert o5.at_risk and o5.reason == "projection"
    # O1: 20/20 absorbs one; U1's share is small: 20 + 22 - 1 of 42 stays above the floor
    o1 = mid["O1"]
    assert (o1.absorb, o1.to_come, o1.unsatisfied_to_come, o1.at_risk) == (1, 22, 1, False)
    assert mid["O2"].absorb == 1 and not mid["O2"].at_risk  # 39/40
    order = got["order"]
    assert isinstance(order, list)
    assert [k for k in order if mid[k].at_risk] == ["O4", "O7", "O5"]  # fewest absorbable first
    # the month is over: no ratings to come, only the ones one rating from the floor remain flagged
    after = got["after"]
    assert isinstance(after, dict)
    assert {k for k, o in after.items() if o.at_risk} == {"O4", "O7"} and after["O5"].to_come == 0
    units = got["units"]
    assert isinstance(units, dict)
    assert units["U2"].now is not None and units["U2"].now.rated == 79 and units["U2"].last is None
    assert units[""].now is not None and units[""].now.rated == 20 + 40 + 10 + 20 + 59 + 10 + 1
