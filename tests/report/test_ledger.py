"""The sanctions ledger reproduces the escalation rules; rankings and year-end candidates."""

from __future__ import annotations

import json
import pathlib

import pytest

from collector.cli import main
from tests.report.store import Ev, build, local_ms, rated_presses

OFFICERS = tuple((f"A{i}", f"民警{i}", "U1", "W1") for i in range(1, 6))


def month_ms(month: int) -> int:
    return local_ms(f"2026-{month:02d}-15 10:00:00")


def below_floor(officer: str, month: int, start: int) -> list[Ev]:
    return rated_presses(8, 2, month_ms(month), officer=officer, start=start)


def met(officer: str, month: int, start: int, n: int = 40) -> list[Ev]:
    return rated_presses(n, 0, month_ms(month), officer=officer, start=start)


def ledger(capsys: pytest.CaptureFixture[str], db: pathlib.Path, *extra: str) -> dict:  # type: ignore[type-arg]
    assert main(["report", "--db", str(db), "--year", "2026", "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def add_complaint(db: pathlib.Path, officer: str, day: str) -> None:
    assert main(["complaint", "add", "--db", str(db), "--officer", officer, "--date", day, "--note", "态度生硬"]) == 0


def test_three_reminders_escalate_in_the_third_month(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = below_floor("A1", 1, 0) + met("A1", 2, 100) + below_floor("A1", 3, 200) + below_floor("A1", 6, 300)
    db = build(store_url, events, officers=OFFICERS[:1])
    out = ledger(capsys, db)
    acts = [(a["month"], a["measure"], a["target"], a["reason"], a["points"]) for a in out["actions"]]
    assert acts == [
        ("2026-01", "reminder", "officer", "below_floor", 10),
        ("2026-03", "reminder", "officer", "below_floor", 10),
        ("2026-06", "reminder", "officer", "below_floor", 10),
        ("2026-06", "talk", "officer", "reminders", 0),  # the third 打招呼 brings a 谈话
        ("2026-06", "escalation", "officer", "reminders", 0),
        ("2026-06", "talk", "unit_leader", "reminders", 0),
        ("2026-06", "reminder", "bureau_leader", "reminders", 0),
    ]
    a1 = out["officers"][0]
    assert (a1["reminders"], a1["talks"], a1["points"], a1["escalated"], a1["no_honours"]) == (
        3,
        1,
        30,
        "2026-06",
        False,
    )


def test_complaints_talk_then_warning_then_escalation(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = build(store_url, met("A2", 1, 0) + met("A2", 5, 100), officers=OFFICERS[:2])
    add_complaint(db, "A2", "2026-02-03")
    capsys.readouterr()
    out = ledger(capsys, db)
    assert [(a["month"], a["measure"]) for a in out["actions"]] == [("2026-02", "talk"), ("2026-02", "no_honours")]
    assert out["officers"][1]["escalated"] is None

    add_complaint(db, "A2", "2026-05-20")
    add_complaint(db, "A2", "2025-12-31")  # last year's: not counted
    capsys.readouterr()
    out = ledger(capsys, db)
    assert [(a["month"], a["measure"], a["target"], a["reason"]) for a in out["actions"]] == [
        ("2026-02", "talk", "officer", "complaint"),
        ("2026-02", "no_honours", "officer", "complaint"),
        ("2026-05", "warning", "officer", "complaint"),
        ("2026-05", "escalation", "officer", "warnings"),
        ("2026-05", "talk", "unit_leader", "warnings"),
        ("2026-05", "reminder", "bureau_leader", "warnings"),
    ]
    a2 = out["officers"][1]
    assert (a2["complaints"], a2["talks"], a2["warnings"], a2["no_honours"]) == (2, 1, 1, True)
    assert "A2" not in out["candidates"]


def test_two_talks_escalate_under_a_policy_that_gives_them(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text("[sanctions]\ntalks_to_escalate = 1\ncomplaints_for_warning = 3\n", encoding="utf-8")
    db = build(store_url, met("A1", 1, 0), officers=OFFICERS[:1])
    add_complaint(db, "A1", "2026-04-01")
    capsys.readouterr()
    out = ledger(capsys, db, "--policy", str(policy))
    acts = [(a["month"], a["measure"], a["target"], a["reason"]) for a in out["actions"]]
    assert acts[2:] == [  # the 谈话 is the first of one: it brings a 告诫, and 1 谈话 escalates
        ("2026-04", "warning", "officer", "talks"),
        ("2026-04", "escalation", "officer", "talks"),
        ("2026-04", "talk", "unit_leader", "talks"),
        ("2026-04", "reminder", "bureau_leader", "talks"),
    ]


def test_year_candidates_and_monthly_ranking(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A1..A5 rated in March: 60/60, 40/40, 59/60, 10/10 (below min sample 30), 50/60
    events = (
        met("A1", 3, 0, 60)
        + met("A2", 3, 100, 40)
        + rated_presses(59, 1, month_ms(3), officer="A3", start=200)
        + met("A4", 3, 300, 10)
        + rated_presses(50, 10, month_ms(3), officer="A5", start=400)
    )
    db = build(store_url, events, officers=OFFICERS)
    policy = tmp_path / "p.toml"
    policy.write_text("[ranking]\ntop_share = 25\nbottom_share = 25\n", encoding="utf-8")
    assert main(["report", "--db", str(db), "--month", "2026-03", "--format", "json", "--policy", str(policy)]) == 0
    officers = {o["officer"]: o for o in json.loads(capsys.readouterr().out)["officers"]}
    # Wilson lower bound: 60/60 > 40/40 > 59/60 > 50/60; A4 has too few ratings to be ranked
    assert [officers[k]["rank"] for k in ("A1", "A2", "A3", "A5", "A4")] == [1, 2, 3, 4, None]
    assert officers["A1"]["standing"] == "top" and officers["A5"]["standing"] == "bottom"
    assert officers["A2"]["standing"] is None and officers["A4"]["standing"] is None
    assert officers["A1"]["wilson_low"] > officers["A2"]["wilson_low"] > officers["A3"]["wilson_low"]

    add_complaint(db, "A2", "2026-03-05")
    capsys.readouterr()
    out = ledger(capsys, db)
    assert out["candidates"] == ["A1", "A3", "A5"]  # A2: no honours after a complaint; A4: too few ratings
