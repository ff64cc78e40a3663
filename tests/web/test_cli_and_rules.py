"""``evalbox user add``, working-day deadlines, and docs/web.md covering every route."""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib

import pytest

from collector.cli import main
from collector.store import connect
from collector.web.app import PAGES
from collector.web.cases import working_deadline
from collector.web.settings import WebSettings
from tests.conftest import ROOT
from tests.web.seed import TZ, local_ms, seed


def test_user_add_command(store_url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    db_path = store_url

    async def prepare() -> None:
        async with connect(db_path) as db:
            await seed(db)

    asyncio.run(prepare())
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pass\n")
    assert main(["user", "add", "chen", "--role", "supervisor", "--unit", "U1", "--password-file", str(pw),
                 "--db", str(db_path)]) == 0  # fmt: skip
    assert "chen" in capsys.readouterr().out
    assert main(["user", "add", "li", "--role", "supervisor", "--password-file", str(pw), "--db", str(db_path)]) == 2
    assert "needs --unit" in capsys.readouterr().err
    assert main(["user", "add", "li", "--role", "supervisor", "--unit", "U9", "--password-file", str(pw),
                 "--db", str(db_path)]) == 2  # fmt: skip
    assert "unit 'U9' does not exist" in capsys.readouterr().err
    assert main(["user", "add", "x", "--role", "admin", "--password-file", str(tmp_path / "none"),
                 "--db", str(db_path)]) == 2  # fmt: skip

    async def check() -> None:
        async with connect(db_path) as db:
            row = await db.fetchone("SELECT role, password_hash FROM users WHERE name = 'chen'")
            assert row is not None and row["role"] == "supervisor" and row["password_hash"].startswith("$argon2id$")
            assert await db.fetch("SELECT unit_id FROM user_units WHERE user_name = 'chen'") == [("U1",)]

    asyncio.run(check())


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp((ms - 1) / 1000, tz=TZ).date()


def test_working_day_deadlines() -> None:
    s = WebSettings()
    friday = local_ms(9, 16)  # Fri 9 Oct 2026
    assert _day(working_deadline(friday, 1, s, "Asia/Shanghai")) == dt.date(2026, 10, 12)  # Monday
    assert _day(working_deadline(friday, 15, s, "Asia/Shanghai")) == dt.date(2026, 10, 30)
    s2 = WebSettings(holidays=frozenset({"2026-10-12"}), extra_working_days=frozenset({"2026-10-10"}))
    assert _day(working_deadline(friday, 1, s2, "Asia/Shanghai")) == dt.date(2026, 10, 10)  # 调休 Saturday
    assert _day(working_deadline(friday, 2, s2, "Asia/Shanghai")) == dt.date(2026, 10, 13)  # skips the holiday Monday


def test_docs_cover_every_route_and_command() -> None:
    doc = (ROOT / "docs" / "web.md").read_text(encoding="utf-8")
    for method, path, _ in PAGES:
        assert f"{method} {path}" in doc, f"docs/web.md does not document {method} {path}"
    for cmd in ("evalbox user add", "evalbox web"):
        assert cmd in doc
