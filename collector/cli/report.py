"""``evalbox`` commands for reports: report, policy, complaint, month, rebuild.

The store and the policy come from ``--config`` (default ``./evalbox.toml``),
``--db`` and ``--policy`` through the one loader (``collector.config``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from collector.cli.common import config_of, os_user, progress_bar, store_options, with_db, write_output
from collector.errors import UsageError
from collector.report.ledger import add_complaint, year_ledger
from collector.report.monthly import monthly_report
from collector.report.months import close_month, list_closed
from collector.report.notice import issue_date, notice_facts, with_checks
from collector.report.officer_stats import record_month
from collector.report.policy import EXAMPLE_POLICY, Policy, load_policy, policy_to_dict
from collector.report.rebuild import rebuild
from collector.report.render import FORMATS, LANGS, render, render_ledger
from collector.store import Database
from collector.store.audit import note_policy

T = TypeVar("T")

# -- handlers -------------------------------------------------------------------


# What ``-o FILE`` without ``--format`` writes, by the file's suffix.
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".xlsx": "xlsx", ".html": "html", ".htm": "html"}


def output_format(fmt: str | None, output: str | None) -> str:
    """The report's format: ``--format``, else the suffix of ``-o FILE``, else the terminal table.

    ``UsageError`` when ``--format`` contradicts a known suffix (``--format csv -o r.xlsx``).
    """
    inferred = SUFFIX_FORMATS.get(pathlib.Path(output).suffix.lower()) if output else None
    if fmt and inferred and fmt != inferred:
        raise UsageError(
            f"--format {fmt} but -o {output} is a .{inferred} file: drop --format or change the suffix / "
            "输出格式与文件扩展名不一致"
        )
    if fmt == "xlsx" and not output:
        raise UsageError("--format xlsx writes a binary file: give -o FILE.xlsx / 请用 -o 指定 .xlsx 文件")
    return fmt or inferred or "table"


def check_output(output: str | None) -> None:
    """A clear one-line ``UsageError`` before any work when ``-o FILE`` cannot be written."""
    if not output:
        return
    path = pathlib.Path(output)
    if path.is_dir():
        example = path / "report.xlsx"
        raise UsageError(f"-o {output}: is a directory; give a file name, e.g. {example} / 这是目录，请给出文件名")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"-o {output}: the directory {parent} {what} / 输出目录不存在")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"-o {output}: not writable (permission denied) / 无写入权限")


def _write(data: bytes, output: str | None) -> None:
    try:
        write_output(data, output)
    except OSError as exc:  # a race with the check above, a full disk
        raise UsageError(f"-o {output}: cannot write ({exc.strerror}) / 无法写入") from None


async def _noting_policy(db: Database, configured: Policy | None, job: Callable[[], Awaitable[T]]) -> T:
    """``job()``, once the configured policy (None: a one-off ``--policy``) is in the audit trail if it changed."""
    if configured is not None:
        await note_policy(db, policy_to_dict(configured), actor=os_user())
    return await job()


def cmd_report(args: argparse.Namespace) -> int:
    if (args.month is None) == (args.year is None):
        raise UsageError("give exactly one of --month YYYY-MM or --year YYYY")
    fmt = output_format(args.format, args.output)
    if args.issued is not None:
        if fmt != "html":
            raise UsageError("--issued is the printed notice's date of issue: use it with --format html")
        issue_date(args.issued, "UTC")  # a bad date is refused before any work
    check_output(args.output)
    config = config_of(args)
    policy = config.policy
    configured = policy if args.policy is None else None
    if args.year is not None:
        if args.unit:
            raise UsageError("--unit applies to --month reports")
        ledger = with_db(config, lambda db: _noting_policy(db, configured, lambda: year_ledger(db, args.year, policy)))
        _write(render_ledger(ledger, policy, fmt, args.lang), args.output)
        return 0
    report = with_db(
        config,
        lambda db: _noting_policy(db, configured, lambda: monthly_report(db, args.month, policy, unit=args.unit)),
    )
    for bad in report.set_aside:  # named on stderr whatever the format, so a CSV/XLSX user sees it too
        print(f"evalbox: warning 警告: {bad.text()}", file=sys.stderr)
    if fmt in ("json", "html"):  # the officer-month checks: a flags array per officer, the notice's list
        report = with_db(config, lambda db: with_checks(db, report, policy))
    notice = None
    if fmt == "html":  # the printed notice: issuer, date of issue, the month's sanctions from the year's ledger
        issued = issue_date(args.issued, policy.timezone)
        notice = with_db(config, lambda db: notice_facts(db, report, policy, config.notice, issued))
    colour = fmt == "table" and not args.output and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    _write(render(report, policy, fmt, args.lang, colour=colour, notice=notice), args.output)
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
    config = config_of(args)
    cid = with_db(
        config,
        lambda db: add_complaint(db, args.officer, args.date, args.note, by=os_user(), now_ms=int(time.time() * 1000)),
    )
    print(f"complaint {cid} recorded for officer {args.officer} on {args.date} (有效投诉已登记)")
    return 0


def cmd_complaint_list(args: argparse.Namespace) -> int:
    config = config_of(args)
    rows = with_db(config, lambda db: db.fetch("SELECT id, officer_id, day, note FROM complaints ORDER BY day, id"))
    for cid, officer, day, note in rows:
        print(f"{cid}\t{officer}\t{day}\t{note}")
    return 0


def cmd_month_close(args: argparse.Namespace) -> int:
    config = config_of(args)
    policy = config.policy
    now = int(time.time() * 1000)
    with_db(config, lambda db: close_month(db, args.month, policy, by=os_user(), now_ms=now))
    found = with_db(config, lambda db: record_month(db, args.month, policy, now))
    print(
        f"month {args.month} closed (已关账): its figures and judgement are frozen under the policy in force;"
        " later arrivals, policy changes and rebuilds show as a revision"
    )
    flagged = sorted(o for o, c in found.items() if c.flags)
    if flagged:
        print(
            f"officer-month flags recorded (民警月度标记) for {len(flagged)}: {', '.join(flagged)};"
            " see evalbox flags check"
        )
    return 0


def cmd_month_list(args: argparse.Namespace) -> int:
    config = config_of(args)
    for month, closed_ms, by in with_db(config, list_closed):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(closed_ms / 1000))
        print(f"{month}\tclosed {when} UTC\tby {by}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    config = config_of(args)
    tz = config.policy.timezone
    t0 = time.perf_counter()
    result = with_db(config, lambda db: rebuild(db, tz, progress_bar, by=os_user()))
    print(
        f"rebuilt {result.rollup_rows} rollup rows over {len(result.months)} months in {tz}; "
        f"{result.moved_events} events moved to another month; {time.perf_counter() - t0:.1f} s"
    )
    for box, boot, seq, k, n in result.unusable:
        print(
            f"evalbox: warning 警告: {box} boot {boot} seq {seq}: level {k} outside scale {n};"
            " reports set it aside / 评价等级超出量程, 报表中剔除",
            file=sys.stderr,
        )
    return 0


# -- registration -------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add the report commands to the ``evalbox`` parser."""
    store = store_options(argparse.ArgumentParser(add_help=False), policy=True)
    p = sub.add_parser(
        "report", parents=[store], help="monthly rates (--month) or the year's sanctions ledger (--year) / 满意率月报"
    )
    p.add_argument("--month", metavar="YYYY-MM")
    p.add_argument("--year", type=int, metavar="YYYY")
    p.add_argument("--unit", metavar="UNIT", help="only this unit and the units below it")
    p.add_argument("--format", choices=FORMATS, help="default: from the -o file's suffix, else table")
    p.add_argument("--lang", choices=LANGS, default="zh")
    p.add_argument("-o", "--output", metavar="FILE", help=".csv .json .xlsx .html: written in that format")
    p.add_argument(
        "--issued", metavar="YYYY-MM-DD", help="the printed notice's date of issue (default: today) / 签发日期"
    )
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
    q = psub.add_parser(
        "close", parents=[store], help="freeze a month's figures and judgement; later changes become a revision"
    )
    q.add_argument("month", metavar="YYYY-MM")
    q.set_defaults(func=cmd_month_close)
    q = psub.add_parser("list", parents=[store], help="list closed months")
    q.set_defaults(func=cmd_month_list)

    p = sub.add_parser("rebuild", parents=[store], help="recompute months and rollups from raw events")
    p.set_defaults(func=cmd_rebuild)
