"""The operations docs name commands that exist: the systemd unit runs ``evalbox serve`` as documented, and
every ``evalbox …`` line in docs/operations.md and docs/brokers.md parses with the real command line."""

from __future__ import annotations

import configparser
import re
import shlex

import pytest

from collector.cli import build_parser
from tests.conftest import ROOT


def test_systemd_unit_runs_serve_and_does_not_restart_a_refusal() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "docs" / "evalbox.service", encoding="utf-8")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/evalbox")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.config == "/etc/evalbox/evalbox.toml"
    assert service["KillSignal"] == "SIGTERM"  # the drain: commit, ack, disconnect
    assert service["RestartPreventExitStatus"] == "2"  # config errors and a broker without shared subscriptions
    assert "/var/lib/evalbox" in service["ReadWritePaths"] and service["User"] == "evalbox"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _commands(doc: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"&&|;", line):
                part = part.strip()
                if "/bin/evalbox " in part:
                    lines.append(part[part.index("/bin/evalbox ") + len("/bin/") :])
                elif part.startswith("evalbox "):
                    lines.append(part)
    return lines


@pytest.mark.parametrize("doc", ["operations.md", "brokers.md"])
def test_documented_commands_parse(doc: str) -> None:
    commands = _commands(doc)
    assert commands, doc
    parser = build_parser()
    for line in commands:
        argv = shlex.split(re.sub(r"\$\(date [^)]*\)", "2026-12-01", line))[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse's way of refusing
            raise AssertionError(f"{doc}: {line!r} does not parse") from exc
