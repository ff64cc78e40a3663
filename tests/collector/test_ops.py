"""What an operator's tools see: ``/metrics`` that ``promtool`` accepts, ``/healthz`` that notices a dead
broker or a store that cannot commit, ``[health] grace_s`` checked like every other key."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

import protocol
from collector.cli import main
from collector.ingest.pipeline import Pipeline
from collector.ingest.serial import SerialSource
from collector.ingest.settings import SerialConfig
from collector.serve import add_ops_routes
from collector.store import open_store
from protocol import topics
from tests.collector.harness import Box, Collector, broker, free_port, make_store, stored, wait_for, write_config

KEY = bytes(range(32))
D = "BOX-1"
# A serial port name with every character the text format must escape in a label value.
BULK = 2002  # batches of 1000 counted after the real one: past 2,000,000 stored
ODD_PORT = '/dev/serial/by-id/usb-"evalbox"\\01\nx'


class Recorder:
    name = "mqtt"

    def settle(self, tokens: list[object]) -> None:
        pass

    def send(self, device_id: str, kind: str, wire: bytes) -> None:
        pass


def _press(seq: int) -> bytes:
    msg = protocol.make(
        "press", D, b=1, s=seq, ts=int(time.time() * 1000) - 1000, up=10_000 + seq, o="A1", k=1, n=2, i=None, tk=None,
        f=0,
    )  # fmt: skip
    return protocol.encode(msg, KEY)


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool missing: ./dev setup installs it (Debian package prometheus)")
    return found


def test_metrics_past_two_million_events_pass_promtool_with_exact_values(tmp_path: pathlib.Path, promtool: str) -> None:
    async def scrape() -> tuple[str, str]:
        async with open_store(str(tmp_path / "store.db")) as store:
            await store.import_registry(
                units=[("U1", "U", None, None)], windows=[("W1", "U1", "W")], officers=[("A1", "张三", "U1", "W1")]
            )
            await store.add_device(D, "W1", KEY.hex())
            pipe = Pipeline(store, timezone="Asia/Shanghai")
            await pipe.refresh()
            SerialSource(SerialConfig(port=ODD_PORT), pipe)
            src = Recorder()
            now = int(time.time() * 1000)
            # 1000 real presses, two of them again, and garbage: the whole path to the commit.
            items = [(src, topics.uplink(D), _press(s), now, None, False) for s in range(1000)]
            items += [(src, topics.uplink(D), _press(s), now, None, False) for s in (3, 4)]
            items.append((src, topics.uplink(D), b"not json", now, None, False))
            await pipe.write(items)
            pipe.submit(src, topics.uplink(D), _press(5000))  # waiting for the next batch
            # A province's weeks of traffic: the same counting the writer does after each commit.
            for _ in range(BULK):
                pipe.metrics.batch_committed(1000, 999, 1, 0.004, 0.120)
            app = web.Application()
            add_ops_routes(app, pipe, grace_s=30)
            runner = web.AppRunner(app)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    assert r.status == 200
                    return r.headers["Content-Type"], await r.text()
            finally:
                await runner.cleanup()

    content_type, text = asyncio.run(scrape())
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check.stdout + check.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("evalbox_events_stored_total", ())] == 1000 + BULK * 999 == 2_000_998  # every digit
    assert samples[("evalbox_events_duplicate_total", ())] == 2 + BULK
    assert samples[("evalbox_received_total", ())] == 1003
    assert samples[("evalbox_rejected_total", (("reason", "no_mac"),))] == 1
    assert samples[("evalbox_queue_depth", ())] == 1
    assert samples[("evalbox_source_connected", (("source", f"serial:{ODD_PORT}"),))] == 0  # escaped, read back
    assert samples[("evalbox_commit_seconds_count", ())] == 1 + BULK
    assert samples[("evalbox_ingest_lag_seconds_bucket", (("le", "0.25"),))] >= BULK
    assert samples[("evalbox_ingest_lag_seconds_bucket", (("le", "0.1"),))] <= 1


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_healthz_is_503_after_the_grace_period_without_the_broker_and_200_when_it_returns(
    tmp_path: pathlib.Path, promtool: str
) -> None:
    make_store(tmp_path / "store.db", [D])
    port = free_port()
    grace = 3
    extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n\n[health]\ngrace_s = {grace}\n'
    with broker(tmp_path, [D]) as mq:
        col = Collector(write_config(tmp_path, port=mq.port, extra=extra)).start()
        try:
            healthz, readyz = f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{port}/readyz"
            assert _get(healthz) == (200, {"ok": True, "reasons": [], "sources": {"mqtt": True}})
            assert _get(readyz)[0] == 200
            mq.kill()
            killed = time.monotonic()
            wait_for(lambda: _get(readyz)[0] == 503, timeout=10, what="/readyz 503 once the broker is gone")
            assert _get(healthz)[0] == 200  # still within the grace period
            wait_for(lambda: _get(healthz)[0] == 503, timeout=grace + 10, what="/healthz 503")
            assert time.monotonic() - killed >= grace - 0.5
            status, body = _get(healthz)
            assert status == 503 and body["ok"] is False and body["sources"] == {"mqtt": False}
            assert any(r.startswith("mqtt: disconnected for") for r in body["reasons"]), body  # type: ignore[union-attr]
            mq.start()  # same port, same persistence: the broker is back
            wait_for(lambda: _get(healthz)[0] == 200, timeout=60, what="/healthz 200 after the broker returns")
            assert _get(readyz)[0] == 200
            box = Box(D, mq.port)
            try:
                box.publish(box.press(1))
                wait_for(lambda: (1, 1) in box.acked, what="the collector stores again")
            finally:
                box.close()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
            assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr
            assert "evalbox_events_stored_total 1.0" in text and 'evalbox_source_connected{source="mqtt"} 1.0' in text
            assert col.terminate() == 0, col.stderr()
        finally:
            col.kill()


def test_healthz_is_503_while_the_store_cannot_commit(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, [D])
    port = free_port()
    extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n\n[health]\ngrace_s = 1\n'
    with broker(tmp_path, [D]) as mq:
        col = Collector(write_config(tmp_path, port=mq.port, extra=extra)).start()
        box = Box(D, mq.port)
        blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            healthz = f"http://127.0.0.1:{port}/healthz"
            assert _get(healthz)[0] == 200
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock (the commit waits for it)
            box.publish(box.press(1))
            wait_for(lambda: _get(healthz)[0] == 503, timeout=20, what="/healthz 503 while the commit cannot finish")
            status, body = _get(healthz)
            assert status == 503 and body["sources"] == {"mqtt": True}
            assert any(str(r).startswith("store:") for r in body["reasons"]), body  # type: ignore[union-attr]
            assert not box.acked  # nothing acked that is not committed
            blocker.execute("ROLLBACK")
            wait_for(lambda: (1, 1) in box.acked, timeout=60, what="the commit goes through once the lock is gone")
            wait_for(lambda: _get(healthz)[0] == 200, timeout=10, what="/healthz 200 again")
            assert stored(db) == 1
            assert col.terminate() == 0, col.stderr()
        finally:
            blocker.close()
            box.close()
            col.kill()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "health.grace_s: 0 s, expected 1..3600 seconds"),
        ("86400", "health.grace_s: 86400 s, expected 1..3600 seconds"),
        ('"30s"', "health.grace_s: expected a number, got '30s'"),
        ("nan", "health.grace_s: nan s, expected 1..3600 seconds"),
    ],
)
def test_a_bad_grace_period_is_one_line_and_exit_2(
    value: str, message: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, port=1883, extra=f"\n[health]\ngrace_s = {value}\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "store.db").exists()


def test_an_unknown_health_key_names_the_known_ones(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, port=1883, extra="\n[health]\ngrace = 30\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "health.grace: unknown key (known: grace_s)" in capsys.readouterr().err
