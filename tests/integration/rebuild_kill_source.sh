#!/usr/bin/env bash
# rebuild_kill_source -- the rebuild's source dies in the middle of a
# rebuild and another in-sync replica takes over as the source
# (docs/replication.md 12.7 "S killed", as built: the source is the
# controller's local replica, so it dies with its controller). Five caskd:
# A controls tank/db (consistency quorum) with B, D and E in sync (a
# takeover needs a quorum of the five members, C included); `vol
# replica add` copies 64 MiB to C (throttled). Once C's durable cursor
# passed 24 MiB, A is killed -9. `vol takeover` on B makes B the
# controller; C, whose record says rebuilding, is not taken as in sync;
# `vol replica rebuild` on B resumes C's rebuild from C's durable cursor
# with B's replica as the source -- less than the whole copy is
# transferred -- and C joins; a later write reaches it; B, C, D and E are
# equal. (A is not restarted here: a restarted ex-controller's failed
# resume leaves its replica promised to an epoch that fences B when B
# contacts it -- reported, issue 15.)
# caskd: the sanitizer build when CASK_ASAN_BUILD is set (tests/run.sh sets it); any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, sys, random, time
sys.path.insert(0, "tests/integration")
import nbd
from replnodes import Cluster, checksum
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c", "d", "e"], os.environ["DAEMON_BUILD"])
ok = False
try:
    pools = {"a": "tank", "b": "p2", "c": "p3", "d": "p4", "e": "p5"}
    for n, pool in pools.items():
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "1G")
    a, b, c, d, e = cl["a"], cl["b"], cl["c"], cl["d"], cl["e"]
    a.cask("vol", "create", "tank/db", "--size", "256M", "--replica", b.raddr + "/p2", "--replica", d.raddr + "/p4",
           "--replica", e.raddr + "/p5",
           "-o", "consistency=quorum", "-o", "rebuild_rate=16")
    h = nbd.NBD(); h.connect_uri(a.uri("tank/db"))
    rnd = random.Random(12)
    for mib in range(64):
        h.pwrite(rnd.randbytes(1 << 20), mib << 20)
    h.flush(); h.shutdown()
    job = a.ctl("vol.replica_add", name="tank/db", replica=c.raddr + "/p3")["job"]
    deadline = time.monotonic() + 600
    while True:
        j = a.ctl("job.get", id=job)
        assert j["state"] == "running", j
        rb = [r for r in a.status("tank/db")["replicas"] if r["pool"] == "p3"][0].get("rebuild", {})
        if rb.get("durable_cursor", 0) >= 24 << 20:
            break
        assert time.monotonic() < deadline, rb
        time.sleep(0.05)
    print("killing the source (and controller) A with C's durable cursor at %d of %d" % (rb["durable_cursor"], j["total"]))
    a.kill9()
    r = b.cask("vol", "takeover", "p2/db", check=False)
    assert r.returncode == 0, r.stderr
    st = b.wait_state("p2/db", ["serving"])
    cst = [x for x in st["replicas"] if x["pool"] == "p3"][0]
    assert cst["state"] != "in-sync", st  # never a reference while rebuilding
    r = b.cask("vol", "replica", "rebuild", "p2/db", c.raddr + "/p3", "--wait", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip())
    st = b.status("p2/db")
    cst = [x for x in st["replicas"] if x["pool"] == "p3"][0]
    rb = cst["rebuild"]
    print("resumed from B after the source died: transferred %d bytes of a 64 MiB copy" % rb["transferred"])
    assert cst["state"] == "in-sync" and rb["kind"] == "full" and rb["transferred"] < 48 << 20, cst
    assert checksum(b, "p2/db") == checksum(c, "p3/db") == checksum(d, "p4/db")
    # a write through the new controller reaches C (a member of I now) like the others
    h = nbd.NBD(); h.connect_uri(b.uri("p2/db"))
    h.pwrite(b"n" * 65536, 100 << 20); h.flush(); h.shutdown()
    st = b.status("p2/db")
    assert sorted(x["state"] for x in st["replicas"]) == ["degraded"] + ["in-sync"] * 4, st  # A: dead
    sums = {n: checksum(cl[n], "%s/db" % pools[n]) for n in "bcde"}
    assert len(set(sums.values())) == 1, sums
    ok = True
finally:
    if not ok:
        os.system("grep -h -i \"rb_begin\\|refused\\|error\\|rebuild\" %s/caskd_a.log %s/caskd_b.log | tail -20" % (T, T))
    cl.close()
    if not ok:
        for n in "abcde":
            print("--- %s ---\n%s" % (n, cl[n].tail(25)), file=sys.stderr)
bad = cl.sanitizer_reports()
assert not bad, bad
PY
for v in p2 p3 p4 p5; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: the source died mid-rebuild; the rebuild resumed from another in-sync replica (after takeover) and finished"
