"""The operations pages in headless Chromium at a phone's width (390 px) and a desk's (1400 px).

Each page (unit dashboard, devices, anomalies, alerts) is no wider than the screen (wide tables scroll
inside their own box), and a zh page shows no raw code: no firmware error text, no snake_case rule, flag,
kind or state name. Screenshots go to ``artifacts/screenshots/ops-<page>-<width>.png``.
"""

from __future__ import annotations

import re

from collector.ingest.device_errors import BY_CODE
from collector.web import cases
from collector.web.alerts import scan_alerts
from collector.web.detection import detect
from collector.web.settings import WebSettings
from tests.web.conftest import ServerThread
from tests.web.conftest import browser_login as _login
from tests.web.conftest import shot as _shot
from tests.web.seed import MONTH, local_ms

PAGES = {
    "dashboard": f"/dashboard?month={MONTH}",
    "devices": "/devices",
    "anomalies": f"/anomalies?month={MONTH}",
    "alerts": "/alerts",
}
ERRORS = {
    "box-1": "MemoryError on key 2: press not taken (3 so far)",
    "box-2": "ack names 1 ids not in the outbox",
}
# what must never reach a zh page's visible text: identifiers, the firmware's prose, English states
RAW = re.compile(
    r"\b[a-z]+_[a-z_]+\b|\b(?:unsolicited|too_fast|repeat|pending|delivered|webhook|offline|online|misuse)\b"
    r"|MemoryError|ack names|not in the outbox"
)


async def _prepare(srv: object) -> None:
    db, seeder = srv.db, srv.seeder  # type: ignore[attr-defined]
    for device, err in ERRORS.items():
        await db.execute("UPDATE devices SET last_error = ? WHERE id = ?", (err, device))
    for i in range(6):  # a burst: flagged by detection
        await seeder.press("box-1", "O1", "W1", local_ms(28, 12, 2) + i * 4000, 1, flags=1, kind="unsolicited")
    for i in range(3):  # repeats the box flagged (misuse)
        await seeder.press("box-1", "O2", "W1", local_ms(27, 10, 1) + i * 900, 1, flags=2, kind="misuse")
    for i in range(20):  # 赵敏 exactly at the floor
        await seeder.press("box-1", "O4", "W1", local_ms(2, 9, i), 2 if i == 7 else 1)
    await detect(db, srv.settings, srv.policy.timezone)  # type: ignore[attr-defined]
    await cases.open_cases(db, srv.settings, srv.policy)  # type: ignore[attr-defined]
    await scan_alerts(db, srv.settings, srv.policy)  # type: ignore[attr-defined]


def _width(driver: object, width: int) -> None:
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def test_operations_pages_fit_the_screen_and_speak_plainly(store_url: str, browser: object) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    d = browser
    thread = ServerThread(store_url, WebSettings(scan_interval_s=60), watcher=False)
    with thread as srv:
        thread.call(_prepare(srv))
        _login(d, srv.url, "admin")
        for width in (390, 1400):
            _width(d, width)
            for name, path in PAGES.items():
                d.get(f"{srv.url}{path}")  # type: ignore[attr-defined]
                page_width, view = d.execute_script(  # type: ignore[attr-defined]
                    "return [document.documentElement.scrollWidth, window.innerWidth]"
                )
                _shot(d, f"ops-{name}-{width}")
                # (an emulated phone widens its layout viewport to what overflows: both must stay the screen's)
                assert page_width <= width and view == width, f"{name} at {width} px is {page_width}/{view} px wide"
                text = d.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
                raw = RAW.search(text)
                assert raw is None, f"{name} at {width} px shows {raw.group()!r}"
                assert not any(code in text.split() for code in BY_CODE), name
                nav = d.find_element(By.CSS_SELECTOR, 'header nav a[href^="/dashboard"]')  # type: ignore[attr-defined]
                assert nav.is_displayed()
        # the phone's view of the facts: names, sentences, the margin
        _width(d, 390)
        d.get(f"{srv.url}/devices")  # type: ignore[attr-defined]
        devices = d.find_element(By.ID, "devices").text  # type: ignore[attr-defined]
        assert "设备内存不足" in devices and "该次按键未计入" in devices and "服务端重复确认" in devices
        details = d.find_element(By.CSS_SELECTOR, 'tr[data-device="box-1"] details')  # type: ignore[attr-defined]
        details.click()  # opened: the firmware's own words for IT
        assert ERRORS["box-1"] in details.text
        d.get(f"{srv.url}/dashboard?month={MONTH}")  # type: ignore[attr-defined]
        row = d.find_element(By.CSS_SELECTOR, '#at-risk tr[data-officer="O4"]')  # type: ignore[attr-defined]
        assert "赵敏" in row.text and row.find_element(By.CSS_SELECTOR, ".absorb").text == "0"
        # a table wider than the phone scrolls inside its box, the page does not
        box = d.find_element(By.CSS_SELECTOR, "#compare .scroll")  # type: ignore[attr-defined]
        inner, outer = d.execute_script(  # type: ignore[attr-defined]
            "return [arguments[0].scrollWidth, arguments[0].clientWidth]", box
        )
        assert outer <= 390 and inner >= outer
        d.get(f"{srv.url}/anomalies?month={MONTH}")  # type: ignore[attr-defined]
        note = d.find_element(By.ID, "misuse-note").text  # type: ignore[attr-defined]
        assert "异常按键" in note and "李娜 3" in note
        d.find_element(By.CSS_SELECTOR, "#misuse-note a.misuse-officer").click()  # type: ignore[attr-defined]
        assert "/officers/O2" in d.current_url  # type: ignore[attr-defined]
