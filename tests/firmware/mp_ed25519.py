"""Ed25519 (RFC 8032 §7.1) and SHA-512 (FIPS 180-4) checks, run unchanged on CPython and MicroPython.

``python tests/firmware/mp_ed25519.py`` or ``micropython …`` from the
repository root: prints one line per failure and ends with
``ed25519: N passed, M failed``.
"""

import sys

if "" not in sys.path:
    sys.path.insert(0, "")
sys.path.insert(0, ".")

import asyncio  # noqa: E402
from binascii import hexlify, unhexlify  # noqa: E402

from firmware import ed25519 as ed  # noqa: E402
from firmware.sha512 import Sha512  # noqa: E402

# RFC 8032 §7.1, the five Ed25519 tests: (name, secret key, public key, message, signature)
_LONG = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1e355f6c5"
    "0544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d658675fc6ea534e0"
    "810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82"
    "d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9"
    "a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c9"
    "4fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5"
    "d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88"
    "425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80"
    "c3414a8d0859dc65a46128bab27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae078"
    "4504df543af8969be3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9"
    "b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34dff7310fdc"
    "82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7984a74d371459867"
    "80fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8"
    "b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041e989f791"
    "4f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45"
    "a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac"
    "86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
)
RFC8032 = (
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        _LONG,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
        "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
)

# FIPS 180-4 SHA-512 examples (NIST CSRC): (message, repeat, digest)
SHA512 = (
    (b"", 1, "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
             "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
    (b"abc", 1, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
     "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445"),
    (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
     b"nopqrstu", 1,
     "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
     "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"),
    (b"a" * 1000, 1000,
     "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
     "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"),
)  # fmt: skip


def _hex(b):
    return hexlify(b).decode()


def _flip(b, i, bit=1):
    return b[:i] + bytes([b[i] ^ bit]) + b[i + 1 :]


def _mul(n, pt):
    """[n]pt by double-and-add (test helper: the verifier itself never multiplies by a secret)."""
    q = ed.IDENTITY
    for i in range(255, -1, -1):  # MicroPython ints have no bit_length
        q = ed._double(q)
        if (n >> i) & 1:
            q = ed._add(q, pt)
    return q


def _same(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % ed.P == 0 and (p[1] * q[2] - q[1] * p[2]) % ed.P == 0


def torsion_encodings():
    """The encodings of the 8 points of small order (found as [L]Q for a point Q with a torsion part)."""
    y = 2
    while True:
        q = ed.decode_point(y.to_bytes(32, "little"))
        if q is not None:
            t = _mul(ed.L, q)
            pts = [ed.IDENTITY]
            cur = t
            while not ed.is_identity(cur):
                pts.append(cur)
                cur = ed._add(cur, t)
            if len(pts) == 8:
                return [ed.encode_point(p) for p in pts]
        y += 1


def run():
    ok = 0
    fails = []

    def check(cond, what):
        nonlocal ok
        if cond:
            ok += 1
        else:
            fails.append(what)

    # SHA-512: the NIST examples, fed whole and in odd pieces
    for msg, times, want in SHA512:
        h = Sha512()
        for _ in range(times):
            h.update(msg)
        check(_hex(h.digest()) == want, "sha512 %d x %d bytes" % (times, len(msg)))
        if times == 1 and len(msg) > 3:
            h = Sha512(msg[:1])
            h.update(msg[1:3])
            h.update(msg[3:])
            check(_hex(h.digest()) == want, "sha512 in pieces, %d bytes" % len(msg))
    h = Sha512(b"abc")
    check(h.digest() == h.digest(), "sha512 digest twice")
    h.update(b"d")
    check(h.digest() == Sha512(b"abcd").digest(), "sha512 update after digest")

    # the field helpers against the definition
    z = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF
    out = [None]
    ed._run(ed._invert(z, out))
    check(out[0] * z % ed.P == 1, "inverse")
    check(ed.encode_point(ed.BASE) == unhexlify("58" + "66" * 31), "base point encoding")
    check(_same(ed.decode_point(ed.encode_point(ed.BASE)), ed.BASE), "base point round trip")
    check(ed.is_identity(_mul(ed.L, ed.BASE)), "[L]B is the identity")

    for name, _sk, pk_hex, msg_hex, sig_hex in RFC8032:
        pk, msg, sig = unhexlify(pk_hex), unhexlify(msg_hex), unhexlify(sig_hex)
        check(ed.reason(pk, msg, sig) is None, name + " verifies")
        check(asyncio.run(ed.averify(pk, msg, sig)) is True, name + " verifies (async)")
        r = ed.reason(pk, msg, _flip(sig, 0))
        check(r in ("mismatch",), "%s: flipped bit in R -> %s" % (name, r))
        r = ed.reason(pk, msg, _flip(sig, 40, 0x10))
        check(r in ("mismatch", "s_out_of_range"), "%s: flipped bit in S -> %s" % (name, r))
        r = ed.reason(pk, msg, _flip(sig, 63, 0x80))  # the top bit of S: always >= L
        check(r == "s_out_of_range", "%s: top bit of S -> %s" % (name, r))
        r = ed.reason(_flip(pk, 5, 0x04), msg, sig)
        check(r in ("mismatch", "bad_public_key"), "%s: flipped bit in A -> %s" % (name, r))
        bad_msg = _flip(msg, len(msg) // 2) if msg else b"\x00"
        r = ed.reason(pk, bad_msg, sig)
        check(r == "mismatch", "%s: changed message -> %s" % (name, r))
        r = ed.reason(pk, msg + b"\x00", sig)
        check(r == "mismatch", "%s: one byte appended -> %s" % (name, r))
        s = int.from_bytes(sig[32:], "little")
        for bad_s, what in ((s + ed.L, "S + L"), (ed.L, "S = L"), ((1 << 256) - 1, "S = 2**256 - 1")):
            r = ed.reason(pk, msg, sig[:32] + bad_s.to_bytes(32, "little"))
            check(r == "s_out_of_range", "%s: %s -> %s" % (name, what, r))
        check(not asyncio.run(ed.averify(pk, bad_msg, sig)), name + " changed message refused (async)")
        check(ed.reason(pk[:31], msg, sig) == "bad_length", name + " short key")
        check(ed.reason(pk, msg, sig[:63]) == "bad_length", name + " short signature")

    pk, sig = unhexlify(RFC8032[0][2]), unhexlify(RFC8032[0][4])
    # non-canonical encodings: y + p for the few y < 19 on the curve (bit 255 clear and set)
    noncanon = 0
    for y in range(19):
        for sign in (0, 1):
            enc = (y | (sign << 255)).to_bytes(32, "little")
            if ed.decode_point(enc) is None:
                continue
            bad = ((y + ed.P) | (sign << 255)).to_bytes(32, "little")
            noncanon += 1
            check(ed.decode_point(bad) is None, "non-canonical y=%d+p decoded" % y)
            check(ed.check_public_key(bad) == "bad_public_key", "non-canonical key y=%d+p" % y)
            r = ed.reason(pk, b"", bad + sig[32:])
            check(r == "mismatch", "non-canonical R y=%d+p -> %s" % (y, r))
    check(noncanon >= 2, "non-canonical cases found: %d" % noncanon)
    # y = 1 and y = -1 have x = 0: the sign bit set is refused
    for y in (1, ed.P - 1):
        check(ed.decode_point((y | (1 << 255)).to_bytes(32, "little")) is None, "x=0 with sign bit, y=%d" % y)
    # a y with no point on the curve
    y = 2
    while ed.decode_point(y.to_bytes(32, "little")) is not None:
        y += 1
    check(ed.check_public_key(y.to_bytes(32, "little")) == "bad_public_key", "off-curve key y=%d" % y)
    check(ed.reason(y.to_bytes(32, "little"), b"", sig) == "bad_public_key", "off-curve key refused")

    # small-order keys: with one, [S]B = R + [k]A is forgeable without the secret (shown for A = identity)
    tors = torsion_encodings()
    check(len(tors) == 8 and len(set(tors)) == 8, "8 small-order points")
    for enc in tors:
        check(ed.check_public_key(enc) == "small_order_key", "small-order key " + _hex(enc))
    s = 12345
    forged = ed.encode_point(_mul(s, ed.BASE)) + s.to_bytes(32, "little")
    ident = ed.encode_point(ed.IDENTITY)
    r = ed.reason(ident, b"any message", forged)
    check(r == "small_order_key", "forgery under the identity key -> %s" % r)
    check(ed.check_public_key(pk) is None, "a real key is usable")

    # the async verifier really gives the loop turns: a ticker runs all along
    ticks = [0]
    done = [False]

    async def ticker():
        while not done[0]:
            ticks[0] += 1
            await asyncio.sleep(0)

    async def both(budget_ms):
        done[0] = False
        ticks[0] = 0
        t = asyncio.create_task(ticker())
        name, _sk, pk_hex, msg_hex, sig_hex = RFC8032[3]
        res = await ed.averify(unhexlify(pk_hex), unhexlify(msg_hex), unhexlify(sig_hex), budget_ms)
        done[0] = True
        await t
        return res

    # budget 0: a turn after every step, so at least one per ladder bit
    check(asyncio.run(both(0)) is True, "async verify beside a ticker")
    check(ticks[0] >= 253, "ticker ran %d times during one async verify" % ticks[0])
    check(asyncio.run(both(ed.BUDGET_MS)) is True, "async verify, default budget")
    return ok, fails


if __name__ == "__main__":
    n_ok, failures = run()
    for f in failures:
        print("FAIL", f)
    print("ed25519: %d passed, %d failed" % (n_ok, len(failures)))
