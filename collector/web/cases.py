"""Bad-review follow-up: every unsatisfied rating opens a case with deadlines.

A case is opened for each counted rating (kind ``rated``) whose level is in
the policy's bad set. Deadlines count working days (Mon–Fri, minus holidays,
plus make-up days) from the press: the return visit (回访) is due by the end
of the Nth working day after it, the rectification (整改) likewise.

Flow: ``open`` → record return visit → record rectification → ``closed``; or
``open`` → ``appeal`` (mistaken or malicious rating) with a reason. A case is
closed once: a second close raises ``ActionError`` and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from collector.clock import now_ms
from collector.report import Policy
from collector.store import Database, Row
from collector.store.audit import append_audit, case_state, sha256_text
from collector.timeplace import zone
from collector.web.alerts import raise_alert
from collector.web.errors import ActionError, Forbidden
from collector.web.scope import Viewer
from collector.web.settings import WebSettings

WATERMARK = "cases"
# Ingest stamps recv_ms before its batch commits; re-reading this much of the
# past catches rows committed late. Inserting a case is idempotent.
OVERLAP_MS = 120_000
BATCH = 50_000  # events read per scan; the watermark advances to the last one read


def is_working_day(day: dt.date, settings: WebSettings) -> bool:
    """Mon–Fri, minus ``holidays``, plus ``extra_working_days``."""
    iso = day.isoformat()
    if iso in settings.extra_working_days:
        return True
    return day.weekday() < 5 and iso not in settings.holidays


def working_deadline(start_ms: int, working_days: int, settings: WebSettings, timezone: str) -> int:
    """Epoch ms of the end (local midnight) of the ``working_days``-th working day after ``start_ms``'s day."""
    tz = zone(timezone)
    day = dt.datetime.fromtimestamp(start_ms / 1000, tz=tz).date()
    left = working_days
    while left > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, settings):
            left -= 1
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return int(end.timestamp() * 1000)


async def _watermark(tx: Database, name: str) -> int:
    row = await tx.fetchone("SELECT value FROM web_watermarks WHERE name = ?", (name,))
    return int(row["value"]) if row else 0


async def _set_watermark(tx: Database, name: str, value: int) -> None:
    await tx.execute(
        "INSERT INTO web_watermarks (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


async def open_cases(db: Database, settings: WebSettings, policy: Policy, now: int | None = None) -> list[int]:
    """Open a case (and a ``bad_rating`` alert) for each new bad rating (the policy's bad levels); the new case ids.

    Idempotent.
    """
    now = now or now_ms()
    opened: list[int] = []
    async with db.transaction() as tx:
        mark = await _watermark(tx, WATERMARK)
        rows = (
            await tx.fetch(
                "SELECT e.device_id, e.boot, e.seq, e.officer_id, e.window_id, e.month, e.press_ms, e.level, e.scale,"
                " e.ticket, e.recv_ms, o.name AS officer_name, w.name AS window_name,"
                " COALESCE(o.unit_id, w.unit_id) AS unit_id"
                " FROM events e LEFT JOIN officers o ON o.id = e.officer_id LEFT JOIN windows w ON w.id = e.window_id"
                " WHERE e.recv_ms >= ? AND e.kind = 'rated' ORDER BY e.recv_ms LIMIT ?",
                (max(0, mark - OVERLAP_MS), BATCH),
            )
        ).dicts()
        top = mark
        for r in rows:
            top = max(top, int(r["recv_ms"]))
            scale = int(r["scale"] or 2)
            if r["level"] not in policy.bad.get(scale, ()):
                continue
            new = await tx.fetchone(
                "INSERT INTO cases (device_id, boot, seq, officer_id, window_id, unit_id, month, press_ms, level,"
                " scale, ticket, opened_ms, visit_due_ms, fix_due_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (device_id, boot, seq) DO NOTHING RETURNING id",
                (
                    r["device_id"],
                    r["boot"],
                    r["seq"],
                    r["officer_id"] or "",
                    r["window_id"] or "",
                    r["unit_id"] or "",
                    r["month"],
                    r["press_ms"],
                    r["level"],
                    scale,
                    r["ticket"],
                    now,
                    working_deadline(r["press_ms"], settings.return_visit_working_days, settings, policy.timezone),
                    working_deadline(r["press_ms"], settings.rectification_working_days, settings, policy.timezone),
                ),
            )
            if new is None:
                continue
            case_id = int(new[0])
            opened.append(case_id)
            after = await case_state(tx, case_id)
            await append_audit(
                tx, actor="system", action="case.open", subject=f"case:{case_id}", after=after, at_ms=now
            )
            if now - r["press_ms"] > settings.bad_alert_max_age_s * 1000:
                continue
            who = f"{r['officer_name'] or r['officer_id'] or '?'}"
            where = r["window_name"] or r["window_id"]
            ticket = f" ({r['ticket']})" if r["ticket"] else ""
            await raise_alert(
                tx,
                key=f"bad:{r['device_id']}:{r['boot']}:{r['seq']}",
                kind="bad_rating",
                unit_id=r["unit_id"],
                subject=r["officer_id"] or "",
                text_zh=f"不满意评价：{who}，{where}{ticket}，案件 #{case_id}",
                text_en=f"Unsatisfied rating: {who} at {where}{ticket}, case #{case_id}",
                payload={
                    "case_id": case_id,
                    "officer_id": r["officer_id"],
                    "window_id": r["window_id"],
                    "ticket": r["ticket"],
                    "level": r["level"],
                    "scale": scale,
                    "press_ms": r["press_ms"],
                },
                settings=settings,
                now=now,
            )
        await _set_watermark(tx, WATERMARK, top)
    return opened


def case_status(row: Row | dict[str, Any], now: int) -> dict[str, Any]:
    """A case row as a dict with ``visit_overdue``, ``fix_overdue`` and ``overdue`` added."""
    case = dict(row)
    open_ = case["state"] == "open"
    case["visit_overdue"] = open_ and case["visit_ms"] is None and now > case["visit_due_ms"]
    case["fix_overdue"] = open_ and now > case["fix_due_ms"]
    case["overdue"] = case["visit_overdue"] or case["fix_overdue"]
    return case


async def list_cases(
    db: Database, viewer: Viewer, *, state: str | None = None, month: str | None = None, officer: str | None = None
) -> list[dict[str, Any]]:
    scope_sql, params = viewer.unit_filter("c.unit_id")
    where, args = [scope_sql], list[Any](params)
    for col, val in (("c.state", state), ("c.month", month), ("c.officer_id", officer)):
        if val:
            where.append(f"{col} = ?")
            args.append(val)
    rows = (
        await db.fetch(
            "SELECT c.*, o.name AS officer_name, w.name AS window_name FROM cases c"
            " LEFT JOIN officers o ON o.id = c.officer_id LEFT JOIN windows w ON w.id = c.window_id WHERE "
            + " AND ".join(where)
            + " ORDER BY c.state = 'open' DESC, c.fix_due_ms, c.id",
            args,
        )
    ).dicts()
    now = now_ms()
    return [case_status(r, now) for r in rows]


@dataclass(frozen=True)
class CaseAction:
    """One supervisor action on a case: ``visit``, ``rectify``, ``close`` or ``appeal``."""

    action: str
    note: str = ""


async def act(db: Database, case_id: int, viewer: Viewer, action: CaseAction) -> dict[str, Any]:
    """Apply ``action`` in one transaction; ``ActionError`` with a clear message when it cannot apply."""
    note = action.note.strip()
    if action.action not in ("visit", "rectify", "close", "appeal"):
        raise ActionError(f"unknown case action {action.action!r}")
    if action.action in ("visit", "rectify", "appeal") and not note:
        raise ActionError("a note is required (what was done, or the reason of the appeal)")
    now = now_ms()
    async with db.transaction() as tx:
        case = await tx.fetchone("SELECT * FROM cases WHERE id = ?", (case_id,))
        if case is None:
            raise ActionError(f"case #{case_id} does not exist")
        if not viewer.sees_unit(case["unit_id"]):
            raise Forbidden(f"case #{case_id} belongs to another unit")
        if case["state"] != "open":
            raise ActionError(f"case #{case_id} is already {case['state']} (by {case['closed_by']}); nothing changed")
        if action.action == "visit":
            sql = "UPDATE cases SET visit_ms = ?, visit_by = ?, visit_note = ? WHERE id = ? AND state = 'open'"
            args: tuple[Any, ...] = (now, viewer.name, note, case_id)
        elif action.action == "rectify":
            if case["visit_ms"] is None:
                raise ActionError("record the return visit first")
            sql = "UPDATE cases SET fix_ms = ?, fix_by = ?, fix_note = ? WHERE id = ? AND state = 'open'"
            args = (now, viewer.name, note, case_id)
        elif action.action == "close":
            if case["visit_ms"] is None or case["fix_ms"] is None:
                raise ActionError("record the return visit and the rectification before closing")
            sql = "UPDATE cases SET state = 'closed', closed_ms = ?, closed_by = ? WHERE id = ? AND state = 'open'"
            args = (now, viewer.name, case_id)
        else:
            sql = (
                "UPDATE cases SET state = 'appeal', closed_ms = ?, closed_by = ?, appeal_reason = ?"
                " WHERE id = ? AND state = 'open'"
            )
            args = (now, viewer.name, note, case_id)
        before = await case_state(tx, case_id)
        if await tx.execute(sql, args) != 1:
            raise ActionError(f"case #{case_id} changed meanwhile; reload and try again")
        updated = await tx.fetchone("SELECT * FROM cases WHERE id = ?", (case_id,))
        after = {**await case_state(tx, case_id), "note_sha256": sha256_text(note) if note else None}
        await append_audit(
            tx,
            actor=viewer.name,
            action=f"case.{action.action}",
            subject=f"case:{case_id}",
            before=before,
            after=after,
            at_ms=now,
        )
    assert updated is not None
    return case_status(updated, now)


async def case_counts(
    db: Database,
    month: str | None,
    *,
    unit: str | None = None,
    units: frozenset[str] | None = None,
    now: int | None = None,
) -> dict[str, int]:
    """For the monthly report: cases opened in ``month``, closed on time, closed late, appealed, overdue, open.

    ``month`` None counts every month. ``unit`` limits to one unit, ``units`` to a set of them (a supervisor's
    scope); neither = everything.
    """
    now = now or now_ms()
    where, args = ("month = ?", [month]) if month else ("1=1", [])
    if unit:
        where += " AND unit_id = ?"
        args.append(unit)
    if units is not None:
        where += f" AND unit_id IN ({','.join('?' * len(units))})" if units else " AND 1=0"
        args.extend(sorted(units))
    rows = (
        await db.fetch("SELECT state, closed_ms, fix_due_ms, visit_ms, visit_due_ms FROM cases WHERE " + where, args)
    ).dicts()
    out = {"opened": len(rows), "closed_on_time": 0, "closed_late": 0, "appeal": 0, "overdue": 0, "open": 0}
    for r in rows:
        if r["state"] == "closed":
            on_time = r["closed_ms"] <= r["fix_due_ms"] and r["visit_ms"] <= r["visit_due_ms"]
            out["closed_on_time" if on_time else "closed_late"] += 1
        elif r["state"] == "appeal":
            out["appeal"] += 1
        else:
            out["open"] += 1
            if now > r["fix_due_ms"] or (r["visit_ms"] is None and now > r["visit_due_ms"]):
                out["overdue"] += 1
    return out


async def open_elsewhere(db: Database, viewer: Viewer, month: str) -> int:
    """Open cases of the viewer's units from months other than ``month`` (the case list of one month says so)."""
    scope_sql, params = viewer.unit_filter("unit_id")
    row = await db.fetchone(
        "SELECT COUNT(*) FROM cases WHERE state = 'open' AND month <> ? AND " + scope_sql, [month, *params]
    )
    return int(row[0]) if row else 0


def case_json(case: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(case, default=str))  # type: ignore[no-any-return]
