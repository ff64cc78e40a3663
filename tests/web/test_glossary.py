"""The web page takes the glossary's words: labels.toml defines none of them, and no page shows an old variant."""

from __future__ import annotations

import html
import re
import tomllib
from fractions import Fraction

from collector.clock import now_ms
from collector.report import Policy
from collector.report.glossary import TERMS, VARIANTS
from collector.report.months import close_month
from collector.web.i18n import GLOSSARY_KEYS, label
from tests.conftest import ROOT
from tests.web.conftest import Server, serve, signed_in
from tests.web.seed import MONTH

ALL_VARIANTS = [v for vs in VARIANTS.values() for v in vs]
PAGES = ("/month", "/officers/O2", "/anomalies", "/alerts", "/cases", "/devices", "/dashboard")


def test_page_labels_of_glossary_words_come_from_the_glossary() -> None:
    own = tomllib.loads((ROOT / "collector" / "web" / "labels.toml").read_text(encoding="utf-8"))
    assert not set(own) & set(GLOSSARY_KEYS), "labels.toml defines a glossary word again"
    for key, term in GLOSSARY_KEYS.items():
        assert (label(key, "zh"), label(key, "en")) == TERMS[term], key
    for zh, en in own.values():
        for v in ALL_VARIANTS:
            assert v not in zh and v not in en, (zh, en, v)
    assert label("misuse", "zh") != label("anomalies", "zh") and label("misuse", "en") != label("anomalies", "en")


def test_pages_show_no_old_name(store_url: str) -> None:
    async def body(srv: Server) -> None:
        await close_month(srv.db, MONTH, Policy(), by="admin", now_ms=now_ms())  # a revision under the new floor
        http, _ = await signed_in(srv.url, "admin")
        pages: dict[str, str] = {}
        async with http:
            for lang in ("zh", "en"):
                for path in PAGES:
                    async with http.get(f"{srv.url}{path}?month={MONTH}&lang={lang}") as r:
                        assert r.status == 200, path
                        pages[f"{path} {lang}"] = html.unescape(await r.text())
        for name, text in pages.items():
            for v in ALL_VARIANTS:
                assert v not in text, (name, v)
        month_zh, month_en = pages["/month zh"], pages["/month en"]
        for key in ("rated", "satisfied", "band", "below_floor", "unsolicited", "revised_band", "closed"):
            assert TERMS[key][0] in month_zh and TERMS[key][1] in month_en, key
        assert re.search(r"<h1>\s*" + TERMS["anomalies"][0], pages["/anomalies zh"]), "the detection page's title"
        assert TERMS["anomalies"][1] in pages["/anomalies en"]
        # anomalies are not misuse: the page names misuse only in the note that sets the two apart and links
        # to the monthly table, where it is counted
        note = re.search(r'<p class="ops-note" id="misuse-note">(.*?)</p>', pages["/anomalies zh"], re.S)
        assert note and TERMS["misuse"][0] in note.group(1) and f'href="/month?month={MONTH}"' in note.group(1)
        assert TERMS["misuse"][0] not in pages["/anomalies zh"].replace(note.group(0), "")

    serve(store_url, body, policy=Policy(floor=Fraction(98)))


def test_level_words_agree_with_the_default_policy() -> None:
    """Every scale has a word per key; the levels the default policy counts satisfied read as satisfied, its bad
    levels as unsatisfied; a level a scale lacks shows as itself."""
    from collector.report.glossary import LEVEL_NAMES, level_name
    from collector.report.policy import SCALES

    policy = Policy()
    for scale in SCALES:
        assert len(LEVEL_NAMES[scale]) == scale, scale
        for level in range(1, scale + 1):
            zh, en = LEVEL_NAMES[scale][level - 1]
            assert (level_name(level, scale, "zh"), level_name(level, scale, "en")) == (zh, en)
            if level in policy.satisfied[scale]:
                assert "不" not in zh and "Un" not in en, (scale, level, zh, en)
            if level in policy.bad[scale]:
                assert zh.endswith("不满意") and en.endswith("nsatisfied"), (scale, level, zh, en)
    assert level_name(3, 2, "zh") == "3/2"
