#!/usr/bin/env bash
# rebuild_fio_verify -- fio (ioengine=nbd, verify=crc32c: every block it
# wrote is read back and checked) across a replica kill and its rebuild
# (docs/replication.md 13.4, "live overwrite"). A controls tank/db
# (quorum) with B and C.
#   1. fio writes 32 MiB at random and verifies; C is killed -9 once 1500
#      operations were sequenced; fio finishes clean without it.
#   2. C is restarted and rebuilt (throttled to 4 MB/s), and while the job
#      runs fio rewrites the same 32 MiB -- blocks in the range being
#      rebuilt -- and verifies: clean; the rebuild ends, C joins; the
#      three replicas' `vol checksum` are equal.
#   3. A is killed -9, C takes the volume over, and fio verifies what pass
#      2 wrote (verify_only) through C: the rebuilt replica holds every
#      block as the client last wrote it.
source "$(dirname "$0")/lib.sh"
need fio
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
C() { CASK_SOCKET="$SOCK_C" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 512M >/dev/null
B pool create p2 "$T/p2.vdev" --size 512M >/dev/null
C pool create p3 "$T/p3.vdev" --size 512M >/dev/null
$CASK vol create tank/db --size 64M --replica "127.0.0.1:$RB/p2" --replica "127.0.0.1:$RC/p3" \
  -o consistency=quorum -o rebuild_rate=4
job() { # NAME URI SEED: a fio job file writing [0, 32M) at random with crc32c verification
  cat > "$T/$1.fio" <<JOB
[global]
ioengine=nbd
rw=randwrite
bs=4k
iodepth=16
size=32M
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=0
randseed=$3
[w]
uri=$2
JOB
}
runfio() { # NAME
  fio --aux-path="$T" --output="$T/$1.out" "$T/$1.fio" || { cat "$T/$1.out"; fail "fio $1 failed"; }
  grep -q "err= 0" "$T/$1.out" || { cat "$T/$1.out"; fail "fio $1 reported errors"; }
}
seq_of() { $CASK vol status -j tank/db | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seq"])'; }

# 1. C killed during fio's write phase
job pass1 "$NBD/tank/db" 11
runfio pass1 & FIO=$!
for _ in $(seq 1 3000); do [ "$(seq_of)" -ge 1500 ] && break; sleep 0.05; done
[ "$(seq_of)" -ge 1500 ] || fail "fio did not get going: seq $(seq_of)"
kill -9 "$CASKD_C_PID"; wait "$CASKD_C_PID" 2>/dev/null || true; CASKD_C_PID=
echo "C killed at seq $(seq_of)"
wait "$FIO" || fail "fio pass 1 failed across the kill of C"
$CASK vol status tank/db | grep -q "127.0.0.1:$RC/p3 *degraded" || fail "C is not degraded: $($CASK vol status tank/db)"

# 2. C rebuilt while fio rewrites the same range
PORT_C= start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"
jid=$($CASK vol replica rebuild tank/db "127.0.0.1:$RC/p3" | awk '{print $2}')
[ -n "$jid" ] || fail "no rebuild job"
echo "rebuild job $jid: $($CASK job list -H -o id,state,done,total | awk -v j="$jid" '$1 == j')"
job pass2 "$NBD/tank/db" 22
runfio pass2
echo "fio pass 2 done; rebuild job: $($CASK job list -H -o id,state,done,total | awk -v j="$jid" '$1 == j')"
$CASK job wait "$jid" || fail "the rebuild of C failed"
$CASK vol status tank/db | grep -q "127.0.0.1:$RC/p3 *in-sync" || fail "C is not in sync: $($CASK vol status tank/db)"
a=$($CASK vol checksum tank/db | cut -d' ' -f1)
[ "$a" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] && [ "$a" = "$(C vol checksum p3/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ after the rebuild"

# 3. the rebuilt replica serves what fio wrote
kill -9 "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
C vol takeover p3/db >/dev/null || fail "takeover on C"
job pass2 "$NBD_C/p3/db" 22
sed -i 's/^do_verify=1/verify_only=1/' "$T/pass2.fio"
runfio pass2
kill -TERM "$CASKD_B_PID" "$CASKD_C_PID"; wait "$CASKD_B_PID" "$CASKD_C_PID" 2>/dev/null || true
CASKD_B_PID=; CASKD_C_PID=
echo "ok: fio verify=crc32c clean across the kill of a replica, its rebuild under rewrites, and reads from it"
