"""``evalbox`` commands of the collector service: serve, init, registry, devices, broker files, status.

The store comes from ``--config FILE`` (default ``./evalbox.toml``) or ``--db URL`` through the one loader
(``collector.config``), as for every command.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import pathlib
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from collector.cli.common import config_of, print_table, store_options
from collector.config import DEFAULT_CONFIG, EXAMPLE
from collector.errors import EvalboxError, UsageError
from collector.ingest import provision, rosters
from collector.serve import serve
from collector.store import BoxSettings, Store, open_store

T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the collector (MQTT, serial, store, web) / 运行采集服务")
    store_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log every connection event")
    p.set_defaults(func=_serve)

    p = sub.add_parser("init", help="write a commented example config / 生成配置文件示例")
    p.add_argument("-o", "--output", default=DEFAULT_CONFIG, help=f"file to write (default {DEFAULT_CONFIG})")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_init)

    a = _action(_group(sub, "unit", "units (派出所, 大队) / 单位"), "add", "add or rename a unit / 添加单位", _unit_add)
    a.add_argument("id")
    a.add_argument("--name", required=True)
    a.add_argument("--parent", help="parent unit id")
    a.add_argument("--leader", help="unit leader's name")

    a = _action(
        _group(sub, "window", "service windows / 窗口"), "add", "add or rename a window / 添加窗口", _window_add
    )
    a.add_argument("id")
    a.add_argument("--unit", required=True)
    a.add_argument("--name", required=True)

    officers = _group(sub, "officer", "window officers / 民警")
    a = _action(officers, "add", "add or update an officer (badge number) / 添加民警", _officer_add)
    a.add_argument("id", help="badge number 警号")
    a.add_argument("--name", required=True)
    a.add_argument("--unit", required=True)
    a.add_argument("--window")
    a = _action(
        officers, "import", "import officers from .xlsx or CSV (警号,姓名,单位[,窗口]) / 导入民警", _officer_import
    )
    a.add_argument("file", type=pathlib.Path, help=".xlsx or CSV: id,name,unit_id[,window_id] or 警号,姓名,单位[,窗口]")
    _encoding_arg(a)

    registry = _group(sub, "registry", "units, windows and officers from .xlsx or CSV / 批量导入")
    a = _action(registry, "import", "import rosters in one transaction / 导入", _registry_import)
    for flag, columns in (
        ("--units", "id,name[,parent_id,leader] or 单位编号,名称[,上级单位,负责人]"),
        ("--windows", "id,unit_id,name or 窗口编号,单位,窗口名称"),
        ("--officers", "id,name,unit_id[,window_id] or 警号,姓名,单位[,窗口]"),
    ):
        a.add_argument(flag, type=pathlib.Path, metavar="FILE", help=f".xlsx or CSV: {columns}")
    _encoding_arg(a)

    devices = _group(sub, "device", "evaluator boxes / 评价器")
    a = _action(devices, "add", "register a box, create its key and config file / 注册评价器", _device_add)
    a.add_argument("device")
    a.add_argument("--window", required=True)
    a.add_argument("--transport", choices=("mqtt", "serial"), default="mqtt")
    a.add_argument("--board", choices=provision.BOARDS, default="esp32")
    a.add_argument("-o", "--output", help="box config file (default DEVICE.json)")
    a.add_argument("--serial-path", help="sim board with --transport serial: the box's end of its serial line")
    a.add_argument("--replace", action="store_true", help="give an existing box a new key")
    a.add_argument(
        "--pins", type=_json_object, metavar="JSON",
        help='wiring over the board\'s defaults, e.g. \'{"keys": [2, 3, 6], "invite": 7}\' / 接线',
    )  # fmt: skip
    a.add_argument(
        "--uart", type=_json_object, metavar="JSON",
        help='serial data channel over the board\'s default, e.g. \'{"id": 1, "tx": 8, "rx": 9}\'',
    )  # fmt: skip
    _settings_args(a)
    a = _action(
        devices, "set", "change a box's session settings (sent in its signed config) / 修改评价器设置", _device_set
    )
    a.add_argument("device")
    _settings_args(a)
    _action(devices, "list", "boxes and their health / 评价器状态", _device_list)

    p = sub.add_parser(
        "box-cmd", help="send a box an invite (with a ticket), a sign-in or a sign-out / 向评价器发送指令"
    )
    p.add_argument("device")
    p.add_argument("op", choices=provision.BOX_OPS)
    p.add_argument("--ticket", help="ticket or case number for an invite (票号/案件号)")
    p.add_argument("--officer", help="badge number for signin (警号)")
    store_options(p)
    p.set_defaults(func=_box_cmd)
    p = sub.add_parser(
        "broker-config", help="write the broker's config, logins and ACL (mosquitto, EMQX, NATS) / 生成代理配置"
    )
    p.add_argument("-o", "--output", required=True, help="directory for the broker's files")
    p.add_argument(
        "--broker",
        choices=provision.BROKERS,
        default="mosquitto",
        help="mosquitto: mosquitto.conf, passwd, acl; emqx: HOCON fragment, bootstrap CSV, acl.conf, API script; "
        "nats: nats-server.conf with MQTT, users file (docs/brokers.md)",
    )
    p.add_argument("--config", default=None, help="evalbox.toml: the collector's MQTT login and port")
    p.add_argument("--port", type=int, help="MQTT listener port (default: [broker] port or 1883)")
    p.add_argument("--bind", default="", help="listen address (default: all)")
    p.add_argument("--collector-user", help="the collector's MQTT user (default: [mqtt] username)")
    p.add_argument("--collector-password", help="its password (default: [mqtt] password)")
    p.set_defaults(func=_broker_config)

    p = sub.add_parser("status", help="ingest counts, rejections, devices, lag / 运行状态")
    store_options(p)
    p.set_defaults(func=_status)


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _group(sub: Subparsers, name: str, help: str) -> Subparsers:
    """A command with actions (``evalbox unit add``)."""
    return sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _action(
    group: Subparsers, name: str, help: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """An action that works on the store: ``--config``/``--db`` and its handler."""
    a = group.add_parser(name, help=help)
    store_options(a)
    a.set_defaults(func=func)
    return a


def _with_store(args: argparse.Namespace, job: Callable[[Store], Awaitable[T]], *, must_exist: bool = False) -> T:
    """Run ``job`` on the configured store; provisioning may create it (``must_exist`` False), reading may not."""
    config = config_of(args)

    async def main() -> T:
        async with open_store(config.require_store(), must_exist=must_exist) as store:
            return await job(store)

    return asyncio.run(main())


def _serve(args: argparse.Namespace) -> int:

    config = config_of(args)
    config.require_store()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("evalbox").setLevel(logging.INFO)
    try:
        return asyncio.run(serve(config))
    except BaseExceptionGroup as group:  # a task of the TaskGroup failed: report the first expected error plainly
        first = _first_leaf(group)
        if isinstance(first, EvalboxError):
            raise first from None
        raise


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _init(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.output)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; use --force to overwrite / 文件已存在")
    # The collector's broker password is generated here: the file is readable by its owner only.
    text = EXAMPLE.replace('password = "change-me"', f'password = "{provision.new_password()}"', 1)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(out, 0o600)  # also when --force replaced an older, wider file
    print(f"wrote {out} (mode 0600) / 已生成配置文件")
    print(
        f"the collector's broker password is a new random one: [mqtt] password in {out}; "
        f"evalbox broker-config --config {out} gives it to the broker"
        " / 采集器的代理密码已随机生成，见该文件 [mqtt] password"
    )
    print(f"edit it, then: evalbox serve --config {out} / 修改后运行")
    return 0


def _unit_add(args: argparse.Namespace) -> int:
    provision.check_id(args.id, "unit")
    _with_store(args, lambda s: s.add_unit(args.id, args.name, args.parent, args.leader))
    print(f"unit {args.id} {args.name} saved / 单位已保存")
    return 0


def _window_add(args: argparse.Namespace) -> int:
    provision.check_id(args.id, "window")
    _with_store(args, lambda s: s.add_window(args.id, args.unit, args.name))
    print(f"window {args.id} {args.name} saved / 窗口已保存")
    return 0


def _officer_add(args: argparse.Namespace) -> int:
    provision.check_id(args.id, "officer")
    _with_store(args, lambda s: s.import_registry(officers=[(args.id, args.name, args.unit, args.window)]))
    print(f"officer {args.id} {args.name} saved / 民警已保存")
    return 0


def _encoding_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoding",
        metavar="NAME",
        help="the CSV files' encoding (utf-8, gb18030, gbk, utf-16; default: detected) / CSV编码，默认自动识别",
    )


def _import_rosters(args: argparse.Namespace, files: dict[str, pathlib.Path | None]) -> dict[str, rosters.Roster]:
    """Read every roster (all problems at once), say how each was read, import them in one transaction."""
    read = rosters.read_rosters(files, args.encoding)
    _with_store(args, lambda s: rosters.import_rosters(s, read))
    for roster in read.values():
        print(f"{roster.path}: {roster.source}")
    return read


def _officer_import(args: argparse.Namespace) -> int:
    n = len(_import_rosters(args, {"officers": args.file})["officers"].rows)
    print(f"{n} officers imported / 已导入 {n} 名民警")
    return 0


def _registry_import(args: argparse.Namespace) -> int:
    if not (args.units or args.windows or args.officers):
        raise UsageError("give at least one of --units, --windows, --officers / 请至少指定一个名册文件")
    read = _import_rosters(args, {"units": args.units, "windows": args.windows, "officers": args.officers})
    units, windows, officers = (len(read[t].rows) if t in read else 0 for t in rosters.TABLES)
    print(
        f"imported {units} units, {windows} windows, {officers} officers / "
        f"已导入 单位 {units}、窗口 {windows}、民警 {officers}"
    )
    return 0


def _settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session settings (评价规则)")
    g.add_argument("--scale", type=int, default=2, help="rating keys on the box, 2-5 (default 2: 满意/不满意)")
    g.add_argument("--invite-s", type=float, default=10.0, help="seconds a 请评价 invite stays open (default 10)")
    g.add_argument("--min-interval-s", type=float, default=5.0, help="presses closer than this are misuse (default 5)")
    g.add_argument("--hours", help="opening hours HH:MM-HH:MM; presses outside are flagged (default: none)")
    g.add_argument("--ungated", action="store_true", help="presses count without an invite (default: gated)")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object {...} expected")
    return value


def _hours(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = text.split("-")
        (ha, ma), (hb, mb) = (map(int, a.split(":")), map(int, b.split(":")))
        if not (0 <= ma < 60 and 0 <= mb < 60):
            raise ValueError
        return ha * 60 + ma, hb * 60 + mb
    except ValueError:
        raise UsageError(
            f"--hours {text!r}: expected HH:MM-HH:MM, e.g. 09:00-17:00 / 营业时间格式应为09:00-17:00"
        ) from None


def _settings(args: argparse.Namespace) -> BoxSettings:
    return BoxSettings(
        scale=args.scale,
        invite_ms=round(args.invite_s * 1000),
        min_interval_ms=round(args.min_interval_s * 1000),
        gated=not args.ungated,
        hours=_hours(args.hours),
    )


def _box_cmd(args: argparse.Namespace) -> int:
    provision.check_box_command(args.device, args.op, args.officer, args.ticket)
    cid = _with_store(args, lambda s: s.queue_command(args.device, args.op, args.officer, args.ticket))
    print(f"command {cid} queued for {args.device}: the running collector sends it within a second / 指令已排队")
    return 0


def _device_set(args: argparse.Namespace) -> int:
    settings = _settings(args)
    cv = _with_store(args, lambda s: s.set_device_settings(args.device, settings))
    print(f"device {args.device}: settings saved (config version {cv}); a running collector sends them within 5 s"
          " / 设置已保存")  # fmt: skip
    return 0


def _device_add(args: argparse.Namespace) -> int:
    provision.check_id(args.device, "device")
    if args.board == "sim" and args.transport == "serial" and not args.serial_path:
        raise UsageError("--board sim --transport serial needs --serial-path (the box's end of the serial line)")
    if args.serial_path and not (args.board == "sim" and args.transport == "serial"):
        raise UsageError("--serial-path goes with --board sim --transport serial only")
    config = config_of(args)
    broker = config.broker
    key_hex = provision.new_key_hex()
    password = provision.new_password()
    out = pathlib.Path(args.output or f"{args.device}.json")
    settings = _settings(args)
    if (args.pins or args.uart) and args.board == "sim":
        raise UsageError("--pins/--uart describe a real board's wiring: not with --board sim")
    if args.uart and args.transport != "serial":
        raise UsageError("--uart goes with --transport serial")
    box = provision.box_config(
        args.device, key_hex, args.window, args.transport, broker.host, broker.port, password, args.board,
        settings=settings, pins=args.pins, uart=args.uart,
    )  # fmt: skip
    if args.board == "sim":  # the simulator keeps its flash in an image file beside the config
        box["flash"] = str(out.resolve().with_suffix(".flash"))
        if args.transport == "serial":
            box["serial_path"] = args.serial_path
    provision.check_box_config(box)  # refused here, naming the key and the limit, before anything is written
    _with_store(
        args,
        lambda s: s.add_device(
            args.device, args.window, key_hex, replace=args.replace, settings=settings, transport=args.transport
        ),
    )
    provision.write_secret_json(out, box)
    note = ""
    if config.file is not None and broker.password_file and args.transport == "mqtt":
        pf = config.path(broker.password_file)
        provision.set_broker_password(pf, args.device, password)
        note = f"; broker login added to {pf} (reload mosquitto: kill -HUP)"
    print(f"device {args.device} on window {args.window}: config written to {out}{note} / 评价器已注册")
    return 0


def _fmt_ms(ms: Any) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(int(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _device_list(args: argparse.Namespace) -> int:
    rows = _with_store(args, lambda s: s.device_rows(), must_exist=True)
    columns = [("device 设备", 20), ("window 窗口", 12), ("status 状态", 12), ("last seen 最后在线", 20),
               ("outbox", -6), ("fw", 0)]  # fmt: skip
    table = [
        [r["id"], r["window_id"], r["status"], _fmt_ms(r["last_seen_ms"]),
         "-" if r["outbox"] is None else str(r["outbox"]) + ("!" if r["outbox_full"] else ""), r["fw"] or "-"]
        for r in rows
    ]  # fmt: skip
    print_table(columns, table, "(no devices / 暂无设备: evalbox device add DEVICE --window W)")
    return 0


def _broker_config(args: argparse.Namespace) -> int:
    config = config_of(args)
    mqtt = config.mqtt
    user = args.collector_user or (mqtt.username if mqtt else None)
    password = args.collector_password or (mqtt.password if mqtt else None)
    if not user or not password:
        raise UsageError("the collector's MQTT login: give --collector-user/--collector-password or [mqtt] in --config")
    provision.check_collector_password(password)
    port = args.port or config.broker.port
    files = provision.broker_files(
        pathlib.Path(args.output),
        collector_user=user,
        collector_password=password,
        port=port,
        bind=args.bind,
        broker=args.broker,
    )
    print("wrote 已生成: " + ", ".join(files))
    logins = files[1]
    print(
        f"each box's login is added by `evalbox device add` when [broker] password_file = {logins!r}"
        " / 每台评价器的登录由 evalbox device add 写入该文件"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    async def job(s: Store) -> dict[str, Any]:
        rows = await s.db.fetch("SELECT source, COUNT(*), MAX(recv_ms) FROM events GROUP BY source")
        dev = await s.db.fetch("SELECT status, COUNT(*) FROM devices GROUP BY status")
        return {"events": rows, "devices": dev, "rejected": await s.rejected_counts()}

    config = config_of(args)
    st = _with_store(args, job, must_exist=True)
    now = int(time.time() * 1000)
    print("stored events 已存储事件:")
    for source, n, last in st["events"] or [("-", 0, None)]:
        lag = f", last received {(now - last) / 1000:.0f} s ago 最近接收" if last else ""
        print(f"  {source}: {n}{lag}")
    print("rejected by reason 拒收(按原因): " + (", ".join(f"{r} {n}" for r, n in st["rejected"].items()) or "none 无"))
    print("devices 设备: " + (", ".join(f"{s} {n}" for s, n in st["devices"]) or "none 无"))
    listen = config.web_listen or config.metrics_listen
    if listen:
        try:
            with urllib.request.urlopen(f"http://{listen}/metrics", timeout=3) as resp:
                text = resp.read().decode()
            print(f"running collector 运行中的服务 (http://{listen}/metrics):")
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name.startswith("evalbox_source") or sample.name.endswith("_bucket"):
                        continue
                    labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
                    value = int(sample.value) if float(sample.value).is_integer() else round(sample.value, 6)
                    print(f"  {sample.name.removeprefix('evalbox_')}{'{' + labels + '}' if labels else ''} {value}")
        except (OSError, ValueError) as exc:  # ValueError: not Prometheus text
            print(f"collector not reachable at {listen} 服务未运行 ({exc})")
    return 0
