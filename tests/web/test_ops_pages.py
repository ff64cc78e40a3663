"""The operations pages as a supervisor uses them: device errors in words, misuse vs anomalies, the unit
dashboard, downloads of what each list shows and filters kept in the URL (real store, real server)."""

from __future__ import annotations

import csv
import html
import io
import re

import openpyxl

from collector.web import cases
from collector.web.data import current_month
from collector.web.detection import detect
from tests.web.conftest import Server, csrf_of, serve, signed_in
from tests.web.seed import MONTH, local_ms

RAW_EN = re.compile(r"\b(?:ack names|outbox full|unacked|MemoryError|Wi-Fi not joined|connection refused)\b")


def _visible(page: str) -> str:
    """The page's text outside ``<details>`` (what a supervisor reads without opening the details)."""
    page = re.sub(r"<details>.*?</details>", "", page, flags=re.S)
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _table(page: str, table_id: str) -> str:
    m = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S)
    assert m, table_id
    return m.group(0)


async def _get(http: object, url: str) -> tuple[int, str]:
    async with http.get(url) as r:  # type: ignore[attr-defined]
        return r.status, await r.text()


async def _bytes(http: object, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as r:  # type: ignore[attr-defined]
        return r.status, r.headers.get("Content-Disposition", ""), await r.read()


def _csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())  # Excel opens it as UTF-8
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_device_errors_read_as_sentences_and_export_as_shown(store_url: str) -> None:
    async def body(srv: Server) -> None:
        await srv.db.execute("UPDATE devices SET last_error = 'outbox full: 2048 unacked events' WHERE id = 'box-1'")
        await srv.db.execute("UPDATE devices SET last_error = 'ack names 1 ids not in the outbox' WHERE id = 'box-2'")
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            status, page = await _get(http, f"{srv.url}/devices")
            assert status == 200
            seen = _visible(page)
            assert "设备待发送评价已满（2048 条未确认）" in seen and "处理建议" in seen
            assert "服务端重复确认了已上传的评价" in seen
            assert not RAW_EN.search(seen), RAW_EN.search(seen)
            # the firmware's text is still there for IT, inside the details element only
            assert re.search(r"<details>.*outbox full: 2048 unacked events.*</details>", page, re.S)
            status, en = await _get(http, f"{srv.url}/devices?lang=en")
            assert "The box&#39;s outbox is full (2048 unconfirmed ratings)" in en and "What to do: " in en

            await srv.db.execute("UPDATE devices SET last_error = 'flux capacitor drift 7' WHERE id = 'box-2'")
            _, page = await _get(http, f"{srv.url}/devices?lang=zh")
            assert "未知错误" in _visible(page) and "flux capacitor" not in _visible(page)
            assert "flux capacitor drift 7" in page  # in the details

            # filters in the URL; the download is what the filtered page shows
            _, page = await _get(http, f"{srv.url}/devices?status=offline")
            assert 'data-device="box-2"' in page and 'data-device="box-1"' not in page
            assert 'href="/devices?status=offline&amp;format=csv"' in page
            _, page = await _get(http, f"{srv.url}/devices?unit=U1")
            assert 'data-device="box-1"' in page and 'data-device="box-2"' not in page
            status, disposition, body = await _bytes(http, f"{srv.url}/devices?status=offline&format=csv")
            rows = _csv(body)
            assert status == 200 and "devices-" in disposition and disposition.endswith(".csv")
            assert rows[0][:4] == ["评价器", "单位", "窗口", "状态"] and [r[0] for r in rows[1:]] == ["box-2"]
            # the collector's findings (silent a day, 120 unsent) before the box's own last error
            assert rows[1][3] == "离线" and rows[1][10] == "flux capacitor drift 7"
            assert rows[1][8].split("；") == ["设备离线：超过规定时间未与服务端通信", "设备待发送评价积压", "未知错误"]
            status, _, body = await _bytes(http, f"{srv.url}/devices?format=xlsx&lang=en")
            sheet = openpyxl.load_workbook(io.BytesIO(body)).worksheets[0]
            assert sheet["A1"].value == "Devices" and sheet["A2"].value == "Box"
            assert sorted(c.value for c in sheet["A"][2:]) == ["box-1", "box-2"]
            assert (await _get(http, f"{srv.url}/devices?format=pdf"))[0] == 400
            async with http.get(f"{srv.url}/api/devices") as r:
                box = {d["id"]: d for d in (await r.json())["devices"]}["box-1"]
            assert box["error"]["code"] == "outbox_full" and box["error"]["raw"].startswith("outbox full")
            assert box["findings"] == []  # online, nothing queued, its config taken
            _, page = await _get(http, f"{srv.url}/devices?problems=1")
            assert 'data-device="box-2"' in page and 'data-device="box-1"' in page  # box-1: its outbox is full
            await srv.db.execute("UPDATE devices SET last_error = 'broker connection lost' WHERE id = 'box-1'")
            _, page = await _get(http, f"{srv.url}/devices?problems=1")
            assert 'data-device="box-1"' not in page  # a lost connection it recovers from: not a problem

    serve(store_url, body)


def test_anomalies_page_names_misuse_apart_and_links_it(store_url: str) -> None:
    async def body(srv: Server) -> None:
        t = local_ms(28, 12, 2)
        for i in range(6):  # a burst of unsolicited presses: flagged by detection (可疑评价)
            await srv.seeder.press("box-1", "O1", "W1", t + i * 4000, 1, flags=1, kind="unsolicited")
        for i in range(3):  # repeats the box flagged as they arrived (异常按键)
            await srv.seeder.press("box-1", "O2", "W1", local_ms(27, 10, 1) + i * 900, 1, flags=2, kind="misuse")
        await detect(srv.db, srv.settings, srv.policy.timezone)
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            _, page = await _get(http, f"{srv.url}/anomalies?month={MONTH}")
            note = re.search(r'id="misuse-note">(.*?)</p>', page, re.S)
            assert note and "异常按键" in note.group(1) and "本月 3 次" in note.group(1)
            assert f'href="/officers/O2?month={MONTH}" class="misuse-officer">李娜 3</a>' in note.group(1)
            assert "不计入满意率" in note.group(1)
            assert re.search(r"<h1>可疑评价", page) and "连续快速按键" in _table(page, "anomalies")
            # the link leads to the monthly report, whose misuse column counts them per officer
            link = re.search(r'<a href="([^"]+)" id="misuse-link">', note.group(1))
            assert link
            _, _, xlsx = await _bytes(http, srv.url + html.unescape(link.group(1)))
            sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).worksheets[0]
            header = [c.value for c in sheet[3]]  # rows 1-2: the title and the month
            o2 = next(r for r in sheet.iter_rows(values_only=True) if r[0] == "O2")
            assert o2[header.index("异常按键")] == 3
            _, other = await _get(http, f"{srv.url}/anomalies?month=2026-09")
            assert "本月无数据" in other and "连续快速按键" not in _table(other, "anomalies")
            _, only = await _get(http, f"{srv.url}/anomalies?month={MONTH}&rule=no_invite")
            assert "连续快速按键" not in _table(only, "anomalies") and "无邀请评价" in _table(only, "anomalies")
            assert '<option value="no_invite" selected>' in only
            _, _, body = await _bytes(http, f"{srv.url}/anomalies?month={MONTH}&rule=burst&format=csv")
            rows = _csv(body)
            assert rows[0] == ["被标出的按键"] and rows[1][:2] == ["时间", "民警"]
            presses = rows[2 : rows.index([])]
            assert len(presses) == 6 and all(r[4] == "连续快速按键" and r[2] == "张伟" for r in presses)
            async with http.get(f"{srv.url}/api/anomalies?month={MONTH}") as r:
                assert (await r.json())["misuse"] == 3

    serve(store_url, body)


def test_alerts_filters_export_and_ack_keeps_the_filter(store_url: str) -> None:
    async def body(srv: Server) -> None:
        from collector.web.alerts import scan_alerts

        await scan_alerts(srv.db, srv.settings, srv.policy)  # box-2 silent a day: an offline alert
        http, csrf = await signed_in(srv.url, "admin")
        async with http:
            _, page = await _get(http, f"{srv.url}/alerts?kind=offline&acked=0")
            ids = re.findall(r'id="alert-(\d+)"', page)
            assert ids and "设备离线" in page and "kind_" not in page
            _, outbox = await _get(http, f"{srv.url}/alerts?kind=outbox")  # box-2's 120 unsent: an outbox alert
            outbox_ids = re.findall(r'id="alert-(\d+)"', outbox)
            assert outbox_ids and not set(outbox_ids) & set(ids) and "设备离线" not in _table(outbox, "alerts")
            _, every = await _get(http, f"{srv.url}/alerts")
            assert set(re.findall(r'id="alert-(\d+)"', every)) == set(ids) | set(outbox_ids)
            _, _, body = await _bytes(http, f"{srv.url}/alerts?kind=offline&acked=0&format=csv")
            rows = _csv(body)
            assert [r[0] for r in rows[1:]] == ids and rows[1][2] == "设备离线" and rows[1][4] == "未确认"
            form = {"csrf": csrf_of(page), "back": "/alerts?kind=offline&acked=0"}
            async with http.post(f"{srv.url}/alerts/{ids[0]}/ack", data=form, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/alerts?kind=offline&acked=0"
            form["back"] = "//evil.example/alerts"
            async with http.post(f"{srv.url}/alerts/{ids[0]}/ack", data=form, allow_redirects=False) as r:
                assert r.headers["Location"] == "/alerts"  # never away from the page
            _, _, body = await _bytes(http, f"{srv.url}/alerts?acked=1&format=csv")
            assert [r[0] for r in _csv(body)[1:]] == [ids[0]]

    serve(store_url, body)


def test_unit_dashboard(store_url: str) -> None:
    async def body(srv: Server) -> None:
        for i in range(20):  # 赵敏 (O4): 19 of 20, exactly the 95% floor: the next unsatisfied rating is below
            await srv.seeder.press("box-1", "O4", "W1", local_ms(2, 9, i), 2 if i == 7 else 1)
        for i in range(10):  # last month: 张伟 10 of 10
            await srv.seeder.press("box-1", "O1", "W1", local_ms(10, 9, i, month=9), 1)
        await cases.open_cases(srv.db, srv.settings, srv.policy)  # the October bad ratings: long overdue now
        admin, _ = await signed_in(srv.url, "admin")
        async with admin:
            status, page = await _get(admin, f"{srv.url}/dashboard?month={MONTH}")
            assert status == 200 and 'href="/dashboard' in page  # in the navigation (with the page's month)
            risk = re.search(r'<section class="card" id="at-risk">(.*?)</section>', page, re.S)
            assert risk and 'data-officer="O4"' in risk.group(1) and "赵敏" in risk.group(1)
            assert "再有 1 次不满意评价即低于底线" in risk.group(1)
            assert re.search(r'class="num absorb"><b>0</b>', risk.group(1))
            assert 'data-officer="O1"' not in risk.group(1)  # 20/20 absorbs one more
            below = re.search(r'id="below-floor">(.*?)</section>', page, re.S)
            assert below and "王强" in below.group(1)
            # O2's A017, O3's two and O4's one
            assert re.search(r'id="kpi-overdue">.*?<b>4</b>', page, re.S) and "A017" in page
            assert re.search(r'id="kpi-offline">.*?<b>1</b>', page, re.S) and 'data-device="box-2"' in page
            async with admin.get(f"{srv.url}/api/dashboard?month={MONTH}") as r:
                d = await r.json()
            assert [o["officer"] for o in d["at_risk"]] == ["O4"] and d["at_risk"][0]["absorb"] == 0
            assert d["at_risk"][0]["reason"] == "one_more" and d["days_left"] == 0
            u1 = next(u for u in d["units"] if u["unit"] == "U1")
            assert u1["now"]["rated"] == 80 and u1["last"]["rated"] == 10 and u1["last"]["rate"] == "100.00"
            assert u1["change_points"] == "-2.50"  # 78/80 = 97.50% against 100.00%
            _, _, body = await _bytes(admin, f"{srv.url}/dashboard?month={MONTH}&format=xlsx")
            wb = openpyxl.load_workbook(io.BytesIO(body))
            assert len(wb.worksheets) == 5 and wb.worksheets[0]["B1"].value == MONTH
            risk_sheet = wb.worksheets[1]
            assert [c.value for c in risk_sheet[3]][:2] == ["O4", "赵敏"]
            assert risk_sheet["F3"].value == 0.95 and risk_sheet["F3"].number_format == "0.00%"
            assert risk_sheet["G3"].value == 0
            async with admin.get(f"{srv.url}/api/dashboard") as r:  # this month: nothing rated yet
                now = await r.json()
            assert now["month"] == current_month(srv.policy) and now["last_month"] == "2026-11"
            assert 1 <= now["days_left"] <= 31 and now["at_risk"] == [] and now["units"] == []
            status, empty = await _get(admin, f"{srv.url}/dashboard")
            assert status == 200 and "目前没有可能跌破底线的民警" in empty
            _, _, body = await _bytes(admin, f"{srv.url}/dashboard?month={MONTH}&unit=U2&format=csv")
            text = body.decode("utf-8-sig")
            assert "王强" in text and "赵敏" not in text  # the unit filter applies to the download
        sup, _ = await signed_in(srv.url, "sup1")
        async with sup:
            _, page = await _get(sup, f"{srv.url}/dashboard?month={MONTH}")
            assert "王强" not in page and 'data-device="box-2"' not in page  # U2's: not theirs
            assert re.search(r'id="kpi-overdue">.*?<b>2</b>', page, re.S)
            assert (await _get(sup, f"{srv.url}/dashboard?month={MONTH}&unit=U2"))[0] == 403
            assert (await _get(sup, f"{srv.url}/dashboard?month=2026-13"))[0] == 400

    serve(store_url, body)
