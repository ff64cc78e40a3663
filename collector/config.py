"""The one configuration loader: where the store is, which policy counts, and the service's settings.

Every command finds the store and the policy the same way::

    config = load(config="evalbox.toml", db=None, policy=None)   # --config, --db, --policy
    async with config.database() as db: ...

- ``--config FILE`` (default ``./evalbox.toml`` when it exists) is read and
  checked whole: an unknown key, a key in the wrong table (``policy`` under
  ``[store]``, ``floor`` in ``[web]``), a wrong type, a policy file that is
  not there — each is a ``ConfigError`` naming the file and the key.
- The store is ``[store] url`` (an SQLite path relative to the config file)
  or ``--db URL`` (relative to the working directory); given both, they must
  name the same store.
- The policy is the file ``policy = "policy.toml"`` (or ``[policy] file``)
  names, relative to the config file; ``--policy FILE`` replaces it for one
  report; none: the built-in defaults. A top-level ``timezone`` sets the
  policy's zone (an error if the policy file sets another).

``EXAMPLE`` is what ``evalbox init`` writes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
import typing
from typing import Any

from collector.errors import ConfigError, UsageError
from collector.feed.settings import FeedConfig
from collector.ingest.settings import BatchConfig, HealthConfig, MqttConfig, SerialConfig
from collector.report.notice import NoticeConfig
from collector.report.policy import Policy, load_policy, policy_from_dict
from collector.report.retention import RetentionConfig
from collector.store import Database, StoreUrl, connect, parse_store_url
from collector.web.settings import WebSettings

DEFAULT_CONFIG = "evalbox.toml"
CLI_CACHE_MB = 512  # SQLite page cache of a command: a rebuild or a copy reads a month's rows through an index

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
# box_silent_s = 300              # a box silent this long is marked offline (heartbeat every 60 s; 0: off)

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

# /healthz answers 503 when a source (the MQTT broker, a serial port) has been down, or the
# store has failed to commit, for longer than this (docs/operations.md).
# [health]
# grace_s = 30

# The provincial 好差评 feed (docs/feed.md): every rating pushed to this HTTPS endpoint
# by `evalbox serve` (and `evalbox feed push`), each once, retried until acknowledged.
# [feed]
# url = "https://hcp.example.gov.cn/api/ratings"
# ca_file = "hcp-ca.pem"        # relative to this file (default: the system's CAs)
# token = "…"                   # sent as Authorization: Bearer
# batch_size = 100
# How long raw events and personal data are kept (evalbox retention run --dry-run; docs/audit.md).
# [retention]
# events_months = 24          # raw events of the last 24 months (default: the appraisal year and the one before)
# personal_days = 180         # ticket numbers and free-text notes older than this are ...
# personal = "hash"           # ... replaced by their SHA-256, or "remove"d
# The printed monthly notice (evalbox report --format html, and the page's download of it).
# [notice]
# issuer = "某某县公安局"        # the issuing unit, printed in the head and over the seal
# signer = ""                   # 签发人; blank: a line to sign on

# The rating policy (evalbox policy init -o policy.toml; docs/policy.md): thresholds,
# satisfied levels, sanctions, time zone. Every command reads the same one.
# [policy]
# file = "policy.toml"          # relative to this file
"""


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """What ``evalbox device add`` tells the boxes about the broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    password_file: str | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a command takes from ``evalbox.toml``, ``--config``, ``--db`` and ``--policy``, checked."""

    file: pathlib.Path | None = None  # the config file read, if any
    store: StoreUrl | None = None
    policy: Policy = dataclasses.field(default_factory=Policy)
    policy_file: pathlib.Path | None = None
    mqtt: MqttConfig | None = None
    serial: tuple[SerialConfig, ...] = ()
    batch: BatchConfig = BatchConfig()
    broker: BrokerConfig = BrokerConfig()
    web: WebSettings | None = None  # [web]: the page is served by ``evalbox serve``
    web_listen: str | None = None
    metrics_listen: str | None = None
    health: HealthConfig = HealthConfig()
    feed: FeedConfig | None = None  # [feed]: the provincial 好差评 feed
    retention: RetentionConfig = RetentionConfig()
    notice: NoticeConfig = NoticeConfig()  # [notice]: the printed notice's issuer and signer

    @property
    def base(self) -> pathlib.Path:
        """The directory relative paths in the config file start from."""
        return self.file.parent if self.file else pathlib.Path(".")

    @property
    def timezone(self) -> str:
        """The policy's time zone: months are calendar months of the press time in it."""
        return self.policy.timezone

    def path(self, value: str) -> pathlib.Path:
        """A path from the config file, relative to it."""
        p = pathlib.Path(value)
        return p if p.is_absolute() else self.base / p

    def require_store(self) -> StoreUrl:
        """The store; ``UsageError`` when neither ``--db`` nor ``[store] url`` gives one."""
        if self.store is None:
            where = f"{self.file}: store: missing" if self.file else "no store given"
            raise UsageError(f'{where} (use --db URL, or [store] url = "sqlite:///evalbox.db" in {DEFAULT_CONFIG})')
        return self.store

    def database(self, *, must_exist: bool = True, migrate: bool = True, cache_mb: int = CLI_CACHE_MB) -> Database:
        """The store's ``Database`` (not yet open). ``must_exist``: refuse to create a new store."""
        return connect(self.require_store(), must_exist=must_exist, migrate=migrate, cache_mb=cache_mb)


# -- reading -------------------------------------------------------------------------

Table = dict[str, Any]
_WEB_NOT_KEYS = {"detection"}  # WebSettings fields that are not config keys
TOP_KEYS = (
    "store", "mqtt", "serial", "batch", "broker", "web", "metrics", "health", "feed", "retention", "notice",
    "policy", "timezone",
)  # fmt: skip
POLICY_TABLES = ("rates", "sanctions", "ranking")
# Policy keys, and the web settings that were policy in disguise: written in evalbox.toml they belong to the policy.
POLICY_KEYS = (
    "target",
    "floor",
    "satisfied",
    "bad",
    "count_unsolicited",
    "count_misuse",
    "penalty_points",
    "min_sample",
    "target_percent",
    "floor_percent",
    "satisfied_levels",
    "bad_levels",
)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _known_keys() -> dict[str, list[str]]:
    """Each table's keys (``""``: the top level)."""
    return {
        "": ["policy", "timezone"],
        "store": ["url"],
        "mqtt": _fields(MqttConfig),
        "serial": _fields(SerialConfig),
        "batch": _fields(BatchConfig),
        "broker": _fields(BrokerConfig),
        "web": ["listen", *(k for k in _fields(WebSettings) if k not in _WEB_NOT_KEYS)],
        "metrics": ["listen"],
        "health": _fields(HealthConfig),
        "feed": _fields(FeedConfig),
        "retention": _fields(RetentionConfig),
        "notice": _fields(NoticeConfig),
        "policy": ["file"],
    }


def _unknown(file: str, table: str, key: str) -> ConfigError:
    """An unknown key, and where it belongs when it is another table's key or a policy key."""
    known = _known_keys()
    name = f"{table}.{key}" if table else key
    table = table.split("[")[0]  # serial[2] is a [[serial]] table
    homes = [t for t, keys in known.items() if key in keys and t != table]
    if key in POLICY_TABLES or key in POLICY_KEYS:
        hint = 'a policy key: it belongs in the policy file (policy = "policy.toml"; docs/policy.md)'
    elif homes:
        places = ("at the top level, before any [table]" if t == "" else f"in [{t}]" for t in homes)
        hint = "it belongs " + " or ".join(places)
    else:
        hint = f"known: {', '.join(known[table] if table else TOP_KEYS)}"
    return ConfigError(f"{file}: {name}: unknown key ({hint})")


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


def _table(file: str, name: str, raw: Any) -> Table:
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {name}: expected a table [{name.split('[')[0]}]")
    for key in raw:
        if key not in _known_keys()[name.split("[")[0]]:
            raise _unknown(file, name, key)
    return raw


def _section(file: str, name: str, raw: Any, cls: type) -> Any:
    """A table as the dataclass ``cls``: every key known, every type right, required keys present."""
    table = _table(file, name, raw)
    where = f"{file}: {name}"
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}.{f.name}: missing")
            continue
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        value = table[f.name]
        if origin in (tuple, frozenset):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{f.name}: expected a list of strings")
            values[f.name] = origin(value)
        else:
            base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
            values[f.name] = _check(where, f.name, value, base)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _listen(where: str, value: Any) -> str:
    host, _, port = str(value).rpartition(":")
    if not isinstance(value, str) or not host or not port.isdigit():
        raise ConfigError(f"{where}.listen: expected 'HOST:PORT', got {value!r}")
    return value


def _read_toml(path: pathlib.Path, what: str) -> Table:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def same_store(a: StoreUrl, b: StoreUrl) -> bool:
    """Whether two store URLs name one store (SQLite files compared as absolute paths)."""
    if a.kind != b.kind:
        return False
    if a.kind == "sqlite":
        return a.path.resolve() == b.path.resolve()
    return a.target == b.target


def parse_config(conf: Table, file: pathlib.Path, *, db: str | None = None, policy: str | None = None) -> Config:
    """Check a parsed ``evalbox.toml`` (with ``--db`` and ``--policy``); ``ConfigError`` naming the first bad key."""
    name = str(file)
    for key in conf:
        if key not in TOP_KEYS:
            raise _unknown(name, "", key)
    store = None
    if "store" in conf:
        table = _table(name, "store", conf["store"])
        if "url" not in table:
            raise ConfigError(f'{name}: store.url: missing (e.g. url = "sqlite:///evalbox.db")')
        url = _check(f"{name}: store", "url", table["url"], str)
        if not url.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise ConfigError(f"{name}: store.url: {url!r}: expected sqlite:///PATH or postgresql://…")
        store = _store_url(url, file.parent, f"{name}: store.url")
    if db is not None:
        given = _store_url(db, pathlib.Path.cwd(), "--db")
        if store is not None and not same_store(store, given):
            raise ConfigError(
                f"{name}: store.url: {store.display} and --db {given.display} name different stores; give one"
            )
        store = given
    mqtt = _section(name, "mqtt", conf["mqtt"], MqttConfig) if "mqtt" in conf else None
    if mqtt is not None and not 0 < mqtt.port < 65536:
        raise ConfigError(f"{name}: mqtt.port: {mqtt.port} is not a TCP port")
    if mqtt is not None and not (mqtt.box_silent_s >= 0 and 0 < mqtt.probe_timeout_s <= 120):
        raise ConfigError(f"{name}: mqtt: box_silent_s must be ≥ 0 (0: off) and probe_timeout_s 0..120")
    serial_raw = conf.get("serial", [])
    if not isinstance(serial_raw, list):
        raise ConfigError(f"{name}: serial: expected [[serial]] tables")
    serial = tuple(_section(name, f"serial[{i}]", s, SerialConfig) for i, s in enumerate(serial_raw))
    batch = _section(name, "batch", conf.get("batch", {}), BatchConfig)
    if batch.max_events < 1 or not 1 <= batch.max_ms <= 10_000:
        raise ConfigError(f"{name}: batch: max_events must be ≥ 1 and max_ms 1..10000")
    broker = _section(name, "broker", conf.get("broker", {}), BrokerConfig)
    web = web_listen = metrics_listen = None
    if "web" in conf:
        table = dict(_table(name, "web", conf["web"]))
        if "listen" in table:
            web_listen = _listen(f"{name}: web", table.pop("listen"))
        web = _section(name, "web", table, WebSettings)
    if "metrics" in conf:
        table = _table(name, "metrics", conf["metrics"])
        if "listen" not in table:
            raise ConfigError(f"{name}: metrics.listen: missing (e.g. listen = '127.0.0.1:9108')")
        metrics_listen = _listen(f"{name}: metrics", table["listen"])
    health = _section(name, "health", conf.get("health", {}), HealthConfig)
    if not 1 <= health.grace_s <= 3600:
        raise ConfigError(f"{name}: health.grace_s: {health.grace_s:g} s, expected 1..3600 seconds")
    feed = _feed(name, file.parent, conf["feed"]) if "feed" in conf else None
    retention = _section(name, "retention", conf.get("retention", {}), RetentionConfig)
    notice = _section(name, "notice", conf.get("notice", {}), NoticeConfig)
    policy_file = _policy_file(name, file.parent, conf.get("policy"))
    if policy is not None:
        policy_file = pathlib.Path(policy)
    rules = _policy(name, policy_file, conf.get("timezone"))
    return Config(
        file=file,
        store=store,
        policy=rules,
        policy_file=policy_file,
        mqtt=mqtt,
        serial=serial,
        batch=batch,
        broker=broker,
        web=web,
        web_listen=web_listen,
        metrics_listen=metrics_listen,
        health=health,
        feed=feed,
        retention=retention,
        notice=notice,
    )


def _feed(file: str, base: pathlib.Path, raw: Any) -> FeedConfig:
    """``[feed]``, its ``ca_file`` relative to the config file and there."""
    feed: FeedConfig = _section(file, "feed", raw, FeedConfig)
    if feed.ca_file is not None:
        ca = pathlib.Path(feed.ca_file)
        ca = ca if ca.is_absolute() else base / ca
        if not ca.is_file():
            raise ConfigError(f"{file}: feed.ca_file: {ca}: no such file")
        feed = dataclasses.replace(feed, ca_file=str(ca))
    return feed


def _store_url(text: str, base: pathlib.Path, where: str) -> StoreUrl:
    try:
        return parse_store_url(text, base=base)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _policy_file(file: str, base: pathlib.Path, raw: Any) -> pathlib.Path | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        table = _table(file, "policy", raw)
        if "file" not in table:
            return None
        raw = _check(f"{file}: policy", "file", table["file"], str)
    elif not isinstance(raw, str):
        raise ConfigError(f'{file}: policy: expected a file name, policy = "policy.toml"')
    path = pathlib.Path(raw)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(f"{file}: policy: {path}: no such policy file (evalbox policy init -o {raw} writes one)")
    return path


def _policy(file: str, path: pathlib.Path | None, tz: Any) -> Policy:
    """The policy from ``path`` (else the defaults), in the config's ``timezone`` when it gives one."""
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such policy file (evalbox policy init -o {path} writes one)")
    policy = load_policy(path) if path is not None else Policy()
    if tz is None:
        return policy
    try:
        policy_from_dict({"timezone": tz})  # the policy's own check of a zone
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    if path is not None and "timezone" in _read_toml(path, "policy file") and policy.timezone != tz:
        raise ConfigError(
            f"{file}: timezone: {tz!r}, but {path} says timezone = {policy.timezone!r}; set it in one place"
        )
    return dataclasses.replace(policy, timezone=tz)


def load(config: str | pathlib.Path | None = None, db: str | None = None, policy: str | None = None) -> Config:
    """The configuration of one command: ``--config`` (default ``./evalbox.toml`` when there), ``--db``, ``--policy``.

    ``ConfigError`` (one line naming the file and key) for anything wrong; nothing is opened or written here.
    """
    if config is None:
        if not pathlib.Path(DEFAULT_CONFIG).is_file():  # no config: --db and --policy only
            store = _store_url(db, pathlib.Path.cwd(), "--db") if db is not None else None
            policy_file = pathlib.Path(policy) if policy is not None else None
            return Config(store=store, policy=_policy("", policy_file, None), policy_file=policy_file)
        config = DEFAULT_CONFIG
    path = pathlib.Path(config)
    conf = _read_toml(path, "config file (evalbox init writes an example)")
    return parse_config(conf, path, db=db, policy=policy)


def load_config(path: str | pathlib.Path) -> Config:
    """``evalbox.toml`` at ``path``, checked (no ``--db``, no ``--policy``)."""
    return load(path)
