#!/usr/bin/env bash
# nbd_many -- 1,000 concurrent NBD connections on a fixed number of caskd
# threads, the 1,025th refused by the connection cap (nbd_many.py).
source "$(dirname "$0")/lib.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 2200 ] || skip "descriptor limit $(ulimit -Hn) is below 2200"
ulimit -n "$(ulimit -Hn)"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/v --size 64M
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/nbd_many.py" "$PORT" "$CASKD_PID"
kill -0 "$CASKD_PID" || fail "caskd died"
grep -q "refused: the connection limit (1024) is reached" "$T/caskd.log" || fail "no refusal logged"
stop_caskd
echo ok
