#!/usr/bin/env bash
# repl_reconcile_power_loss -- reconciliation after a total power loss, when
# the members' durable states differ and no caskd remembers what the others
# lack (docs/replication.md 3.7, as built: "Extents after a restart"). The
# bug tests/soak/rebuild_power_loss.sh found about one run in a few, made
# deterministic. Before the fix, a member behind the reference could be
# tail-synced only from the reference's in-memory ring, which a restart
# empties; so the controller stayed "reconciling: only 1 members can hold
# the newest state (seq N), 2 needed" and the volume never came back.
#
# Round 1 (the soak's state): A controls tank/pv (quorum) with B in sync and C
# being rebuilt (throttled). B is stopped (SIGSTOP); A writes W and a FLUSH:
# A makes W durable, C (write-only) applies it, B never sees it, so nothing
# is acknowledged. Then every caskd is killed -9 and all restart. A must
# resume with B brought to A's state (B lacks W; A's listing of what it
# holds after B's point comes from the block births, on disk), C still not
# in sync (it was rebuilding: never a reference), and `vol replica rebuild`
# then resumes C. A, B and C end equal, W is on every one of them.
# Round 2 (a remote reference, a local target): B is stopped again; A writes
# W2 and a FLUSH, acknowledged by A and C (k = 2 of 3). All are killed -9;
# only B and C restart, and `vol takeover` on B must serve with B tail-synced
# from C (C's listing by births over the wire, RB_SCAN): W2 was acknowledged
# by a FLUSH, so it must be there.
# caskd: the sanitizer build when CASK_ASAN_BUILD is set; any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, sys, random, signal, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum
T = os.environ["TDIR"]
cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
ok = False
stopped = None


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


def power_loss(nodes):
    for n in nodes:
        n.proc.kill()  # SIGKILL also ends a stopped process
    for n in nodes:
        n.proc.wait()


def unacked_write_and_flush(h, data, off):
    """A write and a FLUSH that will not be answered while B is stopped."""
    return [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), off), h.aio_flush()]


try:
    for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
    a, b, c = cl["a"], cl["b"], cl["c"]
    # a long deadline: B, stopped for a moment, must stay a member of I (it is not ejected meanwhile)
    a.cask("vol", "create", "tank/pv", "--size", "64M", "--replica", b.raddr + "/p2", "--replica", c.raddr + "/p3",
           "-o", "consistency=quorum", "-o", "rebuild_rate=1", "-o", "repl_deadline=120000")
    rnd = random.Random(16)
    base = rnd.randbytes(4 << 20)
    h = nbd.NBD(); h.connect_uri(a.uri("tank/pv"))
    h.pwrite(base, 0); h.flush()
    c.kill9()
    missed = rnd.randbytes(40 << 20)  # 40 s of rebuild at 1 MB/s: still running when the power goes
    for mib in range(40):  # acknowledged by A and B; C misses it
        h.pwrite(missed[mib << 20:(mib + 1) << 20], (8 + mib) << 20)
    h.flush()
    h.shutdown()
    c.start()
    job = a.ctl("vol.replica_rebuild", name="tank/pv", replica=c.raddr + "/p3")["job"]
    wait_until("C rebuilding", lambda: member(a.status("tank/pv"), "p3")["state"] == "rebuilding" and
               a.ctl("job.get", id=job)["done"] > 0)

    # ---- round 1: W on A (durable) and C (rebuilding), not on B ----
    h = nbd.NBD(); h.connect_uri(a.uri("tank/pv"))
    W = b"\x5a" * 65536
    WOFF = 56 << 20
    os.kill(b.proc.pid, signal.SIGSTOP); stopped = b
    seq0 = a.status("tank/pv")["seq"]
    unacked_write_and_flush(h, W, WOFF)
    wait_until("A durable past W", lambda: member(a.status("tank/pv"), "tank")["durable_seq"] > seq0)
    j = a.ctl("job.get", id=job)
    assert j["state"] == "running", j  # C is still being rebuilt when the power goes
    st = a.status("tank/pv")
    print("before the power loss: seq %d; %s; rebuild at %d of %d" % (
        st["seq"], [(x["pool"], x["state"], x["acked_seq"], x["durable_seq"]) for x in st["replicas"]],
        j["done"], j["total"]))
    power_loss([a, b, c]); stopped = None
    try:
        h.shutdown()
    except nbd.Error:
        pass
    for n in (b, c, a):
        n.start()
    try:
        st = a.wait_state("tank/pv", ["serving"], 120)
    except RuntimeError as e:
        raise AssertionError("A did not come back after the power loss: %s" % e)
    print("after the restart: %s" % [(x["pool"], x["state"], x["reason"]) for x in st["replicas"]])
    assert member(st, "p2")["state"] == "in-sync", st
    assert member(st, "p3")["state"] != "in-sync", st  # it was rebuilding: never a reference, never counted
    assert st["seq"] > seq0, st  # A was the reference: W is in the new epoch's base
    synced = [l for l in a.tail(400).splitlines() if "brought to seq" in l]
    assert synced and b.raddr in synced[-1], synced
    print(synced[-1].split("] ", 1)[-1])
    births = [l for l in a.tail(400).splitlines() if "from the block births on disk" in l]
    assert births, "A's ring was lost at the restart: the listing must come from the births"
    print(births[-1].split("  ", 1)[-1])
    h = nbd.NBD(); h.connect_uri(a.uri("tank/pv"))
    assert h.pread(len(W), WOFF) == W, "A lost W"
    assert h.pread(4 << 20, 0) == base and all(h.pread(1 << 20, (8 + m) << 20) == missed[m << 20:(m + 1) << 20] for m in range(40)), "acknowledged data lost"
    h.shutdown()
    assert checksum(a, "tank/pv") == checksum(b, "p2/pv"), "B is not A's state after the reconciliation"
    r = a.cask("vol", "replica", "rebuild", "tank/pv", c.raddr + "/p3", "--wait", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout.strip())
    st = a.status("tank/pv")
    assert [x["state"] for x in st["replicas"]] == ["in-sync"] * 3, st
    sums = {n: checksum(cl[n], v) for n, v in (("a", "tank/pv"), ("b", "p2/pv"), ("c", "p3/pv"))}
    assert len(set(sums.values())) == 1, sums

    # ---- round 2: W2 acknowledged by A and C (a FLUSH), B stopped; takeover on B after the power loss ----
    h = nbd.NBD(); h.connect_uri(a.uri("tank/pv"))
    W2 = b"\xa5" * 65536
    W2OFF = 60 << 20
    os.kill(b.proc.pid, signal.SIGSTOP); stopped = b
    h.pwrite(W2, W2OFF); h.flush()  # answered: A and C have it durable
    print("W2 acknowledged (FLUSH) by A and C with B stopped")
    power_loss([a, b, c]); stopped = None
    try:
        h.shutdown()
    except nbd.Error:
        pass
    for n in (b, c):
        n.start()
    r = b.cask("vol", "takeover", "p2/pv", check=False)
    assert r.returncode == 0, "takeover on B after the power loss: " + r.stdout + r.stderr
    st = b.wait_state("p2/pv", ["serving"], 60)
    print("takeover on B: %s" % [(x["pool"], x["state"]) for x in st["replicas"]])
    assert member(st, "p2")["state"] == "in-sync" and member(st, "p3")["state"] == "in-sync", st
    synced = [l for l in b.tail(400).splitlines() if "brought to seq" in l]
    assert synced and "local/p2" in synced[-1], synced
    print(synced[-1].split("] ", 1)[-1])
    births = [l for l in b.tail(400).splitlines() if "from the block births on disk" in l and c.raddr in l]
    assert births, "C's ring was lost at the restart: its listing must come from the births (RB_SCAN)"
    print(births[-1].split("  ", 1)[-1])
    h = nbd.NBD(); h.connect_uri(b.uri("p2/pv"))
    assert h.pread(len(W2), W2OFF) == W2, "the FLUSH-acknowledged W2 was lost"
    assert h.pread(len(W), WOFF) == W and h.pread(4 << 20, 0) == base, "data lost"
    h.shutdown()
    assert checksum(b, "p2/pv") == checksum(c, "p3/pv"), "B and C differ after the takeover"
    ok = True
finally:
    if stopped is not None and stopped.alive():
        os.kill(stopped.proc.pid, signal.SIGCONT)
    cl.close()
    if not ok:
        for n in "abc":
            print("--- %s ---\n%s" % (n, cl[n].tail(25)), file=sys.stderr)
bad = cl.sanitizer_reports()
assert not bad, bad
PY
for v in tank p2 p3; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: after a total power loss a member behind the reference is tail-synced from the births on disk"
