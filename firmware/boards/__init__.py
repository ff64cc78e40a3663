"""Boards: the only code that touches ``machine`` and ``network``.

A board provides: ``mount_flash() -> root``, ``self_test() -> str``,
``feedback(kind, k)``, ``show_full(bool)``, ``feed_watchdog()``,
``rssi() -> int | None``, ``reset_cause() -> str``, ``async network_up()``,
``open_serial()`` (serial transport) and ``async run(app)`` (the key task);
the real boards also ``online() -> bool`` (radio joined) and
``maintenance_requested() -> bool`` (the invite key held at power-up).

Real boards: ``esp32`` (``esp32.py``), ``picow``/``pico2w`` (``picow.py``),
``pico``/``pico2`` (``pico.py``, no radio), all on ``pins.py`` (the Wi-Fi
ones on ``wifi.py``); their ports' limits and default wiring are in
``firmware/ports.py``. ``sim`` runs on the unix port.
"""


def board_class(name: str) -> "type":
    """The class of a real board by its config name (imports only that board's modules)."""
    if name == "esp32":
        from firmware.boards.esp32 import Esp32Board

        return Esp32Board
    if name in ("picow", "pico2w"):
        from firmware.boards.picow import PicoWBoard

        return PicoWBoard
    if name in ("pico", "pico2"):
        from firmware.boards.pico import PicoBoard

        return PicoBoard
    raise ValueError("board %r does not run on hardware" % name)
