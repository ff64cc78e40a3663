"""Entry point on a real board: ``import firmware.main`` from the device's ``main.py``.

Reads ``/box.json``; a bad config is printed and the box blinks nothing and
waits (no reset loop). Any crash of the app resets the board after 5 s (the
watchdog would anyway); the outbox on flash survives.
"""

import sys

CONFIG = "/box.json"


def start() -> None:
    import asyncio
    import time

    from firmware.app import App
    from firmware.config import ConfigError, load

    try:
        cfg = load(CONFIG)
    except ConfigError as exc:
        print("config error: %s" % exc)
        return
    if cfg["board"] == "esp32":
        from firmware.boards.esp32 import Esp32Board

        board: "object" = Esp32Board(cfg)
    elif cfg["board"] == "picow":
        from firmware.boards.picow import PicoWBoard

        board = PicoWBoard(cfg)
    else:
        print("config error: board %r does not run on hardware" % cfg["board"])
        return
    app = App(cfg, board, board.mount_flash())  # type: ignore[attr-defined]
    app.start()
    if cfg["transport"] == "mqtt":
        from firmware.mqtt import MqttLink

        link: "object" = MqttLink(cfg)
    else:
        from firmware.serial_link import SerialLink

        link = SerialLink(board.open_serial())  # type: ignore[attr-defined]
    try:
        asyncio.run(app.run(link))
    except Exception as exc:
        sys.print_exception(exc)  # type: ignore[attr-defined]
        time.sleep(5)
        import machine

        machine.reset()


start()
