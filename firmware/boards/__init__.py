"""Boards: the only code that touches ``machine`` and ``network``.

A board provides: ``mount_flash() -> root``, ``self_test() -> str``,
``feedback(kind, k)``, ``show_full(bool)``, ``feed_watchdog()``,
``rssi() -> int | None``, ``reset_cause() -> str``, ``async network_up()``,
``open_serial()`` (serial transport) and ``async run(app)`` (the key task).
"""
