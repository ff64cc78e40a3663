"""One truth: for random policies and random months, every place a supervisor reads an officer's month —
``/api/month``, the monthly page, the page's CSV and XLSX downloads, and ``evalbox report --format
json|csv|xlsx`` — gives the same rated, satisfied, rate and band, and they are the policy's numbers
(checked against a count made here from the events). On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import pathlib
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.cli import main
from collector.config import load
from collector.report.render import XLSX_HEADER_ROW, label
from collector.web.app import create_app
from collector.web.auth import add_user
from collector.web.settings import WebSettings
from tests.mosquitto import free_port
from tests.report.store import Ev, create_store, ingest, kind_of, local_ms, seed_registry
from tests.web.conftest import PASSWORD, signed_in

MONTH = "2026-10"
BANDS = ("met", "below_target", "below_floor", "no_ratings")
UNITS = (("U1", "城关派出所", None), ("U2", "东城派出所", None))
WINDOWS = (("W1", "U1", "户籍1号窗"), ("W2", "U2", "出入境2号窗"))
OFFICERS = (
    ("O1", "张伟", "U1", "W1"),
    ("O2", "李娜", "U1", "W1"),
    ("O3", "王强", "U2", "W2"),
    ("O4", "赵敏", "U2", "W2"),
)
Numbers = tuple[int, int, str | None, str]  # rated, satisfied, rate (two decimals, cut), band


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    tenths = st.integers(min_value=0, max_value=1000)
    floor, target = sorted((draw(tenths), draw(tenths)))
    satisfied = {
        s: sorted(draw(st.sets(st.integers(1, s), min_size=1, max_size=s - 1))) for s in (2, 3, 4, 5)
    }  # at least one level left out, as the policy requires
    return {
        "target": Decimal(target) / 10,
        "floor": Decimal(floor) / 10,
        "count_unsolicited": draw(st.booleans()),
        "count_misuse": draw(st.booleans()),
        "satisfied": satisfied,
    }


@st.composite
def months(draw: st.DrawFn) -> list[Ev]:
    scales = {"W1": draw(st.integers(2, 5)), "W2": draw(st.integers(2, 5))}
    window_of = {o: w for o, _, _, w in OFFICERS}
    events = []
    for seq in range(draw(st.integers(1, 60))):  # a month with no data has no report anywhere
        officer = draw(st.sampled_from(["O1", "O2", "O3"]))
        scale = scales[window_of[officer]]
        events.append(
            Ev(
                device=f"D{window_of[officer]}",
                seq=seq,
                type="press",
                press_ms=local_ms(f"2026-10-{draw(st.integers(1, 31)):02d} {draw(st.integers(8, 17)):02d}:30:00") + seq,
                officer=officer,
                window=window_of[officer],
                level=draw(st.integers(1, scale)),
                scale=scale,
                flags=draw(st.sampled_from([0, 0, 0, 1, 2])),
            )
        )
    return events


def policy_toml(p: dict[str, Any]) -> str:
    lines = [
        "[rates]",
        f"target = {p['target']}",
        f"floor = {p['floor']}",
        f"count_unsolicited = {str(p['count_unsolicited']).lower()}",
        f"count_misuse = {str(p['count_misuse']).lower()}",
        "[rates.satisfied]",
        *(f"{s} = {levels}" for s, levels in p["satisfied"].items()),
    ]
    return "\n".join(lines) + "\n"


def expected(events: list[Ev], p: dict[str, Any]) -> dict[str, Numbers]:
    """The officers' numbers counted here from the events, by the policy's words (docs/policy.md)."""
    counted = (
        {"rated"}
        | ({"unsolicited"} if p["count_unsolicited"] else set())
        | ({"misuse"} if p["count_misuse"] else set())
    )
    out = {}
    for officer, *_ in OFFICERS:
        mine = [e for e in events if e.officer == officer and kind_of(e) in counted]
        rated = len(mine)
        satisfied = sum(1 for e in mine if e.level in p["satisfied"][e.scale])
        if rated == 0:
            out[officer] = (0, 0, None, "no_ratings")
            continue
        cut = satisfied * 10_000 // rated  # hundredths of a percent, cut
        pct = Decimal(satisfied * 100) / rated
        band = "met" if pct >= p["target"] else "below_target" if pct >= p["floor"] else "below_floor"
        out[officer] = (rated, satisfied, f"{cut // 100}.{cut % 100:02d}", band)
    return out


def _xlsx(data: bytes) -> dict[str, Numbers]:
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).worksheets[0].iter_rows(values_only=True))
    rows = rows[XLSX_HEADER_ROW - 1 : -2]  # the header and the officers (the total lines below them)
    col = {name: i for i, name in enumerate(rows[0])}
    zh = {label(b, "zh"): b for b in BANDS}
    out = {}
    for r in rows[1:]:
        rate = r[col[label("rate", "zh")]]
        text = None if rate is None else f"{rate * 100:.2f}"
        out[r[0]] = (
            r[col[label("rated", "zh")]],
            r[col[label("satisfied", "zh")]],
            text,
            zh[r[col[label("band", "zh")]]],
        )
    return out


def _csv(data: bytes) -> dict[str, Numbers]:
    zh = {label(b, "zh"): b for b in BANDS}
    out = {}
    for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig"))):
        if r[label("row_kind", "zh")] != label("officers", "zh"):
            continue  # the windows', units' and total lines
        rate = r[label("rate", "zh")]
        out[r[label("officer", "zh")]] = (
            int(r[label("rated", "zh")]),
            int(r[label("satisfied", "zh")]),
            None if rate == "—" else rate,
            zh[r[label("band", "zh")]],
        )
    return out


def _json(doc: dict[str, Any]) -> dict[str, Numbers]:
    return {o["officer"]: (o["rated"], o["satisfied"], o["rate_pct"], o["band"]) for o in doc["officers"]}


def _page(html: str) -> dict[str, Numbers]:
    out = {}
    for band, officer, body in re.findall(r'<tr class="row-(\w+)" data-officer="(\w+)">(.*?)</tr>', html, re.S):
        rated = re.search(r'class="num rated">(\d+)<', body)
        satisfied = re.search(r'class="num satisfied">(\d+)<', body)
        rate = re.search(r'class="num rate">([^<]*)<', body)
        assert rated and satisfied and rate, body
        text = rate.group(1).removesuffix("%")
        out[officer] = (int(rated.group(1)), int(satisfied.group(1)), None if text == "—" else text, band)
    return out


async def _web_views(url: str) -> dict[str, dict[str, Numbers]]:
    http, _ = await signed_in(url, "admin")
    async with http:
        async with http.get(f"{url}/api/month?month={MONTH}") as r:
            api = _json(await r.json())
        async with http.get(f"{url}/month?month={MONTH}") as r:
            page = _page(await r.text())
        async with http.get(f"{url}/month/download?month={MONTH}&format=csv") as r:
            page_csv = await r.read()
        async with http.get(f"{url}/month/download?month={MONTH}&format=xlsx") as r:
            page_xlsx = await r.read()
    return {"api": api, "page": page, "page_csv": _csv(page_csv), "page_xlsx": _xlsx(page_xlsx)}


def _cli_views(cfg: pathlib.Path, out: pathlib.Path) -> dict[str, dict[str, Numbers]]:
    views = {}
    for fmt in ("json", "csv", "xlsx"):
        path = out / f"report.{fmt}"
        assert main(["report", "--config", str(cfg), "--month", MONTH, "--format", fmt, "-o", str(path)]) == 0
        data = path.read_bytes()
        views[f"cli_{fmt}"] = _json(json.loads(data)) if fmt == "json" else _csv(data) if fmt == "csv" else _xlsx(data)
    return views


def check(store_url: str, tmp_path: pathlib.Path, p: dict[str, Any], events: list[Ev]) -> None:
    url = store_url if "://" in store_url else f"sqlite:///{store_url}"
    (tmp_path / "policy.toml").write_text(policy_toml(p), encoding="utf-8")
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(f'policy = "policy.toml"\n[store]\nurl = "{url}"\n', encoding="utf-8")

    async def run() -> dict[str, dict[str, Numbers]]:
        db = await create_store(url, fresh=True)
        try:
            await seed_registry(db, UNITS, WINDOWS, OFFICERS)
            await ingest(db, events)
            await add_user(db, "admin", "admin", PASSWORD, [])
            config = load(cfg)
            runner = web.AppRunner(create_app(db, WebSettings(), config.policy, watcher=False))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                return await _web_views(f"http://127.0.0.1:{port}")
            finally:
                await runner.cleanup()
        finally:
            await db.close()

    views = asyncio.run(run()) | _cli_views(cfg, tmp_path)
    want = expected(events, p)
    for name, seen in views.items():
        assert seen == want, (name, p)


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    yield tmp_path_factory.mktemp("same-numbers")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=policies(), events=months())
def test_every_view_gives_the_reports_numbers(
    store_url: str, workdir: pathlib.Path, p: dict[str, Any], events: list[Ev]
) -> None:
    check(store_url, workdir, p, events)
