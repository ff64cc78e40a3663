"""HMAC-SHA256 (RFC 2104) on ``hashlib.sha256``.

Written by hand because MicroPython ships ``hashlib.sha256`` but no ``hmac``
module; checked against every RFC 4231 HMAC-SHA256 case on both interpreters.
"""

import hashlib

_BLOCK = 64


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """Return the 32-byte HMAC-SHA256 of ``msg`` under ``key``."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    ipad = bytes([b ^ 0x36 for b in key])
    opad = bytes([b ^ 0x5C for b in key])
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time independent of where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
