"""``evalbox sim`` (a simulated fleet, checked against its ground truth) and ``evalbox demo`` (the main job)."""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import secrets
import shutil
import sys
import tempfile
from typing import Any

from collector.errors import UsageError
from collector.sim.run import SimOptions, check_store_options, evalbox, report_json, simulate, verify_report
from collector.store.url import redact
from collector.timeplace import parse_month


def _positive(kind: type, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{what}: must be above 0")
        return value

    return parse


def _month(text: str) -> str:
    parse_month(text)  # ConfigError names the bad value
    return text


def _common(p: argparse.ArgumentParser, boxes: int, workdir: str | None) -> None:
    p.add_argument("--boxes", type=_positive(int, "--boxes"), default=boxes, help=f"boxes (default {boxes})")
    p.add_argument("--serial-every", type=int, default=4, help="every Nth box talks serial over a pty (0: none)")
    p.add_argument("--month", type=_month, help="the month to simulate, YYYY-MM (default: last month)")
    p.add_argument("--days", type=_positive(int, "--days"), help="only the first N days of the month")
    p.add_argument("--arrivals-per-hour", type=_positive(float, "--arrivals-per-hour"), default=2.0,
                   help="citizens served per window and hour (default 2)")  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="reproduce a run (default 1)")
    p.add_argument("--behaviours", action="store_true",
                   help="windows of their own kind (walk-away rates 10-35%%, paces, citizens' speeds) and, in "
                        "every unit but the first, officers filling in walk-aways / 民警代评等行为")  # fmt: skip
    p.add_argument("--workdir", default=workdir, help="where the broker, store and box flash images go")


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="run a simulated fleet of boxes and check the stored events / 模拟评价器")
    _common(p, 8, None)
    p.add_argument("--web", metavar="HOST:PORT", help="also serve the web page while it runs")
    p.add_argument("--store", metavar="URL",
                   help="store URL (default: an SQLite file in the workdir), e.g. postgresql://user@host/db; "
                        "the database must exist (it is migrated) / 存储地址")  # fmt: skip
    p.add_argument("--collectors", type=_positive(int, "--collectors"), default=1,
                   help="collectors sharing the broker stream (MQTT shared subscription); 2 or more need a "
                        "PostgreSQL --store (default 1) / 采集器数量")  # fmt: skip
    p.set_defaults(func=cmd_sim)
    p = sub.add_parser("demo", help="the whole system on this machine, a month in minutes / 演示")
    _common(p, 8, "evalbox-demo")
    p.add_argument("--web", metavar="HOST:PORT", default="127.0.0.1:8600", help="web page address")
    p.add_argument("--no-wait", action="store_true", help="stop after the report instead of serving the web page")
    p.set_defaults(func=cmd_demo)


def _options(args: argparse.Namespace, workdir: pathlib.Path) -> SimOptions:
    if args.serial_every < 0:
        raise UsageError("--serial-every: 0 or more")
    store_url, collectors = getattr(args, "store", None), getattr(args, "collectors", 1)
    check_store_options(store_url, collectors)
    return SimOptions(
        workdir=workdir, boxes=args.boxes, serial_every=args.serial_every, month=args.month, days=args.days,
        arrivals_per_hour=args.arrivals_per_hour, seed=args.seed, web_listen=args.web, store_url=store_url,
        collectors=collectors, behaviours=args.behaviours,
    )  # fmt: skip


def _workdir(args: argparse.Namespace) -> pathlib.Path:
    if args.workdir:
        path = pathlib.Path(args.workdir).resolve()
        if path.exists() and any(path.iterdir()):
            if not (path / "evalbox.toml").exists():
                raise UsageError(f"--workdir {path}: exists and is not an evalbox run; choose an empty directory")
            shutil.rmtree(path)  # an earlier run of ours: start afresh
        return path
    return pathlib.Path(tempfile.mkdtemp(prefix="evalbox-sim-"))


def cmd_sim(args: argparse.Namespace) -> int:
    workdir = _workdir(args)
    opts = _options(args, workdir)

    async def main() -> int:
        async with simulate(opts) as (dep, result):
            ev = result.events
            print(f"simulated 模拟 {result.month}: {ev.expected} events confirmed by the boxes, {ev.stored} stored; "
                  f"lost {ev.lost}, duplicated {ev.duplicated}, extra {ev.extra} ({result.seconds:.0f} s)")  # fmt: skip
            print(f"ground truth 真值: {workdir / 'truth.json'}; store 存储: {redact(dep.store_url)}")
            return 0 if ev.ok else 1

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nstopped 已停止", file=sys.stderr)
        return 130


def cmd_demo(args: argparse.Namespace) -> int:
    workdir = _workdir(args)
    try:
        return asyncio.run(_demo(args, workdir))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (see cancelled_by_sigterm)
        print("\nstopped 已停止", file=sys.stderr)
        return 0


async def _demo(args: argparse.Namespace, workdir: pathlib.Path) -> int:
    print("evalbox demo 演示 — a fictional bureau, a month of service compressed into minutes")
    async with simulate(_options(args, workdir)) as (dep, result):
        ev = result.events
        print(f"==> every press accounted for 全部到账: {ev.expected} confirmed by the boxes, {ev.stored} stored, "
              f"lost {ev.lost}, duplicated {ev.duplicated}, extra {ev.extra}")  # fmt: skip
        print(f"==> closing the month 关账 {result.month}")
        evalbox(dep, "month", "close", result.month, "--config", str(dep.config_path))
        print(f"==> monthly report 月度满意率 {result.month}\n")
        print(evalbox(dep, "report", "--config", str(dep.config_path), "--month", result.month, "--format", "table"))
        diffs = verify_report(result, report_json(dep, result.month))
        if diffs:
            print("report differs from the simulator's ground truth 报表与真值不符:\n  " + "\n  ".join(diffs))
        else:
            n = len(result.truth.get(result.month, {}))
            print(f"==> the report equals the simulator's ground truth for all {n} officers 报表与真值一致")
        password = secrets.token_urlsafe(9)
        pw_file = workdir / "demo-password.txt"
        pw_file.write_text(password + "\n", encoding="utf-8")
        pw_file.chmod(0o600)
        evalbox(dep, "user", "add", "demo", "--role", "admin", "--password-file", str(pw_file),
                "--db", dep.store_url)  # fmt: skip
        if not ev.ok or diffs:
            return 1
        if args.no_wait:
            return 0
        # Straight to the simulated month (the page opens on the current one, which the demo left empty).
        print(f"\nweb page 网页: http://{args.web}/month?month={result.month}   login 登录: demo / {password}")
        print(f"files 文件: {workdir}   (Ctrl-C stops everything 按Ctrl-C停止)")
        await asyncio.Event().wait()
    return 0
