#!/usr/bin/env bash
# repl_restart -- rule 7 when the controller's own caskd comes back
# (docs/replication.md section 3.7): A controls tank/v (3-way, quorum),
# replicas on B and C.
#   1. kill -9 of A under load (three libnbd clients recording a history):
#      A restarts, finds that it controlled tank/v (RP_CONTROLLER_HERE),
#      reconciles from the members (its own replica lost what it had not
#      made durable: it is brought to the newest state from a member's
#      newest operations, or left degraded) and serves writes again at a new
#      epoch; the clients go on through A; histcheck finds nothing lost, no
#      phantom, no stale read; every member the new epoch counts in sync
#      holds the same bytes (`cask vol checksum`, and sha256 over NBD);
#   2. a clean restart (SIGTERM) of A: resumed, in sync members equal;
#   3. with only A up, the restarted controller does not serve writes (it
#      needs a prepare quorum): `vol status` says reconciling; once B is
#      back it serves, and what was written before is there.
# caskd: the sanitizer build when CASK_ASAN_BUILD is set (tests/run.sh sets it); any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}" SEED=${CASK_SEED:-$RANDOM}
echo "seed $SEED"
"$PY" - <<'PY'
import os, sys
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
import histrec
from replnodes import Cluster, checksum, digest, kill_under_load, start_three, wait_applied
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
ok = False
SIZE = 16 << 20
URIS = {"a": "tank/v", "b": "p2/v", "c": "p3/v"}
NODE = {"tank": "a", "p2": "b", "p3": "c"}

def in_sync_equal(st, what):
    """Every member the controller counts in sync holds the same bytes."""
    ds = {}
    for r in st["replicas"]:
        if r["state"] == "in-sync":
            node = NODE[r["pool"]]
            ds[node] = (digest(cl[node].uri(URIS[node]), SIZE), checksum(cl[node], URIS[node]))
    assert len(set(ds.values())) == 1 and len(ds) >= 2, (what, ds, st)
    return sorted(ds)

try:
    start_three(cl)
    a, b, c = cl["a"], cl["b"], cl["c"]

    # 1. kill -9 under load, restart, reconcile, serve again
    rec = histrec.Recorder(T + "/hist.jsonl", bs=4096)
    NB = 48
    def restart():
        a.start()
        st = a.wait_state("tank/v", ("serving",), 60)
        assert st["epoch_counter"] >= 2, st
        return a.uri("tank/v")
    kill_under_load(cl, rec, os.environ["SEED"], restart, NB, (300, 200))
    fin = rec.client(40, a.uri("tank/v")); fin.flush(); fin.read(0, NB); fin.close()
    st = wait_applied(a, "tank/v")      # the in-sync members are read directly next
    for r in st["replicas"]:
        node = NODE[r["pool"]]
        if r["state"] == "in-sync" and node != "a":
            cc = rec.client(41 if node == "b" else 42, cl[node].uri(URIS[node])); cc.read(0, NB); cc.close()
    rec.close()
    eq = in_sync_equal(st, "after kill -9")
    for line in open(a.log, errors="replace"):
        if "brought to seq" in line or "degraded until" in line:
            print("  A's log:", line.split("  ", 1)[-1].strip()[:160])
    print("kill -9 of the controller under load, restart: serving at epoch %s, in sync and identical: %s"
          % (st["epoch"], ",".join(eq)))

    # 2. clean restart
    a.stop()
    a.start()
    st = a.wait_state("tank/v", ("serving",), 60)
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    h.pwrite(b"\x42" * 4096, 4096 * 100); h.flush(); h.shutdown()
    st = wait_applied(a, "tank/v")
    eq = in_sync_equal(st, "after a clean restart")
    print("clean restart: epoch %s, in sync and identical: %s" % (st["epoch"], ",".join(eq)))

    # 3. alone it does not serve writes; with a prepare quorum it does
    a.stop(); b.stop(); c.stop()
    a.start()
    st = a.wait_state("tank/v", ("reconciling", "serving"), 60)   # never serving: no prepare quorum
    assert st["state"] == "reconciling", st
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    try:
        h.pwrite(b"\x13" * 4096, 0)
        raise AssertionError("a write was served without a prepare quorum")
    except nbd.Error:
        pass
    h.shutdown()
    print("alone: %s" % st["message"][:120])
    b.start()
    st = a.wait_state("tank/v", ("serving",), 60)
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    h.pwrite(b"\x14" * 4096, 0); h.flush()
    assert h.pread(4096, 4096 * 100) == b"\x42" * 4096
    h.shutdown()
    print("with B back: serving at epoch %s" % st["epoch"])
    ok = True
finally:
    cl.close()
    if not ok:
        print(cl.logs())
rep = cl.sanitizer_reports()
assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()
PY
"$PY" tests/tools/histcheck.py "$T/hist.jsonl" | tail -n 5 | tee "$T/check.txt"
echo ok
