"""Run one simulated box on the MicroPython unix port.

    MICROPYPATH=<repo>:.frozen micropython <repo>/firmware/sim.py box.json

Prints ``EVALBOX-SIM READY control=<port> boot=<boot>`` once the control
channel listens. A bad config prints one ``config error: ...`` line on
stderr and exits with status 2.
"""

import sys

# Let `micropython firmware/sim.py` work without MICROPYPATH: the repo root is
# the parent of this file's directory.
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_root = _here.rsplit("/", 1)[0] if "/" in _here else ".."
if _root not in sys.path:
    sys.path.insert(0, _root)


def main(argv: "list[str]") -> int:
    import asyncio

    from firmware.app import App
    from firmware.boards.sim import SimBoard
    from firmware.config import ConfigError, load

    if len(argv) != 2:
        sys.stderr.write("usage: sim.py box.json\n")
        return 2
    try:
        cfg = load(argv[1])
        if cfg["board"] != "sim":
            raise ConfigError("board: %r, this launcher runs the sim board" % cfg["board"])
    except ConfigError as exc:
        sys.stderr.write("config error: %s\n" % exc)
        return 2
    board = SimBoard(cfg)
    try:
        root = board.mount_flash()
    except OSError as exc:
        sys.stderr.write("flash error: %s: %s\n" % (cfg["flash"], exc))
        return 2
    app = App(cfg, board, root)
    boot = app.start()
    if cfg["transport"] == "mqtt":
        from firmware.mqtt import MqttLink

        link: "object" = MqttLink(cfg)
    else:
        from firmware.serial_link import SerialLink

        link = SerialLink(board.open_serial())
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
