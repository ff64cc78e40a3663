"""Page labels in zh-CN (default) and English (``labels.toml``). ``?lang=en`` switches and sets a cookie."""

from __future__ import annotations

import importlib.resources
import tomllib

LANGS = ("zh", "en")
LABELS: dict[str, tuple[str, str]] = {
    key: (zh, en)
    for key, (zh, en) in tomllib.loads(
        importlib.resources.files("collector.web").joinpath("labels.toml").read_text(encoding="utf-8")
    ).items()
}


def label(key: str, lang: str) -> str:
    """The label ``key`` in ``lang`` (the key itself when there is none)."""
    zh, en = LABELS.get(key, (key, key))
    return en if lang == "en" else zh
