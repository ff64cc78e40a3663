"""``evalbox fleet update|status``: staged firmware rollouts over MQTT and each box's firmware state."""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
from typing import Any

from collector.cli.common import config_of, store_options
from collector.config import Config
from collector.errors import UsageError
from collector.fleet import rollout
from collector.fleet.transfer import FleetLink
from collector.store import Database

UPDATE_HELP = """\
Roll a signed release out to the boxes: the canary share first, the rest with --continue.
分批升级固件：先灰度（canary）一部分评价器，确认后用 --continue 升级其余。

The collector only relays the release file; each box checks its signature, board and
version floor itself, installs it in its idle slot, and rolls back by itself when the
new firmware fails its self-test. The rollout halts when more than --max-failed of a
phase's boxes refuse the release, roll back or do not answer.
"""


def _pct(text: str) -> int:
    t = text.rstrip("%")
    try:
        n = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want a share like 5%") from None
    if not 0 < n <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: want 1%..100%")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want at least 1")
    return n


def register(sub: Any) -> None:
    fl = sub.add_parser("fleet", help="firmware rollouts to the boxes / 评价器固件升级")
    fsub = fl.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    p = store_options(fsub.add_parser("update", help="roll a release out, canary first / 分批升级",
                                      description=UPDATE_HELP, formatter_class=raw))  # fmt: skip
    p.add_argument("release", nargs="?", type=pathlib.Path, help="the signed .evr file (evalbox firmware build)")
    p.add_argument("--canary", type=_pct, default=5, metavar="PCT", help="share of the boxes updated first (5%%)")
    p.add_argument("--unit", metavar="U", help="only the boxes of this unit")
    p.add_argument("--window", type=_positive, default=4, metavar="W", help="boxes updated at the same time (4)")
    p.add_argument("--max-failed", type=_pct, default=20, metavar="PCT",
                   help="halt when more than this share of a phase fails (20%%)")  # fmt: skip
    p.add_argument("--timeout", type=_positive, default=900, metavar="S", help="seconds one box may take (900)")
    p.add_argument("--continue", dest="cont", action="store_true", help="update the rest after a good canary")
    p.set_defaults(func=cmd_update)
    p = store_options(fsub.add_parser("rotate", help="send a release key rotation to the boxes / 下发密钥轮换"))
    p.add_argument("statement", type=pathlib.Path, help="the .evk file (evalbox firmware rotate)")
    p.add_argument("--unit", metavar="U", help="only the boxes of this unit")
    p.set_defaults(func=cmd_rotate)
    p = store_options(fsub.add_parser("status", help="each box's firmware and the rollout / 固件状态"))
    p.add_argument("--wait", type=float, default=2.0, metavar="S", help="seconds to collect the boxes' states (2)")
    p.set_defaults(func=cmd_status)


def _link(config: Config, keys: dict[str, bytes]) -> FleetLink:
    m = config.mqtt
    if m is None:
        raise UsageError("no [mqtt] broker in the config: the rollout talks to the boxes through it")
    return FleetLink(m.host, m.port, m.username, m.password, keys)


async def _keys(db: Database) -> dict[str, bytes]:
    return {r[0]: bytes.fromhex(r[1]) for r in await db.fetch("SELECT id, key_hex FROM devices")}


def _record(db: Database, link: FleetLink) -> None:
    """Store every firmware state a box reports while the link is up."""
    pending: set[asyncio.Task[None]] = set()

    def on(device: str, msg: dict[str, Any]) -> None:
        t = asyncio.get_running_loop().create_task(rollout.record_state(db, device, msg))
        pending.add(t)
        t.add_done_callback(pending.discard)

    link.listeners.append(on)


def _alerter(config: Config) -> rollout.Alert:
    from collector.web.alerts import fw_rollback_alerter
    from collector.web.settings import WebSettings

    return fw_rollback_alerter(config.web or WebSettings())


def cmd_update(args: argparse.Namespace) -> int:
    config = config_of(args)
    if args.cont == (args.release is not None):
        raise UsageError("give a RELEASE file to start a rollout, or --continue (not both)")

    async def main() -> int:
        async with config.database() as db:
            if args.cont:
                rid = await rollout.continue_rollout(db)
                r = (await db.fetch("SELECT release_path FROM fw_rollouts WHERE id = ?", (rid,))).dicts()[0]
                path = pathlib.Path(r["release_path"])
            else:
                path = args.release
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"{path}: cannot read the release ({exc.strerror})") from None
            if data[:4] != b"EVR1":
                raise UsageError(f"{path}: not an evalbox release file (evalbox firmware build)")
            if not args.cont:
                rid = await rollout.start(
                    db,
                    str(path.resolve()),
                    data,
                    canary_pct=args.canary,
                    unit=args.unit,
                    max_failed_pct=args.max_failed,
                )
            link = _link(config, await _keys(db))
            _record(db, link)
            await link.start()
            try:
                state = await rollout.run_phase(
                    db, link, rid, data, window=args.window, timeout=args.timeout, on_rollback=_alerter(config)
                )
            finally:
                await link.close()
            print((await rollout.progress(db, rid)).line())
            if state == "canary_done":
                print("canary done 灰度完成: check the boxes, then run: evalbox fleet update --continue")
            return 1 if state == "halted" else 0

    return asyncio.run(main())


def cmd_rotate(args: argparse.Namespace) -> int:
    import json

    config = config_of(args)
    try:
        data = args.statement.read_bytes()
        seq = int(json.loads(data[136:])["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{args.statement}: not a key rotation statement (evalbox firmware rotate)") from None

    async def main() -> int:
        async with config.database() as db:
            sql = "SELECT d.id FROM devices d JOIN windows w ON w.id = d.window_id"
            rows = await db.fetch(sql + (" WHERE w.unit_id = ?" if args.unit else "") + " ORDER BY d.id",
                                  (args.unit,) if args.unit else ())  # fmt: skip
            link = _link(config, await _keys(db))
            _record(db, link)
            await link.start()
            try:
                outs = await asyncio.gather(*(link.rotate(r[0], data, seq) for r in rows))
            finally:
                await link.close()
        for r, out in zip(rows, outs, strict=True):
            print(f"{r[0]}: {out.state}" + (f" ({out.why})" if out.why else ""))
        return 0 if all(o.state == "ok" for o in outs) else 1

    return asyncio.run(main())


def cmd_status(args: argparse.Namespace) -> int:
    config = config_of(args)

    async def main() -> int:
        async with config.database() as db:
            if config.mqtt is not None:
                link = _link(config, await _keys(db))
                await link.start()
                await asyncio.sleep(args.wait)  # the retained states of every box arrive
                await link.close()
                for device, msg in link.states.items():
                    await rollout.record_state(db, device, msg)
            rows = (await db.fetch(
                "SELECT d.id, f.version, f.slot, f.trial, f.state, f.why FROM devices d"
                " LEFT JOIN fw_box_state f ON f.device_id = d.id ORDER BY d.id")).dicts()  # fmt: skip
            head = f"{'box 评价器':<20} {'version 版本':<14} {'slot':<5} {'trial':<6} {'state':<12}"
            print(head + " last update error 最近升级错误")
            for r in rows:
                ver = r["version"] or ("usb" if r["slot"] else "?")
                trial = "yes" if r["trial"] else "no" if r["trial"] is not None else "?"
                print(
                    f"{r['id']:<20} {ver:<14} {r['slot'] or '?':<5} {trial:<6} {r['state'] or '?':<12} {r['why'] or ''}"
                )
            last = await rollout.latest(db)
            if last is not None:
                print((await rollout.progress(db, int(last["id"]))).line())
        return 0

    sys.stdout.flush()
    return asyncio.run(main())
