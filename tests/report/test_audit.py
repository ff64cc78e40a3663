"""The audit trail on SQLite and PostgreSQL: an untouched store verifies (also after ``store copy``); editing an
event, a rollup, a case, a month close, the audit log itself, or cutting the chain makes ``evalbox audit verify``
fail naming what changed; undoing the edit makes it pass again; concurrent writers keep the chain linear."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from collector.cli import main
from collector.report.policy import Policy
from collector.store import connect
from collector.store.audit import GENESIS, append_audit, verify
from collector.store.copy import copy_store
from collector.web.auth import add_user
from collector.web.cases import CaseAction, act, open_cases
from collector.web.scope import Viewer
from collector.web.settings import WebSettings
from tests.report.store import build, local_ms, press, rated_presses

SEP, OCT = local_ms("2026-09-15 10:00:00"), local_ms("2026-10-15 10:00:00")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def setup_store(store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """A store with September and October, bad ratings with cases (one with a return visit), a user, a
    complaint, both months closed and a flag review through the CLI; (config file, store URL)."""
    events = (
        rated_presses(18, 2, SEP, start=0)
        + rated_presses(19, 1, OCT, start=100)
        + [press(300, OCT + 3_600_000, 2)]  # a bad rating: a case
    )
    url = build(store_url, events)
    db_url = url if "://" in url else f"sqlite:///{url}"
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(f'[store]\nurl = "{db_url}"\n', encoding="utf-8")

    async def web_side() -> None:
        async with connect(db_url) as db:
            cases = await open_cases(db, WebSettings(), Policy())  # the level-2 presses: bad ratings
            assert len(cases) == 4
            sup = Viewer("sup1", "admin", None)
            await act(db, cases[0], sup, CaseAction("visit", "回访: 已电话联系"))
            await act(db, cases[0], sup, CaseAction("rectify", "已整改"))
            await act(db, cases[0], sup, CaseAction("close"))
            await act(db, cases[1], sup, CaseAction("appeal", "误按"))
            await add_user(db, "admin1", "admin", "correct horse battery", [], by="root")

    asyncio.run(web_side())
    c = str(cfg)
    for args in (
        ("complaint", "add", "--config", c, "--officer", "A1", "--date", "2026-10-20", "--note", "态度生硬"),
        ("month", "close", "--config", c, "2026-09"),
        ("month", "close", "--config", c, "2026-10"),
    ):
        code, out = run(capsys, *args)
        assert code == 0, out

    async def flag() -> None:  # a flag as `evalbox flags check` records one, for a supervisor to review
        async with connect(db_url) as db:
            await db.execute("INSERT INTO officer_flags VALUES ('A1', '2026-09', 'r', 'U1', '{}', 1)")

    asyncio.run(flag())
    code, out = run(
        capsys, "flags", "review", "--config", c, "--officer", "A1", "--month", "2026-09",
        "--decision", "explained", "--note", "已核实",
    )  # fmt: skip
    assert code == 0, out
    return c, db_url


# (what, SQL that changes it, SQL that puts it back, words the failure must contain)
TAMPERS: list[tuple[str, str, str, str]] = [
    (
        "event",
        "UPDATE events SET recv_ms = recv_ms - 1 WHERE device_id = 'D1' AND seq = 5",
        "UPDATE events SET recv_ms = recv_ms + 1 WHERE device_id = 'D1' AND seq = 5",
        "month 2026-09: its events differ from the digest sealed at closing",
    ),
    (
        "event level",
        "UPDATE events SET level = 1 WHERE device_id = 'D1' AND seq = 119",
        "UPDATE events SET level = 2 WHERE device_id = 'D1' AND seq = 119",
        "month 2026-10: its events differ",
    ),
    (
        "rollup",
        "UPDATE rollups SET n = n + 1 WHERE month = '2026-10' AND kind = 'rated' AND level = 1",
        "UPDATE rollups SET n = n - 1 WHERE month = '2026-10' AND kind = 'rated' AND level = 1",
        "rollups of month 2026-10 (officer A1, window W1, rated, level 1/2, late 0): 20 stored, 19 in its events",
    ),
    (
        "case",
        "UPDATE cases SET state = 'closed', closed_by = 'mallory' WHERE id = 3",
        "UPDATE cases SET state = 'open', closed_by = NULL WHERE id = 3",
        "case 案件 3: state, closed_by differ from audit entry",
    ),
    (
        "month close",
        "UPDATE months SET closed_by = 'mallory' WHERE month = '2026-09'",
        "UPDATE months SET closed_by = (SELECT closed_by FROM months WHERE month = '2026-10') WHERE month = '2026-09'",
        "month 2026-09: the month close (months, month_snapshots, month_rollups) differs",
    ),
    (
        "frozen counts",
        "UPDATE month_rollups SET n = n + 5 WHERE month = '2026-10' AND level = 2",
        "UPDATE month_rollups SET n = n - 5 WHERE month = '2026-10' AND level = 2",
        "month 2026-10: the month close",
    ),
    (
        "stored digest",
        "UPDATE month_digests SET events = events + 1 WHERE month = '2026-09'",
        "UPDATE month_digests SET events = events - 1 WHERE month = '2026-09'",
        "month 2026-09: its stored digest differs from the audit trail's",
    ),
    (
        "complaint",
        "UPDATE complaints SET day = '2026-09-01'",
        "UPDATE complaints SET day = '2026-10-20'",
        "complaint 有效投诉 1: day differ",
    ),
    (
        "user role",
        "UPDATE users SET role = 'supervisor' WHERE name = 'admin1'",
        "UPDATE users SET role = 'admin' WHERE name = 'admin1'",
        "user 账号 admin1: role differ",
    ),
    (
        "audit entry",
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 5",  # entries 1-4: the cases opened
        "UPDATE audit_log SET actor = 'sup1' WHERE seq = 5",
        "audit entry 5 (case.visit case:1",
    ),
]


def test_untouched_store_verifies_and_every_edit_is_named(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, db_url = setup_store(store_url, tmp_path, capsys)
    code, out = run(capsys, "audit", "verify", "--config", cfg)
    assert code == 0, out
    assert "verified" in out and "2 sealed months" in out

    async def sql(stmt: str) -> None:
        async with connect(db_url) as db:
            await db.execute(stmt)

    for what, change, undo, named in TAMPERS:
        asyncio.run(sql(change))
        code, out = run(capsys, "audit", "verify", "--config", cfg)
        assert code == 1, f"{what}: {out}"
        assert "VERIFICATION FAILED" in out and named in out, f"{what}: {out}"
        asyncio.run(sql(undo))
        code, out = run(capsys, "audit", "verify", "--config", cfg)
        assert code == 0, f"{what} undone: {out}"


def test_a_chain_cut_in_the_middle_or_at_the_end_is_named(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, db_url = setup_store(store_url, tmp_path, capsys)

    async def cut(where: str) -> None:
        async with connect(db_url) as db:
            await db.execute(f"DELETE FROM audit_log WHERE {where}")

    asyncio.run(cut("seq = 4"))
    code, out = run(capsys, "audit", "verify", "--config", cfg)
    assert code == 1
    assert "audit entry 4: missing — the chain is cut between entries 3 and 5" in out
    asyncio.run(cut("seq >= 6"))  # and the end as well: the first break is named first
    code, out = run(capsys, "audit", "verify", "--config", cfg)
    assert code == 1 and out.index("cut between entries 3 and 5") < out.index("VERIFICATION FAILED") + 200


def test_removing_the_last_entries_is_named(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, db_url = setup_store(store_url, tmp_path, capsys)

    async def drop_last() -> int:
        async with connect(db_url) as db:
            row = await db.fetchone("SELECT MAX(seq) FROM audit_log")
            assert row is not None
            await db.execute("DELETE FROM audit_log WHERE seq = ?", (row[0],))
            return int(row[0])

    last = asyncio.run(drop_last())
    code, out = run(capsys, "audit", "verify", "--config", cfg)
    assert code == 1
    assert f"it ends at entry {last - 1} but its head says entry {last}" in out


def test_the_report_prints_the_digest_verify_checks(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, db_url = setup_store(store_url, tmp_path, capsys)
    code, out = run(capsys, "report", "--config", cfg, "--month", "2026-09", "--format", "json")
    assert code == 0, out
    doc = json.loads(out)

    async def stored() -> tuple[str, int]:
        async with connect(db_url) as db:
            row = await db.fetchone("SELECT digest, events FROM month_digests WHERE month = '2026-09'")
            assert row is not None
            return str(row[0]), int(row[1])

    digest, n = asyncio.run(stored())
    assert doc["digest"] == digest and len(digest) == 64 and n == 20 and doc["events_pruned"] is False
    notice = tmp_path / "notice.html"
    code, out = run(capsys, "report", "--config", cfg, "--month", "2026-09", "-o", str(notice), "--lang", "zh")
    assert code == 0, out
    assert f"月度摘要 SHA-256: {digest}" in notice.read_text(encoding="utf-8")
    code, out = run(capsys, "report", "--config", cfg, "--month", "2026-09", "--lang", "en")
    assert f"Month digest SHA-256: {digest}" in out


def test_store_copy_carries_the_audit_trail(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    cfg, db_url = setup_store(store_url, tmp_path, capsys)
    # SQLite → PostgreSQL, and PostgreSQL → SQLite
    target = (
        str(tmp_path / "copy.db") if db_url.startswith("postgresql") else request.getfixturevalue("postgres_database")
    )
    for _ in range(2):  # a second run (resuming) accepts the first run's own store.copy entry
        result = asyncio.run(copy_store(db_url, target, by="root"))
        assert result.ok, result.problems

    async def check() -> tuple[Any, list[str]]:
        async with connect(target) as db:
            res = await verify(db)
            actions = [str(r[0]) for r in await db.fetch("SELECT action FROM audit_log ORDER BY seq")]
            return res, actions

    res, actions = asyncio.run(check())
    assert res.ok, res.problems
    assert actions[-2:] == ["store.copy", "store.copy"] and "month.close" in actions and "case.visit" in actions
    code, out = run(capsys, "report", "--db", target, "--month", "2026-10", "--format", "json")
    assert code == 0 and len(json.loads(out)["digest"]) == 64


def test_concurrent_writers_keep_the_chain_linear(postgres_database: str) -> None:
    """Two collectors' connections appending at once on PostgreSQL: one chain, no entry after the same one twice."""

    async def go() -> tuple[Any, list[tuple[int, str]]]:
        async with connect(postgres_database) as a, connect(postgres_database) as b:

            async def writer(db: Any, name: str) -> None:
                for i in range(40):
                    async with db.transaction():
                        await append_audit(db, actor=name, action="token.use", subject=f"token:{name}", after={"i": i})
                        await asyncio.sleep(0)  # hold the transaction open across a turn of the loop

            await asyncio.gather(writer(a, "w1"), writer(b, "w2"))
            res = await verify(a)
            rows = [(int(r[0]), str(r[1])) for r in await a.fetch("SELECT seq, prev_hash FROM audit_log ORDER BY seq")]
            return res, rows

    res, rows = asyncio.run(go())
    assert res.ok, res.problems
    assert [s for s, _ in rows] == list(range(1, 81))
    assert rows[0][1] == GENESIS and len({p for _, p in rows}) == 80  # every entry follows a different one


def test_append_audit_is_generic(store_url: str) -> None:
    """Another part of evalbox (API tokens) records its own actions; verify checks them like any entry."""

    async def go() -> Callable[[], None] | Any:
        async with connect(store_url) as db:
            s1 = await append_audit(db, actor="token:feed", action="token.use", subject="token:feed", after={"n": 1})
            s2 = await append_audit(db, actor="admin", action="token.revoke", subject="token:feed", before={"n": 1})
            assert (s1, s2) == (1, 2)
            return await verify(db)

    res = asyncio.run(go())
    assert res.ok and res.entries == 2


def test_a_policy_change_taking_effect_is_recorded_once(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, db_url = setup_store(store_url, tmp_path, capsys)
    policy = tmp_path / "policy.toml"
    policy.write_text("[rates]\nfloor = 93\n", encoding="utf-8")
    one_off = tmp_path / "what-if.toml"
    one_off.write_text("[rates]\nfloor = 80\n", encoding="utf-8")

    def entries() -> list[dict[str, Any]]:
        async def go() -> list[dict[str, Any]]:
            async with connect(db_url) as db:
                rows = await db.fetch("SELECT before_json, after_json FROM audit_log WHERE action = 'policy.in_force'")
                return [{"before": json.loads(b) if b else None, **json.loads(a)} for b, a in rows]

        return asyncio.run(go())

    for _ in range(2):
        assert run(capsys, "report", "--config", cfg, "--month", "2026-10")[0] == 0
    assert len(entries()) == 1 and entries()[0]["before"] is None  # the defaults, recorded once
    text = pathlib.Path(cfg).read_text(encoding="utf-8")
    pathlib.Path(cfg).write_text(f'policy = "{policy}"\n' + text, encoding="utf-8")
    assert run(capsys, "report", "--config", cfg, "--month", "2026-10")[0] == 0
    assert run(capsys, "report", "--config", cfg, "--month", "2026-10", "--policy", str(one_off))[0] == 0
    got = entries()
    assert len(got) == 2  # the new configured floor took effect; a one-off --policy report is not a change
    assert got[1]["before"] == {"fingerprint": got[0]["fingerprint"]} and got[1]["policy"]["rates"]["floor"] == 93
    assert run(capsys, "audit", "verify", "--config", cfg)[0] == 0


def test_two_collectors_starting_at_once_record_the_policy_once(postgres_database: str) -> None:
    from collector.report.policy import policy_to_dict
    from collector.store.audit import note_policy

    async def go() -> list[bool]:
        async with connect(postgres_database) as a, connect(postgres_database) as b:
            policy = policy_to_dict(Policy())
            done = await asyncio.gather(
                note_policy(a, policy, actor="collector-1"), note_policy(b, policy, actor="collector-2")
            )
            assert (await verify(a)).ok
            return [*done, len(await a.fetch("SELECT seq FROM audit_log")) == 1]

    assert sorted(asyncio.run(go())) == [False, True, True]


def test_a_month_closed_before_the_audit_trail_is_noted_then_sealed(
    store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = build(store_url, rated_presses(9, 1, SEP))
    db_url = url if "://" in url else f"sqlite:///{url}"

    async def legacy_close() -> None:  # as an older evalbox closed it: no seal, no audit entry
        async with connect(db_url) as db:
            await db.execute(
                "INSERT INTO months (month, closed_ms, closed_by) VALUES ('2026-09', 1790000000000, 'old')"
            )
            await db.execute("INSERT INTO month_snapshots (month, taken_ms) VALUES ('2026-09', 1790000000000)")

    asyncio.run(legacy_close())
    code, out = run(capsys, "audit", "verify", "--db", db_url)
    assert code == 0 and "month 2026-09: closed before the audit trail began, not sealed" in out
    code, out = run(capsys, "audit", "seal", "--db", db_url, "2026-09")
    assert code == 0 and "month 2026-09 sealed" in out and "10 events" in out
    code, out = run(capsys, "audit", "verify", "--db", db_url)
    assert code == 0 and "1 sealed months" in out and "not sealed" not in out
    code, out = run(capsys, "audit", "seal", "--db", db_url, "2026-09")
    assert code == 2 and "sealed already" in out
    code, out = run(capsys, "audit", "seal", "--db", db_url, "2026-13")
    assert code == 2 and "Traceback" not in out
