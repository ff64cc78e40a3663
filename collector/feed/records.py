"""The feed's rating documents: one JSON object per rating, with the data items of the 好差评 rules.

A rating is a ``press`` event the policy counts as a rating (``Policy.counted``:
``rated``, and ``unsolicited``/``misuse`` when the policy counts them). Its
level on the box's scale (1 = best .. ``scale`` = worst) becomes a level of the
national five-level scale by ``FIVE_LEVEL`` (docs/feed.md has the table and
every field).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from collector.report import Policy
from collector.timeplace import zone

CHANNEL = "窗口评价器"
SOURCE = "evalbox"
# The five levels of the 互联网+政务服务 好差评 rules, by code (5 best .. 1 worst).
LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
# The box's level (1 = best) on each scale -> the five-level code. The keys say on the box what these say:
# 2 keys 满意 | 不满意; 3 keys 满意 | 基本满意 | 不满意; 4 keys 非常满意 | 满意 | 不满意 | 非常不满意;
# 5 keys the five levels themselves. No box level is ever mapped above or below what its key says.
FIVE_LEVEL: dict[int, dict[int, int]] = {
    2: {1: 4, 2: 2},
    3: {1: 4, 2: 3, 3: 2},
    4: {1: 5, 2: 4, 3: 2, 4: 1},
    5: {1: 5, 2: 4, 3: 3, 4: 2, 5: 1},
}

# The columns every rating document is made from; ``e`` is ``events``.
RATING_SELECT = (
    "SELECT e.device_id, e.boot, e.seq, e.press_ms, e.recv_ms, e.month, e.level, e.scale, e.ticket, e.late,"
    " e.kind, e.officer_id, o.name AS officer_name, e.window_id, w.name AS window_name, w.unit_id,"
    " u.name AS unit_name"
)
RATING_JOINS = (
    " LEFT JOIN officers o ON o.id = e.officer_id LEFT JOIN windows w ON w.id = e.window_id"
    " LEFT JOIN units u ON u.id = w.unit_id"
)


def rating_filter(policy: Policy, alias: str = "e") -> tuple[str, list[Any]]:
    """The SQL condition (and its parameters) of the events the feed carries: presses counted as ratings."""
    kinds = sorted(policy.counted)
    marks = ",".join("?" * len(kinds))
    return (
        f"{alias}.type = 'press' AND {alias}.kind IN ({marks}) AND {alias}.scale BETWEEN 2 AND 5"
        f" AND {alias}.level BETWEEN 1 AND {alias}.scale",
        kinds,
    )


def rating_id(device_id: str, boot: int, seq: int) -> str:
    """A rating's id: the box, its boot and the press's sequence number (unique and never reused)."""
    return f"{device_id}:{boot}:{seq}"


def _named(id_: str | None, name: str | None) -> dict[str, str | None] | None:
    return {"id": id_, "name": name} if id_ else None


def rating_doc(row: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The feed's document of one rating (a row of ``RATING_SELECT``)."""
    code = FIVE_LEVEL[row["scale"]][row["level"]]
    at = dt.datetime.fromtimestamp(row["press_ms"] / 1000, tz=zone(policy.timezone))
    return {
        "id": rating_id(row["device_id"], row["boot"], row["seq"]),
        "channel": CHANNEL,
        "source": SOURCE,
        "rated_at": at.isoformat(timespec="seconds"),
        "month": row["month"],
        "level": LEVEL_NAMES[code],
        "level_code": code,
        "bad": row["level"] in policy.bad.get(row["scale"], frozenset()),
        "ticket": row["ticket"],
        "unit": _named(row["unit_id"], row["unit_name"]),
        "window": _named(row["window_id"], row["window_name"]),
        "officer": _named(row["officer_id"], row["officer_name"]),
        "device": row["device_id"],
        "box_level": row["level"],
        "box_scale": row["scale"],
        "solicited": row["kind"] == "rated",
        "late": bool(row["late"]),
    }


def json_lines(docs: Sequence[dict[str, Any]]) -> bytes:
    """Documents as JSON Lines (UTF-8, one object per line, each line ending in ``\\n``)."""
    return b"".join(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for d in docs)
