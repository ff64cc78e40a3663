"""Run one simulated box on the MicroPython unix port.

    MICROPYPATH=<repo>:.frozen micropython <repo>/firmware/sim.py box.json

Prints ``EVALBOX-SIM READY control=<port> boot=<boot>`` once the control
channel listens. A bad config prints one ``config error: ...`` line on
stderr and exits with status 2.
"""

import sys

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

# Let `micropython firmware/sim.py` work without MICROPYPATH: the repo root is
# the parent of this file's directory.
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_root = _here.rsplit("/", 1)[0] if "/" in _here else ".."
if _root not in sys.path:
    sys.path.insert(0, _root)


def _config(path: str) -> "dict | None":
    """The checked box.json, or None after the one ``config error`` line."""
    from firmware.config import ConfigError, load

    try:
        cfg = load(path)
        if cfg["board"] != "sim":
            raise ConfigError("board: %r, this launcher runs the sim board" % cfg["board"])
    except ConfigError as exc:
        sys.stderr.write("config error: %s\n" % exc)
        return None
    return cfg


def _unload(*names: str) -> None:
    """Forget modules only start-up needs (the config checks, the ports table): their code is freed."""
    import firmware

    for name in names:
        sys.modules.pop("firmware." + name, None)
        try:
            delattr(firmware, name)
        except (AttributeError, KeyError):  # not imported again since the boot forgot it
            pass


def main(argv: "list[str]") -> int:
    import asyncio
    import gc

    if len(argv) != 2:
        sys.stderr.write("usage: sim.py box.json\n")
        return 2
    cfg = _config(argv[1])
    if cfg is None:
        return 2
    from firmware.boards.sim import SimBoard

    # the running box needs neither the config checks nor the real boards' ports table (~18 KB)
    _unload("config", "ports")
    board = SimBoard(cfg)
    try:
        root = board.mount_flash()
    except OSError as exc:
        sys.stderr.write("flash error: %s: %s\n" % (cfg["flash"], exc))
        return 2
    # the firmware slot (firmware/slots.py): what follows is imported from it. The board (keys,
    # lights, the flash file) stays the launcher's, as a real board's main.py keeps its own.
    from firmware import slots

    fw = slots.boot(root, board.reset_cause(), cfg)
    del slots  # the boot's modules are forgotten (slots.activate): let them go
    gc.collect()
    # Every module is imported before the outbox and the app allocate anything:
    # in a small heap, code loaded last has to fit between their blocks.
    from firmware.app import App

    Link: "Any"
    if cfg["transport"] == "mqtt":
        from firmware.mqtt import MqttLink as Link
    else:
        from firmware.serial_link import SerialLink as Link
    _unload("ports")  # again: the app imported it for one constant
    gc.collect()
    app = App(cfg, board, root)
    app.fw = fw
    boot = app.start()
    if cfg["transport"] == "mqtt":
        link: "object" = Link(cfg)
    else:
        link = Link(board.open_serial())
    try:
        board.listen()
    except OSError as exc:
        sys.stderr.write("control channel error: port %d: %s\n" % (cfg["control_port"], exc))
        return 2
    board.ready(boot)
    asyncio.run(app.run(link))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
