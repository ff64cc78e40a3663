"""Placing events from a box whose clock never synced: one (receive time, uptime) reference per box and boot.

A box without wall time sends ``ts = null`` and its uptime ``up``. A message
received at ``recv`` with uptime ``up`` says the boot began at or before
``recv - up`` (the message may have waited in the network, the broker or the
box's outbox, never less than zero); so the reference is the observation with
the smallest ``recv - up`` that came straight from the box, and an event is
placed at ``min(reference + up, recv)``.

What may set a reference:

- a **live status** (not a retained one): it replaces the reference when it
  says the boot began earlier, or later by no more than ``JITTER_MS`` plus
  ``DRIFT_PPM`` of the uptime since the reference (a box's crystal may run a
  little slow); one that came later than that waited somewhere (a status
  queued for the collector's session while it was down) and is not taken;
- a **retained status** never: the broker re-delivers the last one to every
  new subscription, with the uptime it had when it was published;
- an **unsynced event** when it says the boot began earlier (the first one of
  a boot with no reference at all sets it).

The references are stored with each batch (``clock_refs``) and read back at
start, so a collector restart places the same press at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.store.batch import CLOCK_REF_BOOTS
from collector.store.records import ClockRef

JITTER_MS = 1000  # how much later than the reference a live status may say the boot began
DRIFT_PPM = 100  # ... plus this share of the uptime since the reference (a slow crystal)


class ClockRefs:
    """The references in memory, and those changed since the last ``take_changed``."""

    def __init__(self) -> None:
        self.refs: dict[tuple[str, int], tuple[int, int]] = {}  # (device, boot) → (recv_ms, uptime_ms)
        self._changed: set[tuple[str, int]] = set()

    def load(self, rows: Iterable[ClockRef]) -> None:
        """Stored references (at start); one already in memory is kept."""
        for d, b, recv, up in rows:
            self.refs.setdefault((d, b), (recv, up))

    def status(self, device: str, boot: int, up: int, recv: int, *, retained: bool) -> bool:
        """A status message; True when it became the reference."""
        if retained:
            return False
        cur = self.refs.get((device, boot))
        if cur is not None:
            later = (recv - up) - (cur[0] - cur[1])  # how much later than the reference the boot would begin
            if later > 0 and (up <= cur[1] or later > JITTER_MS + (up - cur[1]) * DRIFT_PPM // 1_000_000):
                return False
        self._set(device, boot, recv, up)
        return True

    def place(self, device: str, boot: int, up: int, recv: int) -> int:
        """Wall time of an unsynced event with uptime ``up`` received at ``recv``; it refines the reference."""
        cur = self.refs.get((device, boot))
        if cur is None or recv - up < cur[0] - cur[1]:
            self._set(device, boot, recv, up)
            return recv
        return min(cur[0] - cur[1] + up, recv)

    def _set(self, device: str, boot: int, recv: int, up: int) -> None:
        if (device, boot) not in self.refs:
            self.refs.pop((device, boot - CLOCK_REF_BOOTS), None)  # memory stays bounded as boxes restart
        self.refs[device, boot] = (recv, up)
        self._changed.add((device, boot))

    def take_changed(self) -> list[ClockRef]:
        """The references changed since the last call, to store with the batch."""
        out = [(d, b, *self.refs[d, b]) for d, b in sorted(self._changed)]
        self._changed.clear()
        return out
