#!/usr/bin/env bash
# schedules -- snapshot policies run by caskd (docs/manifests.md "Snapshot
# policy", on-disk-format.md 4.8), with the scheduler's clock driven by the
# test (caskd --test-ops --sched-clock, test.sched_clock: test-only), so no
# step waits for real time:
#   * cask apply installs snapshots: policies (and says unchanged the second
#     time); get manifest prints them back and apply of that changes nothing;
#   * a simulated year under every 1h, keep 4, retain {daily 7, weekly 4,
#     monthly 6}: the automatic snapshots equal a model's after every step
#     (schedules.py), including clock jumps back, a policy change without a
#     restart, a held and a cloned snapshot that survive pruning, and
#     hand-made snapshots (one named like an automatic one) never touched;
#   * a restart after a simulated 3-day outage takes one catch-up snapshot;
#   * a full pool's run succeeds (snapshots need no data space) in the pass
#     where another pool's run fails; once snapshots have used the first
#     half of its reserve, a run fails with ENOSPC (logged, the pool stays
#     online), and after space is freed the next slot succeeds;
#   * a failing run (an injected write fault suspends the pool) is logged,
#     counted in the metrics (failures, IO errors, suspended), not retried in
#     its slot, and the next slot succeeds after the clear; a volume whose
#     slot name was taken by hand fails alone, the rest of the batch is taken;
#   * schedule list -j: last and next run (the slot after a failed one);
#   * export and import keep the policies; cask-debug check is clean;
#   * cask schedule list|run|set|remove; the metrics of the scheduler;
#   * a version-5 pool (tests/fixtures/pool-v5.vdev.xz) imports, replays its
#     log, takes a policy and runs it, and is version 7 afterwards.
source "$(dirname "$0")/lib.sh"
need xz
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
A="$CASK"
[ -x "${CASK_ASAN_BUILD:-}/cask" ] && A="$CASK_ASAN_BUILD/cask"
here=$(cd "$(dirname "$0")" && pwd)
has() { grep -qF -- "$2" <<<"$1" || fail "output lacks '$2': $1"; }

# ---- usage, before any daemon ----
h=$("$A" schedule --help)
for w in "list [POOL | POOL/VOL]" "run POOL/VOL" "set POOL/VOL --every DURATION" "remove POOL/VOL" \
  "auto-YYYY-MM-DDTHH:MMZ" "catch-up" "Exit status"; do has "$h" "$w"; done
"$A" --help | grep -q "schedule list|run|set|remove" || fail "cask --help lacks schedule"
expect_fail 2 "needs --every" "$A" schedule set tank/a --keep 3
expect_fail 2 "keeps nothing" "$A" schedule set tank/a --every 1h
expect_fail 2 "whole minutes" "$A" schedule set tank/a --every 90s --keep 1
expect_fail 2 "count from 0 to 100000" "$A" schedule set tank/a --every 1h --keep -1
expect_fail 2 "needs a volume" "$A" schedule run tank
expect_fail 2 "unknown schedule command" "$A" schedule frob
expect_fail 2 "needs --test-ops" "$CASKD" --state "$T/x" --socket "$T/x.sock" --sched-clock 5
grep -q -- "--sched-clock SECONDS" <<<"$("$CASKD" --help)" || fail "caskd --help lacks --sched-clock"

# clock TIME: the scheduler's clock to TIME (test.sched_clock, which runs a pass); prints its report
clock() {
  "$PY" - "$here" "$SOCK" "$1" <<'PY'
import json, sys; sys.path.insert(0, sys.argv[1])
from viohelp import Ctl
print(json.dumps(Ctl(sys.argv[2]).call("test.sched_clock", time=int(sys.argv[3]))))
PY
}

T0=1767225600   # 2026-01-01T00:00Z
MPORT=$(free_port)
start_caskd --test-ops --sched-clock "$T0" --metrics "127.0.0.1:$MPORT"
"$A" pool create tank "$T/tank0.vdev" --size 512M >/dev/null
for v in a b c; do "$A" vol create "tank/$v" --size 16M >/dev/null; done
# hand-made snapshots, one with an automatic-looking name: never pruned, never counted
"$A" snap create tank/a@manual "tank/a@auto-2025-12-31T00:00Z"

# ---- apply installs the policies ----
cat >"$T/m.yaml" <<'EOF'
apiVersion: cask/v1
volumes:
  - name: tank/a
    size: 16M
    snapshots:
      every: 1h
      keep: 4
      retain: {daily: 7, weekly: 4, monthly: 6}
  - name: tank/b
    size: 16M
    snapshots: {every: 1h, keep: 4, retain: {daily: 7, weekly: 4, monthly: 6}}
EOF
out=$("$A" apply -f "$T/m.yaml" --dry-run)
has "$out" "change         volume tank/a: snapshots none -> every 1h, keep 4, retain daily 7, weekly 4, monthly 6"
has "$out" "Plan: 0 to create, 2 to change, 0 to destroy, 0 unchanged."
[ "$("$A" schedule list -H | wc -l)" = 0 ] || fail "--dry-run installed a policy"
out=$("$A" apply -f "$T/m.yaml")
has "$out" "Applied: 2 changes."
out=$("$A" apply -f "$T/m.yaml")
has "$out" "unchanged      volume tank/a: size 16M, snapshots every 1h, keep 4, retain daily 7, weekly 4, monthly 6"
has "$out" "No changes"
"$A" get manifest >"$T/got.yaml"
grep -q "every: 1h" "$T/got.yaml" || fail "get manifest lacks the policy: $(cat "$T/got.yaml")"
out=$("$A" apply -f "$T/got.yaml" --prune)
has "$out" "No changes"

# ---- a simulated year against the model ----
"$PY" "$here/schedules.py" "$SOCK" tank "$T0" "$T/year.json" | tee "$T/year.out"
NOW=$(tail -n 1 "$T/year.out")
grep -q "schedule tank/a: took tank/a@auto-" "$T/caskd.log" || fail "no 'took' line in the log"
grep -q "schedule tank/a: pruned tank/a@auto-" "$T/caskd.log" || fail "no 'pruned' line in the log"
list=$("$A" schedule list -j tank/a)
"$PY" - "$list" <<'PY' || fail "schedule list -j: $list"
import json, sys
l = json.loads(sys.argv[1]); assert len(l) == 1, l
s = l[0]
assert s["name"] == "tank/a" and s["every"] == "1h" and s["keep"] == 4, s
assert s["retain"] == "daily=7,weekly=4,monthly=6", s
assert s["auto"] >= 10 and s["runs"] > 100 and s["failures"] == 0 and s["pruned"] > 100, s
PY

# ---- the metrics of the scheduler ----
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$T/m.txt" || fail "no metrics"
if command -v promtool >/dev/null; then promtool check metrics <"$T/m.txt" || fail "promtool"; fi
grep -q '^cask_schedule_snapshots_total{pool="tank",volume="a"} [1-9]' "$T/m.txt" || fail "no schedule metric"
grep -q '^cask_schedule_failures_total{pool="tank",volume="a"} 0' "$T/m.txt" || fail "schedule failures"

# ---- restart after a 3-day outage: one catch-up snapshot, not a burst ----
before=$("$A" snap list -H -o name tank/c | grep -c @auto- || true)
"$A" schedule set tank/c --every 15m --keep 1000 >/dev/null
clock "$NOW" >/dev/null
n0=$("$A" snap list -H -o name tank/c | grep -c @auto-)
[ "$n0" = $((before + 1)) ] || fail "tank/c: $n0 automatic snapshots, want $((before + 1))"
stop_caskd
LATER=$((NOW + 3 * 86400 + 600))
start_caskd --test-ops --sched-clock "$LATER" --metrics "127.0.0.1:$MPORT"
# the scheduler's first pass at start takes the catch-up; a second pass at the same time adds nothing
for _ in $(seq 1 1200); do
  [ "$("$A" snap list -H -o name tank/c | grep -c @auto-)" -gt "$n0" ] && break
  sleep 0.05
done
clock "$LATER" >/dev/null
n1=$("$A" snap list -H -o name tank/c | grep -c @auto-)
[ "$n1" = $((n0 + 1)) ] || fail "after a 3-day outage tank/c has $n1 automatic snapshots, want one more than $n0"
slot=$(TZ=UTC date -d "@$((LATER - LATER % 900))" +%Y-%m-%dT%H:%MZ)
"$A" snap list -H -o name tank/c | grep -q "tank/c@auto-$slot" || fail "the catch-up is not named after its slot $slot"

# ---- a full pool: its run does not fail while the pool's reserve has room for the snapshot's
# record (a snapshot needs no data space; docs/manifests.md "Failures") ----
"$A" pool create full "$T/full0.vdev" --size 16M >/dev/null
"$A" vol create full/v --size 4M >/dev/null
"$A" vol create full/filler --size 64M >/dev/null
"$PY" - "$NBD/full/filler" <<'PY' || fail "could not fill pool full"
import errno, os, sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
chunk = 1 << 20
for i in range(64):
    try:
        h.pwrite(os.urandom(chunk), i * chunk)   # random: compression cannot make room
        h.flush()
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC, e
        print("pool full: the write of MiB %d failed with ENOSPC" % i)
        break
else:
    sys.exit("64 MiB fitted in a 16 MiB pool")
PY
"$A" schedule set full/v --every 1h --keep 2 >/dev/null

# ---- a failing run is logged and retried at the next slot; other pools' schedules go on ----
"$A" pool inject tank write --persistent
t1=$((LATER - LATER % 3600 + 3600))
r=$(clock "$t1")
grep -q '"failed": \[ *{' <<<"$r" || fail "the pass with a failing device reported no failure: $r"
slotname() { TZ=UTC date -d "@$1" +auto-%Y-%m-%dT%H:%MZ; }
"$PY" - "$r" "full/v@$(slotname "$t1")" <<'PY' || fail "the pass with a failing pool: $r"
import json, sys
r, want = json.loads(sys.argv[1]), sys.argv[2]
assert want in r["taken"], "the full pool's snapshot was not taken in the pass where tank failed"
assert all(f["name"].startswith("tank/") for f in r["failed"]), r["failed"]
assert "tank/a" in {f["name"].split("@")[0] for f in r["failed"]}, r["failed"]
PY
# the failure in the metrics: the schedule's failures, the pool's IO errors and suspension
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$T/mf.txt" || fail "no metrics after the failure"
mval() { awk -v s="$1" '$1 == s { print $2; f = 1 } END { if (!f) print "absent" }' "$T/mf.txt"; }
[ "$(mval 'cask_schedule_failures_total{pool="tank",volume="a"}')" = 1 ] || fail "failures_total after the failure"
[ "$(mval 'cask_pool_suspended{pool="tank"}')" = 1 ] || fail "cask_pool_suspended after the injected fault"
[ "$(mval 'cask_pool_io_errors_total{pool="tank"}')" -ge 1 ] || fail "cask_pool_io_errors_total"
[ "$(mval 'cask_schedule_failures_total{pool="full",volume="v"}')" = 0 ] || fail "the full pool's run failed"
[ "$(mval 'cask_schedule_snapshots_total{pool="full",volume="v"}')" -ge 1 ] || fail "the full pool took nothing"
grep -q "snapshot tank/a@auto-.* failed: .*(tried again at the next slot)" "$T/caskd.log" ||
  fail "the failed run is not logged: $r"
f=$("$A" schedule list -j tank/a | "$PY" -c 'import json,sys; s=json.load(sys.stdin)[0]; print(s["failures"], s["error"] != "-")')
[ "$f" = "1 True" ] || fail "schedule list after the failure: $f"
"$A" pool inject tank none
"$A" pool clear tank
# the same slot again: not retried
r=$(clock "$((t1 + 60))")
grep -q "auto-$(TZ=UTC date -d "@$t1" +%Y-%m-%dT%H:%MZ)" <<<"$("$A" snap list -H -o name tank/a)" &&
  fail "the failed slot was retried within the slot"
# the next slot succeeds; a volume whose slot name was taken by hand fails alone (the batch goes again without it)
t2=$((t1 + 3600))
"$A" snap create "tank/c@$(slotname "$t2")"
r=$(clock "$t2")
"$A" snap list -H -o name tank/a | grep -q "tank/a@$(slotname "$t2")" ||
  fail "the next slot after the failure did not succeed"
"$PY" - "$r" "$(slotname "$t2")" <<'PY' || fail "a batch with one taken name: $r"
import json, sys
r, slot = json.loads(sys.argv[1]), sys.argv[2]
assert "tank/a@" + slot in r["taken"] and "full/v@" + slot in r["taken"], r["taken"]
assert {"name": "tank/c@" + slot, "error": "a snapshot of that name exists"} in r["failed"], r["failed"]
assert not any(f["name"].startswith("tank/a@") for f in r["failed"]), r["failed"]
PY
grep -q "schedule tank/c: snapshot tank/c@$(slotname "$t2") failed: a snapshot of that name exists (tried again at the next slot)" \
  "$T/caskd.log" || fail "the taken name is not logged"
# schedule list -j: last and next run; a slot that failed moves next to the slot after
"$PY" - "$("$A" schedule list -j tank)" "$(slotname "$t2")" "$(slotname "$((t2 + 3600))")" \
  "$(slotname "$((LATER - LATER % 900))")" "$(slotname "$((t2 + 900))")" <<'PY' || fail "schedule list -j after the failures"
import json, sys
l = {s["name"]: s for s in json.loads(sys.argv[1])}
a_last, a_next, c_last, c_next = (x[len("auto-"):] for x in sys.argv[2:6])
a, c = l["tank/a"], l["tank/c"]
assert (a["last"], a["next"], a["failures"], a["error"]) == (a_last, a_next, 1, "-"), a
assert (c["last"], c["next"], c["failures"], c["error"]) == (c_last, c_next, 2, "a snapshot of that name exists"), c
assert set(a) == {"name", "every", "keep", "retain", "auto", "last", "next", "runs", "failures", "pruned", "error"}, a
PY
"$A" schedule list -H -o name,failures,error tank/a | grep -q $'tank/a\t1\t-' || fail "a success did not clear the error, or the failure was not counted"

# ---- cask schedule run / set / remove ----
# two minutes past a slot of every policy here: a run's name (the minute) is nobody's slot
clock "$((t1 + 3600 + 120))" >/dev/null
snap=$("$A" schedule run tank/b)
[[ "$snap" == tank/b@auto-* ]] || fail "schedule run printed '$snap'"
expect_fail 1 "SNAPSHOT_EXISTS" "$A" schedule run tank/b   # the same minute again
expect_fail 1 "no snapshot policy" "$A" schedule run tank/nope
"$A" schedule set tank/b --every 1d --keep 2 --weekly 3
"$A" schedule list -H -o name,every,keep,retain tank/b | grep -q $'tank/b\t1d\t2\tweekly=3' || fail "schedule set"
"$A" schedule remove tank/b
[ -z "$("$A" schedule list -H tank/b)" ] || fail "schedule remove"
expect_fail 1 "has no snapshot policy" "$A" schedule remove tank/b
"$A" snap list -H -o name tank/b | grep -q "@auto-" || fail "remove took the snapshots with it"

# ---- a full pool whose reserve is used up by snapshots: one run fails (ENOSPC, logged; the pool
# stays online and the other pool's run is taken), space is freed, the next slot succeeds ----
# hand-made snapshots until not even one more is taken: batches of 100, then 10, then 1
made=0
for size in 100 10 1; do
  while [ "$made" -lt 4000 ]; do
    names=$(for i in $(seq 1 "$size"); do printf 'full/v@fill-%d ' $((made + i)); done)
    # shellcheck disable=SC2086
    if ! out=$("$A" snap create $names 2>&1); then
      grep -q "pool full is full: no room for the record" <<<"$out" || fail "fill at $made: $out"
      break
    fi
    made=$((made + size))
  done
done
[ "$made" -lt 4000 ] || fail "4,000 snapshots on a full 16 MiB pool were never refused"
echo "full pool: $made hand-made snapshots, then even one more refused with ENOSPC"
"$A" pool list -H -o name,health | grep -qx $'full\tONLINE' || fail "the refused snapshots suspended the pool"
t3=$((t2 + 3600))
r=$(clock "$t3")
"$PY" - "$r" "$(slotname "$t3")" <<'PY' || fail "the pass on the full pool: $r"
import json, sys
r, slot = json.loads(sys.argv[1]), sys.argv[2]
f = [x for x in r["failed"] if x["name"] == "full/v@" + slot]
assert f and "pool full is full" in f[0]["error"], r["failed"]
assert "tank/a@" + slot in r["taken"], r["taken"]
PY
grep -q "schedule full/v: snapshot full/v@$(slotname "$t3") failed: pool full is full: .*(tried again at the next slot)" \
  "$T/caskd.log" || fail "the full pool's failed run is not logged"
"$A" pool list -H -o name,health | grep -qx $'full\tONLINE' || fail "the failed run suspended the pool"
# free space: the volume that filled the pool goes (destroy works on a full pool); the next slot succeeds
"$A" vol destroy full/filler || fail "destroying a volume on the full pool"
t4=$((t3 + 3600))
r=$(clock "$t4")
grep -qF "\"full/v@$(slotname "$t4")\"" <<<"$r" && ! grep -q '"failed": \[ *{' <<<"$r" ||
  fail "the next slot after freeing space did not succeed: $r"
"$A" schedule list -H -o name,failures,error full/v | grep -q $'full/v\t1\t-' || fail "full/v: $("$A" schedule list full/v)"
"$A" pool status full | grep -q "errors: 0 checksum, 0 io" || fail "the full pool has errors: $("$A" pool status full)"
clock "$((t4 + 120))" >/dev/null   # two minutes past every slot again: a schedule run's minute is nobody's slot

# ---- export/import keeps the policies and the automatic snapshots ----
"$A" schedule list -H -o name,every,keep,retain >"$T/before"
"$A" snap list -H -o name tank >"$T/snaps.before"
"$A" pool export tank
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" >"$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
"$A" pool import --path "$T/tank0.vdev" >/dev/null
"$A" schedule list -H -o name,every,keep,retain >"$T/after"
diff "$T/before" "$T/after" || fail "export/import changed the policies"
"$A" snap list -H -o name tank >"$T/snaps.after"
diff "$T/snaps.before" "$T/snaps.after" || fail "export/import changed the snapshots"

# ---- a version-5 pool: imports, replays, takes a policy, becomes version 7 ----
xz -dc "$here/../fixtures/pool-v5.vdev.xz" >"$T/old5.vdev"
"$CASK_BUILD/cask-debug" labels "$T/old5.vdev" | grep -q "version 5" || fail "the fixture is not a version-5 pool"
"$CASK_BUILD/cask-debug" tree "$T/old5.vdev" >"$T/tree5.out"
grep -q "format version 5" "$T/tree5.out" || fail "the fixture's MOS is not version 5"
[ "$("$A" pool import --path "$T/old5.vdev")" = old5 ] || fail "import of the version-5 pool"
"$PY" - "$NBD" <<'PY' || fail "the version-5 pool's data"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1] + "/old5/v")
assert h.pread(4096, 0) == b"\x77" * 4096, "the logged write was not replayed"
for i in range(64):
    assert h.pread(4096, i * 65536 + 4096) == bytes([i + 1]) * 4096, "chunk %d" % i
PY
"$A" snap holds old5 | grep -q "old5/v@s1.*keep" || fail "the fixture's hold"
"$A" schedule set old5/v --every 1h --keep 2
s=$("$A" schedule run old5/v)
"$A" pool export old5
"$CASK_BUILD/cask-debug" check "$T/old5.vdev" >"$T/check5.out" || { cat "$T/check5.out"; fail "check of the upgraded pool"; }
"$CASK_BUILD/cask-debug" tree "$T/old5.vdev" >"$T/tree7.out"
grep -q "format version 7" "$T/tree7.out" || fail "the upgraded pool's MOS is not version 7"
"$A" pool import --path "$T/old5.vdev" >/dev/null
"$A" schedule list -H -o name,every,keep old5 | grep -q $'old5/v\t1h\t2' || fail "the upgraded pool lost its policy"
"$A" snap list -H -o name old5/v | grep -qx "$s" || fail "the upgraded pool lost $s"
stop_caskd
echo "PASS: schedules"
