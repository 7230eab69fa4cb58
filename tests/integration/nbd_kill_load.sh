#!/usr/bin/env bash
# nbd_kill_load -- kill -9 caskd at random moments while four NBD clients
# write with FLUSH and FUA (CASK_KILL_ROUNDS rounds, default 20), restart
# it, and check every block against what the clients were told: no answered
# FUA write and no write covered by an answered FLUSH is ever lost, and no
# block reads bytes nobody wrote (checker: nbd_kill_load.py). After the
# last round the pool is exported and cask-debug check must be clean. A
# last round with sync=disabled proves the checker catches lost writes.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
rounds=${CASK_KILL_ROUNDS:-20}
seed=${CASK_KILL_SEED:-$(date +%s)}
echo "seed $seed, $rounds rounds"
checker="$(dirname "$0")/nbd_kill_load.py"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
"$PY" "$checker" init "$T/model.json" 4096
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  "$PY" "$checker" load "$NBD/tank/v" "$T/model.json" "$CASKD_PID" $((seed + round)) ||
    fail "round $round: the load phase failed"
  wait "$CASKD_PID" 2>/dev/null || true
  CASKD_PID=
  start_caskd
  "$PY" "$checker" verify "$NBD/tank/v" "$T/model.json" ||
    fail "round $round: acknowledged data lost (seed $seed)"
done
# Negative control: with sync=disabled FLUSH and FUA are answered without
# making anything durable, and the checker must notice the loss.
$CASK vol set sync=disabled tank/v
"$PY" "$checker" load "$NBD/tank/v" "$T/model.json" "$CASKD_PID" $((seed + 1000)) || fail "control: load failed"
wait "$CASKD_PID" 2>/dev/null || true
CASKD_PID=
start_caskd
if "$PY" "$checker" verify "$NBD/tank/v" "$T/model.json" > "$T/control.out"; then
  fail "control: the checker did not notice lost writes with sync=disabled"
fi
echo "control (sync=disabled): the checker reports $(grep -c 'lost an acknowledged' "$T/control.out") lost writes, as it must"
$CASK vol set sync=standard tank/v
$CASK pool status tank
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check after the kills"; }
tail -n 1 "$T/check.out"
echo "ok: $rounds kills, nothing acknowledged was lost"
