"""The web page's month beside one corrupt stored row: every officer shown, the row named on the page and in
``/api/month``."""

from __future__ import annotations

from tests.web.conftest import Server, serve, signed_in
from tests.web.seed import EXPECTED, MONTH, local_ms


def test_month_page_names_a_corrupt_row_and_shows_every_officer(store_url: str) -> None:
    async def body(srv: Server) -> None:
        box, boot, seq = await srv.seeder.press("box-1", "O2", "W1", local_ms(12, 10), 3, scale=2)  # 3 on a 2-level box
        http, _ = await signed_in(srv.url, "admin")
        async with http:
            async with http.get(f"{srv.url}/api/month?month={MONTH}") as r:
                doc = await r.json()
            assert r.status == 200
            got = {o["officer"]: (o["rated"], o["satisfied"], o["band"]) for o in doc["officers"]}
            assert got == {oid: want[:3] for oid, want in EXPECTED.items()}
            assert [b["events"] for b in doc["set_aside"]] == [[{"box": box, "boot": boot, "seq": seq}]]
            async with http.get(f"{srv.url}/month?month={MONTH}") as r:
                page = await r.text()
            assert r.status == 200 and f"{box} boot {boot} seq {seq}" in page and "李娜" in page

    serve(store_url, body)
