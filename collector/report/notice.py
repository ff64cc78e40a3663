"""The printed monthly notice (月通报): who issues it, when, and the month's sanctions with each officer's chain stage.

``NoticeConfig`` is ``[notice]`` in ``evalbox.toml`` (the issuing unit and the
signer printed on the notice). ``notice_facts`` reads what the notice shows
beyond the monthly table: the sanctions the year's ledger dates in the month
for the report's officers (``collector.report.ledger``, the two chains of
``docs/policy.md``) with each officer's count of the year so far, and the
period the month covers. Every number is worked out here; ``render`` only
lays it out.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import unicodedata

from collector.errors import ConfigError, UsageError
from collector.report.ledger import Action, year_ledger
from collector.report.monthly import Line, MonthlyReport
from collector.report.policy import Policy
from collector.store import Database
from collector.timeplace import parse_month, zone

MAX_TEXT = 60  # characters of an issuer or signer: one line of the printed notice


def _one_line(key: str, value: object) -> str:
    """A config string printed on one line of the notice: no control characters, at most ``MAX_TEXT``."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    text = value.strip()
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ConfigError(f"{key}: {value!r}: one line of text, no control characters or line breaks")
    if len(text) > MAX_TEXT:
        raise ConfigError(f"{key}: {len(text)} characters; at most {MAX_TEXT} fit the notice's line")
    return text


@dataclasses.dataclass(frozen=True)
class NoticeConfig:
    """``[notice]``: ``issuer`` (发文单位, e.g. "某某县公安局") and ``signer`` (签发人, printed in the signature
    block; blank: a line to sign on). Both optional; checked here (``ConfigError`` names the key)."""

    issuer: str = ""
    signer: str = ""

    def __post_init__(self) -> None:
        for key in ("issuer", "signer"):
            object.__setattr__(self, key, _one_line(key, getattr(self, key)))


@dataclasses.dataclass(frozen=True)
class Sanction:
    """One officer's measures dated in the month, and where the officer stands in the year's chains.

    ``reminders`` … ``points`` count the year up to and including the month (the officer's own
    measures only; the leaders' are in ``measures`` with their ``target``). ``to_talk`` is how
    many more 打招呼 this year bring the next 谈话; ``escalated`` the month the case went to the
    leaders, if it has by this month. ``None`` in the counts: the ledger was not read (a notice
    rendered from the report alone), only this month's 打招呼 is known.
    """

    line: Line  # the officer's line of the month's report
    measures: tuple[Action, ...]
    reminders: int | None = None
    talks: int | None = None
    warnings: int | None = None
    points: int | None = None
    to_talk: int | None = None
    escalated: str | None = None


@dataclasses.dataclass(frozen=True)
class Notice:
    """What the printed notice shows beside the monthly report."""

    issuer: str
    signer: str
    issued: str  # YYYY-MM-DD ('' : a line to write the date on)
    period: tuple[str, str]  # first and last day of the month, YYYY-MM-DD
    sanctions: tuple[Sanction, ...]


def month_period(month: str) -> tuple[str, str]:
    """The first and last day of ``YYYY-MM``."""
    year, mon = parse_month(month)
    return f"{year:04d}-{mon:02d}-01", f"{year:04d}-{mon:02d}-{calendar.monthrange(year, mon)[1]:02d}"


def today(timezone: str) -> str:
    """Today's date in ``timezone`` (the policy's), YYYY-MM-DD."""
    return dt.datetime.now(zone(timezone)).date().isoformat()


def issue_date(text: str | None, timezone: str) -> str:
    """``--issued`` checked (YYYY-MM-DD), else today in ``timezone``."""
    if text is None:
        return today(timezone)
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(
            f"--issued {text!r}: expected YYYY-MM-DD, e.g. 2026-11-03 / 签发日期格式应为 YYYY-MM-DD"
        ) from None


def bare_notice(report: MonthlyReport, config: NoticeConfig | None = None, issued: str = "") -> Notice:
    """The notice from the report alone: this month's 打招呼 and penalty points of each officer below the floor."""
    config = config or NoticeConfig()
    sanctions = tuple(
        Sanction(
            ln,
            (Action(ln.key, report.month, "reminder", "below_floor", f"{ln.satisfied}/{ln.rated}", ln.penalty_points),),
        )
        for ln in report.officers
        if ln.band == "below_floor"
    )
    return Notice(config.issuer, config.signer, issued, month_period(report.month), sanctions)


async def with_checks(db: Database, report: MonthlyReport, policy: Policy) -> MonthlyReport:
    """``report`` with its month's officer-month checks (the JSON's ``flags``, the notice's list of them)."""
    from collector.report.officer_stats import month_checks  # the checks read the report's modules

    checks = await month_checks(db, report.month, policy)
    return dataclasses.replace(report, officer_checks={o: c.json() for o, c in checks.items()})


async def notice_facts(
    db: Database, report: MonthlyReport, policy: Policy, config: NoticeConfig | None = None, issued: str = ""
) -> Notice:
    """The notice of ``report``: its officers' measures dated in the month from the year's ledger, with their
    counts of the year so far (``policy`` is today's, the ledger's for open months)."""
    config = config or NoticeConfig()
    year, _ = parse_month(report.month)
    ledger = await year_ledger(db, year, policy)
    lines = {ln.key: ln for ln in report.officers}
    so_far: dict[str, list[Action]] = {}
    for a in ledger.actions:
        if a.officer in lines and a.month <= report.month:
            so_far.setdefault(a.officer, []).append(a)
    rules = report.policy
    sanctions = []
    for officer, actions in sorted(so_far.items()):
        now = tuple(a for a in actions if a.month == report.month)
        if not now:
            continue
        own = [a for a in actions if a.target == "officer"]
        reminders = sum(1 for a in own if a.measure == "reminder")
        sanctions.append(
            Sanction(
                lines[officer],
                now,
                reminders=reminders,
                talks=sum(1 for a in own if a.measure == "talk"),
                warnings=sum(1 for a in own if a.measure == "warning"),
                points=sum(a.points for a in own),
                to_talk=rules.reminders_to_escalate - reminders % rules.reminders_to_escalate,
                escalated=next((a.month for a in actions if a.measure == "escalation"), None),
            )
        )
    return Notice(config.issuer, config.signer, issued, month_period(report.month), tuple(sanctions))
