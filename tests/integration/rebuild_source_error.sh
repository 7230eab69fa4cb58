#!/usr/bin/env bash
# rebuild_source_error -- a read error at the rebuild's source is reported
# and ends the job; nothing loops (docs/replication.md 12.9, as built).
# A controls tank/db with a replica on B; B misses 48 MiB of writes; while
# its delta rebuild runs, A's pool is given a persistent read fault (`cask
# pool inject`): there is no other in-sync replica to read from, so the job
# fails once with DATA_LOST naming the ranges it could not read, no other
# rebuild job starts, B stays degraded (rebuilding on its side, its cursor
# kept), the volume keeps serving; `vol replica rebuild` then resumes and
# finishes, and the replicas are equal. (A damaged block with a good copy
# elsewhere is rebuild_source_cksum.) Then a
# rebuild cancelled part-way (`cask job cancel`) leaves B degraded with its
# cursor, writes go on without it, and the next rebuild finishes.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port)
# a tiny block cache on A, so the rebuild's reads of the source go to its disk
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)" --cache 64K
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 1G >/dev/null
B pool create p2 "$T/p2.vdev" --size 1G >/dev/null
$CASK vol create tank/db --size 256M --replica "127.0.0.1:$RB/p2" -o consistency=all -o rebuild_rate=16
kill -9 "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
export NBD
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(5)
for mib in range(48):
    h.pwrite(rnd.randbytes(1 << 20), mib * 3 << 20)
h.flush(); h.shutdown()
PY
PORT_B= start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
job=$($CASK vol replica rebuild tank/db "127.0.0.1:$RB/p2" | awk '{print $2}')
for _ in $(seq 1 1200); do
  [ "$($CASK job list -H -p -o id,done | awk -v j="$job" '$1 == j {print $2}')" -gt $((4 << 20)) ] && break
  sleep 0.05
done
$CASK pool inject tank read --after 3 --persistent
$CASK job wait "$job" > "$T/wait.out" 2>&1 && fail "the rebuild went on past a read error: $(cat "$T/wait.out")"
grep -q "^job $job failed: data lost: .* (offset+length: [0-9]*+[0-9]*.*(DATA_LOST)$" "$T/wait.out" ||
  fail "job $job: $(cat "$T/wait.out")"
$CASK pool inject tank none
$CASK job list -H -o id,kind,state,error > "$T/jobs"
grep -q "^$job	rebuild	failed	data lost" "$T/jobs" || fail "job $job: $(cat "$T/jobs")"
[ "$(grep -c rebuild "$T/jobs")" -eq 1 ] || fail "another rebuild started by itself: $(cat "$T/jobs")"
$CASK vol status tank/db | grep -q "127.0.0.1:$RB/p2 *degraded" || fail "B: $($CASK vol status tank/db)"
$CASK vol status tank/db | grep -q "state serving" || fail "the volume stopped serving: $($CASK vol status tank/db)"
$CASK pool clear tank >/dev/null 2>&1 || true
out=$($CASK vol replica rebuild tank/db "127.0.0.1:$RB/p2" --wait) || fail "the second rebuild: $out"
echo "$out"
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ after the retried rebuild"

# cancel: B misses more writes; its rebuild is cancelled part-way (job cancelled, B degraded and
# no longer sent writes), and a later rebuild resumes and finishes
kill -9 "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(6)
for mib in range(48):
    h.pwrite(rnd.randbytes(1 << 20), (mib * 3 + 1) << 20)
h.flush(); h.shutdown()
PY
PORT_B= start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
job=$($CASK vol replica rebuild tank/db "127.0.0.1:$RB/p2" | awk '{print $2}')
for _ in $(seq 1 1200); do
  [ "$($CASK job list -H -p -o id,done | awk -v j="$job" '$1 == j {print $2}')" -gt $((4 << 20)) ] && break
  sleep 0.05
done
$CASK job cancel "$job"
$CASK job wait "$job" > /dev/null 2>&1 || true
$CASK job list -H -o id,state | grep -q "^$job	cancelled$" || fail "job $job: $($CASK job list)"
$CASK vol status tank/db | grep -q "127.0.0.1:$RB/p2 *degraded .*cancelled" || fail "after cancel: $($CASK vol status tank/db)"
"$PY" -c '
import os, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
h.pwrite(b"c" * 65536, 200 << 20); h.flush(); h.shutdown()'
out=$($CASK vol replica rebuild tank/db "127.0.0.1:$RB/p2" --wait) || fail "rebuild after cancel: $out"
echo "$out"
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ after the rebuild that followed a cancel"
stop_caskd
kill -TERM "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
for v in tank p2; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: a source read error fails the rebuild once, reported; the retry resumes and finishes"
