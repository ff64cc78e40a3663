"""``evalbox store`` commands: ``store copy --from URL --to URL`` (SQLite ↔ PostgreSQL, resumable, verified) and
``store backup TARGET`` (a consistent copy of a running SQLite store)."""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import time
from typing import Any

from collector.cli.common import config_of, os_user, progress_bar, store_options
from collector.store.backup import backup_store
from collector.store.copy import DEFAULT_BATCH, SKIPPED, CopyResult, copy_store

COPY_HELP = """\
Copy every table of one store into another and verify the copy.
把一个数据库的全部数据复制到另一个数据库，并校验。

  evalbox store copy --from sqlite:///var/lib/evalbox/evalbox.db --to postgresql://evalbox@db/evalbox

The target is migrated to this evalbox's schema first (a PostgreSQL database
must exist; an SQLite file is created). Rows are copied in key order, in
batches, each batch in its own transaction: if the copy is interrupted, run the
same command again and it resumes (rows already in the target are skipped;
changed rows are updated). Copying from a running collector works: stop it,
then copy again to pick up the tail, and switch [store] url.

Not copied: sign-in sessions and login throttling (users sign in again).
Rollups are replaced at the end, then the copy is verified: row counts per
table, rollups on both sides, and rollups recomputed from the copied events.
A target holding rows the source lacks is reported, not merged silently.

Exit status: 0 copied and verified; 1 verification failed (the summary names the
table or month); 2 the stores cannot be copied (bad URL, missing source, same
store, schema mismatch, store error).
"""


def _bar(table: str, done: int, total: int) -> None:
    progress_bar(done, total, table, title="copy")


def _confirm(rows: int) -> bool:
    if not sys.stdin.isatty():
        return True
    answer = input(f"the target already holds {rows:,} rows: resume the copy into it? [y/N] 目标库已有数据，继续？ ")
    return answer.strip().lower() in ("y", "yes")


def summary(result: CopyResult, seconds: float) -> str:
    """The bilingual summary table and verdict."""
    lines = [f"{'table 表':<20}{'source 源库':>14}{'target 目标库':>14}{'copied 本次复制':>16}"]
    for t in result.tables:
        note = f"  (removed {t.removed:,} / 已删除)" if t.removed else ""
        lines.append(f"{t.name:<20}{t.source:>14,}{t.target:>14,}{t.copied:>16,}{note}")
    lines.append(
        f"not copied 未复制: {', '.join(n for n in SKIPPED if n not in ('schema_migrations', 'audit_head'))}"
        " (ephemeral / 临时数据)"
    )
    lines.append(f"copied {result.copied:,} rows in {seconds:.1f} s / 已复制 {result.copied:,} 行")
    if result.ok:
        lines.append("verified: row counts and rollups match / 校验通过：行数与汇总一致")
    else:
        lines.append("VERIFICATION FAILED / 校验失败:")
        lines.extend(f"  - {p}" for p in result.problems)
    return "\n".join(lines)


def cmd_store_copy(args: argparse.Namespace) -> int:
    source = args.source or str(config_of(args).require_store())
    t0 = time.perf_counter()
    try:
        result = asyncio.run(
            copy_store(
                source,
                args.target,
                batch=args.batch,
                progress=_bar if sys.stderr.isatty() else None,
                confirm=None if args.yes else _confirm,
                by=os_user(),
            )
        )
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the batches copied so far are kept; run the same command again to resume"
            " / 已中断，重新运行即可续传",
            file=sys.stderr,
        )
        return 130
    print(summary(result, time.perf_counter() - t0))
    return 0 if result.ok else 1


BACKUP_HELP = """\
Back up the SQLite store while the collector runs (SQLite's online backup).
在采集服务运行时备份SQLite数据库。

  evalbox store backup --config /etc/evalbox/evalbox.toml /var/backups/evalbox/evalbox-$(date +%F).db

The copy is the store as it was at one commit (every batch whole, rollups
matching their events), checked (integrity_check) before it gets its name.
Restore: stop the collector, put the copy in place of the store file (remove
its -wal and -shm files), start the collector. PostgreSQL: use pg_dump.

Exit status: 0 written and checked; 2 nothing written (no store, PostgreSQL,
target exists, disk full, copy failed its check).
"""


def cmd_store_backup(args: argparse.Namespace) -> int:
    store = config_of(args).require_store()
    t0 = time.perf_counter()
    result = asyncio.run(backup_store(store, pathlib.Path(args.target), overwrite=args.force))
    months = ", ".join(f"{m} {n:,}" for m, n in result.events_by_month.items()) or "none 无"
    print(
        f"backup written 备份完成: {result.path} ({result.bytes / 1e6:.1f} MB, {result.events:,} events 事件,"
        f" {result.migrations} migrations; integrity ok 校验通过; {time.perf_counter() - t0:.1f} s)"
    )
    print(f"events by month 各月事件: {months}")
    return 0


def register(sub: Any) -> None:
    """Add ``store copy`` to the ``evalbox`` parser."""
    p = sub.add_parser("store", help="store maintenance: copy (e.g. SQLite to PostgreSQL), back up / 数据库迁移与备份")
    psub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    q = psub.add_parser(
        "copy",
        help="copy a store into another (resumable, verified) / 复制数据库",
        description=COPY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument(
        "--from", dest="source", metavar="URL", help="the store to copy, read only (default: --db or [store] url)"
    )
    store_options(q)
    q.add_argument("--to", dest="target", required=True, metavar="URL", help="the store to copy into")
    q.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, metavar="N", help=f"rows per transaction (default {DEFAULT_BATCH})"
    )
    q.add_argument("--yes", action="store_true", help="do not ask before resuming into a target that holds rows")
    q.set_defaults(func=cmd_store_copy)
    b = psub.add_parser(
        "backup",
        help="back up a running SQLite store (online backup, checked) / 在线备份",
        description=BACKUP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    store_options(b)
    b.add_argument("target", metavar="TARGET", help="the backup file to write (SQLite)")
    b.add_argument("--force", action="store_true", help="replace TARGET if it exists")
    b.set_defaults(func=cmd_store_backup)
