"""A throwaway PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` on a free port in a temporary directory.

    with PostgresCluster() as pg:
        pg.url  # postgresql://postgres@127.0.0.1:<port>/postgres (trust authentication)

Used by the ``postgres_server`` fixture when no server answers at ``EVALBOX_TEST_POSTGRES``: the
PostgreSQL half of the suite then runs against this cluster instead of being skipped. The binaries come
from Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``; ``./dev setup`` installs
it). PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
Durability is off (``fsync``, ``synchronous_commit``): nothing in it outlives the test session.
"""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
from types import TracebackType
from typing import Any

from tests.mosquitto import free_port


class PostgresMissing(RuntimeError):
    """No ``initdb``/``pg_ctl`` on this machine."""


def postgres_bin(name: str) -> str:
    """``name`` (``initdb``, ``pg_ctl``) from PATH or the newest ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        (p for p in pathlib.Path("/usr/lib/postgresql").glob("*/bin") if (p / name).exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise PostgresMissing(f"{name} not found: ./dev setup installs Debian's postgresql package")
    return str(versions[-1] / name)


class PostgresCluster:
    """One PostgreSQL server of its own: started by ``start``, stopped and deleted by ``stop``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.dir: pathlib.Path | None = None
        self._as: dict[str, Any] = {}

    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir, **self._as)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}{self.log()}")
        return proc

    def start(self) -> None:
        initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="evalbox-pg-"))
        if os.geteuid() == 0:  # initdb and postgres refuse root: the cluster is the postgres user's
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        data = self.dir / "data"
        self._run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(pg_ctl, "-D", str(data), "-l", str(self.dir / "server.log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            if (self.dir / "data" / "postmaster.pid").exists():
                self._run(postgres_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def log(self) -> str:
        path = self.dir / "server.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
