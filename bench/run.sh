#!/usr/bin/env bash
# make bench: weir against Debian's nginx and h2o on this machine (see bench/bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR_BENCH=1 scripts/deps.sh
ninja -C build weir >/dev/null
exec /usr/bin/python3 bench/bench.py "$@"
