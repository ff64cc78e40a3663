"""HTTP-level tests of the web page and API on a real port over a real SQLite file."""

from __future__ import annotations

import io
import pathlib

import openpyxl

from collector.clock import now_ms
from collector.web.auth import session_for
from tests.web.conftest import PASSWORD, Server, csrf_of, login, new_client, serve, signed_in
from tests.web.seed import EXPECTED, MONTH


def test_anonymous_page_redirects_and_api_answers_401(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        async with new_client() as http:
            for path in ("/month", "/officers/O1", "/devices", "/cases", "/anomalies", "/alerts", "/"):
                async with http.get(srv.url + path, allow_redirects=False) as r:
                    assert r.status == 303, path
                    assert r.headers["Location"].startswith("/login?next="), path
            for path in ("/api/month", "/api/officers/O1", "/api/devices", "/api/cases", "/api/alerts", "/api/me"):
                async with http.get(srv.url + path) as r:
                    assert r.status == 401, path
                    assert (await r.json())["error"] == "unauthenticated"
            async with http.post(srv.url + "/api/cases/1", json={"action": "close"}) as r:
                assert r.status == 401
            async with http.get(srv.url + "/healthz") as r:
                assert r.status == 200
            async with http.get(srv.url + "/static/style.css") as r:
                assert r.status == 200

    serve(store_url, body)


def test_every_registered_route_needs_login(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        public = {"/login", "/healthz"}
        async with new_client() as http:
            for route in srv.app.router.routes():
                info = route.resource.get_info() if route.resource else {}
                path = info.get("path") or info.get("formatter") or info.get("prefix", "")
                if path in public or path.startswith("/static") or route.method == "HEAD":
                    continue
                url = srv.url + path.replace("{officer}", "O1").replace("{id}", "1")
                async with http.request(route.method, url, allow_redirects=False) as r:
                    assert r.status in (303, 401), (route.method, path, r.status)

    serve(store_url, body)


def test_login_and_month_numbers(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            async with http.get(f"{srv.url}/api/month?month={MONTH}") as r:
                rows = {o["officer"]: o for o in (await r.json())["officers"]}
            assert set(rows) == set(EXPECTED)
            for oid, (rated, satisfied, band, rate) in EXPECTED.items():
                assert (rows[oid]["rated"], rows[oid]["satisfied"], rows[oid]["band"]) == (rated, satisfied, band)
                assert rows[oid]["rate_pct"] == rate
            async with http.get(f"{srv.url}/month?month={MONTH}&sort=rate&desc=1") as r:
                html = await r.text()
            assert r.status == 200
            assert "97.50%" in html and "80.00%" in html and "李娜" in html and "低于底线" in html
            assert html.index('data-officer="O1"') < html.index('data-officer="O2"') < html.index('data-officer="O3"')
            async with http.get(f"{srv.url}/month?month={MONTH}&lang=en") as r:
                assert "Below floor" in await r.text()
            async with http.get(f"{srv.url}/month?month={MONTH}") as r:  # the language sticks (cookie)
                assert "Below floor" in await r.text()
            async with http.get(f"{srv.url}/api/month?month={MONTH}&window=W2") as r:
                assert [o["officer"] for o in (await r.json())["officers"]] == ["O3"]

    serve(store_url, body)


def test_downloads(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            async with http.get(f"{srv.url}/month/download?month={MONTH}&format=csv") as r:
                text = (await r.read()).decode("utf-8-sig")
                assert "attachment" in r.headers["Content-Disposition"]
            assert "O2,李娜,U1,W1,40,39,1,97.50,未达标" in text
            async with http.get(f"{srv.url}/month/download?month={MONTH}&format=xlsx") as r:
                data = await r.read()
            sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
            o2 = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "O2")
            assert o2[1:6] == ("李娜", "U1", "W1", 40, 39)
            async with http.get(f"{srv.url}/month/download?month={MONTH}&format=html") as r:
                notice = await r.text()
            assert "月通报" in notice and "@page{size:A4" in notice and "盖章" in notice
            assert 'data-sanction="O3"' in notice  # 王强, below the floor: his 打招呼 in the month's sanctions
            async with http.get(f"{srv.url}/month/download?month={MONTH}&format=pdf") as r:
                assert r.status == 400

    serve(store_url, body)


def test_supervisor_sees_only_own_units(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        http, _ = await signed_in(srv.url, "sup1")
        async with http:
            async with http.get(f"{srv.url}/api/month?month={MONTH}") as r:
                assert {o["officer"] for o in (await r.json())["officers"]} == {"O1", "O2", "O4"}
            async with http.get(f"{srv.url}/officers/O3?month={MONTH}") as r:
                assert r.status == 403
            async with http.get(f"{srv.url}/api/officers/O3?month={MONTH}") as r:
                assert r.status == 403
            async with http.get(f"{srv.url}/officers/O2?month={MONTH}") as r:
                html = await r.text()
                assert r.status == 200 and "<svg" in html and 'id="heat-map"' in html
            async with http.get(f"{srv.url}/api/devices") as r:
                assert [d["id"] for d in (await r.json())["devices"]] == ["box-1"]
            async with http.get(f"{srv.url}/month?unit=U2") as r:
                assert r.status == 403

    serve(store_url, body)


def test_csrf_forged_is_refused(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        from collector.web.cases import open_cases

        await open_cases(srv.db, srv.settings, srv.policy)
        http, csrf = await signed_in(srv.url, "admin")
        async with http:
            async with http.post(f"{srv.url}/cases/1", data={"action": "visit", "note": "x", "csrf": "forged"}) as r:
                assert r.status == 403
                assert "安全校验失败" in await r.text()
            async with http.post(f"{srv.url}/cases/1", data={"action": "visit", "note": "x"}) as r:
                assert r.status == 403
            async with http.post(f"{srv.url}/api/cases/1", json={"action": "visit", "note": "x"}) as r:
                assert r.status == 403
            case = await srv.db.fetchone("SELECT visit_ms FROM cases WHERE id = 1")
            assert case is not None and case["visit_ms"] is None  # nothing saved
            async with http.post(f"{srv.url}/logout", data={"csrf": "nope"}, allow_redirects=False) as r:
                assert r.status == 403
            async with http.post(f"{srv.url}/logout", data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303
            async with http.get(f"{srv.url}/api/me") as r:
                assert r.status == 401
        forged = {"user": "admin", "password": PASSWORD, "csrf": "x"}
        async with new_client() as anon, anon.post(f"{srv.url}/login", data=forged) as r:
            assert r.status == 403  # the login form has its own token

    serve(store_url, body)


def test_wrong_password_is_rate_limited(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        async with new_client() as http:
            for _ in range(srv.settings.login_max_failures):
                status, text = await login(http, srv.url, "admin", "wrong password")
                assert status == 401 and "用户名或密码错误" in text
            status, text = await login(http, srv.url, "admin", PASSWORD)  # even the right one waits now
            assert status == 429 and "登录失败次数过多" in text
            status, _ = await login(http, srv.url, "sup1", "wrong again")  # same address: throttled too
            assert status == 429

    serve(store_url, body)


def test_expired_session_goes_back_to_login(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            await srv.db.execute("UPDATE sessions SET expires_ms = ?", (now_ms() - 1,))
            async with http.get(f"{srv.url}/month", allow_redirects=False) as r:
                assert r.status == 303 and "expired=1" in r.headers["Location"]
            async with http.get(f"{srv.url}/login?expired=1") as r:
                assert "登录已过期" in await r.text()
            async with http.get(f"{srv.url}/api/month") as r:
                assert r.status == 401
        assert await session_for(srv.db, "nonsense", srv.settings) is None

    serve(store_url, body)


def test_case_flow_and_closing_twice(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        from collector.web.cases import case_counts, open_cases

        assert len(await open_cases(srv.db, srv.settings, srv.policy)) == 3
        assert await open_cases(srv.db, srv.settings, srv.policy) == []  # idempotent
        http, csrf = await signed_in(srv.url, "sup1")
        async with http:
            async with http.get(f"{srv.url}/api/cases") as r:
                mine = (await r.json())["cases"]
            assert [c["ticket"] for c in mine] == ["A017"] and mine[0]["overdue"]
            cid = mine[0]["id"]
            (other,), *_ = await srv.db.fetch("SELECT id FROM cases WHERE unit_id = 'U2'")
            async with http.post(f"{srv.url}/api/cases/{other}", json={"action": "visit", "note": "x"},
                                 headers={"X-CSRF-Token": csrf}) as r:  # fmt: skip
                assert r.status == 403
            form = {"csrf": csrf, "action": "close", "note": ""}
            async with http.post(f"{srv.url}/cases/{cid}", data=form) as r:
                assert r.status == 409 and "record the return visit" in await r.text()
            for action, note in (("visit", "已电话回访群众"), ("rectify", "已组织窗口整改学习")):
                async with http.post(f"{srv.url}/cases/{cid}", data={**form, "action": action, "note": note}) as r:
                    assert r.status == 200 and f'id="case-done">#{cid}' in await r.text()
            async with http.post(f"{srv.url}/cases/{cid}", data=form) as r:
                assert r.status == 200
            before = await srv.db.fetchone("SELECT * FROM cases WHERE id = ?", (cid,))
            async with http.post(f"{srv.url}/cases/{cid}", data=form) as r:
                text = await r.text()
                assert r.status == 409 and "already closed" in text
            async with http.post(f"{srv.url}/api/cases/{cid}", json={"action": "appeal", "note": "误评"},
                                 headers={"X-CSRF-Token": csrf}) as r:  # fmt: skip
                assert r.status == 409
            assert await srv.db.fetchone("SELECT * FROM cases WHERE id = ?", (cid,)) == before
            async with http.get(f"{srv.url}/cases") as r:
                assert "已办结" in await r.text()
        admin, acsrf = await signed_in(srv.url, "admin")
        async with admin:
            async with admin.post(f"{srv.url}/api/cases/{other}", json={"action": "appeal", "note": "恶意评价"},
                                  headers={"X-CSRF-Token": acsrf}) as r:  # fmt: skip
                assert r.status == 200 and (await r.json())["case"]["state"] == "appeal"
            async with admin.get(f"{srv.url}/api/cases/counts?month={MONTH}") as r:
                counts = (await r.json())["counts"]
        assert counts == await case_counts(srv.db, MONTH)
        assert counts["opened"] == 3 and counts["appeal"] == 1 and counts["overdue"] == 1
        assert counts["closed_on_time"] + counts["closed_late"] == 1

    serve(store_url, body)


def test_login_page_html_has_csrf(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        async with new_client() as http, http.get(srv.url + "/login") as r:
            assert csrf_of(await r.text())
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]

    serve(store_url, body)


def test_closed_month_keeps_late_rows_apart(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        from tests.web.seed import local_ms

        await srv.db.execute(
            "INSERT INTO months (month, closed_ms, closed_by) VALUES (?, ?, 'admin')", (MONTH, now_ms())
        )
        await srv.seeder.press("box-1", "O1", "W1", local_ms(30, 10), 2)  # arrives after closing
        await srv.db.execute("UPDATE rollups SET late = 1 WHERE officer_id = 'O1' AND level = 2")
        http, _ = await signed_in(srv.url, "admin")
        async with http, http.get(f"{srv.url}/api/month?month={MONTH}") as r:
            o1 = next(o for o in (await r.json())["officers"] if o["officer"] == "O1")
        assert (o1["rated"], o1["band"], o1["revision"]["late_events"]) == (20, "met", 1)

    serve(store_url, body)


def test_closed_month_keeps_its_judgement_under_a_new_policy(store_url: str) -> None:
    """Closed under the default floor (95%); the page runs with 98%: the band stays, the revision has the new one."""
    import re
    from fractions import Fraction

    from collector.report import Policy
    from collector.report.months import close_month

    async def body(srv: Server) -> None:
        await close_month(srv.db, MONTH, Policy(), by="admin", now_ms=now_ms())
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            async with http.get(f"{srv.url}/api/month?month={MONTH}") as r:
                doc = await r.json()
            async with http.get(f"{srv.url}/month?month={MONTH}&lang=en") as r:
                page = await r.text()
            async with http.get(f"{srv.url}/month/download?month={MONTH}&format=csv&lang=en") as r:
                csv_text = (await r.read()).decode("utf-8-sig")
        o2 = next(o for o in doc["officers"] if o["officer"] == "O2")  # 39 of 40: 97.50%
        assert (o2["rated"], o2["band"], o2["penalty_points"]) == (40, "below_target", 0)
        assert (o2["revision"]["band"], o2["revision"]["late_events"]) == ("below_floor", 0)
        assert doc["policy"]["floor"] == 95 and doc["revisions"] == 1
        o3 = next(o for o in doc["officers"] if o["officer"] == "O3")  # 80%: below either floor, no revision
        assert o3["revision"] is None
        row = re.search(r'<tr class="row-below_target" data-officer="O2">.*?</tr>', page, re.S)
        assert row is not None, page
        tag = re.search(r'<span class="tag warn revision"[^>]*>([^<]*)</span>', row.group(0))
        assert tag is not None and "97.50%" in tag.group(1) and "elow floor" in tag.group(1)
        assert "Revision" in page
        o2_csv = next(line for line in csv_text.splitlines() if line.startswith("O2,"))
        assert o2_csv.split(",")[-5:-3] == ["97.50", "Below floor"]  # revised rate and band; levels, kind, month

    serve(store_url, body, policy=Policy(floor=Fraction(98)))


def test_devices_page_shows_a_box_running_an_old_config(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            await srv.db.execute("UPDATE devices SET config_version = 1, settings_cv = 1 WHERE id = 'box-1'")
            async with http.get(f"{srv.url}/devices") as r:
                html = await r.text()
            assert "v1" in html and "旧配置" not in html
            # Its settings changed (cv 2) and the box still reports cv 1: the page says so, with the hint.
            await srv.db.execute("UPDATE devices SET settings_cv = 2 WHERE id = 'box-1'")
            async with http.get(f"{srv.url}/devices") as r:
                html = await r.text()
            assert "旧配置 → v2" in html and "下次上报状态时会重新下发" in html
            async with http.get(f"{srv.url}/api/devices") as r:
                box = {d["id"]: d for d in (await r.json())["devices"]}["box-1"]
            assert box["config_version"] == 1 and box["settings_cv"] == 2 and box["config_old"] is True

    serve(store_url, body)


def test_devices_page_shows_firmware_update_progress(store_url: str, tmp_path: pathlib.Path) -> None:
    async def body(srv: Server) -> None:
        from collector.fleet.rollout import record_state

        http, _ = await signed_in(srv.url, "admin")
        async with http:
            state = {"ver": "1.2.0", "sl": "a", "tr": False, "st": "recv", "id": "0123456789abcdef", "off": 30720,
                     "sz": 81920, "why": None}  # fmt: skip
            await record_state(srv.db, "box-1", state)
            async with http.get(f"{srv.url}/devices") as r:
                html = await r.text()
            assert "分区 a" in html and "接收升级包 37%" in html, html
            why = "rolled back from 1.3.0: self-test: keys: stuck"
            await record_state(srv.db, "box-1", dict(state, st="rolled_back", off=0, sz=0, why=why))
            async with http.get(f"{srv.url}/devices") as r:
                html = await r.text()
            assert "已自动回退" in html and why in html and "接收升级包" not in html
            async with http.get(f"{srv.url}/api/devices") as r:
                box = {d["id"]: d for d in (await r.json())["devices"]}["box-1"]
            assert box["fw_version"] == "1.2.0" and box["fw_state"] == "rolled_back" and box["fw_why"] == why

    serve(store_url, body)
