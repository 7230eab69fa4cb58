#!/usr/bin/env bash
# pool_safety -- issue 17 items 4 and 10 through a real caskd and the CLI.
# `cask pool create` refuses what another program may own and changes not a
# byte of it: a 32 MiB random file, a file holding an ext4 filesystem, the
# file of a destroyed pool (its labels wiped, its data left), each with
# VDEV_IN_USE, until -f; never forced: an existing file of another --size
# (INVALID_ARGUMENT), a symbolic link owned by another user
# (PERMISSION_DENIED). `cask pool import` refuses a pool whose newest
# uberblock is damaged in both label copies (POOL_NEEDS_REWIND, naming
# --rewind), `--rewind` imports it; caskd's log and `cask pool status` say
# which txgs were discarded, and cask-debug check is clean afterwards. A
# cached pool that needs a rewind at caskd's start is logged and kept.
source "$(dirname "$0")/lib.sh"
need mkfs.ext4
DEBUG="$CASK_BUILD/cask-debug"
start_caskd

sum() { sha256sum "$1" | cut -d' ' -f1; }
# refused CODE PATTERN FILE CMD...: CMD fails (exit 1, one line naming PATTERN and
# [CODE]) and FILE is unchanged
refused() {
  local code=$1 pat=$2 file=$3; shift 3
  local before; before=$(sum "$file")
  expect_fail 1 "$pat.*\[$code\]" "$@"
  [ "$(sum "$file")" = "$before" ] || fail "'$*' changed $file although it was refused"
  echo "refused: $("$@" 2>&1 || true)"
}

# 1. random data: refused, untouched; -f uses it
head -c $((32 << 20)) /dev/urandom > "$T/random.img"
refused VDEV_IN_USE "holds data (a non-zero byte at offset" "$T/random.img" $CASK pool create rnd "$T/random.img"
$CASK pool list -H -o name | grep -qx rnd && fail "a refused create left pool rnd behind"
$CASK pool create -f rnd "$T/random.img"
$CASK pool status rnd | grep -q "state: ONLINE" || fail "forced pool rnd is not online"
$CASK pool destroy rnd

# 2. an ext4 filesystem (sparse file, mkfs.ext4 -F); --force spelled out works
truncate -s 64M "$T/ext4.img"
mkfs.ext4 -q -F "$T/ext4.img"
refused VDEV_IN_USE "holds a signature (ext4)" "$T/ext4.img" $CASK pool create fs "$T/ext4.img"
$CASK pool create --force fs "$T/ext4.img"
$CASK pool destroy fs

# 3. a destroyed pool's file: labels wiped, its data still there
$CASK pool create old "$T/old.vdev" --size 64M
$CASK vol create old/v --size 8M
$CASK pool destroy old
refused VDEV_IN_USE "holds data" "$T/old.vdev" $CASK pool create again "$T/old.vdev"
# ... and a live pool's file, exported: another pool's label, CASK_1.0's POOL_EXISTS
$CASK pool create -f again "$T/old.vdev"
$CASK pool export again
refused POOL_EXISTS "already a vdev of pool 'again'" "$T/old.vdev" $CASK pool create third "$T/old.vdev"

# 4. an existing file of another size: refused even with -f
truncate -s 64M "$T/sized.img"
refused INVALID_ARGUMENT "" "$T/sized.img" $CASK pool create -f sized "$T/sized.img" --size 32M
$CASK pool create -f sized "$T/sized.img" --size 64M
$CASK pool destroy sized

# 5. another user's symbolic link (in a directory that is not sticky): never followed, even with -f
mkdir -m 0755 "$T/links"
truncate -s 64M "$T/target.img"
ln -s "$T/target.img" "$T/links/theirs"
chown -h 65534:65534 "$T/links/theirs"
refused PERMISSION_DENIED "a symbolic link owned by another user (uid 65534)" "$T/target.img" \
  $CASK pool create -f viathem "$T/links/theirs"

# 6. rewind: the newest uberblock damaged in both label copies
newest_txg() { "$DEBUG" uberblocks "$1" | awk '$1 == "*" { for (i = 1; i < NF; i++) if ($i == "txg") print $(i + 1) }' | sort -u; }
damage_newest() { # FILE TXG: flip a byte 1000 bytes into slot TXG % 64 of both label regions
  local f=$1 txg=$2 asize
  asize=$(( $(stat -c %s "$f") / (512 << 10) * (512 << 10) ))
  for region in 0 $((asize - (512 << 10))); do
    "$PY" - "$f" $((region + (16 << 10) + (txg % 64) * 4096 + 1000)) <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR); off = int(sys.argv[2])
b = os.pread(fd, 1, off); os.pwrite(fd, bytes([b[0] ^ 0x5a]), off); os.fsync(fd); os.close(fd)
PY
  done
}
$CASK pool create rw "$T/rw.vdev" --size 64M
$CASK vol create rw/a --size 8M
$CASK vol create rw/b --size 8M
$CASK pool export rw
txg=$(newest_txg "$T/rw.vdev")
[ -n "$txg" ] && [ "$(echo "$txg" | wc -l)" -eq 1 ] || fail "cannot tell the newest txg of rw.vdev ('$txg')"
damage_newest "$T/rw.vdev" "$txg"
expect_fail 1 "txg $txg is damaged in every copy.*--rewind.*\[POOL_NEEDS_REWIND\]" $CASK pool import --path "$T/rw.vdev"
echo "refused: $($CASK pool import --path "$T/rw.vdev" 2>&1 || true)"
$CASK pool list -H -o name | grep -qx rw && fail "a refused import left pool rw imported"
$CASK pool import --rewind --path "$T/rw.vdev" > "$T/imp.out" 2> "$T/imp.err"
[ "$(cat "$T/imp.out")" = rw ] || fail "import --rewind printed '$(cat "$T/imp.out")'"
grep -q "txgs $txg-$txg were discarded" "$T/imp.err" || fail "import --rewind did not say what it discarded: $(cat "$T/imp.err")"
grep -q "pool rw: imported with rewind: txgs $txg-$txg discarded (the newest committed at 20[0-9-]* [0-9:]* UTC" "$T/caskd.log" \
  || fail "caskd's log does not say what the rewind discarded"
$CASK pool status rw | tee "$T/status" | grep -q "rewind: imported with --rewind: txgs $txg-$txg were discarded (the newest committed at 20" \
  || fail "pool status does not say what was discarded: $(cat "$T/status")"
$CASK pool status -j rw | "$PY" -c '
import json, sys
r = json.load(sys.stdin)["rewound"]; t = int(sys.argv[1])
assert r["first_discarded_txg"] == t and r["last_discarded_txg"] == t and r["base_txg"] == t - 1, r
assert r["last_discarded_time_ns"] > 0, r' "$txg" || fail "pool status -j: wrong 'rewound'"
$CASK vol list -H -o name | grep -qx rw/a || fail "rw/a (committed before the discarded txg) is gone"
$CASK pool export rw
"$DEBUG" check "$T/rw.vdev" > "$T/check.out" 2>&1 || fail "cask-debug check after the rewind: $(cat "$T/check.out")"
echo "cask-debug check after the rewind: $(tail -n 1 "$T/check.out")"
$CASK pool import --path "$T/rw.vdev" >/dev/null   # the damage is gone: a plain import works again
$CASK pool status rw | grep -q "^rewind:" && fail "a later plain import still reports a rewind"

# 7. a cached pool that needs a rewind at caskd's start: logged with the reason and kept
$CASK pool create cached "$T/cached.vdev" --size 64M
$CASK vol create cached/v --size 8M
stop_caskd
txg=$(newest_txg "$T/cached.vdev")
damage_newest "$T/cached.vdev" "$txg"
start_caskd
grep -q "pool cached: not imported: .*txg $txg is damaged in every copy.*kept in the pool cache; 'cask pool import --rewind'" "$T/caskd.log" \
  || fail "caskd's log does not say why the cached pool was not imported"
$CASK pool status cached | grep -q "state: UNAVAIL" || fail "the cached pool is not kept (UNAVAIL)"
expect_fail 1 "\[POOL_NEEDS_REWIND\]" $CASK pool import --path "$T/cached.vdev"
$CASK pool import --rewind --path "$T/cached.vdev" >/dev/null 2>&1
$CASK pool status cached | grep -q "state: ONLINE" || fail "the cached pool did not import with --rewind"
stop_caskd
start_caskd                                          # kept in the cache, imported again at start
$CASK pool status cached | grep -q "state: ONLINE" || fail "the rewound pool is not imported at start"
$CASK pool destroy cached
$CASK pool destroy rw
stop_caskd
echo "ok: refusals leave files untouched, -f overrides what it should and no more, --rewind says what it discarded"
