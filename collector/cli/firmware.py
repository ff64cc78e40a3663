"""``evalbox firmware keygen|build|verify``: the release key, signed releases, and checking them as a box would."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from collector.fleet.release import (
    ReleaseSpec,
    build,
    check_release,
    keygen,
    load_key,
    parse_public_key,
    version,
)
from collector.fleet.tree import default_source
from firmware import release as box

# the box's refusal reasons, as a supervisor reads them
REASONS = {
    "unreadable": "无法读取 cannot be read",
    "bad_magic": "不是固件发布包 not an evalbox release",
    "truncated": "文件不完整 truncated",
    "bad_key": "信任的公钥不可用 the trusted key is unusable",
    "bad_signature": "签名无效 bad signature (not signed by this key, or altered)",
    "bad_manifest": "清单无效 bad manifest",
    "unsupported_format": "格式版本不支持 format this box cannot read",
    "wrong_board": "板型不符 for another board",
    "below_min_version": "低于最低版本（禁止降级） below the minimum version (downgrade refused)",
    "needs_protocol": "需要更新的协议版本 needs a newer protocol",
    "needs_config": "需要更新的配置格式 needs a newer config format",
    "mpy_mismatch": "字节码版本不符 .mpy version differs",
    "bad_hash": "文件校验失败 a file does not match its SHA-256",
    "trailing_data": "末尾有多余数据 extra bytes at the end",
}

KEYGEN_HELP = """\
Create the release key (Ed25519) that signs firmware for the boxes.
生成固件发布密钥。

Keep the key off the collector, on an offline machine (docs/firmware-updates.md);
boxes trust only its public key, written to FILE.pub and printed here.
"""


def _board(text: str) -> str:
    if text not in box.BOARDS:
        raise argparse.ArgumentTypeError(f"board {text!r}: one of {', '.join(box.BOARDS)}")
    return text


def _level(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want a number 1..255") from None
    if not 1 <= n <= 255:
        raise argparse.ArgumentTypeError(f"{text!r}: want a number 1..255")
    return n


def register(sub: Any) -> None:
    fw = sub.add_parser("firmware", help="signed firmware releases for the boxes / 固件发布与签名")
    fsub = fw.add_subparsers(dest="firmware_command", metavar="ACTION", required=True)

    p = fsub.add_parser("keygen", help="create the release key / 生成发布密钥", description=KEYGEN_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the private key file (mode 0600)")
    p.add_argument("--encrypt", action="store_true",
                   help="protect it with a passphrase (asked, or EVALBOX_RELEASE_KEY_PASSPHRASE)")  # fmt: skip
    p.set_defaults(func=cmd_keygen)

    p = fsub.add_parser("build", help="compile and sign a release / 编译并签名固件包")
    p.add_argument("--key", required=True, type=pathlib.Path, help="the release key file")
    p.add_argument("--version", required=True, help="this release's version, X.Y.Z")
    p.add_argument("--board", required=True, type=_board, help=f"the boxes it is for: {', '.join(box.BOARDS)}")
    p.add_argument(
        "--min-version",
        default="0.0.0",
        help="after installing it a box refuses anything older than this (anti-rollback; default 0.0.0)",
    )
    p.add_argument(
        "--min-protocol",
        type=_level,
        default=ReleaseSpec.min_protocol,
        help=f"wire protocol version a box must have (default {ReleaseSpec.min_protocol})",
    )
    p.add_argument(
        "--min-config",
        type=_level,
        default=ReleaseSpec.min_config,
        help=f"box.json format a box must have (default {ReleaseSpec.min_config})",
    )
    p.add_argument(
        "--source",
        type=pathlib.Path,
        default=None,
        help="checkout holding protocol/ and firmware/ (default: the installed evalbox's)",
    )
    p.add_argument("-o", "--output", required=True, type=pathlib.Path, metavar="FILE", help="the release file (.evr)")
    p.set_defaults(func=cmd_build)  # fmt: skip

    p = fsub.add_parser("verify", help="check a release as a box would / 校验固件包")
    p.add_argument("release", type=pathlib.Path, help="the release file (.evr)")
    p.add_argument("--pubkey", required=True, help="the release public key: 64 hex digits or the .pub file")
    p.add_argument("--board", type=_board, help="refuse a release for another board")
    p.add_argument("--floor", help="refuse a release below this version (a box's minimum), X.Y.Z")
    p.set_defaults(func=cmd_verify)

    p = fsub.add_parser("rotate", help="a key rotation statement, signed by both keys / 轮换发布密钥")
    p.add_argument("--key", required=True, type=pathlib.Path, help="the release key the boxes trust now")
    p.add_argument("--new-key", required=True, type=pathlib.Path, help="the new release key (evalbox firmware keygen)")
    p.add_argument("--seq", required=True, type=int, help="this rotation's number: above every earlier one (1, 2, ...)")
    p.add_argument("-o", "--output", required=True, type=pathlib.Path, metavar="FILE", help="the statement (.evk)")
    p.set_defaults(func=cmd_rotate)


def cmd_rotate(args: argparse.Namespace) -> int:
    from collector.fleet.release import build_time, public_hex, rotation

    current, new = load_key(args.key), load_key(args.new_key)
    data = rotation(current, new, args.seq, build_time())
    args.output.write_bytes(data)
    print(f"key rotation 密钥轮换 {args.output}: seq {args.seq}, {public_hex(current)[:16]}… -> {public_hex(new)}")
    print("  send it with: evalbox fleet rotate " + str(args.output))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.output)
    pub = keygen(out, encrypt=args.encrypt)
    print(f"release key 发布密钥: {out} (mode 0600; keep it offline / 离线保管)")
    print(f"public key 公钥 ({out}.pub): {pub}")
    return 0


def describe(manifest: dict[str, Any]) -> str:
    """One line: version, floor, board, files and bytes."""
    size = sum(f["size"] for f in manifest["files"])
    return (
        f"version 版本 {manifest['version']} (min 最低 {manifest['min_version']}), board 板型 {manifest['board']}, "
        f"{len(manifest['files'])} files 文件, {size:,} bytes 字节, built 构建 {manifest['built']}"
    )


def cmd_build(args: argparse.Namespace) -> int:
    spec = ReleaseSpec(
        version=version(args.version, "--version"),
        board=args.board,
        min_version=version(args.min_version, "--min-version"),
        min_protocol=args.min_protocol,
        min_config=args.min_config,
    )
    key = load_key(args.key)
    manifest = build(args.source or default_source(), spec, key, args.output)
    print(f"release 固件包 {args.output}: signed 已签名")
    print("  " + describe(manifest))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    public_key = parse_public_key(args.pubkey)
    floor = version(args.floor, "--floor") if args.floor else None
    try:
        manifest = check_release(args.release, public_key, board=args.board, floor=floor)
    except box.ReleaseError as exc:
        label = REASONS.get(exc.reason, exc.reason)
        print(f"release 固件包 {args.release}: REFUSED 拒绝 — {label} [{exc.reason}] {exc.detail}", file=sys.stderr)
        return 1
    print(f"release 固件包 {args.release}: OK 验证通过 (signature and every file / 签名与全部文件)")
    print("  " + describe(manifest))
    return 0
