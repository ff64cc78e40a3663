"""Limits enforced on decode (see SPEC.md, "Limits")."""

try:
    from micropython import const  # type: ignore[import-not-found]
except ImportError:  # CPython

    def const(x):  # type: ignore[no-untyped-def]
        return x


VERSION = const(1)
MAX_MESSAGE = const(1024)  # bytes of one signed message
MAX_LINE = const(1100)  # bytes of one serial frame line, newline excluded
MAX_ID = const(32)  # device, officer and window ids
MAX_TICKET = const(32)
MAX_TEXT = const(80)  # free text: firmware version, reset cause, errors
MAX_ACK_RANGES = const(64)
MAX_INT = const(0x7FFFFFFF)  # boot, seq, invite numbers, counters
MAX_MS = const(0x7FFFFFFFFFFF)  # wall-clock and uptime milliseconds
MIN_SCALE = const(2)
MAX_SCALE = const(5)
