#!/usr/bin/env bash
# repl_lease -- rule 5 with leases (docs/replication.md section 3.3 item 7):
# a controller partitioned from the majority never serves a read of a block
# that a newer controller overwrote. Real caskd processes A (controller of
# tank/v, quorum), B and C; tests/tools/faultproxy.py carries A -> B, A -> C
# and every connection to A's replica service (A advertises the proxy).
#   1. write OLD to block 5 through A, flush; read it back from A;
#   2. partition A from the majority: `freeze` the open A -> B and A -> C
#      connections (nothing moves, the sockets stay open: an idle old
#      controller that is never told), `refuse` new connections to A;
#   3. `cask vol takeover p2/v` on B (reaches C through the proxy: new
#      connections pass), write NEW to block 5 through B, flush;
#   4. every read of block 5 from A after that returns EIO or NEW, never
#      OLD; A's `vol status` says no-lease (lease lapsed); a write through A
#      fails with EIO.
# Then the same with A started with --test-ops and CASK_TEST_UNSAFE_NO_LEASE=1
# (the lease check off): step 4 must see OLD, or the test fails (it can fail).
# Network namespaces: when `ip netns` works (root), both rounds run once
# more with each caskd in its own namespace (replnodes.py NetNS), no proxy,
# and the partition a real link-down of A's veth; the reads (and a write,
# which must fail with EIO) come from a libnbd client inside A's namespace.
# The rounds run at the same time (nothing is shared between them).
# caskd: the sanitizer build when CASK_ASAN_BUILD is set; any sanitizer report fails.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
export TDIR="$T" BUILD="$CASK_BUILD" DAEMON_BUILD="${CASK_ASAN_BUILD:-$CASK_BUILD}"
"$PY" - <<'PY'
import errno, json, os, sys, time
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
import nbd
from replnodes import Cluster, NetNS
from faultproxy import FaultProxy

BS, BLK = 4096, 5
OLD, NEW = b"O" * BS, b"N" * BS


def read_a(h):
    try:
        return h.pread(BS, BLK * BS)
    except nbd.Error as e:
        assert e.errno in (errno.EIO, "EIO"), "read from the old controller: %s (errno %s), expected EIO" % (e, e.errno)
        return "EIO"


# An NBD client inside the partitioned node's namespace: reads of block 5, then (unless broken) a write.
READER = r"""
import errno, json, sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1]); out = []
def eio(e):
    return e.errno in (errno.EIO, "EIO")
for _ in range(20):
    try:
        d = h.pread(4096, 5 * 4096)
        out.append("OLD" if d == b"O" * 4096 else "NEW" if d == b"N" * 4096 else "other")
    except nbd.Error as e:
        out.append("EIO" if eio(e) else "error: %s" % e)
if sys.argv[2] == "write":
    try:
        h.pwrite(b"X" * 4096, 0); out.append("write acknowledged")
    except nbd.Error as e:
        out.append("write EIO" if eio(e) else "write error: %s" % e)
print(json.dumps(out))
"""


def lease_api(node, want):
    """The lease through the stable API: libcask via the Python binding, `vol status -j` and the human
    output all say `want`; valid means a commit quorum renewed it (renewed_by >= needed, time left)."""
    sys.path.insert(0, os.environ["BUILD"] + "/python")
    import cask
    for _ in range(100):
        py = cask.Client(node.sock).vol_status("tank/v")["lease"]
        js = json.loads(node.cask("vol", "status", "tank/v", "-j").stdout)["lease"]
        txt = node.cask("vol", "status", "tank/v").stdout
        if py["state"] == js["state"] == want and ("lease " + want) in txt:
            break
        time.sleep(0.05)
    assert py["state"] == js["state"] == want and ("lease " + want) in txt, (want, py, js, txt)
    for l in (py, js):
        assert l["needed"] == 2 and l["lease_ms"] > 0, l
        if want == "valid":
            assert l["renewed_by"] >= l["needed"] and 0 < l["left_ms"] <= l["lease_ms"], l
        if want == "lapsed":
            assert l["renewed_by"] < l["needed"] and l["left_ms"] == 0, l
    print("lease through libcask/Python, vol status -j and vol status: %s (%s)" % (want, py))


def scenario(sub, broken, netns=False):
    T = os.path.join(os.environ["TDIR"], sub)
    os.makedirs(T)
    cl = Cluster(T, os.environ["BUILD"], ["a", "b", "c"], os.environ["DAEMON_BUILD"], netns=netns)
    a, b, c = cl["a"], cl["b"], cl["c"]
    fp = None
    if not netns:
        fp = FaultProxy(T + "/proxy.sock", {"ab": ("127.0.0.1:0", b.raddr), "ac": ("127.0.0.1:0", c.raddr),
                                            "ba": ("127.0.0.1:0", a.raddr)}, log=T + "/proxy.log")
    ha = None
    try:
        if fp is not None:
            a.args = ["--replica-advertise", "127.0.0.1:%d" % fp.port("ba")]
        if broken:
            a.args.append("--test-ops")
            a.daemon_env = {"CASK_TEST_UNSAFE_NO_LEASE": "1"}
        for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
            cl[n].start()
            cl[n].cask("pool", "create", pool, T + "/%s.vdev" % pool, "--size", "128M")
        rb = "127.0.0.1:%d" % fp.port("ab") if fp else b.raddr
        rc = "127.0.0.1:%d" % fp.port("ac") if fp else c.raddr
        a.cask("vol", "create", "tank/v", "--size", "8M", "--replica", rb + "/p2", "--replica", rc + "/p3")
        want = "off (test)" if broken else "valid"
        end = time.monotonic() + 60
        while True:
            st = a.wait_state("tank/v", ["serving"])
            if st["lease"]["state"] == want or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert st["lease"]["state"] == want, st
        lease_api(a, want)
        ha = nbd.NBD()
        ha.connect_uri(a.uri("tank/v"))
        ha.pwrite(OLD, BLK * BS)
        ha.flush()
        assert read_a(ha) == OLD

        # 2. partition A from B and C (A's own replica is the minority)
        if fp is not None:
            for link in ("ab", "ac"):
                n = fp.cmd("freeze " + link)["connections"]
                assert n >= 1, (link, n)
            fp.cmd("refuse ba on")
            fp.cmd("reset ba")
        else:
            ha.shutdown()
            ha = None
            cl.partition("a")       # A's veth down: nothing reaches A, nothing leaves it

        # 3. takeover on B, new data through B
        r = b.cask("vol", "takeover", "p2/v", check=False)
        assert r.returncode == 0, r.stderr
        # the member B could not reach is shown out of sync, with its reason in words
        ma = [m for m in b.status("p2/v")["replicas"] if m["pool"] == "tank"][0]
        assert ma["state"] != "in-sync" and ma["reason"] and not ma["reason"][-1].isdigit(), ma
        print("%s: on B, A is %s (%s)" % (sub, ma["state"], ma["reason"]))
        hb = nbd.NBD()
        hb.connect_uri(b.uri("p2/v"))
        hb.pwrite(NEW, BLK * BS)
        hb.flush()
        assert hb.pread(BS, BLK * BS) == NEW
        hb.shutdown()

        # 4. reads from the old controller, every one begun after NEW was acknowledged
        if fp is not None:
            seen = [read_a(ha) for _ in range(20)]
        else:
            r = a.run_in([sys.executable, "-c", READER, a.uri("tank/v"), "read" if broken else "write"],
                         capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            seen = json.loads(r.stdout)
            if not broken:
                assert seen[-1] == "write EIO", seen
                seen = seen[:-1]
            seen = [OLD if v == "OLD" else NEW if v == "NEW" else v for v in seen]
        stale = sum(1 for v in seen if v == OLD)
        other = [v for v in seen if v not in (OLD, NEW, "EIO")]
        assert not other, "a read returned a value never written: %r" % other[0][:16]
        sa = a.status("tank/v")
        print("%s: old controller reads: %d EIO, %d new, %d OLD (stale); status %s lease %s" % (
            sub, seen.count("EIO"), sum(1 for v in seen if v == NEW), stale, sa["state"], sa.get("lease")))
        if not broken:
            assert stale == 0, "the old controller served the overwritten value %d times" % stale
            sa = a.wait_state("tank/v", ["no-lease", "fenced"])
            assert sa["state"] == "fenced" or sa["lease"]["state"] == "lapsed", sa
            if sa["state"] != "fenced":
                lease_api(a, "lapsed")
            if ha is not None:
                try:
                    ha.pwrite(b"X" * BS, 0)
                    raise AssertionError("a write through the old controller was acknowledged without a lease")
                except nbd.Error as e:
                    assert e.errno in (errno.EIO, "EIO"), e
            txt = a.cask("vol", "status", "tank/v").stdout
            assert "no-lease" in txt or "fenced" in txt, txt
            print(txt.strip())
        else:
            assert stale > 0, "the lease check was off and yet no stale read was seen: the test cannot fail"
        reps = cl.sanitizer_reports()
        assert not reps, reps
    except BaseException:
        for n in ("a", "b", "c"):
            print("--- caskd %s" % n, cl[n].tail(), file=sys.stderr)
        raise
    finally:
        if ha is not None:
            try:
                ha.shutdown()
            except nbd.Error:
                pass
        if fp is not None:
            fp.close()
        cl.close()


# The rounds share nothing (own directories, ports, proxies, namespaces), so
# they run at once: each one mostly waits (a lease to lapse, the takeover's
# connect to the partitioned A to give up), and one after the other they
# took most of this test's time.
rounds = [("lease", False, False), ("nolease", True, False)]
why = NetNS.unavailable()
if why is None:
    rounds += [("netns-lease", False, True), ("netns-nolease", True, True)]
else:
    print("network namespaces unavailable (%s): the link-down rounds are skipped" % why)
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(len(rounds)) as ex:
    futs = [(sub, ex.submit(scenario, sub, broken, netns)) for sub, broken, netns in rounds]
failed = []
for sub, f in futs:
    e = f.exception()
    if e is not None:
        import traceback
        print("round %s failed:" % sub, file=sys.stderr)
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        failed.append(sub)
assert not failed, "rounds failed: %s" % ", ".join(failed)
print("ok: the partitioned controller never served the overwritten block; with the lease check off it did")
PY
