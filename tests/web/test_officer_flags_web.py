"""Officer-month flags on the web page: the officer drill-down and the anomaly list show them in words."""

from __future__ import annotations

from collector.report.officer_stats import review_month
from collector.web.alerts import scan_officer_flags
from tests.report.store import local_ms
from tests.report.test_officer_flags import busy_unit, filling, honest, make
from tests.web.conftest import Server, serve, signed_in


def test_drill_down_and_anomaly_list_show_the_flag(store_url: str) -> None:
    plans = busy_unit()
    plans[3] = (200, honest(5, offset=3), filling(honest(5, offset=3), 0.98))
    make(store_url, plans, unit="U9", prefix="X")  # beside the web seed's units U1 and U2

    async def body(srv: Server) -> None:
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            async with http.get(srv.url + "/officers/P3?month=2026-10") as r:
                page = await r.text()
                assert r.status == 200
            assert "民警月度核查" in page and "未评价率异常偏低" in page
            assert "本月 200 次邀请仅 2 次未评价（1.0%），同单位民警中位数" in page
            async with http.get(srv.url + "/officers/P4?month=2026-10") as r:
                assert "未见异常" in await r.text()
            async with http.get(srv.url + "/officers/P3?month=2026-10&lang=en") as r:
                assert "200 invites this month and only 2 unrated (1.0%)" in await r.text()
            async with http.get(srv.url + "/api/officers/P3?month=2026-10") as r:
                check = (await r.json())["check"]
            assert check["status"] == "tested" and {f["rule"] for f in check["flags"]} >= {"no_rating_low"}
            async with http.get(srv.url + "/anomalies?month=2026-10") as r:
                page = await r.text()
            assert 'id="officer-flags"' in page and "/officers/P3?month=2026-10" in page
            assert "/officers/P4?month=2026-10" not in page
            async with http.get(srv.url + "/api/anomalies?month=2026-10") as r:
                doc = await r.json()
            assert [o["officer_id"] for o in doc["officer_flags"]] == ["P3"]
        # once October is over, the flag is recorded and raised as an alert, once
        november = local_ms("2026-11-05 10:00:00")
        assert await scan_officer_flags(srv.db, srv.settings, srv.policy, november) == 1
        assert await scan_officer_flags(srv.db, srv.settings, srv.policy, november + 60_000) == 0
        http, _ = await signed_in(srv.url, "admin")
        async with http, http.get(srv.url + "/api/alerts") as r:
            (alert,) = [a for a in (await r.json())["alerts"] if a["kind"] == "officer_flag"]
        assert alert["subject"] == "P3" and "2026-10 民警月度核查标记：本月 200 次邀请仅 2 次未评价" in alert["text_zh"]
        # a supervisor's review (复核) is shown on the drill-down with who and when
        await review_month(srv.db, "P3", "2026-10", "explained", "窗口改为自助，群众多在机上评价", "admin", november)
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            async with http.get(srv.url + "/officers/P3?month=2026-10") as r:
                page = await r.text()
            assert "复核：已说明" in page and "窗口改为自助，群众多在机上评价 (admin, 2026-11-05 10:00)" in page
            async with http.get(srv.url + "/officers/P3?month=2026-10&lang=en") as r:
                assert "Review: explained" in await r.text()
            async with http.get(srv.url + "/api/officers/P3?month=2026-10") as r:
                review = (await r.json())["check"]["review"]
            assert review == {"decision": "explained", "note": "窗口改为自助，群众多在机上评价", "by": "admin",
                              "at_ms": november}  # fmt: skip
        # a supervisor of U1 does not see U9's officer flags
        http, _ = await signed_in(srv.url, "sup1")
        async with http, http.get(srv.url + "/api/anomalies?month=2026-10") as r:
            assert (await r.json())["officer_flags"] == []

    serve(store_url, body)
