#!/usr/bin/env bash
# cli -- the cask CLI against a real caskd: every command, listing
# options (-H -p -o -j), --help everywhere, and every error case: one
# clear line on stderr and exit status 1 (operation failed) or 2 (usage).
source "$(dirname "$0")/lib.sh"

# no daemon
expect_fail 1 "cannot reach caskd" "$CASK" --socket "$T/nope.sock" pool list
# usage errors, before any daemon is needed
expect_fail 2 "unknown command" "$CASK" frobnicate
expect_fail 2 "unknown pool command" "$CASK" pool frob
expect_fail 2 "bad size" "$CASK" pool create p "$T/x" --size 12Q
expect_fail 2 "needs a pool name and at least one file" "$CASK" pool create p
expect_fail 2 "needs --size" "$CASK" vol create p/v
expect_fail 2 "bad or missing size" "$CASK" vol create p/v --size -5
expect_fail 2 "PROP=VALUE" "$CASK" vol create p/v --size 1M -o compression
expect_fail 2 "unknown property" "$CASK" vol create p/v --size 1M -o color=red
expect_fail 2 "unknown option" "$CASK" --bogus pool list
for c in "" "pool" "vol"; do
  # shellcheck disable=SC2086
  $CASK $c --help | grep >/dev/null -c "usage: cask" || fail "cask $c --help"
done
$CASK pool create --help | grep >/dev/null -c "create \[-f\] POOL FILE"
$CASK pool create --help | grep >/dev/null -c -- "-f, --force overwrites it"
$CASK pool import --help | grep >/dev/null -c "import \[--rewind\]"
$CASK vol list --help | grep >/dev/null -c "list \[POOL\]"
$CASKD --help | grep >/dev/null -c -- "--default-volume"

start_caskd
# pools
$CASK pool create tank "$T/t0.vdev" "$T/t1.vdev" --size 256M
[ -f "$T/t0.vdev" ] && [ "$(stat -c %b "$T/t0.vdev")" -lt 10000 ] || fail "vdev file not sparse"
expect_fail 1 "already exists" "$CASK" pool create tank "$T/other.vdev" --size 64M
expect_fail 1 "already a vdev of pool 'tank'" "$CASK" pool create tank2 "$T/t0.vdev"
expect_fail 1 "give a size" "$CASK" pool create p2 "$T/missing.vdev"
expect_fail 2 "unknown option '-x'" "$CASK" pool create -x "$T/y.vdev" --size 64M
expect_fail 1 "bad pool name" "$CASK" pool create "bad/name" "$T/y.vdev" --size 64M
expect_fail 1 "does not exist" "$CASK" pool status nope
[ "$($CASK pool list -H -o name,vdevs,health)" = "$(printf 'tank\t2\tONLINE')" ] || fail "pool list -H"
$CASK pool list -p -H -o size | grep -Eq '^[0-9]+$' || fail "pool list -p"
$CASK pool list -j | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d[0]["name"]=="tank" and isinstance(d[0]["size"],int)'
expect_fail 2 "unknown field 'bogus'" "$CASK" pool list -o name,bogus
$CASK pool status tank | grep -q "state: ONLINE"
$CASK pool status tank -j | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert len(d["vdevs"])==2'

# volumes
$CASK vol create tank/a --size 1G
$CASK vol create tank/b --size 64M -o volblocksize=16K -o compression=zstd -o checksum=sha256
expect_fail 1 "already exists" "$CASK" vol create tank/a --size 1M
expect_fail 1 "does not exist" "$CASK" vol create nope/a --size 1M
expect_fail 1 "POOL/VOLUME" "$CASK" vol create justaname --size 1M
expect_fail 1 "bad volume name" "$CASK" vol create tank/-bad --size 1M
expect_fail 1 "multiple of the block size" "$CASK" vol create tank/c --size 10000 -o volblocksize=16K
expect_fail 1 "bad volblocksize" "$CASK" vol create tank/c --size 1M -o volblocksize=3000
expect_fail 1 "bad compression" "$CASK" vol create tank/c --size 1M -o compression=gzip
[ "$($CASK vol list -H -o name)" = "$(printf 'tank/a\ntank/b')" ] || fail "vol list"
[ "$($CASK vol list tank -H -p -o name,size,volblocksize | tail -1)" = "$(printf 'tank/b\t67108864\t16384')" ] || fail "vol list -p"
expect_fail 1 "does not exist" "$CASK" vol list nope
$CASK vol list | head -1 | grep -q "^NAME"
$CASK vol list -j -o name,size | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d[1]=={"name":"tank/b","size":67108864}, d'
[ "$($CASK vol get compression tank/b -H -o value)" = "zstd" ] || fail "vol get"
[ "$($CASK vol get all tank/b -H | wc -l)" -eq 23 ] || fail "vol get all"  # 19 + log_damaged + iscsi_acl, iscsi_auth, iscsi_blocksize
[ "$($CASK vol get sync tank/b -H -o value)" = "standard" ] || fail "sync default"
$CASK vol set sync=always tank/b
[ "$($CASK vol get sync tank/b -H -o value)" = "always" ] || fail "vol set sync"
expect_fail 1 "bad sync" "$CASK" vol set sync=sometimes tank/b
$CASK vol set sync=standard tank/b
[ "$($CASK vol get size tank/b -H -p -o value)" = "67108864" ] || fail "vol get -p"
[ "$($CASK vol get size tank/b -H -o value)" = "64.0M" ] || fail "vol get human size"
expect_fail 2 "unknown property" "$CASK" vol get color tank/b
$CASK vol set compression=off tank/b
[ "$($CASK vol get compression tank/b -H -o value)" = "off" ] || fail "vol set"
expect_fail 1 "bad compression" "$CASK" vol set compression=gzip tank/b
expect_fail 1 "fixed when a volume is created" "$CASK" vol set volblocksize=8K tank/b
expect_fail 2 "PROP=VALUE" "$CASK" vol set compression tank/b

# resize and rename
$CASK vol resize tank/b 128M
[ "$($CASK vol get size tank/b -H -p -o value)" = "134217728" ] || fail "grow"
expect_fail 1 "cask vol resize --shrink" "$CASK" vol resize tank/b 32M
$CASK vol resize tank/b 32M --shrink
[ "$($CASK vol get size tank/b -H -p -o value)" = "33554432" ] || fail "shrink"
expect_fail 2 "bad size" "$CASK" vol resize tank/b lots
$CASK vol rename tank/b tank/c
expect_fail 1 "does not exist" "$CASK" vol get size tank/b
expect_fail 1 "already exists" "$CASK" vol rename tank/c tank/a
expect_fail 1 "another pool" "$CASK" vol rename tank/c other/c

# destroy: refused while an NBD client has the volume open
if "$PY" -c "import nbd" 2>/dev/null; then
  # the client holds the volume until told to go ($T/release appears; at most 300 s)
  "$PY" -c 'import nbd, os, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1]); end = time.monotonic() + 300
while not os.path.exists(sys.argv[2]) and time.monotonic() < end:
    time.sleep(0.05)' "$NBD/tank/c" "$T/release" &
  holder=$!
  wait_until 60 grep -q "serving tank/c" "$T/caskd.log" || fail "the NBD client did not connect"
  expect_fail 1 "in use" "$CASK" vol destroy tank/c
  expect_fail 1 "in use" "$CASK" pool export tank
  touch "$T/release"
  wait $holder
  # the client is gone once caskd has seen it go (its handle closes then)
  wait_until 60 grep -q "disconnected" "$T/caskd.log" || fail "caskd did not see the NBD client go"
fi
$CASK vol destroy tank/c
expect_fail 1 "does not exist" "$CASK" vol destroy tank/c

# export, import by directory, import by path, restart keeps pools
$CASK pool export tank
expect_fail 1 "does not exist" "$CASK" pool status tank
$CASK pool import tank -d "$T"
$CASK vol get size tank/a -H -o value | grep -q "1.00G"
$CASK pool export tank
[ "$($CASK pool import --path "$T/t1.vdev" "$T/t0.vdev")" = "tank" ] || fail "import --path"
expect_fail 1 "already imported" "$CASK" pool import --path "$T/t0.vdev" "$T/t1.vdev"
$CASK pool export tank
expect_fail 1 "has 2 vdevs but 1 were given" "$CASK" pool import --path "$T/t0.vdev"
$CASK pool import tank -d "$T"
expect_fail 1 "no vdev of pool" "$CASK" pool import ghost -d "$T"
head -c 20M /dev/urandom > "$T/junk.vdev"
expect_fail 1 "not a cask vdev" "$CASK" pool import --path "$T/junk.vdev"
stop_caskd
start_caskd
$CASK vol list -H -o name | grep -qx tank/a || fail "pool not remembered across restart"

# destroy wipes the labels: the files can no longer be imported
$CASK pool destroy tank
expect_fail 1 "does not exist" "$CASK" pool destroy tank
expect_fail 1 "not a cask vdev" "$CASK" pool import --path "$T/t0.vdev" "$T/t1.vdev"
$CASK pool list -H | { ! grep -q .; } || fail "pool list not empty"
stop_caskd
echo ok
