"""The always-on collector's part in firmware updates: each box's ``fws`` recorded, its trial acked, a rollback alerted.

``evalbox serve`` hands every box firmware state it receives (MQTT
``evalbox/<d>/fwst``, retained, and the same signed message on a serial
line) to ``FirmwareWatch.on_state`` after the batch it came in committed:

- the state is stored with ``rollout.record_state`` (what ``evalbox fleet``
  stores), so the devices page shows version, slot and trial of every box
  the collector hears, whether a rollout runs or not;
- a box announcing its trial gets the signed empty ack its self-test waits
  for (``transfer.trial_ack``, as a running rollout sends it), over the
  transport it spoke on; a box whose rollout process was stopped after it
  took the release still commits instead of rolling back after
  ``fw_trial_ms``. Two collectors (a shared subscription) or a collector and
  a rollout may both ack: the box commits on the first and ignores the rest;
- a box reporting ``rolled_back`` raises the ``fw_rollback`` alert (its key
  names box and version: raised once whoever hears it first).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from collector.fleet.rollout import Alert, record_state
from collector.fleet.transfer import trial_ack, wants_trial_ack
from collector.store import Database

log = logging.getLogger("evalbox.fleet")

_FROM = re.compile(r"rolled back from (\S+?):")


def rolled_back_from(why: str | None) -> str:
    """The version a box gave up on, from its ``why`` (``rolled back from 1.2.0: self-test: ...``)."""
    m = _FROM.match(why or "")
    return m.group(1) if m else "?"


class FirmwareWatch:
    """Store, ack and alert on boxes' firmware states; ``on_state`` runs in the collector's writer."""

    def __init__(self, db: Database, on_rollback: Alert | None = None) -> None:
        self.db = db
        self.on_rollback = on_rollback
        self.trial_acks = 0

    async def on_state(self, device: str, key: bytes, msg: dict[str, Any], send: Callable[[bytes], None]) -> None:
        await record_state(self.db, device, msg)
        if wants_trial_ack(msg):
            send(trial_ack(device, key))
            self.trial_acks += 1
            log.info("%s runs %s in trial: signed ack sent / 试运行确认已发送", device, msg.get("ver"))
        elif msg["st"] == "rolled_back" and self.on_rollback is not None:
            why = msg.get("why") or ""
            version = rolled_back_from(why)
            row = await self.db.fetchone(
                "SELECT r.id FROM fw_rollouts r JOIN fw_rollout_boxes b ON b.rollout_id = r.id"
                " WHERE b.device_id = ? AND r.version = ? ORDER BY r.id DESC LIMIT 1",
                (device, version),
            )
            await self.on_rollback(self.db, device, version, why, int(row[0]) if row else None)
