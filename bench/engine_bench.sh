#!/usr/bin/env bash
# Run the engine benchmark and keep its JSON next to the printed table.
#   bench/engine_bench.sh [BUILD]   (make bench)
# BENCH_DIR: where the pool file and the plain file go (default /var/tmp,
# a disk-backed directory); BENCH_SIZE_MB, BENCH_OPS: volume size and
# random operations.
set -euo pipefail
build=${1:-build}
dir=${BENCH_DIR:-/var/tmp}
out=${BENCH_OUT:-bench/results}
mkdir -p "$out"
json="$out/engine-$(date +%Y%m%d-%H%M%S).json"
"$build/bench/engine_bench" --dir "$dir" --size-mb "${BENCH_SIZE_MB:-1024}" \
  --ops "${BENCH_OPS:-100000}" --bs-sweep --json "$json"
echo "results: $json"
