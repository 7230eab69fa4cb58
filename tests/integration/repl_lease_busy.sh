#!/usr/bin/env bash
# repl_lease_busy -- the read lease on a busy but healthy link
# (docs/replication.md section 3.3 item 7, as built, "the lease
# connection"): A controls tank/v (3-way, quorum), its links to B and C go
# through tests/tools/faultproxy.py, each limited to 2 MB/s towards the
# replica. Eight libnbd writers keep 1 MiB writes in flight for a while,
# so megabytes of writes wait in the controller's queues, the socket
# buffers and the proxy for each replica. A lease renewal that queued
# behind them (the KEEPALIVE in the data stream) would arrive seconds
# late and the lease would lapse -- a healthy volume failing its IO.
# Checked: `vol status` never shows the lease lapsed (polled all along)
# nor does A's log, no write fails, B and C end in sync and identical to A.
# Then the broken twin: with CASK_TEST_NO_LEASE_CONN=1 (--test-ops; the
# lease connection off, renewals only in the data stream) the same load
# must make the lease lapse -- so this test can fail.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import os, sys, threading, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, checksum, digest
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
            a.daemon_env = {"CASK_TEST_NO_LEASE_CONN": "1"}
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
        fp.cmd("rate ab c2r %d" % RATE)
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
                states.append((st["lease"]["state"], st["lease"]["renewed_by"]))
                if st["lease"]["state"] == "lapsed" and broken:
                    return
                time.sleep(0.1)

        wt = threading.Thread(target=watch); wt.start()
        ths = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in ths: t.start()
        for t in ths: t.join()
        stop.set(); wt.join()
        lapsed = sum(1 for s, _ in states if s == "lapsed")
        print("%s: %d status polls under load at 2 MB/s per replica link: %d lapsed, %d writes failed%s" % (
            sub, len(states), lapsed, len(errors), (" (%s)" % errors[0][:80]) if errors else ""))
        logged = "lease lapsed" in open(a.log, errors="replace").read()
        if broken:
            assert lapsed > 0 or logged, \
                "renewals only in the data stream and yet the lease never lapsed: the test cannot fail"
            print("%s: the lease lapsed (A's log%s), as it must without the lease connection" % (
                sub, ", vol status" if lapsed else ""))
        else:
            assert len(states) >= 20, states
            assert lapsed == 0 and not logged, ("the lease lapsed on a busy but healthy link", states)
            assert not errors, errors
            fp.cmd("rate ab c2r 0")
            fp.cmd("rate ac c2r 0")
            end = time.monotonic() + 120
            while True:
                st = a.status("tank/v")
                reps = st["replicas"]
                if all(r["state"] == "in-sync" for r in reps) and len(set(r["acked_seq"] for r in reps)) == 1:
                    break
                assert time.monotonic() < end, st
                time.sleep(0.1)
            ds = {n: (digest(cl[n].uri(p), SIZE), checksum(cl[n], p)) for n, p in
                  (("a", "tank/v"), ("b", "p2/v"), ("c", "p3/v"))}
            assert len(set(ds.values())) == 1, ds
            print("%s: A, B and C in sync and identical afterwards" % sub)
        ok = True
    finally:
        fp.close()
        cl.close()
        if not ok:
            print(cl.logs())
    rep = cl.sanitizer_reports()
    assert not rep, "sanitizer reports in caskd logs:\n" + "\n".join(rep) + "\n" + cl.logs()


scenario("busy", broken=False)
scenario("busy-no-lease-conn", broken=True)
print("ok: the lease stayed valid on a busy link; renewals behind the writes let it lapse")
PY
echo ok
