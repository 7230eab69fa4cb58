#!/usr/bin/env bash
# rebuild_bench -- rebuild speed against its peers measured in the same run
# (issue 16, docs/replication.md 13.5): two caskd on loopback; a volume of
# CASK_BENCH_REBUILD_MB MiB (default 1024; the issue's figure is 4096)
# filled with random data;
#   - full rebuild (`vol replica add --wait`) MB/s, against `cask send |
#     cask recv` of the same volume between the same two caskd, and against
#     `cat` of the source pool file to /dev/null (its page cache is warm:
#     an upper bound for reading it) -- target >= 0.8x of send|recv;
#   - delta rebuild after 1% of the volume changed (the replica killed -9,
#     1% rewritten in 64 KiB pieces, restarted, `vol replica rebuild`):
#     time and bytes transferred against the full rebuild's -- target
#     <= 3% of its time.
# Prints the load (uptime) with the figures. Not yet: client IOPS during a
# throttled rebuild.
set -euo pipefail
export CASK_BUILD=${1:-$PWD/build}
CASK_ASAN_BUILD=${CASK_ASAN_BUILD:-$CASK_BUILD}; export CASK_ASAN_BUILD
source "$(dirname "$0")/../tests/integration/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
MB=${CASK_BENCH_REBUILD_MB:-1024}
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RA=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size $((MB * 3 + 1024))M >/dev/null
B pool create p2 "$T/p2.vdev" --size $((MB * 3 + 1024))M >/dev/null
B pool create p3 "$T/p3.vdev" --size $((MB * 2 + 512))M >/dev/null
# a replicated volume whose only remaining replica is the local one; random data, incompressible
$CASK vol create tank/db --size "${MB}M" --replica "127.0.0.1:$RB/p3" -o consistency=all -o compression=off
$CASK vol replica remove tank/db "127.0.0.1:$RB/p3"
export NBD MB SOCK
"$PY" - <<'PY'
import os, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
blk = os.urandom(1 << 20)
for mib in range(int(os.environ["MB"])):
    h.pwrite(blk[mib % 997:] + blk[:mib % 997], mib << 20)   # distinct MiBs, no dedup or compression help
h.flush(); h.shutdown()
PY
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }
mbs() { awk -v m="$MB" -v s="$1" 'BEGIN{printf "%.1f", m / s}'; }
load=$(uptime | sed 's/.*load average: //')

# full rebuild
t0=$(now); $CASK vol replica add tank/db "127.0.0.1:$RB/p2" --wait >/dev/null; t1=$(now)
full=$(secs "$t0" "$t1")
full_x=$("$PY" -c '
import os, sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
s = Ctl(os.environ["SOCK"]).call("vol.status", name="tank/db")
print([r for r in s["replicas"] if r["pool"] == "p2"][0]["rebuild"]["transferred"])')
# send | recv of the same data (a snapshot of the local replica)
$CASK snap create tank/db@bench
t0=$(now); $CASK send tank/db@bench | B recv p3/copy; t1=$(now)
sr=$(secs "$t0" "$t1")
# cat of the source pool file
t0=$(now); cat "$T/tank.vdev" > /dev/null; t1=$(now)
catt=$(secs "$t0" "$t1")
vdev_mb=$(( $(stat -c %s "$T/tank.vdev") >> 20 ))

# delta after 1% changed
kill -9 "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
mb = int(os.environ["MB"]); rnd = random.Random(9)
n = mb * 16 // 100                          # 1% of the volume in 64 KiB pieces
for off in rnd.sample(range(mb * 16), n):
    h.pwrite(os.urandom(65536), off * 65536)
h.flush(); h.shutdown()
PY
PORT_B= start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
t0=$(now); $CASK vol replica rebuild tank/db "127.0.0.1:$RB/p2" --wait >/dev/null; t1=$(now)
delta=$(secs "$t0" "$t1")
delta_x=$("$PY" -c '
import os, sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
s = Ctl(os.environ["SOCK"]).call("vol.status", name="tank/db")
print([r for r in s["replicas"] if r["pool"] == "p2"][0]["rebuild"]["transferred"])')
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "the rebuilt replica differs"

echo "rebuild bench, ${MB} MiB of random data, load before: $load; after: $(uptime | sed 's/.*load average: //')"
printf 'full rebuild      %8.3f s  %7s MB/s  %s bytes transferred\n' "$full" "$(mbs "$full")" "$full_x"
printf 'send | recv       %8.3f s  %7s MB/s  -> full rebuild / send|recv = %.2fx (target >= 0.8x)\n' "$sr" \
  "$(mbs "$sr")" "$(awk -v a="$full" -v b="$sr" 'BEGIN{print b / a}')"
printf 'cat of pool file  %8.3f s  %7s MB/s  (%d MiB file, page cache warm) -> full rebuild / cat = %.2fx\n' \
  "$catt" "$(awk -v m="$vdev_mb" -v s="$catt" 'BEGIN{printf "%.1f", m / s}')" "$vdev_mb" \
  "$(awk -v a="$full" -v b="$catt" -v m="$MB" -v v="$vdev_mb" 'BEGIN{print (m / a) / (v / b)}')"
printf 'delta rebuild     %8.3f s  %s bytes transferred after 1%% changed -> %.1f%% of the full time, %.1f%% of its bytes (target <= 3%% of the time)\n' \
  "$delta" "$delta_x" "$(awk -v a="$delta" -v b="$full" 'BEGIN{print 100 * a / b}')" \
  "$(awk -v a="$delta_x" -v b="$full_x" 'BEGIN{print 100 * a / b}')"
