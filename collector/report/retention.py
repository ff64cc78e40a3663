"""Retention (保存期限): raw events kept N months, ticket numbers and free-text notes de-identified after M days.

``[retention]`` in ``evalbox.toml``::

    [retention]
    events_months = 24      # raw events kept this many months (the current one included);
                            # default: the appraisal year and the year before it
    personal_days = 180     # ticket numbers and free-text notes older than this are ...
    personal = "hash"       # ... replaced by their SHA-256 ("sha256:…"), or "remove"d

``evalbox retention run [--dry-run]``: a month older than the kept ones
loses its raw events (``events``, ``invites``) and keeps its rollups, its
digest and its audit entries; its report still prints, from the rollups, with
its digest. Before a month is pruned its events are checked against its
digest (a month closed before the audit trail is sealed first) and its
rollups are sealed (``rollups_sha256``), so ``evalbox audit verify`` still
checks it. A month still open for appraisal — not closed, or in the current
appraisal year (the calendar year in the policy's zone) — is never pruned: a
retention that would reach one is refused naming the key, nothing deleted.
Each month is pruned in its own transaction, with its audit entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from collector.errors import ConfigError, UsageError
from collector.report.officer_stats import checks_to_keep, month_checks
from collector.report.policy import Policy
from collector.store import Database
from collector.store.audit import append_audit, events_digest, month_add, month_seal, rollups_digest, seal_month
from collector.timeplace import month_bounds, month_of

PERSONAL_MODES = ("hash", "remove")
HASHED = "sha256:"
DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: how long raw events and personal data are kept."""

    events_months: int | None = None  # None: the appraisal year plus the year before it
    personal_days: int = 180
    personal: str = "hash"

    def __post_init__(self) -> None:
        if self.events_months is not None and not 1 <= self.events_months <= 1200:
            raise ConfigError(f"events_months: {self.events_months}, expected 1..1200 months")
        if not 1 <= self.personal_days <= 36500:
            raise ConfigError(f"personal_days: {self.personal_days}, expected 1..36500 days")
        if self.personal not in PERSONAL_MODES:
            raise ConfigError(f"personal: {self.personal!r}, expected one of {', '.join(PERSONAL_MODES)}")


# Personal data: (table, column, time column, key columns, nullable). Tickets can name a citizen's case;
# notes are free text a supervisor typed.
PERSONAL: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    ("events", "ticket", "press_ms", ("device_id", "boot", "seq"), True),
    ("invites", "ticket", "opened_ms", ("device_id", "boot", "invite_no"), True),
    ("box_commands", "ticket", "created_ms", ("id",), True),
    ("cases", "ticket", "press_ms", ("id",), True),
    ("cases", "visit_note", "press_ms", ("id",), True),
    ("cases", "fix_note", "press_ms", ("id",), True),
    ("cases", "appeal_reason", "press_ms", ("id",), True),
    ("complaints", "note", "added_ms", ("id",), False),
    ("officer_flag_reviews", "note", "reviewed_ms", ("officer_id", "month"), False),
)


@dataclasses.dataclass
class MonthPlan:
    month: str
    events: int
    invites: int


@dataclasses.dataclass
class Plan:
    """What a retention run removes: months whose raw events go, and personal data de-identified."""

    keep_from: str  # the first month whose raw events are kept
    cutoff_ms: int  # personal data older than this is de-identified
    mode: str
    months: list[MonthPlan]
    personal: dict[str, int]  # "table.column" -> values to de-identify

    def lines(self, *, dry_run: bool) -> list[str]:
        verb = "would go / 将删除" if dry_run else "removed / 已删除"
        out = [f"raw events kept from {self.keep_from} / 原始数据保留自 {self.keep_from}"]
        for m in self.months:
            out.append(f"  {m.month}: {m.events:,} events, {m.invites:,} invites {verb} (rollups and digest kept)")
        if not self.months:
            out.append("  no month's raw events to remove / 无需删除的原始数据")
        how = "hashed / 哈希化" if self.mode == "hash" else "removed / 删除"
        for what, n in self.personal.items():
            if n:
                out.append(f"  {what}: {n:,} values older than the cutoff {how}")
        if not any(self.personal.values()):
            out.append("  no ticket numbers or notes past their time / 无需处理的工单号与备注")
        return out


def keep_from(config: RetentionConfig, now_ms: int, tz: str) -> str:
    """The first month whose raw events are kept; ``UsageError`` naming the key when that is too short."""
    this = month_of(now_ms, tz)
    year_start = f"{this[:4]}-01"
    if config.events_months is None:
        return f"{int(this[:4]) - 1:04d}-01"
    first = month_add(this, 1 - config.events_months)
    if first > year_start:
        raise UsageError(
            f"retention.events_months = {config.events_months}: would remove the raw events of {year_start} … "
            f"{month_add(first, -1)}, still open for appraisal (the appraisal year {this[:4]}); keep at least "
            f"{int(this[5:])} months; nothing deleted / 保存期限短于考核期, 未删除任何数据"
        )
    return first


def _stale(column: str, nullable: bool) -> str:
    kept = f"{column} IS NOT NULL AND {column} <> ''" if nullable else f"{column} <> ''"
    return f"{kept} AND {column} NOT LIKE '{HASHED}%'"


async def plan(db: Database, config: RetentionConfig, tz: str, now_ms: int) -> Plan:
    """What a run would remove, checked: ``UsageError`` naming the key when it would reach an open month."""
    first = keep_from(config, now_ms, tz)
    old = [str(r[0]) for r in await db.fetch("SELECT DISTINCT month FROM events WHERE month < ?", (first,))]
    closed = {str(r[0]) for r in await db.fetch("SELECT month FROM months")}
    still_open = sorted(m for m in old if m not in closed)
    if still_open:
        key = "retention.events_months" if config.events_months is not None else "retention (the default)"
        raise UsageError(
            f"{key}: would remove the raw events of {', '.join(still_open)}, not closed and so still open for "
            f"appraisal; close {'it' if len(still_open) == 1 else 'them'} first (evalbox month close "
            f"{still_open[0]}) or keep more months; nothing deleted / 未关账月份不能删除原始数据, 未删除任何数据"
        )
    months = []
    for m in sorted(old):
        start, end = month_bounds(m, tz)
        (n,) = await db.fetchone("SELECT COUNT(*) FROM events WHERE month = ?", (m,)) or (0,)
        (k,) = await db.fetchone(
            "SELECT COUNT(*) FROM invites WHERE opened_ms >= ? AND opened_ms < ?", (start, end)
        ) or (0,)
        months.append(MonthPlan(m, int(n), int(k)))
    cutoff = now_ms - config.personal_days * DAY_MS
    personal = {}
    for table, column, at, _key, nullable in PERSONAL:
        row = await db.fetchone(
            f"SELECT COUNT(*) FROM {table} WHERE {at} < ? AND {_stale(column, nullable)}", (cutoff,)
        )
        personal[f"{table}.{column}"] = int(row[0]) if row else 0
    return Plan(keep_from=first, cutoff_ms=cutoff, mode=config.personal, months=months, personal=personal)


def _deidentified(value: str, mode: str, nullable: bool) -> str | None:
    if mode == "remove":
        return None if nullable else ""
    return HASHED + hashlib.sha256(value.encode()).hexdigest()


async def prune_month(db: Database, month: str, policy: Policy, *, actor: str, now_ms: int) -> dict[str, Any]:
    """Remove ``month``'s raw events, keeping its rollups, digest, officer checks and audit entries (sealed and
    checked first)."""
    tz = policy.timezone
    async with db.transaction():
        await db.lock("events", "rollups")
        seal = await month_seal(db, month)
        if seal is None:  # closed before the audit trail: seal it now, from the events still there
            await seal_month(db, month, tz, actor=actor, action="month.seal")
            seal = await month_seal(db, month)
            assert seal is not None
        closed = await db.fetchone("SELECT closed_ms FROM months WHERE month = ?", (month,))
        assert closed is not None
        n, ev = await events_digest(db, month, str(seal["timezone"]), int(closed[0]))
        if ev != seal["events_sha256"]:
            raise UsageError(
                f"month {month}: its events do not match its digest ({seal['events']} sealed, {n} now); not pruning"
                " evidence of a change — run evalbox audit verify / 事件与摘要不符, 未删除"
            )
        checks = checks_to_keep(await month_checks(db, month, policy))
        start, end = month_bounds(month, tz)
        removed = await db.execute("DELETE FROM events WHERE month = ?", (month,))
        invites = await db.execute("DELETE FROM invites WHERE opened_ms >= ? AND opened_ms < ?", (start, end))
        rollups = await rollups_digest(db, month)
        await db.execute(
            "UPDATE month_digests SET pruned_ms = ?, rollups_sha256 = ?, officer_checks = ? WHERE month = ?",
            (now_ms, rollups, checks, month),
        )
        after = {
            **seal,
            "pruned_ms": now_ms,
            "rollups_sha256": rollups,
            "officer_checks": checks,
            "events_removed": max(removed, 0),
            "invites_removed": max(invites, 0),
        }
        await append_audit(
            db, actor=actor, action="retention.prune", subject=f"month:{month}", after=after, at_ms=now_ms
        )
    return after


async def deidentify(db: Database, p: Plan, *, actor: str, now_ms: int) -> dict[str, int]:
    """Hash or remove the ticket numbers and notes older than the plan's cutoff; how many of each."""
    done: dict[str, int] = {}
    async with db.transaction():
        done["alerts.text"] = await _alert_tickets(db, p)
        for table, column, at, key, nullable in PERSONAL:
            rows = await db.fetch(
                f"SELECT {', '.join(key)}, {column} FROM {table} WHERE {at} < ? AND {_stale(column, nullable)}",
                (p.cutoff_ms,),
            )
            where = " AND ".join(f"{k} = ?" for k in key)
            await db.executemany(
                f"UPDATE {table} SET {column} = ? WHERE {where}",
                [(_deidentified(str(r[-1]), p.mode, nullable), *r[:-1]) for r in rows],
            )
            done[f"{table}.{column}"] = len(rows)
        if any(done.values()):
            after = {"cutoff_ms": p.cutoff_ms, "mode": p.mode, "values": done}
            await append_audit(
                db, actor=actor, action="retention.deidentify", subject="store", after=after, at_ms=now_ms
            )
    return done


async def _alert_tickets(db: Database, p: Plan) -> int:
    """The ticket number quoted in a bad-rating alert (its text and payload), as its case's ticket becomes."""
    rows = await db.fetch(
        f"SELECT device_id, boot, seq, ticket FROM cases WHERE press_ms < ? AND {_stale('ticket', True)}",
        (p.cutoff_ms,),
    )
    n = 0
    for device, boot, seq, ticket in rows:
        new = _deidentified(str(ticket), p.mode, True) or ""
        alert = await db.fetchone(
            "SELECT text_zh, text_en, payload FROM alerts WHERE key = ?", (f"bad:{device}:{boot}:{seq}",)
        )
        if alert is None:
            continue
        payload = json.loads(alert[2])
        payload["ticket"] = new or None
        quoted = f" ({ticket})"
        repl = f" ({new})" if new else ""
        n += await db.execute(
            "UPDATE alerts SET text_zh = ?, text_en = ?, payload = ? WHERE key = ?",
            (
                alert[0].replace(quoted, repl),
                alert[1].replace(quoted, repl),
                json.dumps(payload, ensure_ascii=False),
                f"bad:{device}:{boot}:{seq}",
            ),
        )
    return n


async def run(db: Database, config: RetentionConfig, policy: Policy, *, now_ms: int, actor: str, dry_run: bool) -> Plan:
    """Check, then (unless ``dry_run``) prune the old months and de-identify personal data; the plan."""
    p = await plan(db, config, policy.timezone, now_ms)
    if dry_run:
        return p
    for m in p.months:
        await prune_month(db, m.month, policy, actor=actor, now_ms=now_ms)
    p.personal = await deidentify(db, p, actor=actor, now_ms=now_ms)
    return p
