#!/usr/bin/env bash
# Install the evalbox firmware on a real board over USB with mpremote.
#   tools/deploy_box.sh [--frozen] box.json [PORT]   (PORT e.g. /dev/ttyUSB0 or /dev/ttyACM0; default: auto)
# The board must already run MicroPython (ESP32: esptool write_flash; Pico / Pico W: copy the .uf2).
# --frozen: the board runs a MicroPython built with tools/manifest.py (firmware frozen into flash):
# copy only /box.json and /main.py, and remove any /firmware and /protocol that would shadow it.
# Checks the config against the board's port limits, builds the mpy-cross tree (tools/build_box.sh),
# copies protocol/ and firmware/ as packages, the config as /box.json and a one-line /main.py,
# then resets the board.
#
# A box already running the app: mpremote interrupts it with Ctrl-C. On a plain Pico whose data
# channel is the USB port the app disables Ctrl-C; hold the invite key while plugging it in (all
# lights on: maintenance mode, the app does not start) and run this script then.
set -euo pipefail
cd "$(dirname "$0")/.."
FROZEN=
if [ "${1:-}" = "--frozen" ]; then FROZEN=1; shift; fi
CONFIG=${1:?usage: tools/deploy_box.sh [--frozen] box.json [PORT]}
PORT=${2:-auto}
BIN=.venv/bin
MPR="$BIN/mpremote"
[ -x "$MPR" ] || MPR=$(command -v mpremote || true)
[ -n "$MPR" ] || { echo "mpremote not found: .venv/bin/pip install mpremote" >&2; exit 2; }
"$BIN/python" -c "import sys; from firmware.config import ConfigError, load
try:
    load(sys.argv[1])
except ConfigError as exc:
    sys.exit('config error: %s' % exc)" "$CONFIG"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
tools/build_box.sh "$BUILD"
C="connect $PORT"
# the A/B boot pointer (firmware/slots.py) goes: the box boots what this script installs
UNPOINT='import os
try:
    os.remove("/fw/boot")
except OSError:
    pass'
if [ -n "$FROZEN" ]; then
    RMTREES='import os
def rm(p):
    try:
        for n in os.listdir(p):
            rm(p + "/" + n)
        os.rmdir(p)
    except OSError:
        try:
            os.remove(p)
        except OSError:
            pass
rm("/firmware")
rm("/protocol")'
    COPY=(exec "$RMTREES" + exec "$UNPOINT" + cp "$CONFIG" :box.json + cp "$BUILD/main.py" :main.py)
else
    COPY=(exec "$UNPOINT" + cp -r "$BUILD/protocol" : + cp -r "$BUILD/firmware" : + cp "$CONFIG" :box.json
          + cp "$BUILD/main.py" :main.py)
fi
if ! $MPR $C "${COPY[@]}"; then
    echo "could not reach the board's REPL: power it up with the invite key held (maintenance mode) and retry" >&2
    exit 1
fi
$MPR $C reset
echo "installed; watch it boot with: $MPR $C repl"
