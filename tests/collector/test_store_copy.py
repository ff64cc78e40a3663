"""``evalbox store copy``: SQLite ↔ PostgreSQL on real stores, resumable, verified, clear errors."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from collector.cli import main
from collector.report.months import close_month
from collector.report.policy import Policy
from collector.store import connect
from collector.store.copy import ROLLUPS, SKIPPED, TABLES, CopyResult, copy_store
from collector.store.schema import MIGRATIONS
from tests.conftest import ROOT
from tests.report.store import Ev, create_store, ingest, local_ms, press, rated_presses, seed_registry

OCT = local_ms("2026-10-12 09:30:00")
NOV = local_ms("2026-11-03 10:00:00")
OFFICERS = (("A1", "张三", "U1", "W1"), ("A2", "李四", "U1", "W2"), ("A3", "王五", "U2", "W3"))
WINDOWS = (("W1", "U1", "户籍1号窗"), ("W2", "U1", "户籍2号窗"), ("W3", "U2", "出入境窗"))
UNITS = (("U1", "城关派出所", None), ("U2", "出入境大厅", "U1"))
LATER = 1_900_000_000_000  # "now" when closing October


def events(start: int = 0) -> list[Ev]:
    """Presses, invites and sign-ins from two boxes in October and November."""
    out: list[Ev] = []
    out += rated_presses(900, 60, OCT, officer="A1", window="W1", start=start, device="D1")
    out += rated_presses(300, 40, OCT, officer="A3", window="W3", start=start, device="D2")
    out += rated_presses(241, 10, NOV, officer="A2", window="W2", start=start + 1000, device="D1")
    out += [
        press(start + 2000, NOV, 3, scale=3, flags=1, officer="A3", window="W3", device="D2"),
        press(start + 2001, NOV + 500, 1, flags=2, officer="A3", window="W3", device="D2"),
        press(start + 2002, NOV + 900, 2, officer=None, window="W3", device="D2"),
        Ev("D1", start + 2003, "invite", NOV, "A2", "W2"),
        Ev("D1", start + 2004, "unrated", NOV + 10_000, "A2", "W2"),
        Ev("D2", start + 2005, "signin", NOV, "A3", "W3"),
    ]
    return out


async def fill(url: str) -> None:
    """A realistic store: registry, events in two months, October closed with late arrivals, web data."""
    db = await create_store(url)
    try:
        await seed_registry(db, units=UNITS, windows=WINDOWS, officers=OFFICERS)
        async with db.transaction():
            await db.executemany(
                "INSERT INTO devices (id, window_id, key_hex, created_ms, status, fw) VALUES (?, ?, ?, ?, ?, ?)",
                [("D1", "W1", "00" * 32, OCT, "online", "1.0"), ("D2", "W3", "11" * 32, OCT, "offline", None)],
            )
        await ingest(db, events())
        await close_month(db, "2026-10", Policy(), by="admin", now_ms=LATER)
        await ingest(db, rated_presses(3, 2, OCT + 3_600_000, officer="A1", window="W1", start=5000, device="D1"))
        async with db.transaction():
            await db.executemany(
                "INSERT INTO duty (device_id, officer_id, start_ms, end_ms) VALUES (?, ?, ?, ?)",
                [("D1", "A1", OCT, OCT + 3_600_000), ("D1", "A2", NOV, None), ("D2", "A3", OCT, None)],
            )
            await db.executemany(
                "INSERT INTO invites (device_id, boot, invite_no, officer_id, ticket, opened_ms, outcome, rating_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [("D1", 1, n, "A2", f"T{n}", NOV + n, "rated" if n % 2 else "open", n) for n in range(1, 40)],
            )
            await db.executemany(
                "INSERT INTO rejected (at_ms, reason, source, origin, detail, raw) VALUES (?, ?, ?, ?, ?, ?)",
                [(OCT + i, "mac", "mqtt", "evalbox/D9/ev", "bad mac", bytes([i, 0, 255])) for i in range(7)],
            )
            await db.execute("INSERT INTO rejected_counts (reason, n) VALUES ('mac', 7), ('json', 2)")
            await db.execute(
                "INSERT INTO complaints (id, officer_id, day, note, added_ms, added_by) VALUES (1, 'A3', '2026-10-13',"
                " '态度差', ?, 'admin')",
                (OCT,),
            )
            await db.execute(
                "INSERT INTO users (name, role, password_hash, created_ms) VALUES ('boss', 'admin', 'h', ?), "
                "('sup', 'supervisor', 'h2', ?)",
                (OCT, OCT),
            )
            await db.execute("INSERT INTO user_units (user_name, unit_id) VALUES ('sup', 'U1'), ('sup', 'U2')")
            await db.execute(
                "INSERT INTO sessions (token_hash, user_name, csrf, created_ms, expires_ms) VALUES ('t', 'boss', 'c',"
                " ?, ?)",
                (OCT, LATER),
            )
            await db.execute(
                "INSERT INTO cases (id, device_id, boot, seq, officer_id, window_id, unit_id, month, press_ms, level,"
                " scale, opened_ms, visit_due_ms, fix_due_ms) VALUES (3, 'D1', 1, 199, 'A1', 'W1', 'U1', '2026-10', ?,"
                " 2, 2, ?, ?, ?)",
                (OCT, OCT, OCT + 1, OCT + 2),
            )
            await db.execute(
                "INSERT INTO alerts (id, key, kind, unit_id, subject, created_ms, text_zh, text_en, payload) VALUES"
                " (5, 'bad:D1:199', 'bad_rating', 'U1', 'A1', ?, '差评', 'bad rating', '{}')",
                (OCT,),
            )
            await db.execute(
                "INSERT INTO alert_deliveries (alert_id, sink, next_ms) VALUES (5, 'webhook', ?), (5, 'mqtt', ?)",
                (OCT, OCT),
            )
            await db.execute(
                "INSERT INTO anomalies (device_id, boot, seq, rule, officer_id, unit_id, month, press_ms, detail,"
                " detected_ms) VALUES ('D2', 1, 2001, 'burst', 'A3', 'U2', '2026-11', ?, '{\"n\": 5}', ?)",
                (NOV, NOV),
            )
            await db.execute("INSERT INTO device_watch (device_id, outbox, seen_ms) VALUES ('D1', 3, ?)", (NOV,))
            await db.execute("INSERT INTO web_watermarks (name, value) VALUES ('cases', 42)")
            await db.execute(
                "INSERT INTO box_commands (id, device_id, op, officer_id, created_ms) VALUES (9, 'D1', 'signin', 'A1',"
                " ?)",
                (NOV,),
            )
            await db.execute(  # a firmware rollout: its boxes and what each box last said of its update
                "INSERT INTO fw_rollouts (id, release_id, release_path, version, board, unit_id, canary_pct,"
                " max_failed_pct, state, created_ms, updated_ms) VALUES (4, 'ab12cd34ef56ab78', 'r.evr', '1.1.0',"
                " 'sim', 'U1', 5, 20, 'canary_done', ?, ?)",
                (NOV, NOV),
            )
            await db.execute(
                "INSERT INTO fw_rollout_boxes (rollout_id, device_id, phase, state, seconds, updated_ms) VALUES"
                " (4, 'D1', 'canary', 'ok', 12, ?), (4, 'D2', 'rest', 'pending', NULL, NULL)",
                (NOV,),
            )
            await db.execute(
                "INSERT INTO fw_box_state (device_id, version, slot, trial, state, received, size, why, updated_ms)"
                " VALUES ('D1', '1.1.0', 'a', 0, 'ok', 85304, 85304, NULL, ?)",
                (NOV,),
            )
    finally:
        await db.close()


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every copied table's rows, in key order (the audit trail without the copies' own entries)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with connect(url) as db:
        for t in (*TABLES, ROLLUPS):
            mine = "WHERE action <> 'store.copy'" if t.name == "audit_log" else ""
            out[t.name] = await db.fetch(f"SELECT * FROM {t.name} {mine} ORDER BY {', '.join(t.key)}")
    return out


async def copies(url: str) -> int:
    async with connect(url) as db:
        return len(await db.fetch("SELECT seq FROM audit_log WHERE action = 'store.copy'"))


def copy(src: str, dst: str, **kw: Any) -> CopyResult:
    return asyncio.run(copy_store(src, dst, **kw))


def reports(capsys: pytest.CaptureFixture[str], url: str) -> list[str]:
    out = []
    for month in ("2026-10", "2026-11"):
        assert main(["report", "--db", url, "--month", month, "--format", "json"]) == 0
        out.append(capsys.readouterr().out)
    return out


def test_every_schema_table_is_copied_or_skipped_on_purpose() -> None:
    created = {m for _, sql in MIGRATIONS for m in re.findall(r"CREATE TABLE (\w+)", sql)}
    handled = {t.name for t in TABLES} | {ROLLUPS.name} | set(SKIPPED)
    assert created | {"schema_migrations"} == handled


def test_sqlite_to_postgresql_gives_the_same_reports(
    tmp_path: pathlib.Path, postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = f"sqlite:///{tmp_path / 'a.db'}"
    asyncio.run(fill(src))
    assert main(["store", "copy", "--from", src, "--to", postgres_database, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "verified: row counts and rollups match / 校验通过" in out
    assert re.search(r"^events\s+1,562\s+1,562\s+1,562$", out, re.M), out
    assert "sessions, login_failures" in out

    before, after = asyncio.run(dump(src)), asyncio.run(dump(postgres_database))
    assert before == after
    assert asyncio.run(copies(postgres_database)) == 1  # the copy itself is in the target's audit trail
    assert after["events"] and after["rejected"][0][-1] == bytes([0, 0, 255])
    assert any(r[6] == 1 for r in after["rollups"])  # late arrivals in the closed month
    assert reports(capsys, src) == reports(capsys, postgres_database)

    async def later_inserts() -> list[tuple[Any, ...]]:
        async with connect(postgres_database) as db:  # identity sequences moved past the copied ids
            await db.execute("INSERT INTO box_commands (device_id, op, created_ms) VALUES ('D2', 'signout', 1)")
            await db.execute(
                "INSERT INTO rejected (at_ms, reason, source, origin, detail) VALUES (1, 'json', 'serial', 'tty', 'x')"
            )
            return await db.fetch(
                "SELECT (SELECT MAX(id) FROM box_commands), (SELECT MAX(id) FROM rejected),"
                " (SELECT COUNT(*) FROM rejected)"
            )

    assert asyncio.run(later_inserts()) == [(10, 8, 8)]


class Interrupted(Exception):
    pass


def test_an_interrupted_copy_resumes_and_picks_up_the_tail(tmp_path: pathlib.Path, postgres_database: str) -> None:
    src = str(tmp_path / "a.db")
    asyncio.run(fill(src))
    total = asyncio.run(dump(src))

    def stop_after_first_events_batch(table: str, done: int, of: int) -> None:
        if table == "events":
            raise Interrupted

    with pytest.raises(Interrupted):
        copy(src, postgres_database, batch=100, progress=stop_after_first_events_batch)
    partial = asyncio.run(dump(postgres_database))
    assert len(partial["events"]) == 100 and partial["rollups"] == []
    assert partial["units"] == total["units"]

    asked: list[int] = []

    def confirm(rows: int) -> bool:
        asked.append(rows)
        return True

    second = copy(src, postgres_database, batch=100, confirm=confirm)
    assert asked and asked[0] > 100  # the target was not empty: asked before resuming
    assert second.ok, second.problems
    assert second.table("events").copied == len(total["events"]) - 100
    assert [second.table(n).copied for n in ("units", "windows", "officers", "devices")] == [0, 0, 0, 0]
    assert second.table("invites").copied == len(total["invites"])  # after events: not reached the first time
    assert asyncio.run(dump(postgres_database)) == total

    # The source lives on (a running collector): new events for the first box (keys below
    # copied ones), a box's status and an invite's outcome change, a rejection is trimmed.
    async def live() -> None:
        async with connect(src) as db:
            await ingest(db, rated_presses(4, 1, NOV, officer="A2", window="W2", start=3000, device="D1"))
            await db.execute("UPDATE devices SET status = 'offline', last_seen_ms = 1 WHERE id = 'D1'")
            await db.execute("UPDATE invites SET outcome = 'unrated' WHERE invite_no = 2")
            await db.execute("DELETE FROM rejected WHERE id = 1")

    asyncio.run(live())
    third = copy(src, postgres_database, batch=100)
    assert third.ok, third.problems
    assert third.table("events").copied == 5
    assert third.table("devices").copied == 1 and third.table("invites").copied == 1
    assert third.table("rejected").removed == 1
    assert asyncio.run(dump(postgres_database)) == asyncio.run(dump(src))

    fourth = copy(src, postgres_database)
    assert fourth.ok and fourth.copied == fourth.table("rollups").copied == fourth.table("rollups").source
    assert fourth.table("events").copied == 0


def test_postgresql_to_sqlite_round_trip(
    tmp_path: pathlib.Path, postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = str(tmp_path / "first.db"), f"sqlite:///{tmp_path / 'last.db'}"
    asyncio.run(fill(first))
    assert copy(first, postgres_database, batch=64).ok
    back = copy(postgres_database, last, batch=1000)
    assert back.ok, back.problems
    assert asyncio.run(dump(first)) == asyncio.run(dump(last))
    assert reports(capsys, first) == reports(capsys, last)


def test_bad_input_is_one_clear_line(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(tmp_path / "a.db")
    asyncio.run(fill(src))
    cases = [
        (["--from", src, "--to", f"sqlite:///{src}"], "the same store"),
        (["--from", str(tmp_path / "missing.db"), "--to", str(tmp_path / "b.db")], "no such SQLite file"),
        (["--from", "mysql://x@h/db", "--to", str(tmp_path / "b.db")], "unknown scheme"),
        (["--from", src, "--to", "oracle://x"], "unknown scheme"),
        (["--from", src, "--to", str(tmp_path / "no" / "b.db")], "no such directory"),
        (["--from", src, "--to", str(tmp_path / "b.db"), "--batch", "0"], "--batch"),
    ]
    for args, message in cases:
        assert main(["store", "copy", *args]) == 2, args
        captured = capsys.readouterr()
        assert message in captured.err and "Traceback" not in captured.err, captured.err
        assert captured.err.count("\n") == 1
    assert not (tmp_path / "b.db").exists()


def test_a_source_with_unknown_or_missing_migrations_is_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "a.db")
    asyncio.run(fill(src))

    async def tamper(sql: str) -> None:
        async with connect(src) as db:
            await db.execute(sql)

    asyncio.run(tamper("INSERT INTO schema_migrations (name, applied_ms) VALUES ('9999_future', 1)"))
    assert main(["store", "copy", "--from", src, "--to", str(tmp_path / "b.db")]) == 2
    assert "9999_future" in capsys.readouterr().err
    asyncio.run(tamper("DELETE FROM schema_migrations WHERE name IN ('9999_future', '0006_box_commands')"))
    assert main(["store", "copy", "--from", src, "--to", str(tmp_path / "b.db")]) == 2
    assert "lacks migrations 0006_box_commands" in capsys.readouterr().err
    assert not (tmp_path / "b.db").exists()  # refused before the target was touched


def test_a_target_with_other_data_or_a_corrupt_source_fails_verification(
    tmp_path: pathlib.Path, postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "a.db")
    asyncio.run(fill(src))
    assert copy(src, postgres_database).ok

    async def run(url: str, sql: str) -> None:
        async with connect(url) as db:
            await db.execute(sql)

    asyncio.run(
        run(
            postgres_database,
            "INSERT INTO events (device_id, boot, seq, type, press_ms, uptime_ms, recv_ms, month, kind, source, level,"
            " scale, officer_id, window_id) VALUES ('D7', 1, 1, 'press', 1, 0, 1, '2026-11', 'rated', 'mqtt', 1, 2,"
            " 'A9', 'W9')",
        )
    )
    assert main(["store", "copy", "--from", src, "--to", postgres_database, "--yes"]) == 1
    out = capsys.readouterr().out
    assert "VERIFICATION FAILED / 校验失败" in out
    assert "events: the target holds 1 rows the source does not" in out
    assert "events: 1,562 rows in the source, 1,563 in the target" in out
    assert "do not match the copied events for months 2026-11" in out

    # A source whose rollups disagree with its events: copied faithfully, and reported.
    other = str(tmp_path / "c.db")
    asyncio.run(run(src, "UPDATE rollups SET n = n + 1 WHERE month = '2026-10' AND level = 2 AND late = 0"))
    assert main(["store", "copy", "--from", src, "--to", other]) == 1
    out = capsys.readouterr().out
    assert "rollups: do not match the copied events for months 2026-10" in out
    assert "2026-11" not in out.split("FAILED")[1]


def test_same_postgresql_database_is_refused(postgres_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    spelt_otherwise = postgres_database.replace("postgresql://", "postgres://")
    assert spelt_otherwise != postgres_database

    async def migrated() -> None:
        await (await create_store(postgres_database)).close()

    asyncio.run(migrated())
    assert main(["store", "copy", "--from", postgres_database, "--to", spelt_otherwise]) == 2
    assert "the same store" in capsys.readouterr().err


def test_a_killed_copy_resumes(tmp_path: pathlib.Path, postgres_database: str) -> None:
    """SIGKILL the command mid-copy (one event per transaction), then run it again."""
    src = str(tmp_path / "a.db")
    asyncio.run(fill(src))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "collector.cli", "store", "copy", "--from", src, "--to", postgres_database]

    async def copied_events() -> int:
        async with connect(postgres_database) as db:
            try:
                return int((await db.fetch("SELECT COUNT(*) FROM events"))[0][0])
            except Exception:  # not migrated yet
                return 0

    proc = subprocess.Popen([*cmd, "--batch", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while asyncio.run(copied_events()) < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed_at = asyncio.run(copied_events())
    assert 10 <= killed_at < 1562

    done = subprocess.run([*cmd, "--yes"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"^events\s+1,562\s+1,562\s+{1562 - killed_at:,}$", done.stdout, re.M), done.stdout
    assert asyncio.run(dump(postgres_database)) == asyncio.run(dump(src))


def test_a_missing_postgresql_database_is_a_clear_error(
    tmp_path: pathlib.Path, postgres_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(tmp_path / "a.db")
    asyncio.run(fill(src))
    missing = postgres_server.rsplit("/", 1)[0] + "/evalbox_no_such_database"
    assert main(["store", "copy", "--from", src, "--to", missing]) == 2
    err = capsys.readouterr().err
    assert "evalbox_no_such_database" in err and "does not exist" in err and "Traceback" not in err


def test_ctrl_c_says_how_to_resume(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import collector.cli.store as commands

    async def interrupted(*args: Any, **kw: Any) -> CopyResult:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "copy_store", interrupted)
    assert main(["store", "copy", "--from", str(tmp_path / "a.db"), "--to", str(tmp_path / "b.db")]) == 130
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err and "Traceback" not in err
