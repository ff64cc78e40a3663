"""What the commands share on the terminal: a progress bar, writing a document to a file or stdout."""

from __future__ import annotations

import pathlib
import sys
from typing import Any


def progress_bar(
    done: int, total: int, label: str, *, stream: Any = None, width: int = 30, title: str = "rebuild"
) -> None:
    """One-line progress bar on stderr (redrawn with ``\\r`` on a terminal)."""
    out = stream or sys.stderr
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    end = "\n" if done == total or not out.isatty() else ""
    out.write(f"\r{title} [{bar}] {done}/{total} {label}{end}")
    out.flush()


def write_output(data: bytes, output: str | None) -> None:
    """``data`` to the file ``output``, or to stdout."""
    if output:
        pathlib.Path(output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
