"""Page labels in zh-CN (default) and English. ``?lang=en`` switches and sets a cookie.

Words the glossary defines (``collector.report.glossary``: counts, rates,
bands, misuse and anomalies, closing) come from it, under the page's keys
(``GLOSSARY_KEYS``); the page's own words (navigation, forms, cases,
devices) from ``labels.toml``, which must not define a glossary word again.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from collections.abc import Callable
from typing import Any

from collector.report.glossary import TERMS
from collector.report.rates import BANDS

LANGS = ("zh", "en")
# page key -> glossary key, for the page's keys that name a glossary word
GLOSSARY_KEYS: dict[str, str] = {
    **{key: key for key in TERMS},
    **{f"band_{b}": b for b in BANDS},
    "wilson": "wilson_low",
    "kind_below_floor": "below_floor",
    "revisions": "revision",
    "rule_no_invite": "unsolicited",
    "flag_unsolicited": "unsolicited",
}
PAGE_LABELS: dict[str, tuple[str, str]] = {
    key: (zh, en)
    for key, (zh, en) in tomllib.loads(
        importlib.resources.files("collector.web").joinpath("labels.toml").read_text(encoding="utf-8")
    ).items()
}
LABELS: dict[str, tuple[str, str]] = {**PAGE_LABELS, **{key: TERMS[g] for key, g in GLOSSARY_KEYS.items()}}


def label(key: str, lang: str) -> str:
    """The label ``key`` in ``lang`` (the key itself when there is none)."""
    zh, en = LABELS.get(key, (key, key))
    return en if lang == "en" else zh


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **fields)``: the label ``key`` in ``lang`` with ``{fields}`` filled in (as the templates' ``t``)."""

    def t(key: str, **kw: Any) -> str:
        text = label(key, lang)
        return text.format(**kw) if kw else text

    return t
