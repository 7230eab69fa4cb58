#!/usr/bin/env bash
# histcheck_nbd_kill -- a history recorded from six python3-libnbd clients (two
# processes, three connections each; the second process's with 8 requests in
# flight) writing, reading, flushing, trimming and zeroing through caskd,
# with a SIGKILL of caskd and a restart each round
# (CASK_HIST_ROUNDS, default 3), then a read of every block. The assertion is
# histcheck.py's verdict: no FLUSH- or FUA-acknowledged write lost, no stale
# or non-monotonic read, nothing read that nobody wrote, and (--prefix) the
# state after each crash a prefix of the answered writes. A last round with
# sync=disabled (FLUSH and FUA answered without making anything durable) must
# make the checker report lost writes. Workload: histcheck_nbd_kill.py.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
rounds=${CASK_HIST_ROUNDS:-3}
seed=${CASK_HIST_SEED:-$(date +%s)}
echo "seed $seed, $rounds rounds"
w="$(dirname "$0")/histcheck_nbd_kill.py"
hc="$(dirname "$0")/../tools/histcheck.py"
H="$T/history.jsonl"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
for round in $(seq 1 "$rounds"); do
  "$PY" "$w" load "$NBD/tank/v" "$H" "$round" "$CASKD_PID" $((seed + round)) || fail "round $round: load"
  wait "$CASKD_PID" 2>/dev/null || true
  CASKD_PID=
  start_caskd
  "$PY" "$w" verify "$NBD/tank/v" "$H" "$round" || fail "round $round: verify"
done
if ! "$PY" "$hc" --prefix "$H" > "$T/check.out"; then
  head -n 40 "$T/check.out"
  fail "histcheck found violations (seed $seed)"
fi
tail -n 1 "$T/check.out"
# Negative control: with sync=disabled the checker must see lost writes.
cp "$H" "$T/control.jsonl"
$CASK vol set sync=disabled tank/v
r=$((rounds + 1))
"$PY" "$w" load "$NBD/tank/v" "$T/control.jsonl" "$r" "$CASKD_PID" $((seed + 1000)) || fail "control: load"
wait "$CASKD_PID" 2>/dev/null || true
CASKD_PID=
start_caskd
"$PY" "$w" verify "$NBD/tank/v" "$T/control.jsonl" "$r" || fail "control: verify"
if "$PY" "$hc" "$T/control.jsonl" > "$T/control.out"; then
  tail -n 1 "$T/control.out"
  fail "control: the checker stayed silent with sync=disabled"
fi
grep -q "^VIOLATION lost" "$T/control.out" || { tail -n 5 "$T/control.out"; fail "control: no lost write reported"; }
echo "control (sync=disabled): $(tail -n 1 "$T/control.out" | sed 's/.*: //')"
$CASK vol set sync=standard tank/v
stop_caskd
echo ok
