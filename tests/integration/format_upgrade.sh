#!/usr/bin/env bash
# format_upgrade -- a pool made by cask before the intent log (format
# version 1; tests/fixtures/pool-v1.vdev.xz: 16M pool "old", volume old/v
# of 4M whose 64K chunk i holds the byte i+1) imports, gets its log region,
# keeps its data, makes FLUSH durable through the log across a kill -9, and
# passes cask-debug check.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
need xz
xz -dc "$(dirname "$0")/../fixtures/pool-v1.vdev.xz" > "$T/old0.vdev"
"$CASK_BUILD/cask-debug" labels "$T/old0.vdev" | grep -q "version 1" || fail "the fixture is not a version-1 pool"
start_caskd
[ "$($CASK pool import --path "$T/old0.vdev")" = old ] || fail "import did not name pool old"
$CASK pool status old | tee "$T/st.out"
grep -q "log: .*region" "$T/st.out" || fail "the upgraded pool has no intent log region"
CASK_TEST_NBD="$NBD" "$PY" - <<'PY'
import nbd, os, sys
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/old/v")
for i in range(64):
    if h.pread(4096, i * 65536) != bytes([i + 1]) * 4096:
        sys.exit("chunk %d of the version-1 pool changed" % i)
h.pwrite(b"\xaa" * 4096, 4096); h.flush()        # the first FLUSH commits the upgrade
h.pwrite(b"\xbb" * 4096, 8192); h.flush()        # this one goes through the log
h.pwrite(b"\xcc" * 65536, 65536 + 4096, nbd.CMD_FLAG_FUA)   # FUA, written in place
PY
kill -KILL "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
# the chain, read-only, before anything replays it
"$CASK_BUILD/cask-debug" log "$T/old0.vdev" | tee "$T/log.out"
grep -q "write-in-place .* (replays)" "$T/log.out" || fail "cask-debug log shows no write-in-place record to replay"
start_caskd
CASK_TEST_NBD="$NBD" "$PY" - <<'PY'
import nbd, os, sys
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/old/v")
assert h.pread(4096, 4096) == b"\xaa" * 4096, "first flushed write lost"
assert h.pread(4096, 8192) == b"\xbb" * 4096, "logged write lost"
assert h.pread(65536, 65536 + 4096) == b"\xcc" * 65536, "FUA write lost"
assert h.pread(4096, 0) == bytes([1]) * 4096
assert h.pread(4096, 63 * 65536) == bytes([64]) * 4096
PY
n=$($CASK pool status -j old | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["intent_log"]["replayed"])')
echo "records replayed after the kill: $n"
[ "$n" -ge 2 ] || fail "the logged writes did not come from the intent log ($n records replayed)"
stop_caskd
"$CASK_BUILD/cask-debug" uberblocks "$T/old0.vdev" > "$T/ub.out"
"$CASK_BUILD/cask-debug" check "$T/old0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
tail -n 1 "$T/check.out"
echo ok
