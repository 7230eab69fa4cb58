#!/usr/bin/env bash
# vio_stats_bound -- the volume IO counters are bounded (vio_stats_bound.py).
source "$(dirname "$0")/lib.sh"
start_caskd --test-ops
$CASK pool create tank "$T/tank0.vdev" --size 1G
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/vio_stats_bound.py" "$PORT" "$SOCK" "$T/tank0.vdev"
stop_caskd
echo ok
