"""``evalbox serve`` with the web page mounted, /metrics, retained box configs, shared subscriptions."""

from __future__ import annotations

import contextlib
import pathlib
import re
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from protocol import topics
from tests.collector.harness import (
    Box,
    Collector,
    broker,
    free_port,
    key_of,
    make_store,
    stored,
    wait_for,
    write_config,
)
from tests.conftest import ROOT


def _get(url: str) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: object, **k: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_serve_mounts_web_metrics_and_publishes_configs(tmp_path: pathlib.Path) -> None:
    make_store(tmp_path / "store.db", ["BOX-1"])
    port = free_port()
    with broker(tmp_path, ["BOX-1"]) as mq:
        cfg = write_config(
            tmp_path, port=mq.port, extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\nscan_interval_s = 1.0\n'
        )
        col = Collector(cfg).start()
        box = Box("BOX-1", mq.port)
        got: list[dict[str, object]] = []
        ready = threading.Event()

        def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
            got.append(protocol.decode(bytes(m.payload), key_of("BOX-1"), "BOX-1"))

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cfg-reader")
        sub.username_pw_set("BOX-1", "pw-BOX-1")
        sub.on_message = on_message
        sub.on_connect = lambda c, u, f, rc, p: (c.subscribe(topics.config("BOX-1"), qos=1), ready.set())
        sub.connect("127.0.0.1", mq.port)
        sub.loop_start()
        try:
            wait_for(lambda: got, what="the retained signed config")
            assert got[0]["t"] == "config" and got[0]["w"] == "W1"
            box.publish(box.press(1))
            wait_for(lambda: (1, 1) in box.acked, what="ack")
            status, body = _get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200 and '"ok": true' in body
            status, body = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and "evalbox_events_stored_total 1" in body
            assert 'evalbox_source_connected{source="mqtt"} 1' in body
            assert _get(f"http://127.0.0.1:{port}/month")[0] == 303  # the page is mounted, behind its login
            proc = subprocess.run(
                [sys.executable, "-m", "collector.cli", "status", "--config", str(cfg)],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert "mqtt: 1" in proc.stdout and "events_stored_total 1" in proc.stdout
            assert col.terminate() == 0, col.stderr()
            with contextlib.closing(sqlite3.connect(tmp_path / "store.db")) as con:  # the policy, taking effect
                audited = con.execute("SELECT actor, action, subject FROM audit_log").fetchall()
            assert audited == [("system", "policy.in_force", "policy")]
        finally:
            sub.loop_stop()
            box.close()
            col.kill()


def test_two_collectors_share_the_subscription(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["BOX-1"])
    with broker(tmp_path, ["BOX-1"]) as mq:
        cols = []
        for i in range(2):
            d = tmp_path / f"c{i}"
            d.mkdir()
            cfg = write_config(d, port=mq.port)
            text = cfg.read_text().replace('client_id = "collector-test"', f'client_id = "c{i}"\nshared_group = "g"')
            cfg.write_text(text.replace("sqlite:///store.db", f"sqlite:///{db}"))
            cols.append(Collector(cfg).start())
        box = Box("BOX-1", mq.port)
        try:
            for c in cols:
                wait_for(lambda c=c: "MQTT subscribed" in c.stderr(), what="both connected")
            for s in range(200):
                box.publish(box.press(s))
            wait_for(lambda: len(box.acked) == 200, what="200 acks")
            outs = []
            for c in cols:
                assert c.terminate() == 0, c.stderr()
                outs.append("".join(c.out))
            assert stored(db) == 200
            counts = [int(re.search(r"stored (\d+)", o).group(1)) for o in outs]  # type: ignore[union-attr]
            assert sum(counts) == 200 and min(counts) > 0  # the broker split the stream; each event stored once
        finally:
            box.close()
            for c in cols:
                c.kill()
