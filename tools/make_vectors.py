"""Regenerate protocol/vectors.json (run only when the protocol changes on purpose).

The RFC 4231 expected values are computed with CPython's ``hmac`` module,
the reference the hand-written HMAC is checked against; the inputs are the
RFC's.
"""

import hashlib
import hmac
import json
import pathlib
import sys
from binascii import b2a_base64

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import protocol as p  # noqa: E402
import protocol.firmware  # noqa: E402,F401  (the firmware channel's schemas: SPEC.md section 8)

KEY = bytes(range(32))


def _b64(data: bytes) -> str:
    return b2a_base64(data, newline=False).decode()


RFC4231 = [
    ("1", b"\x0b" * 20, b"Hi There", None),
    ("2", b"Jefe", b"what do ya want for nothing?", None),
    ("3", b"\xaa" * 20, b"\xdd" * 50, None),
    ("4", bytes(range(1, 26)), b"\xcd" * 50, None),
    ("5", b"\x0c" * 20, b"Test With Truncation", 16),
    ("6", b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First", None),
    (
        "7",
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. "
        b"The key needs to be hashed before being used by the HMAC algorithm.",
        None,
    ),
]

MESSAGES = [
    (
        "press rated",
        p.make(
            "press", "BJ-hr-01", b=3, s=17, ts=1761926399000, up=86400123, o="A10293", k=1, n=2, i=5, tk="T-0042", f=0
        ),
    ),
    (
        "press unsolicited unsynced",
        p.make("press", "BJ-hr-01", b=3, s=18, ts=None, up=1000, o=None, k=2, n=2, i=None, tk=None, f=1 | 8 | 16),
    ),
    ("press five-level", p.make("press", "sz_ee_7", b=0, s=0, ts=1762000000000, up=5, o="P7", k=5, n=5, f=0)),
    ("signin", p.make("signin", "BJ-hr-01", b=3, s=1, ts=1761900000000, up=100, o="A10293")),
    ("signout", p.make("signout", "BJ-hr-01", b=3, s=40, ts=1761930000000, up=90000, o="A10293")),
    ("invite", p.make("invite", "BJ-hr-01", b=3, s=16, ts=1761926390000, up=86390000, o="A10293", i=5, tk="T-0042")),
    ("unrated", p.make("unrated", "BJ-hr-01", b=3, s=20, ts=1761926500000, up=86500000, o="A10293", i=6, tk=None)),
    (
        "status",
        p.make(
            "status",
            "BJ-hr-01",
            b=3,
            up=60000,
            ts=1761926400000,
            fw="1.0.0",
            q=2,
            full=False,
            mem=81234,
            rssi=-61,
            rst="power_on",
            err=None,
            st="ok",
            cv=4,
        ),
    ),
    (
        "status with error text",
        p.make(
            "status",
            "BJ-hr-01",
            b=4,
            up=1,
            fw="1.0.0",
            q=0,
            full=True,
            mem=1,
            rst="watchdog",
            err='flash "seg-3" crc',
            st="ok",
            cv=0,
        ),
    ),
    ("ack", p.make("ack", "BJ-hr-01", r=[[3, 16, 18], [4, 0, 0]], now=1761926401234)),
    ("ack with boot floor", p.make("ack", "BJ-hr-01", r=[], now=1761926401234, bf=10)),
    (
        "config",
        p.make(
            "config", "BJ-hr-01", cv=4, o="A10293", w="W-hr-01", n=3, iw=10000, mi=3000, g=True, hr=[510, 1050], bf=0
        ),
    ),
    ("command invite", p.make("cmd", "BJ-hr-01", cid=77, op="invite", o=None, tk="T-0043")),
    ("command signin", p.make("cmd", "BJ-hr-01", cid=78, op="signin", o="A10293")),
    # the firmware channel (SPEC.md section 8)
    ("firmware offer", p.make("fwo", "BJ-hr-01", id="3f9a0c51d2e47b86", sz=183_452, ver="1.1.0")),
    (
        "firmware chunk, full",
        p.make("fwc", "BJ-hr-01", id="3f9a0c51d2e47b86", off=512, x=_b64(bytes(range(256)))),
    ),
    ("firmware chunk, last", p.make("fwc", "BJ-hr-01", id="3f9a0c51d2e47b86", off=183_296, x="RVZSMQ==")),
    (
        "firmware state receiving",
        p.make(
            "fws",
            "BJ-hr-01",
            ver=None,
            sl="usb",
            tr=False,
            st="recv",
            id="3f9a0c51d2e47b86",
            off=768,
            sz=183_452,
            why=None,
            ks=0,
        ),
    ),
    (
        "firmware state trial",
        p.make("fws", "BJ-hr-01", ver="1.1.0", sl="a", tr=True, st="trial", id=None, off=0, sz=0, why=None),
    ),
    (
        "firmware state rolled back",
        p.make(
            "fws",
            "BJ-hr-01",
            ver="1.0.0",
            sl="b",
            tr=False,
            st="rolled_back",
            id=None,
            off=0,
            sz=0,
            why="rolled back from 1.1.0: self-test: keys: stuck",
            ks=2,
        ),
    ),
    ("firmware key rotation", p.make("fwk", "BJ-hr-01", x=_b64(b"EVK1" + bytes(range(100))))),
]

INVALID = [
    ("empty", b"", "empty"),
    ("not json", b'not json,"mac":"' + b"0" * 64 + b'"}', "bad_json"),
    ("no mac", b'{"v":1,"t":"press"}', "no_mac"),
    ("bad literal", b'{"d":"x","t":tru,"v":1,"mac":"' + b"0" * 64 + b'"}', "bad_json"),
    (
        "keys not sorted",
        b'{"d":"x","b":1,"f":0,"k":1,"n":2,"s":0,"t":"press","up":0,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "not_canonical",
    ),
    (
        "spaces",
        b'{"b": 1,"d":"x","f":0,"k":1,"n":2,"s":0,"t":"press","up":0,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "not_canonical",
    ),
    ("version 2", b'{"d":"x","t":"press","v":2,"mac":"' + b"0" * 64 + b'"}', "bad_version"),
    ("unknown type", b'{"d":"x","t":"dance","v":1,"mac":"' + b"0" * 64 + b'"}', "bad_type"),
    (
        "missing seq",
        b'{"b":1,"d":"x","f":0,"k":1,"n":2,"t":"press","up":0,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "missing_field",
    ),
    (
        "level above scale range",
        b'{"b":1,"d":"x","f":0,"k":9,"n":2,"s":0,"t":"press","up":0,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "bad_field",
    ),
    (
        "bool as int",
        b'{"b":true,"d":"x","f":0,"k":1,"n":2,"s":0,"t":"press","up":0,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "bad_field",
    ),
    (
        "non-ascii device",
        '{"b":1,"d":"箱","f":0,"k":1,"n":2,"s":0,"t":"press","up":0,"v":1,"mac":"'.encode() + b"0" * 64 + b'"}',
        "bad_field",
    ),
    (
        "unknown field",
        b'{"b":1,"d":"x","f":0,"k":1,"n":2,"s":0,"t":"press","up":0,"v":1,"zz":1,"mac":"' + b"0" * 64 + b'"}',
        "unknown_field",
    ),
    ("oversize", b"{" + b" " * 1100 + b'"mac":"' + b"0" * 64 + b'"}', "oversize"),
    ("uppercase mac", b'{"d":"x","t":"press","v":1,"mac":"' + b"A" * 64 + b'"}', "no_mac"),
    (
        "firmware chunk not base64",
        b'{"d":"x","id":"3f9a0c51d2e47b86","off":0,"t":"fwc","v":1,"x":"RVZ*MQ==","mac":"' + b"0" * 64 + b'"}',
        "bad_field",
    ),  # fmt: skip
    (
        "firmware chunk over 256 bytes",
        b'{"d":"x","id":"3f9a0c51d2e47b86","off":0,"t":"fwc","v":1,"x":"'
        + b"A" * 348
        + b'","mac":"'
        + b"0" * 64
        + b'"}',
        "bad_field",
    ),  # fmt: skip
    (
        "firmware offer without size",
        b'{"d":"x","id":"3f9a0c51d2e47b86","t":"fwo","v":1,"ver":"1.1.0","mac":"' + b"0" * 64 + b'"}',
        "missing_field",
    ),  # fmt: skip
    (
        "firmware state unknown",
        b'{"d":"x","off":0,"sl":"a","st":"done","sz":0,"t":"fws","tr":false,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "bad_field",
    ),  # fmt: skip
    (
        "firmware state slot c",
        b'{"d":"x","off":0,"sl":"c","st":"ok","sz":0,"t":"fws","tr":false,"v":1,"mac":"' + b"0" * 64 + b'"}',
        "bad_field",
    ),  # fmt: skip
]


def _signed_unchecked(fields: dict[str, object]) -> bytes:
    """Wire bytes signed with ``KEY`` without the schema check (for vectors that must be refused *after*
    a valid signature: the receiver's rule, not a bad mac, refuses them)."""
    from protocol import canon
    from protocol.messages import sign

    body = canon.dumps(fields)
    return body[:-1] + b',"mac":"' + sign(body, str(fields["d"]), KEY).encode() + b'"}'


INVALID.append(
    (
        "level above its scale, correctly signed",
        _signed_unchecked(
            {
                "v": 1,
                "t": "press",
                "d": "BJ-hr-01",
                "b": 3,
                "s": 19,
                "ts": None,
                "up": 2000,
                "o": "A10293",
                "k": 3,
                "n": 2,
                "i": None,
                "tk": None,
                "f": 0,
            }
        ),
        "level_above_scale",
    )
)


def main() -> None:
    vectors = {
        "key_hex": KEY.hex(),
        "rfc4231": [
            {
                "case": c,
                "key_hex": k.hex(),
                "data_hex": d.hex(),
                "mac_hex": hmac.new(k, d, hashlib.sha256).digest()[: t or 32].hex(),
                "truncate": t or 32,
            }
            for c, k, d, t in RFC4231
        ],
        "messages": [],
        "frames": [],
        "invalid": [{"name": n, "wire": w.decode("utf-8"), "reason": r} for n, w, r in INVALID],
    }
    for name, msg in MESSAGES:
        wire = p.encode(msg, KEY)
        vectors["messages"].append({"name": name, "message": msg, "wire": wire.decode()})
    for name, msg in MESSAGES[:3] + [m for m in MESSAGES if m[0] == "firmware chunk, full"]:
        wire = p.encode(msg, KEY)
        vectors["frames"].append({"name": name, "payload": wire.decode(), "frame": p.encode_frame(wire).decode()})
    out = pathlib.Path(__file__).resolve().parents[1] / "protocol" / "vectors.json"
    out.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("wrote", out)


if __name__ == "__main__":
    main()
