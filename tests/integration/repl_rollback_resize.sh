#!/usr/bin/env bash
# repl_rollback_resize -- rule 6 item 4 (docs/replication.md section 3.6):
# `vol rollback` and `vol resize` of a replicated volume go through the
# sequence like snapshots, so every in-sync replica performs them at the
# same point. A controls tank/v (3-way, quorum), replicas on B and C:
#   1. rollback: after writes past tank/v@s, `cask vol rollback tank/v@s`
#      leaves all three copies equal to the snapshot (`vol checksum` of
#      each volume = of each @s, and sha256 over NBD); writes after it
#      land on all three;
#   2. resize under load: one libnbd writer keeps writing while `cask vol
#      resize tank/v 8M` runs; every copy is 8M and identical afterwards,
#      and the new space is written and read back through a new connection;
#      a shrink without --shrink is refused on every copy alike (the volume
#      stays 8M and in sync), with --shrink it is 6M everywhere;
#   3. a rollback and a resize on B, which only holds a replica, are refused
#      (REPLICA_READ_ONLY: they would make that copy differ);
#   4. restart: kill -9 of A right after a resize is answered; A restarts,
#      reconciles and serves 7M, every in-sync copy 7M and identical;
#   5. takeover: kill -9 of A right after a rollback is answered; `vol
#      takeover p2/v` on B; B and C hold the rolled-back content.
# Hosts: each caskd in its own network namespace (replnodes.py netns="auto";
# loopback ports where `ip netns` is unavailable).
# caskd: the sanitizer build when CASK_ASAN_BUILD is set (tests/run.sh sets it); any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import json, os, sys, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum, digest
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"], netns="auto")
print("hosts: each caskd in its own network namespace (veth + bridge)" if cl.netns else "hosts: loopback ports")
ok = False
M = 1 << 20
COPIES = (("a", "tank"), ("b", "p2"), ("c", "p3"))

def size_of(node, name):
    for v in json.loads(node.cask("vol", "list", "-j").stdout):
        if v["name"] == name:
            return int(v["size"])
    raise AssertionError((node.name, name, "not listed"))

def copies_equal(what, size, nodes=COPIES, snap=None):
    """Every copy has the given size and the same bytes (vol checksum and sha256 over NBD)."""
    ds = {}
    for n, p in nodes:
        name = "%s/v" % p + ("@" + snap if snap else "")
        if snap is None:
            got = size_of(cl[n], name)
            assert got == size, (what, n, "size", got, size)
        ds[n] = (digest(cl[n].uri(name), size), checksum(cl[n], name))
    assert len(set(ds.values())) == 1, (what, ds)
    return list(ds.values())[0]

def in_sync(node, name, want):
    """Poll vol.status until every replica is in sync (the ops were answered; the status settles)."""
    end = time.monotonic() + 60
    while True:
        st = node.status(name)
        states = [r["state"] for r in st["replicas"]]
        if st["state"] == "serving" and states.count("in-sync") == want:
            return st
        if time.monotonic() > end:
            raise AssertionError(("not all in sync", st))
        time.sleep(0.1)

def write(node, name, off, data, flush=True):
    h = nbd.NBD(); h.connect_uri(node.uri(name))
    h.pwrite(data, off)
    if flush:
        h.flush()
    h.shutdown()

try:
    for n, pool in COPIES:
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
    a, b, c = cl["a"], cl["b"], cl["c"]
    a.cask("vol", "create", "tank/v", "--size", "4M", "--replica", b.raddr + "/p2", "--replica", c.raddr + "/p3")

    # 1. rollback
    write(a, "tank/v", 0, b"\x11" * (2 * M))
    a.cask("snap", "create", "tank/v@s")
    write(a, "tank/v", M, b"\x22" * (3 * M))
    a.cask("vol", "rollback", "tank/v@s")
    snapd = copies_equal("the snapshots", 4 * M, snap="s")
    vold = copies_equal("after rollback", 4 * M)
    assert snapd[0] == vold[0], ("rolled back volume differs from its snapshot", snapd, vold)
    h = nbd.NBD(); h.connect_uri(b.uri("p2/v"))
    assert h.pread(4096, M + 4096) == b"\x11" * 4096 and h.pread(4096, 3 * M) == bytes(4096)
    h.shutdown()
    in_sync(a, "tank/v", 3)
    write(a, "tank/v", 3 * M, b"\x33" * M)
    copies_equal("writes after the rollback", 4 * M)
    print("rollback: A, B and C equal to @s (%s...), then the same writes on all three" % vold[0][:16])

    # 2. resize under load
    stop = threading.Event()
    done = [0]
    def writer():
        h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
        k = 0
        while not stop.is_set():
            k += 1
            h.pwrite(k.to_bytes(8, "little") * 512, (k * 4096 * 13) % (4 * M))
        h.flush(); h.shutdown()
        done[0] = k
    w = threading.Thread(target=writer); w.start()
    time.sleep(0.3)
    a.cask("vol", "resize", "tank/v", "8M")
    time.sleep(0.3)
    stop.set(); w.join()
    assert done[0] > 0
    copies_equal("after resize under load", 8 * M)
    write(a, "tank/v", 7 * M, b"\x44" * M)
    h = nbd.NBD(); h.connect_uri(c.uri("p3/v"))
    assert h.get_size() == 8 * M and h.pread(4096, 8 * M - 4096) == b"\x44" * 4096
    h.shutdown()
    copies_equal("writes past the old end", 8 * M)
    r = a.cask("vol", "resize", "tank/v", "6M", check=False)
    assert r.returncode != 0 and "shrink" in r.stderr, (r.returncode, r.stderr)
    in_sync(a, "tank/v", 3)
    copies_equal("refused shrink", 8 * M)
    # the shrink while a writer keeps writing across the new end: a write assigned its seq after the
    # shrink's must fail (ENOSPC) without reaching the replicas, never fail there and eject them
    stop.clear()
    tail = [0, 0]
    def tail_writer():
        h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
        k = 0
        while not stop.is_set():
            k += 1
            try:
                h.pwrite(k.to_bytes(8, "little") * 512, 6 * M - 8192 + (k % 64) * 4096)
                tail[0] += 1
            except nbd.Error:
                tail[1] += 1
        h.shutdown()
    w = threading.Thread(target=tail_writer); w.start()
    time.sleep(0.3)
    a.cask("vol", "resize", "tank/v", "6M", "--shrink")
    time.sleep(0.3)
    stop.set(); w.join()
    assert tail[0] > 0 and tail[1] > 0, ("the writer across the end did not both succeed and fail", tail)
    in_sync(a, "tank/v", 3)
    copies_equal("shrink", 6 * M)
    in_sync(a, "tank/v", 3)
    print("shrink under a writer across the new end: %d writes done, %d refused; all three in sync" % tuple(tail))
    print("resize under load (%d writes): 8M on A, B and C, identical; a shrink without --shrink refused on every "
          "copy (%s); with --shrink 6M everywhere" % (done[0], r.stderr.strip()[:80]))

    # 3. not on a replica's own caskd
    for args in (("vol", "rollback", "p2/v@s"), ("vol", "resize", "p2/v", "10M")):
        r = b.cask(*args, check=False)
        assert r.returncode != 0 and "replica" in r.stderr, (args, r.returncode, r.stderr)
    assert size_of(b, "p2/v") == 6 * M
    print("rollback and resize on a replica's own caskd: refused (%s)" % r.stderr.strip()[:90])

    # 4. kill -9 of the controller right after a resize; restart and reconcile
    a.cask("vol", "resize", "tank/v", "7M")
    a.kill9()
    a.start()
    a.wait_state("tank/v", ("serving",), 60)
    st = in_sync(a, "tank/v", 3)
    copies_equal("after kill -9 and restart", 7 * M)
    print("kill -9 right after resize, restart: epoch %s, 7M and identical on A, B and C" % st["epoch"])

    # 5. kill -9 right after a rollback; takeover on B
    a.cask("snap", "create", "tank/v@t")
    write(a, "tank/v", 0, b"\x55" * (7 * M))
    a.cask("vol", "rollback", "tank/v@t")
    want = digest(a.uri("tank/v@t"), 7 * M)
    a.kill9()
    r = b.cask("vol", "takeover", "p2/v", check=False)
    assert r.returncode == 0, r.stderr
    st = b.wait_state("p2/v", ("serving",), 60)
    got = copies_equal("after takeover", 7 * M, nodes=(("b", "p2"), ("c", "p3")))
    assert got[0] == want, ("the rollback was lost in the takeover", got, want)
    print("kill -9 right after rollback, takeover on B: epoch %s, B and C hold the rolled-back content" % st["epoch"])
    ok = True
finally:
    cl.close()
    if not ok:
        print(cl.logs())
rep = cl.sanitizer_reports()
assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()
PY
echo ok
