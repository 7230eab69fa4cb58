#!/usr/bin/env bash
# The main job: caskd on a default pool (a sparse file in the state
# directory) serving volume default/vol0 over NBD. Ctrl-C stops it
# cleanly; running it again serves the same data.
#
#   scripts/run.sh [BUILD]        (make run)
# Environment: CASK_STATE (default ./state), CASK_NBD (default
# 127.0.0.1:10809), CASK_VOL_SIZE (default 10G, thin), CASK_SOCKET
# (default STATE/caskd.sock).
set -euo pipefail
build=${1:-build}
state=${CASK_STATE:-$PWD/state}
nbd=${CASK_NBD:-127.0.0.1:10809}
size=${CASK_VOL_SIZE:-10G}
export CASK_SOCKET=${CASK_SOCKET:-$state/caskd.sock}
mkdir -p "$state"
host=${nbd%:*}; port=${nbd##*:}
cat <<MSG
cask: starting caskd (state $state, control socket $CASK_SOCKET)
cask: serving volume default/vol0 ($size, thin) at
        nbd://$host:$port/default/vol0
      try, from another terminal:
        nbdinfo nbd://$host:$port/default/vol0
        qemu-io -f raw -c 'write -P 0xab 0 1M' nbd://$host:$port/default/vol0
        CASK_SOCKET=$CASK_SOCKET $build/cask vol list
      Ctrl-C stops it cleanly.
MSG
exec "$build/caskd" --state "$state" --socket "$CASK_SOCKET" --nbd "$nbd" --default-volume "$size"
