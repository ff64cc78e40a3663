"""Bands at their boundaries, month boundaries in the policy zone, level mapping per scale."""

from __future__ import annotations

import asyncio
import json
import pathlib
from fractions import Fraction

import pytest

from collector.cli import main
from collector.report.monthly import monthly_report
from collector.report.policy import Policy, policy_from_dict
from collector.report.rates import band, pct_text
from collector.report.rebuild import rebuild
from collector.store import connect
from tests.report.store import Ev, build, local_ms, press, rated_presses

OCT = local_ms("2026-10-10 10:00:00")
OFFICERS = (
    ("A1", "张三", "U1", "W1"),
    ("A2", "李四", "U1", "W1"),
    ("A3", "王五", "U1", "W1"),
    ("A4", "赵六", "U1", "W1"),
)


def report_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["report", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("satisfied", "rated", "expected"),
    [(20, 20, "met"), (19, 20, "below_target"), (18, 19, "below_floor"), (0, 0, "no_ratings"), (0, 1, "below_floor")],
)
def test_band_boundaries_exact(satisfied: int, rated: int, expected: str) -> None:
    assert band(satisfied, rated, Policy()) == expected


def test_band_with_fractional_floor_is_exact() -> None:
    policy = policy_from_dict({"rates": {"floor": 99.5}})
    assert policy.floor == Fraction(199, 2)
    assert band(199, 200, policy) == "below_target"  # exactly 99.5%
    assert band(1989, 1999, policy) == "below_floor"  # 99.4997…%


def test_display_never_rounds_up_to_100() -> None:
    assert pct_text(Fraction(9999, 10000)) == "99.99"
    assert pct_text(Fraction(99996, 100000)) == "99.99"
    assert pct_text(Fraction(19, 20)) == "95.00"
    assert pct_text(Fraction(1, 1)) == "100.00"


def test_store_boundaries_through_the_cli(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = (
        rated_presses(20, 0, OCT, officer="A1", start=0)
        + rated_presses(19, 1, OCT, officer="A2", start=100)
        + rated_presses(18, 1, OCT, officer="A3", start=200)
        + [Ev("D1", 300, "invite", OCT, officer="A4"), Ev("D1", 301, "unrated", OCT + 10_000, officer="A4")]
    )
    db = build(store_url, events, officers=OFFICERS)
    out = report_json(capsys, "--db", str(db), "--month", "2026-10")
    by = {o["officer"]: o for o in out["officers"]}
    assert (by["A1"]["band"], by["A1"]["rate_pct"], by["A1"]["penalty_points"]) == ("met", "100.00", 0)
    assert (by["A2"]["band"], by["A2"]["rate_pct"], by["A2"]["penalty_points"]) == ("below_target", "95.00", 0)
    assert (by["A3"]["band"], by["A3"]["rate_pct"], by["A3"]["penalty_points"]) == ("below_floor", "94.73", 10)
    assert by["A3"]["reminders"] == 1 and by["A3"]["unsatisfied"] == 1
    assert (by["A4"]["band"], by["A4"]["rate"], by["A4"]["rated"]) == ("no_ratings", None, 0)
    assert (by["A4"]["invites"], by["A4"]["no_rating_rate"]) == (1, 1.0)
    assert out["month"] == "2026-10" and out["timezone"] == "Asia/Shanghai"


def test_month_edges_and_zone_move_after_rebuild(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = local_ms("2026-10-31 23:59:59")
    first = local_ms("2026-11-01 00:00:00")
    db = build(store_url, [press(1, last, 1), press(2, first, 2)])
    oct_ = report_json(capsys, "--db", str(db), "--month", "2026-10")["officers"][0]
    nov = report_json(capsys, "--db", str(db), "--month", "2026-11")["officers"][0]
    assert (oct_["rated"], oct_["satisfied"], nov["rated"], nov["satisfied"]) == (1, 1, 1, 0)

    # In UTC (8 h behind Shanghai) both presses are on 31 October.
    policy = tmp_path / "utc.toml"
    policy.write_text('timezone = "UTC"\n', encoding="utf-8")
    assert main(["rebuild", "--db", str(db), "--policy", str(policy)]) == 0
    err = capsys.readouterr().err
    assert "rebuild [" in err and "2026-10" in err
    utc = report_json(capsys, "--db", str(db), "--policy", str(policy), "--month", "2026-10")
    assert utc["timezone"] == "UTC"
    assert (utc["officers"][0]["rated"], utc["officers"][0]["satisfied"]) == (2, 1)
    assert main(["report", "--db", str(db), "--policy", str(policy), "--month", "2026-11"]) == 2
    assert "no data for month 2026-11" in capsys.readouterr().err


def test_three_and_five_level_scales_map_as_the_policy_says(store_url: str, tmp_path: pathlib.Path) -> None:
    events = [press(i, OCT + i, level, 3, officer="A1") for i, level in enumerate([1, 2, 3, 2])]
    events += [press(10 + i, OCT + i, level, 5, officer="A2") for i, level in enumerate([1, 2, 3, 4, 5, 2])]
    path = build(store_url, events, officers=OFFICERS[:2])

    async def lines(policy: Policy) -> dict[str, tuple[int, int, int, dict[int, tuple[int, ...]]]]:
        async with connect(path) as db:
            r = await monthly_report(db, "2026-10", policy)
        return {ln.key: (ln.rated, ln.satisfied, ln.bad, ln.levels) for ln in r.officers}

    default = asyncio.run(lines(Policy()))
    assert default["A1"] == (4, 3, 1, {3: (1, 2, 1)})
    assert default["A2"] == (6, 3, 2, {5: (1, 2, 1, 1, 1)})
    strict = asyncio.run(lines(policy_from_dict({"rates": {"satisfied": {"3": [1], "5": [1, 2, 3]}}})))
    assert strict["A1"][:2] == (4, 1)
    assert strict["A2"][:2] == (6, 4)


def test_unsolicited_and_misuse_shown_and_counted_only_by_policy(store_url: str, tmp_path: pathlib.Path) -> None:
    events = rated_presses(5, 0, OCT) + [
        press(50, OCT, 2, flags=1),
        press(51, OCT, 2, flags=2),
        press(52, OCT, 1, flags=4),
    ]
    path = build(store_url, events)

    async def line(policy: Policy) -> tuple[int, int, int, int, str]:
        async with connect(path) as db:
            ln = (await monthly_report(db, "2026-10", policy)).officers[0]
        return ln.rated, ln.satisfied, ln.unsolicited, ln.misuse, ln.band

    assert asyncio.run(line(Policy())) == (5, 5, 1, 2, "met")
    counted = policy_from_dict({"rates": {"count_unsolicited": True}})
    assert asyncio.run(line(counted)) == (6, 5, 1, 2, "below_floor")
    both = policy_from_dict({"rates": {"count_unsolicited": True, "count_misuse": True}})
    assert asyncio.run(line(both)) == (8, 6, 1, 2, "below_floor")


def test_rebuild_equals_incremental_rollups(store_url: str, tmp_path: pathlib.Path) -> None:
    events = rated_presses(7, 3, OCT) + [press(99, OCT, 2, scale=5, officer=None)]
    path = build(store_url, events)

    async def check() -> None:
        async with connect(path) as db:
            before = sorted(await db.fetch("SELECT * FROM rollups"))
            await rebuild(db, "Asia/Shanghai")
            assert sorted(await db.fetch("SELECT * FROM rollups")) == before

    asyncio.run(check())
