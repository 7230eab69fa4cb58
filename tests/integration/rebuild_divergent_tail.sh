#!/usr/bin/env bash
# rebuild_divergent_tail -- a replica holding writes that were never
# acknowledged, after its controller crashed, is rebuilt to the reference
# (docs/replication.md 12.1-12.2: the target's own divergent tail is part
# of the delta; DRBD's crashed-primary lesson). Five caskd, every remote
# member behind tests/tools/faultproxy.py; A controls tank/db at quorum (k
# = 3 of 5). 4 MiB are written and acknowledged. Then the proxy throws away
# everything A sends C, D and E, and A writes W (16 x 64 KiB): only A and
# B apply it, so it is never acknowledged. Once B applied all of W, A is
# killed -9 and B is cut off (its link reset, new connections refused).
# `vol takeover` on C (C, D, E: a quorum) serves without W. B comes back;
# `vol replica rebuild` on C (B promises C's epoch on the way, PREPARE
# join) copies the delta, W's ranges included; then B equals C, D and E,
# none of W's bytes is left on it, and the acknowledged data reads back.
# caskd: the sanitizer build when CASK_ASAN_BUILD is set (tests/run.sh sets it); any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, sys, random, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum
from faultproxy import FaultProxy
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c", "d", "e"], os.environ["DAEMON_BUILD"])
fp = None
ok = False
try:
    pools = {"a": "tank", "b": "p2", "c": "p3", "d": "p4", "e": "p5"}
    for n, pool in pools.items():
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
    a, b, c = cl["a"], cl["b"], cl["c"]
    fp = FaultProxy(T + "/proxy.sock", {n: ("127.0.0.1:0", cl[n].raddr) for n in "bcde"}, log=T + "/proxy.log")
    addr = {n: "127.0.0.1:%d/%s" % (fp.port(n), pools[n]) for n in "bcde"}
    a.cask("vol", "create", "tank/db", "--size", "64M", "-o", "consistency=quorum",
           *sum((["--replica", addr[n]] for n in "bcde"), []))
    rnd = random.Random(21)
    base = rnd.randbytes(4 << 20)
    h = nbd.NBD(); h.connect_uri(a.uri("tank/db"))
    h.pwrite(base, 0); h.flush()
    seq0 = a.status("tank/db")["seq"]
    # W reaches A and B only: never acknowledged
    for n in "cde":
        fp.cmd("blackhole %s c2r" % n)
    W = [(rnd.randrange(0, 63) << 20) + (rnd.randrange(16) << 16) for _ in range(16)]
    cookies = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"\xdd" * 65536)), off) for off in W]
    deadline = time.monotonic() + 120
    while b.status("p2/db").get("seq", 0) < seq0 + len(W):
        assert time.monotonic() < deadline, b.status("p2/db")
        h.poll(20)
    for ck in cookies:
        try:
            assert not h.aio_command_completed(ck), "a write of W was acknowledged by A and B alone"
        except nbd.Error:
            pass  # failed (the lease lapsed): not acknowledged either
    print("B applied W (seq %d..%d); A has no quorum for it" % (seq0 + 1, seq0 + len(W)))
    a.kill9()
    fp.cmd("refuse b on"); fp.cmd("reset b")
    for n in "cde":
        fp.cmd("clear %s" % n); fp.cmd("reset %s" % n)
    r = c.cask("vol", "takeover", "p3/db", check=False)
    assert r.returncode == 0, r.stderr
    st = c.wait_state("p3/db", ["serving"])
    print("takeover on C: seq %d; B is %s" % (st["seq"], [x["state"] for x in st["replicas"] if x["pool"] == "p2"]))
    assert st["seq"] == seq0, st  # the reference does not hold W
    fp.cmd("refuse b off")
    r = c.cask("vol", "replica", "rebuild", "p3/db", addr["b"], "--wait", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip())
    st = c.status("p3/db")
    bst = [x for x in st["replicas"] if x["pool"] == "p2"][0]
    assert bst["state"] == "in-sync" and bst["rebuild"]["kind"] == "delta", bst
    # the delta covers W (16 x 64 KiB) and little else: not a full copy of the 4 MiB written
    assert bst["rebuild"]["transferred"] < 2 << 20, bst
    sums = {n: checksum(cl[n], "%s/db" % pools[n]) for n in "bcde"}
    assert len(set(sums.values())) == 1, sums
    h2 = nbd.NBD(); h2.connect_uri(c.uri("p3/db"))
    assert h2.pread(4 << 20, 0) == base, "acknowledged data lost"
    for off in W:
        assert h2.pread(65536, off) != b"\xdd" * 65536, "W survived at %d" % off
    h2.shutdown()
    print("B rolled back to the reference: W gone, acknowledged data present, b..e equal (%s)" % sums["b"])
    ok = True
finally:
    if fp is not None:
        fp.close()
    if not ok:
        for n in "abc":
            print("--- %s ---\n%s" % (n, cl[n].tail(25)), file=sys.stderr)
    cl.close()
bad = cl.sanitizer_reports()
assert not bad, bad
PY
for v in p2 p3 p4 p5; do  # B's record (history with the join entry, applied below hi) passes the checker
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: a replica's divergent tail (never acknowledged, controller crashed) is rebuilt to the reference"
