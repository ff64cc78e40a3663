"""Benchmark: signed events through mosquitto into the collector, durable and acked; vs a bare paho subscriber.

    .venv/bin/python bench/ingest.py                          # 100,000 events, 8 publishers
    .venv/bin/python bench/ingest.py --events 20000 --publishers 4 --rate 1000
    .venv/bin/python bench/ingest.py --store postgresql://postgres@127.0.0.1/evalbox_bench --collectors 1 2

A real mosquitto (config, passwords and ACL from ``evalbox broker-config``)
and the real ``evalbox serve`` process on a temporary SQLite store (or
``--store URL``). M publisher processes, each a box with its own login,
publish pre-signed events at QoS 1 and count the signed acks they receive.

1. **raw**: the N events are queued in the broker for a bare paho subscriber
   (persistent session, QoS 1, paho's own loop); it then drains them. Rate =
   N / (last − first message received).
2. **collector**: the same N (new identities) are queued for the collector's
   persistent session; the collector starts and drains them: stored in SQLite
   (``synchronous=FULL``) and acked. Rate = N / (last − first ack received by
   the publishers); the store is checked to hold exactly N events.
3. **latency**: the running collector at ``--rate`` events/s in total: each
   event's ``ts`` is its press (send) time; press → ack received by the box
   is an upper bound of press → commit. p50/p99 of that.

4. **scale-out** (``--collectors 1 2``): the drain of step 2 again with N
   collectors in one shared-subscription group (``$share/…``, one
   persistent session each) writing the same store, for each N, in the same
   run: fresh identities each time. Rate = N events / (last − first ack).

Last line: JSON ``{"events_per_s", "raw_paho_per_s", "ratio", "p50_ms", "p99_ms"}``; with ``--collectors``
also ``"store"``, ``"events_per_s_<N>"`` for each N and ``"ratio_2_to_1"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

import protocol  # noqa: E402
from collector.ingest.provision import broker_files, set_broker_password  # noqa: E402
from collector.store import open_store  # noqa: E402
from protocol import topics  # noqa: E402

COLLECTOR = ("collector", "bench-collector-pw")
T0 = 1_790_000_000_000


def officer_of(device: str) -> str:
    return "A-" + device


def key_of(device: str) -> bytes:
    return (device.encode() * 32)[:32]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_bin() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and os.path.exists(cand):
            return cand
    raise SystemExit("mosquitto not found: ./dev setup installs it")


def wait_until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise SystemExit(f"bench: timed out waiting for {what}")


# ---- publisher processes (one box each) ----


def publisher(
    device: str, port: int, boot: int, count: int, rate: float, want_acks: bool, published: Any, results: Any
) -> None:
    """Publish ``count`` events (pre-signed unless paced), wait for PUBACKs, then (optionally) for every ack."""
    key = key_of(device)
    officer = officer_of(device)
    sent: dict[int, float] = {}
    lat: list[float] = []
    acked: set[int] = set()
    first_last = [0.0, 0.0]
    done = threading.Event()
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(topics.ack(device), qos=1)

    def on_subscribe(c: mqtt.Client, u: Any, mid: Any, rc: Any, p: Any) -> None:
        subscribed.set()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        m = protocol.decode(bytes(msg.payload), key, device)
        if not first_last[0]:
            first_last[0] = now
        first_last[1] = now
        for b, lo, hi in m["r"]:
            if b != boot:
                continue
            for s in range(lo, hi + 1):
                if s not in acked:
                    acked.add(s)
                    if s in sent:
                        lat.append((now - sent[s]) * 1000)
        if len(acked) >= count:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{device}-{boot}", clean_session=True)
    c.username_pw_set(device, f"pw-{device}")
    c.max_inflight_messages_set(5000)
    c.max_queued_messages_set(0)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    subscribed.wait(30)
    topic = topics.uplink(device)
    infos = []
    if rate <= 0:
        payloads = [
            protocol.encode(
                protocol.make("press", device, b=boot, s=s, ts=T0 + s, up=s, o=officer, k=1 + s % 2, n=2, i=None,
                              tk=None, f=0),
                key,
            )
            for s in range(count)
        ]  # fmt: skip
        for p in payloads:
            infos.append(c.publish(topic, p, qos=1))
    else:
        start = time.time()
        for s in range(count):
            due = start + s / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            p = protocol.encode(
                protocol.make("press", device, b=boot, s=s, ts=int(now * 1000), up=s, o=officer, k=1, n=2,
                              i=None, tk=None, f=0),
                key,
            )  # fmt: skip
            sent[s] = now
            infos.append(c.publish(topic, p, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    published.set()
    if want_acks:
        done.wait(float(os.environ.get("BENCH_ACK_WAIT_S", "600")))
    c.disconnect()
    c.loop_stop()
    results.put((device, len(acked), first_last[0], first_last[1], lat))


def run_publishers(
    devices: list[str], port: int, boot: int, per: int, rate: float, want_acks: bool
) -> tuple[list[Any], list[Any], Any]:
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    procs, events = [], []
    for d in devices:
        ev = ctx.Event()
        p = ctx.Process(target=publisher, args=(d, port, boot, per, rate, want_acks, ev, results), daemon=True)
        p.start()
        procs.append(p)
        events.append(ev)
    return procs, events, results


def collect(procs: list[Any], results: Any) -> list[Any]:
    out = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(30)
    return out


# ---- the raw paho subscriber ----


def raw_drain(port: int, total: int, devices: list[str], per: int) -> float:
    """Queue ``total`` events for a persistent paho session, then drain them; messages per second."""
    got = [0, 0.0, 0.0]
    ready = threading.Event()
    finished = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(topics.all_uplinks(), qos=1)

    def on_subscribe(c: mqtt.Client, u: Any, mid: Any, rc: Any, p: Any) -> None:
        ready.set()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not got[0]:
            got[1] = now
        got[0] += 1
        got[2] = now
        if got[0] >= total:
            finished.set()

    def client() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", clean_session=False)
        c.username_pw_set(*COLLECTOR)
        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        return c

    c = client()
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(30)
    c.disconnect()
    c.loop_stop()
    procs, events, results = run_publishers(devices, port, 1, per, 0, False)
    for ev in events:
        ev.wait(600)
    c = client()
    c.connect("127.0.0.1", port)
    c.loop_start()
    finished.wait(600)
    c.disconnect()
    c.loop_stop()
    collect(procs, results)
    # Drop the session so later phases queue nothing for it.
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", clean_session=True)
    c.username_pw_set(*COLLECTOR)
    c.connect("127.0.0.1", port)
    c.disconnect()
    return got[0] / max(got[2] - got[1], 1e-9)


# ---- the collector ----


class Collector:
    def __init__(self, config: pathlib.Path) -> None:
        self.config = config
        self.log = config.parent / "collector.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        self._subscribed = self.log.read_text(errors="replace").count("MQTT subscribed") if self.log.exists() else 0
        self._log = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "serve", "--config", str(self.config)],
            cwd=pathlib.Path(__file__).resolve().parents[1],
            stdout=self._log,
            stderr=self._log,
        )
        if wait:
            self.wait_subscribed()

    def wait_subscribed(self) -> None:
        n = self._subscribed
        wait_until(lambda: self.log.read_text(errors="replace").count("MQTT subscribed") > n, 60, "collector connect")

    def stop(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self._log.close()
        if rc != 0:
            raise SystemExit(f"collector exited {rc}: {self.log.read_text()[-2000:]}")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--publishers", type=int, default=8)
    ap.add_argument("--store", help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency run (0: skip it)")
    ap.add_argument("--latency-events", type=int, default=10_000)
    ap.add_argument("--dir", help="working directory, kept (default: a temporary one, removed)")
    ap.add_argument(
        "--collectors",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also drain with N collectors sharing the stream",
    )
    args = ap.parse_args()
    if any(n < 1 or n > 8 for n in args.collectors):
        ap.error("--collectors: 1 to 8")
    m = args.publishers
    per = max(1, args.events // m)
    total = per * m
    devices = [f"BENCH-{i:03d}" for i in range(m)]
    tmp = pathlib.Path(args.dir) if args.dir else pathlib.Path(tempfile.mkdtemp(prefix="evalbox-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    broker = None
    try:
        port = free_port()
        broker_files(
            tmp / "broker", collector_user=COLLECTOR[0], collector_password=COLLECTOR[1], port=port, bind="127.0.0.1"
        )
        for d in devices:
            set_broker_password(tmp / "broker" / "passwd", d, f"pw-{d}")
        conf = (tmp / "broker" / "mosquitto.conf").read_text()
        if os.geteuid() == 0:
            conf += "user root\n"
        (tmp / "broker" / "mosquitto.conf").write_text(conf)
        broker = subprocess.Popen(
            [mosquitto_bin(), "-c", str(tmp / "broker" / "mosquitto.conf")], stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)
        store_url = args.store or f"sqlite:///{tmp / 'bench.db'}"

        async def provision() -> None:
            async with open_store(store_url) as store:
                # One window and officer per box, as in a bureau (batches of different collectors then
                # update mostly different rollup rows).
                await store.import_registry(
                    units=[("U1", "U", None, None)],
                    windows=[(f"W-{d}", "U1", d) for d in devices],
                    officers=[(officer_of(d), d, "U1", f"W-{d}") for d in devices],
                )
                for d in devices:
                    await store.add_device(d, f"W-{d}", key_of(d).hex(), replace=True)

        asyncio.run(provision())
        cfg = tmp / "evalbox.toml"
        cfg.write_text(
            f'[store]\nurl = "{store_url}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nusername = "{COLLECTOR[0]}"\n'
            f'password = "{COLLECTOR[1]}"\nclient_id = "bench-collector"\n[batch]\nmax_events = 2000\nmax_ms = 10\n'
        )

        print(f"bench: {total} events from {m} publishers; mosquitto on {port}; store {store_url}", flush=True)
        raw = raw_drain(port, total, devices, per)
        print(f"raw paho subscriber: {raw:,.0f} msg/s", flush=True)

        col = Collector(cfg)
        col.start()  # creates the persistent session and its subscriptions
        col.stop()
        procs, events, results = run_publishers(devices, port, 2, per, 0, True)
        for ev in events:
            ev.wait(600)
        col.start()
        out = collect(procs, results)
        acked = sum(o[1] for o in out)
        first = min(o[2] for o in out)
        last = max(o[3] for o in out)
        rate = acked / max(last - first, 1e-9)
        n_stored = count_stored(store_url, 2)
        print(f"collector: {acked} acked, {n_stored} stored; {rate:,.0f} events/s durable and acked", flush=True)
        if acked != total or n_stored != total:
            raise SystemExit(f"bench: lost events: {total} sent, {acked} acked, {n_stored} stored")

        p50 = p99 = float("nan")
        if args.rate > 0:
            lper = max(1, args.latency_events // m)
            procs, events, results = run_publishers(devices, port, 3, lper, args.rate / m, True)
            out = collect(procs, results)
            lat = [x for o in out for x in o[4]]
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            print(f"latency at {args.rate:,.0f} events/s: press→ack p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
        col.stop()
        ratio = rate / raw
        print(f"ratio collector/raw: {ratio:.2f}")
        figures: dict[str, Any] = {"events_per_s": round(rate), "raw_paho_per_s": round(raw), "ratio": round(ratio, 3),
                                   "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}  # fmt: skip
        if args.collectors:
            figures["store"] = store_url.split(":", 1)[0]
            for i, n in enumerate(args.collectors):
                r = scale_out(tmp, cfg, port, devices, per, boot=10 + i, collectors=n, store_url=store_url)
                figures[f"events_per_s_{n}"] = round(r)
            if "events_per_s_1" in figures and "events_per_s_2" in figures:
                figures["ratio_2_to_1"] = round(figures["events_per_s_2"] / figures["events_per_s_1"], 3)
                print(f"two collectors / one: {figures['ratio_2_to_1']:.2f}")
        # No latency run (--rate 0): null, not NaN (which is not JSON).
        print(json.dumps({k: None if isinstance(v, float) and v != v else v for k, v in figures.items()}))
    finally:
        if broker is not None:
            broker.kill()
            broker.wait()
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)


def count_stored(store_url: str, boot: int) -> int:
    async def count() -> int:
        async with open_store(store_url, migrate=False) as store:
            return int((await store.db.fetch("SELECT COUNT(*) FROM events WHERE boot = ?", (boot,)))[0][0])

    return asyncio.run(count())


def end_session(port: int, client_id: str) -> None:
    """Remove a persistent session from the broker (connect once with a clean session)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    c.username_pw_set(*COLLECTOR)
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


def scale_out(
    tmp: pathlib.Path,
    cfg: pathlib.Path,
    port: int,
    devices: list[str],
    per: int,
    *,
    boot: int,
    collectors: int,
    store_url: str,
) -> float:
    """Queue the events for ``collectors`` collectors in one shared group, start them all, time the drain."""
    total = per * len(devices)
    end_session(port, "bench-collector")  # the single collector's session would take its own copy
    cols = []
    for i in range(collectors):
        d = tmp / f"scale-{boot}-{i}"
        d.mkdir()
        text = cfg.read_text().replace(
            'client_id = "bench-collector"', f'client_id = "bench-{boot}-{i}"\nshared_group = "g{boot}"'
        )
        (d / "evalbox.toml").write_text(text)
        cols.append(Collector(d / "evalbox.toml"))
    for c in cols:  # create the sessions and their shared subscriptions
        c.start()
    for c in cols:
        c.stop()
    procs, events, results = run_publishers(devices, port, boot, per, 0, True)
    for ev in events:
        ev.wait(600)
    for c in cols:  # all at once: the drain is timed from the first ack to the last
        c.start(wait=False)
    for c in cols:
        c.wait_subscribed()
    out = collect(procs, results)
    acked = sum(o[1] for o in out)
    rate = acked / max(max(o[3] for o in out) - min(o[2] for o in out), 1e-9)
    for c in cols:
        c.stop()
    for i in range(collectors):
        end_session(port, f"bench-{boot}-{i}")
    n_stored = count_stored(store_url, boot)
    print(f"{collectors} collector(s) sharing the stream: {acked} acked, {n_stored} stored; {rate:,.0f} events/s",
          flush=True)  # fmt: skip
    if acked != total or n_stored != total:
        raise SystemExit(f"bench: lost events: {total} sent, {acked} acked, {n_stored} stored")
    return rate


if __name__ == "__main__":
    main()
