"""Golden-vector and RFC 4231 checks, run unchanged on CPython and MicroPython.

``python tests/protocol/vector_check.py`` or ``micropython …``: prints one
line per failure and ends with ``vectors: N passed, M failed``.
"""

import json
import sys

if "" not in sys.path:
    sys.path.insert(0, "")
sys.path.insert(0, ".")

from binascii import hexlify, unhexlify  # noqa: E402

import protocol as p  # noqa: E402
import protocol.firmware  # noqa: E402,F401  (the firmware channel's messages are in the vectors too)
from protocol.hmac256 import hmac_sha256  # noqa: E402
from protocol.messages import sign  # noqa: E402


def _hex(b):
    return hexlify(b).decode()


def run(path="protocol/vectors.json"):
    with open(path) as f:
        vec = json.load(f)
    key = unhexlify(vec["key_hex"])
    ok = 0
    fails = []

    def check(cond, what):
        nonlocal ok
        if cond:
            ok += 1
        else:
            fails.append(what)

    for c in vec["rfc4231"]:
        mac = hmac_sha256(unhexlify(c["key_hex"]), unhexlify(c["data_hex"]))
        check(_hex(mac[: c["truncate"]]) == c["mac_hex"], "rfc4231 case " + c["case"])

    for m in vec["messages"]:
        wire = m["wire"].encode()
        try:
            check(p.encode(m["message"], key) == wire, "encode " + m["name"])
        except p.ProtocolError as e:
            check(False, "encode %s raised %s" % (m["name"], e))
        try:
            check(p.decode(wire, key, m["message"]["d"]) == m["message"], "decode " + m["name"])
        except p.ProtocolError as e:
            check(False, "decode %s raised %s" % (m["name"], e))
        # every single-byte change must fail (parse or verify), never pass
        survived = 0
        for i in range(len(wire)):
            bad = wire[:i] + bytes([wire[i] ^ 0x01]) + wire[i + 1 :]
            try:
                p.decode(bad, key)
                survived += 1
            except p.ProtocolError:
                pass
        check(survived == 0, "tamper %s: %d mutations verified" % (m["name"], survived))
        try:
            p.decode(wire, b"another key")
            check(False, "wrong key accepted for " + m["name"])
        except p.ProtocolError as e:
            check(e.reason == "bad_mac", "wrong key reason " + e.reason)
        try:
            p.decode(wire, key, "other-box")
            check(False, "other device accepted for " + m["name"])
        except p.ProtocolError as e:
            check(e.reason == "wrong_device", "other device reason " + e.reason)

    for fr in vec["frames"]:
        payload = fr["payload"].encode()
        frame = fr["frame"].encode()
        check(p.encode_frame(payload) == frame, "frame " + fr["name"])
        dec = p.FrameDecoder()
        got = dec.feed(b"garbage\r\n" + frame[:7]) + dec.feed(b"\n" + frame + b">>> \n" + frame)
        check(got == [payload, payload], "deframe " + fr["name"])
        check(
            dec.counts.get("no_start") == 2 and dec.counts.get("no_crc") == 1, "deframe skip count %r" % (dec.counts,)
        )

    for bad in vec["invalid"]:
        if bad["reason"] == "level_above_scale":
            # refused by the receiver's rule, not by the signature: the mac itself is right
            wire = bad["wire"].encode()
            body = wire[:-74] + b"}"
            check(sign(body, "BJ-hr-01", key) == wire[-66:-2].decode(), "invalid %s: mac" % bad["name"])
        try:
            p.decode(bad["wire"].encode(), key)
            check(False, "invalid %s accepted" % bad["name"])
        except p.ProtocolError as e:
            check(e.reason == bad["reason"], "invalid %s: reason %s, want %s" % (bad["name"], e.reason, bad["reason"]))
    return ok, fails


if __name__ == "__main__":
    n_ok, failures = run()
    for f in failures:
        print("FAIL", f)
    print("vectors: %d passed, %d failed" % (n_ok, len(failures)))
