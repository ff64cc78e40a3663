"""``evalbox feed export|push|status``: the provincial 好差评 feed (docs/feed.md).

``export`` writes a month's ratings as JSON Lines (no ``[feed]`` needed);
``push`` queues new ratings and sends every pending one to the ``[feed]``
endpoint once, now (the same ledger ``evalbox serve`` uses: nothing
acknowledged is sent again); ``status`` counts the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from collector import feed
from collector.cli.common import config_of, fmt_local_ms, store_options, with_db, write_output
from collector.config import Config
from collector.errors import UsageError
from collector.feed.push import client
from collector.feed.settings import FeedConfig
from collector.timeplace import parse_month


def register(sub: Any) -> None:
    p = sub.add_parser("feed", help="the provincial 好差评 feed / 省好差评数据推送")
    fsub = p.add_subparsers(dest="feed_command", metavar="ACTION", required=True)
    q = store_options(fsub.add_parser("export", help="a month's ratings as JSON Lines / 导出评价数据"))
    q.add_argument("--month", required=True, help="YYYY-MM")
    q.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    q.set_defaults(func=cmd_feed_export)
    q = store_options(fsub.add_parser("push", help="send every pending rating to [feed] url now / 立即推送"))
    q.set_defaults(func=cmd_feed_push)
    q = store_options(fsub.add_parser("status", help="the delivery ledger / 推送状态"))
    q.set_defaults(func=cmd_feed_status)


def _feed_config(config: Config) -> FeedConfig:
    if config.feed is None:
        where = config.file or "no config file"
        raise UsageError(f'{where}: no [feed] section (url = "https://…"; docs/feed.md) / 未配置推送地址')
    return config.feed


def cmd_feed_export(args: argparse.Namespace) -> int:
    parse_month(args.month)
    config = config_of(args)
    docs = with_db(config, lambda db: feed.export_month(db, args.month, config.policy))
    write_output(feed.json_lines(docs), args.output)
    if args.output:
        print(f"{len(docs)} ratings of {args.month} written to {args.output} / 已导出 {len(docs)} 条评价")
    return 0


def cmd_feed_push(args: argparse.Namespace) -> int:
    config = config_of(args)
    cfg = _feed_config(config)
    logging.getLogger("evalbox.feed").addHandler(logging.NullHandler())  # the failure is printed below, once

    async def main() -> tuple[int, feed.PushResult]:
        async with config.database() as db, client(cfg) as http:
            queued = await feed.enqueue(db, cfg, config.policy)
            return queued, await feed.push(db, cfg, config.policy, http, due_only=False)

    queued, result = asyncio.run(main())
    print(
        f"queued {queued} new, delivered {result.delivered}, pending {result.pending}"
        f" / 新入队 {queued}，已送达 {result.delivered}，待推送 {result.pending}"
    )
    if result.last_error:
        print(f"{cfg.url}: {result.last_error} (kept, retried later) / 推送失败，稍后重试", file=sys.stderr)
    return 0 if result.pending == 0 else 1


def cmd_feed_status(args: argparse.Namespace) -> int:
    config = config_of(args)
    st = with_db(config, feed.ledger_status)
    print(f"delivered 已送达: {st['delivered']}")
    print(f"pending 待推送: {st['pending']}")
    if st["pending"]:
        print(f"oldest pending rating 最早待推送: {fmt_local_ms(st['oldest_pending_ms'], config.timezone)}, "
              f"attempts up to {st['max_attempts']}")  # fmt: skip
        if st["last_error"]:
            print(f"last error 最近错误: {st['last_error']}")
    return 0
