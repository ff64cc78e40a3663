"""Entry point on a real board: the device's ``/main.py`` does ``import firmware.main``.

Boot order:

1. ``/box.json`` is read and checked against the board's port limits; a bad
   config prints one ``config error: <key>: <why>`` line and returns to the
   REPL (no reset loop, mpremote can fix it).
2. Maintenance path: the invite key held down at power-up (all lights on)
   also returns to the REPL before anything else runs, so ``mpremote`` and
   ``tools/deploy_box.sh`` reach a box whose app disabled Ctrl-C.
3. The flash is mounted and ``firmware/slots.py`` picks the firmware slot
   (A/B, or this base install), counting a trial boot and rolling back a
   failed one; the app is then imported from that slot.
4. The app runs. A crash is noted in ``/crash`` (reported as ``err`` in the
   next boot's status: on rp2 ``machine.reset()`` reads back as a watchdog
   reset, so the note is the only trace) and the board resets after 3 s;
   the watchdog resets it if a task stops making progress. The outbox on
   flash survives both.
"""

import sys

CONFIG = "/box.json"
CRASH = "/crash"
RESET_DELAY_MS = 3000  # below the smallest watchdog the config allows (4000 ms)


def _take_crash_note(root: str) -> "str | None":
    try:
        with open(root + CRASH) as f:
            note: str = f.read()
    except OSError:
        return None
    try:
        import os

        os.remove(root + CRASH)
    except OSError:
        pass
    return note


def _write_crash_note(root: str, exc: BaseException) -> None:
    try:
        with open(root + CRASH, "w") as f:
            f.write(("%s: %s" % (type(exc).__name__, exc))[:60])
    except Exception:
        pass  # the flash itself may be what failed: reset anyway


def start() -> None:
    import asyncio
    import time

    from firmware.boards import board_class
    from firmware.config import ConfigError, load

    try:
        cfg = load(CONFIG)
        if cfg["board"] == "sim":
            raise ConfigError("board: 'sim' runs on the unix port (firmware/sim.py), not on hardware")
    except ConfigError as exc:
        print("config error: %s" % exc)
        return
    board = board_class(cfg["board"])(cfg)
    if board.maintenance_requested():
        print("evalbox: maintenance mode (invite key held at power-up): app not started, REPL free")
        return
    root = board.mount_flash()
    from firmware import slots

    fw = slots.boot(root, board.reset_cause(), cfg)
    try:
        from firmware.app import App  # from the slot just picked

        app = App(cfg, board, root)
        app.fw = fw
        app.start()
        note = _take_crash_note(root)
        if note:
            app.report("restarted after a crash: %s" % note)
        if cfg["transport"] == "mqtt":
            from firmware.mqtt import MqttLink

            link: "object" = MqttLink(cfg)
        else:
            from firmware.serial_link import SerialLink

            link = SerialLink(board.open_serial())
        asyncio.run(app.run(link))
    except Exception as exc:
        sys.print_exception(exc)  # type: ignore[attr-defined]
        _write_crash_note(root, exc)
        time.sleep_ms(RESET_DELAY_MS)
        import machine

        machine.reset()


start()
