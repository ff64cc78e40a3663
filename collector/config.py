"""``evalbox.toml``: the collector's config, validated where it is read.

Every error names the file and the key (``mqtt.port: expected an integer``);
unknown keys and missing required keys are errors, so a typo never silently
falls back to a default. ``EXAMPLE`` is what ``evalbox init`` writes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
import typing
from typing import Any

from collector.errors import ConfigError
from collector.ingest.settings import BatchConfig, MqttConfig, SerialConfig
from collector.report.policy import load_policy
from collector.timeplace import DEFAULT_TIMEZONE, zone
from collector.web.settings import WebSettings

EXAMPLE = """\
# evalbox collector config (evalbox serve --config evalbox.toml)
# 评价器采集服务配置。Unknown or misspelt keys are errors.

[store]
# SQLite file (relative to this file); PostgreSQL: postgresql://user@host/db
url = "sqlite:///evalbox.db"

[mqtt]
host = "127.0.0.1"
port = 1883
username = "collector"
password = "change-me"
tls = false                   # true: TLS to the broker (ca_file optional, else system CAs)
# ca_file = "/etc/ssl/certs/broker-ca.pem"
client_id = "evalbox-collector"   # fixed: the broker keeps this session while we are away
# shared_group = "collectors"     # several collectors share the stream ($share/<group>/...)
# clean_session = true            # with shared_group: no queue kept for a stopped collector (see docs)
keepalive = 30

# One [[serial]] table per box on a serial line (window PC / USB).
# [[serial]]
# port = "/dev/serial/by-id/usb-evalbox-01"
# baud = 115200
# device = "BJ-hr-02"     # optional: the box on this line (config and commands reach it before it speaks)

[batch]
max_events = 1000   # commit when this many messages are waiting ...
max_ms = 20         # ... or this many milliseconds after the first one

# What the boxes are told (written into box config files by `evalbox device add`).
[broker]
host = "127.0.0.1"            # address the boxes connect to
port = 1883
# password_file = "mosquitto/passwd"   # `evalbox device add` adds each box's login here

# The supervisors' web page, /metrics and /healthz in the same process.
# [web]
# listen = "127.0.0.1:8080"
# secure_cookies = false
# webhook_urls = ["http://alerts.example/hook"]

# /metrics and /healthz alone (when [web] is not used).
# [metrics]
# listen = "127.0.0.1:9108"

[policy]
# file = "policy.toml"        # evalbox policy init; sets the time zone (default Asia/Shanghai)
"""


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    password_file: str | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole file, checked. ``base`` is the directory relative paths start from."""

    store_url: str
    base: pathlib.Path = pathlib.Path(".")
    mqtt: MqttConfig | None = None
    serial: tuple[SerialConfig, ...] = ()
    batch: BatchConfig = BatchConfig()
    broker: BrokerConfig = BrokerConfig()
    web: dict[str, Any] | None = None  # WebSettings keys plus ``listen``
    metrics_listen: str | None = None
    policy_file: pathlib.Path | None = None
    timezone: str = DEFAULT_TIMEZONE

    def web_settings(self) -> WebSettings:
        """``collector.web.WebSettings`` from ``[web]`` (``listen`` removed), in the policy's zone."""
        values = {k: v for k, v in (self.web or {}).items() if k != "listen"}
        return WebSettings(timezone=self.timezone, **values)

    def path(self, value: str) -> pathlib.Path:
        p = pathlib.Path(value)
        return p if p.is_absolute() else self.base / p


def _typename(t: Any) -> str:
    return {int: "an integer", str: "a string", bool: "true or false", float: "a number", list: "a list"}.get(t, str(t))


def _check(where: str, key: str, value: Any, want: type) -> Any:
    if want is float and type(value) in (int, float):
        return float(value)
    if want is int and type(value) is bool:
        raise ConfigError(f"{where}.{key}: expected {_typename(int)}, got {value!r}")
    if not isinstance(value, want):
        raise ConfigError(f"{where}.{key}: expected {_typename(want)}, got {value!r}")
    return value


def _section(file: str, name: str, raw: Any, cls: type) -> Any:
    where = f"{file}: {name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table [{name}]")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(fields)})")
    values = {}
    for key, f in fields.items():
        if key not in raw:
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"{where}.{key}: missing")
            continue
        hint = hints[key]
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        values[key] = _check(where, key, raw[key], base)
    return cls(**values)


def _web_section(file: str, raw: Any) -> dict[str, Any]:
    where = f"{file}: web"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table [web]")
    hints = typing.get_type_hints(WebSettings)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "listen":
            out[key] = _listen(where, key, value)
            continue
        if key not in hints or key in ("timezone", "detection", "satisfied_levels", "bad_levels"):
            raise ConfigError(f"{where}.{key}: unknown key (WebSettings fields in docs/web.md, and listen)")
        hint = hints[key]
        origin = typing.get_origin(hint)
        if origin in (tuple, frozenset):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{key}: expected a list of strings")
            out[key] = origin(value)
        else:
            base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
            out[key] = _check(where, key, value, base)
    try:
        WebSettings(**{k: v for k, v in out.items() if k != "listen"})
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    return out


def _listen(where: str, key: str, value: Any) -> str:
    host, _, port = str(value).rpartition(":")
    if not isinstance(value, str) or not host or not port.isdigit():
        raise ConfigError(f"{where}.{key}: expected 'HOST:PORT', got {value!r}")
    return value


TOP_KEYS = ("store", "mqtt", "serial", "batch", "broker", "web", "metrics", "policy", "report", "timezone")


def parse_config(conf: dict[str, Any], file: str = "evalbox.toml", base: pathlib.Path | None = None) -> Config:
    """Check a parsed TOML document; ``ConfigError`` naming the first bad key."""
    for key in conf:
        if key not in TOP_KEYS:
            raise ConfigError(f"{file}: {key}: unknown key (known: {', '.join(TOP_KEYS)})")
    if "store" not in conf:
        raise ConfigError(f'{file}: store: missing ([store] url = "sqlite:///evalbox.db")')
    store = conf["store"]
    if not isinstance(store, dict):
        raise ConfigError(f"{file}: store: expected a table [store]")
    for key in store:
        if key != "url":
            raise ConfigError(f"{file}: store.{key}: unknown key (known: url)")
    if "url" not in store:
        raise ConfigError(f"{file}: store.url: missing")
    url = _check(f"{file}: store", "url", store["url"], str)
    if not url.startswith(("sqlite:", "postgresql:", "postgres:")):
        raise ConfigError(f"{file}: store.url: {url!r}: expected sqlite:///PATH or postgresql://…")
    mqtt = _section(file, "mqtt", conf["mqtt"], MqttConfig) if "mqtt" in conf else None
    if mqtt is not None and not 0 < mqtt.port < 65536:
        raise ConfigError(f"{file}: mqtt.port: {mqtt.port} is not a TCP port")
    serial_raw = conf.get("serial", [])
    if not isinstance(serial_raw, list):
        raise ConfigError(f"{file}: serial: expected [[serial]] tables")
    serial = tuple(_section(file, f"serial[{i}]", s, SerialConfig) for i, s in enumerate(serial_raw))
    batch = _section(file, "batch", conf.get("batch", {}), BatchConfig)
    if batch.max_events < 1 or not 1 <= batch.max_ms <= 10_000:
        raise ConfigError(f"{file}: batch: max_events must be ≥ 1 and max_ms 1..10000")
    broker = _section(file, "broker", conf.get("broker", {}), BrokerConfig)
    web = _web_section(file, conf["web"]) if "web" in conf else None
    metrics_listen = None
    if "metrics" in conf:
        m = conf["metrics"]
        if not isinstance(m, dict) or set(m) - {"listen"} or "listen" not in m:
            raise ConfigError(f"{file}: metrics: expected a table with listen = 'HOST:PORT' only")
        metrics_listen = _listen(f"{file}: metrics", "listen", m["listen"])
    base = base or pathlib.Path(".")
    policy_file = None
    tz = conf.get("timezone", DEFAULT_TIMEZONE)
    if "policy" in conf:
        p = conf["policy"]
        if isinstance(p, str):
            p = {"file": p}
        if not isinstance(p, dict) or set(p) - {"file"}:
            raise ConfigError(f"{file}: policy: expected a table with file = 'policy.toml' only")
        if "file" in p:
            policy_file = base / _check(f"{file}: policy", "file", p["file"], str)
    if not isinstance(tz, str):
        raise ConfigError(f"{file}: timezone: expected a string")
    if policy_file is not None:
        tz = load_policy(policy_file).timezone
    zone(tz)
    return Config(
        store_url=url,
        base=base,
        mqtt=mqtt,
        serial=serial,
        batch=batch,
        broker=broker,
        web=web,
        metrics_listen=metrics_listen,
        policy_file=policy_file,
        timezone=tz,
    )


def load_config(path: str | pathlib.Path) -> Config:
    """Read and check ``evalbox.toml``."""
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file (evalbox init -o {p} writes an example)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc})") from None
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return parse_config(conf, str(p), p.parent)
