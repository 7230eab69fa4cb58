#!/usr/bin/env bash
# rebuild_source_cksum -- a block that fails its checksum at the rebuild's
# source is read from another in-sync replica, reported, and never looped
# on; a block no replica can read is DATA_LOST (docs/replication.md 12.9).
# A controls tank/db with B in sync (consistency all); 16 MiB are written.
# With both stopped, cask-debug gives the physical place of one data block
# X in A's and in B's pool file. Then:
#   1. X is damaged in A's file; `vol replica add` of C copies the volume:
#      the job succeeds, says bytes were read from other replicas, A's log
#      names X's range as unreadable locally and read from B instead, and
#      C equals B.
#   2. X is damaged in B's file too; C's replica is removed and a new one
#      (C/p4) added: no replica can read X, so the job fails once with
#      DATA_LOST naming X's range, p4 stays degraded (not in sync), no other
#      rebuild starts.
#   3. X is rewritten through NBD; `vol replica rebuild` of p4 resumes (its
#      cursor stopped before X) and finishes; all three are equal.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RA=$(free_port); RB=$(free_port); RC=$(free_port)
# tiny block caches, so that reads of X go to the damaged files
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA" --cache 64K
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB" --cache 64K
start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
C() { CASK_SOCKET="$SOCK_C" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 512M >/dev/null
B pool create p2 "$T/p2.vdev" --size 512M >/dev/null
C pool create p3 "$T/p3.vdev" --size 512M >/dev/null
C pool create p4 "$T/p4.vdev" --size 512M >/dev/null
$CASK vol create tank/db --size 64M --replica "127.0.0.1:$RB/p2" -o consistency=all
export NBD T
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(7)
for mib in range(16):
    h.pwrite(rnd.randbytes(1 << 20), mib << 20)
h.flush(); h.shutdown()
PY
# both stopped (cleanly: everything committed), the physical place of X: the data block at 5 MiB
stop_caskd
kill -TERM "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
place() { # FILE -> "FILE_OFFSET LSIZE PSIZE BLK" of the data block holding volume byte 5 MiB
  "$CASK_BUILD/cask-debug" tree -v db "$1" | "$PY" -c '
import re, sys
for line in sys.stdin:
    m = re.search(r"L0 blk (\d+) +data \d+:0x([0-9a-f]+) psize (\d+) lsize (\d+)", line)
    if m and int(m.group(1)) * int(m.group(4)) <= 5 << 20 < (int(m.group(1)) + 1) * int(m.group(4)):
        # the absolute byte offset on the vdev file (docs/on-disk-format.md)
        print(int(m.group(2), 16), m.group(4), m.group(3), m.group(1)); break
else:
    sys.exit("no data block at 5 MiB")'
}
read -r XA LS PSA BLK < <(place "$T/tank.vdev") || fail "cask-debug tree of tank"
read -r XB _ PSB _ < <(place "$T/p2.vdev") || fail "cask-debug tree of p2"
XOFF=$((BLK * LS))
echo "X: volume bytes $XOFF+$LS; tank file offset $XA (psize $PSA), p2 file offset $XB (psize $PSB)"
damage() { # FILE OFFSET PSIZE: flip a byte in the middle of the block, in place, synced -- after checking
           # that the file holds X's bytes there (as A reads them through NBD), so the place is right
  "$PY" - "$1" "$2" "$3" "$XOFF" "$LS" <<'PY'
import os, sys, nbd
f, at, ps, xoff, ls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
keep = os.path.join(os.environ["T"], "x.bin")  # X's bytes, read while A could still read them
if not os.path.exists(keep):
    h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db"); open(keep, "wb").write(h.pread(ls, xoff)); h.shutdown()
want = open(keep, "rb").read()
fd = os.open(f, os.O_RDWR)
assert ps == ls and os.pread(fd, ps, at) == want, "the block at %d of %s is not X's bytes" % (at, f)
mid = at + ps // 2
b = os.pread(fd, 1, mid); os.pwrite(fd, bytes([b[0] ^ 0x5a]), mid); os.fsync(fd); os.close(fd)
PY
}
PORT_B= start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB" --cache 64K
PORT= start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA" --cache 64K
for _ in $(seq 1 300); do
  $CASK vol status tank/db 2>/dev/null | grep -q "state serving" &&
    $CASK vol status tank/db | grep -q "127.0.0.1:$RB/p2 *in-sync" && break
  sleep 0.1
done
$CASK vol status tank/db | grep -q "127.0.0.1:$RB/p2 *in-sync" || fail "B is not in sync after the restart: $($CASK vol status tank/db)"

# 1. X damaged at the source only: read from B
damage "$T/tank.vdev" "$XA" "$PSA"
out=$($CASK vol replica add tank/db "127.0.0.1:$RC/p3" --wait) || fail "replica add with a damaged source block: $out"
echo "$out"
echo "$out" | grep -q " $LS read from other replicas" || fail "the job does not say X was read from another replica: $out"
grep -q "rebuild of 127.0.0.1:$RC/p3: $XOFF+$LS cannot be read from the local replica" "$T/caskd.log" ||
  fail "A's log does not name X as unreadable: $(grep rebuild "$T/caskd.log" | tail -n 5)"
grep -q "rebuild of 127.0.0.1:$RC/p3: $XOFF+$LS read from 127.0.0.1:$RB/p2 instead" "$T/caskd.log" ||
  fail "A's log does not say X was read from B"
[ "$(B vol checksum p2/db | cut -d' ' -f1)" = "$(C vol checksum p3/db | cut -d' ' -f1)" ] ||
  fail "C differs from B after the rebuild"
$CASK vol status tank/db | grep -q "127.0.0.1:$RC/p3 *in-sync" || fail "C is not in sync: $($CASK vol status tank/db)"

# 2. X damaged on every in-sync replica: DATA_LOST, once, the new member not in sync
damage "$T/p2.vdev" "$XB" "$PSB"
$CASK vol replica remove tank/db "127.0.0.1:$RC/p3"
job=$($CASK vol replica add tank/db "127.0.0.1:$RC/p4" | awk '{print $2}')
[ -n "$job" ] || fail "replica add did not start a job"
$CASK job wait "$job" > "$T/wait.out" 2>&1 && fail "the rebuild succeeded without any good copy of X: $(cat "$T/wait.out")"
cat "$T/wait.out"
grep -q "DATA_LOST" "$T/wait.out" || fail "the failure is not DATA_LOST: $(cat "$T/wait.out")"
grep -q "offset+length: $XOFF+$LS" "$T/wait.out" || fail "the failure does not name X's range: $(cat "$T/wait.out")"
$CASK job list -H -o id,kind,state > "$T/jobs"
grep -q "^$job	rebuild	failed$" "$T/jobs" || fail "job $job: $(cat "$T/jobs")"
sleep 1 # a rebuild that loops, or starts again by itself, would show up now
[ "$($CASK job list -H -o kind,state | grep -c '^rebuild	running')" -eq 0 ] || fail "a rebuild runs again: $($CASK job list)"
$CASK vol status tank/db > "$T/status.out"
grep -q "127.0.0.1:$RC/p4 *degraded" "$T/status.out" || fail "p4 is not left degraded: $(cat "$T/status.out")"
grep -q "127.0.0.1:$RB/p2 *in-sync" "$T/status.out" || fail "B left I: $(cat "$T/status.out")"
grep -q "replica p2/db: RB_READ: $XOFF+$LS cannot be read here either" "$T/caskd_b.log" ||
  fail "B's log does not name X: $(grep RB_READ "$T/caskd_b.log")"

# 3. X rewritten: the rebuild of p4 resumes before X and finishes
"$PY" - "$XOFF" "$LS" <<'PY'
import os, sys, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
h.pwrite(b"\x5a" * int(sys.argv[2]), int(sys.argv[1])); h.flush(); h.shutdown()
PY
out=$($CASK vol replica rebuild tank/db "127.0.0.1:$RC/p4" --wait) || fail "the rebuild after X was rewritten: $out"
echo "$out"
echo "$out" | grep -q " 0 read from other replicas" || fail "X was still unreadable: $out"
listed=$(echo "$out" | sed -n 's/.* in sync: \([0-9]*\) bytes listed.*/\1/p')
# the resume starts at p4's durable cursor, X's offset: at most the 16 MiB written less the 5 MiB before X
[ -n "$listed" ] && [ "$listed" -le $(((16 - 5) << 20)) ] || fail "the rebuild did not resume at X: $out"
a=$($CASK vol checksum tank/db | cut -d' ' -f1)
[ "$a" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] && [ "$a" = "$(C vol checksum p4/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ after the last rebuild"
$CASK vol status tank/db | grep -q "127.0.0.1:$RC/p4 *in-sync" || fail "p4 is not in sync: $($CASK vol status tank/db)"
stop_caskd
for p in B C; do
  pid=CASKD_${p}_PID; kill -TERM "${!pid}"; wait "${!pid}" 2>/dev/null || true; eval "$pid="
done
echo "ok: a damaged source block is read from another replica; one damaged everywhere is DATA_LOST, reported once"
