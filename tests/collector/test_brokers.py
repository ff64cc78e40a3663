"""Brokers beyond mosquitto: the collector on a real NATS server with MQTT, the shared-subscription check at
start, and the heartbeat timeout that marks a silent box offline.

The NATS server runs on the files ``evalbox broker-config --broker nats`` writes (logins with per-box
subject permissions), so the provisioning is what is tested, not a hand-made config.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from collector.ingest.provision import broker_files, set_broker_password
from protocol import topics
from tests.collector.harness import (
    COLLECTOR_PASSWORD,
    COLLECTOR_USER,
    Box,
    Collector,
    broker,
    make_store,
    stored,
    wait_for,
    write_config,
)
from tests.mosquitto import free_port
from tests.nats import NatsMqtt

DEVICES = ["BOX-1", "BOX-2"]


def nats_broker(tmp_path: pathlib.Path, devices: list[str]) -> NatsMqtt:
    """nats-server on the files broker-config writes, with a login per box as ``evalbox device add`` adds it."""
    out = tmp_path / "nats"
    port = free_port()
    files = broker_files(
        out, collector_user=COLLECTOR_USER, collector_password=COLLECTOR_PASSWORD, port=port, bind="127.0.0.1",
        broker="nats",
    )  # fmt: skip
    for d in devices:
        set_broker_password(pathlib.Path(files[1]), d, f"pw-{d}")
    return NatsMqtt.from_files(pathlib.Path(files[0]), port)


@pytest.fixture
def nats(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, NatsMqtt, pathlib.Path]]:
    db = tmp_path / "store.db"
    make_store(db, DEVICES)
    with nats_broker(tmp_path, DEVICES) as nb:
        yield tmp_path, nb, db


def test_collector_on_nats_stores_exactly_once_and_boxes_keep_to_their_topics(nats) -> None:  # type: ignore[no-untyped-def]
    tmp_path, nb, db = nats
    col = Collector(write_config(tmp_path, store=db, port=nb.port)).start()
    box1, box2 = Box("BOX-1", nb.port), Box("BOX-2", nb.port)
    overheard: list[str] = []
    refused: list[bool] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spy", clean_session=True)
    spy.username_pw_set("BOX-2", "pw-BOX-2")  # BOX-2 tries to read everything, JetStream's deliveries too
    spy.on_connect = lambda c, u, f, rc, p: c.subscribe([("#", 1), ("$MQTT/sub/#", 1), ("evalbox/BOX-1/#", 1)])
    spy.on_subscribe = lambda c, u, mid, codes, p: refused.extend(code.is_failure for code in codes)
    spy.on_message = lambda c, u, m: overheard.append(m.topic)
    spy.connect("127.0.0.1", nb.port)
    spy.loop_start()
    try:
        wait_for(lambda: len(refused) == 3, 15, "the spy's SUBACK")
        for s in range(40):
            box1.publish(box1.press(s))
        wait_for(lambda: len(box1.acked) == 40, what="40 acks over NATS")
        for s in range(10):  # resent: stored once, acked again
            box1.publish(box1.press(s))
        wait_for(lambda: all(box1.ack_count.get((1, s)) == 2 for s in range(10)), what="duplicates acked again")
        # BOX-2 publishes a press signed as BOX-2 on BOX-1's topic: NATS refuses it (per-box permissions)
        box2.publish(box2.press(7), topic=topics.uplink("BOX-1"))
        box2.publish(box2.press(8))
        wait_for(lambda: (1, 8) in box2.acked, what="BOX-2's own press acked")
        assert col.terminate() == 0, col.stderr()
        assert stored(db) == 41
        assert stored(db, "SELECT COUNT(*) FROM events WHERE device_id = 'BOX-2'") == 1
        assert stored(db, "SELECT COUNT(*) FROM events WHERE device_id = 'BOX-1' AND seq = 5") == 1
        assert stored(db, "SELECT COALESCE(SUM(n), 0) FROM rejected_counts") == 0  # refused by the broker
        assert 'Publish Violation - User "BOX-2", Subject "evalbox.BOX-1.up"' in nb.log()
        assert refused == [True, True, True] and overheard == []
    finally:
        spy.disconnect()
        spy.loop_stop()
        box1.close()
        box2.close()
        col.kill()


@pytest.mark.parametrize("logins", ["provisioned", "anonymous"])
def test_shared_group_on_nats_refuses_to_start(tmp_path: pathlib.Path, logins: str) -> None:
    """With broker-config's logins NATS refuses ``$share/...`` (a literal subject outside the collector's
    permissions); anonymous, it grants the subscription and delivers nothing. Both: exit 2, a clear message."""
    db = tmp_path / "store.db"
    make_store(db, DEVICES)
    nb = nats_broker(tmp_path, DEVICES) if logins == "provisioned" else NatsMqtt(tmp_path)
    with nb:
        extra = 'shared_group = "collectors"\nprobe_timeout_s = 2\n'
        config = write_config(tmp_path, store=db, port=nb.port, extra=extra)
        col = Collector(config).start(wait=False)
        try:
            rc = col.wait(60)
            err = col.stderr()
            assert rc == 2, err
            assert "shared_group = 'collectors'" in err and "does not support MQTT shared subscriptions" in err
            why = "refused the shared subscription" if logins == "provisioned" else "delivered nothing within 2 s"
            assert why in err and "不支持共享订阅" in err
            assert "Traceback" not in err and "MQTT subscribed" not in err
            assert stored(db) == 0
        finally:
            col.kill()


def test_shared_group_on_mosquitto_is_checked_and_works(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, DEVICES)
    with broker(tmp_path, DEVICES) as mq:
        config = write_config(tmp_path, store=db, port=mq.port, extra='shared_group = "collectors"\n')
        col = Collector(config).start()
        box = Box("BOX-1", mq.port)
        try:
            assert "MQTT shared subscription checked" in col.stderr()
            for s in range(20):
                box.publish(box.press(s))
            wait_for(lambda: len(box.acked) == 20, what="20 acks through the shared group")
            assert col.terminate() == 0, col.stderr()
            assert stored(db) == 20
            assert stored(db, "SELECT COALESCE(SUM(n), 0) FROM rejected_counts") == 0  # the probe is not a box's
        finally:
            box.close()
            col.kill()


def _status(box: Box) -> bytes:
    msg = protocol.make(
        "status", box.device, b=1, up=5000, ts=None, fw="0.3.1", q=0, full=False, mem=40000, rssi=-55,
        rst="power", err=None, st="ok", cv=0,
    )  # fmt: skip
    return protocol.encode(msg, box.key)


@pytest.mark.parametrize("kind", ["mosquitto", "nats"])
def test_silent_box_marked_offline_without_its_last_will(tmp_path: pathlib.Path, kind: str) -> None:
    """A box that goes quiet without a Last Will reaching the collector is offline after ``box_silent_s``."""
    db = tmp_path / "store.db"
    make_store(db, DEVICES)
    mq = broker(tmp_path, DEVICES) if kind == "mosquitto" else nats_broker(tmp_path, DEVICES)
    with mq:
        col = Collector(write_config(tmp_path, store=db, port=mq.port, extra="box_silent_s = 2\n")).start()
        box1, box2 = Box("BOX-1", mq.port), Box("BOX-2", mq.port)
        try:
            online = "SELECT COUNT(*) FROM devices WHERE status = 'online'"
            box1.client.publish(topics.status("BOX-1"), _status(box1), qos=1, retain=True)
            box2.client.publish(topics.status("BOX-2"), _status(box2), qos=1, retain=True)
            wait_for(lambda: stored(db, online) == 2, 20, "both boxes online")
            box1.close()  # a clean DISCONNECT: the broker drops the Last Will, nothing says "offline"
            t0 = time.monotonic()
            offline = "SELECT COUNT(*) FROM devices WHERE id = 'BOX-1' AND status = 'offline'"
            while stored(db, offline) == 0:
                box2.client.publish(topics.status("BOX-2"), _status(box2), qos=1, retain=True)  # BOX-2 lives on
                assert time.monotonic() - t0 < 20, col.stderr()
                time.sleep(0.5)
            assert time.monotonic() - t0 >= 1.5  # not before the box was silent for box_silent_s
            assert stored(db, "SELECT COUNT(*) FROM devices WHERE id = 'BOX-2' AND status = 'online'") == 1
            assert "BOX-1 marked offline" in col.stderr()
            assert col.terminate() == 0
        finally:
            box2.close()
            col.kill()
