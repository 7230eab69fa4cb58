#!/usr/bin/env bash
# The main job, until caskd exists (issue 3): a pool in a file under the
# state directory, exercised by cask-stress (random concurrent volume
# operations with SIGKILL and re-import, checked against a model), then
# checked block by block with cask-debug.
#
#   scripts/run.sh [BUILD]      (make run)
#   CASK_STATE=DIR CASK_RUN_SECONDS=N to change where and how long.
set -euo pipefail
build=${1:-build}
state=${CASK_STATE:-$PWD/state}
seconds=${CASK_RUN_SECONDS:-30}
mkdir -p "$state"
echo "cask: running cask-stress for ${seconds}s on a pool in $state (Ctrl-C stops it)"
"$build/cask-stress" --seconds "$seconds" --threads 4 "$state"
echo
echo "cask: the pool it left behind:"
"$build/cask-debug" tree "$state/stress0.vdev" | grep -E '^(pool|MOS|volume)'
"$build/cask-debug" check "$state/stress0.vdev"
