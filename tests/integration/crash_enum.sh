#!/usr/bin/env bash
# crash_enum -- crash simulation (tests/crash): every workload of up to 3
# operations from {write, trim, write-zeroes, FUA write, flush} (and from
# {64K write logged in place, write, FUA write, flush}), cold and warm
# intent log, crashed at every device write and during every flush, four
# crash states each (unflushed writes dropped, kept, a random subset in a
# random order, one sector torn); then 1000 random states. Each state is
# imported read-write by a fresh engine (replaying the intent log) and
# checked block by block against the durability contract. Runs the release
# build (thousands of imports).
set -euo pipefail
: "${CASK_BUILD:?}"
"$CASK_BUILD/tests/crash_enum" --ops 3
"$CASK_BUILD/tests/crash_enum" --soak 1000
