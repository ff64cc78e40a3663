"""The box's device config: a JSON file checked key by key.

``load(path)`` returns a dict with every key present (defaults filled in) or
raises ``ConfigError`` naming the first missing, unknown or bad key. On a
real board the config is also checked against the board's port limits
(``firmware.ports``): a pin the chip lacks, a key without a pull-up, pins
used twice, a watchdog or timeout beyond what the port allows. The same
``validate`` runs on CPython, so the collector can refuse a box file before
it reaches the box.
"""

import json

from firmware import ports

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
# below 2 ms a contact's own bounce could count; above 100 ms a citizen waits for the light
DEBOUNCE_RANGE = (2, 100)
_MQTT_KEYS = ("broker_host", "broker_port", "broker_user", "broker_password")

# key -> (kind, default); default None + kind not ending "?" = required
SCHEMA = {
    "device_id": ("id", None),
    "key_hex": ("key", None),
    "window_id": ("id?", None),
    "transport": ("transport", None),
    "board": ("board", None),
    "broker_host": ("str?", None),
    "broker_port": ("int?", None),
    "broker_user": ("str?", None),
    "broker_password": ("str?", None),
    "keepalive_s": ("int", 30),
    "wifi_ssid": ("str?", None),
    "wifi_password": ("str?", None),
    "pins": ("dict?", None),
    "serial_path": ("str?", None),
    "uart": ("dict?", None),
    "scale": ("int", 2),
    "invite_ms": ("int", 10000),
    "min_interval_ms": ("int", 3000),
    "gated": ("bool", True),
    "hours": ("hours?", None),
    "officer": ("id?", None),
    "tz_min": ("int", 480),
    "heartbeat_ms": ("int", 60000),
    "backoff_max_ms": ("int", 30000),
    "watchdog_ms": ("int", 8000),  # fits every port: rp2040's limit is 8388 ms
    "connect_timeout_ms": ("int", 5000),  # one whole MQTT connect (TCP + CONNACK); inside the watchdog
    "resend_ms": ("int", 15000),
    "outbox_capacity": ("int", 2000),
    "seg_records": ("int", 32),
    "release_pubkey": ("key?", None),  # the release key's public half (64 hex): firmware updates need it
    "fw_trial_ms": ("int", 300000),  # a new firmware's self-test must pass within this (else rollback)
    "debounce_ms": ("int", 10),  # a key counts once down this long (firmware/boards/pins.py)
    # sim board only
    "flash": ("str?", None),
    "flash_blocks": ("int", 256),
    "control_port": ("int", 0),
}


class ConfigError(Exception):
    """The device config is missing, unreadable, or has a bad key."""


def _check(name: str, kind: str, v: "Any") -> None:
    base = kind.rstrip("?")
    if v is None:
        if kind.endswith("?"):
            return
        raise ConfigError("%s: required" % name)
    ok = True
    if base == "id":
        ok = type(v) is str and 0 < len(v) <= 32 and all(c in _ID_CHARS for c in v)
    elif base == "key":
        ok = type(v) is str and len(v) == 64 and all(c in "0123456789abcdefABCDEF" for c in v)
    elif base == "transport":
        ok = v in ("mqtt", "serial")
    elif base == "board":  # the real boards are listed in firmware/ports.py
        ok = v == "sim" or v in ports.BOARDS
    elif base == "str":
        ok = type(v) is str
    elif base == "int":
        ok = type(v) is int and v >= 0
    elif base == "bool":
        ok = type(v) is bool
    elif base == "dict":
        ok = type(v) is dict
    elif base == "hours":
        ok = type(v) is list and len(v) == 2 and all(type(x) is int and 0 <= x <= 1440 for x in v)
    if not ok and base == "board":
        raise ConfigError("%s: %r is not a board (sim, %s)" % (name, v, ", ".join(sorted(ports.BOARDS))))
    if not ok:
        raise ConfigError("%s: bad value %r (%s expected)" % (name, v, base))


def validate(raw: "Any") -> "dict[str, Any]":
    """Check a parsed config; return it with defaults filled in."""
    if type(raw) is not dict:
        raise ConfigError("config is not a JSON object")
    for k in raw:
        if k not in SCHEMA:
            raise ConfigError("%s: unknown key" % k)
    cfg: "dict[str, Any]" = {}
    for name in SCHEMA:
        kind, default = SCHEMA[name]
        v = raw.get(name, default)
        if name not in raw and default is None and not kind.endswith("?"):
            raise ConfigError("%s: missing" % name)
        _check(name, kind, v)
        cfg[name] = v
    if cfg["transport"] == "mqtt":
        for k in _MQTT_KEYS:
            if cfg[k] is None:
                raise ConfigError("%s: missing (transport mqtt)" % k)
    if cfg["transport"] == "serial" and cfg["board"] == "sim" and cfg["serial_path"] is None:
        raise ConfigError("serial_path: missing (transport serial on the sim board)")
    if cfg["board"] == "sim" and cfg["flash"] is None:
        raise ConfigError("flash: missing (sim board)")
    if not 2 <= cfg["scale"] <= 5:
        raise ConfigError("scale: %d outside 2..5" % cfg["scale"])
    if not DEBOUNCE_RANGE[0] <= cfg["debounce_ms"] <= DEBOUNCE_RANGE[1]:
        raise ConfigError(
            "debounce_ms: %d outside %d..%d (ms a key must stay down before it counts)"
            % ((cfg["debounce_ms"],) + DEBOUNCE_RANGE)
        )
    bad = ports.problems(cfg)
    if bad:
        raise ConfigError(bad[0])
    return cfg


def load(path: str) -> "dict[str, Any]":
    """Read and check the config file at ``path``."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc))
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError("%s is not JSON: %s" % (path, exc))
    return validate(raw)
