"""The sanctions ledger of a year: what the policy attaches to each officer, month by month.

Two chains, numbers from the policy (defaults shown); ``docs/policy.md`` quotes the sentence of the
scheme each rule implements.

Measures on the officer (the three measures, 打招呼 → 谈话 → 告诫):

- a month ``below_floor`` → one 打招呼 (reminder) and ``penalty_points`` (10) lost;
- the ``complaints_for_talk``-th (1st) valid complaint of the year → one 谈话
  (talk) and no honours that year; the ``complaints_for_warning``-th (2nd)
  and every later one → one 告诫 (warning);
- every ``reminders_to_escalate``-th (3rd, 6th, …) 打招呼 of the year → one 谈话;
- every ``talks_to_escalate``-th (2nd, 4th, …) 谈话 of the year, whatever gave it → one 告诫.

Escalation to the leaders: the first time in the year the officer has ``reminders_to_escalate`` (3)
打招呼, or ``talks_to_escalate`` (2) 谈话, or ``warnings_to_escalate`` (1) 告诫, the officer's unit
leader gets a 谈话 and the responsible bureau leader (the nearest unit above with a leader) an 打招呼,
once a year per officer.

Within a month, complaints come first (by date), the month's band next, each measure's step up the
ladder right after it, the leaders' escalation last.

The officer-month flags of the year (``officer_flags``) are listed beside the sanctions with the
supervisor's review (confirmed / explained, note, who, when) or "awaiting review"; a flag never
changes a rate or a measure.

Months are read as the monthly report shows them. A closed month is the one
frozen at its close, judged under the policy in force then: its band, its
penalty points and the escalation thresholds of its actions are that
policy's, so a later policy change or ``evalbox rebuild`` leaves the closed
months' lines of the ledger as they were. The year's candidates follow the
policy of today.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

from collector.errors import UsageError
from collector.report.monthly import Line, MonthlyReport, Registry, load_registry, monthly_report
from collector.report.officer_stats import REVIEW_WORDS, RULE_WORDS
from collector.report.policy import Policy
from collector.report.rates import band, pct_text, ratio, wilson
from collector.store import Database
from collector.store.audit import append_audit, sha256_text
from collector.timeplace import zone

MEASURES = ("reminder", "talk", "warning", "no_honours", "escalation")
TARGETS = ("officer", "unit_leader", "bureau_leader")  # who a measure is for


@dataclasses.dataclass(frozen=True)
class Action:
    officer: str
    month: str
    measure: str  # one of MEASURES
    reason: str  # 'below_floor' | 'complaint' | 'reminders' | 'talks' | 'warnings'
    detail: str
    points: int = 0
    target: str = "officer"  # one of TARGETS: the officer, or (escalation) the unit or bureau leader
    who: str = ""  # the leader's name as the units table gives it ('' when it names none)


@dataclasses.dataclass
class OfficerYear:
    officer: str
    name: str
    unit: str
    rated: int = 0
    satisfied: int = 0
    below_floor_months: list[str] = dataclasses.field(default_factory=list)
    complaints: int = 0
    reminders: int = 0
    talks: int = 0
    warnings: int = 0
    points: int = 0
    no_honours: bool = False
    escalated: str | None = None  # month of escalation


@dataclasses.dataclass(frozen=True)
class FlagReview:
    """An officer-month flagged by the officer-month checks (recorded by ``evalbox flags check``, the month's
    close or the web page's alert scan) and the supervisor's review of it, if any (复核)."""

    officer: str
    month: str
    rules: tuple[str, ...]  # the rules that flagged the month
    decision: str | None = None  # 'confirmed' | 'explained'; None: not reviewed yet
    note: str = ""
    by: str = ""
    at_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class Ledger:
    year: int
    months: list[str]
    actions: list[Action]
    officers: list[OfficerYear]
    candidates: list[OfficerYear]  # year-end excellent-officer candidates, best first
    flags: list[FlagReview] = dataclasses.field(default_factory=list)  # officer-month flags and their reviews


def _check_day(day: str) -> str:
    try:
        return dt.date.fromisoformat(day).isoformat()
    except ValueError:
        raise UsageError(f"date {day!r}: expected YYYY-MM-DD, e.g. 2026-10-31") from None


async def add_complaint(db: Database, officer: str, day: str, note: str, *, by: str, now_ms: int) -> int:
    """Record a valid complaint (有效投诉) against ``officer``; its id."""
    day = _check_day(day)
    if not note.strip():
        raise UsageError("complaint note is empty; say what the complaint was about")
    async with db.transaction():
        await db.lock("complaints")  # ids are max + 1: one writer at a time
        if not await db.fetch("SELECT 1 FROM officers WHERE id = ?", (officer,)):
            raise UsageError(f"unknown officer {officer!r} (not in the officers table)")
        (next_id,), *_ = await db.fetch("SELECT COALESCE(MAX(id), 0) + 1 FROM complaints")
        await db.execute(
            "INSERT INTO complaints (id, officer_id, day, note, added_ms, added_by) VALUES (?, ?, ?, ?, ?, ?)",
            (next_id, officer, day, note.strip(), now_ms, by),
        )
        after = {
            "officer_id": officer,
            "day": day,
            "added_ms": now_ms,
            "added_by": by,
            "note_sha256": sha256_text(note.strip()),
        }
        await append_audit(
            db, actor=by, action="complaint.add", subject=f"complaint:{next_id}", after=after, at_ms=now_ms
        )
    return int(next_id)


async def year_ledger(db: Database, year: int, policy: Policy) -> Ledger:
    """Apply the policy to every month of ``year`` with data and to the year's complaints."""
    if not 2000 <= year <= 9999:
        raise UsageError(f"year {year}: expected a four-digit year such as 2026")
    first, last = f"{year:04d}-01", f"{year:04d}-12"
    months = [
        r[0]
        for r in await db.fetch(
            "SELECT DISTINCT month FROM rollups WHERE month >= ? AND month <= ?"
            " UNION SELECT month FROM months WHERE month >= ? AND month <= ?",
            (first, last, first, last),
        )
    ]
    complaints = await db.fetch(
        "SELECT officer_id, day, note, id FROM complaints WHERE day >= ? AND day <= ? ORDER BY day, id",
        (f"{year:04d}-01-01", f"{year:04d}-12-31"),
    )
    if not months and not complaints:
        raise UsageError(f"no data for year {year}")
    reports: dict[str, MonthlyReport] = {}
    for m in sorted(months):
        try:
            reports[m] = await monthly_report(db, m, policy)
        except UsageError:  # a closed month that never had data
            continue
    registry = await load_registry(db)
    ledger = apply_rules(year, reports, [(r[0], r[1], r[2]) for r in complaints], policy, registry)
    return dataclasses.replace(ledger, flags=await flag_reviews(db, first, last))


async def flag_reviews(db: Database, first: str, last: str) -> list[FlagReview]:
    """The recorded officer-month flags of months ``first``..``last`` with their reviews, by month and officer.

    A flag never changes a rate or a measure: the ledger lists it beside the sanctions so the supervisor's
    decision (confirmed / explained, note, who, when) is kept with the year."""
    rules: dict[tuple[str, str], set[str]] = defaultdict(set)
    for officer, month, rule in await db.fetch(
        "SELECT officer_id, month, rule FROM officer_flags WHERE month >= ? AND month <= ?", (first, last)
    ):
        rules[officer, month].add(rule)
    reviewed = {
        (r[0], r[1]): r[2:]
        for r in await db.fetch(
            "SELECT officer_id, month, decision, note, reviewed_by, reviewed_ms FROM officer_flag_reviews"
            " WHERE month >= ? AND month <= ?",
            (first, last),
        )
    }
    out = []
    for (officer, month), found in sorted(rules.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        review = reviewed.get((officer, month))
        if review is None:
            out.append(FlagReview(officer, month, tuple(sorted(found))))
        else:
            decision, note, by, at = review
            out.append(FlagReview(officer, month, tuple(sorted(found)), decision, note, by, int(at)))
    return out


def leaders(registry: Registry | None, officer: str, unit: str) -> tuple[str, str]:
    """(unit leader, bureau leader) of an officer: the leader of the officer's unit, and of the nearest unit
    above it that names one; '' where the registry names none."""
    if registry is None:
        return "", ""
    unit = unit or registry.officers.get(officer, ("", "", None, False))[1]
    seen: set[str] = set()
    _name, parent, leader = registry.units.get(unit, ("", None, None))
    bureau = ""
    while parent and parent not in seen and not bureau:
        seen.add(parent)
        _name, up, above = registry.units.get(parent, ("", None, None))
        bureau, parent = above or "", up
    return leader or "", bureau


def apply_rules(
    year: int,
    reports: dict[str, MonthlyReport],
    complaints: list[tuple[str, str, str]],
    policy: Policy,
    registry: Registry | None = None,
) -> Ledger:
    """The ledger from monthly reports and ``(officer, day, note)`` complaints (pure).

    Each month's actions follow the policy its report is judged under
    (``MonthlyReport.policy``: a closed month's is the one at closing);
    months with complaints only, and the year's candidates, follow ``policy``.
    """
    people: dict[str, OfficerYear] = {}
    by_month: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for officer, day, note in complaints:
        by_month[day[:7]].append((officer, day, note))
    lines: dict[str, dict[str, Line]] = {m: {ln.key: ln for ln in r.officers} for m, r in reports.items()}
    for report in reports.values():
        for ln in report.officers:
            person = people.setdefault(ln.key, OfficerYear(ln.key, ln.name, ln.unit))
            person.rated += ln.rated
            person.satisfied += ln.satisfied
    actions: list[Action] = []
    rules = policy  # the policy of the month being applied (a closed month's: the one at closing)

    def give(
        person: OfficerYear, month: str, measure: str, reason: str, detail: str, points: int = 0, *also: Action
    ) -> None:
        """A measure on the officer (with ``also`` beside it), then the step up the ladder it completes
        (打招呼 → 谈话 → 告诫)."""
        actions.append(Action(person.officer, month, measure, reason, detail, points))
        actions.extend(also)
        if measure == "reminder":
            person.reminders += 1
            person.points += points
            if person.reminders % rules.reminders_to_escalate == 0:
                give(person, month, "talk", "reminders", f"{person.reminders} 打招呼")
        elif measure == "talk":
            person.talks += 1
            if person.talks % rules.talks_to_escalate == 0:
                give(person, month, "warning", "talks", f"{person.talks} 谈话")
        elif measure == "warning":
            person.warnings += 1

    for month in sorted(set(reports) | set(by_month)):
        rules = reports[month].policy if month in reports else policy
        for officer, day, note in by_month[month]:
            person = people.setdefault(officer, OfficerYear(officer, "", ""))
            person.complaints += 1
            k = person.complaints
            if k == rules.complaints_for_talk:
                person.no_honours = True
                no_honours = Action(officer, month, "no_honours", "complaint", f"{day} #{k}")
                give(person, month, "talk", "complaint", f"{day} #{k}: {note}", 0, no_honours)
            if k >= rules.complaints_for_warning:
                give(person, month, "warning", "complaint", f"{day} #{k}: {note}")
        for oid, ln in sorted(lines.get(month, {}).items()):
            if ln.band == "below_floor":
                people[oid].below_floor_months.append(month)
                give(people[oid], month, "reminder", "below_floor", f"{ln.satisfied}/{ln.rated}", rules.penalty_points)
        for oid, person in sorted(people.items()):
            if person.escalated:
                continue
            why = (
                "reminders"
                if person.reminders >= rules.reminders_to_escalate
                else "talks"
                if person.talks >= rules.talks_to_escalate
                else "warnings"
                if person.warnings >= rules.warnings_to_escalate
                else None
            )
            if why:
                person.escalated = month
                detail = f"{person.reminders} 打招呼, {person.talks} 谈话, {person.warnings} 告诫"
                unit_leader, bureau_leader = leaders(registry, oid, person.unit)
                actions += [
                    Action(oid, month, "escalation", why, detail),
                    Action(oid, month, "talk", why, detail, target="unit_leader", who=unit_leader),
                    Action(oid, month, "reminder", why, detail, target="bureau_leader", who=bureau_leader),
                ]
    eligible = [p for p in people.values() if not p.no_honours and p.rated >= policy.min_sample]
    eligible.sort(key=lambda p: (-(wilson(p.satisfied, p.rated) or (0.0, 0.0))[0], -p.rated, p.officer))
    return Ledger(
        year=year,
        months=sorted(reports),
        actions=actions,
        officers=sorted(people.values(), key=lambda p: p.officer),
        candidates=eligible[: policy.year_candidates],
    )


def flag_words(flag: FlagReview, lang: str, tz: str) -> tuple[str, str]:
    """A ledger line's words for an officer-month flag: its review state, and the rules with the review's
    note, who and when (local time in ``tz``)."""
    en = lang == "en"
    state = REVIEW_WORDS[flag.decision or "unreviewed"][en]
    rules = (", " if en else "、").join(RULE_WORDS.get(r, (r, r))[en] for r in flag.rules)
    if flag.decision is None:
        return state, rules
    when = (
        "" if flag.at_ms is None else dt.datetime.fromtimestamp(flag.at_ms / 1000, zone(tz)).strftime("%Y-%m-%d %H:%M")
    )
    if en:
        return state, f"{rules}; note: {flag.note} ({flag.by}, {when})"
    return state, f"{rules}；复核说明：{flag.note}（{flag.by}，{when}）"


def year_rate_band(person: OfficerYear, policy: Policy) -> tuple[str, str]:
    """The year's rate text and band of an officer (for display)."""
    return pct_text(ratio(person.satisfied, person.rated)), band(person.satisfied, person.rated, policy)
