"""``evalbox audit verify|seal`` (the audit trail, 审计日志) and ``evalbox retention run [--dry-run]`` (保存期限)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from collector.cli.common import config_of, os_user, store_options, with_db
from collector.errors import UsageError
from collector.report import retention
from collector.store.audit import month_seal, seal_month, verify
from collector.timeplace import parse_month

VERIFY_HELP = """\
Check the audit trail and everything it vouches for. 校验审计日志及其所证明的数据。

Walks the hash chain entry by entry; recomputes each sealed month's digest from
its stored events (a month whose raw events were pruned: from its rollups,
against the digest taken when they were pruned) and its close (months,
month_snapshots, month_rollups); compares each month's rollups with its events;
compares cases, complaints, flag reviews and users with their last audited state.

Exit status: 0 everything matches; 1 a mismatch (the first entry of the chain
that does not match, then each month and record, named); 2 the store cannot be read.
"""


def cmd_audit_verify(args: argparse.Namespace) -> int:
    config = config_of(args)
    res = with_db(config, verify)
    for note in res.notes:
        print(f"note 说明: {note}")
    print(
        f"audit trail 审计日志: {res.entries:,} entries; {res.months} sealed months ({res.pruned_months} with raw"
        f" events pruned); {res.records:,} audited records"
    )
    if res.ok:
        print("verified: the chain, the months and the records match / 校验通过")
        return 0
    print(f"VERIFICATION FAILED / 校验失败 ({len(res.problems)}):")
    for p in res.problems:
        print(f"  - {p}")
    return 1


def cmd_audit_seal(args: argparse.Namespace) -> int:
    config = config_of(args)
    try:
        parse_month(args.month)
    except Exception as exc:
        raise UsageError(str(exc)) from None

    async def job(db: Any) -> dict[str, Any]:
        if await month_seal(db, args.month) is not None:
            raise UsageError(f"month {args.month} is sealed already / 已封存")
        if await db.fetchone("SELECT 1 FROM months WHERE month = ?", (args.month,)) is None:
            raise UsageError(f"month {args.month} is not closed: evalbox month close {args.month} seals it")
        return await seal_month(db, args.month, config.timezone, actor=os_user(), action="month.seal")

    seal = with_db(config, job)
    print(f"month {args.month} sealed 已封存: {seal['events']:,} events, digest 月度摘要 {seal['digest']}")
    return 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = int(time.time() * 1000)
    plan = with_db(
        config,
        lambda db: retention.run(
            db, config.retention, config.policy, now_ms=now, actor=os_user(), dry_run=args.dry_run
        ),
    )
    print("\n".join(plan.lines(dry_run=args.dry_run)))
    if args.dry_run:
        print("dry run: nothing changed / 试运行, 未作改动", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add ``audit`` and ``retention`` to the ``evalbox`` parser."""
    p = sub.add_parser("audit", help="the hash-chained audit trail / 审计日志")
    psub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    q = psub.add_parser(
        "verify",
        parents=[store_options(argparse.ArgumentParser(add_help=False))],
        help="check the chain, each month's digest and the audited records / 校验",
        description=VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.set_defaults(func=cmd_audit_verify)
    q = psub.add_parser(
        "seal",
        parents=[store_options(argparse.ArgumentParser(add_help=False))],
        help="seal a month closed before the audit trail existed / 补封存",
    )
    q.add_argument("month", metavar="YYYY-MM")
    q.set_defaults(func=cmd_audit_seal)

    p = sub.add_parser("retention", help="remove old raw events and personal data per [retention] / 保存期限")
    psub = p.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    q = psub.add_parser(
        "run",
        parents=[store_options(argparse.ArgumentParser(add_help=False))],
        help="prune raw events past their time, de-identify old tickets and notes",
    )
    q.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    q.set_defaults(func=cmd_retention_run)
