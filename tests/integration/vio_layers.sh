#!/usr/bin/env bash
# vio_layers -- the statistics and fault layers of the volume IO stack through
# a real NBD client (vio_layers.py), and `cask vol iostat`; the test-only fault
# operation is refused by a caskd started without --test-ops.
source "$(dirname "$0")/lib.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
start_caskd --test-ops
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/stats --size 64M
$CASK vol create tank/fault --size 64M
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/vio_layers.py" "$PORT" "$SOCK" "$CASKD_PID"
# the CLI prints the same counters
$CASK vol iostat -j tank/stats > "$T/iostat.json"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ops"]["write"]["count"] == 11, d' "$T/iostat.json"
$CASK vol iostat tank/stats | grep -q "^tank/stats " || fail "iostat line"
$CASK vol iostat -H -p tank/stats 1 2 > "$T/iostat2"
[ "$(wc -l < "$T/iostat2")" -eq 2 ] || fail "iostat INTERVAL COUNT prints COUNT lines"
expect_fail 1 "does not exist" $CASK vol iostat tank/nope
expect_fail 2 "INTERVAL" $CASK vol iostat tank/stats zero
stop_caskd
# without --test-ops there is no fault layer and no fault operation
start_caskd
PYTHONPATH="$(dirname "$0")" "$PY" - "$SOCK" <<'PY'
import sys
from viohelp import Ctl, fail
try:
    Ctl(sys.argv[1]).call("test.vio_fault", name="tank/fault", action="status")
    fail("test.vio_fault accepted without --test-ops")
except RuntimeError as e:
    assert "NOT_SUPPORTED" in str(e), e
PY
echo ok
