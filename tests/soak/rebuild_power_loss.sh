#!/usr/bin/env bash
# rebuild_power_loss -- every caskd killed -9 at once during client load and
# a rebuild, then all restarted (docs/replication.md 13.4): A controls
# tank/pv (quorum) with B and C; C misses 24 MiB of writes and is being
# rebuilt (throttled) while three libnbd clients (tests/tools/histrec.py)
# write, read and flush a hot set of blocks. When the rebuild is part-way,
# A, B and C are killed -9 together. After the restart A reconciles and
# serves (C, still rebuilding, is not taken as in sync), the clients go on,
# `vol replica rebuild` resumes C; tests/tools/histcheck.py finds no lost
# FLUSH/FUA-acknowledged write, no phantom, no stale read; the three
# replicas' `vol checksum` are equal and `cask vol verify` is clean.
# caskd: the sanitizer build when CASK_ASAN_BUILD is set; any sanitizer report fails.
# Not in make check: `make power-loss-soak` (POWER_LOSS_RUNS, default 10) runs it. About one
# run in a few used to end with A stuck "reconciling: only 1 members can hold the newest state
# (seq N), 2 needed": B was behind A's durable point and the restart had emptied A's in-memory
# ring, the only listing of what B lacked. Fixed (h-16) by listing from the block births on disk
# (docs/replication.md 3.7 as built); tests/integration/repl_reconcile_power_loss.sh builds that
# state on purpose and is in make check.
source "$(dirname "$0")/../integration/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}" SEED=${CASK_SEED:-$RANDOM}
echo "seed $SEED"
"$PY" - <<'PY'
import os, sys, random, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
import histrec
from replnodes import Cluster, checksum
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
ok = False
crashed, back, abort = threading.Event(), threading.Event(), threading.Event()
try:
    for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "512M")
    a, b, c = cl["a"], cl["b"], cl["c"]
    a.cask("vol", "create", "tank/pv", "--size", "64M", "--replica", b.raddr + "/p2", "--replica", c.raddr + "/p3",
           "-o", "consistency=quorum", "-o", "rebuild_rate=8")
    NB = 48  # the history's blocks: 0..47 (4 KiB), zeros at its start
    c.kill9()
    h = nbd.NBD(); h.connect_uri(a.uri("tank/pv"))
    rnd = random.Random(int(os.environ["SEED"]))
    for mib in range(1, 25):
        h.pwrite(rnd.randbytes(1 << 20), mib << 20)
    h.flush(); h.shutdown()
    c.start()
    job = a.ctl("vol.replica_rebuild", name="tank/pv", replica=c.raddr + "/p3")["job"]
    rec = histrec.Recorder(T + "/hist.jsonl", bs=4096)
    phase = {"uri": a.uri("tank/pv"), "part": 0}
    def worker(n):
        wr = random.Random(int(os.environ["SEED"]) * 10 + n)
        for part in (0, 1):
            cli = rec.client(n + 10 * part, phase["uri"])
            for i in range(100000 if part == 0 else 150):
                if part == 0 and crashed.is_set():
                    break
                r, blk = wr.random(), wr.randrange(NB)
                try:
                    if r < 0.55:
                        cli.write(blk, 1, fua=wr.random() < 0.1)
                    elif r < 0.9:
                        cli.read(blk, 1)
                    else:
                        cli.flush()
                except histrec.ClientDead:
                    break
            try:
                cli.close()
            except histrec.ClientDead:
                pass
            if part == 0:
                back.wait(300)
                if abort.is_set():
                    return  # the test failed: its own traceback says why
    ths = [threading.Thread(target=worker, args=(n,)) for n in (1, 2, 3)]
    for t in ths: t.start()
    deadline = time.monotonic() + 300
    while True:
        j = a.ctl("job.get", id=job)
        assert j["state"] == "running", j
        if j["done"] >= 6 << 20:
            break
        assert time.monotonic() < deadline, j
        time.sleep(0.05)
    # power loss: all at once
    for n in (a, b, c):
        n.proc.kill()
    for n in (a, b, c):
        n.proc.wait()
    rec.event("crash")
    crashed.set()
    print("killed every caskd with the rebuild at %d of %d bytes" % (j["done"], j["total"]))
    for n in (b, c, a):
        n.start()
    st = a.wait_state("tank/pv", ["serving"], 120)
    cs = [x for x in st["replicas"] if x["pool"] == "p3"][0]
    assert cs["state"] != "in-sync", st  # still rebuilding: never a reference
    print("after the restart: %s" % [(x["pool"], x["state"]) for x in st["replicas"]])
    back.set()
    r = a.cask("vol", "replica", "rebuild", "tank/pv", c.raddr + "/p3", "--wait", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip())
    for t in ths: t.join()
    fin = rec.client(40, a.uri("tank/pv")); fin.flush(); fin.read(0, NB); fin.close()
    rec.close()
    st = a.status("tank/pv")
    assert [x["state"] for x in st["replicas"]] == ["in-sync"] * 3, st
    sums = {n: checksum(cl[n], v) for n, v in (("a", "tank/pv"), ("b", "p2/pv"), ("c", "p3/pv"))}
    assert len(set(sums.values())) == 1, sums
    r = a.cask("vol", "verify", "tank/pv", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip().splitlines()[-1])
    ok = True
finally:
    if not ok:
        abort.set(); crashed.set(); back.set()  # workers stop at once, not after back.wait's 300 s
    cl.close()
    if not ok:
        for n in "abc":
            print("--- %s ---\n%s" % (n, cl[n].tail(20)), file=sys.stderr)
bad = cl.sanitizer_reports()
assert not bad, bad
PY
"$PY" tests/tools/histcheck.py "$T/hist.jsonl" > "$T/check.txt" 2>&1 ||
  { tail -n 20 "$T/check.txt"; fail "histcheck found violations (seed $SEED)"; }
tail -n 2 "$T/check.txt"
for v in tank p2 p3; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: total power loss during load and rebuild: no acknowledged write lost, the rebuild resumed, replicas equal"
