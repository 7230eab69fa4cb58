#!/usr/bin/env bash
# snapshots -- snapshots through caskd and real clients: two volumes
# snapshotted at one instant (cask snap create), the snapshot served
# read-only over NBD as POOL/VOL@SNAP (read-only flag, writes refused)
# and read by python3-libnbd while another client rewrites the live
# volume; qemu-img compare and nbdcopy against the data written before the
# snapshot, before and after a caskd restart; nbdinfo --list shows it;
# cask snap list / vol get report the space; the CLI's errors; destroy
# order (a volume with snapshots is refused); a clone (writable, its
# origin kept and unchanged); rollback (with -r past a
# newer snapshot) makes the volume equal to the snapshot again;
# cask-debug check clean.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
need qemu-img
need nbdcopy
need nbdinfo
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M -o compression=off
$CASK vol create tank/w --size 4M
head -c $((16 << 20)) /dev/urandom > "$T/a.raw"
qemu-img convert -n -f raw -O raw "$T/a.raw" "$NBD/tank/v"
$CASK snap create tank/v@s1 tank/w@s1
$CASK snap list tank | tee "$T/list.out"
grep -q "tank/v@s1" "$T/list.out" && grep -q "tank/w@s1" "$T/list.out" || fail "snap list misses a snapshot"
[ "$($CASK snap list -H -o txg tank/v)" = "$($CASK snap list -H -o txg tank/w)" ] || fail "not one instant"
nbdinfo --list "nbd://127.0.0.1:$PORT" > "$T/exports.out"
grep -q "tank/v@s1" "$T/exports.out" || fail "nbdinfo --list does not show the snapshot export"

# readers of the snapshot while the volume is rewritten
CASK_TEST_NBD="$NBD" A="$T/a.raw" "$PY" - <<'PY'
import nbd, os, sys, threading
uri = os.environ["CASK_TEST_NBD"]
want = open(os.environ["A"], "rb").read()
snap = nbd.NBD(); snap.connect_uri(uri + "/tank/v@s1")
assert snap.is_read_only(), "the snapshot export is not read-only"
try:
    snap.pwrite(b"x" * 4096, 0); sys.exit("a write to a snapshot succeeded")
except nbd.Error as e:
    print("write to the snapshot refused:", e.string)
stop = threading.Event()
def writer():
    live = nbd.NBD(); live.connect_uri(uri + "/tank/v")
    i = 0
    while not stop.is_set():
        live.pwrite(bytes([i % 251 + 1]) * 65536, (i * 65536) % (16 << 20))
        i += 1
    live.flush()
t = threading.Thread(target=writer); t.start()
M = 1 << 20
for rnd in range(3):
    for off in range(0, 16 * M, M):
        if snap.pread(M, off) != want[off:off + M]:
            stop.set(); t.join(); sys.exit("snapshot changed at %d while the volume was written" % off)
stop.set(); t.join()
live = nbd.NBD(); live.connect_uri(uri + "/tank/v")
assert live.pread(65536, 0) != want[:65536], "the live volume did not change"
print("snapshot stayed put through 3 full reads while the volume was rewritten")
PY
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/v@s1" || fail "qemu-img compare: snapshot differs"
nbdcopy "$NBD/tank/v@s1" "$T/copy.raw"
cmp "$T/a.raw" "$T/copy.raw" || fail "nbdcopy of the snapshot differs"
# space properties describe the last committed txg (one commits within 5 s)
used=0
for _ in $(seq 1 600); do
  used=$($CASK vol get -H -p usedbysnapshots tank/v | cut -f3)
  [ "$used" -gt 0 ] && break
  sleep 0.1
done
[ "$used" -gt 0 ] || fail "usedbysnapshots is $used after rewriting the volume"
echo "usedbysnapshots of tank/v: $used"
$CASK snap list -j tank/v | "$PY" -c 'import json,sys; s=json.load(sys.stdin); assert s[0]["used"] > 0 and s[0]["referenced"] > 0, s'

# errors
expect_fail 2 "not a snapshot name" $CASK snap create tank/v
expect_fail 2 "at least one" $CASK snap create
expect_fail 1 "no such volume" $CASK snap create tank/nosuch@x
expect_fail 1 "exists" $CASK snap create tank/v@s1
expect_fail 1 "snapshot" $CASK vol destroy tank/v
expect_fail 1 "does not exist" $CASK snap destroy tank/v@nosuch
expect_fail 2 "not a snapshot" $CASK snap list tank/v@s1

# persistence
stop_caskd
start_caskd
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/v@s1" || fail "snapshot differs after a restart"

# rollback: a newer snapshot refuses it, -r destroys that one too
$CASK snap create tank/v@s2
expect_fail 1 "newer" $CASK vol rollback tank/v@s1
expect_fail 2 "one snapshot" $CASK vol rollback tank/v
$CASK vol rollback -r tank/v@s1
[ -z "$($CASK snap list -H tank/v | grep s2)" ] || fail "rollback -r left the newer snapshot"
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/v" || fail "the volume is not what the snapshot recorded after rollback"
# snapshot rename
$CASK snap rename tank/v@s1 first
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/v@first" || fail "renamed snapshot differs"
expect_fail 1 "keeps its volume" $CASK snap rename tank/v@first tank/w@first
$CASK snap rename tank/v@first tank/v@s1
# used = usedbydataset + usedbysnapshots
$CASK vol get -H -p all tank/v | "$PY" -c '
import sys
p = {l.split("	")[1]: l.split("	")[2].strip() for l in sys.stdin}
assert int(p["used"]) == int(p["usedbydataset"]) + int(p["usedbysnapshots"]), p
assert int(p["usedbydataset"]) == int(p["referenced"]), p
assert int(p["written"]) < int(p["referenced"]), p'
# a clone: writable, starts as the snapshot, keeps it from being destroyed
$CASK vol clone tank/v@s1 tank/c
[ "$($CASK vol get -H origin tank/c | cut -f3)" = "tank/v@s1" ] || fail "clone origin"
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/c" || fail "the clone is not the snapshot"
head -c $((1 << 20)) /dev/urandom > "$T/b.raw"
qemu-img convert -n -f raw -O raw "$T/b.raw" "$NBD/tank/c"
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/v@s1" || fail "writing the clone changed its origin"
expect_fail 1 "origin" $CASK snap destroy tank/v@s1
[ "$($CASK snap list -H -o clones tank/v | head -1)" = "1" ] || fail "snap list clones"
# holds: a held snapshot is not destroyed; hold/release are all or none
$CASK snap hold keep tank/v@s1 tank/w@s1
expect_fail 1 "already held" $CASK snap hold keep tank/v@s1
expect_fail 1 "no such snapshot" $CASK snap hold other tank/v@s1 tank/v@nosuch
[ "$($CASK snap holds -H -o tag tank/v@s1)" = "keep" ] || fail "a failed hold changed the holds"
expect_fail 2 "TAG" $CASK snap hold tank/v@s1
expect_fail 1 "bad hold tag" $CASK snap hold "two words" tank/v@s1
[ "$($CASK snap holds -H tank | wc -l)" = 2 ] || fail "snap holds lists two"
$CASK snap holds -j | "$PY" -c '
import json, sys
h = json.load(sys.stdin)
assert sorted((x["snapshot"], x["tag"]) for x in h) == [("tank/v@s1", "keep"), ("tank/w@s1", "keep")], h'
[ "$($CASK snap list -H -o holds tank/w)" = "1" ] || fail "snap list holds"
stop_caskd
start_caskd
expect_fail 1 "held" $CASK snap destroy tank/w@s1
expect_fail 1 "no hold" $CASK snap release nosuch tank/w@s1
$CASK snap release keep tank/v@s1 tank/w@s1
[ -z "$($CASK snap holds -H)" ] || fail "holds left after release"
expect_fail 2 "needs" $CASK vol clone tank/v tank/x
expect_fail 1 "does not exist" $CASK vol clone tank/v@nosuch tank/x
# promote: the clone takes v@s1 (renamed c@s1); v becomes c's clone, then goes alone
$CASK snap create tank/v@s9
$CASK vol promote tank/c
[ "$($CASK vol get -H origin tank/v | cut -f3)" = "tank/c@s1" ] || fail "origin after promote"
[ "$($CASK vol get -H origin tank/c | cut -f3)" = "-" ] || fail "the promoted clone still has an origin"
qemu-img compare -f raw -F raw "$T/a.raw" "$NBD/tank/c@s1" || fail "the moved snapshot differs"
expect_fail 1 "not a clone" $CASK vol promote tank/c
expect_fail 2 "one clone" $CASK vol promote tank/c@s1
expect_fail 1 "with -r" $CASK vol destroy tank/v
$CASK vol get -H -p all tank/v | "$PY" -c '
import sys
p = {l.split("	")[1]: l.split("	")[2].strip() for l in sys.stdin}
for k in ("logicalused", "compressratio", "refcompressratio", "usedbydataset"):
    assert k in p, (k, p)
assert p["compressratio"].endswith("x"), p'
$CASK vol destroy -r tank/v
cp "$T/a.raw" "$T/c.raw"
dd if="$T/b.raw" of="$T/c.raw" conv=notrunc status=none
qemu-img compare -f raw -F raw "$T/c.raw" "$NBD/tank/c" || fail "the clone changed when its former parent went"
# -R: a volume whose snapshot has a clone
$CASK vol clone tank/c@s1 tank/d
expect_fail 1 "with -R" $CASK vol destroy -r tank/c
expect_fail 2 "unknown option" $CASK vol destroy -x tank/c
$CASK vol destroy -R tank/c
[ -z "$($CASK vol list -H -o name tank | grep -E 'tank/(c|d)$')" ] || fail "destroy -R left a volume"
$CASK vol create tank/v --size 8M
expect_fail 1 "nothing destroyed" $CASK snap destroy tank/w@s1 tank/w@nosuch
[ -n "$($CASK snap list -H tank/w)" ] || fail "a failed multi-destroy destroyed something"
$CASK snap destroy tank/w@s1
[ -z "$($CASK snap list -H tank)" ] || fail "snapshots left after destroy"
$CASK vol destroy tank/v
$CASK vol destroy tank/w
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
echo ok
