#!/usr/bin/env bash
# send_recv -- send and receive between two real caskd instances (two state
# dirs, two sockets, two NBD ports): a full stream and five incrementals
# through `cask send | cask recv`, each received snapshot compared with its
# source over NBD with qemu-img compare; an incremental from a clone's
# origin; `cask vol diff` (text and -j); progress with -v; and bad input:
# truncated (resumed with the token), a flipped bit, garbage, the wrong
# base, a changed target (-F), abandon (-A), a cancelled job, and kill -9
# of the receiving caskd in the middle of a stream, then a restart and a
# resume that must give the right snapshot.
source "$(dirname "$0")/lib.sh"
need qemu-img
need qemu-io

start_caskd
start_caskd_b
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }

$CASK pool create tank "$T/a0.vdev" --size 512M
B pool create tank "$T/b0.vdev" --size 512M
$CASK vol create tank/v --size 64M
head -c $((16 << 20)) /dev/urandom > "$T/a.raw"
qemu-img convert -n -f raw -O raw "$T/a.raw" "$NBD/tank/v"
$CASK snap create tank/v@s1

same() { qemu-img compare -q -f raw -F raw "$1" "$2" || fail "$1 and $2 differ"; }

# full, through a pipe, with progress on stderr (-v)
$CASK send -v tank/v@s1 2>"$T/send.err" | B recv tank/r
grep -q "sent tank/v@s1" "$T/send.err" || fail "send -v printed no progress: $(cat "$T/send.err")"
same "$NBD/tank/v@s1" "$NBD_B/tank/r@s1"
same "$NBD/tank/v@s1" "$NBD_B/tank/r"

# five incrementals: writes, discards, zeroes, a grow
for k in 2 3 4 5 6; do
  case $k in
    2) qemu-io -f raw -c "write -P 2 1M 256k" -c "write -P 3 20M 64k" "$NBD/tank/v" >/dev/null ;;
    3) qemu-io -f raw -c "discard 4M 2M" "$NBD/tank/v" >/dev/null ;;
    4) qemu-io -f raw -c "write -z 8M 1M" -c "write -P 4 9M 4k" "$NBD/tank/v" >/dev/null ;;
    5) $CASK vol resize tank/v 96M
       qemu-io -f raw -c "write -P 5 80M 1M" "$NBD/tank/v" >/dev/null ;;
    6) qemu-io -f raw -c "write -P 6 0 4k" -c "write -P 6 95M 4k" "$NBD/tank/v" >/dev/null ;;
  esac
  $CASK snap create "tank/v@s$k"
  $CASK send -i "@s$((k - 1))" "tank/v@s$k" | B recv tank/r
  same "$NBD/tank/v@s$k" "$NBD_B/tank/r@s$k"
done
for k in 1 2 3 4 5 6; do same "$NBD/tank/v@s$k" "$NBD_B/tank/r@s$k"; done
[ "$(B snap list -H -o name tank/r | wc -l)" = 6 ] || fail "the target does not have six snapshots"

# diff
$CASK vol diff -H tank/v@s1 tank/v@s2 > "$T/diff.txt"
grep -q "^1048576	262144	data$" "$T/diff.txt" || fail "diff misses the 256K write: $(cat "$T/diff.txt")"
$CASK vol diff -j tank/v@s2 tank/v@s3 | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
assert {"offset": 4194304, "length": 2097152, "type": "hole"} in d, d'
expect_fail 1 "not an earlier snapshot" $CASK vol diff tank/v@s3 tank/v@s2

# incremental from a clone's origin
$CASK vol clone tank/v@s6 tank/c
qemu-io -f raw -c "write -P 9 2M 128k" "$NBD/tank/c" >/dev/null
$CASK snap create tank/c@x
$CASK send -i tank/v@s6 tank/c@x | B recv tank/r
same "$NBD/tank/c@x" "$NBD_B/tank/r@x"

# the next increment, kept in a file for the bad-input cases
qemu-io -f raw -c "write -P 10 30M 3M" -c "discard 0 1M" "$NBD/tank/c" >/dev/null
$CASK snap create tank/c@y
$CASK send -i @x tank/c@y > "$T/y.stream"
size=$(stat -c %s "$T/y.stream")

echo "this is not a stream" | { expect_fail 1 "not a cask send stream" B recv tank/r; }
expect_fail 2 "needs one POOL/VOL" B recv tank/r@x
expect_fail 2 "not a snapshot" $CASK send tank/c
$CASK send -i @s5 tank/v@s6 > "$T/old.stream"
expect_fail 1 "wrong base" B recv tank/r < "$T/old.stream"

# a flipped bit: damaged, the target is a partial receive until abandoned
"$PY" - "$T/y.stream" "$T/flip.stream" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0x10
open(sys.argv[2], "wb").write(d)
PY
expect_fail 1 "damaged" B recv tank/r < "$T/flip.stream"
[ "$(B vol get -H -o value receive_resume_token tank/r)" != "-" ] || fail "no resume token after damage"
qemu-io -r -f raw -c "read 0 4k" "$NBD_B/tank/r" >/dev/null 2>&1 && fail "a partial receive is served over NBD"
B recv -A tank/r
same "$NBD/tank/c@x" "$NBD_B/tank/r"

# truncated, then resumed with the token
head -c $((size / 3)) "$T/y.stream" > "$T/trunc.stream"
expect_fail 1 "truncated" B recv tank/r < "$T/trunc.stream"
tok=$(B vol get -H -o value receive_resume_token tank/r)
case "$tok" in 1-*) ;; *) fail "bad token '$tok'" ;; esac
expect_fail 1 "partial receive" B recv tank/r < "$T/y.stream"
$CASK send -t "$tok" | B recv tank/r
same "$NBD/tank/c@y" "$NBD_B/tank/r@y"
[ "$(B vol get -H -o value receive_resume_token tank/r)" = "-" ] || fail "token left after the resume"

# a changed target: refused, -F rolls it back
qemu-io -f raw -c "write -P 11 0 4k" "$NBD_B/tank/r" >/dev/null
qemu-io -f raw -c "write -P 12 5M 4k" "$NBD/tank/c" >/dev/null
$CASK snap create tank/c@z
$CASK send -i @y tank/c@z > "$T/z.stream"
expect_fail 1 "changed since" B recv tank/r < "$T/z.stream"
B recv -F tank/r < "$T/z.stream"
same "$NBD/tank/c@z" "$NBD_B/tank/r@z"

# a job that never gets its stream is cancelled: nothing is created
mkfifo "$T/fifo"
exec 7<>"$T/fifo"
B recv tank/never <&7 &
recv_pid=$!
for _ in $(seq 1 600); do
  B job list -H -o kind,state | grep -q "^receive	running$" && break
  sleep 0.1
done
id=$(B job list -H -o id,state | awk '$2 == "running" {print $1}' | head -1)
[ -n "$id" ] || fail "no running receive job"
B job cancel "$id"
rc=0; wait $recv_pid || rc=$?
[ $rc = 1 ] || fail "a cancelled receive exited $rc"
exec 7>&-
B vol list -H -o name | grep -q never && fail "a cancelled receive left a volume"

# kill -9 of the receiving caskd in the middle of a big stream, then resume
$CASK vol create tank/big --size 256M
head -c $((128 << 20)) /dev/urandom > "$T/big.raw"
qemu-img convert -n -f raw -O raw "$T/big.raw" "$NBD/tank/big"
$CASK snap create tank/big@b1
$CASK send tank/big@b1 > "$T/big.stream"
# feed half quickly, then hold the pipe open: the receiver is mid-stream when it dies
mkfifo "$T/feed"
"$PY" - "$T/big.stream" > "$T/feed" <<'PY' &
import sys, time
d = open(sys.argv[1], "rb").read()
out = sys.stdout.buffer
out.write(d[:len(d) // 2]); out.flush()
time.sleep(60)
PY
feeder=$!
B recv tank/big2 < "$T/feed" > /dev/null 2>&1 &
receiver=$!
for _ in $(seq 1 600); do
  done_b=$(B job list -H -p -o done,state 2>/dev/null | awk '$2 == "running" {print $1}' | head -1)
  [ -n "$done_b" ] && [ "$done_b" -ge $(( $(stat -c %s "$T/big.stream") / 2 - (1 << 20) )) ] && break
  sleep 0.1
done
sleep 6   # more than the 5 s txg timeout: the first half commits
kill -9 "$CASKD_B_PID"
wait "$CASKD_B_PID" 2>/dev/null || true
CASKD_B_PID=
kill "$feeder" 2>/dev/null || true
wait "$feeder" 2>/dev/null || true
wait "$receiver" 2>/dev/null || true
start_caskd_b
B pool import tank >/dev/null 2>&1 || true
tok=$(B vol get -H -o value receive_resume_token tank/big2)
[ "$tok" != "-" ] || fail "no resume token after kill -9"
off=$((16#${tok:34:16}))
echo "after kill -9: resume at byte $off of the volume"
[ "$off" -gt 0 ] || fail "nothing of the first half was committed"
$CASK send -t "$tok" | B recv tank/big2
same "$NBD/tank/big@b1" "$NBD_B/tank/big2@b1"

stop_caskd
kill -TERM "$CASKD_B_PID"; wait "$CASKD_B_PID"; CASKD_B_PID=
"$CASK_BUILD/cask-debug" check "$T/a0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check (source)"; }
"$CASK_BUILD/cask-debug" check "$T/b0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check (target)"; }
echo ok
