#!/usr/bin/python3
"""hostile_soak -- issue 17's reproductions at once, for a while (make
hostile-soak; not in make check): one caskd, normal clients doing verified
IO (python3-libnbd: random 4K-64K writes of known content, FLUSH, reads
checked against a model) while hostile clients come and go:

  never-read  GO, then only 256 KiB READ requests, never reading a reply
              (throttled, cut off after --stall-timeout)
  slowloris   one handshake byte every few seconds (cut off by --handshake-timeout)
  oversized   a write larger than the payload limit, an option of 4 GiB
  random      random bytes after the greeting
  flood       connections past --max-connections (refused at once)
  holder      GO, then idle: a client.list / client.kill round drops it

Every second: caskd's RSS (peak kept) against the documented bound (the
start RSS + the block cache + the dirty limit + per connection at most
the queue bound, 64 MiB, plus its 256 KiB read buffer and 4 MiB of kept
payload buffers, for the connections the soak can have at once + 64 MiB
for threads and allocator slack). Fails if the RSS ever passes the bound,
a normal client sees an error, data reads back wrong, or caskd dies.

    tests/soak/hostile_soak.py [--build build] [--seconds 600] [--normal 3] [--hostile 2]
"""
import argparse
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import nbd  # noqa: E402
from viohelp import Ctl, recvn  # noqa: E402

MAGIC = 0x25609513
VOL_MB = 64
STOP = threading.Event()
stats = {"normal_ops": 0, "normal_errors": 0, "verify_errors": 0, "hostile_rounds": {}}
lock = threading.Lock()


def bump(kind):
    with lock:
        stats["hostile_rounds"][kind] = stats["hostile_rounds"].get(kind, 0) + 1


def content(seed, blk, gen):
    h = hashlib.sha256(b"%d:%d:%d" % (seed, blk, gen)).digest()
    return (h * (4096 // len(h)))


def normal(port, name, seed, errors):
    """A well-behaved client: writes of 1-16 blocks, flush, read-back checks against its model."""
    model = {}
    r = random.Random(seed)
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_tcp("127.0.0.1", str(port))
    nblk = VOL_MB * 256
    gen = 0
    while not STOP.is_set():
        try:
            blk = r.randrange(nblk - 16)
            n = r.randint(1, 16)
            gen += 1
            h.pwrite(b"".join(content(seed, blk + i, gen) for i in range(n)), blk * 4096)
            for i in range(n):
                model[blk + i] = gen
            if r.random() < 0.3:
                h.flush()
            b = r.randrange(nblk - 16)
            got = h.pread(16 * 4096, b * 4096)
            for i in range(16):
                want = content(seed, b + i, model[b + i]) if (b + i) in model else b"\0" * 4096
                if got[i * 4096:(i + 1) * 4096] != want:
                    with lock:
                        stats["verify_errors"] += 1
            with lock:
                stats["normal_ops"] += 2
        except Exception as e:  # noqa: BLE001 -- every failure of a normal client counts
            with lock:
                stats["normal_errors"] += 1
                errors.append("%s: %s" % (name, e))
            return
    # the final check: every block it wrote
    h.flush()
    for blk, g in sorted(model.items()):
        if h.pread(4096, blk * 4096) != content(seed, blk, g):
            with lock:
                stats["verify_errors"] += 1
    h.shutdown()


def raw_hello(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if recvn(s, 18) is None:
        raise OSError("refused")
    s.sendall(struct.pack(">I", 3))
    return s


def raw_go(port, export):
    s = raw_hello(port)
    name = export.encode()
    payload = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(payload)) + payload)
    while True:
        hdr = recvn(s, 20)
        if hdr is None:
            raise OSError("closed")
        magic, opt, rtype, rlen = struct.unpack(">QIII", hdr)
        if rlen:
            recvn(s, rlen)
        if rtype == 1:
            return s
        if rtype & 0x80000000:
            raise OSError("refused")


def never_read(port):
    s = raw_go(port, "soak/h")
    s.settimeout(1)
    i = 0
    try:
        while not STOP.is_set():
            s.sendall(struct.pack(">IHHQQI", MAGIC, 0, 0, i, (i * 262144) % (VOL_MB << 20), 262144))
            i += 1
    except OSError:
        pass  # throttled (send blocks: timeout) or cut off
    finally:
        s.close()


def slowloris(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        recvn(s, 18)
        for b in struct.pack(">I", 3) + b"IHAVEOPT":
            if STOP.wait(4):
                break
            s.sendall(bytes([b]))
    except OSError:
        pass
    finally:
        s.close()


def oversized(port):
    try:
        s = raw_go(port, "soak/h")
        s.sendall(struct.pack(">IHHQQI", MAGIC, 0, 1, 1, 0, 0xFFFFFFFF))  # a write of 4 GiB: closed
        s.settimeout(10)
        s.recv(1)
        s.close()
        s = raw_hello(port)
        s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, 0xFFFFFFF0))  # a 4 GiB option: closed
        s.settimeout(10)
        s.recv(1)
        s.close()
    except OSError:
        pass


def rnd(port):
    try:
        s = raw_hello(port)
        s.sendall(os.urandom(random.randint(1, 4096)))
        s.settimeout(2)
        while s.recv(65536):
            pass
    except OSError:
        pass


def flood(port, n):
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(1)
    except OSError:
        pass
    for s in socks:
        s.close()


def holder(port, ctl):
    try:
        s = raw_go(port, "soak/h")
        for c in ctl.call("client.list")["clients"]:
            if c["export"] == "soak/h" and c["state"] == "serving" and c["requests"] == 0 and c["idle"] >= 0:
                ctl.call("client.kill", id=c["id"]) if random.random() < 0.5 else None
        STOP.wait(2)
        s.close()
    except (OSError, RuntimeError):
        pass


def hostile_loop(kind, port, sock):
    ctl = Ctl(sock) if kind == "holder" else None
    while not STOP.is_set():
        try:
            hostile_round(kind, port, ctl)
        except OSError:
            pass  # refused at the connection limit, or cut off: that is the point
        bump(kind)
        STOP.wait(0.05)


def hostile_round(kind, port, ctl):
    if True:
        if kind == "never-read":
            never_read(port)
        elif kind == "slowloris":
            slowloris(port)
        elif kind == "oversized":
            oversized(port)
        elif kind == "random":
            rnd(port)
        elif kind == "flood":
            flood(port, 40)
        elif kind == "holder":
            holder(port, ctl)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("HOSTILE_SOAK_SECONDS", "600")))
    ap.add_argument("--normal", type=int, default=3)
    ap.add_argument("--hostile", type=int, default=2, help="clients of each hostile kind")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cask-hostile-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sock = os.path.join(tmp, "caskd.sock")
    kinds = ["never-read", "slowloris", "oversized", "random", "flood", "holder"]
    max_conn = a.normal + a.hostile * len(kinds) + 8  # the flood goes past it
    cache_mb, dirty_mb = 64, 64
    log = open(os.path.join(tmp, "caskd.log"), "w")
    p = subprocess.Popen([os.path.join(a.build, "caskd"), "--state", os.path.join(tmp, "state"), "--socket", sock,
                          "--nbd", "127.0.0.1:%d" % port, "--max-connections", str(max_conn), "--stall-timeout", "5",
                          "--handshake-timeout", "10", "--cache", "%dM" % cache_mb, "--dirty-max", "%dM" % dirty_mb],
                         stderr=log)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    cask = [os.path.join(a.build, "cask"), "--socket", sock]
    subprocess.run(cask + ["pool", "create", "soak", os.path.join(tmp, "soak0.vdev"), "--size", "2G"], check=True)
    for i in range(a.normal):
        subprocess.run(cask + ["vol", "create", "soak/n%d" % i, "--size", "%dM" % VOL_MB], check=True)
    subprocess.run(cask + ["vol", "create", "soak/h", "--size", "%dM" % VOL_MB], check=True)
    base = rss_kib(p.pid)
    # per connection: the queue bound, the read buffer, kept payload buffers (conn.c, nbd.c)
    per_conn = (64 << 10) + 256 + (4 << 10)
    bound = base + (cache_mb + dirty_mb) * 1024 + max_conn * per_conn + (64 << 10)
    errors = []
    threads = [threading.Thread(target=normal, args=(port, "soak/n%d" % i, 1000 + i, errors)) for i in range(a.normal)]
    threads += [threading.Thread(target=hostile_loop, args=(k, port, sock)) for k in kinds for _ in range(a.hostile)]
    for t in threads:
        t.start()
    peak = base
    end = time.time() + a.seconds
    died = False
    while time.time() < end:
        if p.poll() is not None:
            died = True
            break
        peak = max(peak, rss_kib(p.pid))
        if peak > bound:
            break
        time.sleep(1)
    STOP.set()
    for t in threads:
        t.join(60)
    if not died:
        peak = max(peak, rss_kib(p.pid))
        p.terminate()
        p.wait(120)
    print("hostile soak: %d s, %d normal clients (%d operations, %d errors, %d verify errors), hostile rounds %s" % (
        a.seconds, a.normal, stats["normal_ops"], stats["normal_errors"], stats["verify_errors"],
        json.dumps(stats["hostile_rounds"], sort_keys=True)))
    print("caskd RSS: start %d MiB, peak %d MiB, bound %d MiB (start + cache %d + dirty %d + %d connections x %d MiB"
          " + 64)" % (base >> 10, peak >> 10, bound >> 10, cache_mb, dirty_mb, max_conn, per_conn >> 10))
    bad = []
    if died:
        bad.append("caskd died (exit %s)" % p.returncode)
    elif p.returncode != 0:
        bad.append("caskd exited %d on SIGTERM" % p.returncode)
    if peak > bound:
        bad.append("RSS %d KiB passed the bound %d KiB" % (peak, bound))
    if stats["normal_errors"] or stats["verify_errors"]:
        bad.append("normal clients: %d errors, %d verify errors: %s" % (stats["normal_errors"],
                                                                       stats["verify_errors"], errors[:3]))
    if bad:
        print("FAIL: " + "; ".join(bad) + " (log: %s)" % os.path.join(tmp, "caskd.log"))
        sys.exit(1)
    subprocess.run(["rm", "-rf", tmp])
    print("ok")


if __name__ == "__main__":
    main()
