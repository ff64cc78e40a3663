"""``evalbox web --config`` and ``evalbox serve --config`` with ``policy = "policy.toml"``: the page shows the
policy's bands (the same as ``evalbox report``), and the officer drill-down draws the policy's floor and target.

The seeded month (tests/web/seed.py) under the default policy: O2 97.50% below_target, O3 80.00% below_floor.
Under ``floor = 75``, ``target = 97``: O2 met, O3 below_target — a page still on the defaults would differ.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import subprocess
import sys
import time

import aiohttp
import pytest

from collector.store import connect
from tests.conftest import ROOT
from tests.mosquitto import free_port
from tests.web.conftest import PASSWORD, signed_in
from tests.web.seed import MONTH, seed

POLICY_BANDS = {"O1": "met", "O2": "met", "O3": "below_target", "O4": "no_ratings"}


def evalbox(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _deployment(tmp_path: pathlib.Path, store_url: str, port: int) -> pathlib.Path:
    url = store_url if "://" in store_url else f"sqlite:///{store_url}"

    async def fill() -> None:
        async with connect(url) as db:
            await seed(db)

    asyncio.run(fill())
    (tmp_path / "policy.toml").write_text("[rates]\nfloor = 75\ntarget = 97\n", encoding="utf-8")
    cfg = tmp_path / "evalbox.toml"
    cfg.write_text(
        f'policy = "policy.toml"\n[store]\nurl = "{url}"\n[web]\nlisten = "127.0.0.1:{port}"\nscan_interval_s = 0.5\n',
        encoding="utf-8",
    )
    (tmp_path / "pw.txt").write_text(PASSWORD + "\n", encoding="utf-8")
    proc = evalbox("user", "add", "admin", "--role", "admin", "--password-file", "pw.txt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return cfg


async def _page_view(url: str) -> dict[str, object]:
    http, _ = await signed_in(url, "admin")
    async with http:
        async with http.get(f"{url}/api/month?month={MONTH}") as r:
            api = {o["officer"]: o["band"] for o in (await r.json())["officers"]}
        async with http.get(f"{url}/month?month={MONTH}") as r:
            page = dict((o, b) for b, o in re.findall(r'<tr class="row-(\w+)" data-officer="(\w+)">', await r.text()))
        async with http.get(f"{url}/officers/O3?month={MONTH}") as r:
            officer = await r.text()
    floor = re.search(r'<line [^>]*class="floor" data-pct="([\d.]+)"', officer)
    target = re.search(r'<line [^>]*class="target" data-pct="([\d.]+)"', officer)
    header = re.search(r'<b class="band">([^<]+)</b>', officer)
    return {
        "api": api,
        "page": page,
        "floor": floor and floor.group(1),
        "target": target and target.group(1),
        "header": header and header.group(1),
    }


def _wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    async def ping() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        if asyncio.run(ping()):
            return
        time.sleep(0.2)
    raise AssertionError("the web page did not come up")


@pytest.mark.parametrize("command", ["web", "serve"])
def test_page_shows_the_policy_of_the_config(command: str, store_url: str, tmp_path: pathlib.Path) -> None:
    port = free_port()
    cfg = _deployment(tmp_path, store_url, port)
    report = evalbox("report", "--config", str(cfg), "--month", MONTH, "--format", "json", cwd=ROOT)
    assert report.returncode == 0, report.stderr
    assert {o["officer"]: o["band"] for o in json.loads(report.stdout)["officers"]} == POLICY_BANDS
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector.cli", command, "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_up(url, proc)
        seen = asyncio.run(_page_view(url))
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert seen["api"] == POLICY_BANDS
    assert seen["page"] == POLICY_BANDS
    assert (seen["floor"], seen["target"]) == ("75", "97")
    assert seen["header"] == "未达标"  # O3's month under the policy: below target, not below floor
