"""Retention on SQLite and PostgreSQL, on a store with two years of events: the dry run says what would go and
changes nothing; a retention shorter than a month still open for appraisal is refused naming the key, nothing
deleted; the run prunes the older year's raw events and de-identifies old tickets; kept months' reports are
unchanged, pruned months' reports still print from their rollups with their digest, and ``audit verify`` passes
(and still catches an edited rollup of a pruned month)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time

import pytest

from collector.cli import main
from collector.report.months import close_month
from collector.report.policy import Policy
from collector.store import connect
from collector.timeplace import month_of
from tests.report.store import build, local_ms, rated_presses

TZ = "Asia/Shanghai"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def two_years() -> list[str]:
    """The 24 months of the two calendar years before this one (the appraisal year)."""
    year = int(month_of(int(time.time() * 1000), TZ)[:4])
    return [f"{y:04d}-{m:02d}" for y in (year - 2, year - 1) for m in range(1, 13)]


def make(store_url: str, tmp_path: pathlib.Path, months: list[str], *, close: bool = True) -> tuple[str, str]:
    events = []
    for i, month in enumerate(months):
        events += rated_presses(8 + i % 3, 1 + i % 2, local_ms(f"{month}-10 10:00:00"), start=100 * i)
    url = build(store_url, events)
    db_url = url if "://" in url else f"sqlite:///{url}"

    async def finish() -> None:
        async with connect(db_url) as db:
            await db.execute("UPDATE events SET ticket = 'GA-2024-' || CAST(seq AS TEXT)")
            for month in months if close else ():
                await close_month(db, month, Policy(), by="root", now_ms=int(time.time() * 1000))

    asyncio.run(finish())
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(f'[store]\nurl = "{db_url}"\n', encoding="utf-8")
    return str(cfg), db_url


def counts(db_url: str) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with connect(db_url) as db:
            rows = await db.fetch("SELECT month, COUNT(*) FROM events GROUP BY month")
            plain = await db.fetchone("SELECT COUNT(*) FROM events WHERE ticket NOT LIKE 'sha256:%'")
            assert plain is not None
            return {**{str(m): int(n) for m, n in rows}, "plain tickets": int(plain[0])}

    return asyncio.run(go())


def reports(capsys: pytest.CaptureFixture[str], cfg: str, months: list[str]) -> dict[str, dict[str, object]]:
    out = {}
    for month in months:
        code, text, err = run(capsys, "report", "--config", cfg, "--month", month, "--format", "json")
        assert code == 0, err
        out[month] = json.loads(text)
    return out


def test_retention_keeps_reports_and_digests_verifiable(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    months = two_years()
    old, kept = months[:12], months[12:]
    cfg, db_url = make(store_url, tmp_path, months)
    before_counts = counts(db_url)
    before = reports(capsys, cfg, months)
    assert all(len(str(r["digest"])) == 64 and r["events_pruned"] is False for r in before.values())

    code, out, err = run(capsys, "retention", "run", "--config", cfg, "--dry-run")
    assert code == 0, err
    assert f"raw events kept from {kept[0]}" in out
    for month in old:
        assert f"{month}: " in out and "would go" in out
    assert not any(f"{m}: " in out for m in kept)
    assert "events.ticket:" in out and "nothing changed" in err
    assert counts(db_url) == before_counts  # a dry run changes nothing

    # A retention shorter than the appraisal year: refused naming the key, nothing deleted.
    short = tmp_path / "short.toml"
    short.write_text(pathlib.Path(cfg).read_text() + "[retention]\nevents_months = 3\n", encoding="utf-8")
    code, out, err = run(capsys, "retention", "run", "--config", str(short))
    assert code == 2 and "retention.events_months = 3" in err and "nothing deleted" in err
    assert counts(db_url) == before_counts

    code, out, err = run(capsys, "retention", "run", "--config", cfg)
    assert code == 0, err
    after_counts = counts(db_url)
    assert not any(m in after_counts for m in old)  # the older year's raw events are gone
    assert all(after_counts[m] == before_counts[m] for m in kept)
    assert after_counts["plain tickets"] == 0  # every ticket is older than 180 days: hashed

    after = reports(capsys, cfg, months)
    for month in kept:
        assert after[month] == before[month], month
    for month in old:  # from the rollups, with the digest sealed at closing
        assert after[month]["events_pruned"] is True
        assert {**after[month], "events_pruned": False} == before[month], month
    code, text, err = run(capsys, "report", "--config", cfg, "--month", old[3], "--lang", "en")
    assert code == 0 and f"Month digest SHA-256: {before[old[3]]['digest']}" in text
    assert "Raw events pruned under retention" in text

    code, out, err = run(capsys, "audit", "verify", "--config", cfg)
    assert code == 0, out
    assert "24 sealed months (12 with raw events pruned)" in out

    code, out, err = run(capsys, "retention", "run", "--config", cfg)  # again: nothing left to do
    assert code == 0 and "no month's raw events to remove" in out

    async def edit() -> None:
        async with connect(db_url) as db:
            await db.execute("UPDATE rollups SET n = n + 1 WHERE month = ? AND level = 1", (old[2],))

    asyncio.run(edit())
    code, out, err = run(capsys, "audit", "verify", "--config", cfg)
    assert code == 1 and f"month {old[2]}: raw events pruned; its rollups differ" in out


def test_an_old_month_not_closed_is_never_pruned(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    months = two_years()[:2]
    cfg, db_url = make(store_url, tmp_path, months, close=False)
    before = counts(db_url)
    code, out, err = run(capsys, "retention", "run", "--config", cfg)
    assert code == 2
    assert f"would remove the raw events of {months[0]}, {months[1]}, not closed" in err and "nothing deleted" in err
    assert counts(db_url) == before


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ("events_months = 0", "retention.events_months: 0, expected 1..1200 months"),
        ('personal = "blur"', "retention.personal: 'blur', expected one of hash, remove"),
        ("personal_days = -1", "retention.personal_days: -1"),
        ("keep = 3", "retention.keep: unknown key"),
    ],
)
def test_a_bad_retention_section_is_refused_naming_the_key(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], table: str, why: str
) -> None:
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/e.db"\n[retention]\n{table}\n', encoding="utf-8")
    code, out, err = run(capsys, "retention", "run", "--config", str(cfg), "--dry-run")
    assert code == 2 and why in err and "Traceback" not in err
