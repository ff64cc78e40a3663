#!/usr/bin/env bash
# Install the evalbox firmware on a real board over USB with mpremote.
#   tools/deploy_box.sh box.json [PORT]      (PORT e.g. /dev/ttyUSB0 or /dev/ttyACM0; default: auto)
# The board must already run MicroPython (ESP32: esptool write_flash; Pico / Pico W: copy the .uf2).
# Checks the config against the board's port limits, builds the mpy-cross tree (tools/build_box.sh),
# copies protocol/ and firmware/ as packages, the config as /box.json and a one-line /main.py,
# then resets the board.
#
# A box already running the app: mpremote interrupts it with Ctrl-C. On a plain Pico whose data
# channel is the USB port the app disables Ctrl-C; hold the invite key while plugging it in (all
# lights on: maintenance mode, the app does not start) and run this script then.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: tools/deploy_box.sh box.json [PORT]}
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
if ! $MPR $C cp -r "$BUILD/protocol" : + cp -r "$BUILD/firmware" : + cp "$CONFIG" :box.json + cp "$BUILD/main.py" :main.py; then
    echo "could not reach the board's REPL: power it up with the invite key held (maintenance mode) and retry" >&2
    exit 1
fi
$MPR $C reset
echo "installed; watch it boot with: $MPR $C repl"
