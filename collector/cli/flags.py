"""``evalbox flags``: officer-month checks (民警月度核查) and their review (复核).

``check`` runs the month's checks on the store, records the flags and prints
each flagged officer with the explanation; ``review`` records a supervisor's
decision on an officer-month (confirmed or explained, with a note).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from collector.cli.common import config_of, os_user, store_options, with_db, write_output
from collector.report.officer_stats import DECISION_WORDS, REVIEW_DECISIONS, record_month, review_month


def cmd_flags_check(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = int(time.time() * 1000)
    found = with_db(config, lambda db: record_month(db, args.month, config.policy, now))
    if args.format == "json":
        doc = {"month": args.month, "officers": {o: c.json() for o, c in sorted(found.items())}}
        write_output((json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode(), args.output)
        return 0
    key = "explain_en" if args.lang == "en" else "explain_zh"
    lines = []
    flagged = [c for c in found.values() if c.flags]
    short = [c for c in found.values() if c.status == "not_enough_data"]
    checked = len(found) - len(short)
    lines.append(
        f"{args.month}: {checked} officers checked, {len(flagged)} flagged, {len(short)} not enough data"
        if args.lang == "en"
        else f"{args.month}：核查民警 {checked} 人，标记 {len(flagged)} 人，数据不足 {len(short)} 人"
    )
    for c in sorted(flagged, key=lambda c: c.officer_id):
        review = f"  [{DECISION_WORDS[c.review['decision']]}: {c.review['note']}]" if c.review else ""
        lines.append(f"{c.officer_id} ({c.unit_id}){review}")
        lines += [f"  - {f['rule']}: {f[key]}" for f in c.flags]
    for c in sorted(short, key=lambda c: c.officer_id):
        lines.append(f"{c.officer_id} ({c.unit_id}): {(c.note or {}).get(key, '')}")
    write_output(("\n".join(lines) + "\n").encode(), args.output)
    return 0


def cmd_flags_review(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = int(time.time() * 1000)
    with_db(config, lambda db: review_month(db, args.officer, args.month, args.decision, args.note, os_user(), now))
    print(f"{args.officer} {args.month}: {DECISION_WORDS[args.decision]} (复核已记录 review recorded)")
    return 0


def register(sub: Any) -> None:
    """Add ``evalbox flags`` to the parser."""
    store = store_options(argparse.ArgumentParser(add_help=False), policy=True)
    p = sub.add_parser("flags", help="officer-month checks and their review / 民警月度核查与复核")
    psub = p.add_subparsers(dest="flags_command", metavar="ACTION", required=True)
    q = psub.add_parser("check", parents=[store], help="check a month, record and print the flags")
    q.add_argument("--month", required=True, metavar="YYYY-MM")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.add_argument("--lang", choices=("zh", "en"), default="zh")
    q.add_argument("-o", "--output", metavar="FILE")
    q.set_defaults(func=cmd_flags_check)
    q = psub.add_parser("review", parents=[store], help="record a supervisor's review of an officer-month's flags")
    q.add_argument("--officer", required=True, help="badge number 警号")
    q.add_argument("--month", required=True, metavar="YYYY-MM")
    q.add_argument("--decision", required=True, choices=REVIEW_DECISIONS, help="confirmed 确认 | explained 已说明")
    q.add_argument("--note", required=True, help="what the review found (复核说明)")
    q.set_defaults(func=cmd_flags_review)
