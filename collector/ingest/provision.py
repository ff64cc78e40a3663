"""Provisioning: registry CSV files, box keys and config files, the broker's password and ACL files."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import subprocess
from typing import Any

from collector.errors import UsageError
from collector.ingest.rosters import ID_CHARS, read_roster

BOARDS = ("esp32", "picow", "sim")


def check_id(value: str, what: str) -> str:
    """A protocol id: 1–32 of ``A–Z a–z 0–9 _ -``; ``UsageError`` otherwise."""
    if not value or len(value) > 32 or set(value) - ID_CHARS:
        raise UsageError(f"{what} {value!r}: use 1-32 letters, digits, _ or - / 编号只能用字母、数字、_ 或 -")
    return value


def read_csv(path: pathlib.Path, table: str, encoding: str | None = None) -> list[tuple[str | None, ...]]:
    """Rows of a roster (CSV in any encoding Excel writes, or .xlsx) in ``rosters.COLUMNS`` order; every error at once.

    The reading lives in ``collector.ingest.rosters`` (encodings, Chinese headers, workbooks).
    """
    return read_roster(path, table, encoding).rows


def box_config(
    device_id: str, key_hex: str, window_id: str, transport: str, host: str, port: int, password: str, board: str
) -> dict[str, Any]:
    """The box's device config file (read by the firmware at first start)."""
    return {
        "device_id": device_id,
        "key_hex": key_hex,
        "window_id": window_id,
        "transport": transport,
        "broker_host": host,
        "broker_port": port,
        "broker_user": device_id,
        "broker_password": password,
        "board": board,
    }


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
    """Add or update ``user`` in a mosquitto password file (hashed by ``mosquitto_passwd``)."""
    if not password_file.exists():
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
    proc = subprocess.run(
        [mosquitto_passwd(), "-b", str(password_file), user, password], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise UsageError(f"{password_file}: mosquitto_passwd failed: {proc.stderr.strip() or proc.stdout.strip()}")


ACL = """\
# evalbox broker ACL: the collector reads and writes every box topic; each box
# (username = device id) only its own evalbox/<id>/... subtree.
user {collector}
topic readwrite evalbox/#

pattern readwrite evalbox/%u/#
"""


def broker_files(out: pathlib.Path, *, collector_user: str, collector_password: str, port: int, bind: str) -> list[str]:
    """Write ``mosquitto.conf``, ``passwd`` and ``acl`` into ``out``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    data.mkdir(exist_ok=True)
    passwd = out / "passwd"
    set_broker_password(passwd, collector_user, collector_password)
    (out / "acl").write_text(ACL.format(collector=collector_user), encoding="utf-8")
    conf = [
        "# evalbox broker (mosquitto). Start: mosquitto -c " + str((out / "mosquitto.conf").resolve()),
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
