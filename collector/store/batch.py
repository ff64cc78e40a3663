"""The ingest writer: one batch of events, statuses and rejections in ONE transaction, each event once.

Events are inserted once on their identity ``(device_id, boot, seq)``;
rollups, duty, invites, device status and rejected input are updated **in
the same transaction** as the batch. No statement runs per row.

How a batch finds out which events are new: the rows go into a temporary
``staging`` table, then

- SQLite (one writer): one ``UPDATE`` marks those whose identity is already
  stored, and ``INSERT … SELECT`` copies the others into ``events``;
- PostgreSQL (several collectors at once): the rows are staged with ``COPY``
  (binary, one round trip) as duplicates, and ``INSERT … ON CONFLICT DO
  NOTHING RETURNING`` clears the mark of those this transaction stored. An
  event another collector is committing at that moment is invisible to a
  ``SELECT`` but not to the unique index: the insert waits for the other
  commit, then skips the row, so only the writer that stored an event rolls
  it up. The batch reads ``months`` after ``LOCK TABLE months IN SHARE MODE``
  (``evalbox month close`` waits for batches in flight, later batches see the
  month closed); rollup rows are upserted in one fixed order so two writers
  do not deadlock, and a ``WriteConflict`` runs the whole batch again.

``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE SET n = rollups.n +
excluded.n`` (``collector.store.rollups``) then rolls up only the new events.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from collector.store.database import Database, WriteConflict
from collector.store.records import COLUMN, EVENT_COLUMNS, ClockRef, EventRow, Rejection, StatusUpdate
from collector.store.rollups import INSERT_ROLLUPS, rollup_select

DEFAULT_REJECTED_CAP = 10_000
WRITE_ATTEMPTS = 5

_COLS = ", ".join(EVENT_COLUMNS)
STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS staging (idx INTEGER NOT NULL, device_id TEXT, boot INTEGER, seq INTEGER,"
    " type TEXT, officer_id TEXT, window_id TEXT, press_ms BIGINT, device_ts_ms BIGINT, uptime_ms BIGINT,"
    " recv_ms BIGINT, month TEXT, level INTEGER, scale INTEGER, invite_no INTEGER, ticket TEXT, flags INTEGER,"
    " kind TEXT, source TEXT, late INTEGER, dup INTEGER NOT NULL DEFAULT 0)"
)
_STAGING_COLUMNS = ("idx", *EVENT_COLUMNS, "late", "dup")
_MARK_DUPS = (
    "UPDATE staging SET dup = 1 WHERE EXISTS (SELECT 1 FROM events e WHERE e.device_id = staging.device_id"
    " AND e.boot = staging.boot AND e.seq = staging.seq)"
)
_INSERT_EVENTS = (
    f"INSERT INTO events ({_COLS}, late) SELECT {_COLS}, late FROM staging WHERE dup = 0"
    " ON CONFLICT (device_id, boot, seq) DO NOTHING"
)
# Every staged event starts as a duplicate; the insert clears ``dup`` for the ones it stored.
_INSERT_RETURNING = (
    f"WITH ins AS (INSERT INTO events ({_COLS}, late) SELECT {_COLS}, late FROM staging"
    " ORDER BY device_id, boot, seq ON CONFLICT (device_id, boot, seq) DO NOTHING"
    " RETURNING device_id, boot, seq)"
    " UPDATE staging s SET dup = 0 FROM ins"
    " WHERE s.device_id = ins.device_id AND s.boot = ins.boot AND s.seq = ins.seq"
)
_ROLLUP = (
    INSERT_ROLLUPS
    + rollup_select("dup = 0", source="staging")
    # A fixed order: two writers (PostgreSQL, several collectors) lock rollup rows in the same order.
    + " ORDER BY 2, 1, 3, 4, 5, 6, 7"
    " ON CONFLICT (month, officer_id, window_id, kind, level, scale, late) DO UPDATE SET n = rollups.n + excluded.n"
)
_DUTY_IN = (
    "INSERT INTO duty (device_id, officer_id, start_ms) SELECT device_id, officer_id, press_ms FROM staging"
    " WHERE dup = 0 AND type = 'signin' AND officer_id IS NOT NULL ON CONFLICT DO NOTHING"
)
_DUTY_OUT = (
    "UPDATE duty SET end_ms = ? WHERE device_id = ? AND end_ms IS NULL AND start_ms <= ?"
    " AND (CAST(? AS TEXT) IS NULL OR officer_id = ?)"
)
_INVITE_OPEN = (
    "INSERT INTO invites (device_id, boot, invite_no, officer_id, ticket, opened_ms) SELECT device_id, boot,"
    " invite_no, officer_id, ticket, press_ms FROM staging WHERE dup = 0 AND type = 'invite'"
    " ON CONFLICT (device_id, boot, invite_no) DO NOTHING"
)
_INVITE_UNRATED = (
    "INSERT INTO invites (device_id, boot, invite_no, officer_id, ticket, opened_ms, outcome) SELECT device_id,"
    " boot, invite_no, officer_id, ticket, press_ms, 'unrated' FROM staging WHERE dup = 0 AND type = 'unrated'"
    " ON CONFLICT (device_id, boot, invite_no) DO UPDATE SET outcome = 'unrated'"
)
_INVITE_RATED = (
    "UPDATE invites SET outcome = 'rated', rating_seq = ? WHERE device_id = ? AND boot = ? AND invite_no = ?"
    " AND outcome = 'open'"
)
_SEEN = "UPDATE devices SET last_seen_ms = ? WHERE id = ? AND (last_seen_ms IS NULL OR last_seen_ms < ?)"
_STATUS_ONLINE = (
    "UPDATE devices SET status = 'online', last_seen_ms = ?, boot = ?, uptime_ms = ?, status_wall_ms = ?, fw = ?,"
    " outbox = ?, outbox_full = ?, mem = ?, rssi = ?, reset_cause = ?, last_error = ?, selftest = ?,"
    " config_version = ? WHERE id = ?"
)
_STATUS_OFFLINE = "UPDATE devices SET status = 'offline' WHERE id = ?"
_CLOCK_REF = (
    "INSERT INTO clock_refs (device_id, boot, recv_ms, uptime_ms) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (device_id, boot) DO UPDATE SET recv_ms = excluded.recv_ms, uptime_ms = excluded.uptime_ms"
)
_CLOCK_REF_PRUNE = "DELETE FROM clock_refs WHERE device_id = ? AND boot < ?"
CLOCK_REF_BOOTS = 4  # references kept per box: its last few boots (an outbox may still hold their events)
_REJECT = "INSERT INTO rejected (at_ms, reason, source, origin, detail, raw) VALUES (?, ?, ?, ?, ?, ?)"
_REJECT_COUNT = (
    "INSERT INTO rejected_counts (reason, n) VALUES (?, ?)"
    " ON CONFLICT (reason) DO UPDATE SET n = rejected_counts.n + excluded.n"
)


class BatchWriter:
    """``write_batch`` over ``self.db`` (whose session has the ``staging`` table: ``STAGING_DDL``)."""

    db: Database
    rejected_cap = DEFAULT_REJECTED_CAP

    async def write_batch(
        self,
        events: Sequence[EventRow],
        *,
        statuses: Sequence[StatusUpdate] = (),
        rejects: Sequence[Rejection] = (),
        seen: dict[str, int] | None = None,
        clock_refs: Sequence[ClockRef] = (),
    ) -> list[bool]:
        """Store a batch in ONE transaction; for each event, True if newly stored, False if a duplicate.

        Rollups, duty (sign-in/out), invites, device status and last-seen,
        and rejected input are written in the same transaction. A transaction
        the engine aborted for a conflict with another writer
        (``WriteConflict``) rolled back whole and runs again, up to
        ``WRITE_ATTEMPTS`` times.
        """
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return await self._write_batch(events, statuses, rejects, seen, clock_refs)
            except WriteConflict:
                if attempt == WRITE_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    async def _write_batch(
        self,
        events: Sequence[EventRow],
        statuses: Sequence[StatusUpdate],
        rejects: Sequence[Rejection],
        seen: dict[str, int] | None,
        clock_refs: Sequence[ClockRef] = (),
    ) -> list[bool]:
        stored = [False] * len(events)
        async with self.db.transaction() as db:
            if events:
                stored = await _write_events(db, events)
            if statuses:
                await _write_statuses(db, statuses)
            if seen:
                await db.executemany(_SEEN, [(ms, dev, ms) for dev, ms in sorted(seen.items())])
            if rejects:
                await _write_rejects(db, rejects, self.rejected_cap)
            if clock_refs:
                refs = sorted(clock_refs)  # one order for every writer (PostgreSQL: no deadlock)
                await db.executemany(_CLOCK_REF, refs)
                await db.executemany(_CLOCK_REF_PRUNE, sorted({(d, b - CLOCK_REF_BOOTS + 1) for d, b, _r, _u in refs}))
        return stored

    async def clock_refs(self) -> list[ClockRef]:
        """Every stored placement reference ``(device, boot, recv_ms, uptime_ms)``."""
        rows = await self.db.fetch("SELECT device_id, boot, recv_ms, uptime_ms FROM clock_refs")
        return [(str(d), int(b), int(r), int(u)) for d, b, r, u in rows]


async def _write_events(db: Database, events: Sequence[EventRow]) -> list[bool]:
    await db.lock("months", mode="SHARE")
    closed = {r[0] for r in await db.fetch("SELECT month FROM months")}
    month_i, dev_i, boot_i, seq_i = COLUMN["month"], COLUMN["device_id"], COLUMN["boot"], COLUMN["seq"]
    first: dict[tuple[str, int, int], int] = {}
    rows = []
    for idx, ev in enumerate(events):
        ident = (ev[dev_i], ev[boot_i], ev[seq_i])
        if ident in first:  # the same identity twice in one batch: the later one is a duplicate
            continue
        first[ident] = idx
        rows.append((idx, *ev, 1 if ev[month_i] in closed else 0))
    dup = await (_insert_concurrent(db, rows) if db.dialect == "postgresql" else _insert_single_writer(db, rows))
    stored = [False] * len(events)
    for idx in first.values():
        stored[idx] = idx not in dup
    new = [ev for idx, ev in enumerate(events) if stored[idx]]
    if new:
        await db.execute(_ROLLUP)
        await _side_tables(db, new)
    await db.execute("DELETE FROM staging")
    return stored


async def _insert_single_writer(db: Database, rows: list[tuple[Any, ...]]) -> set[int]:
    """Stage, mark the stored ones, insert the rest; the ``idx`` of the duplicates (one writer: ask, then insert)."""
    await db.copy_records("staging", _STAGING_COLUMNS[:-1], rows)
    await db.execute(_MARK_DUPS)
    dup = {int(r[0]) for r in await db.fetch("SELECT idx FROM staging WHERE dup = 1")}
    await db.execute(_INSERT_EVENTS)
    return dup


async def _insert_concurrent(db: Database, rows: list[tuple[Any, ...]]) -> set[int]:
    """Stage as duplicates, insert, unmark what this transaction stored; the ``idx`` of the duplicates."""
    await db.copy_records("staging", _STAGING_COLUMNS, [(*r, 1) for r in rows])
    await db.execute(_INSERT_RETURNING)
    return {int(r[0]) for r in await db.fetch("SELECT idx FROM staging WHERE dup = 1")}


async def _side_tables(db: Database, new: list[EventRow]) -> None:
    type_i, press_i, officer_i = COLUMN["type"], COLUMN["press_ms"], COLUMN["officer_id"]
    types = {ev[type_i] for ev in new}
    if "signin" in types:
        await db.execute(_DUTY_IN)
    if "signout" in types:
        rows = [
            (ev[press_i], ev[0], ev[press_i], ev[officer_i], ev[officer_i]) for ev in new if ev[type_i] == "signout"
        ]
        await db.executemany(_DUTY_OUT, rows)
    if "invite" in types:
        await db.execute(_INVITE_OPEN)
    if "unrated" in types:
        await db.execute(_INVITE_UNRATED)
    seq_i, boot_i, invite_i, kind_i = COLUMN["seq"], COLUMN["boot"], COLUMN["invite_no"], COLUMN["kind"]
    rated = [
        (ev[seq_i], ev[0], ev[boot_i], ev[invite_i])
        for ev in new
        if ev[type_i] == "press" and ev[invite_i] is not None and ev[kind_i] == "rated"
    ]
    if rated:
        await db.executemany(_INVITE_RATED, rated)


async def _write_statuses(db: Database, statuses: Sequence[StatusUpdate]) -> None:
    online = []
    offline = []
    for st in sorted(statuses, key=lambda st: st.device_id):  # stable: a box's last status wins
        m = st.msg
        if m is None:
            offline.append((st.device_id,))
            continue
        online.append(
            (
                st.at_ms,
                m["b"],
                m["up"],
                m.get("ts"),
                m["fw"],
                m["q"],
                int(m["full"]),
                m["mem"],
                m.get("rssi"),
                m["rst"],
                m.get("err"),
                m["st"],
                m["cv"],
                st.device_id,
            )
        )
    await db.executemany(_STATUS_ONLINE, online)
    await db.executemany(_STATUS_OFFLINE, offline)


async def _write_rejects(db: Database, rejects: Sequence[Rejection], cap: int) -> None:
    keep = rejects[-cap:]
    await db.executemany(_REJECT, [(r.at_ms, r.reason, r.source, r.origin, r.detail[:200], r.raw[:1100]) for r in keep])
    counts: dict[str, int] = {}
    for r in rejects:
        counts[r.reason] = counts.get(r.reason, 0) + 1
    await db.executemany(_REJECT_COUNT, list(counts.items()))
    await db.execute("DELETE FROM rejected WHERE id <= (SELECT MAX(id) FROM rejected) - ?", (cap,))
