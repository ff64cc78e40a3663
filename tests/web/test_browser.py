"""Browser tests in headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

``./dev setup`` installs chromium, chromium-driver and fonts-wqy-microhei; when they are missing the
tests skip with that reason (a failure under ``CI=true``). Screenshots of the main pages go to
``artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import pathlib
import shutil
import time
from collections.abc import Iterator

import openpyxl
import pytest

from tests.conftest import ROOT
from tests.web.conftest import PASSWORD, ServerThread
from tests.web.seed import MONTH, local_ms

SHOTS = ROOT / "artifacts" / "screenshots"


# A CJK font so the screenshots show Chinese (police PCs have Microsoft YaHei; Debian images often have none).
PACKAGES = ("chromium", "chromium-driver", "fonts-wqy-microhei")
CJK_FONT = pathlib.Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def _chromium_binaries() -> tuple[str | None, str | None]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (browser, driver) if CJK_FONT.exists() else (None, None)


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    browser, driver = _chromium_binaries()
    if not (browser and driver):
        pytest.skip(f"{' / '.join(PACKAGES)} missing: ./dev setup installs them")
    return browser, driver


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: pathlib.Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium[0]
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=opts, service=Service(chromium[1]))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))  # type: ignore[attr-defined]


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


def _login(driver: object, url: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    d = driver
    d.get(f"{url}/month?month={MONTH}")  # type: ignore[attr-defined]
    assert "/login" in d.current_url  # type: ignore[attr-defined]  # anonymous: sent to the login page
    d.find_element(By.ID, "user").send_keys(user)  # type: ignore[attr-defined]
    d.find_element(By.ID, "password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    d.find_element(By.ID, "login-button").click()  # type: ignore[attr-defined]


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

        d.get(f"{srv.url}/cases")  # type: ignore[attr-defined]
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
