#!/usr/bin/env bash
# repl_bench -- replication against a single-replica volume of the same
# caskd in the same run (issue 15): three caskd on loopback, fio
# ioengine=nbd 4k QD32 randwrite and randread for RUNTIME seconds
# (CASK_BENCH_RUNTIME, default 8) on tank/single, a 3-way quorum volume and
# a 2-way all volume; prints IOPS and the ratios to single (issue targets:
# 3-way quorum randwrite >= 0.5x, 2-way all >= 0.65x, randread >= 0.9x).
# Not yet: QD1 write+flush latency, the 20 ms delayed replica, CPU per IO.
set -euo pipefail
export CASK_BUILD=${1:-$PWD/build}
CASK_ASAN_BUILD=${CASK_ASAN_BUILD:-$CASK_BUILD}; export CASK_ASAN_BUILD
source "$(dirname "$0")/../tests/integration/lib.sh"
command -v fio >/dev/null || skip "fio is not installed"
RUNTIME=${CASK_BENCH_RUNTIME:-8}
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
PORT_C=$(free_port); SOCK_C="$T/run_c/caskd.sock"
"$CASKD" --state "$T/state_c" --socket "$SOCK_C" --nbd "127.0.0.1:$PORT_C" --peer-key "$T/peer.key" \
  --replica-listen "127.0.0.1:$RC" >>"$T/caskd_c.log" 2>&1 &
CASKD_C_PID=$!
for _ in $(seq 1 100); do [ -S "$SOCK_C" ] && CASK_SOCKET="$SOCK_C" "$CASK" version >/dev/null 2>&1 && break; sleep 0.05; done
$CASK pool create tank "$T/tank.vdev" --size 4G >/dev/null
CASK_SOCKET="$SOCK_B" $CASK pool create p2 "$T/p2.vdev" --size 4G >/dev/null
CASK_SOCKET="$SOCK_C" $CASK pool create p3 "$T/p3.vdev" --size 4G >/dev/null
$CASK vol create tank/single --size 1G
$CASK vol create tank/r3 --size 1G --replica "127.0.0.1:$RB/p2" --replica "127.0.0.1:$RC/p3"
$CASK vol create tank/r2all --size 1G --replica "127.0.0.1:$RB/p2" -o consistency=all
declare -A R
for v in single r3 r2all; do
  for rw in randwrite randread; do
    out=$(fio --name=b --ioengine=nbd --uri="$NBD/tank/$v" --rw=$rw --bs=4k --iodepth=32 --size=256M \
      --time_based --runtime="$RUNTIME" --output-format=terse 2>/dev/null | grep '^3;')
    if [ $rw = randwrite ]; then R[$v.$rw]=$(echo "$out" | cut -d';' -f49); else R[$v.$rw]=$(echo "$out" | cut -d';' -f8); fi
  done
done
for rw in randwrite randread; do
  printf '%-10s single %7s IOPS | 3-way quorum %7s (%.2fx) | 2-way all %7s (%.2fx)\n' "$rw" "${R[single.$rw]}" \
    "${R[r3.$rw]}" "$(echo "${R[r3.$rw]} / ${R[single.$rw]}" | bc -l)" "${R[r2all.$rw]}" \
    "$(echo "${R[r2all.$rw]} / ${R[single.$rw]}" | bc -l)"
done
