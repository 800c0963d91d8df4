#!/usr/bin/env bash
# The device check: render, train and video figures of one GPU as JSON on stdout (~8 min on
# one GPU); --cpu runs it on the CPU at smoke size. Exit 1 when a part failed to run (the
# JSON names it); speed targets are reported in "checks", not enforced.
#   bash bench/device_check.sh [--cpu] > outputs/bench/device_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# the render benchmark draws pedestrians from the human library (make humans builds it once)
[ -f assets_cache/humans/index.json ] || make --no-print-directory humans >&2
exec "$PY" -m bench.device_check "$@"
