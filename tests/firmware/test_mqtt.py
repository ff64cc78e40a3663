"""The sim box against a real mosquitto (passwords + ACL) and a CPython acker."""

from __future__ import annotations

import pathlib

import protocol
from protocol import topics
from tests.firmware.simbox import KEY, Acker, SimBox, box_config, wait_for
from tests.mosquitto import Mosquitto


def test_presses_reach_the_collector_signed_and_are_acked(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker
) -> None:
    with SimBox(tmp_path, box_config(tmp_path, port=broker.port, min_interval_ms=0)) as box:
        wait_for(lambda: box.state()["online"], 30, "box online")
        assert box.cmd("signin A10293")["ok"]
        assert box.cmd("clock 1761926399000") == {"ok": True}
        inv = box.cmd("invite T-0042")
        press = box.cmd("press 1")
        assert press["ok"] and press["i"] == inv["i"] and press["f"] == 0, press
        assert press["id"][0] == "box-1" and press["id"][1] == box.boot
        extra = box.cmd("press 2")
        assert extra["f"] & 2, extra  # repeat inside the same invite
        wait_for(lambda: box.state()["q"] == 0, 30, "outbox drained by acks")
        ids = acker.ids("box-1")
        assert {(box.boot, press["id"][2]), (box.boot, extra["id"][2])} <= ids
        ev = acker.events[("box-1", box.boot, press["id"][2])]
        assert ev["t"] == "press" and ev["o"] == "A10293" and ev["tk"] == "T-0042" and ev["k"] == 1
        assert ev["ts"] is not None and ev["ts"] >= 1761926399000
        signin = [e for e in acker.events.values() if e["t"] == "signin"]
        assert signin and signin[0]["o"] == "A10293"
        st = wait_for(lambda: isinstance(acker.status.get("box-1"), dict) and acker.status["box-1"], 30, "status")
        assert st["t"] == "status" and st["b"] == box.boot and st["fw"].startswith("evalbox-fw")
        assert st["st"] == "ok" and st["rst"] == "power_on" and st["mem"] > 0 and st["rssi"] is None
        # the heartbeat (every 2 s here) reports the drained outbox
        wait_for(lambda: acker.status["box-1"]["q"] == 0 and acker.status["box-1"]["up"] > st["up"], 30, "heartbeat")
        assert acker.status["box-1"]["full"] is False
        assert box.state()["wdt"] > 0  # watchdog fed while every task makes progress
        assert box.state()["acked"] >= 4
        assert acker.rejected == []
        box.kill()  # power cut: the broker publishes the Last Will
        wait_for(lambda: acker.status.get("box-1") == "offline", 60, "Last Will offline")


def test_broker_outage_and_box_power_cut_lose_and_duplicate_nothing(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker
) -> None:
    cfg = box_config(tmp_path, port=broker.port, min_interval_ms=0, seg_records=4)
    pressed: set[tuple[int, int]] = set()
    box = SimBox(tmp_path, cfg).start()
    try:
        wait_for(lambda: box.state()["online"], 30, "box online")
        for k in (1, 2, 1, 2, 1):
            r = box.cmd(f"press {k}")
            pressed.add((r["id"][1], r["id"][2]))
        broker.stop()  # outage: keys stay responsive, presses are kept
        wait_for(lambda: not box.state()["online"], 30, "box notices the outage")
        for _ in range(12):
            r = box.cmd("press 1")
            assert r["ok"], r
            pressed.add((r["id"][1], r["id"][2]))
        assert box.state()["q"] >= 12
        box.kill()  # power cut while offline, unacked presses on flash
        box = SimBox(tmp_path, cfg).start()
        first_boot = min(b for b, _ in pressed)
        assert box.boot > first_boot
        assert box.state()["q"] >= 12
        for _ in range(3):
            r = box.cmd("press 2")
            pressed.add((r["id"][1], r["id"][2]))
        broker.start()
        wait_for(lambda: box.state()["online"], 60, "box back online")
        for _ in range(5):  # and a power cut while these are in flight
            r = box.cmd("press 1")
            pressed.add((r["id"][1], r["id"][2]))
        box.kill()
        box = SimBox(tmp_path, cfg).start()
        wait_for(lambda: box.state()["q"] == 0, 90, "every press acked after the outage and the cuts")
        assert pressed <= acker.ids("box-1")
        assert acker.rejected == []
        # exactly once by identity in the store, and the identities are all distinct
        presses = [e for e in acker.events.values() if e["t"] == "press"]
        assert len(presses) == len(pressed) == 25
        assert acker.conflicts == []
        assert acker.received >= len(acker.events)  # repeats are fine: the store keeps one per identity
    finally:
        box.kill()


def test_config_by_cv_commands_and_bad_downlinks(tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker) -> None:
    with SimBox(tmp_path, box_config(tmp_path, port=broker.port)) as box:
        wait_for(lambda: box.state()["online"], 30, "box online")
        cfg = protocol.make(protocol.CONFIG, "box-1", cv=5, o="B77", w="W-02", n=3, iw=5000, mi=0, g=True, hr=None)
        acker.publish(topics.config("box-1"), protocol.encode(cfg, KEY), retain=True)
        wait_for(lambda: box.state()["cv"] == 5, 30, "config applied")
        st = box.state()
        assert st["officer"] == "B77"
        assert box.cmd("press 3")["ok"]  # scale now 3
        # an older cv is ignored
        old = protocol.make(protocol.CONFIG, "box-1", cv=4, o="C1", w=None, n=2, iw=1000, mi=0, g=True, hr=None)
        acker.publish(topics.config("box-1"), protocol.encode(old, KEY), retain=True)
        # a config signed with another key is rejected, with the reason reported
        bad = protocol.make(protocol.CONFIG, "box-1", cv=9, o="C1", w=None, n=2, iw=1000, mi=0, g=True, hr=None)
        acker.publish(topics.config("box-1"), protocol.encode(bad, bytes(32)))
        wait_for(lambda: box.state()["rejected"].get("bad_mac"), 30, "bad mac reported")
        acker.publish(topics.command("box-1"), b"{not json")
        wait_for(lambda: box.state()["rejected"].get("no_mac"), 30, "malformed reported")
        st = box.state()
        assert st["cv"] == 5 and st["officer"] == "B77"
        # a signed command from the window PC (relayed): invite with ticket, applied once per cid
        cmd = protocol.make(protocol.COMMAND, "box-1", cid=7, op="invite", o=None, tk="T-9")
        for _ in range(2):
            acker.publish(topics.command("box-1"), protocol.encode(cmd, KEY))
        wait_for(lambda: box.state()["invite"] is not None, 30, "invite by command")
        # acks naming ids the box does not hold (a repeat after a resend) change nothing and are
        # counted in the status's da, not reported as an error
        acker.send_ack("box-1", [(999, 1), (999, 2)])
        wait_for(lambda: box.cmd("mem")["dup_acked"] == 2, 30, "repeat ack counted")
        wait_for(lambda: isinstance(st := acker.status.get("box-1"), dict) and st.get("da") == 2, 30, "da in status")
        assert "not in the outbox" not in (box.state()["err"] or "")
        r = box.cmd("press 1")
        assert r["ok"] and r["i"] is not None, r  # still working, the invite is rated
        # the collector's boot floor moves the box's boot number up at once
        acker.send_ack("box-1", [(r["id"][1], r["id"][2])], bf=50)
        wait_for(lambda: box.state()["boot"] == 50, 30, "boot floor applied")
        assert box.cmd("press 2")["id"][1] == 50
        wait_for(lambda: box.state()["q"] == 0, 30, "drained")
        invites = [e for e in acker.events.values() if e["t"] == "invite"]
        assert len(invites) == 1 and invites[0]["tk"] == "T-9"
        assert [e["o"] for e in acker.events.values() if e["t"] == "signin"] == ["B77"]
    # restarted, the box keeps the last good config (persisted on flash)
    with SimBox(tmp_path, box_config(tmp_path, port=broker.port)) as box:
        st = box.state()
        assert st["cv"] == 5 and st["officer"] == "B77"
        assert box.boot == 51  # never below the floor, bumped at every start


def test_two_boxes_share_the_broker_each_on_its_own_topics(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker
) -> None:
    boxes = [SimBox(tmp_path, box_config(tmp_path, d, port=broker.port, min_interval_ms=0)) for d in ("box-1", "box-2")]
    try:
        for b in boxes:
            b.start()
        for b in boxes:
            wait_for(lambda b=b: b.state()["online"], 30, "online")
        ids = {b.cfg["device_id"]: {tuple(b.cmd("press 1")["id"][1:]) for _ in range(4)} for b in boxes}
        for b in boxes:
            wait_for(lambda b=b: b.state()["q"] == 0, 30, "acked")
        assert acker.ids("box-1") == ids["box-1"] and acker.ids("box-2") == ids["box-2"]
        assert acker.conflicts == [] and acker.rejected == []
    finally:
        for b in boxes:
            b.kill()
