#!/usr/bin/env bash
# repl_takeover_force -- `cask vol takeover --force` (docs/replication.md
# 3.7 steps 4 and 8, as built). tank/v on A, 3-way, consistency one: a
# write is acknowledged by one member, so a takeover must reach every
# in-sync member to be sure it holds every acknowledged write.
#   * A and B killed: `takeover --force` on C is still refused
#     (1 of 3 members promised, 2 needed): --force never skips the prepare
#     quorum, which is what fences the old controller.
#   * B back: `takeover` without --force is refused (A, in sync, cannot
#     be reached) and says --force would go on; with --force it serves,
#     caskd logs and `vol status` ("forced") name A as not counted, and
#     the data written (and applied everywhere) before the kill reads back.
#   * A restarted: it finds the takeover and does not take the volume back
#     (state moved).
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import hashlib, json, os, sys, time
sys.path.insert(0, "tests/integration")
import nbd
from replnodes import Cluster, digest, wait_applied

M = 1 << 20
SIZE = 16 * M
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
a, b, c = cl["a"], cl["b"], cl["c"]
ok = False
try:
    for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "128M")
    a.cask("vol", "create", "tank/v", "--size", "16M", "--replica", b.raddr + "/p2", "--replica", c.raddr + "/p3",
           "-o", "consistency=one")
    a.wait_state("tank/v", ["serving"])
    img = bytearray(SIZE)
    h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
    for i in range(8):
        h.pwrite(bytes([i + 1]) * M, i * M)
        img[i * M:(i + 1) * M] = bytes([i + 1]) * M
    h.flush(); h.shutdown()
    wait_applied(a, "tank/v")
    a.kill9()
    b.kill9()
    r = c.cask("vol", "takeover", "--force", "p3/v", check=False)
    print("A and B down, takeover --force on C: rc %d: %s" % (r.returncode, r.stderr.strip()[:300]))
    assert r.returncode != 0 and "1 of 3 members promised (need 2)" in r.stderr, r.stderr
    b.start()
    r = c.cask("vol", "takeover", "p3/v", check=False)
    print("A down, takeover on C: rc %d: %s" % (r.returncode, r.stderr.strip()[:300]))
    assert r.returncode != 0 and "can be counted" in r.stderr and "--force" in r.stderr, r.stderr
    r = c.cask("vol", "takeover", "--force", "p3/v")
    print("takeover --force on C: %s" % r.stdout.strip())
    st = c.wait_state("p3/v", ["serving"])
    assert a.raddr + "/tank" in st.get("forced", ""), st
    assert "writes acknowledged only by those may be lost" in open(c.log, errors="replace").read()
    reps = {r_["pool"]: r_["state"] for r_ in st["replicas"]}
    assert reps == {"p3": "in-sync", "p2": "in-sync", "tank": "degraded"}, st
    assert digest(c.uri("p3/v"), SIZE) == hashlib.sha256(bytes(img)).hexdigest(), "the data read back differs"
    print("C serves (%s); the data written before the kill reads back" % st["forced"])
    a.start()
    st = a.wait_state("tank/v", ["moved"])
    print("A restarted: %s (%s)" % (st["state"], st.get("fenced_by", "")))
    ok = True
finally:
    cl.close()
    if not ok:
        print(cl.logs())
rep = cl.sanitizer_reports()
assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()
print("ok: takeover --force needs a prepare quorum, goes on without an unreachable in-sync member and says so")
PY
echo ok
