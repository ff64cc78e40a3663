"""``Deployment`` files with one and with several collectors (no process started)."""

from __future__ import annotations

import asyncio
import pathlib
import tomllib

import pytest

from collector.errors import UsageError
from collector.sim.deploy import Deployment
from collector.sim.run import check_store_options
from collector.sim.traffic import demo_bureau


def _provision(workdir: pathlib.Path, collectors: int = 1) -> Deployment:
    dep = Deployment(workdir, demo_bureau(4, 1, serial_every=2), web_listen="127.0.0.1:0", collectors=collectors)
    asyncio.run(dep.provision())
    return dep


def test_one_collector_keeps_the_layout(tmp_path: pathlib.Path) -> None:
    dep = _provision(tmp_path / "run")
    assert sorted(p.name for p in dep.dir.glob("evalbox*.toml")) == ["evalbox.toml"]
    cfg = tomllib.loads(dep.config_path.read_text(encoding="utf-8"))
    assert cfg["mqtt"]["client_id"] == "evalbox-collector" and "shared_group" not in cfg["mqtt"]
    assert len(cfg["serial"]) == 2 and "web" in cfg
    assert dep.collector_pid is None and not dep.collector_running


def test_two_collectors_share_the_stream_and_collector_0_keeps_serial_and_web(tmp_path: pathlib.Path) -> None:
    dep = _provision(tmp_path / "run", collectors=2)
    assert dep.config_path == dep.dir / "evalbox.toml"
    cfgs = [tomllib.loads(dep.config_path_of(i).read_text(encoding="utf-8")) for i in range(2)]
    assert [c["mqtt"]["client_id"] for c in cfgs] == ["evalbox-collector-0", "evalbox-collector-1"]
    assert {c["mqtt"]["shared_group"] for c in cfgs} == {"collectors"}
    assert cfgs[0]["store"] == cfgs[1]["store"]
    assert len(cfgs[0]["serial"]) == 2 and "web" in cfgs[0]
    assert "serial" not in cfgs[1] and "web" not in cfgs[1] and "metrics" not in cfgs[1]
    assert dep.log_path_of(1) == dep.dir / "collector-1.log"


def test_several_collectors_need_postgresql() -> None:
    check_store_options(None, 1)
    check_store_options("postgresql://u@h/db", 2)
    with pytest.raises(UsageError, match="PostgreSQL"):
        check_store_options(None, 2)
    with pytest.raises(UsageError, match="PostgreSQL"):
        check_store_options("sqlite:///x.db", 3)
