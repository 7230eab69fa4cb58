#!/usr/bin/env bash
# rebuild_local_source_fails -- the rebuild's source is the controller's own
# local replica, and that replica fails part-way (docs/replication.md 12.12,
# "Source failover": an IO error ejects it while its controller lives). A
# controls tank/lf at consistency one with B, C and D; C misses 24 MiB of
# writes and is rebuilt from A's local replica (throttled). Once 4 MiB are
# copied, A's pool is given a persistent write fault (`cask pool inject`), a
# client write makes the local apply fail, and A's replica leaves I (the
# volume goes on with B and D: `one`). The job must notice, read every
# remaining chunk from B and D (RB_READ) and finish: C in sync, equal to B
# and D, the job's result counting the bytes read from other replicas and
# A's log saying where the local replica failed.
# caskd: the sanitizer build when CASK_ASAN_BUILD is set; any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, re, sys, random, time
sys.path.insert(0, "tests/integration")
import nbd
from replnodes import Cluster, checksum
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c", "d"], os.environ["DAEMON_BUILD"])
ok = False
faulted = False


def member(st, pool):
    return [x for x in st["replicas"] if x["pool"] == pool][0]


def wait_until(what, pred, timeout=120):
    end = time.monotonic() + timeout  # a bound on waiting, not a measurement
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < end, "timed out waiting for " + what
        time.sleep(0.05)


try:
    pools = {"a": "tank", "b": "p2", "c": "p3", "d": "p4"}
    for n, pool in pools.items():
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
    a, b, c, d = (cl[n] for n in "abcd")
    a.cask("vol", "create", "tank/lf", "--size", "64M", "-o", "consistency=one", "-o", "rebuild_rate=4",
           *sum((["--replica", cl[n].raddr + "/" + pools[n]] for n in "bcd"), []))
    rnd = random.Random(17)
    h = nbd.NBD(); h.connect_uri(a.uri("tank/lf"))
    h.pwrite(rnd.randbytes(4 << 20), 0); h.flush()
    c.kill9()
    for mib in range(24):
        h.pwrite(rnd.randbytes(1 << 20), (8 + mib) << 20)
    h.flush()
    c.start()
    job = a.ctl("vol.replica_rebuild", name="tank/lf", replica=c.raddr + "/p3")["job"]
    wait_until("4 MiB rebuilt", lambda: a.ctl("job.get", id=job)["done"] >= 4 << 20)
    a.cask("pool", "inject", "tank", "write", "--persistent"); faulted = True
    # a write, a FLUSH (its txg commit fails: the pool is suspended), a write: the local apply fails
    for i in range(50):
        try:
            h.pwrite(b"\x11" * 4096, (60 << 20) + i * 4096)
            h.flush()
        except nbd.Error:
            pass
        if member(a.status("tank/lf"), "tank")["state"] != "in-sync":
            break
        time.sleep(0.1)
    st = a.status("tank/lf")
    assert member(st, "tank")["state"] != "in-sync", st
    print("A's local replica failed: %s, with the rebuild at %d bytes" % (member(st, "tank")["reason"],
                                                                         a.ctl("job.get", id=job)["done"]))
    j = wait_until("the rebuild job's end", lambda: (lambda x: x if x["state"] != "running" else None)(
        a.ctl("job.get", id=job)), 300)
    assert j["state"] == "done", j
    msg = j.get("result") or j.get("message") or str(j)
    print(msg)
    m = re.search(r"(\d+) read from other replicas", msg)
    assert m and int(m.group(1)) > 0, j
    failed_at = [l for l in a.tail(2000).splitlines() if "the local replica failed at" in l]
    assert failed_at, "A's log does not say where the local replica failed"
    print(failed_at[0].split("  ", 1)[-1])
    st = a.status("tank/lf")
    assert member(st, "p3")["state"] == "in-sync", st
    h.shutdown()
    a.cask("pool", "inject", "tank", "none"); faulted = False
    sums = {n: checksum(cl[n], "%s/lf" % pools[n]) for n in "bcd"}
    assert len(set(sums.values())) == 1, sums
    print("C rebuilt from B and D after A's replica failed; B, C, D equal (%s)" % sums["b"])
    ok = True
finally:
    if faulted and a.alive():
        a.cask("pool", "inject", "tank", "none", check=False)
    cl.close()
    if not ok:
        for n in "abcd":
            print("--- %s ---\n%s" % (n, cl[n].tail(25)), file=sys.stderr)
bad = cl.sanitizer_reports()
assert not bad, bad
PY
for v in p2 p3 p4; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: a rebuild whose local source fails part-way finishes from the other in-sync replicas"
