#!/usr/bin/env bash
# repl_takeover -- rule 7 (docs/replication.md section 3.7) with real caskd
# processes on loopback (A controls tank/v, replicas on B and C):
#   1. kill -9 of the controller's caskd under load (three libnbd clients,
#      tests/tools/histrec.py), then `cask vol takeover p2/v` on B: B serves
#      at a new epoch, the clients go on through B; tests/tools/histcheck.py
#      finds no lost acknowledged write, no phantom, no stale read; B and C
#      (in sync) hold the same bytes (`cask vol checksum` on each, and a
#      sha256 of each replica read over NBD);
#   2. the old controller restarted does not take the volume back: its
#      `vol status` says moved and names B, its local replica refuses NBD
#      writes, and B keeps serving writes;
#   3. two simultaneous takeovers (B and C, of a second volume whose
#      controller was killed): exactly one ends up serving -- a write and
#      flush through it succeed, one through the other fails -- and the
#      loser's status says it is not serving; then the loser takes it over:
#      the winner's acknowledged write is there and the winner is fenced.
# caskd: the sanitizer build when CASK_ASAN_BUILD is set (tests/run.sh sets it); any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}" SEED=${CASK_SEED:-$RANDOM}
echo "seed $SEED"
"$PY" - <<'PY'
import os, sys, threading
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
import histrec
from replnodes import Cluster, checksum, digest, kill_under_load, start_three, wait_applied
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
ok = False
try:
    start_three(cl)
    a, b, c = cl["a"], cl["b"], cl["c"]
    SIZE = 16 << 20

    # 1. kill -9 of the controller under load, takeover on B
    rec = histrec.Recorder(T + "/hist.jsonl", bs=4096)
    NB = 48
    def takeover():
        r = b.cask("vol", "takeover", "p2/v", check=False)
        assert r.returncode == 0, r.stderr
        print(r.stdout.strip())
        return b.uri("p2/v")
    kill_under_load(cl, rec, os.environ["SEED"], takeover, NB, (300, 150))
    st = b.status("p2/v")
    assert st["state"] == "serving" and st["epoch_counter"] >= 2, st
    ins = {x["pool"]: x["state"] for x in st["replicas"]}
    assert ins["p2"] == "in-sync" and ins["p3"] == "in-sync", st
    fin = rec.client(40, b.uri("p2/v")); fin.flush(); fin.read(0, NB); fin.close()
    wait_applied(b, "p2/v")             # C is read directly next
    cc = rec.client(41, c.uri("p3/v")); cc.read(0, NB); cc.close()
    rec.close()
    dB, dC = digest(b.uri("p2/v"), SIZE), digest(c.uri("p3/v"), SIZE)
    assert dB == dC, (dB, dC)
    kB, kC = checksum(b, "p2/v"), checksum(c, "p3/v")
    assert kB == kC, ("vol checksum", kB, kC)
    print("takeover on B after kill -9 of A under load: epoch %s, B and C identical (%s...)" % (st["epoch"], dB[:16]))

    # 2. the old controller comes back and does not take the volume back
    a.start()
    sa = a.wait_state("tank/v", ("moved",), 60)
    assert b.raddr in sa["message"], sa
    sys.path.insert(0, os.environ["BUILD"] + "/python")
    import cask
    cs = cask.Client(a.sock).vol_status("tank/v")        # the Python binding says the same
    assert cs["state"] == "moved" and b.raddr in cs["fenced_by"], cs
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    try:
        h.pwrite(b"\x55" * 4096, 0)
        raise AssertionError("the old controller's replica took a write")
    except nbd.Error:
        pass
    h.shutdown()
    hb = nbd.NBD(); hb.connect_uri(b.uri("p2/v"))
    hb.pwrite(b"\x66" * 4096, 4096 * 60); hb.flush()
    assert hb.pread(4096, 4096 * 60) == b"\x66" * 4096
    hb.shutdown()
    assert b.status("p2/v")["state"] == "serving"
    print("A restarted: %s; B still serves writes" % sa["message"][:100])

    # 3. two takeovers at once: one wins
    a.cask("vol", "create", "tank/w", "--size", "4M", "--replica", b.raddr + "/p2", "--replica", c.raddr + "/p3")
    hw = nbd.NBD(); hw.connect_uri(a.uri("tank/w"))
    for i in range(64):
        hw.pwrite(bytes([i + 1]) * 4096, i * 4096)
    hw.flush()
    a.kill9()
    res = {}
    go = threading.Barrier(2)
    def tk(node, vol):
        go.wait()
        res[node.name] = node.cask("vol", "takeover", vol, check=False)
    t1 = threading.Thread(target=tk, args=(b, "p2/w")); t2 = threading.Thread(target=tk, args=(c, "p3/w"))
    t1.start(); t2.start(); t1.join(); t2.join()
    wins = []
    for node, vol in ((b, "p2/w"), (c, "p3/w")):
        print("takeover on %s: rc %d %s" % (node.name, res[node.name].returncode,
              (res[node.name].stdout or res[node.name].stderr).strip()[:160]))
        try:
            hh = nbd.NBD(); hh.connect_uri(node.uri(vol))
            hh.pwrite(b"\x99" * 4096, 0); hh.flush(); hh.shutdown()
            wins.append(node.name)
        except nbd.Error as e:
            pass
    assert len(wins) == 1, ("winners", wins)
    loser = c if wins == ["b"] else b
    lst = loser.status("p3/w" if loser is c else "p2/w")
    assert lst["state"] != "serving", lst
    print("two takeovers at once: %s won; %s is %s" % (wins[0], loser.name, lst["state"]))
    # and the loser can take it over afterwards: the winner is fenced by its next write
    winner = b if loser is c else c
    lvol, wvol = ("p3/w", "p2/w") if loser is c else ("p2/w", "p3/w")
    loser.cask("vol", "takeover", lvol)
    hl = nbd.NBD(); hl.connect_uri(loser.uri(lvol))
    assert hl.pread(4096, 0) == b"\x99" * 4096      # the winner's acknowledged write is there
    hl.pwrite(b"\xaa" * 4096, 0); hl.flush(); hl.shutdown()
    hw2 = nbd.NBD(); hw2.connect_uri(winner.uri(wvol))
    try:
        hw2.pwrite(b"\xbb" * 4096, 0); hw2.flush()
        raise AssertionError("the fenced winner still wrote")
    except nbd.Error:
        pass
    # fenced by the refusal of its next frame; its write may have failed first for want of a
    # lease (the members stopped renewing it before they promised the loser's epoch)
    winner.wait_state(wvol, ("fenced",), 60)
    print("%s took it over next: the former winner is fenced" % loser.name)
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
