"""Release key rotation on the box: a statement signed by the key it trusts now, countersigned by the new one.

Format (docs/firmware-updates.md, "Rotating the key")::

    "EVK1" | N (u32 LE) | signature by the CURRENT key (64) | signature by the NEW key (64) | body (N bytes JSON)
    body: {"format":1,"old":"<hex>","new":"<hex>","seq":2,"issued":"2027-01-10T08:00:00Z"}
    signed message (both): "evalbox release key rotation v1\\n" || SHA-256(magic | N | body)

The box accepts it when ``old`` is the key it trusts, both signatures
verify, ``new`` is a usable key (not of small order) and ``seq`` is above
the last rotation it accepted; ``firmware/install.py`` then writes
``fw/key`` (``{"key", "seq"}``) by write-then-rename: a power cut leaves
the old key or the new one.
"""

import hashlib
import json
from binascii import hexlify, unhexlify

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

MAGIC = b"EVK1"
CONTEXT = b"evalbox release key rotation v1\n"
MAX_BODY = 400


class RotationError(Exception):
    """A rotation statement the box refuses; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason
        self.detail = detail


def signed_message(head_and_body: bytes) -> bytes:
    digest: bytes = hashlib.sha256(head_and_body).digest()
    return CONTEXT + digest


def accept(data: bytes, key: "str | None", seq: int) -> "dict[str, Any]":
    """Check ``data`` against the trusted ``key`` (hex) set by rotation ``seq``; the body. Raises ``RotationError``.

    The caller keeps the body's ``new`` key and ``seq`` (firmware/install.py writes ``fw/key``).
    """
    from firmware import ed25519  # loaded at boot only, when a statement waits (firmware/install.py)

    if not key:
        raise RotationError("no_key", "this box has no release public key (release_pubkey)")
    if len(data) < 136 or data[:4] != MAGIC:
        raise RotationError("bad_magic", "not a key rotation statement")
    n = int.from_bytes(data[4:8], "little")
    if not 0 < n <= MAX_BODY or len(data) != 136 + n:
        raise RotationError("truncated", "length %d for a body of %d" % (len(data), n))
    raw = data[136:]
    msg = signed_message(data[:8] + raw)
    if not ed25519.verify(unhexlify(key), msg, data[8:72]):
        raise RotationError("bad_signature", "not signed by the key this box trusts")
    try:
        body = json.loads(raw)
        new, old, nseq = body["new"], body["old"], body["seq"]
        ok = body.get("format") == 1 and type(nseq) is int and type(new) is str and len(new) == 64
        new_key = unhexlify(new) if ok else b""
    except (ValueError, KeyError, TypeError):
        raise RotationError("bad_body", "not a rotation body")
    if not ok:
        raise RotationError("bad_body", "format, new key or seq")
    if old != key:
        raise RotationError("wrong_old_key", "names another key than the one this box trusts")
    if nseq <= seq:
        raise RotationError("replayed", "seq %d, this box is at %d" % (nseq, seq))
    bad = ed25519.check_public_key(new_key)
    if bad:
        raise RotationError("bad_new_key", bad)
    if not ed25519.verify(new_key, msg, data[72:136]):
        raise RotationError("bad_countersignature", "the new key did not sign it")
    body["new"] = hexlify(new_key).decode()  # lowercase, as the box keeps it
    return body  # type: ignore[no-any-return]
