"""A correctly signed press with ``k > n`` is refused at decode and counted (``level_above_scale``), over
MQTT and over a serial line; the presses around it are stored and acked."""

from __future__ import annotations

import pathlib
from typing import Any

from protocol import canon
from protocol.framing import encode_frame
from protocol.messages import sign
from tests.collector.harness import Box, Collector, broker, key_of, make_store, stored, wait_for, write_config
from tests.collector.test_serial_ingest import SerialBox

REASON = "SELECT COALESCE(SUM(n), 0) FROM rejected_counts WHERE reason = 'level_above_scale'"


def signed_press(device: str, seq: int, k: int, n: int) -> bytes:
    """A press signed with the box's key, with no schema check on the way (as a foreign or broken box sends)."""
    msg: dict[str, Any] = {"v": 1, "t": "press", "d": device, "b": 1, "s": seq, "ts": 1_790_000_000_000 + seq}
    msg.update({"up": 1000 + seq, "o": "A1", "k": k, "n": n, "i": None, "tk": None, "f": 0})
    body = canon.dumps(msg)
    return body[:-1] + b',"mac":"' + sign(body, device, key_of(device)).encode() + b'"}'


def test_mqtt_press_above_its_scale_is_refused_and_counted(tmp_path: pathlib.Path, store_url: str) -> None:
    db = store_url if store_url.startswith("postgresql") else pathlib.Path(store_url)
    make_store(db, ["BOX-1"])
    with broker(tmp_path, ["BOX-1"]) as mq:
        col = Collector(write_config(tmp_path, store=db, port=mq.port)).start()
        box = Box("BOX-1", mq.port)
        try:
            box.publish(box.press(1))
            box.publish(signed_press("BOX-1", 2, k=3, n=2))
            box.publish(signed_press("BOX-1", 3, k=5, n=4))
            box.publish(signed_press("BOX-1", 4, k=2, n=2))  # the worst level of a 2-level box: fine
            wait_for(lambda: {(1, 1), (1, 4)} <= box.acked, what="the good presses acked")
            wait_for(lambda: stored(db, REASON) == 2, what="two rejections counted")
            assert col.terminate() == 0, col.stderr()
            assert (1, 2) not in box.acked and (1, 3) not in box.acked
            assert stored(db) == 2
            assert stored(db, "SELECT COUNT(*) FROM events WHERE level > scale") == 0
            assert stored(db, "SELECT COUNT(*) FROM rejected WHERE reason = 'level_above_scale'") == 2
            assert stored(db, "SELECT COUNT(*) FROM rejected WHERE detail LIKE '%k 3 > n 2%'") == 1
        finally:
            box.close()
            col.kill()


def test_serial_press_above_its_scale_is_refused_and_counted(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, ["SER-1"])
    link = tmp_path / "ttyBOX"
    box = SerialBox(link)
    col = Collector(write_config(tmp_path, port=None, serial=[str(link)])).start()
    try:
        wait_for(lambda: "serial port" in col.stderr() and "open" in col.stderr(), what="port open")
        box.write(box.frame(1))
        box.write(encode_frame(signed_press("SER-1", 2, k=4, n=3)))
        box.write(box.frame(3))
        box.wait_acked(2)
        wait_for(lambda: stored(db, REASON) == 1, what="the rejection counted")
        assert col.terminate() == 0, col.stderr()
        assert box.acked == {(1, 1), (1, 3)}
        assert stored(db) == 2
        assert stored(db, "SELECT COUNT(*) FROM rejected WHERE source = 'serial' AND reason = 'level_above_scale'") == 1
    finally:
        col.kill()
