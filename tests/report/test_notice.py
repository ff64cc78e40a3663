"""The printed monthly notice (月通报): its head, the month's sanctions with each officer's chain stage, the
signature and seal block, the ``[notice]`` config; printed to PDF by headless Chromium on A4 with every
officer's name on one line; and the page's download of it."""

from __future__ import annotations

import asyncio
import base64
import io
import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pypdf
import pytest
from aiohttp import web

from collector.cli import main
from collector.config import load
from collector.errors import ConfigError
from collector.report.notice import NoticeConfig
from collector.store import connect
from collector.web.app import create_app
from collector.web.auth import add_user
from tests.conftest import ROOT
from tests.mosquitto import free_port
from tests.report.notice_store import ISSUER, MONTH, OFFICERS, build_bureau
from tests.report.store import ingest, local_ms, press
from tests.web.conftest import PASSWORD, signed_in

ARTIFACTS = ROOT / "artifacts" / "notice"
A4_LANDSCAPE_PT = (841.89, 595.28)  # 297 × 210 mm in PDF points
CONTENT_PX = round((297 - 16) / 25.4 * 96)  # the page's width inside the notice's 8 mm side margins, CSS px


@pytest.fixture
def bureau(tmp_path: pathlib.Path) -> pathlib.Path:
    """``evalbox.toml`` naming the bureau's store and the notice's issuer and signer."""
    build_bureau(tmp_path / "evalbox.db")
    config = tmp_path / "evalbox.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///evalbox.db"\n[notice]\nissuer = "{ISSUER}"\nsigner = "陈局长"\n', encoding="utf-8"
    )
    return config


def notice(config: pathlib.Path, lang: str, *extra: str) -> str:
    out = config.parent / f"notice-{lang}.html"
    argv = ["report", "--config", str(config), "--month", MONTH, "--lang", lang, "-o", str(out), *extra]
    assert main(argv) == 0
    return out.read_text(encoding="utf-8")


def plain(html: str) -> str:
    """Text of an HTML fragment, tags as single spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def sanction_rows(page: str) -> dict[str, str]:
    """Each sanctioned officer's row of the notice as plain text."""
    rows = re.findall(r'<tr class="\w+" data-sanction="(\w+)">(.*?)</tr>', page, re.S)
    return {o: re.sub(r"<[^>]+>", " | ", body) for o, body in rows}


def test_head_sanctions_and_signature_zh(bureau: pathlib.Path) -> None:
    page = notice(bureau, "zh", "--issued", "2026-11-03")
    assert "@page{size:A4 landscape" in page
    head = plain(page.split('<dl class="head">')[1].split("</dl>")[0])
    for words in (
        "发文单位 某某县公安局",
        "签发日期 2026年11月3日",
        "统计期间 2026年10月1日 – 2026年10月31日",
        "范围 全部单位",
    ):
        assert words in head, head
    rows = sanction_rows(page)
    assert set(rows) == {"A03", "A05", "A07", "A08"}  # below the floor (A03, A05, A08) or a complaint (A07)
    a03 = rows["A03"]  # the third month below the floor: 打招呼, the ladder's 谈话, escalation to both leaders
    for words in ("欧阳明辉", "75.00% (30/40)", "打招呼 (低于底线), 扣分 10", "谈话 (打招呼累计 3)"):
        assert words in a03, a03
    assert "单位领导 李所长: 谈话" in a03 and "分管局领导 陈局长: 打招呼" in a03
    assert "打招呼 3 · 谈话 1 · 告诫 0 · 扣分 30" in a03 and "已上追（2026-10）" in a03
    assert "打招呼 1 · 谈话 0 · 告诫 0 · 扣分 10" in rows["A05"] and "再 2 次打招呼即谈话" in rows["A05"]
    assert "谈话 (有效投诉 2026-10-20 #1: 办证时态度生硬)" in rows["A07"] and "取消评优" in rows["A07"]
    sign = page.split('<div class="sign">')[1]
    assert "盖章" in sign and ISSUER in sign and "签发人" in sign and "陈局长" in sign and "2026年11月3日" in sign


def test_head_sanctions_and_signature_en(bureau: pathlib.Path) -> None:
    page = notice(bureau, "en", "--issued", "2026-11-03")
    head = plain(page.split('<dl class="head">')[1].split("</dl>")[0])
    assert "Issued by 某某县公安局" in head and "Date of issue 2026-11-03" in head
    assert "Period 2026-10-01 – 2026-10-31 (Asia/Shanghai)" in head
    rows = sanction_rows(page)
    assert "Talk (谈话) (Reminders reached 3)" in rows["A03"] and "Escalated to the leaders (2026-10)" in rows["A03"]
    assert "2 more reminder(s) bring a talk" in rows["A05"]
    assert "Signed by" in page and "Seal" in page.split('<div class="sign">')[1]


def test_a_scoped_notice_names_its_unit_and_a_month_without_sanctions_says_so(
    bureau: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = notice(bureau, "zh", "--unit", "U1", "--issued", "2026-11-03")
    assert set(sanction_rows(page)) == {"A03"}
    assert "范围</dt><dd>城关派出所" in page
    # one unit: its name is in the head and the units table, not repeated on every officer's line
    officers = page.split("</table>")[0]
    assert 'data-col="unit"' not in officers
    assert main(["report", "--config", str(bureau), "--month", "2026-08", "--unit", "U2", "--format", "html"]) == 0
    august = capsys.readouterr().out
    assert not sanction_rows(august) and "本月无民警低于底线，亦无其他措施。" in august


def test_issuer_is_configured_and_checked(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert NoticeConfig(issuer=" 某某县公安局 ").issuer == "某某县公安局"
    config = tmp_path / "evalbox.toml"
    for body, words in (
        ('[notice]\nissuer = "第一行\\n第二行"\n', "notice.issuer"),
        ("[notice]\nissuer = 3\n", "notice.issuer: expected a string"),
        (f'[notice]\nissuer = "{"局" * 61}"\n', "notice.issuer: 61 characters"),
        ('[notice]\nisuer = "x"\n', "notice.isuer: unknown key"),
    ):
        config.write_text(body, encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(words)):
            load(config)
        assert main(["report", "--config", str(config), "--month", MONTH, "--format", "html"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    config.write_text('[notice]\nissuer = "某某县公安局"\n', encoding="utf-8")
    assert load(config).notice.issuer == "某某县公安局"


def test_bad_issue_date_is_one_line(bureau: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["report", "--config", str(bureau), "--month", MONTH]
    assert main([*base, "--format", "html", "--issued", "2026-13-01"]) == 2
    assert "--issued '2026-13-01': expected YYYY-MM-DD" in capsys.readouterr().err
    assert main([*base, "--format", "csv", "--issued", "2026-11-03"]) == 2
    assert "--format html" in capsys.readouterr().err


def test_the_pages_download_is_the_same_notice(bureau: pathlib.Path) -> None:
    """The web page's 月通报 download: the issuer from ``[notice]``, the month's sanctions, the A4 page."""
    config = load(bureau)

    async def run() -> str:
        async with connect(config.require_store()) as db:
            await add_user(db, "admin", "admin", PASSWORD, [])
            runner = web.AppRunner(create_app(db, None, config.policy, watcher=False, notice=config.notice))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                http, _ = await signed_in(f"http://127.0.0.1:{port}", "admin")
                async with http, http.get(f"http://127.0.0.1:{port}/month/download?month={MONTH}&format=html") as r:
                    assert r.status == 200
                    return await r.text()
            finally:
                await runner.cleanup()

    page = asyncio.run(run())
    assert "@page{size:A4 landscape" in page and f"<dd>{ISSUER}</dd>" in page
    assert set(sanction_rows(page)) == {"A03", "A05", "A07", "A08"}
    assert "已上追（2026-10）" in page


# -- printed by Chromium -----------------------------------------------------------------------------------------


@pytest.fixture
def chromium(tmp_path: pathlib.Path) -> Iterator[Any]:
    """Debian's headless chromium through chromium-driver (installed by ``./dev setup``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver_bin):
        pytest.skip("chromium / chromium-driver missing: ./dev setup installs them")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(options=opts, service=Service(driver_bin))
    try:
        yield driver
    finally:
        driver.quit()


# Lines each cell's text takes (distinct tops of its text's line boxes), and the table's widths.
MEASURE = """
const lines = el => {
  const r = document.createRange(); r.selectNodeContents(el);
  return new Set([...r.getClientRects()].filter(q => q.width > 0).map(q => Math.round(q.top))).size;
};
const cells = [...document.querySelectorAll('td[data-col], th')].map(el => ({
  tag: el.tagName, col: el.dataset.col || '', text: el.textContent, lines: lines(el)}));
return {cells, tables: [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right),
        page: document.documentElement.scrollWidth};
"""


def close_and_revise(config: pathlib.Path) -> None:
    """Close October, then store late presses (one a misuse): the widest notice, with the revision columns."""
    assert main(["month", "close", "--config", str(config), MONTH]) == 0
    late = [
        press(2000, local_ms("2026-10-30 10:00:00"), 2, officer="A01", window="W01", device="D00"),
        press(2001, local_ms("2026-10-30 10:00:09"), 1, officer="A02", window="W02", device="D01", flags=2),
    ]

    async def store() -> None:
        async with connect(load(config).require_store()) as db:
            await ingest(db, late)

    asyncio.run(store())


@pytest.mark.parametrize(("lang", "revised"), [("zh", False), ("en", False), ("en", True)])
def test_notice_prints_on_a4_with_names_on_one_line(
    bureau: pathlib.Path, chromium: Any, lang: str, revised: bool
) -> None:
    if revised:
        close_and_revise(bureau)
    page = notice(bureau, lang, "--issued", "2026-11-03")
    if revised:
        assert 'data-col="revised"' in page and 'data-col="misuse"' in page
        lang += "-revised"
    html_file = bureau.parent / f"notice-{lang}.html"
    html_file.write_text(page, encoding="utf-8")
    chromium.get(html_file.as_uri())
    pdf = base64.b64decode(
        chromium.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True})["data"]
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"notice-{lang}.pdf").write_bytes(pdf)

    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert 1 <= len(reader.pages) <= 3
    for p in reader.pages:  # A4 landscape, every page
        size = (float(p.mediabox.width), float(p.mediabox.height))
        assert size == pytest.approx(A4_LANDSCAPE_PT, abs=1.5), size
    text_lines = [ln for p in reader.pages for ln in p.extract_text().splitlines()]
    n = len(reader.pages)  # every page's footer: its number and the count, in the notice's language
    footers = [f"第 {i} 页，共 {n} 页" if lang == "zh" else f"Page {i} of {n}" for i in range(1, n + 1)]
    flat = [" ".join(ln.split()) for ln in text_lines]
    assert all(any(f in ln for ln in flat) for f in footers), flat[-5:]
    for oid, name, *_ in OFFICERS:  # each officer's row: badge number and whole name on one printed line
        assert any(oid in ln and name in ln for ln in text_lines), (oid, name)
    assert any("陈局长" in ln for ln in text_lines) and ISSUER in page

    # In the browser at print media, the page's width inside the margins: nothing wider than the page, no
    # name, unit, window or band broken over lines, no heading stacked more than two lines.
    chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    chromium.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": CONTENT_PX, "height": 760, "deviceScaleFactor": 1, "mobile": False},
    )
    got = chromium.execute_script(MEASURE)
    assert got["page"] <= CONTENT_PX and max(got["tables"]) <= CONTENT_PX + 1, got["tables"]
    one_line = [c for c in got["cells"] if c["tag"] == "TD" and c["col"] in ("name", "unit", "window", "band", "rate")]
    assert len([c for c in one_line if c["col"] == "name"]) == len(OFFICERS) + 4  # officers' table and sanctions
    broken = [c for c in one_line if c["text"] and c["lines"] != 1]
    assert not broken, broken
    stacked = [c for c in got["cells"] if c["tag"] == "TH" and c["lines"] > 2]
    assert not stacked, stacked
    chromium.save_screenshot(str(ARTIFACTS / f"notice-{lang}-print.png"))
