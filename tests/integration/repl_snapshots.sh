#!/usr/bin/env bash
# repl_snapshots -- rule 6 (docs/replication.md section 3.6): snapshot
# operations on a replicated volume go through the sequence, so every
# in-sync replica takes them at the same seq. A controls tank/v (3-way,
# quorum), replicas on B and C; two libnbd writers keep writing while
# `cask snap create tank/v@sK` is called eight times:
#   - each snapshot exists on all three replicas (tank/v@sK, p2/v@sK,
#     p3/v@sK) with the same bytes (`cask vol checksum` of each copy, and a
#     sha256 over NBD);
#   - each holds every write acknowledged before its call began and no
#     write issued after it returned (every block's value in the snapshot
#     lies between the two, by the writers' counters);
#   - rename and destroy are sequenced too: renamed and gone on every copy;
#   - on B, which only holds a replica, `snap create p2/v@x` is refused
#     (REPLICA_READ_ONLY: it would make that copy differ).
# Hosts: each caskd in its own network namespace (replnodes.py netns="auto";
# loopback ports where `ip netns` is unavailable). The two writers write
# disjoint halves of the volume, so no two writes to one block race (their
# counters say the order they were issued, not applied).
# caskd: the sanitizer build when CASK_ASAN_BUILD is set (tests/run.sh sets it); any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, sys, struct, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum, digest
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"], netns="auto")
print("hosts: each caskd in its own network namespace (veth + bridge)" if cl.netns else "hosts: loopback ports")
ok = False
SIZE, NB = 4 << 20, 256
try:
    for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
    a, b, c = cl["a"], cl["b"], cl["c"]
    a.cask("vol", "create", "tank/v", "--size", "4M", "--replica", b.raddr + "/p2", "--replica", c.raddr + "/p3")
    lock = threading.Lock()
    acked = {}          # block -> newest counter whose write was answered
    issued = [0]        # highest counter sent
    stop = threading.Event()
    def writer(w):
        h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
        k = 0
        while not stop.is_set():
            k += 1
            blk = (k * 7) % (NB // 2) + w * (NB // 2)  # disjoint halves: no two writes to a block race
            with lock:
                issued[0] += 1
                ctr = issued[0]
            h.pwrite(struct.pack("<QQ", ctr, blk) * 256, blk * 4096)
            with lock:
                acked[blk] = max(acked.get(blk, 0), ctr)
        h.flush(); h.shutdown()
    ths = [threading.Thread(target=writer, args=(w,)) for w in (0, 1)]
    for t in ths: t.start()
    bounds = []
    for k in range(8):
        time.sleep(0.15)
        with lock:
            before = dict(acked)
        a.cask("snap", "create", "tank/v@s%d" % k)
        with lock:
            after = issued[0]
        bounds.append((before, after))
    stop.set()
    for t in ths: t.join()
    for k, (before, after) in enumerate(bounds):
        ds = {n: (digest(cl[n].uri("%s/v@s%d" % (p, k)), SIZE), checksum(cl[n], "%s/v@s%d" % (p, k)))
              for n, p in (("a", "tank"), ("b", "p2"), ("c", "p3"))}
        assert len(set(ds.values())) == 1, ("snapshot s%d differs between replicas" % k, ds)
        h = nbd.NBD(); h.connect_uri(b.uri("p2/v@s%d" % k))
        for blk in range(NB):
            ctr, got = struct.unpack("<QQ", h.pread(16, blk * 4096))
            assert ctr == 0 or got == blk, (k, blk, ctr, got)
            assert ctr >= before.get(blk, 0), ("s%d lacks a write acknowledged before it" % k, blk, ctr, before.get(blk))
            assert ctr <= after, ("s%d holds a write issued after it returned" % k, blk, ctr, after)
        h.shutdown()
    print("8 snapshots under load: identical on A, B and C, each between the writes acknowledged before the "
          "call and those issued after it")
    a.cask("snap", "rename", "tank/v@s0", "tank/v@renamed")
    a.cask("snap", "destroy", "tank/v@s1")
    for n, p in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        names = cl[n].cask("snap", "list", "-H", "-o", "name", "%s/v" % p).stdout.split()
        assert "%s/v@renamed" % p in names and "%s/v@s0" % p not in names and "%s/v@s1" % p not in names, (n, names)
    print("rename and destroy: the same on every replica")
    r = b.cask("snap", "create", "p2/v@x", check=False)
    assert r.returncode != 0 and "replica" in r.stderr, (r.returncode, r.stderr)
    print("snap create on a replica's own caskd: refused (%s)" % r.stderr.strip()[:100])
    ok = True
finally:
    cl.close()
    if not ok:
        print(cl.logs())
rep = cl.sanitizer_reports()
assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()
PY
echo ok
