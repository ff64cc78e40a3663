"""``evalbox user add`` and ``evalbox web``: users of the web page, and the page on its own.

``evalbox serve`` mounts the same page in the collector (``add_web_routes``);
``evalbox web`` runs it alone against the configured store (SQLite or
PostgreSQL), with the same ``[web]`` settings and the same policy.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import pathlib
import signal

from aiohttp import web

from collector.cli.common import config_of, os_user, store_options
from collector.errors import UsageError
from collector.web.app import create_app
from collector.web.auth import add_user
from collector.web.settings import WebSettings

DEFAULT_LISTEN = "127.0.0.1:8080"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="web page users / 网页用户管理")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = user_sub.add_parser("add", help="create or update a user / 添加或修改用户")
    add.add_argument("name")
    add.add_argument("--role", choices=("admin", "supervisor"), required=True)
    add.add_argument("--unit", action="append", default=[], help="a unit the supervisor sees (repeatable)")
    add.add_argument("--password-file", type=pathlib.Path, help="read the password from this file (first line)")
    store_options(add)
    add.set_defaults(func=_user_add)

    web = sub.add_parser("web", help="run the supervisors' web page alone / 单独运行网页")
    store_options(web)
    web.add_argument("--listen", help=f"HOST:PORT (default: [web] listen, else {DEFAULT_LISTEN})")
    web.add_argument("--webhook", action="append", default=[], help="alert webhook URL (repeatable; adds to [web])")
    web.add_argument("--mqtt", help="alert MQTT broker HOST:PORT")
    web.set_defaults(func=_web)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return str(args.password_file.read_text(encoding="utf-8").splitlines()[0])
        except (OSError, IndexError) as exc:
            raise UsageError(f"--password-file {args.password_file}: cannot read a password ({exc})") from None
    first = getpass.getpass("password 密码: ")
    if first != getpass.getpass("again 再次输入: "):
        raise UsageError("the two passwords differ")
    return first


def _user_add(args: argparse.Namespace) -> int:
    config = config_of(args)  # the store the collector uses: never a stray local file
    config.require_store()
    password = _read_password(args)

    async def run() -> None:
        async with config.database(must_exist=False) as db:
            await add_user(db, args.name, args.role, password, args.unit, by=os_user())

    asyncio.run(run())
    units = f" units {', '.join(args.unit)}" if args.unit else ""
    print(f"user {args.name} ({args.role}){units} saved / 用户已保存")
    return 0


def _host_port(value: str, flag: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"{flag} {value!r}: expected HOST:PORT")
    return host, int(port)


def _web(args: argparse.Namespace) -> int:
    config = config_of(args)
    config.require_store()
    host, port = _host_port(args.listen or config.web_listen or DEFAULT_LISTEN, "--listen")
    settings = config.web or WebSettings()
    settings = settings.replace(webhook_urls=(*settings.webhook_urls, *args.webhook))
    if args.mqtt:
        mqtt_host, mqtt_port = _host_port(args.mqtt, "--mqtt")
        settings = settings.replace(mqtt_host=mqtt_host, mqtt_port=mqtt_port)

    async def run() -> None:
        async with config.database() as db:
            runner = web.AppRunner(create_app(db, settings, config.policy, notice=config.notice))
            await runner.setup()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)  # drain: the watcher finishes its step, the store closes
            try:
                await web.TCPSite(runner, host, port).start()
                print(f"web page on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
                await stop.wait()
            finally:
                await runner.cleanup()

    asyncio.run(run())
    return 0
