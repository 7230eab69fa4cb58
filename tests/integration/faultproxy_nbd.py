#!/usr/bin/python3
"""faultproxy_nbd.py -- the fault proxy (tests/tools/faultproxy.py) between
real NBD clients (qemu-io, nbdcopy, nbdinfo, python3-libnbd) and a real
caskd (faultproxy.sh starts it).

  faultproxy_nbd.py CASKD_NBD_PORT SCRATCH_DIR

Every scenario asserts on bytes, ordering and error outcomes: what the
client saw (answer, error, no answer while a fault holds) and what the
volume holds afterwards (read over a direct connection, or checked by
histcheck.py from a recorded history). Delays and rates only make things
happen; their figures are printed, never asserted.
"""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import nbd  # noqa: E402
import histcheck  # noqa: E402
import histrec  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

PORT = int(sys.argv[1])
D = sys.argv[2]
BS = 4096
DIRECT = "nbd://127.0.0.1:%d/tank/v" % PORT
MiB = 1 << 20


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def via(link):
    return "nbd://127.0.0.1:%d/tank/v" % proxy.port(link)


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def aio_wait(h, cookie, seconds):
    """'done', 'error: ...' or 'pending' (no answer within SECONDS)."""
    end = time.monotonic() + seconds
    while True:
        try:
            if h.aio_command_completed(cookie):
                return "done"
        except nbd.Error as e:
            return "error: %s" % e
        left = end - time.monotonic()
        if left <= 0:
            return "pending"
        try:
            h.poll(int(min(left, 0.2) * 1000) + 1)
        except nbd.Error as e:
            return "error: %s" % e


def pattern(tag, n=BS):
    return (hashlib.sha256(tag.encode()).digest() * (n // 32 + 1))[:n]


def read_direct(block, n=1):
    h = connect(DIRECT)
    b = h.pread(n * BS, block * BS)
    h.shutdown()
    return b


def zero_direct(block, n):
    h = connect(DIRECT)
    h.zero(n * BS, block * BS)
    h.flush()
    h.shutdown()


def write_direct(block, data):
    h = connect(DIRECT)
    h.pwrite(data, block * BS)
    h.flush()
    h.shutdown()


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(MiB), b""):
            h.update(b)
    return h.hexdigest()


proxy = FaultProxy(os.path.join(D, "proxy.sock"), {
    "a": ("127.0.0.1:0", "127.0.0.1:%d" % PORT, {"src": "c1", "dst": "s1"}),
    "b": ("127.0.0.1:0", "127.0.0.1:%d" % PORT, {"src": "c1", "dst": "s2"}),
}, log=os.path.join(D, "proxy.log"))


def scenario(name):
    proxy.cmd("mark scenario " + name.replace(" ", "_"))
    proxy.cmd("clear")                 # no link named: every link
    print("== " + name)


def fill():
    # nbdcopy skips holes and zeros: give every block data so copies move bytes
    p = run(["qemu-io", "-f", "raw", "-c", "write -P 0x5c 0 16M", "-c", "flush", DIRECT])
    if p.returncode != 0:
        fail("qemu-io fill: %s" % p.stderr)


def delay_qemu_io():
    scenario("delay both ways, qemu-io write + flush, read back direct")
    proxy.cmd("delay a both 20")
    before = proxy.stats("a")["c2r.forwarded"]
    t0 = time.monotonic()
    p = run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "flush", via("a")])
    secs = time.monotonic() - t0
    if p.returncode != 0:
        fail("qemu-io through a delayed link: %s" % p.stderr)
    st = proxy.stats("a")
    if st["c2r.forwarded"] - before < MiB:
        fail("the proxy forwarded %d bytes c2r for a 1 MiB write" % (st["c2r.forwarded"] - before))
    p = run(["qemu-io", "-f", "raw", "-c", "read -P 0xab 0 1M", DIRECT])
    if p.returncode != 0 or "Pattern verification failed" in p.stdout:
        fail("1 MiB written through the delayed link does not read back: %s%s" % (p.stdout, p.stderr))
    print("qemu-io 1 MiB write + flush through 20 ms each way: %.2f s; read back direct: pattern ok"
          % secs)


def rate_nbdcopy():
    scenario("bandwidth limit, nbdcopy the volume out through the proxy")
    proxy.cmd("rate a r2c 4000000")
    out1 = os.path.join(D, "via.img")
    out2 = os.path.join(D, "direct.img")
    t0 = time.monotonic()
    p = run(["nbdcopy", via("a"), out1])
    secs = time.monotonic() - t0
    if p.returncode != 0:
        fail("nbdcopy through a rate-limited link: %s" % p.stderr)
    p = run(["nbdcopy", DIRECT, out2])
    if p.returncode != 0:
        fail("nbdcopy direct: %s" % p.stderr)
    size = os.path.getsize(out1)
    if sha_file(out1) != sha_file(out2):
        fail("the copy through the rate-limited link differs from the direct copy")
    print("nbdcopy %d MiB at rate 4 MB/s r2c: %.2f s (%.1f MB/s); equal to the direct copy"
          % (size // MiB, secs, size / secs / 1e6))
    os.unlink(out2)


def reset_nbdcopy():
    scenario("RST in the middle of an nbdcopy")
    proxy.cmd("rate a r2c 2000000")
    base = proxy.stats("a")["r2c.forwarded"]
    out = os.path.join(D, "partial.img")
    cp = subprocess.Popen(["nbdcopy", via("a"), out], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    proxy.cmd("wait a r2c.forwarded >= %d 60" % (base + 2 * MiB))
    r = proxy.cmd("reset a")
    _, err = cp.communicate(timeout=120)
    if cp.returncode == 0:
        fail("nbdcopy exited 0 although its connection was reset mid-copy")
    print("reset %d connection(s) after 2 MiB; nbdcopy exit %d: %s"
          % (r["connections"], cp.returncode, err.strip().splitlines()[-1] if err.strip() else ""))
    if os.path.exists(out):
        os.unlink(out)
    os.unlink(os.path.join(D, "via.img"))


def reset_recorded_writes():
    scenario("RST while a recorded client writes with FLUSH; the checker judges")
    zero_direct(256, 768)
    hist = os.path.join(D, "reset.hist")
    rec = histrec.Recorder(hist)
    c = rec.client(1, via("a"))
    acked_flushes = [0]
    seen_error = [None]

    def writer():
        n = 0
        try:
            while True:
                blk = 256 + (n % 512)
                ok = c.write(blk, 4, fua=(n % 7 == 0))
                if not ok:
                    seen_error[0] = "write"
                    return
                n += 1
                if n % 8 == 0:
                    if not c.flush():
                        seen_error[0] = "flush"
                        return
                    acked_flushes[0] += 1
        except histrec.ClientDead:
            seen_error[0] = "dead"

    base = proxy.stats("a")["c2r.forwarded"]
    t = threading.Thread(target=writer)
    t.start()
    proxy.cmd("wait a c2r.forwarded >= %d 120" % (base + 2 * MiB))
    proxy.cmd("reset a")
    t.join(120)
    if t.is_alive():
        fail("the writer did not see the reset")
    c.close()
    if seen_error[0] is None or acked_flushes[0] == 0:
        fail("want an error after some answered flushes: error %s, %d flushes"
             % (seen_error[0], acked_flushes[0]))
    proxy.cmd("clear a")
    histrec.read_all(via("a"), hist, 2, 768, first=256)
    res = histcheck.check(histcheck.load([hist]), prefix=True)
    print("client saw the reset at its %s after %d answered flushes; %s"
          % (seen_error[0], acked_flushes[0], res.summary()))
    if not res.ok or res.counts.get("info", 0) < 1:
        for v in res.violations[:5]:
            print("  %s: %s" % (v["kind"], v["msg"]))
        fail("after the reset the history is not clean (or records no failed op)")
    rec.close()


def blackhole_timeout():
    scenario("blackhole c2r: no answer, the client times out; the write never landed")
    write_direct(100, pattern("x1"))
    h = connect(via("a"))
    h.pwrite(pattern("x1b"), 100 * BS)
    h.flush()
    proxy.cmd("blackhole a c2r")
    cookie = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(pattern("x2"))), 100 * BS)
    cookie2 = h.aio_flush()
    got = aio_wait(h, cookie, 2.0)
    got2 = aio_wait(h, cookie2, 0.1)
    st = proxy.stats("a")
    del h                      # the client gives up: its timeout
    if got != "pending" or got2 != "pending":
        fail("a write into a blackhole was answered: %s / %s" % (got, got2))
    if st["c2r.dropped"] < BS:
        fail("the proxy dropped %d bytes, want at least the write's %d" % (st["c2r.dropped"], BS))
    proxy.cmd("clear a")
    now = read_direct(100)
    if now != pattern("x1b"):
        fail("block 100 does not hold the last acknowledged write after the blackhole")
    print("write + flush into the blackhole: no answer after 2 s (client timeout), %d bytes "
          "dropped; block holds the acknowledged data, not the dropped write" % st["c2r.dropped"])

    scenario("blackhole r2c: the write lands, its answer never comes")
    zero_direct(2000, 1)
    hist = os.path.join(D, "bh.hist")
    rec = histrec.Recorder(hist)
    c = rec.client(3, via("a"))
    c.write(2000, 1)
    c.flush()
    proxy.cmd("blackhole a r2c")
    th = threading.Thread(target=lambda: c.write(2000, 1, fua=True))
    th.start()
    proxy.cmd("wait a r2c.dropped >= 1 30")      # caskd answered; the answer vanished
    th.join(2.0)
    if not th.is_alive():
        fail("the write was answered through an r2c blackhole")
    proxy.cmd("reset a")                          # what a client timeout does: drop it
    th.join(60)
    rec.event("note", text="reset after the blackhole")
    proxy.cmd("clear a")
    histrec.read_all(via("a"), hist, 4, 1, first=2000)
    res = histcheck.check(histcheck.load([hist]))
    with open(hist) as f:
        vals = [e for e in map(json.loads, f) if e.get("type") == "ok" and "vs" in e]
    print("r2c blackhole: the client got no answer; block 2000 reads op %x afterwards; %s"
          % (vals[-1]["vs"][0] if vals else "?", res.summary()))
    if not res.ok or res.counts.get("info", 0) != 1:
        fail("r2c blackhole history: %s" % res.summary())
    rec.close()


def stall_hold_pause():
    scenario("stall c2r, hold r2c, pause: nothing answered until resumed, then all of it")
    h = connect(via("a"))
    proxy.cmd("stall a c2r")
    data = pattern("x4")
    ck = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), 102 * BS)
    if aio_wait(h, ck, 0.5) != "pending":
        fail("a write was answered through a stalled link")
    proxy.cmd("resume a c2r")
    if aio_wait(h, ck, 60) != "done":
        fail("the stalled write did not complete after resume")
    if read_direct(102) != data:
        fail("block 102 lacks the write that was stalled")
    proxy.cmd("hold a r2c")
    buf = nbd.Buffer(BS)
    ck = h.aio_pread(buf, 102 * BS)
    proxy.cmd("wait a r2c.queued >= %d 30" % BS)
    if aio_wait(h, ck, 0.2) != "pending":
        fail("a read was answered while its reply was held")
    proxy.cmd("release a r2c")
    if aio_wait(h, ck, 60) != "done" or buf.to_bytearray() != data:
        fail("the held read did not complete with the right data after release")
    proxy.cmd("pause a")
    ck = h.aio_pread(nbd.Buffer(BS), 102 * BS)
    if aio_wait(h, ck, 0.5) != "pending":
        fail("a read was answered through a paused link")
    proxy.cmd("unpause a")
    if aio_wait(h, ck, 60) != "done":
        fail("the read did not complete after unpause")
    h.shutdown()
    print("stalled write, held read and paused read: each unanswered while the fault held, "
          "answered with the right bytes after")


def partition():
    scenario("partition c1,s1 | s2 (reset): link b refused, link a serves; heal")
    st = proxy.cmd("stats")
    if sorted(st) != ["a", "b"] or st["b"]["c2r.mode"] != "pass":
        fail("stats without a link: %s" % sorted(st))
    r = proxy.cmd("partition reset c1,s1 s2")
    if r["links"] != ["b"]:
        fail("partition hit %s, want [b]" % r["links"])
    pa = run(["nbdinfo", "--size", via("a")])
    pb = run(["nbdinfo", "--size", via("b")])
    if pa.returncode != 0 or pb.returncode == 0:
        fail("during the partition: nbdinfo via a exit %d, via b exit %d"
             % (pa.returncode, pb.returncode))
    proxy.cmd("heal")
    pb2 = run(["nbdinfo", "--size", via("b")])
    if pb2.returncode != 0 or pb2.stdout != pa.stdout:
        fail("after heal nbdinfo via b: exit %d %s" % (pb2.returncode, pb2.stderr))
    print("partition: via a size %s, via b refused (%s); after heal via b size %s"
          % (pa.stdout.strip(), pb.stderr.strip().splitlines()[-1] if pb.stderr.strip() else "",
             pb2.stdout.strip()))

    scenario("partition hold then heal: an open connection's request waits, then completes")
    h = connect(via("b"))
    proxy.cmd("partition hold c1,s1 s2")
    ck = h.aio_pread(nbd.Buffer(BS), 0)
    if aio_wait(h, ck, 0.5) != "pending":
        fail("a read crossed a held partition")
    proxy.cmd("heal")
    if aio_wait(h, ck, 60) != "done":
        fail("the read did not complete after heal")
    h.shutdown()
    print("partition hold: request unanswered until heal, then answered")


def flip():
    scenario("flip one bit of a read reply on a link added at run time")
    r = proxy.cmd("add f 127.0.0.1:0 127.0.0.1:%d" % PORT)
    uri = "nbd://127.0.0.1:%d/tank/v" % r["port"]
    data = pattern("x6")
    write_direct(104, data)
    h = connect(uri)
    off = proxy.stats("f")["r2c.received"]
    proxy.cmd("flip f r2c %d 3" % (off + 200))
    got = h.pread(BS, 104 * BS)
    h.shutdown()
    diff = [i for i in range(BS) if got[i] != data[i]]
    if len(diff) != 1 or got[diff[0]] ^ data[diff[0]] != 8:
        fail("want exactly one byte with bit 3 flipped, got %d differing bytes" % len(diff))
    if proxy.stats("f")["flips"] != 1:
        fail("the proxy counts %d flips" % proxy.stats("f")["flips"])
    proxy.cmd("remove f")
    print("bit 3 of stream byte %d flipped: the client read byte %d of the block with that bit "
          "flipped, nothing else" % (off + 200, diff[0]))


def cut_close_detach():
    scenario("cut c2r, close: the client sees its connection end")
    for how in ("cut a c2r", "close a"):
        h = connect(via("a"))
        proxy.cmd(how)
        try:
            ck = h.aio_pread(nbd.Buffer(BS), 0)
            got = aio_wait(h, ck, 60)
        except nbd.Error as e:
            got = "error: %s" % e
        if not got.startswith("error"):
            fail("after `%s` a read got %s, want an error" % (how, got))
        print("%s: the client's next read: %s" % (how, got.splitlines()[0][:100]))
        del h
        proxy.cmd("wait a conns_open == 0 30")

    scenario("detach: the client is gone, its held write is released later and lands")
    write_direct(103, pattern("old"))
    h = connect(via("a"))
    proxy.cmd("hold a c2r")
    data = pattern("x5")
    ck = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), 103 * BS)
    proxy.cmd("wait a c2r.queued >= %d 30" % BS)
    proxy.cmd("detach a")
    got = aio_wait(h, ck, 60)
    if not got.startswith("error"):
        fail("the detached client's write got %s, want an error" % got)
    del h
    if read_direct(103) != pattern("old"):
        fail("the held write landed before it was released")
    fwd = proxy.stats("a")["c2r.forwarded"]
    proxy.cmd("release a c2r")
    proxy.cmd("wait a c2r.forwarded >= %d 30" % (fwd + BS))
    end = time.monotonic() + 30
    while read_direct(103) != data:
        if time.monotonic() > end:
            fail("the late write released after detach never landed")
        time.sleep(0.05)
    proxy.cmd("reset a")
    print("detach: the client saw %s; the late write landed after release"
          % got.splitlines()[0][:80])


def check_log():
    text = open(os.path.join(D, "proxy.log")).read()
    for want in ("end (reset)", "refused", "flip r2c offset", "detach: client side closed",
                 "cut c2r (half-close)", "end (closed)", "command: partition reset c1,s1 s2"):
        if want not in text:
            fail("the proxy log has no line with %r" % want)
    print("proxy log: %d lines, every fault logged" % len(text.splitlines()))


try:
    fill()
    delay_qemu_io()
    rate_nbdcopy()
    reset_nbdcopy()
    reset_recorded_writes()
    blackhole_timeout()
    stall_hold_pause()
    partition()
    flip()
    cut_close_detach()
    check_log()
finally:
    proxy.close()
print("faultproxy_nbd: all scenarios as expected")
