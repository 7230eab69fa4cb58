#!/usr/bin/env bash
# repl_lease_reconnect -- a lease connection that cannot be made does not
# stop the other members' renewals (docs/replica-protocol.md 6.0, as built;
# ctrl.c kconnect). A controls tank/v (3-way, quorum) through
# tests/tools/faultproxy.py; C's link is limited to 2 MB/s towards C and
# eight libnbd writers keep it busy, so renewals that go with C's data
# arrive seconds late and only C's lease connection keeps the lease. Then
# B's link swallows every byte (blackhole) and its connections are reset:
# B is ejected, and A's lease thread tries B's lease connection again and
# again, each try accepted by the proxy and never answered. Each try waits
# at most 1 s (KCONNECT_MS) and the open connections are served first, so
# `vol status` never shows the lease lapsed (polled all along), no write
# fails, and A and C end identical.
# The twin: with CASK_TEST_LEASE_CONNECT_MS=10000 (--test-ops; the 10 s of
# the data connection, what the lease connection had before) the same run
# must make the lease lapse -- so this test can fail.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, sys, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum, digest, wait_applied
from faultproxy import FaultProxy

M = 1 << 20
SIZE = 32 * M
RATE = 2 * M
WRITERS = 8
MB_PER_WRITER = 4  # 32 MiB in all: about 16 s at 2 MB/s


def scenario(sub, broken):
    T = os.path.join(os.environ["TDIR"], sub)
    os.makedirs(T)
    cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"])
    a, b, c = cl["a"], cl["b"], cl["c"]
    fp = FaultProxy(T + "/proxy.sock", {"ab": ("127.0.0.1:0", b.raddr), "ac": ("127.0.0.1:0", c.raddr)},
                    log=T + "/proxy.log")
    ok = False
    try:
        if broken:
            a.args = ["--test-ops"]
            a.daemon_env = {"CASK_TEST_LEASE_CONNECT_MS": "10000"}
        for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
            cl[n].start()
            cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "256M")
        a.cask("vol", "create", "tank/v", "--size", "32M", "--replica", "127.0.0.1:%d/p2" % fp.port("ab"),
               "--replica", "127.0.0.1:%d/p3" % fp.port("ac"))
        for _ in range(300):
            st = a.wait_state("tank/v", ["serving"])
            if st["lease"]["state"] == "valid":
                break
            time.sleep(0.05)
        assert st["lease"]["state"] == "valid", st
        fp.cmd("rate ac c2r %d" % RATE)
        errors, states = [], []
        stop = threading.Event()

        def writer(w):
            h = nbd.NBD(); h.connect_uri(a.uri("tank/v"))
            for i in range(MB_PER_WRITER):
                try:
                    h.pwrite(bytes([w * 16 + i + 1]) * M, (w * MB_PER_WRITER + i) * M)
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
                states.append(st["lease"]["state"])
                if st["lease"]["state"] == "lapsed" and broken:
                    return
                time.sleep(0.1)

        ths = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in ths: t.start()
        fp.cmd("wait ac c2r.received >= %d 60" % (4 * M))  # C's link is busy now
        fp.cmd("blackhole ab both")
        fp.cmd("reset ab")
        wt = threading.Thread(target=watch); wt.start()
        for t in ths: t.join()
        stop.set(); wt.join()
        lapsed = states.count("lapsed")
        log = open(a.log, errors="replace").read()
        tries = log.count("no lease connection to 127.0.0.1:%d/p2" % fp.port("ab"))
        print("%s: %d status polls while B's link swallowed everything: %d lapsed, %d lease connection tries to B "
              "failed, %d writes failed%s" % (sub, len(states), lapsed, tries, len(errors),
                                               (" (%s)" % errors[0][:80]) if errors else ""))
        if broken:
            assert lapsed > 0 or "lease lapsed" in log, \
                "lease connects that wait 10 s and yet the lease never lapsed: the test cannot fail"
            print("%s: the lease lapsed, as it must when a lease connect waits 10 s" % sub)
        else:
            assert tries >= 1, "the lease connection to B was never tried again: the test did not test it"
            assert len(states) >= 20, states
            assert lapsed == 0 and "lease lapsed" not in log, ("the lease lapsed while B could not be reached",
                                                             states)
            assert not errors, errors
            fp.cmd("rate ac c2r 0")
            st = wait_applied(a, "tank/v")
            reps = {r["pool"]: r for r in st["replicas"]}
            assert reps["p2"]["state"] == "degraded" and reps["p3"]["state"] == "in-sync", reps
            ds = {n: (digest(cl[n].uri(p), SIZE), checksum(cl[n], p)) for n, p in (("a", "tank/v"), ("c", "p3/v"))}
            assert len(set(ds.values())) == 1, ds
            print("%s: B ejected (%s), A and C in sync and identical" % (sub, reps["p2"]["reason"]))
        ok = True
    finally:
        fp.close()
        cl.close()
        if not ok:
            print(cl.logs())
    rep = cl.sanitizer_reports()
    assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()


scenario("reconnect", broken=False)
scenario("reconnect-10s", broken=True)
print("ok: lease connects that cannot complete did not lapse the lease; ones that wait 10 s do")
PY
echo ok
