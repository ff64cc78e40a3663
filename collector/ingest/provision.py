"""Provisioning: registry CSV files, box keys and config files, the broker's password and ACL files."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import pwd
import secrets
import shutil
import subprocess
from typing import Any

import protocol
from collector.errors import UsageError
from collector.ingest.rosters import ID_CHARS
from collector.store import BoxSettings
from firmware import ports

# The simulator and every real board of the firmware's ports table (pico, pico2, picow, pico2w, esp32).
BOARDS = ("sim", *sorted(ports.BOARDS))


def check_id(value: str, what: str) -> str:
    """A protocol id: 1–32 of ``A–Z a–z 0–9 _ -``; ``UsageError`` otherwise."""
    if not value or len(value) > 32 or set(value) - ID_CHARS:
        raise UsageError(f"{what} {value!r}: use 1-32 letters, digits, _ or - / 编号只能用字母、数字、_ 或 -")
    return value


BOX_OPS = ("invite", "signin", "signout")


def check_box_command(device_id: str, op: str, officer: str | None, ticket: str | None, *, api: bool = False) -> None:
    """Refuse (``UsageError``) a box command the box would refuse: the one check of ``evalbox box-cmd`` and the API.

    The messages name the command's options, or the JSON fields with ``api``.
    """
    o, t, what = ('"officer"', '"ticket"', "box command") if api else ("--officer", "--ticket", "box-cmd")
    if op not in BOX_OPS:
        raise UsageError(f"{what}: op {op!r}: expected one of {', '.join(BOX_OPS)} / 指令应为 invite、signin、signout")
    if op == "signin" and not officer:
        raise UsageError(f"{what} signin needs {o} (the officer's badge number) / 签到需要警号")
    if op != "signin" and officer:
        raise UsageError(f"{o} goes with signin only")
    if op != "invite" and ticket:
        raise UsageError(f"{t} goes with invite only")
    try:  # the same checks the box applies: refuse here what it would refuse
        protocol.make(protocol.COMMAND, device_id, cid=1, op=op, o=officer, tk=ticket)
    except protocol.ProtocolError as exc:
        raise UsageError(f"{what}: {exc}") from None


def box_config(
    device_id: str,
    key_hex: str,
    window_id: str,
    transport: str,
    host: str,
    port: int,
    password: str,
    board: str,
    settings: BoxSettings | None = None,
    pins: dict[str, Any] | None = None,
    uart: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The box's device config file (read by the firmware at first start).

    It holds everything the box needs before the collector's signed config reaches it: the session
    settings (scale, invite window, minimum interval, gating, hours), and on a real board its wiring
    (the board's default pins with ``pins`` laid over them) and, on a serial box, its data UART. A box
    that never hears from the collector still runs the settings it was registered with.
    """
    box: dict[str, Any] = {"device_id": device_id, "key_hex": key_hex, "window_id": window_id, "transport": transport}
    if transport == "mqtt":  # a serial box has no broker login
        box.update(broker_host=host, broker_port=port, broker_user=device_id, broker_password=password)
    box["board"] = board
    if settings is not None:
        box.update(
            scale=settings.scale,
            invite_ms=settings.invite_ms,
            min_interval_ms=settings.min_interval_ms,
            gated=settings.gated,
            hours=list(settings.hours) if settings.hours is not None else None,
        )
    if board in ports.BOARDS:
        box["pins"] = ports.board_pins(board, pins)
        if transport == "serial":
            box["uart"] = ports.board_uart(board, uart)
    return box


def check_box_config(box: dict[str, Any]) -> None:
    """The firmware's own check of a box config (``firmware.config.validate``); ``UsageError`` naming the key."""
    from firmware.config import ConfigError as BoxConfigError
    from firmware.config import validate

    try:
        validate(dict(box))
    except BoxConfigError as exc:
        raise UsageError(f"box config for {box.get('device_id')!r} would be refused by the box: {exc}") from None


def write_secret_json(path: pathlib.Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only (it holds the box's key and password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")


def new_key_hex() -> str:
    return secrets.token_bytes(32).hex()


def new_password() -> str:
    return secrets.token_urlsafe(18)


def mosquitto_passwd() -> str:
    for cand in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"):
        if cand and os.path.exists(cand):
            return cand
    raise UsageError("mosquitto_passwd not found: install mosquitto (apt-get install mosquitto)")


def set_broker_password(password_file: pathlib.Path, user: str, password: str) -> None:
    """Add or update ``user``'s broker login in the file ``broker-config`` wrote; the file's kind by its name.

    ``*.csv``: EMQX's built-in database bootstrap file; ``*.conf``: the NATS users file; else a mosquitto
    password file (hashed by ``mosquitto_passwd``). The file keeps its owner (mosquitto, when root wrote it).
    """
    if password_file.suffix == ".csv":
        _set_csv_user(password_file, user, password)
    elif password_file.suffix == ".conf":
        _set_nats_user(password_file, user, password)
    else:
        _set_mosquitto_user(password_file, user, password)


def _set_mosquitto_user(password_file: pathlib.Path, user: str, password: str) -> None:
    if not password_file.exists():
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
    owner = password_file.stat()
    proc = subprocess.run(
        [mosquitto_passwd(), "-b", str(password_file), user, password], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise UsageError(f"{password_file}: mosquitto_passwd failed: {proc.stderr.strip() or proc.stdout.strip()}")
    if os.geteuid() == 0:
        os.chown(password_file, owner.st_uid, owner.st_gid)


def _rewrite_secret(path: pathlib.Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600, the old file's owner), via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if old is not None and os.geteuid() == 0:
        os.chown(tmp, old.st_uid, old.st_gid)
    os.replace(tmp, path)


EMQX_CSV_HEADER = ["user_id", "password", "is_superuser"]


def _set_csv_user(path: pathlib.Path, user: str, password: str) -> None:
    """EMQX's bootstrap CSV (``user_id,password,is_superuser``, plain passwords EMQX hashes on import)."""
    if "," in password or "\n" in password:
        raise UsageError("an EMQX bootstrap password cannot hold a comma or a line break")
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines())) if path.exists() else []
    body = [r for r in rows[1:] if r and r[0] != user]
    body.append([user, password, "false"])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([EMQX_CSV_HEADER, *body])
    _rewrite_secret(path, out.getvalue())


def nats_user(user: str, password: str, *, collector: bool) -> dict[str, Any]:
    """One NATS user: the collector every ``evalbox.>`` subject, a box its own ``evalbox.<id>.>`` only.

    NATS maps MQTT topic ``evalbox/B/up`` to subject ``evalbox.B.up``. A QoS 1 subscription is a JetStream
    consumer delivering on ``$MQTT.sub.<random>``: every MQTT login needs subscribe permission there
    (nats-server refuses the SUBSCRIBE otherwise; docs/brokers.md).
    """
    subjects = ["evalbox.>"] if collector else [f"evalbox.{user}.>"]
    return {
        "user": user,
        "password": password,
        "permissions": {"publish": subjects, "subscribe": [*subjects, "$MQTT.sub.>"]},
    }


def _set_nats_user(path: pathlib.Path, user: str, password: str, *, collector: bool = False) -> None:
    """The NATS users file: ``users = [...]`` with one JSON object a line (included by nats-server.conf)."""
    entries: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip().rstrip(",")
            if line.startswith("{"):
                entries.append(json.loads(line))
    entries = [e for e in entries if e.get("user") != user]
    entries.append(nats_user(user, password, collector=collector))
    lines = ",\n  ".join(json.dumps(e, ensure_ascii=False) for e in entries)
    _rewrite_secret(path, f"# evalbox broker logins (evalbox broker-config / device add)\nusers = [\n  {lines}\n]\n")


ACL = """\
# evalbox broker ACL: the collector reads and writes every box topic; each box
# (username = device id) only its own evalbox/<id>/... subtree.
user {collector}
topic readwrite evalbox/#

pattern readwrite evalbox/%u/#
"""

EMQX_ACL = """\
%% evalbox authorization (EMQX file source): the collector reads and writes every box topic;
%% each box (username = device id) only its own evalbox/<id>/... subtree; nothing else.
{{allow, {{username, "{collector}"}}, all, ["evalbox/#"]}}.
{{allow, all, all, ["evalbox/${{username}}/#"]}}.
{{deny, all}}.
"""

BROKERS = ("mosquitto", "emqx", "nats")
PLACEHOLDER_PASSWORDS = {"change-me", "changeme", "replace-me", "password", "collector", ""}


def check_collector_password(password: str) -> None:
    """Refuse the example config's placeholder (and other guessable) collector passwords."""
    if password.strip().lower() in PLACEHOLDER_PASSWORDS or len(password) < 12:
        raise UsageError(
            f"collector password {password!r} is a placeholder or shorter than 12 characters: set [mqtt] password "
            "to a strong one (evalbox init writes one) or give --collector-password / 采集器密码过弱或为占位符"
        )


def _chown_to(user: str, *paths: pathlib.Path) -> bool:
    """As root: give ``paths`` to the system user the broker drops to (False when there is no such user)."""
    if os.geteuid() != 0:
        return False
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return False
    for path in paths:
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return True


def broker_files(
    out: pathlib.Path,
    *,
    collector_user: str,
    collector_password: str,
    port: int,
    bind: str,
    broker: str = "mosquitto",
) -> list[str]:
    """Write the broker's config, logins and ACL into ``out`` (``broker``: mosquitto, emqx or nats); the files."""
    if broker == "emqx":
        return _emqx_files(out, collector_user, collector_password, port, bind)
    if broker == "nats":
        return _nats_files(out, collector_user, collector_password, port, bind)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    data.mkdir(exist_ok=True)
    passwd = out / "passwd"
    set_broker_password(passwd, collector_user, collector_password)
    (out / "acl").write_text(ACL.format(collector=collector_user), encoding="utf-8")
    # Started as root, mosquitto drops to the 'mosquitto' user before it reads the password file: hand it over.
    owned = _chown_to("mosquitto", passwd, out / "acl", data)
    conf = [
        "# evalbox broker (mosquitto). Start: mosquitto -c " + str((out / "mosquitto.conf").resolve()),
        "# (as root it drops to the 'mosquitto' user: passwd, acl and data/ are "
        + ("owned by it)" if owned else "to be readable by it: chown mosquitto passwd acl data)"),
        f"listener {port} {bind}".rstrip(),
        "# Persistence on: queued QoS 1 messages, persistent sessions and retained status/config survive a restart.",
        "persistence true",
        f"persistence_location {data.resolve()}/",
        "autosave_interval 1",
        "allow_anonymous false",
        f"password_file {passwd.resolve()}",
        f"acl_file {(out / 'acl').resolve()}",
        "# The collector acks after its commit: let enough messages be in flight to fill a batch.",
        "max_inflight_messages 1000",
        "max_queued_messages 1000000",
        "persistent_client_expiration 30d",
    ]
    (out / "mosquitto.conf").write_text("\n".join(conf) + "\n", encoding="utf-8")
    return [str(out / "mosquitto.conf"), str(passwd), str(out / "acl")]


EMQX_BOOTSTRAP = "auth-built-in-db-bootstrap.csv"


def _emqx_files(out: pathlib.Path, user: str, password: str, port: int, bind: str) -> list[str]:
    """EMQX 5: built-in database authentication seeded from a bootstrap CSV, a file ACL, an HOCON fragment."""
    out.mkdir(parents=True, exist_ok=True)
    users, acl, conf, api = out / EMQX_BOOTSTRAP, out / "acl.conf", out / "evalbox-emqx.hocon", out / "emqx-api.sh"
    set_broker_password(users, user, password)
    acl.write_text(EMQX_ACL.format(collector=user), encoding="utf-8")
    conf.write_text(
        f"""\
# evalbox on EMQX 5: add to emqx.conf (or include it) and restart EMQX.
# Logins: the built-in database, seeded from {users.name} at start (users already there are kept);
# `evalbox device add` appends each box to that file; on a running EMQX add it with emqx-api.sh.
listeners.tcp.default.bind = "{bind or "0.0.0.0"}:{port}"
authentication = [
  {{
    mechanism = password_based
    backend = built_in_database
    user_id_type = username
    password_hash_algorithm {{ name = sha256, salt_position = suffix }}
    bootstrap_file = "{users.resolve()}"
    bootstrap_type = plain
  }}
]
authorization {{
  no_match = deny
  deny_action = disconnect
  sources = [ {{ type = file, enable = true, path = "{acl.resolve()}" }} ]
}}
# The collector acks after its commit: room for a batch in flight; sessions kept while a collector is away.
mqtt {{
  max_inflight = 1000
  max_mqueue_len = 1000000
  session_expiry_interval = 30d
  retain_available = true
  shared_subscription = true
}}
""",
        encoding="utf-8",
    )
    api.write_text(
        """\
#!/bin/sh
# Add or change one box's login on a RUNNING EMQX 5 through its HTTP API (built-in database).
#   EMQX_API=http://127.0.0.1:18083 EMQX_KEY=key:secret ./emqx-api.sh BOX-ID PASSWORD
# (an API key from the dashboard: System → API Keys). The file ACL already limits the box to evalbox/BOX-ID/#.
set -eu
: "${EMQX_API:=http://127.0.0.1:18083}"
curl -fsS -u "$EMQX_KEY" -H 'Content-Type: application/json' \\
  -X POST "$EMQX_API/api/v5/authentication/password_based:built_in_database/users" \\
  -d "{\\"user_id\\": \\"$1\\", \\"password\\": \\"$2\\", \\"is_superuser\\": false}" \\
|| curl -fsS -u "$EMQX_KEY" -H 'Content-Type: application/json' \\
  -X PUT "$EMQX_API/api/v5/authentication/password_based:built_in_database/users/$1" \\
  -d "{\\"password\\": \\"$2\\", \\"is_superuser\\": false}"
""",
        encoding="utf-8",
    )
    api.chmod(0o755)
    return [str(conf), str(users), str(acl), str(api)]


NATS_USERS = "nats-users.conf"


def _nats_files(out: pathlib.Path, user: str, password: str, port: int, bind: str, nats_port: int = 4222) -> list[str]:
    """nats-server with MQTT (needs JetStream and a server name), logins with per-box subject permissions."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "jetstream").mkdir(exist_ok=True)
    users, conf = out / NATS_USERS, out / "nats-server.conf"
    _set_nats_user(users, user, password, collector=True)
    owned = _chown_to("nats", users, out / "jetstream")
    conf.write_text(
        f"""\
# evalbox broker on NATS (MQTT 3.1.1 over JetStream). Start: nats-server -c {conf.resolve()}
# Limits (docs/brokers.md): no MQTT shared subscriptions ([mqtt] shared_group refuses to start);
# one collector per broker account. Logins in {users.name} ({"owned by nats" if owned else "mode 0600"}).
server_name: evalbox
listen: {json.dumps(f"{bind or '127.0.0.1'}:{nats_port}")}
jetstream {{ store_dir: {json.dumps(str((out / "jetstream").resolve()))} }}
mqtt {{
  listen: {json.dumps(f"{bind or '0.0.0.0'}:{port}")}
}}
authorization {{
  include {json.dumps(users.name)}
}}
""",
        encoding="utf-8",
    )
    return [str(conf), str(users)]
