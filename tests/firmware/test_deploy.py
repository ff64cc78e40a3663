"""What goes onto a board: the mpy-cross tree (tools/build_box.sh) and the frozen build (tools/manifest.py)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from tests.conftest import ROOT


def _deployed_modules(build: pathlib.Path) -> set[str]:
    """Module paths in the deploy tree (``firmware/app``), whatever their suffix."""
    return {str(p.relative_to(build).with_suffix("")) for p in build.rglob("*.*") if p.suffix in (".mpy", ".py")}


def _frozen_modules(board_has_manifest: bool) -> tuple[set[str], list[str], list[str]]:
    """Run tools/manifest.py as MicroPython's manifest runner does (cwd = its directory, same functions)."""
    tools = ROOT / "tools"
    frozen: set[str] = set()
    included: list[str] = []
    required: list[str] = []

    def include(path: str, **kw: Any) -> None:
        if path.startswith("$(BOARD_DIR)") and not board_has_manifest:
            raise FileNotFoundError(path)  # what manifestfile.include raises (wrapped) for a missing file
        included.append(path)

    def require(name: str, version: str | None = None, **kw: Any) -> None:
        required.append(name)

    def package(package_path: str, files: list[str] | None = None, base_path: str = ".", opt: Any = None) -> None:
        root = (tools / base_path / package_path).resolve()
        names = files if files is not None else [str(p.relative_to(root)) for p in root.rglob("*.py")]
        for name in names:
            assert (root / name).is_file(), f"manifest names {package_path}/{name}, which does not exist"
            frozen.add(f"{package_path}/{name}".removesuffix(".py"))

    code = (tools / "manifest.py").read_text()
    runner = {"include": include, "require": require, "package": package}
    exec(compile(code, str(tools / "manifest.py"), "exec"), runner)
    return frozen, included, required


@pytest.mark.parametrize("board_has_manifest", [True, False])
def test_manifest_freezes_what_deploy_copies(firmware_build: pathlib.Path, board_has_manifest: bool) -> None:
    frozen, included, required = _frozen_modules(board_has_manifest)
    deployed = _deployed_modules(firmware_build) - {"main"}  # /main.py is copied in both cases
    assert frozen == deployed, (sorted(frozen - deployed), sorted(deployed - frozen))
    assert included == (["$(BOARD_DIR)/manifest.py"] if board_has_manifest else ["$(PORT_DIR)/boards/manifest.py"])
    assert required == ["ntptime"]
    assert not any("sim" in m.split("/")[-1] for m in frozen)  # the unix-port sim stays out of a board


def test_deploy_tree_is_compiled_except_the_entry_point(firmware_build: pathlib.Path) -> None:
    sources = sorted(str(p.relative_to(firmware_build)) for p in firmware_build.rglob("*.py"))
    assert sources == ["firmware/main.py", "main.py"]
    assert (firmware_build / "main.py").read_text() == "import firmware.main  # evalbox\n"
    assert (firmware_build / "firmware" / "ports.mpy").stat().st_size > 0
