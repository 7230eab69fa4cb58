#!/usr/bin/env bash
# repl_verify -- online verify of a replicated volume (docs/replication.md
# 12.11, as built): three replicas (A controls tank/db, B and C hold
# replicas); `cask vol verify` of the written volume finds no difference.
# Then one 4 KiB block of B's replica is damaged in B's pool file (the
# volume is written with compression off and a marker in every 4 KiB block,
# so the block's bytes can be found in the file; every copy of that block's
# bytes in the file is flipped, B runs with a tiny block cache so its reads
# go to the disk): verify reports exactly the 1 MiB chunk holding it, and
# only that one; A's and C's digests (vol checksum) still agree. The
# finished verify jobs are counted in caskd's metrics (cask_jobs, kind verify).
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
MPORT=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)" --metrics "127.0.0.1:$MPORT"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB" --cache 64K
start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
C() { CASK_SOCKET="$SOCK_C" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 512M >/dev/null
B pool create p2 "$T/p2.vdev" --size 512M >/dev/null
C pool create p3 "$T/p3.vdev" --size 512M >/dev/null
$CASK vol create tank/db --size 64M -o compression=off --replica "127.0.0.1:$RB/p2" \
  --replica "127.0.0.1:$RC/p3" -o consistency=all
export NBD
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(7)
for mib in (0, 3, 9, 10, 40, 63):
    h.pwrite(rnd.randbytes(1 << 20), mib << 20)
# 1 MiB at 20 MiB: every 4 KiB block starts with a marker naming it, then random bytes
blk = b"".join(b"VERIFYMARK%08d" % i + rnd.randbytes(4096 - 18) for i in range(256))
h.pwrite(blk, 20 << 20)
h.flush(); h.shutdown()
PY
out=$($CASK vol verify tank/db) || fail "verify of equal replicas: $out"
echo "$out"
echo "$out" | grep -q "^tank/db: 64 chunks of 1 MiB compared on 3 replicas: 0 differ$" || fail "verify: $out"
$CASK vol verify -j tank/db | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
assert r["chunks"] == 64 and r["differing"] == 0 and r["ranges"] == [] and len(r["replicas"]) == 3, r' ||
  fail "verify -j"
$CASK job list -H -o kind,state,result | grep -q "^verify	done	64 chunks" || fail "no verify job: $($CASK job list)"
# the metrics count verify jobs by their own kind (docs/metrics.md)
"$PY" - "http://127.0.0.1:$MPORT/metrics" <<'PY' || fail "cask_jobs for the verify jobs"
import sys, urllib.request
m = urllib.request.urlopen(sys.argv[1], timeout=60).read().decode().splitlines()
got = [l for l in m if l.startswith('cask_jobs{kind="verify",state="done"} ')]
assert got == ['cask_jobs{kind="verify",state="done"} 2'], got
PY
expect_fail 1 "not built" $CASK vol verify --repair tank/db

# damage block 37 of the marked MiB (volume offset 20 MiB + 37*4 KiB) in B's pool file
sync
"$PY" - "$T/p2.vdev" <<'PY'
import mmap, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    mark, n, at = b"VERIFYMARK%08d" % 37, 0, 0
    while (at := m.find(mark, at)) >= 0:
        m[at + 100] ^= 0xff   # past the marker, in the block's data
        n += 1
        at += len(mark)
    m.flush()
    print("flipped %d copies of block 37 in %s" % (n, sys.argv[1]))
    assert n > 0, "block 37 was not found in the pool file"
PY
out=$($CASK vol verify tank/db) && fail "verify found no difference after the damage: $out"
echo "$out"
[ "$(echo "$out" | grep -c '^differs:')" -eq 1 ] || fail "not exactly one differing range: $out"
echo "$out" | grep -q "^differs: offset $((20 << 20)) length $((1 << 20))$" || fail "the wrong range: $out"
echo "$out" | grep -q "compared on 3 replicas: 1 differ$" || fail "summary: $out"
grep -q "replica p2/db: CKSUM: chunk at $((20 << 20)) unreadable" "$T/caskd_b.log" ||
  fail "B did not report the damaged chunk: $(grep -i cksum "$T/caskd_b.log")"
# the Python binding says the same (when it is built)
if [ -d "$CASK_BUILD/python/cask" ]; then
  CASK_SOCK_A="$SOCK" BUILD="$CASK_BUILD" "$PY" - <<'PY' || fail "Client.vol_verify"
import os, sys
sys.path.insert(0, os.environ["BUILD"] + "/python")
import cask
r = cask.Client(os.environ["CASK_SOCK_A"]).vol_verify("tank/db")
assert r["differing"] == 1 and r["ranges"] == [(20 << 20, 1 << 20)] and len(r["replicas"]) == 3, r
print("python: vol_verify", r["ranges"])
PY
fi
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(C vol checksum p3/db | cut -d' ' -f1)" ] ||
  fail "A and C differ"
$CASK vol status tank/db | grep -q "state serving" || fail "the volume stopped serving: $($CASK vol status tank/db)"
echo "ok: verify clean on 3 replicas; a damaged block on one replica is reported as exactly its 1 MiB chunk"
