"""Test helpers for firmware updates: releases built from a patched copy of this checkout, a box that resets.

``release_from`` compiles (mpy-cross) and signs a copy of this checkout's
``firmware/`` and ``protocol/`` with its ``FW_VERSION`` changed (so the status
shows which code runs) and any other source edits a test wants (a broken
self-test). ``ResettingBox`` is a sim box whose process is started again
whenever it exits, as a board resets: after an update (the sim's reset exits
with status 75), a crash, or a rollback.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.fleet.release import ReleaseSpec, pack
from collector.fleet.tree import compile_tree, mpy_version
from tests.conftest import ROOT
from tests.firmware.simbox import SimBox

BUILT = "2026-12-01T00:00:00Z"


def release_from(
    tmp: pathlib.Path,
    key: Ed25519PrivateKey,
    version: str,
    *,
    min_version: str = "0.0.0",
    board: str = "sim",
    edits: dict[str, tuple[str, str]] | None = None,
) -> bytes:
    src = tmp / f"src-{version}-{board}-{time.monotonic_ns()}"
    for pkg in ("firmware", "protocol"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    app = src / "firmware" / "app.py"
    text = app.read_text()
    old = 'FW_VERSION = "evalbox-fw 0.1.0"'
    assert old in text
    app.write_text(text.replace(old, f'FW_VERSION = "evalbox-fw {version}"'))
    for rel, (a, b) in (edits or {}).items():
        p = src / rel
        t = p.read_text()
        assert a in t, (rel, a)
        p.write_text(t.replace(a, b))
    files = compile_tree(src, board)
    spec = ReleaseSpec(version=version, board=board, min_version=min_version)
    return pack(files, spec, key, mpy=mpy_version(files), built=BUILT)


class ResettingBox(SimBox):
    """A sim box whose process is started again when it exits (a reset); ``boots`` counts the starts."""

    def __init__(self, tmp: pathlib.Path, cfg: dict[str, Any], **kw: Any) -> None:
        super().__init__(tmp, cfg, **kw)
        self.boots = 0
        self.exits: list[int] = []
        self.lock = threading.Lock()
        self._stop = False
        self._watch: threading.Thread | None = None

    def start(self) -> ResettingBox:
        with self.lock:
            super().start()
            self.boots += 1
        if self._watch is None:
            self._watch = threading.Thread(target=self._watcher, daemon=True)
            self._watch.start()
        return self

    def _watcher(self) -> None:
        while not self._stop:
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stop:
                self.exits.append(proc.returncode)
                try:
                    proc.communicate(timeout=5)  # drain the pipes of the process that ended
                except (subprocess.TimeoutExpired, ValueError):
                    pass
                if self.sock:
                    self.sock.close()
                    self.sock = None
                try:
                    self.start()
                except AssertionError:
                    time.sleep(0.5)
            time.sleep(0.05)

    def try_cmd(self, line: str) -> dict[str, Any] | None:
        """A control command, or None while the box is resetting."""
        with self.lock:
            try:
                if self.file is None or self.sock is None:
                    return None
                return self.cmd(line)
            except (OSError, AssertionError, ValueError):
                return None

    def kill(self) -> None:
        self._stop = True
        super().kill()
