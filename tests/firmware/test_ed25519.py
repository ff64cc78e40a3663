"""The box's Ed25519 verifier and SHA-512: RFC 8032 and NIST vectors on both interpreters, OpenSSL as the referee."""

from __future__ import annotations

import hashlib
import os
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import ed25519 as ed
from firmware.sha512 import Sha512
from tests.conftest import ROOT, run_micropython
from tests.firmware import mp_ed25519

CHECKS = 171  # every check mp_ed25519.run() makes; a skipped one shows as a lower count


def test_vectors_on_cpython() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        ok, fails = mp_ed25519.run()
    finally:
        os.chdir(cwd)
    assert fails == []
    assert ok == CHECKS


def test_vectors_on_micropython() -> None:
    proc = run_micropython("tests/firmware/mp_ed25519.py", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"ed25519: (\d+) passed, (\d+) failed", last)
    assert m, proc.stdout
    assert m.group(2) == "0", proc.stdout
    assert int(m.group(1)) == CHECKS, proc.stdout


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_the_vectors_are_rfc_8032s() -> None:
    """OpenSSL derives the same keys and signatures from the RFC's secret keys: the vectors are copied right."""
    for name, sk, pk, msg, sig in mp_ed25519.RFC8032:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk))
        assert _public(key).hex() == pk, name
        assert key.sign(bytes.fromhex(msg)).hex() == sig, name
    assert len(bytes.fromhex(mp_ed25519.RFC8032[3][3])) == 1023


def _openssl_accepts(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def _slow(n: int) -> settings:
    """``n`` examples, no deadline: one pure-Python verify takes a few ms."""
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_slow(1000)
@given(seed=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=300))
def test_accepts_what_openssl_signs(seed: bytes, msg: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    sig = key.sign(msg)
    assert ed.reason(_public(key), msg, sig) is None


@_slow(1000)
@given(
    seed=st.binary(min_size=32, max_size=32),
    msg=st.binary(max_size=300),
    where=st.sampled_from(["R", "S", "A", "msg"]),
    pos=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(min_value=0, max_value=7),
)
def test_refuses_what_openssl_refuses(seed: bytes, msg: bytes, where: str, pos: int, bit: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pk, sig = _public(key), key.sign(msg)
    if where == "R":
        sig = mp_ed25519._flip(sig, pos % 32, 1 << bit)
    elif where == "S":
        sig = mp_ed25519._flip(sig, 32 + pos % 32, 1 << bit)
    elif where == "A":
        pk = mp_ed25519._flip(pk, pos % 32, 1 << bit)
    else:
        msg = mp_ed25519._flip(msg, pos % len(msg), 1 << bit) if msg else b"\x01"
    ours = ed.reason(pk, msg, sig)
    assert _openssl_accepts(pk, msg, sig) is False
    assert ours is not None


@_slow(500)
@given(pk=st.binary(min_size=32, max_size=32), sig=st.binary(min_size=64, max_size=64), msg=st.binary(max_size=64))
def test_random_bytes_agree_with_openssl(pk: bytes, sig: bytes, msg: bytes) -> None:
    if ed.check_public_key(pk) == "small_order_key":  # the one place the box is stricter (next test)
        assert not ed.verify(pk, msg, sig)
    else:
        assert ed.verify(pk, msg, sig) == _openssl_accepts(pk, msg, sig)


def test_small_order_key_refused_where_openssl_accepts_a_forgery() -> None:
    """An all-zero key and signature (R and A of order 4, S = 0) hold for every message with k = 3 mod 4.

    Nobody needs a secret to make them: OpenSSL accepts about one message in
    four; the box refuses the key itself.
    """
    zero_key, zero_sig = bytes(32), bytes(64)
    forged = 0
    for i in range(40):
        msg = b"evalbox release 9.9.%d" % i
        if _openssl_accepts(zero_key, msg, zero_sig):
            forged += 1
        assert ed.reason(zero_key, msg, zero_sig) == "small_order_key"
    assert forged >= 3


@_slow(300)
@given(s=st.integers(min_value=0, max_value=ed.L - 1), seed=st.binary(min_size=32, max_size=32))
def test_s_plus_l_refused_by_both(s: int, seed: bytes) -> None:
    """S + L satisfies the group equation too; only the range check refuses it, in OpenSSL and here."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    sig = key.sign(b"release")
    s = int.from_bytes(sig[32:], "little")
    bad = sig[:32] + (s + ed.L).to_bytes(32, "little")
    assert ed.reason(_public(key), b"release", bad) == "s_out_of_range"
    assert not _openssl_accepts(_public(key), b"release", bad)


@_slow(400)
@given(data=st.binary(max_size=1000), cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=4))
def test_sha512_matches_hashlib(data: bytes, cuts: list[int]) -> None:
    h = Sha512()
    last = 0
    for c in sorted(cuts):
        h.update(data[last:c])
        last = max(last, c)
    h.update(data[last:])
    assert h.digest() == hashlib.sha512(data).digest()


def test_sha512_padding_boundaries() -> None:
    for n in (0, 1, 55, 56, 63, 64, 110, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 257):
        data = bytes(range(256))[:n] if n <= 256 else bytes(n)
        assert Sha512(data).digest() == hashlib.sha512(data).digest(), n
