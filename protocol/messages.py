"""Messages: build, validate, sign, encode, decode, verify.

A message is a plain dict (MicroPython has no dataclasses). On the wire it is
canonical compact JSON whose last member is ``"mac"``: the lowercase hex
HMAC-SHA256, under the box's key, of ``device_id + "\\n" + body``, where
``body`` is the exact wire bytes with the ``,"mac":"…"`` member cut out (so
the verifier never re-encodes). See SPEC.md for every field.
"""

import json

from protocol import canon, limits
from protocol.errors import ProtocolError
from protocol.hmac256 import equal, hmac_sha256

try:
    from collections.abc import Callable
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

# Message types. Events carry an identity (d, b, s) and live in the outbox.
PRESS = "press"
SIGNIN = "signin"
SIGNOUT = "signout"
INVITE = "invite"
UNRATED = "unrated"
STATUS = "status"
ACK = "ack"
CONFIG = "config"
COMMAND = "cmd"

EVENT_TYPES = (PRESS, SIGNIN, SIGNOUT, INVITE, UNRATED)
UPLINK_TYPES = EVENT_TYPES + (STATUS,)
DOWNLINK_TYPES = (ACK, CONFIG, COMMAND)

# Press flags (bit mask in field "f").
FLAG_UNSOLICITED = 1  # no open invite when pressed
FLAG_REPEAT = 2  # a further press inside an invite already rated
FLAG_TOO_FAST = 4  # closer than the minimum interval to the previous press
FLAG_NO_OFFICER = 8  # nobody signed in
FLAG_CLOCK_UNSYNCED = 16  # wall time unknown: place from receive time + uptime
FLAG_OUTSIDE_HOURS = 32  # outside configured opening hours
FLAG_NAMES = (
    (FLAG_UNSOLICITED, "unsolicited"),
    (FLAG_REPEAT, "repeat"),
    (FLAG_TOO_FAST, "too_fast"),
    (FLAG_NO_OFFICER, "no_officer"),
    (FLAG_CLOCK_UNSYNCED, "clock_unsynced"),
    (FLAG_OUTSIDE_HOURS, "outside_hours"),
)
_ALL_FLAGS = 63

COMMAND_OPS = ("invite", "signin", "signout")

_MAC_HEX = 64
_MAC_TAIL = len(',"mac":""}') + _MAC_HEX  # bytes the mac member adds at the end
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_TICKET_CHARS = _ID_CHARS + "."


# ---- field checks: each returns None or raises ProtocolError("bad_field") ----


def _bad(name: str, why: str) -> ProtocolError:
    return ProtocolError("bad_field", "%s: %s" % (name, why))


def _int(name: str, v: "Any", lo: int, hi: int) -> None:
    if type(v) is not int:
        raise _bad(name, "expected an integer")
    if v < lo or v > hi:
        raise _bad(name, "%d outside %d..%d" % (v, lo, hi))


def _chars(name: str, v: "Any", allowed: str, maxlen: int) -> None:
    if type(v) is not str:
        raise _bad(name, "expected a string")
    if not v or len(v) > maxlen:
        raise _bad(name, "length must be 1..%d" % maxlen)
    for ch in v:
        if ch not in allowed:
            raise _bad(name, "character %r not allowed (A-Z a-z 0-9 _ -)" % ch)


def _ident(name: str, v: "Any") -> None:
    _chars(name, v, _ID_CHARS, limits.MAX_ID)


def _ticket(name: str, v: "Any") -> None:
    _chars(name, v, _TICKET_CHARS, limits.MAX_TICKET)


def _text(name: str, v: "Any") -> None:
    if type(v) is not str:
        raise _bad(name, "expected a string")
    if len(v) > limits.MAX_TEXT:
        raise _bad(name, "longer than %d" % limits.MAX_TEXT)
    for ch in v:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise _bad(name, "control character")


def _bool(name: str, v: "Any") -> None:
    if type(v) is not bool:
        raise _bad(name, "expected true or false")


def _u31(name: str, v: "Any") -> None:
    _int(name, v, 0, limits.MAX_INT)


def _ms(name: str, v: "Any") -> None:
    _int(name, v, 0, limits.MAX_MS)


def _scale(name: str, v: "Any") -> None:
    _int(name, v, limits.MIN_SCALE, limits.MAX_SCALE)


def _level(name: str, v: "Any") -> None:
    _int(name, v, 1, limits.MAX_SCALE)


def _flags(name: str, v: "Any") -> None:
    _int(name, v, 0, _ALL_FLAGS)


def _rssi(name: str, v: "Any") -> None:
    _int(name, v, -200, 0)


def _op(name: str, v: "Any") -> None:
    if v not in COMMAND_OPS:
        raise _bad(name, "must be one of %s" % ", ".join(COMMAND_OPS))


def _ranges(name: str, v: "Any") -> None:
    if type(v) is not list:
        raise _bad(name, "expected a list of [boot, first, last]")
    if len(v) > limits.MAX_ACK_RANGES:
        raise _bad(name, "more than %d ranges" % limits.MAX_ACK_RANGES)
    for r in v:
        if type(r) is not list or len(r) != 3:
            raise _bad(name, "each range is [boot, first, last]")
        for x in r:
            _u31(name, x)
        if r[1] > r[2]:
            raise _bad(name, "first %d > last %d" % (r[1], r[2]))


def _hours(name: str, v: "Any") -> None:
    if type(v) is not list or len(v) != 2:
        raise _bad(name, "expected [open_minute, close_minute]")
    for x in v:
        _int(name, x, 0, 1440)


# Schema: type -> ((field, check, required), ...). ``None`` is accepted for
# an optional field; a required field must be present and not None.
_EVENT = (
    ("b", _u31, True),
    ("s", _u31, True),
    ("ts", _ms, False),
    ("up", _ms, True),
    ("o", _ident, False),
)
_SCHEMA = {
    PRESS: _EVENT
    + (
        ("k", _level, True),
        ("n", _scale, True),
        ("i", _u31, False),
        ("tk", _ticket, False),
        ("f", _flags, True),
    ),
    SIGNIN: _EVENT,
    SIGNOUT: _EVENT,
    INVITE: _EVENT + (("i", _u31, True), ("tk", _ticket, False)),
    UNRATED: _EVENT + (("i", _u31, True), ("tk", _ticket, False)),
    STATUS: (
        ("b", _u31, True),
        ("up", _ms, True),
        ("ts", _ms, False),
        ("fw", _text, True),
        ("q", _u31, True),
        ("full", _bool, True),
        ("mem", _u31, True),
        ("rssi", _rssi, False),
        ("rst", _text, True),
        ("err", _text, False),
        ("st", _text, True),
        ("cv", _u31, True),
        ("da", _u31, False),
    ),
    ACK: (("r", _ranges, True), ("now", _ms, True), ("bf", _u31, False)),
    CONFIG: (
        ("cv", _u31, True),
        ("o", _ident, False),
        ("w", _ident, False),
        ("n", _scale, True),
        ("iw", _ms, True),
        ("mi", _ms, True),
        ("g", _bool, True),
        ("hr", _hours, False),
        ("bf", _u31, False),
    ),
    COMMAND: (
        ("cid", _u31, True),
        ("op", _op, True),
        ("o", _ident, False),
        ("tk", _ticket, False),
    ),
}
_HEADER = ("v", "t", "d")


def validate(msg: "Any") -> "dict[str, Any]":
    """Check ``msg`` against the schema of its type; return it unchanged.

    Raises ``ProtocolError`` naming the first bad or missing field.
    """
    if type(msg) is not dict:
        raise ProtocolError("bad_schema", "message is not a JSON object")
    v = msg.get("v")
    if v != limits.VERSION or type(v) is not int:
        raise ProtocolError("bad_version", "version %r not supported (want %d)" % (v, limits.VERSION))
    t = msg.get("t")
    schema = _SCHEMA.get(t) if type(t) is str else None
    if schema is None:
        raise ProtocolError("bad_type", "unknown message type %r" % (t,))
    if "d" not in msg:
        raise ProtocolError("missing_field", "d")
    _ident("d", msg["d"])
    known = 3
    for name, check, required in schema:
        if name in msg:
            known += 1
            val = msg[name]
            if val is None:
                if required:
                    raise ProtocolError("missing_field", "%s is null" % name)
            else:
                check(name, val)
        elif required:
            raise ProtocolError("missing_field", name)
    if known != len(msg):
        for k in msg:
            if k not in _HEADER and not _has(schema, k):
                raise ProtocolError("unknown_field", "%r in %s" % (k, t))
    if t == SIGNIN and msg.get("o") is None:
        raise ProtocolError("missing_field", "o (officer signing in)")
    if t == PRESS and msg["k"] > msg["n"]:
        raise ProtocolError("level_above_scale", "k %d > n %d (level 1..scale)" % (msg["k"], msg["n"]))
    return msg


def _has(schema: "Any", key: str) -> bool:
    for name, _check, _req in schema:
        if name == key:
            return True
    return False


def make(t: str, device_id: str, **fields: "Any") -> "dict[str, Any]":
    """Build and validate a message of type ``t`` for ``device_id``."""
    msg = {"v": limits.VERSION, "t": t, "d": device_id}
    for k in fields:
        msg[k] = fields[k]
    return validate(msg)


def _mac_input(device_id: str, body: bytes) -> bytes:
    return device_id.encode() + b"\n" + body


def sign(body: bytes, device_id: str, key: bytes) -> str:
    """Hex HMAC of ``body`` (canonical JSON without ``mac``) for a device."""
    from binascii import hexlify

    return hexlify(hmac_sha256(key, _mac_input(device_id, body))).decode()


def encode(msg: "dict[str, Any]", key: bytes) -> bytes:
    """Validate, sign and encode ``msg``; return the wire bytes."""
    validate(msg)
    if "mac" in msg:
        raise ProtocolError("bad_schema", "message already carries a mac")
    body = canon.dumps(msg)
    wire = body[:-1] + b',"mac":"' + sign(body, msg["d"], key).encode() + b'"}'
    if len(wire) > limits.MAX_MESSAGE:
        raise ProtocolError("oversize", "%d bytes > %d" % (len(wire), limits.MAX_MESSAGE))
    return wire


def parse(payload: bytes) -> "tuple[dict[str, Any], bytes, str]":
    """Parse and validate wire bytes *without* verifying the signature.

    Returns ``(msg, body, mac_hex)``. The caller looks up the key for
    ``msg["d"]`` and calls ``verify``; ``decode`` does both at once.
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    if len(payload) > limits.MAX_MESSAGE:
        raise ProtocolError("oversize", "%d bytes > %d" % (len(payload), limits.MAX_MESSAGE))
    if not payload:
        raise ProtocolError("empty", "no bytes")
    if len(payload) < _MAC_TAIL + 2 or payload[-_MAC_TAIL : -_MAC_HEX - 2] != b',"mac":"' or payload[-2:] != b'"}':
        raise ProtocolError("no_mac", 'message must end with ,"mac":"<64 hex>"}')
    mac = payload[-_MAC_HEX - 2 : -2]
    for c in mac:
        if not (48 <= c <= 57 or 97 <= c <= 102):
            raise ProtocolError("no_mac", "mac is not 64 lowercase hex digits")
    try:
        text = payload.decode()
    except Exception:
        raise ProtocolError("bad_utf8", "payload is not UTF-8") from None
    try:
        msg = json.loads(text)
    except Exception as exc:  # ValueError, RecursionError, MicroPython's RuntimeError
        raise ProtocolError("bad_json", str(exc) or "not JSON") from None
    if type(msg) is not dict:
        raise ProtocolError("bad_schema", "message is not a JSON object")
    if msg.pop("mac", None) != mac.decode():
        raise ProtocolError("no_mac", "mac member is not the last member")
    validate(msg)
    body = payload[:-_MAC_TAIL] + b"}"
    # MicroPython's json.loads accepts malformed text (missing commas, ",,",
    # leading zeros); requiring canonical bytes makes both interpreters agree
    # and gives every message exactly one encoding.
    if canon.dumps(msg) != body:
        raise ProtocolError("not_canonical", "body is not canonical JSON (sorted keys, compact)")
    return msg, body, mac.decode()


def verify(msg: "dict[str, Any]", body: bytes, mac: str, key: bytes, device_id: "str | None" = None) -> None:
    """Raise ``ProtocolError("bad_mac")`` unless ``mac`` signs ``body`` under ``key``.

    ``device_id``, when given (the id in the MQTT topic or the serial port's
    registered box), must equal the message's ``d``.
    """
    if device_id is not None and msg["d"] != device_id:
        raise ProtocolError("wrong_device", "message for %r on %r's channel" % (msg["d"], device_id))
    want = sign(body, msg["d"], key)
    if not equal(want.encode(), mac.encode()):
        raise ProtocolError("bad_mac", "signature does not match the key of %r" % msg["d"])


def decode(
    payload: bytes, key: "bytes | Callable[[str], bytes | None]", device_id: "str | None" = None
) -> "dict[str, Any]":
    """Parse, validate and verify wire bytes; return the message dict.

    ``key`` is the box's key, or a function from device id to key (``None``
    when the box is unknown, which raises ``ProtocolError("unknown_device")``).
    """
    msg, body, mac = parse(payload)
    k = key(msg["d"]) if callable(key) else key
    if k is None:
        raise ProtocolError("unknown_device", msg["d"])
    verify(msg, body, mac, k, device_id)
    return msg


def identity(msg: "dict[str, Any]") -> "tuple[str, int, int]":
    """The event identity ``(device_id, boot, seq)``."""
    return (msg["d"], msg["b"], msg["s"])


def flag_names(flags: int) -> "list[str]":
    """Names of the bits set in a press's ``f``."""
    return [name for bit, name in FLAG_NAMES if flags & bit]


def ack_ranges(ids: "list[tuple[int, int]]") -> "list[list[int]]":
    """Compress ``(boot, seq)`` pairs into sorted ``[boot, first, last]`` ranges."""
    out: "list[list[int]]" = []
    for b, s in sorted(set(ids)):
        if out and out[-1][0] == b and out[-1][2] + 1 == s:
            out[-1][2] = s
        else:
            out.append([b, s, s])
    return out


def acked(ranges: "list[list[int]]", boot: int, seq: int) -> bool:
    """True when ``(boot, seq)`` lies in one of the ack's ranges."""
    for b, lo, hi in ranges:
        if b == boot and lo <= seq <= hi:
            return True
    return False
