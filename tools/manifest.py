# Freeze the evalbox firmware into a MicroPython build: the production path.
#
# Frozen bytecode runs from the chip's flash instead of being loaded into RAM
# (tens of KB of heap back on an ESP32 or a Pico W) and starts faster. Build
# MicroPython (v1.22 or newer) with this manifest instead of the board's own:
#
#   git clone https://github.com/micropython/micropython && cd micropython
#   make -C mpy-cross
#   make -C ports/rp2 BOARD=RPI_PICO_W submodules
#   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/evalbox/tools/manifest.py
#        (plain Pico: BOARD=RPI_PICO; Pico 2 W: BOARD=RPI_PICO2_W; then copy build-*/firmware.uf2)
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/evalbox/tools/manifest.py
#        (with ESP-IDF's export.sh sourced; flash build-ESP32_GENERIC/firmware.bin with esptool at 0x1000)
#
# Then put only /box.json and the one-line /main.py on the board:
#   tools/deploy_box.sh --frozen box.json PORT
# (a /firmware or /protocol directory left on the flash would shadow the
# frozen modules: '' comes before '.frozen' on sys.path; --frozen removes them).
#
# Syntax: MicroPython's docs/reference/manifest.rst and tools/manifestfile.py
# (include, require, package). Relative paths are relative to this file.

# The board's own frozen modules first (asyncio; on the Pico W the networking
# bundle with ntptime); boards without a manifest of their own (RPI_PICO,
# ESP32_GENERIC) use their port's.
try:
    include("$(BOARD_DIR)/manifest.py")  # noqa: F821 - provided by MicroPython's manifest runner
except Exception:
    include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821
require("ntptime")  # noqa: F821 - the Wi-Fi boards' clock (already there on most network builds)

package("protocol", base_path="..")  # noqa: F821
package(  # noqa: F821
    "firmware",
    files=[
        "__init__.py",
        "app.py",
        "config.py",
        "ed25519.py",
        "flashdev.py",
        "install.py",
        "keyrot.py",
        "main.py",
        "mqtt.py",
        "norflash.py",
        "ota.py",
        "outbox.py",
        "ports.py",
        "release.py",
        "serial_link.py",
        "session.py",
        "sha512.py",
        "slots.py",
        "boards/__init__.py",
        "boards/esp32.py",
        "boards/pico.py",
        "boards/picow.py",
        "boards/pins.py",
        "boards/wifi.py",
    ],
    base_path="..",
)
