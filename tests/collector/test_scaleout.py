"""Scale-out: several collectors on one broker (MQTT shared subscription) writing one PostgreSQL store.

Real mosquitto (passwords, ACL), real ``evalbox serve`` processes, the
machine's PostgreSQL. The boxes are CPython ones that behave as the firmware
does: every press stays in the box until the collector's signed ack, and
unacked presses are sent again after a while (``resend_ms``).
"""

from __future__ import annotations

import pathlib
import re
import threading
import time

import pytest

from tests.collector.harness import Box, Collector, broker, make_store, stored, wait_for, write_config

BOXES = [f"BOX-{i}" for i in range(1, 5)]
PRESSES = 300  # per box


def _collector(tmp_path: pathlib.Path, port: int, url: str, name: str, clean: bool) -> Collector:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    cfg = write_config(d, port=port, store=url)
    group = f'client_id = "{name}"\nshared_group = "g"\nclean_session = {str(clean).lower()}'
    cfg.write_text(cfg.read_text().replace('client_id = "collector-test"', group))
    return Collector(cfg)


def press(box: Box, seq: int) -> bytes:
    """The box's press ``seq`` (the same bytes every time it is sent): every other one 不满意."""
    return box.press(seq, level=1 + seq % 2)


class Resender:
    """What the firmware's sender does: resend every press not yet acked, every ``every_s``."""

    def __init__(self, boxes: list[Box], sent: dict[str, int], every_s: float = 1.5) -> None:
        self.boxes, self.sent, self.every_s = boxes, sent, every_s
        self.resent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for box in self.boxes:
                for s in range(self.sent[box.device]):
                    if (1, s) not in box.acked:
                        box.publish(press(box, s))
                        self.resent += 1

    def __enter__(self) -> Resender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("clean", [False, True], ids=["persistent", "clean-session"])
def test_two_collectors_on_postgresql_one_killed_mid_run_loses_nothing(
    tmp_path: pathlib.Path, postgres_database: str, clean: bool
) -> None:
    make_store(postgres_database, BOXES)
    with broker(tmp_path, BOXES) as mq:
        cols = [_collector(tmp_path, mq.port, postgres_database, f"c{i}", clean).start() for i in range(2)]
        boxes = [Box(d, mq.port) for d in BOXES]
        sent = dict.fromkeys(BOXES, 0)
        try:
            with Resender(boxes, sent) as resender:
                for s in range(PRESSES):
                    for box in boxes:
                        box.publish(press(box, s))
                        sent[box.device] = s + 1
                    if s == PRESSES // 3:
                        wait_for(lambda: stored(postgres_database) > 0, what="both collectors storing")
                        cols[0].kill()  # kill -9 mid-run: its in-flight batch is neither committed nor acked
                    time.sleep(0.002)
                wait_for(
                    lambda: all(len(b.acked) == PRESSES for b in boxes),
                    timeout=120,
                    what="every press acked by the surviving collector",
                )
            # The killed collector comes back: whatever the broker kept for its session is a duplicate now.
            cols[0] = _collector(tmp_path, mq.port, postgres_database, "c0", clean).start()
            time.sleep(2)
            outs = []
            for c in cols:
                assert c.terminate() == 0, c.stderr()
                outs.append("".join(c.out))
            n = len(BOXES) * PRESSES
            assert stored(postgres_database) == n
            assert stored(postgres_database, "SELECT COUNT(DISTINCT (device_id, boot, seq)) FROM events") == n
            # Rollups are counted by the writer that stored the event, and only by it.
            assert stored(postgres_database, "SELECT SUM(n) FROM rollups WHERE kind = 'rated'") == n
            assert stored(postgres_database, "SELECT SUM(n) FROM rollups WHERE level = 2") == n // 2
            survivor = int(re.search(r"stored (\d+)", outs[1]).group(1))  # type: ignore[union-attr]
            assert 0 < survivor < n  # the broker split the stream: the killed one had stored some
            print(f"scale-out: {n} presses, {resender.resent} resent by the boxes, survivor stored {survivor}")
        finally:
            for b in boxes:
                b.close()
            for c in cols:
                c.kill()
