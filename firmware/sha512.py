"""SHA-512 (FIPS 180-4) for the Ed25519 verifier, on Python integers.

Written by hand because MicroPython's ``hashlib`` (``extmod/modhashlib.c``)
implements only ``sha256``, ``sha1`` and ``md5`` on every port — unix, rp2
(Pico / Pico W), esp32, stm32 — and Ed25519 (RFC 8032) needs SHA-512. Where
the interpreter has ``hashlib.sha512`` (CPython, some vendor forks),
``sha512`` is that one; the pure class ``Sha512`` is checked against it and
against the NIST vectors on both interpreters.

Verifying a release hashes about 120 bytes with SHA-512 (one or two blocks),
so speed matters little; ``blocks`` and ``digest_steps`` do the work in
steps of a few rounds, so a caller can give the event loop turns meanwhile.
"""

import hashlib

try:
    from typing import Any, Iterator
except ImportError:  # MicroPython: annotations are not evaluated
    pass

_M = 0xFFFFFFFFFFFFFFFF

# FIPS 180-4 §4.2.3: first 64 bits of the fractional parts of the cube roots of the first 80 primes
_K = (
    0x428A2F98D728AE22, 0x7137449123EF65CD, 0xB5C0FBCFEC4D3B2F, 0xE9B5DBA58189DBBC,
    0x3956C25BF348B538, 0x59F111F1B605D019, 0x923F82A4AF194F9B, 0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242, 0x12835B0145706FBE, 0x243185BE4EE4B28C, 0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F, 0x80DEB1FE3B1696B1, 0x9BDC06A725C71235, 0xC19BF174CF692694,
    0xE49B69C19EF14AD2, 0xEFBE4786384F25E3, 0x0FC19DC68B8CD5B5, 0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275, 0x4A7484AA6EA6E483, 0x5CB0A9DCBD41FBD4, 0x76F988DA831153B5,
    0x983E5152EE66DFAB, 0xA831C66D2DB43210, 0xB00327C898FB213F, 0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2, 0xD5A79147930AA725, 0x06CA6351E003826F, 0x142929670A0E6E70,
    0x27B70A8546D22FFC, 0x2E1B21385C26C926, 0x4D2C6DFC5AC42AED, 0x53380D139D95B3DF,
    0x650A73548BAF63DE, 0x766A0ABB3C77B2A8, 0x81C2C92E47EDAEE6, 0x92722C851482353B,
    0xA2BFE8A14CF10364, 0xA81A664BBC423001, 0xC24B8B70D0F89791, 0xC76C51A30654BE30,
    0xD192E819D6EF5218, 0xD69906245565A910, 0xF40E35855771202A, 0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8, 0x1E376C085141AB53, 0x2748774CDF8EEB99, 0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63, 0x4ED8AA4AE3418ACB, 0x5B9CCA4F7763E373, 0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC, 0x78A5636F43172F60, 0x84C87814A1F0AB72, 0x8CC702081A6439EC,
    0x90BEFFFA23631E28, 0xA4506CEBDE82BDE9, 0xBEF9A3F7B2C67915, 0xC67178F2E372532B,
    0xCA273ECEEA26619C, 0xD186B8C721C0C207, 0xEADA7DD6CDE0EB1E, 0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA, 0x0A637DC5A2C898A6, 0x113F9804BEF90DAE, 0x1B710B35131C471B,
    0x28DB77F523047D84, 0x32CAAB7B40C72493, 0x3C9EBE0A15C9BEBC, 0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6, 0x597F299CFC657E2A, 0x5FCB6FAB3AD6FAEC, 0x6C44198C4A475817,
)  # fmt: skip

# FIPS 180-4 §5.3.5: initial hash value
_H0 = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (64 - n))) & _M


class Sha512:
    """SHA-512 with the ``hashlib`` interface (``update``, ``digest``), in pure Python."""

    digest_size = 64
    block_size = 128

    def __init__(self, data: bytes = b"") -> None:
        self._h = list(_H0)
        self._buf = b""
        self._len = 0
        if data:
            self.update(data)

    def update(self, data: bytes) -> None:
        """Absorb ``data``; whole 128-byte blocks are compressed now, the rest is kept."""
        for _ in self.blocks(data):
            pass

    def blocks(self, data: bytes) -> "Iterator[None]":
        """Absorb ``data``, yielding every few rounds of each block compressed.

        A generator, so an async caller can give the event loop a turn in
        between; ``update`` is this run to the end.
        """
        self._len += len(data)
        buf = self._buf + bytes(data)
        i = 0
        while len(buf) - i >= 128:
            yield from self._compress(buf, i)
            i += 128
        self._buf = buf[i:]

    def digest(self) -> bytes:
        """The 64-byte digest of everything absorbed so far (the object stays usable)."""
        out = [b""]
        for _ in self.digest_steps(out):
            pass
        return out[0]

    def digest_steps(self, out: "list[Any]") -> "Iterator[None]":
        """``digest`` in steps of a few rounds; the digest goes to ``out[0]``."""
        bits = self._len * 8
        pad = b"\x80" + bytes((111 - self._len) % 128) + bits.to_bytes(16, "big")
        state = Sha512()
        state._h = list(self._h)
        state._buf = self._buf
        yield from state.blocks(pad)
        d = b""
        for v in state._h:
            d += v.to_bytes(8, "big")
        out[0] = d

    def _compress(self, buf: bytes, off: int) -> "Iterator[None]":
        # one 128-byte block (~1.3 ms on the unix port), in steps of 4 rounds or 16 schedule words
        w = [int.from_bytes(buf[off + 8 * t : off + 8 * t + 8], "big") for t in range(16)]
        for t in range(16, 80):
            a = w[t - 15]
            b = w[t - 2]
            s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
            s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
            w.append((w[t - 16] + s0 + w[t - 7] + s1) & _M)
            if t % 16 == 15:
                yield None
        h = self._h
        a, b, c, d, e, f, g, hh = h
        for t in range(80):
            if t % 4 == 0:
                yield None
            s1 = _rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)
            ch = (e & f) ^ ((e ^ _M) & g)  # no ~: negative big ints are slow on MicroPython
            t1 = hh + s1 + ch + _K[t] + w[t]
            s0 = _rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)
            maj = (a & b) ^ (a & c) ^ (b & c)
            hh = g
            g = f
            f = e
            e = (d + t1) & _M
            d = c
            c = b
            b = a
            a = (t1 + s0 + maj) & _M
        h[0] = (h[0] + a) & _M
        h[1] = (h[1] + b) & _M
        h[2] = (h[2] + c) & _M
        h[3] = (h[3] + d) & _M
        h[4] = (h[4] + e) & _M
        h[5] = (h[5] + f) & _M
        h[6] = (h[6] + g) & _M
        h[7] = (h[7] + hh) & _M


# hashlib's own where it exists (C speed); the pure class on MicroPython
sha512 = hashlib.sha512 if hasattr(hashlib, "sha512") else Sha512
