"""Install a received release, or apply a key rotation, at boot: before the app is imported.

``firmware/ota.py`` receives a release into ``fw/rx`` while the app runs;
with the last byte in, it renames it to ``fw/new`` (``fw/key.new`` for a key
rotation statement) and resets. At the next power-up ``slots.boot`` finds
it and runs ``pending`` from the firmware that is running now, *before*
the app is imported: the check (the Ed25519 verifier, the manifest, every
file's SHA-256) gets the whole heap instead of what the app leaves (on a
160 KB heap a running app leaves too little for it), and no press can
arrive while the box is busy. A refusal is written to the boot pointer
(``st`` ``refused``, ``why``) and reported by the app when it is up; an
accepted release is copied into the idle slot, ``fw/new`` removed, and the
pointer switched to the slot on trial: this boot already runs it. The
watchdog is not running yet (the boards start it at their first feed).

Order against power cuts: the slot's files, its ``release.json`` last,
then ``fw/new`` removed, then the pointer switched. A cut before the switch
leaves the old firmware booting (the collector offers the release again);
``fw/new`` is never installed twice.
"""

import json
import os
from binascii import hexlify, unhexlify

from firmware import slots
from firmware.outbox import _mkdir, _remove, read_file, write_atomic

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

CHUNK = 1024  # bytes copied (and hashed) per step


def _rmtree(path: str) -> "Any":
    """Remove ``path`` and everything under it, one entry per step."""
    try:
        names = [e[0] for e in os.ilistdir(path)]
    except OSError:
        _remove(path)
        return
    for n in names:
        yield from _rmtree(path + "/" + n)
        yield None
    try:
        os.rmdir(path)
    except OSError:
        pass


def _makedirs(path: str) -> None:
    at = ""
    for part in path.split("/"):
        if part:
            at += "/" + part
            _mkdir(at)


def install_steps(root: str, rx: str, m: "dict[str, Any]", slot: str) -> "Any":
    """Copy the checked release ``rx`` into ``slot`` (emptied first), its ``release.json`` last."""
    d = slots.slot_dir(root, slot)
    yield from _rmtree(d)
    _makedirs(d)
    import hashlib

    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(rx, "rb") as f:
        head = f.read(8)
        body = 72 + int.from_bytes(head[4:8], "little")
        for entry in m["files"]:
            path = d + "/" + entry["path"]
            _makedirs(path.rsplit("/", 1)[0])
            f.seek(body + entry["offset"])
            h = hashlib.sha256()
            left = entry["size"]
            with open(path, "wb") as out:
                while left:
                    got = f.readinto(mv[: min(CHUNK, left)])
                    if not got:
                        raise OSError("release ends inside %s" % entry["path"])
                    out.write(mv[:got])
                    h.update(mv[:got])
                    left -= got
                    yield None
            if hexlify(h.digest()).decode() != entry["sha256"]:
                raise OSError("%s read back wrong" % entry["path"])
    info = {"ver": m["version"], "board": m["board"], "floor": m["min_version"], "files": len(m["files"])}
    write_atomic(d + "/release.json", json.dumps(info).encode())


def _exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _note(root: str, st: "str | None", why: "str | None", rid: "str | None" = None) -> None:
    """Keep in the pointer what the app reports when it is up (``news``: report even without an error)."""
    ptr = slots.read(root)
    ptr["st"] = st or ptr.get("st")
    ptr["why"] = why[:80] if why else None
    ptr["news"] = 1
    if rid is not None:
        ptr["rid"] = rid
    slots.write(root, ptr)


def rotate_key(root: str, cfg: "dict[str, Any]") -> None:
    """Apply (or refuse, noting why) a key rotation statement waiting in ``fw/key.new``."""
    from firmware import keyrot

    path = slots.fwdir(root) + "/key.new"
    data = read_file(path)
    if data is None:
        return
    key, seq = slots.trusted_key(root, cfg.get("release_pubkey"))
    try:
        body = keyrot.accept(data, key, seq)
        write_atomic(slots.fwdir(root) + "/key", json.dumps({"key": body["new"], "seq": body["seq"]}).encode())
        why = None
    except keyrot.RotationError as exc:
        why = "refused key rotation: %s: %s" % (exc.reason, exc.detail)
    _remove(path)
    _note(root, None, why)


def install_release(root: str, cfg: "dict[str, Any]") -> None:
    """Check the release waiting in ``fw/new`` as this box; install it in the idle slot and switch, or refuse."""
    from firmware import release

    new = slots.fwdir(root) + "/new"
    if not _exists(new):
        return
    try:
        rid = json.loads(read_file(new + ".id") or b"[null]")[0]
    except ValueError:
        rid = None
    ptr = slots.read(root)
    pub = slots.trusted_key(root, cfg.get("release_pubkey"))[0]
    try:
        if not pub:
            raise release.ReleaseError("no_key", "this box has no release public key (release_pubkey)")
        m = release.verify_release(new, unhexlify(pub), release.BoxState(cfg["board"], ptr["floor"]))
        slot = slots.inactive(ptr)
        for _ in install_steps(root, new, m, slot):
            pass
    except release.ReleaseError as exc:
        _remove(new)
        _remove(new + ".id")
        _note(root, "refused", "refused: %s: %s" % (exc.reason, exc.detail), rid)
        return
    except (OSError, ValueError) as exc:
        _remove(new)
        _remove(new + ".id")
        _note(root, "refused", "install failed: %s" % exc, rid)
        return
    _remove(new)
    _remove(new + ".id")
    slots.switch(root, slot, m["version"], rid)


def pending(root: str, cfg: "dict[str, Any]") -> None:
    """Everything an update left for this boot: a key rotation first, then a release."""
    rotate_key(root, cfg)
    install_release(root, cfg)
