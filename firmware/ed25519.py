"""Ed25519 signature verification (RFC 8032 §5.1.7) for the box, on Python integers.

Written by hand because MicroPython has no Ed25519 (nor any public-key
signature) and the box must check firmware releases signed offline. Only
verification is here: the box never signs. Checked against every RFC 8032
§7.1 Ed25519 vector on CPython and on the real ``micropython``, and against
``cryptography`` (OpenSSL) on thousands of random keys and messages.

Verification rules (what is refused, with the reason ``reason`` returns):

- a public key or signature of the wrong length (``bad_length``);
- ``S >= L`` (``s_out_of_range``), as §5.1.7 requires — no malleable S;
- a public key that does not decode (§5.1.3): ``y >= p`` (non-canonical),
  no square root, or ``x = 0`` with the sign bit set (``bad_public_key``);
- a public key of small order (``small_order_key``). RFC 8032 allows these,
  but with one anybody can forge signatures; the key is the box's trust
  anchor, so a zeroed or mangled key must fail loudly instead (as
  libsodium does);
- a signature whose equation does not hold (``mismatch``).

The equation is the **cofactorless** one, ``[S]B = R + [k]A``, which §5.1.7
allows ("sufficient, but not required"), computed as ``R' = [S]B - [k]A``
and compared byte for byte with the encoded ``R``. Comparing encodings
refuses a non-canonical or undecodable ``R`` exactly as decoding it would,
and accepts the same set of signatures as OpenSSL, which is also
cofactorless; the signer is our own release tool, so no honest signature
differs between the two equations.

Not constant-time: verification handles only public data.

The work is a generator (``_steps``) of small steps — one bit of the
scalar ladder, a few field multiplications, four SHA-512 rounds.
``verify`` runs it straight through; ``averify`` runs it with
``run_sliced``, which gives the asyncio loop a turn whenever ``BUDGET_MS``
of work has passed, so keys and the watchdog are served while a release is
checked (``bench/ota.py`` measures the steps and the loop's longest wait).
"""

import asyncio
import time

from firmware.sha512 import sha512

try:
    from typing import Any, Iterator
except ImportError:  # MicroPython: annotations are not evaluated
    pass

_ticks_ms = getattr(time, "ticks_ms", None)  # MicroPython; CPython falls back to time.time()
_ticks_diff = getattr(time, "ticks_diff", None)


def _now_ms() -> int:
    return _ticks_ms() if _ticks_ms else int(time.time() * 1000)


def _since(t0: int) -> int:
    now = _now_ms()
    return _ticks_diff(now, t0) if _ticks_diff else now - t0


P = 57896044618658097711785492504343953926634992332820282019728792003956564819949  # 2**255 - 19
L = 7237005577332262213973186563042994240857116359379907606001950938285454250989  # 2**252 + 2774...8493
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555  # -121665/121666
_D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161  # 2*d mod p
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752  # 2**((p-1)/4)
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960  # 4/5
BASE = (_BX, _BY, 1, _BX * _BY % P)  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
IDENTITY = (0, 1, 1, 0)
BUDGET_MS = 5  # averify: work between two turns of the asyncio loop (one step more at most)


def _squares(x: int, n: int, out: "list[Any]") -> "Iterator[None]":
    """``out[0] = x**(2**n)`` mod p, yielding every few squarings."""
    while n:
        x = x * x % P
        n -= 1
        if n % 8 == 0:
            yield None
    out[0] = x


def _chain(z: int, out: "list[Any]") -> "Iterator[None]":
    """``out[0] = (z**(2**250 - 1), z**11)`` mod p, in steps of a few multiplications.

    The addition chain of the reference implementation (ref10): 250
    squarings and 11 multiplications serve both the inverse and the square
    root, in Python integer steps that can be split, where one 3-argument
    ``pow`` call could not (and is missing on ports built without it).
    """
    z2 = z * z % P
    z9 = z2 * z2 % P
    z9 = z9 * z9 % P * z % P
    z11 = z9 * z2 % P
    z5 = z11 * z11 % P * z9 % P  # z**(2**5 - 1)
    yield from _squares(z5, 5, out)
    z10 = out[0] * z5 % P
    yield from _squares(z10, 10, out)
    z20 = out[0] * z10 % P
    yield from _squares(z20, 20, out)
    z40 = out[0] * z20 % P
    yield from _squares(z40, 10, out)
    z50 = out[0] * z10 % P
    yield from _squares(z50, 50, out)
    z100 = out[0] * z50 % P
    yield from _squares(z100, 100, out)
    z200 = out[0] * z100 % P
    yield from _squares(z200, 50, out)
    out[0] = (out[0] * z50 % P, z11)


def _invert(z: int, out: "list[Any]") -> "Iterator[None]":
    """``out[0] = 1/z`` mod p (``z**(p-2)``), in steps."""
    yield from _chain(z, out)
    z250, z11 = out[0]
    yield from _squares(z250, 5, out)
    out[0] = out[0] * z11 % P  # 2**255 - 21 = p - 2


def _pow22523(z: int, out: "list[Any]") -> "Iterator[None]":
    """``out[0] = z**((p-5)/8)`` mod p, the exponent of the square root in §5.1.3, in steps."""
    yield from _chain(z, out)
    yield from _squares(out[0][0], 2, out)
    out[0] = out[0] * z % P  # 2**252 - 3


def _run(steps: "Iterator[None]") -> None:
    for _ in steps:
        pass


def _decode(s: bytes, out: "list[Any]") -> "Iterator[None]":
    out[0] = None
    if len(s) != 32:
        return
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return
    yy = y * y % P
    u = (yy - 1) % P
    v = (_D * yy + 1) % P
    v3 = v * v % P * v % P
    yield from _pow22523(u * v3 % P * v3 % P * v % P, out)
    x = u * v3 % P * out[0] % P  # (u/v)**((p+3)/8)
    out[0] = None
    vxx = v * x % P * x % P
    if vxx != u:
        if vxx != (P - u) % P:
            return
        x = x * _SQRT_M1 % P
    if x == 0 and sign:
        return
    if x & 1 != sign:
        x = P - x
    out[0] = (x, y, 1, x * y % P)


def decode_point(s: bytes) -> "tuple[int, int, int, int] | None":
    """The point encoded by 32 bytes (RFC 8032 §5.1.3), or None when the encoding is refused.

    Refused: a length other than 32, ``y >= p`` (non-canonical), a ``y`` with
    no matching ``x`` on the curve, and ``x = 0`` with the sign bit set.
    """
    out: "list[Any]" = [None]
    _run(_decode(s, out))
    return out[0]  # type: ignore[no-any-return]


def _encode(pt: "tuple[int, int, int, int]", out: "list[Any]") -> "Iterator[None]":
    yield from _invert(pt[2], out)
    x = pt[0] * out[0] % P
    y = pt[1] * out[0] % P
    out[0] = (y | ((x & 1) << 255)).to_bytes(32, "little")


def encode_point(pt: "tuple[int, int, int, int]") -> bytes:
    """The 32-byte encoding of a point (RFC 8032 §5.1.2)."""
    out: "list[Any]" = [None]
    _run(_encode(pt, out))
    return out[0]  # type: ignore[no-any-return]


def _add(p: "tuple[int, int, int, int]", q: "tuple[int, int, int, int]") -> "tuple[int, int, int, int]":
    # RFC 8032 §5.1.4, extended coordinates, a = -1
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = p[3] * _D2 % P * q[3] % P
    d = 2 * p[2] * q[2] % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p: "tuple[int, int, int, int]") -> "tuple[int, int, int, int]":
    # RFC 8032 §5.1.4 doubling (does not read T)
    a = p[0] * p[0] % P
    b = p[1] * p[1] % P
    c = 2 * p[2] * p[2] % P
    h = a + b
    xy = p[0] + p[1]
    e = h - xy * xy % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _neg(p: "tuple[int, int, int, int]") -> "tuple[int, int, int, int]":
    return ((P - p[0]) % P, p[1], p[2], (P - p[3]) % P)


def is_identity(p: "tuple[int, int, int, int]") -> bool:
    """True when ``p`` is the neutral point (0, 1)."""
    return p[0] % P == 0 and (p[1] - p[2]) % P == 0


def is_small_order(p: "tuple[int, int, int, int]") -> bool:
    """True when ``[8]p`` is the neutral point: ``p`` is one of the 8 torsion points."""
    return is_identity(_double(_double(_double(p))))


def _key(public_key: bytes, out: "list[Any]") -> "Iterator[None]":
    """``out[0]`` = the decoded key, or the reason (a str) it cannot be trusted."""
    out[0] = "bad_length"
    if len(public_key) != 32:
        return
    yield from _decode(public_key, out)
    if out[0] is None:
        out[0] = "bad_public_key"
        return
    yield None
    if is_small_order(out[0]):
        out[0] = "small_order_key"


def check_public_key(public_key: bytes) -> "str | None":
    """None when ``public_key`` can be trusted to verify with, else the reason it cannot."""
    out: "list[Any]" = [None]
    _run(_key(public_key, out))
    return out[0] if type(out[0]) is str else None


def _steps(public_key: bytes, message: bytes, signature: bytes, out: "list[Any]") -> "Iterator[None]":
    """Verify in small steps (a yield after each); the reason (None: valid) goes to ``out[0]``."""
    out[0] = "bad_length"
    if len(public_key) != 32 or len(signature) != 64:
        return
    out[0] = "s_out_of_range"
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return
    yield from _key(public_key, out)
    if type(out[0]) is str:
        return
    a = out[0]
    out[0] = "unfinished"
    yield None
    h = sha512()
    feed = getattr(h, "blocks", None)  # the pure SHA-512 yields per block; hashlib's is C, one call
    for part in (signature[:32], public_key, message):
        if feed is None:
            h.update(part)
        else:
            yield from feed(part)
    if feed is None:
        k = int.from_bytes(h.digest(), "little") % L
    else:
        yield from getattr(h, "digest_steps")(out)  # noqa: B009 (h is hashlib's or Sha512: only one has it)
        k = int.from_bytes(out[0], "little") % L
    yield None
    # R' = [S]B + [k](-A), both scalars < L < 2**253, one shared doubling chain (Straus/Shamir)
    na = _neg(a)
    table = (IDENTITY, BASE, na, _add(BASE, na))
    q = IDENTITY
    i = 252
    while i >= 0:
        q = _double(q)
        j = ((s >> i) & 1) | (((k >> i) & 1) << 1)
        if j:
            q = _add(q, table[j])
        yield None
        i -= 1
    out[0] = "unfinished"
    yield from _encode(q, out)
    out[0] = None if out[0] == bytes(signature[:32]) else "mismatch"


def reason(public_key: bytes, message: bytes, signature: bytes) -> "str | None":
    """None when ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``, else why not."""
    out: "list[Any]" = [None]
    for _ in _steps(public_key, message, signature, out):
        pass
    return out[0]  # type: ignore[no-any-return]


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``."""
    return reason(public_key, message, signature) is None


async def run_sliced(steps: "Iterator[None]", budget_ms: int = BUDGET_MS) -> None:
    """Run a generator of small steps, giving the asyncio loop a turn once ``budget_ms`` of work has passed.

    A step is one ladder bit or a few field multiplications (bench/ota.py
    measures the longest); awaiting after every step would cost more than
    the step on MicroPython (~20 us per ``sleep(0)`` on the unix port).
    The generator is closed if this is cancelled.
    """
    t0 = _now_ms()
    try:
        for _ in steps:
            if _since(t0) >= budget_ms:
                await asyncio.sleep(0)
                t0 = _now_ms()
    finally:
        steps.close()  # type: ignore[attr-defined]


async def averify(public_key: bytes, message: bytes, signature: bytes, budget_ms: int = BUDGET_MS) -> bool:
    """``verify`` that gives the asyncio loop a turn after every ``budget_ms`` of work."""
    out: "list[Any]" = [None]
    await run_sliced(_steps(public_key, message, signature, out), budget_ms)
    return out[0] is None
