"""Check a signed firmware release file (``.evr``) on the box: streaming, in bounded RAM.

The format is defined in ``docs/firmware-updates.md``::

    "EVR1" | manifest length N (u32 LE) | Ed25519 signature (64) | manifest (N bytes of JSON) | file bodies

The signature covers ``CONTEXT + SHA-256(magic | N | manifest)``; the
manifest names every file with its size and SHA-256, so the signature
covers every byte of the release. The box checks, in this order, and stops
at the first failure with a ``ReleaseError`` whose ``reason`` is a stable
code: the signature (before the manifest is even parsed), the manifest, the
board, the version floor, the protocol and config formats, the bytecode
version, then every file's SHA-256 read in ``CHUNK``-byte pieces. RAM: the
manifest (at most ``MAX_MANIFEST`` bytes) and one chunk, never the release.

``verify_release`` runs straight through (tests, the collector's
``evalbox firmware verify``); ``averify_release`` gives the asyncio loop a
turn every few milliseconds of work so a box keeps serving presses meanwhile.
"""

import hashlib
import json
import sys
from binascii import hexlify, unhexlify

from firmware import ed25519
from protocol.limits import VERSION as PROTOCOL_VERSION

try:
    from typing import Any, Iterator
except ImportError:  # MicroPython: annotations are not evaluated
    pass

MAGIC = b"EVR1"
CONTEXT = b"evalbox firmware release v1\n"  # the signed message is CONTEXT + SHA-256(magic | N | manifest)
FORMAT = 1  # manifest "format"; a change a box must understand to stay safe bumps it
HEADER = 72  # magic 4, N 4, signature 64
MAX_MANIFEST = 8192  # bytes: ~40 files; what a box holds in RAM while it checks
MAX_FILES = 64
MAX_FILE = 1 << 20  # bytes of one file
CHUNK = 1024  # bytes hashed per read
CONFIG_FORMAT = 1  # the box.json format this firmware reads (firmware/config.py)
BOARDS = ("sim", "esp32", "picow", "pico")
PREFIXES = ("firmware/", "protocol/")
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-./"
_impl = getattr(sys, "implementation", None)
BOX_MPY = getattr(_impl, "_mpy", None)  # this interpreter's .mpy format (None on CPython)
if BOX_MPY is not None:
    BOX_MPY &= 0xFF


class ReleaseError(Exception):
    """A release the box refuses. ``reason`` is a stable code, ``detail`` says what exactly.

    Reasons: ``unreadable``, ``bad_magic``, ``truncated``, ``bad_key``,
    ``bad_signature``, ``bad_manifest``, ``unsupported_format``,
    ``wrong_board``, ``below_min_version``, ``needs_protocol``,
    ``needs_config``, ``mpy_mismatch``, ``bad_hash``, ``trailing_data``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_version(text: "Any") -> "tuple[int, int, int]":
    """``"X.Y.Z"`` (decimal, each 0..65535) as a tuple that compares in release order; ValueError if not."""
    if type(text) is not str or len(text) > 17:
        raise ValueError("version %r: want X.Y.Z" % (text,))
    parts = text.split(".")
    if len(parts) != 3:
        raise ValueError("version %r: want X.Y.Z" % (text,))
    out = []
    for p in parts:
        if not p or len(p) > 5 or not all(c in "0123456789" for c in p) or (len(p) > 1 and p[0] == "0"):
            raise ValueError("version %r: want X.Y.Z with plain decimal numbers" % (text,))
        n = int(p)
        if n > 65535:
            raise ValueError("version %r: numbers up to 65535" % (text,))
        out.append(n)
    return (out[0], out[1], out[2])


def signed_message(head_digest: bytes) -> bytes:
    """What the release key signs: ``CONTEXT`` + SHA-256 of the magic, the length field and the manifest."""
    return CONTEXT + head_digest


def _bad(detail: str) -> ReleaseError:
    return ReleaseError("bad_manifest", detail)


def _int(m: "dict[str, Any]", key: str, lo: int, hi: int) -> int:
    v = m.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise _bad("%s: want an integer %d..%d, got %r" % (key, lo, hi, v))
    return v


def _str(m: "dict[str, Any]", key: str) -> str:
    v = m.get(key)
    if type(v) is not str or not v or len(v) > 64:
        raise _bad("%s: want a short string, got %r" % (key, v))
    return v


def _version(m: "dict[str, Any]", key: str) -> "tuple[int, int, int]":
    try:
        return parse_version(m.get(key))
    except ValueError as exc:
        raise _bad("%s: %s" % (key, exc))


def check_path(path: "Any") -> str:
    """A file path a release may write: under ``firmware/`` or ``protocol/``, plain names, ``.py`` or ``.mpy``."""
    ok = type(path) is str and 0 < len(path) <= 64 and all(c in _PATH_CHARS for c in path)
    if ok:
        ok = path.startswith(PREFIXES) and (path.endswith(".mpy") or path.endswith(".py"))
        for seg in path.split("/"):
            if seg in ("", ".", ".."):
                ok = False
    if not ok:
        raise _bad("file path %r: want firmware/... or protocol/... .py/.mpy, lowercase, no . or .." % (path,))
    return str(path)


def check_manifest(m: "Any") -> "dict[str, Any]":
    """Validate a parsed manifest's fields (format 1); returns it with each file's ``offset`` from the body start.

    Keys a box does not know are ignored; a change it must understand bumps ``format``.
    """
    for _ in _manifest_steps(m):
        pass
    return m  # type: ignore[no-any-return]


def _manifest_steps(m: "Any") -> "Iterator[None]":
    if type(m) is not dict:
        raise _bad("not a JSON object")
    if m.get("format") != FORMAT:
        raise ReleaseError("unsupported_format", "format %r (this box reads %d)" % (m.get("format"), FORMAT))
    version = _version(m, "version")
    if _version(m, "min_version") > version:
        raise _bad("min_version %s above version %s" % (m["min_version"], m["version"]))
    if _str(m, "board") not in BOARDS:
        raise _bad("board %r: not one of %s" % (m["board"], ", ".join(BOARDS)))
    _int(m, "min_protocol", 1, 255)
    _int(m, "min_config", 1, 255)
    _int(m, "mpy", 0, 255)
    _str(m, "built")
    files = m.get("files")
    if type(files) is not list or not 0 < len(files) <= MAX_FILES:
        raise _bad("files: want a list of 1..%d entries" % MAX_FILES)
    seen = set()
    offset = 0
    for f in files:
        yield None
        if type(f) is not dict:
            raise _bad("files: an entry is not an object")
        path = check_path(f.get("path"))
        if path in seen:
            raise _bad("file %s listed twice" % path)
        seen.add(path)
        size = _int(f, "size", 0, MAX_FILE)
        if not _is_hex64(f.get("sha256")):
            raise _bad("file %s: sha256 must be 64 lowercase hex digits" % path)
        f["offset"] = offset
        offset += size


def _is_hex64(v: "Any") -> bool:
    if type(v) is not str or len(v) != 64 or v != v.lower():
        return False
    try:
        unhexlify(v)  # C speed: a Python loop over 64 characters costs ~0.1 ms a file on the box
    except ValueError:
        return False
    return True


def _read(f: "Any", n: int, what: str) -> bytes:
    b = f.read(n)
    if b is None or len(b) != n:
        raise ReleaseError("truncated", "ends inside the %s" % what)
    return b  # type: ignore[no-any-return]


class BoxState:
    """What the box checking a release is: its board, version floor, protocol and config formats, .mpy version.

    ``board``/``floor`` None: not checked (the collector's ``verify`` without
    ``--board``/``--floor``); ``mpy`` None: not checked (CPython).
    """

    def __init__(
        self,
        board: "str | None" = None,
        floor: "str | None" = None,
        protocol: int = PROTOCOL_VERSION,
        config: int = CONFIG_FORMAT,
        mpy: "int | None" = BOX_MPY,
    ) -> None:
        self.board = board
        self.floor = floor
        self.protocol = protocol
        self.config = config
        self.mpy = mpy


def _steps(path: str, public_key: bytes, box: BoxState, out: "list[Any]") -> "Iterator[None]":
    yield from ed25519._key(public_key, out)
    if type(out[0]) is str:
        raise ReleaseError("bad_key", "the trusted release key is unusable (%s)" % out[0])
    out[0] = None
    try:
        with open(path, "rb") as f:
            yield from _check(f, public_key, box, out)
    except OSError as exc:  # missing file, flash read error
        raise ReleaseError("unreadable", "%s: %s" % (path, exc))


def _check(f: "Any", public_key: bytes, box: BoxState, out: "list[Any]") -> "Iterator[None]":
    head = f.read(8)
    if head is None or len(head) < 4 or head[:4] != MAGIC:
        raise ReleaseError("bad_magic", "not an evalbox release file")
    if len(head) < 8:
        raise ReleaseError("truncated", "ends inside the header")
    n = int.from_bytes(head[4:8], "little")
    if not 0 < n <= MAX_MANIFEST:
        raise ReleaseError("bad_manifest", "manifest length %d (1..%d)" % (n, MAX_MANIFEST))
    sig = _read(f, 64, "signature")
    raw = _read(f, n, "manifest")
    h = hashlib.sha256(head)
    h.update(raw)
    res: "list[Any]" = [None]
    yield from ed25519._steps(public_key, signed_message(h.digest()), sig, res)
    if res[0] is not None:
        raise ReleaseError("bad_signature", "not signed by the trusted release key (%s)" % res[0])
    # from here on the manifest is the release key holder's word
    try:
        m = json.loads(raw)
    except ValueError:
        raise _bad("not JSON")
    raw = b""
    yield None
    yield from _manifest_steps(m)
    if box.board is not None and m["board"] != box.board:
        raise ReleaseError("wrong_board", "release for %s, this box is %s" % (m["board"], box.board))
    if box.floor is not None and parse_version(m["version"]) < parse_version(box.floor):
        raise ReleaseError("below_min_version", "version %s is below this box's minimum %s" % (m["version"], box.floor))
    if m["min_protocol"] > box.protocol:
        raise ReleaseError("needs_protocol", "needs protocol %d, this box has %d" % (m["min_protocol"], box.protocol))
    if m["min_config"] > box.config:
        raise ReleaseError("needs_config", "needs config format %d, this box has %d" % (m["min_config"], box.config))
    if box.mpy is not None and m["mpy"] != box.mpy:
        raise ReleaseError("mpy_mismatch", ".mpy version %d, this box loads %d" % (m["mpy"], box.mpy))
    yield None
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    for entry in m["files"]:
        left = entry["size"]
        h = hashlib.sha256()
        while left:
            want = CHUNK if left > CHUNK else left
            got = f.readinto(mv[:want])
            if not got:
                raise ReleaseError("truncated", "ends inside %s" % entry["path"])
            h.update(mv[:got])
            left -= got
            yield None
        if hexlify(h.digest()).decode() != entry["sha256"]:
            raise ReleaseError("bad_hash", "%s does not match its SHA-256" % entry["path"])
    if f.read(1):
        raise ReleaseError("trailing_data", "bytes after the last file")
    out[0] = m


def verify_release(path: str, public_key: bytes, box: "BoxState | None" = None) -> "dict[str, Any]":
    """Check the release at ``path`` as ``box`` (default: any board, no floor, this interpreter) would.

    Returns the manifest (each file with its ``offset`` from the body's
    start) or raises ``ReleaseError``.
    """
    out: "list[Any]" = [None]
    for _ in _steps(path, public_key, box or BoxState(), out):
        pass
    return out[0]  # type: ignore[no-any-return]


async def averify_release(
    path: str, public_key: bytes, box: "BoxState | None" = None, budget_ms: int = ed25519.BUDGET_MS
) -> "dict[str, Any]":
    """``verify_release`` that gives the asyncio loop a turn after every ``budget_ms`` of work."""
    out: "list[Any]" = [None]
    await ed25519.run_sliced(_steps(path, public_key, box or BoxState(), out), budget_ms)
    return out[0]  # type: ignore[no-any-return]
