"""The firmware channel's messages (SPEC.md section 8): offers, chunks, key rotations and the box's state.

Kept apart from ``protocol.messages`` so a box that is not updating does not
carry their schemas in its heap: importing this module adds them to the
message schema (``firmware/ota.py`` imports it when an update begins; the
collector's ``collector.fleet.transfer`` at start). Encoded, signed and
decoded like every other message.
"""

from protocol import messages
from protocol.messages import _bad, _bool, _ident, _text, _u31

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

FW_OFFER = "fwo"
FW_CHUNK = "fwc"
FW_STATE = "fws"
FW_KEY = "fwk"
FW_TYPES = (FW_OFFER, FW_CHUNK, FW_STATE, FW_KEY)
FW_STATES = ("idle", "recv", "pause", "reboot", "refused", "trial", "ok", "rolled_back")
FW_CHUNK_MAX = 256  # bytes of release data in one fwc (344 base64 characters)
FW_KEY_MAX = 512  # bytes of a key rotation statement in one fwk (684 base64 characters)
_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _base64(name: str, v: "Any", most: int) -> None:
    if type(v) is not str or not 0 < len(v) <= (most + 2) // 3 * 4 or len(v) % 4:
        raise _bad(name, "expected 4..%d base64 characters" % ((most + 2) // 3 * 4))
    for ch in v:
        if ch not in _B64_CHARS:
            raise _bad(name, "character %r is not base64" % ch)


def _b64(name: str, v: "Any") -> None:
    _base64(name, v, FW_CHUNK_MAX)


def _b64_key(name: str, v: "Any") -> None:
    _base64(name, v, FW_KEY_MAX)


def _fw_state(name: str, v: "Any") -> None:
    if v not in FW_STATES:
        raise _bad(name, "must be one of %s" % ", ".join(FW_STATES))


def _slot(name: str, v: "Any") -> None:
    if v not in ("a", "b", "usb"):
        raise _bad(name, "must be a, b or usb")


messages._SCHEMA[FW_OFFER] = (("id", _ident, True), ("sz", _u31, True), ("ver", _text, True))
messages._SCHEMA[FW_CHUNK] = (("id", _ident, True), ("off", _u31, True), ("x", _b64, True))
messages._SCHEMA[FW_STATE] = (
    ("ver", _text, False),
    ("sl", _slot, True),
    ("tr", _bool, True),
    ("st", _fw_state, True),
    ("id", _ident, False),
    ("off", _u31, True),
    ("sz", _u31, True),
    ("why", _text, False),
    ("ks", _u31, False),
)
messages._SCHEMA[FW_KEY] = (("x", _b64_key, True),)
