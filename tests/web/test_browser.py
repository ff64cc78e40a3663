"""Browser tests in headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

``./dev setup`` installs chromium, chromium-driver and fonts-wqy-microhei; when they are missing the
tests skip with that reason (a failure under ``CI=true``). Screenshots of the main pages go to
``artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import pathlib
import time

import openpyxl

from tests.web.conftest import ServerThread
from tests.web.conftest import browser_login as _login
from tests.web.conftest import shot as _shot
from tests.web.seed import MONTH, local_ms


def _wait_file(folder: pathlib.Path, suffix: str, timeout: float = 15) -> pathlib.Path:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        size = done[0].stat().st_size if done else -1
        if size > 0 and size == last:  # written and no longer growing (the browser may still be writing it)
            return done[0]
        last = size
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {list(folder.iterdir())}")


def test_supervisor_journey(store_url: str, browser: object, tmp_path: pathlib.Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from collector.web.settings import WebSettings

    d = browser
    wait = WebDriverWait(d, 15)  # type: ignore[arg-type]
    thread = ServerThread(store_url, WebSettings(scan_interval_s=0.2, detect_interval_s=0.2))
    with thread as srv:
        for i in range(6):  # someone pressing O1's box six times in 30 s: the anomaly list shows it
            thread.call(
                srv.seeder.press("box-1", "O1", "W1", local_ms(29, 15, 3) + i * 5000, 1, flags=1, kind="unsolicited")
            )
        d.get(f"{srv.url}/login")  # type: ignore[attr-defined]
        _shot(d, "login")
        _login(d, srv.url, "admin")
        wait.until(ec.presence_of_element_located((By.ID, "month-table")))
        assert d.current_url.endswith(f"/month?month={MONTH}")  # type: ignore[attr-defined]
        row = d.find_element(By.CSS_SELECTOR, 'tr[data-officer="O2"]')  # type: ignore[attr-defined]
        assert row.find_element(By.CSS_SELECTOR, ".rated").text == "40"
        assert row.find_element(By.CSS_SELECTOR, ".satisfied").text == "39"
        assert row.find_element(By.CSS_SELECTOR, ".rate").text == "97.50%"
        o3 = d.find_element(By.CSS_SELECTOR, 'tr[data-officer="O3"]')  # type: ignore[attr-defined]
        assert o3.find_element(By.CSS_SELECTOR, ".rate").text == "80.00%" and "低于底线" in o3.text
        _shot(d, "month")

        o3.find_element(By.LINK_TEXT, "O3").click()
        wait.until(ec.presence_of_element_located((By.ID, "heat-map")))
        assert "王强" in d.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
        assert d.find_elements(By.CSS_SELECTOR, "svg.trend circle")  # type: ignore[attr-defined]
        _shot(d, "officer")

        d.find_element(By.CSS_SELECTOR, '#nav a[href^="/cases"]').click()  # type: ignore[attr-defined]
        assert d.current_url.endswith(f"/cases?month={MONTH}")  # type: ignore[attr-defined]  # the month goes along
        case = wait.until(ec.presence_of_element_located((By.XPATH, "//article[contains(., 'A017')]")))
        case_id = case.get_attribute("id")
        _shot(d, "cases")
        for action, note in (("visit", "已电话回访群众，群众表示理解"), ("rectify", "窗口组织整改学习"), ("close", "")):
            case = d.find_element(By.ID, case_id)  # type: ignore[attr-defined]
            if note:
                case.find_element(By.NAME, "note").send_keys(note)
            # The last action's notice must not satisfy this action's wait: remove it before the click.
            d.execute_script("const n = document.getElementById('case-done'); if (n) n.remove();")  # type: ignore[attr-defined]
            case.find_element(By.CSS_SELECTOR, f'button[value="{action}"]').click()
            wait.until(ec.presence_of_element_located((By.ID, "case-done")))
        assert "已办结" in d.find_element(By.ID, case_id).text  # type: ignore[attr-defined]
        _shot(d, "case-closed")

        d.get(f"{srv.url}/month?month={MONTH}")  # type: ignore[attr-defined]
        d.find_element(By.ID, "dl-xlsx").click()  # type: ignore[attr-defined]
        xlsx = _wait_file(d.downloads, ".xlsx")  # type: ignore[attr-defined]
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.read_bytes())).worksheets[0]
        o2 = next(r for r in sheet.iter_rows() if r[0].value == "O2")
        assert o2[1].value == "李娜" and o2[7].value == 0.975 and o2[7].number_format == "0.00%"
        d.find_element(By.ID, "dl-csv").click()  # type: ignore[attr-defined]
        csv_text = _wait_file(d.downloads, ".csv").read_text(encoding="utf-8-sig")  # type: ignore[attr-defined]
        assert "O3,王强,U2,W2,10,8,2,80.00,低于底线" in csv_text  # the report's CSV, its labels

        for page in ("devices", "alerts", "anomalies"):
            d.get(f"{srv.url}/{page}?month={MONTH}")  # type: ignore[attr-defined]
            _shot(d, page)
        assert "连续快速按键" in d.find_element(By.ID, "anomalies").text  # type: ignore[attr-defined]
        d.get(f"{srv.url}/month?month={MONTH}&lang=en")  # type: ignore[attr-defined]
        assert "Below floor" in d.find_element(By.ID, "month-table").text  # type: ignore[attr-defined]
        _shot(d, "month-en")

        d.find_element(By.CSS_SELECTOR, "button.link").click()  # type: ignore[attr-defined]  # sign out
        d.delete_all_cookies()  # type: ignore[attr-defined]
        _login(d, srv.url, "sup1")
        wait.until(ec.presence_of_element_located((By.ID, "month-table")))
        assert not d.find_elements(By.CSS_SELECTOR, 'tr[data-officer="O3"]')  # type: ignore[attr-defined]
        d.get(f"{srv.url}/officers/O3?month={MONTH}")  # type: ignore[attr-defined]
        assert "another unit" in d.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
