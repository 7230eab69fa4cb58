#!/usr/bin/env bash
# nbd_aread -- the engine's asynchronous read path under a real NBD client
# (docs/design-vio.md §8): 64 libnbd aio reads outstanding on one connection
# over a cold block cache, each checked (nbd_aread.py); the metrics say the
# reads went through the io_uring ring with many device reads in it at once;
# then the same with `caskd --no-io-uring` (the fallback: the log says why,
# the metrics say no ring, the reads are right).
source "$(dirname "$0")/lib.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
need curl
SIZE=$((64 << 20))
SEED=$RANDOM
MPORT=$(free_port)
start_caskd --cache 8M --metrics "127.0.0.1:$MPORT"
grep -q "asynchronous reads unavailable" "$T/caskd.log" && skip "no io_uring here: $(grep -m1 'asynchronous reads' "$T/caskd.log")"
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/v --size $SIZE -o compression=off
grep -q "pool tank: asynchronous reads through io_uring" "$T/caskd.log" || fail "no io_uring log line"
# the known pattern (block number and seed in every 32 bytes)
"$PY" - "$PORT" "$SEED" "$SIZE" <<'PYEOF'
import sys, nbd
port, seed, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
h = nbd.NBD()
h.connect_uri("nbd://127.0.0.1:%d/tank/v" % port)
BS, CH = 4096, 256
for c in range(0, size // BS, CH):
    h.pwrite(b"".join((b"%016x%016x" % (i, seed)) * (BS // 32) for i in range(c, c + CH)), c * BS)
h.flush()
h.shutdown()
PYEOF
stop_caskd
# cold: a new caskd imports the pool with an empty cache
start_caskd --cache 8M --metrics "127.0.0.1:$MPORT"
metric() { curl -sf "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1{pool=\"tank\"}" '$1 == m { print $2 }'; }
[ "$(metric cask_pool_async_reads_available)" = 1 ] || fail "metrics: no ring"
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/nbd_aread.py" "$PORT" "$CASKD_PID" "$SEED" "$SIZE"
n=$(metric cask_pool_async_reads_total)
ring=$(metric cask_pool_async_ring_max)
fb=$(metric cask_pool_async_read_fallbacks_total)
echo "through the ring: $n reads, at most $ring in the ring at once, $fb fallbacks"
[ "$n" -ge 4000 ] || fail "only $n reads went through the ring"
[ "$ring" -ge 8 ] || fail "at most $ring device reads were in the ring at once"
kill -0 "$CASKD_PID" || fail "caskd died"
stop_caskd

# the fallback: the same reads through the worker threads
start_caskd --cache 8M --metrics "127.0.0.1:$MPORT" --no-io-uring
grep -q "pool tank: asynchronous reads unavailable (disabled (CE_POOL_NO_URING)): reads use the IO worker threads" \
    "$T/caskd.log" || fail "no fallback log line"
[ "$(metric cask_pool_async_reads_available)" = 0 ] || fail "metrics: a ring with --no-io-uring"
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/nbd_aread.py" "$PORT" "$CASKD_PID" "$SEED" "$SIZE"
[ "$(metric cask_pool_async_reads_total)" = 0 ] || fail "reads went through a ring with --no-io-uring"
stop_caskd
echo ok
