#!/usr/bin/env bash
# apply_holds -- `releaseHolds: true` in a manifest (docs/manifests.md) against
# a real caskd: a volume the file says is absent but whose snapshots (or
# its clones' snapshots, with destroy: clones) are held is kept, and the
# plan names each hold; with releaseHolds: true the plan lists one release
# per hold tag, --dry-run changes nothing, apply releases every hold and
# destroys, and applying again has nothing to do. The field is refused
# without absent: true and destroy:.
source "$(dirname "$0")/lib.sh"

A="$CASK"
[ -x "${CASK_ASAN_BUILD:-}/cask" ] && A="$CASK_ASAN_BUILD/cask"
M="$T/m"
mkdir -p "$M"
has() { grep -qF -- "$2" <<<"$1" || fail "output lacks '$2': $1"; }
lacks() { ! grep -qF -- "$2" <<<"$1" || fail "output has '$2': $1"; }
exists() { "$CASK" vol get size "$1" >/dev/null 2>&1; }
holds() { "$CASK" snap holds hp 2>&1 | sort; }

# ---- the field is checked before anything runs ----
printf 'apiVersion: cask/v1\nvolumes:\n  - name: hp/a\n    size: 8M\n    releaseHolds: true\n  - name: hp/b\n    absent: true\n    releaseHolds: true\n  - name: hp/c\n    absent: true\n    destroy: snapshots\n    releaseHolds: maybe\n' >"$M/bad.yaml"
err=$("$A" apply -f "$M/bad.yaml" 2>&1) && fail "bad releaseHolds accepted"
has "$err" "bad.yaml:5:5: volume hp/a: releaseHolds: true goes with absent: true and destroy: snapshots or clones"
has "$err" "bad.yaml:8:5: volume hp/b: releaseHolds: true goes with absent: true and destroy: snapshots or clones"
has "$err" "bad.yaml:12:19: releaseHolds: expected true or false"

start_caskd
printf 'apiVersion: cask/v1\npools:\n  - name: hp\n    vdevs: [hp0.vdev]\n    size: 256M\nvolumes:\n  - name: hp/stay\n    size: 8M\n' >"$M/pool.yaml"
"$A" apply -f "$M/pool.yaml" >/dev/null

# hp/v: two snapshots, three holds; hp/o: a clone hp/oc whose own snapshot is held
"$CASK" vol create hp/v --size 8M
"$CASK" snap create hp/v@a hp/v@b
"$CASK" snap hold t1 hp/v@a
"$CASK" snap hold t2 hp/v@a
"$CASK" snap hold t3 hp/v@b
"$CASK" vol create hp/o --size 8M
"$CASK" snap create hp/o@s
"$CASK" vol clone hp/o@s hp/oc
"$CASK" snap create hp/oc@x
"$CASK" snap hold c1 hp/oc@x
"$CASK" snap hold other hp/stay@k 2>/dev/null && fail "a hold on a snapshot that does not exist"
"$CASK" snap create hp/stay@k
"$CASK" snap hold other hp/stay@k    # not on a volume that goes: never released

# yaml RELEASE: both volumes absent, with their snapshots (and hp/o's clones)
yaml() {
  printf 'apiVersion: cask/v1\nvolumes:\n  - name: hp/stay\n    size: 8M\n'
  printf '  - name: hp/v\n    absent: true\n    destroy: snapshots\n%s' "$1"
  printf '  - name: hp/o\n    absent: true\n    destroy: clones\n%s' "$1"
}

# ---- without the field: kept, and the plan says why, naming every hold ----
yaml "" >"$M/keep.yaml"
hb=$(holds)
out=$("$A" apply -f "$M/keep.yaml")
has "$out" "keep           volume hp/v: absent in the file, but 2 of the snapshots it would destroy are held (t1 on hp/v@a, t2 on hp/v@a, t3 on hp/v@b); apply releases holds only with destroy: and releaseHolds: true in the file"
has "$out" "keep           volume hp/o: absent in the file, but 1 of the snapshots it would destroy is held (c1 on hp/oc@x)"
has "$out" "No changes"
for v in hp/v hp/o hp/oc; do exists $v || fail "$v was destroyed without releaseHolds"; done
[ "$(holds)" = "$hb" ] || fail "holds changed without releaseHolds"

# ---- with it: the plan lists each release; --dry-run changes nothing ----
yaml "    releaseHolds: true
" >"$M/release.yaml"
out=$("$A" apply -f "$M/release.yaml" --dry-run)
has "$out" "release        volume hp/v: hold t1 on hp/v@a (releaseHolds: true)"
has "$out" "release        volume hp/v: hold t2 on hp/v@a (releaseHolds: true)"
has "$out" "release        volume hp/v: hold t3 on hp/v@b (releaseHolds: true)"
has "$out" "release        volume hp/o: hold c1 on hp/oc@x (releaseHolds: true)"
has "$out" "destroy        volume hp/v: absent in the file, with its 2 snapshots"
has "$out" "destroy        volume hp/o: absent in the file, with its 1 snapshot and the clone hp/oc"
has "$out" "Plan: 0 to create, 4 to change, 2 to destroy, 1 unchanged."
lacks "$out" "other"
# every release is listed before every destroy (the run order)
lr=$(grep -n '^ *release ' <<<"$out" | tail -1 | cut -d: -f1)
fd=$(grep -n '^ *destroy ' <<<"$out" | head -1 | cut -d: -f1)
[ "$lr" -lt "$fd" ] || fail "a destroy is planned before a release: $out"
for v in hp/v hp/o hp/oc; do exists $v || fail "--dry-run destroyed $v"; done
[ "$(holds)" = "$hb" ] || fail "--dry-run released a hold"

# ---- apply: releases, then destroys; the unrelated hold stays ----
out=$("$A" apply -f "$M/release.yaml")
has "$out" "done: release hold t1 on hp/v@a"
has "$out" "done: release hold c1 on hp/oc@x"
has "$out" "done: destroy volume hp/v with its snapshots"
has "$out" "done: destroy volume hp/o with its snapshots and their clones"
for v in hp/v hp/o hp/oc; do exists $v && fail "$v was kept"; done
exists hp/stay || fail "hp/stay was destroyed"
h=$(holds)
has "$h" "hp/stay@k"
lacks "$h" "hp/v@"
lacks "$h" "hp/oc@"

# ---- again: nothing to do ----
out=$("$A" apply -f "$M/release.yaml")
has "$out" "No changes: the running state matches $M/release.yaml."

# ---- a failure half-way (a pool whose vdev directory is missing fails after the releases and the
#      destroy): what was done and what was not is reported; applying again converges ----
"$CASK" vol create hp/v --size 8M
"$CASK" snap create hp/v@a
"$CASK" snap hold t1 hp/v@a
{ cat "$M/release.yaml"; printf 'pools:\n  - name: hq\n    vdevs: [%s]\n    size: 64M\n' "$M/later/hq.vdev"; } >"$M/half.yaml"
rc=0; "$A" apply -f "$M/half.yaml" >"$M/half.out" 2>"$M/half.err" || rc=$?
[ $rc -eq 1 ] || fail "failure half-way: exit $rc, want 1 ($(cat "$M/half.err"))"
has "$(cat "$M/half.out")" "done: release hold t1 on hp/v@a"
has "$(cat "$M/half.out")" "done: destroy volume hp/v with its snapshots"
has "$(cat "$M/half.err")" "cask: apply: create pool hq failed:"
exists hp/v && fail "hp/v was kept"
mkdir "$M/later"
out=$("$A" apply -f "$M/half.yaml")
lacks "$out" "release "
has "$out" "done: create pool hq"
has "$("$A" apply -f "$M/half.yaml")" "No changes"

stop_caskd
echo "PASS: apply_holds"
