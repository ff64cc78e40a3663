"""The report docs name every policy key, every JSON field and every command."""

from __future__ import annotations

import dataclasses

from collector.cli import build_parser
from collector.report.policy import Policy
from collector.report.render import line_json
from tests.conftest import ROOT


def test_policy_doc_names_every_key() -> None:
    doc = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    for field in dataclasses.fields(Policy):
        assert f"{field.name}`" in doc or f".{field.name}" in doc, field.name


def test_json_doc_names_every_officer_field() -> None:
    from collector.report.monthly import make_line
    from collector.report.rates import Tally

    doc = (ROOT / "docs" / "report-json.md").read_text(encoding="utf-8")
    line = make_line("A1", "张三", "U1", "W1", Tally(), Policy())
    for key in line_json(line, "officer"):
        assert f"`{key}`" in doc, key


def test_readme_names_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"evalbox {name}" in readme, name
