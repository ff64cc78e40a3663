"""Officer-month checks on constructed months, read from real stores (SQLite file and PostgreSQL).

One unit of ten officers, each serving 200 citizens a month on their own box,
over three months (two months of history, then October). Honest officers'
citizens walk away 12–30% of the time, rate 1.5–10.5 s after the invite and
are unsatisfied one time in twelve. Each cheating pattern is put on one
officer and must be flagged by its rule, explained in zh and en with the
numbers; a unit where everyone is honest but busy must stay silent; an officer
with too few invites is "not enough data", never a flag.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.cli import main
from collector.errors import ConfigError
from collector.report.officer_stats import OfficerCheck, check_month, month_checks, month_officers
from collector.report.policy import Policy, policy_from_dict
from collector.report.rebuild import rebuild
from collector.store import connect
from tests.report.store import build, local_ms

MONTHS = ("2026-08", "2026-09", "2026-10")

# What happens to citizen k of an officer's month: ("rate", delay_ms, level) or ("walk", 0, 0)
Citizen = Callable[[int], tuple[str, int, int]]


def honest(walk_every: int, offset: int = 0) -> Citizen:
    """A walk-away every ``walk_every``-th citizen; the rest rate at spread delays, one in thirteen unsatisfied."""

    def citizen(k: int) -> tuple[str, int, int]:
        if (k + offset) % walk_every == 0:
            return ("walk", 0, 0)
        return ("rate", 1500 + (k * 7919 + offset * 131) % 9000, 2 if k % 13 == 5 else 1)

    return citizen


def filling(base: Citizen, share: float, delay_ms: int | None = None) -> Citizen:
    """``base``, but the officer presses 满意 for ``share`` of the walk-aways (at ``delay_ms``, else citizen-like)."""

    def citizen(k: int) -> tuple[str, int, int]:
        what = base(k)
        if what[0] == "walk" and (k * 37 % 100) < share * 100:
            return ("rate", delay_ms if delay_ms is not None else 1500 + (k * 7919) % 9000, 1)
        return what

    return citizen


def events_for(
    officer: int, month: str, invites: int, citizen: Citizen, prefix: str = "W"
) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """An officer's month on box D<officer>: invite, then a press (answering it) or the invite going unrated."""
    device, window, oid = f"D{officer}", f"{prefix}{officer}", f"P{officer}"
    start = local_ms(f"{month}-03 09:00:00")
    base_seq = {m: i * 10_000 for i, m in enumerate(MONTHS)}[month]
    evs: list[tuple[Any, ...]] = []
    invites_rows: list[Any] = []
    for k in range(invites):
        t = start + k * 600_000  # one citizen every ten minutes, days on end
        seq = base_seq + 2 * k
        evs.append((device, seq, "invite", oid, window, t, None, None, None, "invite", month))
        invites_rows.append((device, 1, seq, oid, t))
        kind, delay, level = citizen(k)
        if kind == "rate":
            evs.append((device, seq + 1, "press", oid, window, t + delay, level, 2, seq, "rated", month))
        else:
            evs.append((device, seq + 1, "unrated", oid, window, t + 120_000, None, None, seq, "unrated", month))
    return evs, invites_rows


Plan = tuple[int, Citizen | dict[str, Citizen], Citizen | None]


def make(url: str, plans: dict[int, Plan], unit: str = "U1", prefix: str = "W") -> str:
    """``plans``: officer → (invites, history behaviour or one per month, October behaviour or None for the same).

    The unit ``unit`` with windows ``<prefix>0`` … and officers ``P0`` …, one box ``D<n>`` each.
    """
    events: list[tuple[Any, ...]] = []
    invites: list[tuple[Any, ...]] = []
    for officer, (n, before, october) in plans.items():
        for month in MONTHS:
            if isinstance(before, dict):  # a behaviour per month
                behaviour = before[month]
            else:
                behaviour = (october or before) if month == "2026-10" else before
            evs, inv = events_for(officer, month, n, behaviour, prefix)
            events += evs
            invites += inv
    build(
        url,
        units=[(unit, "城关派出所", None)],
        windows=[(f"{prefix}{i}", unit, f"{i}号窗") for i in range(10)],
        officers=[(f"P{i}", f"民警{i}", unit, f"{prefix}{i}") for i in range(10)],
    )

    async def fill() -> None:
        async with connect(url) as db:
            async with db.transaction():
                await db.executemany(
                    "INSERT INTO events (device_id, boot, seq, type, officer_id, window_id, press_ms, level, scale,"
                    " invite_no, kind, month, uptime_ms, recv_ms, source) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " 0, 0, 'mqtt')",
                    events,
                )
                await db.executemany(
                    "INSERT INTO invites (device_id, boot, invite_no, officer_id, opened_ms) VALUES (?, ?, ?, ?, ?)",
                    invites,
                )
            await rebuild(db, "Asia/Shanghai")  # the rollups, from the events

    asyncio.run(fill())
    return url


def busy_unit() -> dict[int, Plan]:
    """Ten honest officers, walk-away rates 1/4 .. 1/8 of their citizens, 200 invites a month each."""
    return {i: (200, honest(4 + i % 5, offset=i), None) for i in range(10)}


def checks(url: str, policy: Policy | None = None) -> dict[str, dict[str, Any]]:
    async def run() -> dict[str, dict[str, Any]]:
        async with connect(url) as db:
            found = await month_checks(db, "2026-10", policy or Policy())
        return {o: c.json() for o, c in found.items()}

    return asyncio.run(run())


def rules_of(check: dict[str, Any]) -> set[str]:
    return {f["rule"] for f in check["flags"]}


def test_all_honest_busy_unit_is_silent(store_url: str) -> None:
    found = checks(make(store_url, busy_unit()))
    assert set(found) == {f"P{i}" for i in range(10)}
    assert all(c["status"] == "tested" and c["flags"] == [] for c in found.values()), found


def test_filling_in_every_walk_away_is_flagged_with_its_numbers(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = busy_unit()
    plans[3] = (200, honest(5, offset=3), filling(honest(5, offset=3), 0.98))
    url = make(store_url, plans)
    found = checks(url)
    assert rules_of(found["P3"]) >= {"no_rating_low", "no_rating_drop"}
    assert all(not c["flags"] for o, c in found.items() if o != "P3")
    low = next(f for f in found["P3"]["flags"] if f["rule"] == "no_rating_low")
    assert low["q"] <= 0.01 and low["p"] < 0.001
    assert "本月 200 次邀请仅 2 次未评价（1.0%），同单位民警中位数" in low["explain_zh"]
    assert "p < 0.001" in low["explain_zh"]
    assert "200 invites this month and only 2 unrated (1.0%)" in low["explain_en"]
    drop = next(f for f in found["P3"]["flags"] if f["rule"] == "no_rating_drop")
    assert "此前 2 个月为 20.0%（400 次邀请）" in drop["explain_zh"]

    # The report JSON carries the flags per officer; the rate is the same with or without them.
    assert main(["report", "--db", url, "--month", "2026-10", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    p3 = next(o for o in doc["officers"] if o["officer"] == "P3")
    assert [f["rule"] for f in p3["flags"]] == [f["rule"] for f in found["P3"]["flags"]]
    assert p3["check"]["status"] == "tested"
    assert p3["rated"] == 198 and p3["unrated"] == 2  # a flag never changes the rate
    assert all(o["flags"] == [] for o in doc["officers"] if o["officer"] != "P3")

    # closing the month records its flags
    assert main(["month", "close", "--db", url, "2026-10"]) == 0
    assert "officer-month flags recorded (民警月度标记) for 1: P3" in capsys.readouterr().out


def test_filled_presses_bunched_at_one_delay(store_url: str) -> None:
    plans = busy_unit()
    # a slow window (a third walk away) where the officer fills most walk-aways 6.2 s after the invite:
    # the no-rating rate stays ordinary, the delays do not
    plans[6] = (200, honest(3, offset=6), filling(honest(3, offset=6), 0.6, delay_ms=6200))
    found = checks(make(store_url, plans))
    assert "delay_band" in rules_of(found["P6"]), found["P6"]
    band = next(f for f in found["P6"]["flags"] if f["rule"] == "delay_band")
    assert "6–7 s after the invite" in band["explain_en"] or "5.5–6.5 s after the invite" in band["explain_en"]
    assert "在邀请后" in band["explain_zh"]
    assert all(not c["flags"] for o, c in found.items() if o != "P6")


def test_a_habit_from_the_first_month_shows_over_the_months(store_url: str) -> None:
    # a slow window (a third walk away) where the officer has filled a fifth of the walk-aways 6.2 s after the
    # invite since the first month: no clean history of their own, and one month alone is short of a flag
    plans = busy_unit()
    plans[6] = (200, filling(honest(3, offset=6), 0.2, delay_ms=6200), None)
    url = make(store_url, plans)
    found = checks(url)
    assert rules_of(found["P6"]) == {"delay_band"}, found["P6"]
    (band,) = found["P6"]["flags"]
    assert (
        "本月及此前 2 个月内（本月 147 次中 31 次）441 次评价中 93 次（21.1%）在邀请后 6–7 秒按下" in band["explain_zh"]
    )
    assert (
        "93 of 441 ratings (21.1%) came 6–7 s after the invite over this month and the previous 2" in band["explain_en"]
    )
    assert all(not c["flags"] for o, c in found.items() if o != "P6")

    async def month_alone() -> list[OfficerCheck]:
        async with connect(url) as db:
            strict = dataclasses.replace(Policy().officer_flags, false_discovery_pct=5)
            return check_month(await month_officers(db, "2026-10", Policy()), strict)

    alone = {c.officer_id: c for c in asyncio.run(month_alone())}  # (at the default 12.5% it is a weak flag)
    assert alone["P6"].flags == [] and alone["P6"].p["delay_band"] > 0.01
    assert alone["P6"].p["delay_band"] > 1000 * band["p"]


def test_last_months_band_tested_again_this_month(store_url: str) -> None:
    # the officer filled in half the walk-aways 6.2 s after the invite in August and September and a tenth in
    # October: the previous months point at the band, and October, tested in that band alone, still shows it
    plans = busy_unit()
    plans[6] = (200, filling(honest(3, offset=6), 0.5, delay_ms=6200), filling(honest(3, offset=6), 0.1, delay_ms=6200))
    found = checks(make(store_url, plans))
    assert rules_of(found["P6"]) == {"delay_band"}, found["P6"]
    (band,) = found["P6"]["flags"]
    assert band["explain_zh"].startswith(
        "此前 2 个月同一区间已有 30.1%，本月 140 次评价中 24 次（17.1%）在邀请后 6–7 秒按下，同单位民警"
    )
    assert band["explain_en"].startswith(
        "24 of 140 ratings (17.1%) came 6–7 s after the invite this month, the band where 30.1% of ratings came"
        " over the previous 2 months; the same unit's officers"
    )
    assert all(not c["flags"] for o, c in found.items() if o != "P6")


def test_two_hints_short_of_a_flag_alone_combine(store_url: str) -> None:
    # a quarter walk away all summer; in October the officer fills in 30% of them 7.3 s after the invite:
    # neither the drop in unrated invites nor the bunched delays is enough alone, together they are
    plans = busy_unit()
    plans[6] = (200, honest(4, offset=6), filling(honest(4, offset=6), 0.3, delay_ms=7300))
    found = checks(make(store_url, plans))
    assert rules_of(found["P6"]) == {"combined"}, found["P6"]
    (both,) = found["P6"]["flags"]
    assert both["explain_zh"] == (
        "未评价率 18.0%，此前 2 个月为 25.0%，且 18.3% 的评价在邀请后 6.5–7.5 秒按下（同单位民警中位数 9.1%），"
        "两项合计 p = 0.004"
    )
    assert (
        "and 18.3% of ratings came 6.5–7.5 s after the invite (the same unit's officers' median 9.1%)"
        in both["explain_en"]
    )
    assert all(not c["flags"] for o, c in found.items() if o != "P6")


def test_a_sudden_drop_against_the_officers_own_months(store_url: str) -> None:
    plans = busy_unit()
    # a busy window (a third walk away) all summer; in October half the walk-aways are rated at citizen-like delays
    plans[2] = (200, honest(3, offset=2), filling(honest(3, offset=2), 0.5))
    found = checks(make(store_url, plans))
    assert rules_of(found["P2"]) == {"no_rating_drop"}, found["P2"]
    (drop,) = found["P2"]["flags"]
    assert "此前 2 个月为 33.5%" in drop["explain_zh"] and "steady" in drop["explain_en"]


def test_satisfied_given_response(store_url: str) -> None:
    plans = busy_unit()

    def all_satisfied(k: int) -> tuple[str, int, int]:
        kind, delay, _ = honest(8, offset=1)(k)
        return (kind, delay, 1)

    plans[1] = (200, all_satisfied, None)
    found = checks(make(store_url, plans))
    assert "satisfied_response" in rules_of(found["P1"]), found["P1"]
    f = next(f for f in found["P1"]["flags"] if f["rule"] == "satisfied_response")
    assert "不满意仅 0 次" in f["explain_zh"] and "only 0 of 175 ratings unsatisfied" in f["explain_en"]


def test_too_few_invites_is_not_enough_data(store_url: str) -> None:
    plans = busy_unit()
    plans[9] = (80, filling(honest(5), 1.0), None)  # fills everything, but 80 invites prove nothing
    found = checks(make(store_url, plans))
    assert found["P9"]["status"] == "not_enough_data" and found["P9"]["flags"] == []
    assert "不足 100 次，数据不足" in found["P9"]["explain_zh"]
    assert "not enough data" in found["P9"]["explain_en"]
    lowered = checks(store_url, policy_from_dict({"officer_flags": {"min_invites": 50, "false_discovery_pct": 5}}))
    assert lowered["P9"]["status"] == "tested" and "no_rating_low" in rules_of(lowered["P9"])


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"min_invites": 0}, "officer_flags.min_invites"),
        ({"min_invites": 50.5}, "officer_flags.min_invites"),
        ({"false_discovery_pct": 0}, "officer_flags.false_discovery_pct"),
        ({"false_discovery_pct": 80}, "officer_flags.false_discovery_pct"),
        ({"delay_band_s": -1}, "officer_flags.delay_band_s"),
        ({"delay_band_s": 40}, "officer_flags.delay_band_s"),
        ({"no_rating_margin_pct": 101}, "officer_flags.no_rating_margin_pct"),
        ({"min_officers": "eight"}, "officer_flags.min_officers"),
        ({"min_invite": 100}, "officer_flags.min_invite"),
    ],
)
def test_impossible_thresholds_are_refused_naming_the_key(table: dict[str, Any], key: str, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        policy_from_dict({"officer_flags": table})
    path = tmp_path / "policy.toml"
    path.write_text("[officer_flags]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    assert main(["policy", "check", str(path)]) == 2


def test_flags_recorded_reviewed_and_left_out_of_history(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    plans = busy_unit()
    fills = filling(honest(3, offset=3), 0.98)  # a third walk away in August; filled in from September on
    plans[3] = (200, {"2026-08": honest(3, offset=3), "2026-09": fills, "2026-10": fills}, None)
    url = make(store_url, plans)
    mixed = [f for f in checks(url)["P3"]["flags"] if f["rule"] == "no_rating_drop"]
    assert mixed and "此前 2 个月为 17.2%" in mixed[0]["explain_zh"]
    assert main(["flags", "check", "--db", url, "--month", "2026-09", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "2026-09: 10 officers checked, 1 flagged, 0 not enough data" in out
    assert "P3 (U1)" in out and "no_rating_low: 200 invites this month and only" in out

    # October: September is flagged and not explained, so it is no baseline for P3's own history
    found = checks(url)
    drop = [f for f in found["P3"]["flags"] if f["rule"] == "no_rating_drop"]
    assert drop and "此前 1 个月为 33.5%" in drop[0]["explain_zh"]

    # a review is refused for an officer-month with no recorded flags, and with a bad decision
    assert (
        main(
            [
                "flags",
                "review",
                "--db",
                url,
                "--officer",
                "P4",
                "--month",
                "2026-09",
                "--decision",
                "confirmed",
                "--note",
                "x",
            ]
        )
        == 2
    )
    assert "no recorded flags" in capsys.readouterr().err
    assert (
        main(
            [
                "flags",
                "review",
                "--db",
                url,
                "--officer",
                "P3",
                "--month",
                "2026-09",
                "--decision",
                "explained",
                "--note",
                "  ",
            ]
        )
        == 2
    )
    capsys.readouterr()
    assert (
        main(
            [
                "flags",
                "review",
                "--db",
                url,
                "--officer",
                "P3",
                "--month",
                "2026-09",
                "--decision",
                "confirmed",
                "--note",
                "代评属实，已谈话",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["flags", "check", "--db", url, "--month", "2026-09", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    review = doc["officers"]["P3"]["review"]
    assert review["decision"] == "confirmed" and review["note"] == "代评属实，已谈话" and review["by"]
    assert review["at_ms"] > 0
    assert main(["flags", "check", "--db", url, "--month", "2026-09"]) == 0
    assert "[确认 confirmed: 代评属实，已谈话]" in capsys.readouterr().out
    # the printable notice (月通报) lists the flag in words with the review
    assert main(["report", "--db", url, "--month", "2026-09", "--format", "html"]) == 0
    notice = capsys.readouterr().out
    assert "民警月度核查（标记不改变满意率）" in notice and "复核：确认 — 代评属实，已谈话" in notice
    assert 'data-officer="P3"' in notice and 'data-officer="P4"' not in notice
    # the year's ledger keeps the decision with who and when, in every format and both languages
    ledger = year_ledger_outputs(url, capsys)
    (entry,) = json.loads(ledger["json-en"])["officer_flags"]
    assert entry["officer"] == "P3" and entry["month"] == "2026-09" and "no_rating_low" in entry["rules"]
    assert entry["review"] == review  # decision, note, by, at_ms: as recorded
    when = dt.datetime.fromtimestamp(review["at_ms"] / 1000, ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    for fmt in ("table", "csv"):
        assert "民警月度核查标记" in ledger[f"{fmt}-zh"] and "复核：确认" in ledger[f"{fmt}-zh"]
        assert f"复核说明：代评属实，已谈话（{review['by']}，{when}）" in ledger[f"{fmt}-zh"]
        assert "未评价率异常偏低" in ledger[f"{fmt}-zh"]
        assert "Officer-month flag" in ledger[f"{fmt}-en"] and "Review: confirmed" in ledger[f"{fmt}-en"]
        assert f"note: 代评属实，已谈话 ({review['by']}, {when})" in ledger[f"{fmt}-en"]
    # a flag is no measure: the ledger's sanctions do not count it
    actions = json.loads(ledger["json-zh"])["actions"]
    assert {a["reason"] for a in actions} <= {"below_floor", "reminders", "talks", "warnings", "complaint"}

    # explained: the month counts in the officer's history again
    assert (
        main(
            [
                "flags",
                "review",
                "--db",
                url,
                "--officer",
                "P3",
                "--month",
                "2026-09",
                "--decision",
                "explained",
                "--note",
                "窗口改为自助",
            ]
        )
        == 0
    )
    drop = [f for f in checks(url)["P3"]["flags"] if f["rule"] == "no_rating_drop"]
    assert drop and "此前 2 个月为 17.2%" in drop[0]["explain_zh"]
    ledger = year_ledger_outputs(url, capsys)
    assert json.loads(ledger["json-en"])["officer_flags"][0]["review"]["decision"] == "explained"
    assert "复核：已说明" in ledger["table-zh"] and "窗口改为自助" in ledger["csv-zh"]
    assert "Review: explained" in ledger["table-en"] and "复核：确认" not in ledger["table-zh"]


def year_ledger_outputs(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``evalbox report --year 2026`` in every ledger format and language, by ``fmt-lang``."""
    out = {}
    for fmt in ("table", "csv", "json"):
        for lang in ("zh", "en"):
            assert main(["report", "--db", url, "--year", "2026", "--format", fmt, "--lang", lang]) == 0
            out[f"{fmt}-{lang}"] = capsys.readouterr().out
    return out


def test_the_distributions_by_hand_match_exact_sums() -> None:
    import math
    from fractions import Fraction
    from math import comb

    from collector.report.officer_stats import benjamini_hochberg, betabinom_cdf, betabinom_sf, fisher

    def beta_fn(a: int, b: int) -> Fraction:  # B(a, b) for whole numbers, exactly
        return Fraction(math.factorial(a - 1) * math.factorial(b - 1), math.factorial(a + b - 1))

    for n, a, b, k in ((20, 3, 7, 9), (200, 4, 17, 1), (50, 1, 1, 50), (10, 2, 2, 0)):
        exact = sum(Fraction(comb(n, x)) * beta_fn(x + a, n - x + b) / beta_fn(a, b) for x in range(k, n + 1))
        assert betabinom_sf(k, n, a, b) == pytest.approx(float(exact), rel=1e-9)
    # beta-binomial(n, 1, 1) is uniform on 0..n; its two tails meet
    assert betabinom_cdf(3, 9, 1.0, 1.0) == pytest.approx(0.4)
    assert betabinom_cdf(4, 30, 2.5, 7.0) + betabinom_sf(5, 30, 2.5, 7.0) == pytest.approx(1.0)
    # a large concentration approaches the binomial
    binomial = sum(comb(100, x) * 0.2**x * 0.8 ** (100 - x) for x in range(30, 101))
    assert betabinom_sf(30, 100, 2e6 * 0.2, 2e6 * 0.8) == pytest.approx(binomial, rel=1e-3)
    # Fisher with one p-value is that p-value; two of 0.05 give chi2(4) = 11.98 → 0.0175
    assert fisher([0.2]) == pytest.approx(0.2)
    assert fisher([0.05, 0.05]) == pytest.approx(0.01747, abs=1e-4)
    # Benjamini-Hochberg, step-up and monotone
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_hints_short_of_their_own_margins_still_count_together() -> None:
    # a quarter walk away (two months of history); in October the officer fills in some of them 9.3 s after
    # the invite: unrated falls from 25.0% to 21.0%, under no_rating_margin_pct (5 points), so no_rating_drop
    # reads nothing; the combined evidence still reads the drop (and the delay band however small its excess)
    from collector.report.flag_rules import OfficerFlagRules
    from collector.report.officer_stats import OfficerMonth, _drop_test

    def month(oid: str, citizen: Citizen) -> OfficerMonth:
        seen = [citizen(k) for k in range(200)]
        rated = [(delay, level) for kind, delay, level in seen if kind == "rate"]
        return OfficerMonth(
            oid, "U1", 200, 200 - len(rated), len(rated), sum(lv == 1 for _, lv in rated), tuple(d for d, _ in rated)
        )

    rules = OfficerFlagRules()
    months = [month(f"P{i}", honest(4 + i % 5, offset=i)) for i in range(10)]
    months[6] = month("P6", filling(honest(4, offset=6), 0.15, delay_ms=9300))
    assert months[6].unrated == 42
    before = [month(f"P{i}", honest(4 + i % 5, i)) for i in range(10)]
    before[6] = month("P6", honest(4, offset=6))  # P6's own window: a quarter walk away
    history = {m.officer_id: (m.unrated * 2, 400, 2) for m in before}
    assert history["P6"] == (100, 400, 2)
    past = {m.officer_id: (2, list(m.delays_ms) * 2) for m in before}
    assert _drop_test(months[6], history["P6"], rules) is None  # 4 points: short of the rule's margin
    hint = _drop_test(months[6], history["P6"], rules, 0.0)
    assert hint is not None and 0.05 < hint[0] < 0.5 and hint[1]["history_rate"] == "25.0%"
    p6 = check_month(months, rules, history, past)[6]
    assert "no_rating_drop" not in p6.p and "combined" in p6.p, p6.p
    assert p6.p["combined"] < 0.5 and p6.flags == []  # a hint, not a flag
