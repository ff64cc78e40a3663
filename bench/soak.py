"""Soak: the collector under 100× a province's press rate for a while; memory and event-loop lag over time.

    .venv/bin/python bench/soak.py                  # 10 minutes at 100× (≈ 63 presses/s), 100 boxes
    .venv/bin/python bench/soak.py --minutes 60 --factor 200

A province is ~20,000,000 presses a year, 0.63/s on average;
``--factor`` multiplies that. The broker (mosquitto with the generated
passwords and ACL) and the collector (``evalbox serve`` with ``/metrics``)
are the real ones, on a temporary SQLite store. The boxes here are
protocol-level boxes in CPython (signed events at QoS 1 on their own MQTT
logins, resent until acked): the real-firmware fleet (``evalbox sim``) tops
out near 40 presses/s on two cores, below this rate, and its interpreters
would share the CPU with the collector being measured.

Every ``--sample-s`` seconds it prints the collector's RSS (``/proc``), its
event-loop lag p99 over the last minute (``evalbox_loop_lag_p99_seconds``),
stored events, the ingest lag, the blocks held by Python objects
(``evalbox_python_allocated_blocks``) and SQLite's memory
(``evalbox_sqlite_memory_bytes``). Growth is the last sample minus the first
sample after warm-up (the first 20% of the run).

SQLite's page cache is allowed to grow to ``cache_size`` (64 MB): as the
file grows, its new pages stay cached, so RSS rises with the database for
hours before it levels off. That is a bound, not a leak; a leak shows in the
Python blocks or in RSS once SQLite's share is taken out, and both are
printed.

Last line: JSON ``{"minutes", "rss_growth_mb", "loop_lag_p99_ms",
"rss_growth_without_sqlite_mb", "sqlite_growth_mb", "python_blocks_growth"}``
(the lag is the worst per-minute p99 seen).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import random
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402

import protocol  # noqa: E402
from collector.sim.deploy import Deployment, cancelled_by_sigterm, free_port  # noqa: E402
from collector.sim.traffic import demo_bureau  # noqa: E402
from protocol import topics  # noqa: E402

PROVINCE_PER_S = 20_000_000 / (365 * 86400)


class Box:
    """A protocol-level box: signed events at QoS 1, resent until the collector's signed ack names them."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.id: str = cfg["device_id"]
        self.key = bytes.fromhex(cfg["key_hex"])
        self.seq = 0
        self.unacked: dict[int, tuple[float, bytes]] = {}
        self.acked = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-{self.id}")
        self.client.username_pw_set(cfg["broker_user"], cfg["broker_password"])
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.ack(self.id), qos=1)
        self.client.on_message = self._on_ack
        self.client.connect(cfg["broker_host"], cfg["broker_port"])
        self.client.loop_start()

    def _on_ack(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ack = protocol.decode(bytes(msg.payload), self.key, self.id)
        with self.lock:
            for boot, first, last in ack["r"]:
                if boot != 1:
                    continue
                for s in range(first, last + 1):
                    if self.unacked.pop(s, None) is not None:
                        self.acked += 1

    def press(self, officer: str) -> None:
        now = int(time.time() * 1000)
        msg = protocol.make(protocol.PRESS, self.id, b=1, s=self.seq, ts=now, up=now % 2**40, o=officer,
                            k=1 if random.random() < 0.97 else 2, n=2, i=None, tk=None, f=1)  # fmt: skip
        wire = protocol.encode(msg, self.key)
        with self.lock:
            self.unacked[self.seq] = (time.monotonic(), wire)
        self.seq += 1
        self.client.publish(topics.uplink(self.id), wire, qos=1)

    def resend(self, older_s: float = 10.0) -> None:
        now = time.monotonic()
        with self.lock:
            late = [(s, w) for s, (t, w) in self.unacked.items() if now - t > older_s]
            for s, w in late:
                self.unacked[s] = (now, w)
        for _, w in late:
            self.client.publish(topics.uplink(self.id), w, qos=1)


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(listen: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--factor", type=float, default=100.0, help="times a province's average press rate")
    ap.add_argument("--boxes", type=int, default=100)
    ap.add_argument("--sample-s", type=float, default=15.0)
    ap.add_argument("--dir", help="working directory (default: a temporary one)")
    args = ap.parse_args()
    rate = PROVINCE_PER_S * args.factor
    workdir = pathlib.Path(args.dir or tempfile.mkdtemp(prefix="evalbox-soak-")) / "run"
    listen = f"127.0.0.1:{free_port()}"
    bureau = demo_bureau(args.boxes, 1, serial_every=0)
    dep = Deployment(workdir, bureau, metrics_listen=listen)
    await dep.provision()
    with cancelled_by_sigterm():
        return await _soak(args, rate, workdir, listen, bureau, dep)


async def _soak(
    args: argparse.Namespace, rate: float, workdir: pathlib.Path, listen: str, bureau: Any, dep: Deployment
) -> int:
    dep.start_broker()
    try:
        await dep.start_collector()
        boxes = [Box(json.loads((workdir / "boxes" / f"{w.device_id}.json").read_text())) for w in bureau.windows]
        officers = {w.device_id: w.shifts[0] for w in bureau.windows}
        print(f"soak: {args.minutes:g} min at {rate:.1f} presses/s ({args.factor:g}× a province), {len(boxes)} boxes")
        print(f"{'t_min':>6} {'rss_mb':>8} {'sqlite_mb':>9} {'py_blocks':>9} {'lag_p99_ms':>10} {'stored':>9} "
              f"{'acked':>9} {'ingest_lag_ms':>13}")  # fmt: skip
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_sample = t0 + args.sample_s
        samples: list[tuple[float, float, float, float, float]] = []
        sent = 0
        pid = dep.collector_pid
        assert pid is not None
        while time.monotonic() < end:
            due = int((time.monotonic() - t0) * rate)
            while sent < due:
                box = boxes[sent % len(boxes)]
                box.press(officers[box.id])
                sent += 1
            if time.monotonic() >= next_sample:
                next_sample += args.sample_s
                for box in boxes:
                    box.resend()
                m = scrape(listen)
                t_min = (time.monotonic() - t0) / 60
                rss = rss_mb(pid)
                lag = m.get("evalbox_loop_lag_p99_seconds", 0.0) * 1000
                lite = m.get("evalbox_sqlite_memory_bytes", 0.0) / 2**20
                blocks = m.get("evalbox_python_allocated_blocks", 0.0)
                samples.append((t_min, rss, lag, lite, blocks))
                acked = sum(b.acked for b in boxes)
                print(f"{t_min:6.1f} {rss:8.1f} {lite:9.1f} {blocks:9.0f} {lag:10.1f} "
                      f"{int(m.get('evalbox_events_stored_total', 0)):9d} {acked:9d} "
                      f"{m.get('evalbox_lag_seconds', 0) * 1000:13.0f}", flush=True)  # fmt: skip
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(b.unacked for b in boxes):
            for box in boxes:
                box.resend(older_s=2.0)
            await asyncio.sleep(1)
        unacked = sum(len(b.unacked) for b in boxes)
        for box in boxes:
            box.client.loop_stop()
            box.client.disconnect()
    finally:
        await dep.stop_collector()
        dep.kill_broker()
    con = sqlite3.connect(workdir / "evalbox.db")
    stored = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    con.close()
    warm = [s for s in samples if s[0] >= args.minutes * 0.2] or samples
    growth = warm[-1][1] - warm[0][1] if warm else 0.0
    lite_growth = warm[-1][3] - warm[0][3] if warm else 0.0
    blocks_growth = warm[-1][4] - warm[0][4] if warm else 0.0
    worst_lag = max((s[2] for s in samples), default=0.0)
    print(f"sent {sent}, stored {stored}, unacked at the end {unacked}; RSS after warm-up {warm[0][1]:.1f} MB → "
          f"{warm[-1][1]:.1f} MB ({growth:+.1f} MB), of which SQLite's page cache {lite_growth:+.1f} MB "
          f"(bounded by cache_size); Python blocks {blocks_growth:+.0f}; "
          f"worst per-minute loop lag p99 {worst_lag:.1f} ms")  # fmt: skip
    figures = {
        "minutes": args.minutes,
        "rss_growth_mb": round(growth, 2),
        "loop_lag_p99_ms": round(worst_lag, 1),
        "rss_growth_without_sqlite_mb": round(growth - lite_growth, 2),
        "sqlite_growth_mb": round(lite_growth, 2),
        "python_blocks_growth": int(blocks_growth),
    }
    print(json.dumps(figures))
    return 0 if stored == sent and unacked == 0 else 1


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C or SIGTERM: everything started is stopped
        raise SystemExit(130) from None
