"""What the commands share: ``--config``/``--db``/``--policy`` and the one loader, a progress bar, output.

Every command that reads or writes the store takes ``--config FILE`` (default
``./evalbox.toml`` when it exists) and ``--db URL``, and finds the store and
the policy through ``collector.config.load`` — the same way for all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import pathlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from collector.config import DEFAULT_CONFIG, Config, load
from collector.store import Database

T = TypeVar("T")


def os_user() -> str:
    """Who runs the command (the OS login), for the audit trail; ``unknown`` where there is none."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def store_options(p: argparse.ArgumentParser, *, policy: bool = False) -> argparse.ArgumentParser:
    """Add ``--config``, ``--db`` (and ``--policy``) to a command."""
    p.add_argument("--config", metavar="FILE", help=f"evalbox.toml (default ./{DEFAULT_CONFIG} when it exists)")
    p.add_argument("--db", metavar="URL", help="the store: sqlite:///PATH, postgresql://…, or an SQLite file path")
    if policy:
        p.add_argument("--policy", metavar="FILE", help="policy TOML instead of the config's (docs/policy.md)")
    return p


def config_of(args: argparse.Namespace) -> Config:
    """The command's configuration from its ``--config``, ``--db`` and ``--policy``, checked before anything opens."""
    return load(getattr(args, "config", None), getattr(args, "db", None), getattr(args, "policy", None))


def with_db(config: Config, job: Callable[[Database], Awaitable[T]], *, must_exist: bool = True) -> T:
    """Run ``job`` on the configured store (migrated; ``must_exist``: never a new store) and return its result."""

    async def main() -> T:
        async with config.database(must_exist=must_exist) as db:
            return await job(db)

    return asyncio.run(main())


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


def fmt_local_ms(ms: int | None, timezone: str) -> str:
    """An epoch-ms time as ``YYYY-MM-DD HH:MM`` in ``timezone`` (``-`` for none)."""
    import datetime as dt

    from collector.timeplace import zone

    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=zone(timezone)).strftime("%Y-%m-%d %H:%M")


def print_table(columns: list[tuple[str, int]], rows: list[list[str]], empty: str) -> None:
    """A plain-text table on stdout: ``(heading, width)`` per column (a negative width aligns right); ``empty``
    is printed when there are no rows."""

    def line(cells: list[str]) -> str:
        return " ".join(f"{c:>{-w}}" if w < 0 else f"{c:<{w}}" for c, (_, w) in zip(cells, columns, strict=True))

    print(line([h for h, _ in columns]).rstrip())
    for r in rows:
        print(line(r).rstrip())
    if not rows:
        print(empty)
