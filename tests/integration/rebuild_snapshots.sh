#!/usr/bin/env bash
# rebuild_snapshots -- snapshot operations while a member is rebuilt
# (docs/replication.md 3.6 item 5, as built). A controls tank/v (3-way,
# quorum); B's link goes through tests/tools/faultproxy.py. B is killed,
# 24 MiB are rewritten, B comes back and `vol replica rebuild` runs (the
# volume has -o rebuild_rate=4, and B's link is limited to 8 MB/s), so the
# copy takes seconds. While it copies:
#   * `snap destroy tank/v@s0` (a snapshot B has from before): sequenced
#     like any, it goes to B too -- the rebuild must not end with a seq gap;
#   * writes W, then `snap create tank/v@s1`, then writes W2: the create
#     waits until the rebuild queued everything to B (the job's done was
#     below its total when it began, and equals it when it returns), so B
#     takes s1 at the same seq as A and C, on complete content.
# Checked: the rebuild ends done and B in sync; s1 has the same `vol
# checksum` on A, B and C, and differs from the live volume (W2 is not in
# it, W is: s1 equals a copy of the data model taken between them); s0 is
# gone on all three; the live volumes are identical.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import hashlib, os, sys, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum, digest, wait_applied
from faultproxy import FaultProxy

M = 1 << 20
SIZE = 48 * M
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
a, b, c = cl["a"], cl["b"], cl["c"]
fp = FaultProxy(T + "/proxy.sock", {"ab": ("127.0.0.1:0", b.raddr)}, log=T + "/proxy.log")
ok = False
img = bytearray(SIZE)


def write(h, off, data):
    h.pwrite(data, off)
    img[off:off + len(data)] = data


try:
    for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
    baddr = "127.0.0.1:%d/p2" % fp.port("ab")
    a.cask("vol", "create", "tank/v", "--size", "48M", "--replica", baddr, "--replica", c.raddr + "/p3",
           "-o", "rebuild_rate=4")
    a.wait_state("tank/v", ["serving"])
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    for i in range(32):
        write(h, i * M, bytes([i + 1]) * M)
    h.flush()
    a.cask("snap", "create", "tank/v@s0")
    wait_applied(a, "tank/v")
    b.kill9()
    end = time.monotonic() + 60
    while a.status("tank/v")["replicas"][1]["state"] != "degraded":
        assert time.monotonic() < end, a.status("tank/v")
        time.sleep(0.1)
    for i in range(8, 32):                      # 24 MiB that B misses
        write(h, i * M, bytes([0x80 + i]) * M)
    h.flush()
    b.start()
    fp.cmd("rate ab c2r %d" % (8 * M))
    job = a.ctl("vol.replica_rebuild", name="tank/v", replica=baddr)["job"]
    end = time.monotonic() + 60
    while True:                                 # the copy runs: B joined the live stream
        j = a.ctl("job.get", id=job)
        if j["state"] == "running" and j.get("done", 0) > 0:
            break
        assert j["state"] == "running" and time.monotonic() < end, j
        time.sleep(0.05)
    st = a.status("tank/v")
    assert st["replicas"][1]["state"] == "rebuilding", st
    a.cask("snap", "destroy", "tank/v@s0")
    for i in range(0, 4):                       # W: in s1
        write(h, i * M + 4096, b"W" * 8192)
    h.flush()
    j0 = a.ctl("job.get", id=job)
    t0 = time.monotonic()
    a.cask("snap", "create", "tank/v@s1")
    waited = time.monotonic() - t0
    want_s1 = hashlib.sha256(bytes(img)).hexdigest()
    j = a.ctl("job.get", id=job)
    print("snap create began with the rebuild at %s/%s and returned after %.1f s with it at %s %s/%s" % (
        j0.get("done"), j0.get("total"), waited, j["state"], j.get("done"), j.get("total")))
    assert j0["state"] == "running" and j0["done"] < j0["total"], ("the copy was over before the snapshot", j0)
    assert j["state"] != "running" or j["done"] == j["total"], ("the snapshot did not wait for the copy", j)
    for i in range(0, 40, 3):                   # W2: after s1
        write(h, i * M + 65536, b"X" * 4096)
    h.flush(); h.shutdown()
    end = time.monotonic() + 180
    while True:
        j = a.ctl("job.get", id=job)
        if j["state"] != "running":
            break
        assert time.monotonic() < end, j
        time.sleep(0.2)
    assert j["state"] == "done", j
    fp.cmd("rate ab c2r 0")
    st = wait_applied(a, "tank/v")
    assert all(r["state"] == "in-sync" for r in st["replicas"]), st
    s1 = {n: checksum(cl[n], p + "/v@s1") for n, p in (("a", "tank"), ("b", "p2"), ("c", "p3"))}
    live = {n: checksum(cl[n], p + "/v") for n, p in (("a", "tank"), ("b", "p2"), ("c", "p3"))}
    print("s1 on A, B, C: %s; live: %s" % (s1, live))
    assert len(set(s1.values())) == 1, ("s1 differs between the replicas", s1)
    assert len(set(live.values())) == 1, ("the live volumes differ", live)
    assert s1["a"] != live["a"], "s1 has the writes made after it"
    # s1's bytes are the model between W and W2 (read over NBD from A's snapshot export)
    assert digest(a.uri("tank/v@s1"), SIZE) == want_s1, "s1 is not the volume as it was when it was taken"
    assert digest(a.uri("tank/v"), SIZE) == hashlib.sha256(bytes(img)).hexdigest(), "the live data is wrong"
    for n, p in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        r = cl[n].cask("vol", "checksum", p + "/v@s0", check=False)
        assert r.returncode != 0, ("s0 is still on %s" % n, r.stdout)
    print("ok: the rebuilt replica took s1 with the same content as A and C and dropped s0 with them")
    # A snapshot whose outcome differs on the target: B is out while s1 is destroyed, so it still
    # holds the old s1; a new s1 created during its rebuild fails there (it exists) and succeeds on
    # A and C. The rebuild must fail (B stays out of I), not end with B in sync holding the old s1.
    b.kill9()
    end = time.monotonic() + 60
    while a.status("tank/v")["replicas"][1]["state"] != "degraded":
        assert time.monotonic() < end, a.status("tank/v")
        time.sleep(0.1)
    a.cask("snap", "destroy", "tank/v@s1")
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    for i in range(8, 32):
        write(h, i * M, bytes([0x40 + i]) * M)
    h.flush()
    b.start()
    fp.cmd("rate ab c2r %d" % (8 * M))
    job = a.ctl("vol.replica_rebuild", name="tank/v", replica=baddr)["job"]
    end = time.monotonic() + 60
    while True:
        j = a.ctl("job.get", id=job)
        if j["state"] == "running" and j.get("done", 0) > 0:
            break
        assert j["state"] == "running" and time.monotonic() < end, j
        time.sleep(0.05)
    a.cask("snap", "create", "tank/v@s1")
    h.shutdown()
    end = time.monotonic() + 180
    while True:
        j = a.ctl("job.get", id=job)
        if j["state"] != "running":
            break
        assert time.monotonic() < end, j
        time.sleep(0.2)
    fp.cmd("rate ab c2r 0")
    st = a.status("tank/v")
    print("rebuild with a differing snapshot outcome: %s; B %s" % (j, st["replicas"][1]))
    assert j["state"] != "done", ("the rebuild ended with B's s1 differing from A's and C's", j)
    assert st["replicas"][1]["state"] != "in-sync", st
    with open(a.log, "rb") as f:
        alog = f.read().decode(errors="replace")
    assert "ended otherwise on it" in alog, "A's log does not say the snapshot outcome differed on B"
    print("ok: a rebuild whose target's snapshot outcome differs fails")
    ok = True
finally:
    fp.close()
    cl.close()
    if not ok:
        print(cl.logs())
rep = cl.sanitizer_reports()
assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()
PY
echo ok
