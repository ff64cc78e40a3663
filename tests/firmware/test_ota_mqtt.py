"""A firmware update over MQTT on the real MicroPython sim box and a real mosquitto, presses going on.

The collector side is ``collector.fleet.transfer`` (offers, chunks with resume,
the trial's signed ack); the box side ``firmware/ota.py`` and ``firmware/slots.py``.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.fleet.release import public_hex
from collector.fleet.transfer import FleetLink, Outcome
from tests.firmware.otabox import ResettingBox, release_from
from tests.firmware.simbox import KEY, USERS, Acker, box_config, wait_for
from tests.mosquitto import Mosquitto


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _config(tmp: pathlib.Path, broker: Mosquitto, key: Ed25519PrivateKey, **extra: Any) -> dict[str, Any]:
    return box_config(
        tmp,
        port=broker.port,
        min_interval_ms=0,
        release_pubkey=public_hex(key),
        fw_trial_ms=20000,
        flash_blocks=256,
        **extra,
    )


def _update(broker: Mosquitto, data: bytes, timeout: float = 120) -> tuple[Outcome, FleetLink]:
    async def go() -> tuple[Outcome, FleetLink]:
        link = FleetLink("127.0.0.1", broker.port, "collector", USERS["collector"], {"box-1": KEY})
        await link.start()
        try:
            return await link.update("box-1", data, timeout), link
        finally:
            await link.close()

    return asyncio.run(go())


class Presser:
    """A citizen pressing a key every 50 ms through the box's resets; the ids of the presses taken."""

    def __init__(self, box: ResettingBox) -> None:
        self.box = box
        self.ids: set[tuple[int, int]] = set()
        self.stop = threading.Event()
        self.refused: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(0.05):
            n += 1
            r = self.box.try_cmd(f"press {1 + n % 2}")
            if r is None:
                continue  # resetting: the key does nothing while the board boots
            if r.get("ok"):
                self.ids.add((r["id"][1], r["id"][2]))
            else:
                self.refused.append(r)

    def finish(self) -> set[tuple[int, int]]:
        self.stop.set()
        self.thread.join(10)
        return self.ids


def link_state(broker: Mosquitto) -> dict[str, Any]:
    """The box's retained firmware state, as a collector connecting now reads it."""

    async def go() -> dict[str, Any]:
        link = FleetLink("127.0.0.1", broker.port, "collector", USERS["collector"], {"box-1": KEY})
        await link.start()
        try:
            for _ in range(50):
                if "box-1" in link.states:
                    break
                await asyncio.sleep(0.1)
            return link.states["box-1"]
        finally:
            await link.close()

    return asyncio.run(go())


def _fw(acker: Acker) -> str:
    st = acker.status.get("box-1")
    return st["fw"] if isinstance(st, dict) else ""


def test_update_over_mqtt_while_citizens_press(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, key: Ed25519PrivateKey
) -> None:
    data = release_from(tmp_path, key, "1.1.0", min_version="1.1.0")
    box = ResettingBox(tmp_path, _config(tmp_path, broker, key)).start()
    try:
        wait_for(lambda: box.try_cmd("state") and box.try_cmd("state")["online"], 30, "box online")
        presser = Presser(box)
        outcome, link = _update(broker, data)
        assert outcome.state == "ok", outcome
        assert link.states["box-1"]["ver"] == "1.1.0" and link.states["box-1"]["sl"] == "a"
        assert not link.states["box-1"]["tr"] and link.states["box-1"]["why"] is None
        assert box.exits == [75]  # one reset: into the new slot (no rollback, no crash)
        # the new code runs: its status names its version
        wait_for(lambda: _fw(acker) == "evalbox-fw 1.1.0", 30, "status from the new firmware")
        pressed = presser.finish()
        assert len(pressed) > 20, len(pressed)
        wait_for(lambda: (box.try_cmd("state") or {}).get("q") == 0, 60, "outbox drained")
        assert pressed <= acker.ids("box-1")  # 0 presses lost
        assert acker.conflicts == [] and acker.rejected == []  # 0 duplicated (one event per identity)
        assert not [r for r in presser.refused if r.get("err") != "outbox_full"], presser.refused
        # a second box boot still runs the committed slot
        box.try_cmd("quit")
        wait_for(lambda: box.boots == 3, 30, "box restarted")
        wait_for(lambda: _fw(acker) == "evalbox-fw 1.1.0" and box.try_cmd("state"), 30, "still the new firmware")
    finally:
        box.kill()


def test_refusals_keep_the_old_version_running(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, key: Ed25519PrivateKey
) -> None:
    box = ResettingBox(tmp_path, _config(tmp_path, broker, key)).start()
    try:
        wait_for(lambda: (box.try_cmd("state") or {}).get("online"), 30, "box online")
        good = release_from(tmp_path, key, "1.2.0", min_version="1.2.0")
        flipped = bytearray(good)
        flipped[-100] ^= 0x01  # one byte of the last file
        other = Ed25519PrivateKey.generate()
        cases = [
            (bytes(flipped), "bad_hash"),
            (release_from(tmp_path, other, "1.2.1"), "bad_signature"),
            (release_from(tmp_path, key, "1.2.2", board="picow"), "wrong_board"),
        ]
        for data, reason in cases:
            outcome, _ = _update(broker, data)
            assert outcome.state == "refused" and reason in (outcome.why or ""), (reason, outcome)
        # each was checked at a boot (the check wants the heap the app holds) and refused: the old firmware runs on
        assert box.exits == [75, 75, 75]
        wait_for(lambda: _fw(acker) == "evalbox-fw 0.1.0" and box.boots == 4, 30, "the old firmware running")
        assert link_state(broker)["ver"] is None and link_state(broker)["sl"] == "usb"
        outcome, _ = _update(broker, good)
        assert outcome.state == "ok", outcome
        outcome, link = _update(broker, release_from(tmp_path, key, "1.1.9"))
        assert outcome.state == "refused" and "below_min_version" in (outcome.why or ""), outcome
        assert link.states["box-1"]["ver"] == "1.2.0"
        assert (box.try_cmd("state") or {}).get("online") is not None
    finally:
        box.kill()


def test_failed_self_test_rolls_back_by_itself(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, key: Ed25519PrivateKey
) -> None:
    box = ResettingBox(tmp_path, _config(tmp_path, broker, key)).start()
    try:
        wait_for(lambda: (box.try_cmd("state") or {}).get("online"), 30, "box online")
        assert _update(broker, release_from(tmp_path, key, "1.1.0"))[0].state == "ok"
        broken = release_from(
            tmp_path,
            key,
            "1.2.0",
            edits={
                "firmware/app.py": ("self.self_test = self.board.self_test()", 'self.self_test = "display: no answer"')
            },
        )
        outcome, link = _update(broker, broken)
        assert outcome.state == "rolled_back", outcome
        assert outcome.why == "rolled back from 1.2.0: self-test: display: no answer", outcome
        assert box.exits == [75, 75, 75]  # into 1.1.0, into 1.2.0, back to 1.1.0
        wait_for(lambda: link.states["box-1"]["ver"] == "1.1.0", 5, "reports the old version")
        wait_for(lambda: _fw(acker) == "evalbox-fw 1.1.0", 30, "the old firmware runs again")
    finally:
        box.kill()


def test_update_over_the_serial_line(tmp_path: pathlib.Path, key: Ed25519PrivateKey) -> None:
    """The same offer, chunks and states as frames on a real pty (the window PC's end relays them)."""
    import os
    import tty

    from collector.fleet.transfer import BoxTransfer
    from tests.firmware.windowpc import WindowPC

    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = box_config(
        tmp_path, transport="serial", serial_path=os.ttyname(slave), min_interval_ms=0, flash_blocks=256,
        release_pubkey=public_hex(key), fw_trial_ms=60000,
    )  # fmt: skip
    for k in ("broker_host", "broker_port", "broker_user", "broker_password"):
        cfg.pop(k)
    pc = WindowPC(master)
    box = ResettingBox(tmp_path, cfg).start()
    try:
        wait_for(lambda: pc.statuses, 30, "status frame")
        presser = Presser(box)
        data = release_from(tmp_path, key, "1.1.0")

        async def go() -> Outcome:
            loop = asyncio.get_running_loop()
            tr = BoxTransfer("box-1", KEY, data, lambda topic, payload: pc.send(payload))
            pc.on_fw = lambda msg: loop.call_soon_threadsafe(tr.on_state, msg)
            try:
                return await tr.run(300)
            finally:
                pc.on_fw = None

        outcome = asyncio.run(go())
        assert outcome.state == "ok", outcome
        assert box.exits == [75]
        wait_for(lambda: pc.statuses[-1]["fw"] == "evalbox-fw 1.1.0", 30, "status from the new firmware")
        pressed = presser.finish()
        wait_for(lambda: (box.try_cmd("state") or {}).get("q") == 0, 60, "outbox drained over serial")
        got = {(b, s) for (_d, b, s) in pc.events}
        assert pressed and pressed <= got
    finally:
        box.kill()
        pc.stop = True
        os.close(master)
        os.close(slave)


def test_key_rotation_signed_by_the_current_key(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, key: Ed25519PrivateKey
) -> None:
    from collector.fleet.release import rotation

    new, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    box = ResettingBox(tmp_path, _config(tmp_path, broker, key)).start()

    def rotate(data: bytes, seq: int) -> Outcome:
        async def go() -> Outcome:
            link = FleetLink("127.0.0.1", broker.port, "collector", USERS["collector"], {"box-1": KEY})
            await link.start()
            try:
                return await link.rotate("box-1", data, seq, 60)
            finally:
                await link.close()

        return asyncio.run(go())

    try:
        wait_for(lambda: (box.try_cmd("state") or {}).get("online"), 30, "box online")
        out = rotate(rotation(stranger, new, 1, "2026-12-01T00:00:00Z"), 1)  # a thief's key is not the trusted one
        assert out.state == "refused" and "bad_signature" in (out.why or ""), out
        out = rotate(rotation(key, new, 1, "2026-12-01T00:00:00Z"), 1)
        assert out.state == "ok", out
        outcome, _ = _update(broker, release_from(tmp_path, key, "1.1.0"))  # the old key no longer counts
        assert outcome.state == "refused" and "bad_signature" in (outcome.why or ""), outcome
        boots = box.boots
        box.try_cmd("quit")  # the new key is on flash: it survives a reset
        wait_for(lambda: box.boots == boots + 1 and box.try_cmd("state"), 30, "box restarted")
        outcome, link = _update(broker, release_from(tmp_path, new, "1.1.0"))
        assert outcome.state == "ok", outcome
        assert link.states["box-1"]["ks"] == 1
        out = rotate(rotation(key, new, 1, "2026-12-01T00:00:00Z"), 2)  # the old statement again: refused
        assert out.state == "refused" and "refused key rotation" in (out.why or ""), out
    finally:
        box.kill()


def test_update_in_a_160k_heap_from_the_deployed_build(
    tmp_path: pathlib.Path, broker: Mosquitto, acker: Acker, key: Ed25519PrivateKey
) -> None:
    """The box as deployed (mpy-cross build) in the heap of the smallest board: the update fits beside the app."""
    from tests.firmware.simbox import build_sim_firmware

    build = build_sim_firmware(tmp_path / "build")
    box = ResettingBox(tmp_path, _config(tmp_path, broker, key), build=build, heap="160k").start()
    try:
        wait_for(lambda: (box.try_cmd("state") or {}).get("online"), 30, "box online")
        presser = Presser(box)
        outcome, _ = _update(broker, release_from(tmp_path, key, "1.1.0"))
        assert outcome.state == "ok", outcome
        assert box.exits == [75]
        wait_for(lambda: _fw(acker) == "evalbox-fw 1.1.0", 30, "status from the new firmware")
        pressed = presser.finish()
        wait_for(lambda: (box.try_cmd("state") or {}).get("q") == 0, 60, "outbox drained")
        assert pressed and pressed <= acker.ids("box-1") and acker.conflicts == []
        assert "MemoryError" not in (acker.status["box-1"].get("err") or ""), acker.status["box-1"]
    finally:
        box.kill()
