"""Golden vectors and RFC 4231 on CPython and on the real MicroPython interpreter."""

from __future__ import annotations

import os
import re

from tests.conftest import ROOT, run_micropython
from tests.protocol import vector_check


def test_vectors_on_cpython() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        ok, fails = vector_check.run()
    finally:
        os.chdir(cwd)
    assert fails == []
    assert ok >= 146  # 7 RFC cases + 5 checks x 21 messages (7 of the firmware channel) + 4 frames + invalid


def test_vectors_on_micropython() -> None:
    proc = run_micropython("tests/protocol/vector_check.py")
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"vectors: (\d+) passed, (\d+) failed", last)
    assert m, proc.stdout
    assert m.group(2) == "0", proc.stdout
    assert int(m.group(1)) >= 146


def test_micropython_is_really_micropython() -> None:
    import subprocess

    from tests.conftest import micropython_path

    proc = subprocess.run(
        [micropython_path(), "-c", "import sys; print(sys.implementation.name)"], capture_output=True, text=True
    )
    assert proc.stdout.strip() == "micropython"
