"""``evalbox token add|list|revoke``: API tokens for integrations (``collector.web.tokens``).

``add`` prints the token once — the store keeps only its hash, so it cannot be
shown again (revoke it and add another when it is lost).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from collector.cli.common import config_of, fmt_local_ms, os_user, print_table, store_options, with_db
from collector.web import tokens


def register(sub: Any) -> None:
    p = sub.add_parser("token", help="API tokens for integrations / 接口令牌")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    q = store_options(tsub.add_parser("add", help="issue a token (shown once) / 新建令牌（仅显示一次）"))
    q.add_argument("name", help="what uses it, e.g. queue-system-hall1")
    q.add_argument("--scope", required=True, choices=tokens.SCOPES, help="what it may do")
    q.add_argument("--unit", help="only this unit and the units under it (default: every unit)")
    q.add_argument("--expires", metavar="DATE", help="YYYY-MM-DD (valid through that day) or an ISO date-time")
    q.set_defaults(func=cmd_token_add)
    q = store_options(tsub.add_parser("list", help="tokens, scopes, last use (never the secret) / 令牌列表"))
    q.set_defaults(func=cmd_token_list)
    q = store_options(tsub.add_parser("revoke", help="revoke a token at once / 吊销令牌"))
    q.add_argument("name")
    q.set_defaults(func=cmd_token_revoke)


def cmd_token_add(args: argparse.Namespace) -> int:
    config = config_of(args)
    expires = tokens.parse_expiry(args.expires, config.timezone) if args.expires else None
    token = with_db(
        config,
        lambda db: tokens.add_token(
            db, args.name, args.scope, unit_id=args.unit, expires_ms=expires, created_by=os_user()
        ),
    )
    print(token)
    print(
        f"token {args.name} ({args.scope}{', unit ' + args.unit if args.unit else ''}) issued; it is shown only"
        " this once — the store keeps only its hash / 令牌仅显示这一次，请妥善保存",
        file=sys.stderr,
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    config = config_of(args)
    rows = with_db(config, tokens.list_tokens)
    tz = config.timezone
    columns = [("name 名称", 24), ("scope 权限", 20), ("unit 单位", 10), ("state 状态", 10), ("expires 有效期", 17),
               ("last used 最近使用", 17), ("uses", -6), ("429", -5)]  # fmt: skip
    table = [
        [r["name"], r["scope"], r["unit_id"] or "*", "revoked" if r["revoked_ms"] is not None else "active",
         fmt_local_ms(r["expires_ms"], tz), fmt_local_ms(r["last_used_ms"], tz), str(r["uses"]), str(r["limited"])]
        for r in rows
    ]  # fmt: skip
    print_table(columns, table, "(no tokens / 暂无令牌: evalbox token add NAME --scope …)")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    config = config_of(args)
    done = with_db(config, lambda db: tokens.revoke_token(db, args.name, os_user()))
    if done:
        print(f"token {args.name} revoked / 令牌已吊销")
    else:
        print(f"token {args.name} was revoked already / 令牌此前已吊销")
    return 0
