"""MQTT ingest end to end: real mosquitto with passwords and ACL, the collector process, simulated boxes.

Each test runs on an SQLite file and on the machine's PostgreSQL (``store_url``).
"""

from __future__ import annotations

import pathlib

import pytest

from tests.collector.harness import Box, Collector, broker, make_store, store_of, stored, wait_for, write_config


@pytest.fixture
def setup(tmp_path: pathlib.Path, store_url: str):  # type: ignore[no-untyped-def]
    devices = ["BOX-1", "BOX-2", "BOX-3"]
    db = store_of(tmp_path, store_url)
    make_store(db, devices)
    with broker(tmp_path, devices) as mq:
        yield tmp_path, mq, db


def test_exactly_once_duplicates_acked_again_forgery_rejected(setup) -> None:  # type: ignore[no-untyped-def]
    tmp_path, mq, db = setup
    col = Collector(write_config(tmp_path, store=db, port=mq.port)).start()
    box = Box("BOX-1", mq.port)
    try:
        for s in range(50):
            box.publish(box.press(s))
        wait_for(lambda: len(box.acked) == 50, what="50 acks")
        for s in range(10):  # retransmissions: stored once, acked again
            box.publish(box.press(s))
        tampered = bytearray(box.press(100))
        tampered[tampered.index(b'"k":1') + 4] = ord("2")  # a citizen's 满意 turned into 不满意
        box.publish(bytes(tampered))
        forged = box.press(101)  # signed with the right key but ...
        box.publish(forged.replace(b'"d":"BOX-1"', b'"d":"BOX-2"'))  # ... claims another box
        box.publish(box.press(102))
        wait_for(lambda: (1, 102) in box.acked, what="ack after the bad ones")
        wait_for(lambda: all(box.ack_count.get((1, s)) == 2 for s in range(10)), what="duplicates acked again")
        assert (1, 100) not in box.acked and (1, 101) not in box.acked
        assert col.terminate() == 0, col.stderr()
        assert stored(db) == 51
        assert stored(db, "SELECT COUNT(*) FROM events WHERE seq = 5") == 1
        assert stored(db, "SELECT SUM(n) FROM rollups WHERE kind = 'rated'") == 51
        reasons = stored(db, "SELECT COUNT(*) FROM rejected_counts WHERE n > 0")
        assert reasons >= 1
        assert stored(db, "SELECT COALESCE(SUM(n), 0) FROM rejected_counts") == 2
        assert box.bad_acks == 0
    finally:
        box.close()
        col.kill()


def test_box_cannot_publish_on_another_boxes_topic(setup) -> None:  # type: ignore[no-untyped-def]
    tmp_path, mq, db = setup
    col = Collector(write_config(tmp_path, store=db, port=mq.port)).start()
    box1, box2 = Box("BOX-1", mq.port), Box("BOX-2", mq.port)
    try:
        # BOX-1 signs a valid BOX-2-looking message? It has only its own key; publish its own event on BOX-2's topic.
        box1.publish(box1.press(1), topic="evalbox/BOX-2/up")
        box2.publish(box2.press(7))
        wait_for(lambda: (1, 7) in box2.acked, what="box 2's event acked")
        assert col.terminate() == 0
        # The broker dropped BOX-1's publish on a foreign topic (ACL): only box 2's event arrived.
        assert stored(db) == 1
        assert stored(db, "SELECT COALESCE(SUM(n), 0) FROM rejected_counts") == 0
    finally:
        box1.close()
        box2.close()
        col.kill()


def test_ack_only_after_commit_crash_before_commit(setup) -> None:  # type: ignore[no-untyped-def]
    tmp_path, mq, db = setup
    cfg = write_config(tmp_path, store=db, port=mq.port, max_ms=200)
    col = Collector(cfg).start()
    box = Box("BOX-1", mq.port)
    try:
        box.publish(box.press(0))
        wait_for(lambda: (1, 0) in box.acked, what="first ack")
        assert col.terminate() == 0
        # The next collector dies (kill -9 style, exit 137) before its 1st commit: nothing it got is acked.
        crash = Collector(cfg, env={"EVALBOX_FAULT": "crash_before_commit:1"}).start()
        for s in range(1, 21):
            box.publish(box.press(s))
        assert crash.wait(60) == 137
        assert box.acked == {(1, 0)}
        assert stored(db) == 1
        # Restart: the broker redelivers the unacked messages from the persistent session; stored once each.
        col = Collector(cfg).start()
        wait_for(lambda: len(box.acked) == 21, what="redelivered events acked")
        assert col.terminate() == 0
        assert stored(db) == 21
        assert stored(db, "SELECT SUM(n) FROM rollups") == 21
    finally:
        box.close()
        col.kill()


def test_broker_restart_mid_stream_loses_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    tmp_path, mq, db = setup
    cfg = write_config(tmp_path, store=db, port=mq.port)
    col = Collector(cfg).start()
    box = Box("BOX-3", mq.port)
    try:
        for s in range(100):
            box.publish(box.press(s))
        mq.restart()  # mid-stream; a clean stop saves the broker's persistence file
        acked = set(box.acked)
        box.close()
        box = Box("BOX-3", mq.port)
        box.acked |= acked
        for s in range(100):  # as the box does: resend what it has not seen acked
            if (1, s) not in acked:
                box.publish(box.press(s))
        wait_for(lambda: len(box.acked) == 100, what="100 acked")
        # Messages the broker holds for the collector's session survive a broker restart.
        assert col.terminate() == 0, col.stderr()
        for s in range(100, 150):
            box.publish(box.press(s)).wait_for_publish(30)  # PUBACKed: the broker has them
        mq.restart()
        box.close()
        box = Box("BOX-3", mq.port)
        col = Collector(cfg).start()
        wait_for(lambda: stored(db) == 150, what="150 stored (50 kept by the broker)")
        wait_for(lambda: len(box.acked) == 50, what="the 50 acked")
        assert col.terminate() == 0, col.stderr()
        assert stored(db) == 150
        assert stored(db, "SELECT SUM(n) FROM rollups") == 150
    finally:
        box.close()
        col.kill()


def test_unreachable_broker_at_start_then_it_comes(tmp_path: pathlib.Path) -> None:
    make_store(tmp_path / "store.db", ["BOX-1"])
    mq = broker(tmp_path, ["BOX-1"])
    col = Collector(write_config(tmp_path, port=mq.port)).start(subscribed=False)
    try:
        wait_for(lambda: "unreachable" in col.stderr(), what="a clear message")
        mq.start()
        wait_for(lambda: "MQTT subscribed" in col.stderr(), what="the collector connects (jittered backoff)")
        box = Box("BOX-1", mq.port)
        box.publish(box.press(1))
        wait_for(lambda: (1, 1) in box.acked, what="ack once the broker is up")
        box.close()
        assert col.terminate() == 0
    finally:
        col.kill()
        mq.kill()


def test_status_and_last_will(setup) -> None:  # type: ignore[no-untyped-def]
    import protocol
    from protocol import topics

    tmp_path, mq, db = setup
    col = Collector(write_config(tmp_path, store=db, port=mq.port)).start()
    box = Box("BOX-2", mq.port)
    try:
        st = protocol.make(
            "status", "BOX-2", b=1, up=5000, ts=None, fw="0.3.1", q=7, full=False, mem=40000, rssi=-55,
            rst="power", err=None, st="ok", cv=0,
        )  # fmt: skip
        box.client.publish(topics.status("BOX-2"), protocol.encode(st, box.key), qos=1, retain=True)
        wait_for(lambda: stored(db, "SELECT COUNT(*) FROM devices WHERE outbox = 7 AND status = 'online'") == 1)
        box.client.publish(topics.status("BOX-2"), b"offline", qos=1, retain=True)
        wait_for(lambda: stored(db, "SELECT COUNT(*) FROM devices WHERE id = 'BOX-2' AND status = 'offline'") == 1)
        assert col.terminate() == 0
    finally:
        box.close()
        col.kill()
