#!/usr/bin/env bash
# apply -- `cask apply -f FILE` and `cask get manifest` against a real caskd
# (docs/manifests.md): create from nothing, apply again (no change), change
# a property and grow a size, a file with five different errors (all five
# reported with line:column, nothing changes), --dry-run, --prune with and
# without (a volume with a snapshot is never destroyed), the round trip
# export -> apply -> no change, a failure halfway that converges when
# applied again, and bad files refused clearly (bad YAML, unknown fields,
# wrong types, sizes -1 / 16E / 0, bad snapshot policies, reserved fields);
# a snapshot policy is installed with its volume and shows unchanged after.
source "$(dirname "$0")/lib.sh"

# apply runs from the sanitizer build when there is one (leaks and UB fail the test)
A="$CASK"
[ -x "${CASK_ASAN_BUILD:-}/cask" ] && A="$CASK_ASAN_BUILD/cask"
M="$T/m"
mkdir -p "$M"

# state: every volume's settings and guid (a recreated volume has a new guid)
state() { "$CASK" vol list -H -p -o name,size,compression,checksum,sync,volblocksize,guid; }
has() { grep -qF -- "$2" <<<"$1" || fail "output lacks '$2': $1"; }
lacks() { ! grep -qF -- "$2" <<<"$1" || fail "output has '$2': $1"; }

# ---- usage, before any daemon ----
expect_fail 2 "apply needs -f FILE" "$A" apply
expect_fail 2 "unknown option '--frob'" "$A" apply -f x --frob
expect_fail 2 "not 'extra'" "$A" apply -f x extra
help=$("$A" apply --help)
for o in "-f, --file FILE" "--dry-run" "--prune" "Exit status" "apiVersion: cask/v1"; do has "$help" "$o"; done
"$A" get --help | grep >/dev/null -c "usage: cask get manifest" || fail "get --help"
"$A" --help | grep >/dev/null -c "apply -f FILE" || fail "cask --help lacks apply"
expect_fail 2 "unknown get command" "$A" get frob
expect_fail 1 "cannot reach caskd" "$A" --socket "$T/nope.sock" get manifest
expect_fail 2 "cannot open" "$A" apply -f "$M/missing.yaml"
printf 'apiVersion: cask/v1\n' >"$M/min.yaml"
expect_fail 1 "cannot reach caskd" "$A" --socket "$T/nope.sock" apply -f "$M/min.yaml"

start_caskd

# ---- the example of the issue, exactly as written: checked and planned (a dry run: /var/lib/cask is not ours) ----
cat >"$M/example.yaml" <<'EOF'
apiVersion: cask/v1
pools:
  - name: tank
    vdevs: [/var/lib/cask/tank0.vdev]
    size: 100G
volumes:
  - name: tank/db
    size: 20G
    properties: {compression: zstd, sync: standard}
    snapshots:
      every: 15m          # frequent snapshots, keep the newest 8
      keep: 8
      retain: {hourly: 24, daily: 7, weekly: 4, monthly: 6}
EOF
out=$("$A" apply -f "$M/example.yaml" --dry-run)
has "$out" "create         pool   tank: vdevs [/var/lib/cask/tank0.vdev], size 100G"
has "$out" "create         volume tank/db: size 20G, compression zstd, sync standard, snapshots every 15m, keep 8, retain hourly 24, daily 7, weekly 4, monthly 6"
has "$out" "Plan: 2 to create, 0 to change, 0 to destroy, 0 unchanged."
[ -z "$("$CASK" pool list -H)" ] || fail "a dry run created a pool"

# ---- create from nothing ----
cat >"$M/a.yaml" <<'EOF'
apiVersion: cask/v1
pools:
  - name: tank
    vdevs: [tank0.vdev]          # relative: next to this file
    size: 256M
volumes:
  - name: tank/db
    size: 1G
    properties: {compression: zstd, sync: standard}
  - name: tank/web
    size: 64M
    properties:
      checksum: sha256
      volblocksize: 16K
EOF
out=$("$A" apply -f "$M/a.yaml")
has "$out" "create         pool   tank: vdevs [$M/tank0.vdev], size 256M"
has "$out" "create         volume tank/db: size 1G, compression zstd, sync standard"
has "$out" "Plan: 3 to create, 0 to change, 0 to destroy, 0 unchanged."
has "$out" "Applied: 3 changes."
[ -f "$M/tank0.vdev" ] && [ "$(stat -c %s "$M/tank0.vdev")" -eq $((256 << 20)) ] || fail "vdev not created at 256M"
[ "$("$CASK" vol list -H -p -o name,size,compression,checksum,sync,volblocksize)" = "$(printf \
  'tank/db\t1073741824\tzstd\txxh128\tstandard\t4096\ntank/web\t67108864\tlz4\tsha256\tstandard\t16384')" ] \
  || fail "state after create: $(state)"

# ---- apply again: no change, says so, exit 0 ----
before=$(state)
out=$("$A" apply -f "$M/a.yaml")
has "$out" "No changes: the running state matches $M/a.yaml."
has "$out" "Plan: 0 to create, 0 to change, 0 to destroy, 3 unchanged."
lacks "$out" "done:"
[ "$(state)" = "$before" ] || fail "second apply changed the state"

# ---- change a property and grow a size ----
sed -e 's/compression: zstd/compression: lz4/' -e 's/size: 1G/size: 2G/' "$M/a.yaml" >"$M/b.yaml"
out=$("$A" apply -f "$M/b.yaml")
has "$out" "change         volume tank/db: size 1G -> 2G"
has "$out" "change         volume tank/db: compression zstd -> lz4"
has "$out" "unchanged      volume tank/web"
has "$out" "done: grow volume tank/db 1G -> 2G"
has "$out" "done: set compression=lz4 on tank/db"
[ "$("$CASK" vol list -H -p -o size,compression tank | head -1)" = "$(printf '2147483648\tlz4')" ] \
  || fail "grow/set not applied: $(state)"
"$A" apply -f "$M/b.yaml" | grep -q "No changes" || fail "b.yaml not converged"
# an alias means the same value: on == lz4 is unchanged
sed -e 's/compression: lz4/compression: "on"/' "$M/b.yaml" >"$M/b2.yaml"
"$A" apply -f "$M/b2.yaml" | grep -q "No changes" || fail "compression: on differs from lz4"

# ---- five different errors: all reported with line:column, nothing changes ----
before=$(state)
cat >"$M/five.yaml" <<'EOF'
apiVersion: cask/v1
pools:
  - name: tank
    vdevs: [tank0.vdev]
    size: 256M
    colour: blue
volumes:
  - name: tank/db
    size: -1
  - name: tank/new
    size: 1G
    properties: {compression: gzip}
  - name: nopool/x
    size: 1G
  - name: tank/web
    size: [64M]
EOF
rc=0
err=$("$A" apply -f "$M/five.yaml" 2>&1 >/dev/null) || rc=$?
[ $rc -eq 2 ] || fail "five errors: exit $rc, want 2"
has "$err" "$M/five.yaml:6:5: pool tank: unknown field 'colour' (one of: name, vdevs, size)"
has "$err" "$M/five.yaml:9:11: volume tank/db: size: bad size '-1': a size cannot be negative"
has "$err" "$M/five.yaml:12:31: volume tank/new: bad compression 'gzip' (off, lz4, zstd)"
has "$err" "$M/five.yaml:13:5: volume nopool/x: pool nopool is neither declared under pools: nor exists"
has "$err" "$M/five.yaml:16:11: volume tank/web: size: expected a size"
has "$err" "cask: 5 errors in $M/five.yaml; nothing was changed"
[ "$(grep -c "^$M/five.yaml:[0-9]*:[0-9]*: " <<<"$err")" -eq 5 ] || fail "want exactly 5 positioned errors: $err"
[ "$(state)" = "$before" ] || fail "a file with errors changed the state"

# ---- --dry-run changes nothing ----
cat >"$M/dry.yaml" <<'EOF'
apiVersion: cask/v1
volumes:
  - name: tank/db
    size: 4G
    properties: {sync: always}
  - name: tank/dry
    size: 1G
EOF
out=$("$A" apply -f "$M/dry.yaml" --dry-run)
has "$out" "create         volume tank/dry: size 1G"
has "$out" "change         volume tank/db: size 2G -> 4G"
has "$out" "change         volume tank/db: sync standard -> always"
has "$out" "Dry run: nothing was changed."
lacks "$out" "done:"
[ "$(state)" = "$before" ] || fail "--dry-run changed the state"

# ---- --prune, without and with ----
"$CASK" vol create tank/old --size 8M
"$CASK" vol create tank/snapped --size 8M
"$CASK" snap create tank/snapped@keepme
"$CASK" vol create tank/held --size 8M
"$CASK" snap create tank/held@h
"$CASK" snap hold backup tank/held@h
sed -e 's/size: 64M/size: 32M/' "$M/b.yaml" >"$M/shrink.yaml"    # tank/web 64M -> 32M
before=$(state)
out=$("$A" apply -f "$M/shrink.yaml")
has "$out" "would-destroy  volume tank/old: not in the file; only with --prune"
has "$out" "would-shrink   volume tank/web: size 64M -> 32M"
has "$out" "keep           volume tank/snapped: not in the file, but it has 1 snapshot (0 held, 0 with clones)"
has "$out" "keep           volume tank/held: not in the file, but it has 1 snapshot (1 held, 0 with clones)"
has "$out" "keep           volume tank/held: not in the file, but it has 1 snapshot (1 held, 0 with clones); --prune never destroys a volume with snapshots, clones or holds (absent: true with destroy: and, for holds, releaseHolds: true in the file does)"
has "$out" "except for 2 destructive changes that only --prune makes"
[ "$(state)" = "$before" ] || fail "apply without --prune destroyed or shrank"
# destructive actions come first in the plan
first=$(grep -n "would-shrink\|would-destroy\|keep  " <<<"$out" | tail -1 | cut -d: -f1)
firstsafe=$(grep -n "unchanged" <<<"$out" | head -1 | cut -d: -f1)
[ "$first" -lt "$firstsafe" ] || fail "destructive items not listed first: $out"
out=$("$A" apply -f "$M/shrink.yaml" --prune)
has "$out" "destroy        volume tank/old: not in the file"
has "$out" "shrink         volume tank/web: size 64M -> 32M (discards the data past 32M)"
has "$out" "done: destroy volume tank/old"
has "$out" "done: shrink volume tank/web 64M -> 32M"
"$CASK" vol get size tank/old >/dev/null 2>&1 && fail "--prune kept tank/old"
"$CASK" vol get size tank/snapped >/dev/null || fail "--prune destroyed a volume with a snapshot"
"$CASK" vol get size tank/held >/dev/null || fail "--prune destroyed a volume with a held snapshot"
[ "$("$CASK" snap list tank/snapped -H -o name)" = "tank/snapped@keepme" ] || fail "snapshot lost"
[ "$("$CASK" vol list -H -p -o size tank | sed -n 4p)" = "33554432" ] || fail "shrink not applied: $(state)"
out=$("$A" apply -f "$M/shrink.yaml" --prune)
has "$out" "No changes: the running state matches $M/shrink.yaml."
# a clone's origin keeps: the clone is in the file, its origin volume is not
"$CASK" vol create tank/base --size 8M
"$CASK" snap create tank/base@s
"$CASK" vol clone tank/base@s tank/clone
printf '  - name: tank/clone\n    size: 8M\n' | cat "$M/shrink.yaml" - >"$M/clone.yaml"
out=$("$A" apply -f "$M/clone.yaml" --prune)
has "$out" "keep           volume tank/base: not in the file, but it has 1 snapshot (0 held, 1 with clones)"
"$CASK" vol get size tank/base >/dev/null || fail "--prune destroyed a clone's origin"

# ---- round trip: get manifest -> apply -> no change ----
"$A" get manifest >"$M/export.yaml"
has "$(cat "$M/export.yaml")" "apiVersion: cask/v1"
has "$(cat "$M/export.yaml")" "\"$M/tank0.vdev\""
has "$(cat "$M/export.yaml")" "# a clone of tank/base@s (exported as a plain volume)"
before=$(state)
for p in "" --prune; do
  out=$("$A" apply -f "$M/export.yaml" $p)
  has "$out" "No changes: the running state matches $M/export.yaml."
  has "$out" "0 to create, 0 to change, 0 to destroy"
done
out=$("$A" get manifest tank | "$A" apply -f - --prune)
has "$out" "No changes: the running state matches <stdin>."
[ "$(state)" = "$before" ] || fail "round trip changed the state"
[ "$(grep -c '^  - name: "tank/' "$M/export.yaml")" -eq "$(state | wc -l)" ] || fail "export lacks volumes"
expect_fail 1 "pool nope does not exist" "$A" get manifest nope

# ---- a failure halfway: what was done and what was not; applying again converges ----
cat >"$M/half.yaml" <<EOF
apiVersion: cask/v1
pools:
  - name: p1
    vdevs: [$M/p1.vdev]
    size: 64M
  - name: p2
    vdevs: [$M/later/p2.vdev]
    size: 64M
volumes:
  - name: p1/v
    size: 8M
  - name: p2/v
    size: 8M
EOF
rc=0
err=$("$A" apply -f "$M/half.yaml" 2>&1 >"$M/half.out") || rc=$?
[ $rc -eq 1 ] || fail "failure halfway: exit $rc, want 1 ($err)"
has "$(cat "$M/half.out")" "done: create pool p1"
has "$err" "cask: apply: create pool p2 failed:"
has "$err" "apply stopped after 1 of 4 changes; not done:"
has "$err" "  create volume p1/v"
has "$err" "  create volume p2/v"
"$CASK" pool status p1 >/dev/null || fail "p1 not created before the failure"
mkdir "$M/later"
out=$("$A" apply -f "$M/half.yaml")
has "$out" "unchanged      pool   p1"
has "$out" "Applied: 3 changes."
[ "$("$CASK" vol list -H -o name p2)" = "p2/v" ] || fail "second apply did not converge"
"$A" apply -f "$M/half.yaml" | grep -q "No changes" || fail "half.yaml not converged"

# ---- the running state refuses what cannot change ----
cat >"$M/fixed.yaml" <<EOF
apiVersion: cask/v1
pools:
  - name: p1
    vdevs: [$M/other.vdev]
    size: 128M
volumes:
  - name: p1/v
    size: 8M
    properties: {volblocksize: 8K}
EOF
before=$(state)
rc=0
err=$("$A" apply -f "$M/fixed.yaml" 2>&1 >/dev/null) || rc=$?
[ $rc -eq 2 ] || fail "fixed fields: exit $rc"
has "$err" "fixed.yaml:4:12: pool p1 exists with other vdevs [$M/p1.vdev]"
has "$err" "fixed.yaml:5:11: pool p1: its vdev files are 64M, the file says 128M; a pool cannot be resized"
has "$err" "fixed.yaml:9:32: volume p1/v: volblocksize is fixed when a volume is created (it has 4K, the file says 8K)"
[ "$(state)" = "$before" ] || fail "refused file changed the state"

# ---- bad files, each refused clearly (one line, with its position) ----
bad() { # NAME PATTERN CONTENT
  printf '%s' "$3" >"$M/$1.yaml"
  expect_fail 2 "$2" "$A" apply -f "$M/$1.yaml"
}
bad yaml "$M/yaml.yaml:3:3: not valid YAML" $'apiVersion: cask/v1\nvolumes: [\n  - name: x\n'
bad tabs "not valid YAML" $'apiVersion: cask/v1\nvolumes:\n\t- name: x\n'
bad twodocs "3:1: a second YAML document" $'apiVersion: cask/v1\n---\n---\nvolumes: []\n'
bad empty "empty manifest" ''
bad noversion "1:1: apiVersion is missing" $'volumes: []\n'
bad version "1:13: unsupported apiVersion 'cask/v2'" $'apiVersion: cask/v2\n'
bad topfield "2:1: manifest: unknown field 'kind'" $'apiVersion: cask/v1\nkind: Pool\n'
bad volfield "5:5: volume tank/z: unknown field 'sise'" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/z\n    size: 1G\n    sise: 1G\n'
bad dupkey "5:5: volume tank/z: field 'size' given twice" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/z\n    size: 1G\n    size: 2G\n'
bad prop "3:43: volume tank/z: properties: unknown property 'color' (one of: compression, checksum, sync, volblocksize)" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 1G, properties: {color: red}}\n'
bad syncval "3:49: volume tank/z: bad sync 'sometimes' (standard, always, disabled)" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 1G, properties: {sync: sometimes}}\n'
bad typepools "2:8: pools: expected a list, got a mapping" $'apiVersion: cask/v1\npools: {name: x}\n'
bad typevdevs "5:12: pool q: vdevs: expected a list, got a scalar" $'apiVersion: cask/v1\npools:\n  - name: q\n    size: 64M\n    vdevs: /x\n'
bad typename "3:11: volume name: expected a string, got a list" $'apiVersion: cask/v1\nvolumes:\n  - name: [a]\n    size: 1G\n'
bad typesize "3:26: volume tank/z: size: expected a size" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: {a: 1}}\n'
bad minus1 "3:26: volume tank/z: size: bad size '-1': a size cannot be negative" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: -1}\n'
bad e16 "bad size '16E': too large (at most 16E minus one byte)" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 16E}\n'
bad e2 "size 2E is too large (at most 1E with volblocksize 4K)" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 2E}\n'
bad zero "bad size '0': a size must be greater than zero" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 0}\n'
bad unit "bad size '5Q': unknown unit" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 5Q}\n'
bad frac "bad size '1.5': not a whole number of bytes" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 1.5}\n'
bad align "size 5000 is not a multiple of the block size (4096)" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 5000}\n'
truncate -s 32M "$M/pre.vdev"
bad presize "pool q: vdev $M/pre.vdev exists and is 32M, the file says size 64M" $'apiVersion: cask/v1\npools:\n  - {name: q, vdevs: [pre.vdev], size: 64M}\n'
bad decimals "too many decimal places" $'apiVersion: cask/v1\nvolumes:\n  - {name: tank/z, size: 1.00000000000000000001G}\n'
bad poolsize "pool q: size: 1M is too small" $'apiVersion: cask/v1\npools:\n  - {name: q, vdevs: [a], size: 1M}\n'
bad poolname "bad pool name 'bad/name'" $'apiVersion: cask/v1\npools:\n  - {name: bad/name, vdevs: [a], size: 64M}\n'
bad volname "volume name 'justaname' is not of the form POOL/VOL" $'apiVersion: cask/v1\nvolumes:\n  - {name: justaname, size: 1G}\n'
bad novdev "vdev $M/nothere.vdev does not exist; give the pool a size: to create it" $'apiVersion: cask/v1\npools:\n  - {name: q, vdevs: [nothere.vdev]}\n'
bad dupvdev "4:23: vdev $M/a.vdev is named twice" $'apiVersion: cask/v1\npools:\n  - {name: q, vdevs: [a.vdev], size: 64M}\n  - {name: r, vdevs: [a.vdev], size: 64M}\n'
bad duppool "4:5: pool q is declared twice (first at line 3)" $'apiVersion: cask/v1\npools:\n  - {name: q, vdevs: [a.vdev], size: 64M}\n  - {name: q, vdevs: [b.vdev], size: 64M}\n'
bad replicas "5:5: volume tank/db: replicas: not supported yet" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/db\n    size: 2G\n    replicas: [host2:7000/tank]\n'
bad consistency "5:5: volume tank/db: consistency: not supported yet" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/db\n    size: 2G\n    consistency: quorum\n'
bad keepstr "snapshots: keep: expected an integer, got a quoted string" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/db\n    size: 2G\n    snapshots: {every: 1h, keep: "8"}\n'
bad every "snapshots: every: bad duration '90s'" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/db\n    size: 2G\n    snapshots: {every: 90s, keep: 8}\n'
bad keepsnothing "the policy keeps nothing" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/db\n    size: 2G\n    snapshots: {every: 1h}\n'
bad retainfield "snapshots: retain: unknown field 'yearly'" $'apiVersion: cask/v1\nvolumes:\n  - name: tank/db\n    size: 2G\n    snapshots: {every: 1h, retain: {yearly: 1}}\n'
[ "$(state)" = "$before" ] || fail "a refused file changed the state"

# ---- a snapshot policy: --dry-run shows it, apply installs it with the volume, then unchanged ----
cat >"$M/sched.yaml" <<'EOF'
apiVersion: cask/v1
volumes:
  - name: tank/db
    size: 2G
  - name: tank/sched
    size: 1G
    snapshots:
      every: 15m          # frequent snapshots, keep the newest 8
      keep: 8
      retain: {hourly: 24, daily: 7, weekly: 4, monthly: 6}
EOF
out=$("$A" apply -f "$M/sched.yaml" --dry-run)
has "$out" "create         volume tank/sched: size 1G, snapshots every 15m, keep 8, retain hourly 24, daily 7, weekly 4, monthly 6"
has "$out" "Dry run: nothing was changed."
[ "$(state)" = "$before" ] || fail "a dry run changed the state"
[ -z "$("$CASK" schedule list -H)" ] || fail "a dry run installed a policy"
out=$("$A" apply -f "$M/sched.yaml")
has "$out" "done: create volume tank/sched with its snapshot policy"
"$CASK" schedule list -H -o name,every,keep,retain | grep -q $'tank/sched\t15m\t8\thourly=24,daily=7,weekly=4,monthly=6' ||
  fail "the policy is not installed: $("$CASK" schedule list)"
out=$("$A" apply -f "$M/sched.yaml")
has "$out" "unchanged      volume tank/sched: size 1G, snapshots every 15m, keep 8, retain hourly 24, daily 7, weekly 4, monthly 6"
has "$out" "No changes"
# a changed policy is one change line; a file without snapshots: leaves the policy alone
sed -i 's/keep: 8/keep: 9/' "$M/sched.yaml"
out=$("$A" apply -f "$M/sched.yaml")
has "$out" "change         volume tank/sched: snapshots every 15m, keep 8, retain hourly 24, daily 7, weekly 4, monthly 6 -> every 15m, keep 9, retain hourly 24, daily 7, weekly 4, monthly 6"
printf 'apiVersion: cask/v1\nvolumes:\n  - name: tank/sched\n    size: 1G\n' >"$M/nosched.yaml"
has "$("$A" apply -f "$M/nosched.yaml")" "No changes"
"$CASK" schedule list -H -o name,keep | grep -q $'tank/sched\t9' || fail "a file without snapshots: changed the policy"
# the round trip keeps it
"$A" get manifest >"$M/sched-rt.yaml"
grep -q "keep: 9" "$M/sched-rt.yaml" || fail "get manifest lacks the policy"
has "$("$A" apply -f "$M/sched-rt.yaml" --prune)" "No changes"
before=$(state)

# ---- explicit destructive fields: absent: true (with destroy:), allowShrink: true ----
"$CASK" vol create tank/gone --size 8M
"$CASK" vol create tank/gone-s --size 8M
"$CASK" snap create tank/gone-s@a tank/gone-s@b
"$CASK" vol create tank/gone-c --size 8M
"$CASK" snap create tank/gone-c@o
"$CASK" vol clone tank/gone-c@o tank/gone-cc
"$CASK" vol create tank/gone-h --size 8M
"$CASK" snap create tank/gone-h@h
"$CASK" snap hold keep tank/gone-h@h
"$CASK" vol create tank/small --size 16M
# absent_yaml DESTROY_S DESTROY_C: the file, with what goes with tank/gone-s and tank/gone-c
absent_yaml() {
  printf 'apiVersion: cask/v1\nvolumes:\n'
  printf '  - name: tank/gone          # no snapshots: destroyed without --prune\n    absent: true\n'
  printf '  - name: tank/gone-s        # two snapshots: only with destroy: snapshots\n    absent: true\n%s' "$1"
  printf '  - name: tank/gone-c        # a snapshot with a clone: only with destroy: clones\n    absent: true\n%s' "$2"
  printf '  - name: tank/gone-h        # a held snapshot: never\n    absent: true\n    destroy: clones\n'
  printf '  - name: tank/never-was\n    absent: true\n'
  printf '  - name: tank/small\n    size: 8M\n    allowShrink: true        # shrinks without --prune\n'
}
absent_yaml "" "    destroy: snapshots
" >"$M/absent.yaml"
out=$("$A" apply -f "$M/absent.yaml")
has "$out" "destroy        volume tank/gone: absent in the file"
has "$out" "keep           volume tank/gone-s: absent in the file, but it has 2 snapshots; destroy: snapshots in the file destroys them too"
has "$out" "keep           volume tank/gone-c: absent in the file, but its snapshots have clones (tank/gone-cc); destroy: clones in the file destroys those too"
has "$out" "keep           volume tank/gone-h: absent in the file, but 1 of the snapshots it would destroy is held (keep on tank/gone-h@h); apply releases holds only with destroy: and releaseHolds: true in the file"
has "$out" "unchanged      volume tank/never-was: absent, as the file says"
has "$out" "shrink         volume tank/small: size 16M -> 8M"
has "$out" "done: destroy volume tank/gone"
has "$out" "done: shrink volume tank/small 16M -> 8M"
"$CASK" vol get size tank/gone >/dev/null 2>&1 && fail "absent: true kept tank/gone"
for v in gone-s gone-c gone-cc gone-h; do "$CASK" vol get size "tank/$v" >/dev/null || fail "tank/$v was destroyed"; done
absent_yaml "    destroy: snapshots
" "    destroy: clones
" >"$M/absent.yaml"
out=$("$A" apply -f "$M/absent.yaml")
has "$out" "destroy        volume tank/gone-s: absent in the file, with its 2 snapshots"
has "$out" "destroy        volume tank/gone-c: absent in the file, with its 1 snapshot and the clone tank/gone-cc"
has "$out" "done: destroy volume tank/gone-c with its snapshots and their clones"
for v in gone-s gone-c gone-cc; do "$CASK" vol get size "tank/$v" >/dev/null 2>&1 && fail "tank/$v was kept"; done
"$CASK" vol get size tank/gone-h >/dev/null || fail "a held snapshot's volume was destroyed"
has "$("$A" apply -f "$M/absent.yaml")" "No changes"
# a clone the file declares cannot go with its origin; the fields are checked
"$CASK" vol create tank/o2 --size 8M
"$CASK" snap create tank/o2@s
"$CASK" vol clone tank/o2@s tank/o2c
printf 'apiVersion: cask/v1\nvolumes:\n  - name: tank/o2\n    absent: true\n    destroy: clones\n  - name: tank/o2c\n    size: 8M\n' >"$M/conflict.yaml"
expect_fail 2 "conflict.yaml:4:5: volume tank/o2: absent with destroy: clones would destroy tank/o2c, which the file declares (line 6)" \
  "$A" apply -f "$M/conflict.yaml"
printf 'apiVersion: cask/v1\nvolumes:\n  - name: tank/x\n    absent: maybe\n  - name: tank/y\n    absent: true\n    size: 1G\n  - name: tank/z\n    size: 1G\n    destroy: clones\n  - name: tank/w\n    absent: true\n    destroy: everything\n' >"$M/badabsent.yaml"
err=$("$A" apply -f "$M/badabsent.yaml" 2>&1) && fail "bad absent fields accepted"
has "$err" "badabsent.yaml:4:13: absent: expected true or false, got a scalar 'maybe'"
has "$err" "badabsent.yaml:7:5: volume tank/y: absent: true takes no size: (the volume is to be destroyed)"
has "$err" "badabsent.yaml:10:5: volume tank/z: destroy: goes with absent: true"
has "$err" "badabsent.yaml:13:14: volume tank/w: destroy: 'everything' is neither snapshots"
"$CASK" vol destroy -R tank/o2
"$CASK" snap release keep tank/gone-h@h
"$CASK" vol destroy -r tank/gone-h
"$CASK" vol destroy tank/small
before=$(state)

# ---- after a restart (pools imported again from caskd's cache): still no changes ----
"$A" get manifest >"$M/before-restart.yaml"
stop_caskd
start_caskd
out=$("$A" apply -f "$M/before-restart.yaml" --prune)
has "$out" "No changes: the running state matches $M/before-restart.yaml."
[ "$(state)" = "$before" ] || fail "state differs after the restart"

stop_caskd
echo "PASS: apply"
