"""Check what the collector stored and reported against the simulator's ground truth.

Two checks, both exact:

- ``check_events``: the identities stored equal the identities the boxes
  confirmed saved — ``lost`` (confirmed, not stored), ``duplicated`` (stored
  more than once: impossible by the primary key, checked anyway on the raw
  rows) and ``extra`` (stored, never confirmed). ``unrated`` events, made by
  the boxes themselves when an invite runs out, are matched by
  ``(device, boot, invite number)``.
- ``check_report``: each officer's line of the monthly report JSON against
  the truth summed from the plan (rated, satisfied, invites, unrated,
  unsolicited, misuse).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from collector.sim.fleet import Record
from collector.sim.traffic import OfficerTruth


@dataclasses.dataclass
class EventCheck:
    expected: int
    stored: int
    lost: int
    duplicated: int
    extra: int
    examples: list[str]

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.extra == 0


def check_events(
    records: Iterable[Record],
    expired: Iterable[tuple[str, int, int, int, Any]],
    stored_rows: Iterable[tuple[str, int, int, str, int | None]],
) -> EventCheck:
    """``stored_rows``: ``(device_id, boot, seq, type, invite_no)`` of every stored event of the fleet."""
    want = Counter((r.device_id, r.boot, r.seq) for r in records)
    want_unrated = Counter((d, b, i) for d, b, i, _, _ in expired)
    have: Counter[tuple[str, int, int]] = Counter()
    have_unrated: Counter[tuple[str, int, int]] = Counter()
    rows = 0
    for device_id, boot, seq, typ, invite_no in stored_rows:
        rows += 1
        if typ == "unrated":
            have_unrated[(device_id, boot, int(invite_no or 0))] += 1
        else:
            have[(device_id, boot, seq)] += 1
    examples: list[str] = []
    lost = sum(1 for k in want if k not in have) + sum(1 for k in want_unrated if k not in have_unrated)
    dup = sum(n - 1 for n in have.values() if n > 1) + sum(n - 1 for n in have_unrated.values() if n > 1)
    extra = sum(1 for k in have if k not in want) + sum(1 for k in have_unrated if k not in want_unrated)
    examples += [f"lost {k}" for k in list(k for k in want if k not in have)[:5]]
    examples += [f"extra {k}" for k in list(k for k in have if k not in want)[:5]]
    examples += [f"lost unrated {k}" for k in list(k for k in want_unrated if k not in have_unrated)[:5]]
    examples += [f"extra unrated {k}" for k in list(k for k in have_unrated if k not in want_unrated)[:5]]
    expected = sum(want.values()) + sum(want_unrated.values())
    return EventCheck(expected, rows, lost, dup, extra, examples)


def check_report(report: Mapping[str, Any], truth: Mapping[str, OfficerTruth]) -> list[str]:
    """Differences between the report's officer lines and the truth (empty: they agree)."""
    lines = {line["officer"]: line for line in report["officers"]}
    diffs: list[str] = []
    for officer, t in sorted(truth.items()):
        line = lines.get(officer)
        if line is None:
            diffs.append(f"{officer}: missing from the report")
            continue
        want = {"rated": t.rated, "satisfied": t.satisfied, "invites": t.invites, "unrated": t.unrated,
                "unsolicited": t.unsolicited, "misuse": t.misuse}  # fmt: skip
        for key, value in want.items():
            if line.get(key) != value:
                diffs.append(f"{officer}: {key} reported {line.get(key)}, truth {value}")
    for officer, line in lines.items():
        if officer not in truth and (line.get("rated") or line.get("invites")):
            diffs.append(f"{officer}: in the report with {line.get('rated')} rated, not in the truth")
    return diffs
