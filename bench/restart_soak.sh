#!/bin/sh
# The SIGKILL-recovery test N times in a row (default 20) while two busy loops keep both cores loaded.
# 15 to 30 s a run on two loaded cores (about 6 to 8 minutes for 20): too long for every test run, so
# `make test` runs it once and CI (.ci/run) runs this loop once, after `make test`.
# Exit status: pytest's (0: all runs passed).
set -u
runs=${1:-20}
cd "$(dirname "$0")/.." || exit 2
timeout 1800 sh -c 'while :; do :; done' &
busy1=$!
timeout 1800 sh -c 'while :; do :; done' &
busy2=$!
trap 'kill "$busy1" "$busy2" 2>/dev/null' EXIT INT TERM
timeout 1800 .venv/bin/pytest -p no:cacheprovider -q -s tests/integration/streams/test_recovery.py \
    -k test_worker_killed_mid_stream --restart-runs "$runs"
