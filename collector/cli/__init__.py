"""The ``evalbox`` command line: a thin layer over the collector library.

Each module of this package adds its commands (``register(subparsers)``); a
command's handler takes the parsed args and returns the exit code. Library
errors (``EvalboxError``) become one clear line on stderr and exit 2; no
traceback for expected failures.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
from collections.abc import Sequence

import protocol
from collector import __version__
from collector.cli import audit, feed, firmware, flags, fleet, report, service, sim, store, token, web
from collector.errors import EvalboxError
from protocol.hmac256 import hmac_sha256


def _cmd_selfcheck(args: argparse.Namespace) -> int:
    """Run the protocol's golden vectors and RFC 4231 cases on this interpreter."""
    ref = importlib.resources.files(protocol) / "vectors.json"
    vec = json.loads(ref.read_text(encoding="utf-8"))
    key = bytes.fromhex(vec["key_hex"])
    failed = 0
    for c in vec["rfc4231"]:
        mac = hmac_sha256(bytes.fromhex(c["key_hex"]), bytes.fromhex(c["data_hex"]))[: c["truncate"]]
        failed += mac.hex() != c["mac_hex"]
    for m in vec["messages"]:
        failed += protocol.encode(m["message"], key) != m["wire"].encode()
    total = len(vec["rfc4231"]) + len(vec["messages"])
    print(f"protocol self-check 协议自检: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evalbox",
        description="evalbox collector — 评价器数据采集与满意率统计 (satisfaction evaluator collector)",
    )
    parser.add_argument("--version", action="version", version=f"evalbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("selfcheck", help="check the wire protocol against its golden vectors / 协议自检")
    p.set_defaults(func=_cmd_selfcheck)
    for module in (report, flags, web, token, feed, service, sim, store, firmware, fleet, audit):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc: int = args.func(args)
        return rc
    except EvalboxError as exc:
        print(f"evalbox: error 错误: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
