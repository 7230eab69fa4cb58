#!/usr/bin/env bash
# stress -- cask-stress for a fixed time with SIGKILL rounds, on the
# release build (more operations per second) and on the sanitizer build.
#
# It caught: a management operation made in the open txg (resize, rename,
# set) leaked into the dataset record written by the txg that was syncing
# at the same time (each dataset now keeps a record image for the syncing txg, vol_mgmt_dirty).
set -euo pipefail
: "${CASK_BUILD:?}" "${CASK_ASAN_BUILD:?}"
dir=$(mktemp -d "${TMPDIR:-/tmp}/cask-stress-XXXXXX")
trap 'rm -rf "$dir"' EXIT
seconds=${CASK_STRESS_SECONDS:-25}
"$CASK_BUILD/cask-stress" --seconds "$seconds" --threads 4 "$dir/rel"
"$CASK_BUILD/cask-stress" --seconds 10 --threads 3 --vdevs 3 "$dir/multi"
"$CASK_ASAN_BUILD/cask-stress" --seconds 10 --threads 2 "$dir/asan"
# Bad arguments are refused with usage.
if "$CASK_BUILD/cask-stress" --threads 0 "$dir/x" 2>/dev/null; then exit 1; fi
if "$CASK_BUILD/cask-stress" 2>/dev/null; then exit 1; fi
"$CASK_BUILD/cask-stress" --help | grep -q "SIGKILL"
