"""``evalbox store backup`` while the collector stores presses: the copy is one commit's state of the store.

A month (September) is stored whole first; October's presses keep arriving while the backup runs. The copy
must pass SQLite's integrity check, report September exactly as the live store does, and hold a part of
October whose rollups match its events (no half batch).
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import threading

from collector.cli import main
from tests.collector.harness import T0, Box, Collector, broker, make_store, stored, wait_for, write_config

OCTOBER = T0 + 20 * 86400 * 1000  # 2026-10-11


def report(db: pathlib.Path, month: str, out: pathlib.Path) -> dict[str, object]:
    assert main(["report", "--db", str(db), "--month", month, "--format", "json", "-o", str(out)]) == 0
    data: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
    return data


def test_backup_during_ingest_reports_the_same_month(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "store.db"
    make_store(db, ["BOX-1", "BOX-2"])
    with broker(tmp_path, ["BOX-1", "BOX-2"]) as mq:
        col = Collector(write_config(tmp_path, store=db, port=mq.port, max_ms=5)).start()
        sept, octo = Box("BOX-1", mq.port), Box("BOX-2", mq.port)
        stop = threading.Event()

        def keep_pressing() -> None:
            seq = 0
            while not stop.is_set():
                octo.publish(octo.press(seq, level=1 + seq % 2, ts=OCTOBER + seq * 1000))
                seq += 1
                stop.wait(0.004)

        try:
            for s in range(300):
                sept.publish(sept.press(s, level=1 + s % 3 // 2))
            wait_for(lambda: len(sept.acked) == 300, what="September stored")
            presser = threading.Thread(target=keep_pressing)
            presser.start()
            wait_for(lambda: stored(db, "SELECT COUNT(*) FROM events WHERE month = '2026-10'") >= 200, 60)
            copy = tmp_path / "backup" / "evalbox-copy.db"
            copy.parent.mkdir()
            assert main(["store", "backup", "--db", str(db), str(copy)]) == 0
            said = capsys.readouterr().out
            wait_for(lambda: stored(db, "SELECT COUNT(*) FROM events WHERE month = '2026-10'") >= 400, 60)
            stop.set()
            presser.join()
            assert col.terminate() == 0, col.stderr()
        finally:
            stop.set()
            sept.close()
            octo.close()
            col.kill()
    assert "integrity ok" in said and "2026-09 300" in said
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        in_copy = conn.execute("SELECT COUNT(*) FROM events WHERE month = '2026-10'").fetchone()[0]
        rolled = conn.execute("SELECT SUM(n) FROM rollups WHERE month = '2026-10'").fetchone()[0]
    live = stored(db, "SELECT COUNT(*) FROM events WHERE month = '2026-10'")
    assert 200 <= in_copy < live  # taken mid-stream: a part of October ...
    assert rolled == in_copy  # ... and a whole commit of it: rollups match the copied events
    assert report(copy, "2026-09", tmp_path / "c.json") == report(db, "2026-09", tmp_path / "l.json")
    assert not (copy.parent / (copy.name + ".partial")).exists()
    # the copy is a store the collector's commands read, and a second backup does not overwrite it
    assert main(["store", "backup", "--db", str(db), str(copy)]) == 2
    assert "exists" in capsys.readouterr().err
