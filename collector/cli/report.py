"""``evalbox`` commands for reports: report, policy, complaint, month, rebuild.

Where the store is: ``--db URL`` (``sqlite:///PATH``, ``postgresql://…``, or
a bare path meaning an SQLite file), or ``--config FILE``
(``evalbox.toml``: ``[store] url = "sqlite:///path"`` or ``"postgresql://…"``; optional top-level
``timezone`` and ``policy = "policy.toml"``, or the same keys under
``[report]``), or ``./evalbox.toml`` when present. Other keys are ignored here.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import pathlib
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from collector.cli.console import progress_bar, write_output
from collector.errors import ConfigError, UsageError
from collector.report.ledger import add_complaint, year_ledger
from collector.report.monthly import monthly_report
from collector.report.months import close_month, list_closed
from collector.report.policy import EXAMPLE_POLICY, Policy, load_policy, policy_from_dict
from collector.report.rebuild import rebuild
from collector.report.render import FORMATS, LANGS, render, render_ledger
from collector.store import Database, connect, parse_store_url

T = TypeVar("T")
DEFAULT_CONFIG = "evalbox.toml"


def _read_config(path: pathlib.Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _store_url(url: Any, where: pathlib.Path) -> str:
    if not isinstance(url, str) or "://" not in url and not url.startswith("sqlite:"):
        raise ConfigError(f"{where}: store.url: expected a URL such as 'sqlite:///evalbox.db' or 'postgresql://…'")
    try:
        return str(parse_store_url(url, base=where.parent))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class Settings:
    """Store path and policy from the command line and the config file."""

    def __init__(self, args: argparse.Namespace) -> None:
        config_path = getattr(args, "config", None)
        if config_path is None and pathlib.Path(DEFAULT_CONFIG).exists() and not getattr(args, "db", None):
            config_path = DEFAULT_CONFIG
        conf: dict[str, Any] = {}
        self.db: str | None = getattr(args, "db", None) or None
        policy_file: pathlib.Path | None = None
        tz: Any = None
        if config_path:
            cp = pathlib.Path(config_path)
            conf = _read_config(cp)
            raw_section = conf.get("report")
            section: dict[str, Any] = raw_section if isinstance(raw_section, dict) else {}
            store = conf.get("store")
            if self.db is None:
                if not isinstance(store, dict) or "url" not in store:
                    raise ConfigError(f'{cp}: store.url: missing (e.g. [store] url = "sqlite:///evalbox.db")')
                self.db = _store_url(store["url"], cp)
            pf = section.get("policy", conf.get("policy"))
            if isinstance(pf, dict):  # the collector's [policy] file = "…"
                pf = pf.get("file")
            if isinstance(pf, str):
                policy_file = pathlib.Path(pf) if pathlib.Path(pf).is_absolute() else cp.parent / pf
            tz = section.get("timezone", conf.get("timezone"))
        if getattr(args, "policy", None):
            policy_file = pathlib.Path(args.policy)
        self.policy = load_policy(policy_file) if policy_file else Policy()
        if tz is not None and not (policy_file and _sets_timezone(policy_file)):
            self.policy = policy_from_dict({**_policy_dict(policy_file), "timezone": tz})

    def database(self) -> Database:
        if self.db is None:
            raise UsageError("no store given: use --db URL or --config evalbox.toml ([store] url)")
        return connect(self.db, must_exist=True, cache_mb=512)


def _policy_dict(path: pathlib.Path | None) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8")) if path else {}


def _sets_timezone(path: pathlib.Path) -> bool:
    return "timezone" in _policy_dict(path)


def _run(settings: Settings, job: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        async with settings.database() as db:
            if not await db.has_table("rollups"):
                raise UsageError(f"{db.name}: not an evalbox store (no rollups table)")
            if not await db.has_table("complaints"):
                raise UsageError(
                    f"{db.name}: the store lacks migration 0003_report_complaints; apply the store's migrations"
                )
            return await job(db)

    return asyncio.run(main())


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


# -- handlers -------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    if (args.month is None) == (args.year is None):
        raise UsageError("give exactly one of --month YYYY-MM or --year YYYY")
    settings = Settings(args)
    policy = settings.policy
    if args.format == "xlsx" and not args.output:
        raise UsageError("--format xlsx writes a binary file: give -o FILE.xlsx")
    if args.year is not None:
        if args.unit:
            raise UsageError("--unit applies to --month reports")
        ledger = _run(settings, lambda db: year_ledger(db, args.year, policy))
        write_output(render_ledger(ledger, policy, args.format, args.lang), args.output)
        return 0
    report = _run(settings, lambda db: monthly_report(db, args.month, policy, unit=args.unit))
    colour = args.format == "table" and not args.output and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    write_output(render(report, policy, args.format, args.lang, colour=colour), args.output)
    return 0


def cmd_policy_init(args: argparse.Namespace) -> int:
    if args.output:
        path = pathlib.Path(args.output)
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists; use --force to overwrite")
        path.write_text(EXAMPLE_POLICY, encoding="utf-8")
        print(f"wrote {path}")
    else:
        sys.stdout.write(EXAMPLE_POLICY)
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    sat = ", ".join(f"{s}:{sorted(v)}" for s, v in sorted(policy.satisfied.items()))
    print(
        f"{args.file}: ok — timezone {policy.timezone}, target {float(policy.target):g}%, "
        f"floor {float(policy.floor):g}%, penalty {policy.penalty_points}, satisfied levels {sat}"
    )
    return 0


def cmd_complaint_add(args: argparse.Namespace) -> int:
    settings = Settings(args)
    cid = _run(
        settings,
        lambda db: add_complaint(db, args.officer, args.date, args.note, by=_user(), now_ms=int(time.time() * 1000)),
    )
    print(f"complaint {cid} recorded for officer {args.officer} on {args.date} (有效投诉已登记)")
    return 0


def cmd_complaint_list(args: argparse.Namespace) -> int:
    settings = Settings(args)
    rows = _run(settings, lambda db: db.fetch("SELECT id, officer_id, day, note FROM complaints ORDER BY day, id"))
    for cid, officer, day, note in rows:
        print(f"{cid}\t{officer}\t{day}\t{note}")
    return 0


def cmd_month_close(args: argparse.Namespace) -> int:
    settings = Settings(args)
    tz = settings.policy.timezone
    _run(settings, lambda db: close_month(db, args.month, tz, by=_user(), now_ms=int(time.time() * 1000)))
    print(f"month {args.month} closed (已关账); later arrivals will show as a revision")
    return 0


def cmd_month_list(args: argparse.Namespace) -> int:
    settings = Settings(args)
    for month, closed_ms, by in _run(settings, list_closed):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(closed_ms / 1000))
        print(f"{month}\tclosed {when} UTC\tby {by}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    settings = Settings(args)
    tz = settings.policy.timezone
    t0 = time.perf_counter()
    result = _run(settings, lambda db: rebuild(db, tz, progress_bar))
    print(
        f"rebuilt {result.rollup_rows} rollup rows over {len(result.months)} months in {tz}; "
        f"{result.moved_events} events moved to another month; {time.perf_counter() - t0:.1f} s"
    )
    return 0


# -- registration -------------------------------------------------------------------


def _store_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db", metavar="URL", help="the store: sqlite:///PATH, postgresql://…, or an SQLite file path")
    p.add_argument("--config", metavar="FILE", help="evalbox.toml ([store] url, timezone, policy)")
    p.add_argument("--policy", metavar="FILE", help="policy TOML (default: built-in defaults; see docs/policy.md)")
    return p


def register(sub: Any) -> None:
    """Add the report commands to the ``evalbox`` parser."""
    store = _store_options()
    p = sub.add_parser(
        "report", parents=[store], help="monthly rates (--month) or the year's sanctions ledger (--year) / 满意率月报"
    )
    p.add_argument("--month", metavar="YYYY-MM")
    p.add_argument("--year", type=int, metavar="YYYY")
    p.add_argument("--unit", metavar="UNIT", help="only this unit and the units below it")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--lang", choices=LANGS, default="zh")
    p.add_argument("-o", "--output", metavar="FILE")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("policy", help="write or check a policy file / 评价政策")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    q = psub.add_parser("init", help="print (or write with -o) a commented example policy")
    q.add_argument("-o", "--output", metavar="FILE")
    q.add_argument("--force", action="store_true")
    q.set_defaults(func=cmd_policy_init)
    q = psub.add_parser("check", help="validate a policy file, naming any bad key")
    q.add_argument("file")
    q.set_defaults(func=cmd_policy_check)

    p = sub.add_parser("complaint", help="valid complaints (有效投诉) for the sanctions ledger")
    psub = p.add_subparsers(dest="complaint_command", metavar="ACTION", required=True)
    q = psub.add_parser("add", parents=[store], help="record a valid complaint against an officer")
    q.add_argument("--officer", required=True, help="badge number 警号")
    q.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    q.add_argument("--note", required=True)
    q.set_defaults(func=cmd_complaint_add)
    q = psub.add_parser("list", parents=[store], help="list recorded complaints")
    q.set_defaults(func=cmd_complaint_list)

    p = sub.add_parser("month", help="close months (关账)")
    psub = p.add_subparsers(dest="month_command", metavar="ACTION", required=True)
    q = psub.add_parser("close", parents=[store], help="freeze a month; later arrivals become a revision")
    q.add_argument("month", metavar="YYYY-MM")
    q.set_defaults(func=cmd_month_close)
    q = psub.add_parser("list", parents=[store], help="list closed months")
    q.set_defaults(func=cmd_month_list)

    p = sub.add_parser("rebuild", parents=[store], help="recompute months and rollups from raw events")
    p.set_defaults(func=cmd_rebuild)
