"""A/B firmware slots on the box's littlefs, and the boot pointer that picks one.

Layout under the flash root (beside the outbox's ``ob/``, never inside it)::

    fw/boot          the boot pointer: JSON, replaced by write-then-rename (a cut leaves old or new)
    fw/a/, fw/b/     the two slots: firmware/ and protocol/ as a release holds them, and
                     release.json (version, board, floor) written LAST: a slot without it is incomplete
    fw/rx, fw/rx.id  a release being received (firmware/ota.py)
    fw/new, fw/new.id, fw/key.new
                     waiting for the next boot: ``boot`` runs firmware/install.py on them first
    fw/key           the release key a rotation set (firmware/keyrot.py)

Slot ``""`` is the base install: the ``/firmware`` and ``/protocol`` that
``tools/deploy_box.sh`` copied by USB. It is never written by an update, so
it is always there to fall back to.

The pointer (``fw/boot``)::

    {"run": "b", "ver": "1.3.0", "prev": "a", "pver": "1.2.0", "trial": 1, "boots": 1,
     "floor": "1.2.0", "why": null}

``run`` is the slot that boots, ``prev`` the one a failed trial goes back
to. ``trial`` 1: the slot was just installed and has not yet passed its
self-test; every boot in trial is counted *before* the app runs. A trial
rolls back (``prev`` boots, ``why`` says why) when

- the box resets ``TRIAL_BOOTS`` times in trial (a crash loop: a crash, a
  power cut or a reset before the self-test passed), or
- a boot in trial finds a watchdog reset with no crash note (the app hung), or
- the app's self-test fails or does not pass within the trial time
  (``firmware/ota.py`` calls ``rollback``).

``boot`` runs before any other firmware module (the device's ``/main.py``,
or ``firmware/sim.py``): it picks the slot, puts it first on ``sys.path`` and
forgets every ``firmware``/``protocol`` module already imported, so the app
is imported from the slot. This module comes from the base install and is
deliberately small and stable: the pointer's format is its contract with
every release.
"""

import json
import os
import sys

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

TRIAL_BOOTS = 3  # boots in trial (the install's own reset is the first) before it counts as a crash loop
SLOTS = ("a", "b")
BASE = ""  # the base install (USB)


def fwdir(root: str) -> str:
    return root + "/fw"


def slot_dir(root: str, slot: str) -> str:
    return "%s/fw/%s" % (root, slot)


def _blank() -> "dict[str, Any]":
    return {
        "run": BASE, "ver": None, "prev": BASE, "pver": None, "trial": 0, "boots": 0, "floor": "0.0.0",
        "why": None, "st": None, "rid": None, "news": 0,
    }  # fmt: skip


def read(root: str) -> "dict[str, Any]":
    """The boot pointer; a fresh box (or an unreadable pointer) boots the base install."""
    ptr = _blank()
    try:
        with open(fwdir(root) + "/boot") as f:
            got = json.loads(f.read())
        if type(got) is dict and got.get("run") in SLOTS + (BASE,):
            ptr.update(got)
    except (OSError, ValueError):
        pass
    return ptr


def write(root: str, ptr: "dict[str, Any]") -> None:
    """Replace the pointer: written to ``boot.tmp``, then renamed over ``boot`` (atomic on littlefs)."""
    from firmware.outbox import _mkdir, write_atomic

    _mkdir(fwdir(root))
    write_atomic(fwdir(root) + "/boot", json.dumps(ptr).encode())


def installed(root: str, slot: str) -> "dict[str, Any] | None":
    """The slot's release.json (version, board, floor) if the slot is complete, else None."""
    if slot == BASE:
        return {}
    try:
        with open(slot_dir(root, slot) + "/release.json") as f:
            got = json.loads(f.read())
        return got if type(got) is dict else None
    except (OSError, ValueError):
        return None


def inactive(ptr: "dict[str, Any]") -> str:
    """The slot an update may overwrite: never the one running."""
    return "b" if ptr["run"] == "a" else "a"


def rollback(ptr: "dict[str, Any]", why: str) -> "dict[str, Any]":
    """The pointer after giving up on ``run``: ``prev`` boots again, out of trial, ``why`` kept."""
    bad = ptr["ver"] or "?"
    ptr["run"] = ptr["prev"]
    ptr["ver"] = ptr["pver"]
    ptr["prev"] = BASE
    ptr["pver"] = None
    ptr["trial"] = 0
    ptr["boots"] = 0
    ptr["why"] = ("rolled back from %s: %s" % (bad, why))[:80]
    ptr["st"] = "rolled_back"
    ptr["news"] = 1  # reported once by the app (firmware/ota.py), then cleared
    return ptr


def switch(root: str, slot: str, version: str, rid: "str | None" = None) -> "dict[str, Any]":
    """Point the next boot at the freshly installed ``slot``, in trial; the running slot becomes ``prev``.

    ``rid``: the release's id, kept (as ``rid``) so an offer of the same release again, whether it
    commits or rolls back, is answered with the box's state and not taken a second time."""
    ptr = read(root)
    if ptr["trial"]:  # a trial that never passed is not a version to fall back to
        ptr = rollback(ptr, "superseded")
    ptr["prev"] = ptr["run"]
    ptr["pver"] = ptr["ver"]
    ptr["run"] = slot
    ptr["ver"] = version
    ptr["trial"] = 1
    ptr["boots"] = 0
    ptr["why"] = None
    ptr["st"] = None
    if rid is not None:
        ptr["rid"] = rid
    write(root, ptr)
    return ptr


def commit(root: str, floor: "str | None") -> "dict[str, Any]":
    """The trial passed: the running slot is the box's version; its floor (if higher) becomes the box's."""
    ptr = read(root)
    ptr["trial"] = 0
    ptr["boots"] = 0
    if floor and _vt(floor) > _vt(ptr["floor"]):
        ptr["floor"] = floor
    write(root, ptr)
    return ptr


def _vt(v: str) -> "tuple[int, ...]":
    return tuple(int(x) for x in v.split("."))


def decide(root: str, cause: str, crashed: bool) -> "dict[str, Any]":
    """Pick the slot for this boot (counting a trial boot, rolling back) and persist the pointer."""
    ptr = read(root)
    before = json.dumps(ptr)
    if installed(root, ptr["run"]) is None:
        ptr = rollback(ptr, "slot %s incomplete" % ptr["run"])
    if ptr["trial"]:
        ptr["boots"] += 1
        if cause == "watchdog" and ptr["boots"] > 1 and not crashed:
            ptr = rollback(ptr, "watchdog reset during trial")
        elif ptr["boots"] > TRIAL_BOOTS:
            ptr = rollback(ptr, "crash loop: %d resets during trial" % (ptr["boots"] - 1))
    if installed(root, ptr["run"]) is None:  # the fallback is gone too: the base install always boots
        ptr = rollback(ptr, "slot %s incomplete" % ptr["run"])
    if json.dumps(ptr) != before:
        write(root, ptr)
    return ptr


def activate(root: str, slot: str) -> None:
    """Make ``import firmware...`` load from ``slot``: first on ``sys.path``, loaded modules forgotten."""
    for s in SLOTS:
        d = slot_dir(root, s)
        while d in sys.path:
            sys.path.remove(d)
    if slot != BASE:
        sys.path.insert(0, slot_dir(root, slot))
    for name in list(sys.modules):
        if name in ("firmware", "protocol") or name.startswith(("firmware.", "protocol.")):
            mod = sys.modules.pop(name)
            if name in ("firmware", "protocol", "firmware.boards"):
                # a package keeps its submodules as attributes: drop them, so what only the boot
                # used (the config checks, this module) is freed, not kept beside the slot's copies
                for attr in [a for a in dir(mod) if not a.startswith("__")]:
                    try:
                        delattr(mod, attr)
                    except (AttributeError, KeyError, TypeError):
                        pass


def trusted_key(root: str, provisioned: "str | None") -> "tuple[str | None, int]":
    """The release public key the box trusts (hex) and the key rotation that set it (0: as provisioned)."""
    try:
        with open(fwdir(root) + "/key") as f:
            got = json.loads(f.read())
        return str(got["key"]), int(got["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return provisioned, 0


def _waiting(root: str) -> bool:
    for name in ("/new", "/key.new"):
        try:
            os.stat(fwdir(root) + name)
            return True
        except OSError:
            pass
    return False


def _install(root: str, cfg: "dict[str, Any]") -> None:
    """Run the running firmware's installer (firmware/install.py) on what an update left for this boot."""
    activate(root, read(root)["run"])
    try:
        from firmware import install

        install.pending(root, cfg)
    except Exception as exc:  # never a box that cannot boot: what was waiting goes, the reason stays
        for name in ("/new", "/new.id", "/key.new"):
            try:
                os.remove(fwdir(root) + name)
            except OSError:
                pass
        ptr = read(root)
        ptr["st"] = "refused"
        ptr["why"] = ("install failed: %r" % (exc,))[:80]
        write(root, ptr)


def boot(root: str, cause: str = "power_on", cfg: "dict[str, Any] | None" = None) -> "dict[str, Any]":
    """At power-up: install what an update left, decide the slot, activate it; the pointer (the app reports it)."""
    if cfg is not None and _waiting(root):
        _install(root, cfg)
    try:
        os.stat(root + "/crash")  # firmware/main.py's note: the last reset was a crash, not a hang
        crashed = True
    except OSError:
        crashed = False
    try:
        ptr = decide(root, cause, crashed)
    except OSError as exc:  # the flash refused the pointer write: boot what it says, trial counted or not
        ptr = read(root)
        ptr["why"] = ("boot pointer not written: %s" % exc)[:80]
    activate(root, ptr["run"])
    return ptr
