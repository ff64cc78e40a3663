"""The suite's own rules: PostgreSQL tests never skip for want of a server, and in CI a skip is a failure."""

from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys

from tests.conftest import ROOT
from tests.mosquitto import free_port


def _pytest(*args: str, env: dict[str, str], cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_postgresql_tests_run_on_a_throwaway_cluster_when_no_server_answers() -> None:
    unused = free_port()
    env = dict(os.environ, EVALBOX_TEST_POSTGRES=f"postgresql://postgres@127.0.0.1:{unused}/postgres", CI="true")
    proc = _pytest("-v", "tests/report/test_postgres.py", env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"test_migrations_recorded_once_and_types PASSED", out), out
    assert re.search(r"test_rebuild_waits_for_an_ingest_batch_in_flight PASSED", out), out
    assert "skipped" not in out.lower(), out
    m = re.search(r"no PostgreSQL server at \S+:(\d+)/postgres .*throwaway cluster at \S+:(\d+)/postgres", out)
    assert m and int(m.group(1)) == unused, out
    with socket.socket() as s:  # the cluster was stopped when the session ended
        assert s.connect_ex(("127.0.0.1", int(m.group(2)))) != 0


def test_a_skipped_test_fails_when_ci_is_true(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_needs_a_part.py").write_text(
        "import pytest\n\ndef test_part():\n    pytest.skip('widget missing: ./dev setup installs it')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    local = _pytest("-p", "tests.conftest", "-rs", str(tmp_path), env=env)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout + local.stderr
    ci = _pytest("-p", "tests.conftest", str(tmp_path), env=dict(env, CI="true"))
    assert ci.returncode == 1 and "1 failed" in ci.stdout, ci.stdout + ci.stderr
    assert "CI=true makes a skip a failure: widget missing: ./dev setup installs it" in ci.stdout
