"""A box that missed its config gets it again: whenever its status names an older ``cv`` than the store's.

Serial over a real pty pair and MQTT over a real mosquitto; the collector is the real ``evalbox serve``.
"""

from __future__ import annotations

import pathlib
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from protocol import topics
from protocol.framing import encode_frame
from tests.collector.harness import (
    COLLECTOR_PASSWORD,
    COLLECTOR_USER,
    Box,
    Collector,
    broker,
    key_of,
    make_store,
    stored,
    wait_for,
    write_config,
)
from tests.collector.test_serial_ingest import SerialBox


def status(device: str, cv: int, up: int = 5000) -> dict[str, object]:
    return protocol.make(
        "status", device, b=1, up=up, ts=None, fw="0.3.1", q=0, full=False, mem=40000, rssi=None,
        rst="power", err=None, st="ok", cv=cv,
    )  # fmt: skip


def store_cv(db: pathlib.Path, device: str) -> int:
    return stored(db, f"SELECT settings_cv FROM devices WHERE id = '{device}'")


def test_serial_box_that_missed_its_config_gets_it_at_its_next_status(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["SER-1"])
    want = store_cv(db, "SER-1")
    link = tmp_path / "ttyBOX"
    box = SerialBox(link)
    col = Collector(write_config(tmp_path, port=None, serial=[str(link)])).start()
    try:
        wait_for(lambda: "serial port" in col.stderr() and "open" in col.stderr(), what="port open")

        def send_status(cv: int) -> None:
            box.write(encode_frame(protocol.encode(status("SER-1", cv), box.key)))

        def configs_after(n: int) -> bool:
            box.read_acks()
            return len(box.configs) > n

        send_status(0)  # the box's first words: it runs firmware defaults (cv 0)
        wait_for(lambda: configs_after(0), what="the config on first contact")
        assert box.configs[0]["cv"] == want
        # The box was not listening (booting, buffer overrun): it still reports cv 0, so it gets it again.
        deadline = time.monotonic() + 30
        while not configs_after(1) and time.monotonic() < deadline:
            send_status(0)
            time.sleep(1.0)
        assert len(box.configs) >= 2, "a stale cv in the status did not bring the config again"
        assert box.configs[-1]["cv"] == want
        wait_for(lambda: stored(db, "SELECT COUNT(*) FROM devices WHERE config_version = 0") == 1)
        # Once the status shows the current version nothing more is sent.
        send_status(want)
        wait_for(lambda: stored(db, f"SELECT COUNT(*) FROM devices WHERE config_version = {want}") == 1)
        box.read_acks()
        seen = len(box.configs)
        for _ in range(7):
            send_status(want)
            time.sleep(1.0)
        box.read_acks()
        assert len(box.configs) == seen
        # The store was restored from an older backup: the box runs cv want+5 and would ignore anything
        # older. The store's settings go out as want+6, which the box takes.
        deadline = time.monotonic() + 30
        while not any(c["cv"] == want + 6 for c in box.configs) and time.monotonic() < deadline:
            send_status(want + 5)
            time.sleep(1.0)
            box.read_acks()
        assert box.configs[-1]["cv"] == want + 6, [c["cv"] for c in box.configs]
        assert store_cv(db, "SER-1") == want + 6
        assert col.terminate() == 0, col.stderr()
    finally:
        col.kill()


class ConfigWatcher:
    """Records every config the broker delivers on a box's config topic (retained copies included)."""

    def __init__(self, port: int, device: str, login: tuple[str, str] | None = None) -> None:
        self.configs: list[tuple[bool, dict[str, object]]] = []
        self.ready = threading.Event()
        box_key = key_of(device)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{device}-{id(self)}", clean_session=True)
        c.username_pw_set(*(login or (device, f"pw-{device}")))

        def on_connect(client: mqtt.Client, *_: object) -> None:
            client.subscribe(topics.config(device), qos=1)
            self.ready.set()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            if msg.payload:  # an empty retained message clears the copy: nothing to decode
                self.configs.append((bool(msg.retain), protocol.decode(bytes(msg.payload), box_key, device)))

        c.on_connect = on_connect
        c.on_message = on_message
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        assert self.ready.wait(15)
        self.client = c

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_box_with_an_older_cv_gets_its_config_again(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["BOX-1"])
    want = store_cv(db, "BOX-1")
    with broker(tmp_path, ["BOX-1"]) as mq:
        col = Collector(write_config(tmp_path, port=mq.port)).start()
        box = Box("BOX-1", mq.port)
        watch = ConfigWatcher(mq.port, "BOX-1")
        try:
            wait_for(lambda: len(watch.configs) >= 1, what="the retained config")
            assert watch.configs[0][1]["cv"] == want
            # The broker lost its retained copy (restarted without persistence, another broker's limit):
            # the box still runs cv 0 and says so in its status. The collector publishes the config again.
            admin = ConfigWatcher(mq.port, "BOX-1", (COLLECTOR_USER, COLLECTOR_PASSWORD))
            admin.client.publish(topics.config("BOX-1"), b"", qos=1, retain=True).wait_for_publish(10)
            admin.close()
            before = len(watch.configs)
            deadline = time.monotonic() + 30  # the box reports its status now and then (here every second)
            while len(watch.configs) == before and time.monotonic() < deadline:
                box.client.publish(topics.status("BOX-1"), protocol.encode(status("BOX-1", 0), box.key), qos=1)
                time.sleep(1.0)
            assert [c["cv"] for _r, c in watch.configs[before:]] == [want], "no config (or several) after cv 0"
            # ... and it is retained again, so a box that reconnects later finds it.
            late = ConfigWatcher(mq.port, "BOX-1")
            try:
                wait_for(lambda: bool(late.configs), what="the retained copy")
                assert late.configs[0][0] and late.configs[0][1]["cv"] == want
            finally:
                late.close()
            # A status with the current version sends nothing more.
            settled = len(watch.configs)
            for up in range(6):
                box.client.publish(
                    topics.status("BOX-1"), protocol.encode(status("BOX-1", want, 6000 + up), box.key), qos=1
                )
                time.sleep(1.0)
            assert len(watch.configs) == settled
            assert col.terminate() == 0, col.stderr()
        finally:
            watch.close()
            box.close()
            col.kill()
