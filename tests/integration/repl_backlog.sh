#!/usr/bin/env bash
# repl_backlog -- the per-member backlog limit (docs/replication.md 3.2 item
# 5, as built; ctrl.c invariant 11). A's caskd runs with --repl-backlog 4M;
# B's link goes through tests/tools/faultproxy.py at 1 MB/s towards B, so B
# applies far slower than writers write. Eight libnbd writers put 1 MiB
# writes (each its own byte pattern) at distinct offsets.
#   eject:   3-way quorum: B is not needed for k, so the write that would
#            take its backlog past 4 MiB ejects it first (state degraded,
#            reason lag); no write fails; then `vol replica rebuild`, B at 4 MB/s
#            under writes, brings it back and all three are identical.
#   needed:  3-way quorum with C killed first: B is needed for k, so writes
#            wait for it (backlog.waited > 0); B stays in sync.
#   all:     2-way all: the same, the level needs B.
#   nolimit: the twin, default limit (256 MiB): B's backlog grows far past
#            4 MiB under the same load -- so the bound above is the limit's.
# Checked in each: the peak backlog vol status reports for every member
# never passed 4 MiB (nolimit: it did), polls of vol status during the load
# never saw more, the data read back is what was written, and the members
# in sync have the same `vol checksum`.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import hashlib, json, os, sys, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
sys.path.insert(0, os.environ["BUILD"] + "/python")
import cask
import nbd
from replnodes import Cluster, checksum, digest, wait_applied
from faultproxy import FaultProxy

M = 1 << 20
SIZE = 32 * M
CAP = 4 * M
RATE = 1 * M
WRITERS = 8
PER_WRITER = 3  # 24 MiB in all


def expected():
    img = bytearray(SIZE)
    for w in range(WRITERS):
        for i in range(PER_WRITER):
            off = (w * PER_WRITER + i) * M
            img[off:off + M] = bytes([w * 16 + i + 1]) * M
    return hashlib.sha256(bytes(img)).hexdigest()


def scenario(sub, level, members, cap, kill_c=False):
    T = os.path.join(os.environ["TDIR"], sub)
    os.makedirs(T)
    names = ["a", "b", "c"][:members]
    cl = Cluster(T, os.environ["BUILD"], names, os.environ["DAEMON_BUILD"])
    a, b = cl["a"], cl["b"]
    links = {"ab": ("127.0.0.1:0", b.raddr)}
    if members == 3:
        links["ac"] = ("127.0.0.1:0", cl["c"].raddr)
    fp = FaultProxy(T + "/proxy.sock", links, log=T + "/proxy.log")
    ok = False
    try:
        if cap is not None:
            a.args = ["--repl-backlog", "%dM" % (cap // M)]
        pools = {"a": "tank", "b": "p2", "c": "p3"}
        for n in names:
            cl[n].start()
            cl[n].cask("pool", "create", pools[n], T + "/%s.vdev" % pools[n], "--size", "256M")
        args = ["vol", "create", "tank/v", "--size", "32M", "--replica", "127.0.0.1:%d/p2" % fp.port("ab")]
        if members == 3:
            args += ["--replica", "127.0.0.1:%d/p3" % fp.port("ac")]
        a.cask(*(args + ["-o", "consistency=" + level]))
        for _ in range(300):
            st = a.wait_state("tank/v", ["serving"])
            if st["lease"]["state"] == "valid":
                break
            time.sleep(0.05)
        assert st["lease"]["state"] == "valid", st
        want_cap = cap if cap is not None else 256 * M
        assert st["backlog"]["max_bytes"] == want_cap, st["backlog"]
        if kill_c:
            cl["c"].kill9()
            end = time.monotonic() + 60
            while True:
                st = a.status("tank/v")
                if st["replicas"][2]["state"] == "degraded":
                    break
                assert time.monotonic() < end, st
                time.sleep(0.1)
        fp.cmd("rate ab c2r %d" % RATE)
        errors, polls = [], []
        stop = threading.Event()

        def writer(w):
            h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
            for i in range(PER_WRITER):
                try:
                    h.pwrite(bytes([w * 16 + i + 1]) * M, (w * PER_WRITER + i) * M)
                except nbd.Error as e:
                    errors.append(str(e))
                    break
            try:
                h.flush(); h.shutdown()
            except nbd.Error as e:
                errors.append(str(e))

        def watch():
            while not stop.is_set():
                st = a.status("tank/v")
                polls.append(max(r["backlog_bytes"] for r in st["replicas"]))
                time.sleep(0.05)

        wt = threading.Thread(target=watch); wt.start()
        ths = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in ths: t.start()
        if sub == "nolimit":
            # B's backlog grows with nothing to stop it (until the writers are done)
            for t in ths: t.join()
            stop.set(); wt.join()
            st = a.status("tank/v")
            peak = st["replicas"][1]["backlog_peak_bytes"]
            print("%s: B's peak backlog %d bytes (%d polls, largest %d) with the default limit" % (
                sub, peak, len(polls), max(polls)))
            assert peak > 3 * CAP, ("without a small limit B's backlog stayed small: the test cannot fail", st)
            assert not errors, errors
            ok = True
            return
        for t in ths: t.join()
        stop.set(); wt.join()
        assert not errors, errors
        st = a.status("tank/v")
        reps = {r["pool"]: r for r in st["replicas"]}
        peaks = {p: r["backlog_peak_bytes"] for p, r in reps.items()}
        print("%s: %d status polls, largest backlog seen %d; peak backlogs %s; backlog %s; B %s (%s)" % (
            sub, len(polls), max(polls), peaks, st["backlog"], reps["p2"]["state"], reps["p2"]["reason"] or "-"))
        assert polls, "vol status was never polled during the load"
        assert max(polls) <= CAP, ("a backlog over the limit was seen", polls)
        assert all(v <= CAP for v in peaks.values()), ("a peak backlog over the limit", peaks)
        if sub == "eject":
            assert reps["p2"]["state"] == "degraded" and reps["p2"]["reason"] == "lag", reps["p2"]
            assert st["backlog"]["ejected"] >= 1, st["backlog"]
            assert "backlog is over the limit" in open(a.log, errors="replace").read()
        else:
            assert reps["p2"]["state"] == "in-sync", reps["p2"]
            assert st["backlog"]["waited"] > 0 and st["backlog"]["ejected"] == 0, st["backlog"]
        if sub == "eject":
            # the rebuild under writes, B's link at 4 MB/s: the live writes queue behind the rebuild data,
            # so the rebuild keeps at most half the limit ahead (rebuild.c rb_ahead); with 64 MiB ahead
            # B's backlog passed the limit and the rebuilding B was ejected for lag again
            fp.cmd("rate ab c2r %d" % (4 * M))
            stop2, rbw = threading.Event(), [0]

            def rb_writer():                    # rewrites writer 0's first MiB with its own bytes
                h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
                while not stop2.is_set():
                    h.pwrite(bytes([1]) * 65536, (rbw[0] % 16) * 65536)
                    rbw[0] += 1
                    time.sleep(0.05)
                h.flush(); h.shutdown()
            rt = threading.Thread(target=rb_writer); rt.start()
            try:
                a.cask("vol", "replica", "rebuild", "tank/v", "127.0.0.1:%d/p2" % fp.port("ab"), "--wait")
            finally:
                stop2.set(); rt.join()
            print("%s: rebuild at 4 MB/s under %d writes of 64 KiB done" % (sub, rbw[0]))
            assert rbw[0] > 0
        fp.cmd("rate ab c2r 0")
        wait_applied(a, "tank/v")
        st = a.status("tank/v")
        assert st["backlog"]["waiting"] == 0, st["backlog"]
        vols = [("a", "tank/v"), ("b", "p2/v")] + ([("c", "p3/v")] if members == 3 and not kill_c else [])
        sums = {n: checksum(cl[n], v) for n, v in vols}
        assert len(set(sums.values())) == 1, sums
        assert digest(a.uri("tank/v"), SIZE) == expected(), "the data read back is not what was written"
        assert all(r["state"] == "in-sync" for r in st["replicas"] if r["pool"] != "p3" or not kill_c), st
        # the CLI (through libcask) and the Python binding say the same as caskd
        cj = json.loads(a.cask("vol", "status", "tank/v", "-j").stdout)
        py = cask.Client(a.sock).vol_status("tank/v")
        peaks = [r["backlog_peak_bytes"] for r in st["replicas"]]
        assert cj["backlog"] == st["backlog"], (cj["backlog"], st["backlog"])
        assert [r["backlog_peak_bytes"] for r in cj["replicas"]] == peaks, (cj, st)
        assert py["backlog"] == st["backlog"] and [r["backlog"]["peak_bytes"] for r in py["replicas"]] == peaks, py
        assert "backlog limit" in a.cask("vol", "status", "tank/v").stdout
        print("%s: every write answered, the data verifies, %s identical" % (sub, ", ".join(n for n, _ in vols)))
        ok = True
    finally:
        fp.close()
        cl.close()
        if not ok:
            print(cl.logs())
    rep = cl.sanitizer_reports()
    assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()


scenario("eject", "quorum", 3, CAP)
scenario("needed", "quorum", 3, CAP, kill_c=True)
scenario("all", "all", 2, CAP)
scenario("nolimit", "quorum", 3, None)
print("ok: no member's backlog passed the limit; a member the level can spare was ejected, a needed one waited for")
PY
echo ok
