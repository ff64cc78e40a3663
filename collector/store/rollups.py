"""The rollups' one definition: per officer × month × window × kind × level × scale × late, a count.

The ingest writer rolls up each batch's new events with it (from its
``staging`` table); ``evalbox rebuild`` and ``evalbox store copy``'s check
recompute rollups from ``events`` with the same SQL, so the two always agree.

Kinds: ``rated``, ``unsolicited``, ``misuse`` (presses, by their flags),
``invite`` and ``unrated`` (``level`` and ``scale`` 0). Presses with nobody
signed in roll up under ``officer_id = ''``.
"""

from __future__ import annotations

ROLLUP_KINDS = ("rated", "unsolicited", "misuse", "invite", "unrated")
ROLLUP_COLUMNS = ("officer_id", "month", "window_id", "kind", "level", "scale", "late", "n")
ROLLUP_KEY = ("month", "officer_id", "window_id", "kind", "level", "scale", "late")  # the primary key, in order

_KINDS = ", ".join(f"'{k}'" for k in ROLLUP_KINDS)
_LEVEL = "CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(level, 0) END"
_SCALE = "CASE WHEN kind IN ('invite', 'unrated') THEN 0 ELSE COALESCE(scale, 0) END"
_GROUP = f"COALESCE(officer_id, ''), month, COALESCE(window_id, ''), kind, {_LEVEL}, {_SCALE}, late"


def rollup_select(where: str = "month = ?", source: str = "events") -> str:
    """The rollup rows (``ROLLUP_COLUMNS``) recomputed from the ``source`` rows matching ``where``."""
    return f"SELECT {_GROUP}, COUNT(*) FROM {source} WHERE {where} AND kind IN ({_KINDS}) GROUP BY {_GROUP}"


INSERT_ROLLUPS = f"INSERT INTO rollups ({', '.join(ROLLUP_COLUMNS)}) "
