"""Each MicroPython port's limits and each board's wiring, as data plus checks.

Pure: no ``machine`` import, runs on CPython (the collector's ``evalbox device
add`` validates a box file with it) and on the box. ``problems(cfg)`` lists
what a device config asks of the chip that the chip cannot do, each message
naming the config key and the limit; ``firmware.config.validate`` refuses
the first one.

Sources (MicroPython v1.22-1.28 unless noted):
- rp2 watchdog: ports/rp2/machine_wdt.c, ``WDT_TIMEOUT_MAX`` 8388 ms on RP2040
  (24-bit counter, 2 ticks/us), 16777 ms on RP2350; above it ``machine.WDT``
  raises ``ValueError("timeout exceeds 8388")``.
- esp32 watchdog: ports/esp32/machine_wdt.c, the ESP-IDF task watchdog; the
  timeout is milliseconds (``esp_task_wdt_config_t.timeout_ms``, uint32) and
  docs/library/machine.WDT.rst gives 1 s as the ESP32's minimum; no maximum.
- rp2 GPIO: the RP2040 has GPIO0-29 (RP2350A: 0-29), every one with a pull-up
  (ports/rp2/machine_pin.c); boards/RPI_PICO_W/pins.csv lists GP0-22 and
  GP26-28 only: GPIO23/24/25/29 drive the CYW43 radio (WL_ON, data, CS,
  clock). On the plain Pico they are SMPS power-save, VBUS sense, the
  on-board LED and the VSYS/3 ADC.
- rp2 UART: ports/rp2/machine_uart.c, ``IS_VALID_TX/RX``: UART0 TX on
  GP0/12/16/28 and RX on GP1/13/17/29, UART1 TX on GP4/8/20/24 and RX on
  GP5/9/21/25 (anything else raises ``ValueError("bad TX pin")``); rx/tx
  buffers 32..32766 bytes, default 256 (``DEFAULT_BUFFER_SIZE``).
- esp32 GPIO: docs/esp32/quickref.rst, "Pins and GPIO": GPIO0-19, 21-23,
  25-27, 32-39 exist; 1 and 3 are the REPL's UART0; 6-11 are wired to the
  SPI flash; 34-39 are input-only and have no pull-up (the port does not
  raise, the pin floats: a key there reads random presses). GPIO0 is a
  strapping pin: held low at power-up the chip enters its ROM download mode.
- reset causes: ports/rp2/modmachine.c (PWRON_RESET=1, WDT_RESET=3; and
  ``machine.reset()`` reboots through the watchdog, so it reads as
  WDT_RESET), ports/esp32/modmachine.c (PWRON 1, HARD 2, WDT 3, DEEPSLEEP 4,
  SOFT 5; ``machine.reset()`` and a panic read as SOFT).
- RTC epoch: 2000-01-01 on both (docs/library/time.rst: "some embedded ports
  use epoch of 2000"; ``time.gmtime(0)[0]`` tells), 1970 on the unix port.
- sockets: ESP-IDF's ``CONFIG_LWIP_MAX_SOCKETS`` defaults to 10; the rp2
  port's lwIP (ports/rp2/lwip_inc/lwipopts.h) keeps lwIP's default of 5 TCP
  PCBs (``MEMP_NUM_TCP_PCB``). A box needs one; every other one leaks.
"""

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass

FEED_EVERY_MS = 1000  # the supervisor's cadence: it feeds the watchdog once a second
MARGIN_MS = 2000  # a blocking step must leave two feed periods of the watchdog unused
MIN_RXBUF = 1024  # one burst of acks (about 5 frames) while the loop is busy for ~90 ms at 115200 baud
DEFAULT_RXBUF = 4096  # the ports' default of 256 dropped 10-12% of the acks during a flush


def _span(lo: int, hi: int) -> "tuple[int, ...]":
    return tuple(range(lo, hi + 1))


def _rp2_uart_ok(uart_id: int, pin: int, role: int) -> bool:
    # ports/rp2/machine_uart.c: IS_VALID_TX (role 0) / IS_VALID_RX (role 1)
    return (pin & 3) == role and (((pin + 4) & 8) >> 3) == uart_id


PORTS: "dict[str, dict[str, Any]]" = {
    "rp2040": {
        "wdt_max_ms": 8388,
        "wdt_min_ms": 1,
        "gpio": _span(0, 29),
        "no_pull_up": (),
        "input_only": (),
        "uart_ids": (0, 1),
        "rxbuf": (32, 32766),
        "reset_causes": {1: "power_on", 3: "watchdog"},
        "epoch": 2000,
        "tcp_sockets": 5,
    },
    "esp32": {
        "wdt_max_ms": None,  # uint32 ms in ESP-IDF; no limit the firmware could reach
        "wdt_min_ms": 1000,
        "gpio": _span(0, 19) + (21, 22, 23, 25, 26, 27) + _span(32, 39),
        "no_pull_up": _span(34, 39),
        "input_only": _span(34, 39),
        "uart_ids": (1, 2),  # UART0 is the REPL on GPIO1/3
        "rxbuf": (260, 32766),  # the ESP-IDF driver wants more than its 128-byte FIFO
        "reset_causes": {1: "power_on", 2: "hard", 3: "watchdog", 4: "deepsleep", 5: "soft"},
        "epoch": 2000,
        "tcp_sockets": 10,
    },
}
PORTS["rp2350"] = dict(PORTS["rp2040"], wdt_max_ms=16777)  # the same rp2 port; the watchdog counts 1 tick/us

_PICO_PINS = {"keys": [2, 3, 4, 5, 6], "invite": 7, "led_ok": 10, "led_bad": 11, "led_busy": 12, "buzzer": 13}
_CYW43 = {
    23: "the CYW43 radio's WL_ON",
    24: "the CYW43 radio's data line",
    25: "the CYW43 radio's chip select",
    29: "the CYW43 radio's clock",
}
_PICO_BOARD = {23: "the SMPS power-save control", 24: "VBUS sense", 29: "the VSYS/3 ADC"}

# board -> port, default wiring, pins the board itself uses, radio, and the data channel's default
BOARDS: "dict[str, dict[str, Any]]" = {
    "esp32": {
        "port": "esp32",
        "pins": {"keys": [32, 33, 25, 26, 27], "invite": 14, "led_ok": 18, "led_bad": 19, "led_busy": 21, "buzzer": 23},
        "reserved": {
            1: "UART0 TX (the REPL)",
            3: "UART0 RX (the REPL)",
            6: "the SPI flash",
            7: "the SPI flash",
            8: "the SPI flash",
            9: "the SPI flash",
            10: "the SPI flash",
            11: "the SPI flash",
        },
        "no_key": {0: "a strapping pin: held low at power-up the ESP32 starts its ROM download mode"},
        "out_only": {},
        "wifi": True,
        "uart": {"id": 2, "tx": 17, "rx": 16},
    },
    "picow": {
        "port": "rp2040",
        "pins": _PICO_PINS,
        "reserved": _CYW43,
        "no_key": {},
        "out_only": {},
        "wifi": True,
        "uart": {"id": 0, "tx": 0, "rx": 1},
    },
    "pico": {
        "port": "rp2040",
        "pins": _PICO_PINS,
        "reserved": _PICO_BOARD,
        "no_key": {},
        "out_only": {25: "the on-board LED"},
        "wifi": False,
        "uart": {"id": "usb"},  # the USB CDC port (also the REPL: see the maintenance path)
    },
}
# the Pico 2 boards: the same wiring on the RP2350
BOARDS["pico2w"] = dict(BOARDS["picow"], port="rp2350")
BOARDS["pico2"] = dict(BOARDS["pico"], port="rp2350")
OUTPUTS = ("led_ok", "led_bad", "led_busy", "buzzer")


def board_pins(board: str, override: "dict[str, Any] | None") -> "dict[str, Any]":
    """The board's default wiring with the config's ``pins`` laid over it."""
    pins = dict(BOARDS[board]["pins"])
    pins.update(override or {})
    return pins


def board_uart(board: str, override: "dict[str, Any] | None") -> "dict[str, Any]":
    """The data channel's UART settings: board default, then the config's ``uart``."""
    u = dict(BOARDS[board]["uart"])
    if override and "id" in override and override["id"] != u.get("id"):
        u = {}  # another UART: the default pins belong to the default one
    u.update(override or {})
    if u.get("id") != "usb":
        u.setdefault("baud", 115200)
        u.setdefault("rxbuf", DEFAULT_RXBUF)
    return u


def wdt_limit(board: str) -> "tuple[int, int | None]":
    """(min, max) watchdog timeout in ms on the board's port (max None: no limit)."""
    port = PORTS[BOARDS[board]["port"]]
    return port["wdt_min_ms"], port["wdt_max_ms"]


def _gpio_problem(board: str, key: str, pin: "Any", role: str) -> "str | None":
    """Why ``pin`` cannot serve as ``role`` ("key", "out", "rx", "tx") on the board, or None."""
    b = BOARDS[board]
    pname = b["port"]
    port = PORTS[pname]
    if type(pin) is not int:
        return "%s: %r is not a GPIO number" % (key, pin)
    if pin not in port["gpio"]:
        return "%s: GPIO%d does not exist on the %s (GPIO %s)" % (key, pin, pname, _ranges(port["gpio"]))
    if pin in b["reserved"]:
        return "%s: GPIO%d is wired to %s on the %s board" % (key, pin, b["reserved"][pin], board)
    if pin in b["out_only"] and role != "out":
        return "%s: GPIO%d is %s on the %s board (outputs only)" % (key, pin, b["out_only"][pin], board)
    if role == "key":
        if pin in port["no_pull_up"]:
            return "%s: GPIO%d has no pull-up on the %s (GPIO %s are input-only without pull-ups); a key needs one" % (
                key,
                pin,
                pname,
                _ranges(port["no_pull_up"]),
            )
        if pin in b["no_key"]:
            return "%s: GPIO%d is %s" % (key, pin, b["no_key"][pin])
    if role in ("out", "tx") and pin in port["input_only"]:
        return "%s: GPIO%d is input-only on the %s (GPIO %s)" % (key, pin, pname, _ranges(port["input_only"]))
    return None


def _ranges(pins: "tuple[int, ...]") -> str:
    out = []
    start = prev = pins[0]
    for p in pins[1:] + (-2,):
        if p != prev + 1:
            out.append(str(start) if start == prev else "%d-%d" % (start, prev))
            start = p
        prev = p
    return ", ".join(out)


def pin_problems(board: str, pins: "dict[str, Any]", uart: "dict[str, Any] | None") -> "list[str]":
    """Pins the chip lacks, keys without pull-ups, and pins used twice (keys, lights, UART)."""
    out = []
    used: "dict[int, str]" = {}

    def use(key: str, pin: "Any", role: str) -> None:
        bad = _gpio_problem(board, key, pin, role)
        if bad:
            out.append(bad)
            return
        if pin in used:
            out.append("%s: GPIO%d is also %s" % (key, pin, used[pin]))
            return
        used[pin] = key

    keys = pins.get("keys")
    if type(keys) is not list or not 2 <= len(keys) <= 5:
        out.append("pins.keys: %r (a list of 2 to 5 GPIO numbers, level 1 first)" % (keys,))
        keys = []
    for n, pin in enumerate(keys):
        use("pins.keys[%d]" % n, pin, "key")
    use("pins.invite", pins.get("invite"), "key")
    for name in OUTPUTS:
        if pins.get(name) is not None:
            use("pins." + name, pins[name], "out")
    for name in pins:
        if name not in ("keys", "invite") + OUTPUTS:
            out.append("pins.%s: unknown pin name (keys, invite, %s)" % (name, ", ".join(OUTPUTS)))
    if uart is not None:
        out += _uart_problems(board, uart, use)
    return out


def _uart_problems(board: str, u: "dict[str, Any]", use: "Any") -> "list[str]":
    pname = BOARDS[board]["port"]
    port = PORTS[pname]
    uid: "Any" = u.get("id")
    for name in u:
        if name not in ("id", "tx", "rx", "baud", "rxbuf"):
            return ["uart.%s: unknown key (id, tx, rx, baud, rxbuf)" % name]
    if uid == "usb":
        if BOARDS[board]["wifi"] or len(u) > 1:
            return ['uart.id: "usb" (the USB CDC port) is the data channel of the plain Pico boards only, alone']
        return []
    if uid not in port["uart_ids"]:
        ids = ", ".join(str(i) for i in port["uart_ids"])
        return ["uart.id: %r is not a data UART on the %s (%s)" % (uid, pname, ids)]
    out = []
    for role, name in ((1, "rx"), (0, "tx")):
        pin = u.get(name)
        if pin is None:
            out.append("uart.%s: missing (UART%d's pins must be given on the %s)" % (name, uid, board))
            continue
        if pname.startswith("rp2") and type(pin) is int and not _rp2_uart_ok(uid, pin, role):
            ok = [p for p in port["gpio"] if _rp2_uart_ok(uid, p, role)]
            out.append(
                "uart.%s: GP%d cannot be UART%d %s on the %s (GP%s)"
                % (name, pin, uid, name.upper(), pname, "/".join(str(p) for p in ok))
            )
            continue
        use("uart." + name, pin, name)
    baud = u.get("baud")
    if type(baud) is not int or not 1200 <= baud <= 3000000:
        out.append("uart.baud: %r (1200..3000000)" % (baud,))
    rxbuf = u.get("rxbuf")
    lo, hi = port["rxbuf"]
    lo = max(lo, MIN_RXBUF)
    if type(rxbuf) is not int or not lo <= rxbuf <= hi:
        out.append("uart.rxbuf: %r outside %d..%d bytes on the %s" % (rxbuf, lo, hi, pname))
    return out


def timing_problems(board: str, cfg: "dict[str, Any]") -> "list[str]":
    """The watchdog within the port's limits; every blocking timeout inside the watchdog."""
    lo, hi = wdt_limit(board)
    wdt = cfg["watchdog_ms"]
    pname = BOARDS[board]["port"]
    if hi is not None and wdt > hi:
        return ["watchdog_ms: %d above the %s watchdog limit of %d ms (%s board)" % (wdt, pname, hi, board)]
    floor = max(lo, 2 * MARGIN_MS)
    if wdt < floor:
        return ["watchdog_ms: %d below %d ms (the %s's minimum and two feed periods of margin)" % (wdt, floor, pname)]
    budget = wdt - MARGIN_MS
    if cfg["transport"] == "mqtt" and cfg["connect_timeout_ms"] > budget:
        return [
            "connect_timeout_ms: %d above watchdog_ms - %d = %d ms (a connect attempt must fit inside the watchdog)"
            % (cfg["connect_timeout_ms"], MARGIN_MS, budget)
        ]
    return []


def problems(cfg: "dict[str, Any]") -> "list[str]":
    """Everything ``cfg`` (a config with defaults filled in) asks that its board cannot do."""
    board = cfg["board"]
    if board not in BOARDS:
        return []  # the sim board: no silicon
    out = timing_problems(board, cfg)
    uart = board_uart(board, cfg["uart"]) if cfg["transport"] == "serial" else None
    out += pin_problems(board, board_pins(board, cfg["pins"]), uart)
    if cfg["transport"] == "mqtt" and not BOARDS[board]["wifi"]:
        out.append("transport: mqtt needs a radio; the %s board has none (use serial)" % board)
    return out


def reset_cause_name(board: str, code: int) -> str:
    """The port's ``machine.reset_cause()`` code as a name (``unknown`` if the port has no such code)."""
    name: str = PORTS[BOARDS[board]["port"]]["reset_causes"].get(code, "unknown")
    return name
