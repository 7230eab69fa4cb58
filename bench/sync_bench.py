#!/usr/bin/python3
"""sync_bench -- synchronous writes (FLUSH and FUA) over NBD: cask with its
intent log (sync=standard) beside qemu-nbd on a raw file (--cache=none)
qemu-nbd on qcow2 (--cache=none), and qemu-nbd on a fully preallocated
raw file (the fairest peer for flush latency: its writes never allocate),
measured in the same run.

Workloads, each for --seconds on a fresh --size-mb device:

  qd1-flush     fio ioengine=nbd, 4k random writes, iodepth 1, fsync=1:
                a FLUSH after every write. Reported as IOPS and as the
                mean time of one write+flush (the QD1 sync-write latency).
  fua-qd32      4k random writes with the FUA flag, 32 in flight, from
                python3-libnbd's asynchronous API (fio's nbd engine never
                sets FUA).
  mixed-16job   fio ioengine=nbd, 16 jobs (one connection each), 4k random
                70% reads / 30% writes, iodepth 4, fsync=32 (a FLUSH after
                every 32 writes of a job). Reported as total IOPS.

Targets (issue 4): qd1-flush latency <= 1.2x qemu-nbd raw; fua-qd32 IOPS
>= qemu-nbd raw; (issue 14) mixed-16job IOPS >= 1.0x qemu-nbd raw.

    bench/sync_bench.py [--build build] [--dir /var/tmp] [--seconds 10]
                        [--size-mb 1024] [--json FILE]
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd_bench  # noqa: E402  (server start/stop helpers)


def fio(uri, seconds, size_mb, extra):
    cmd = ["fio", "--output-format=json", "--name=sync", "--ioengine=nbd", "--uri=" + uri,
           "--bs=4k", "--size=%dM" % size_mb, "--randrepeat=0", "--norandommap",
           "--time_based", "--runtime=%d" % seconds, "--ramp_time=1", "--group_reporting"] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])["jobs"][0]


def qd1_flush(uri, a):
    job = fio(uri, a.seconds, a.size_mb, ["--rw=randwrite", "--iodepth=1", "--fsync=1"])
    iops = job["write"]["iops"]
    return {"iops": iops, "lat_us": 1e6 / iops if iops else 0.0,
            "write_clat_us": job["write"]["clat_ns"]["mean"] / 1000,
            "flush_lat_us": job["sync"]["lat_ns"]["mean"] / 1000 if "sync" in job else 0.0}


def mixed(uri, a):
    job = fio(uri, a.seconds, a.size_mb, ["--rw=randrw", "--rwmixread=70", "--iodepth=4",
                                          "--numjobs=16", "--fsync=32"])
    return {"iops": job["read"]["iops"] + job["write"]["iops"],
            "read_iops": job["read"]["iops"], "write_iops": job["write"]["iops"]}


def fua_qd32(uri, a):
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    if not h.can_fua():
        raise RuntimeError("%s does not offer FUA" % uri)
    size = a.size_mb << 20
    nblk = size // 4096
    buf = nbd.Buffer.from_bytearray(bytearray(os.urandom(4096)))
    rnd = random.Random(1)
    done = [0]

    def cb(err):
        done[0] += 1
        return 1  # retire the command

    def submit():
        h.aio_pwrite(buf, rnd.randrange(nblk) * 4096, completion=cb, flags=nbd.CMD_FLAG_FUA)

    # ramp 1 s, then count completions for --seconds
    end_ramp = time.time() + 1.0
    start = None
    count0 = 0
    deadline = None
    while True:
        while h.aio_in_flight() < 32:
            submit()
        h.poll(-1)
        now = time.time()
        if start is None and now >= end_ramp:
            start, count0, deadline = now, done[0], now + a.seconds
        if deadline is not None and now >= deadline:
            break
    n = done[0] - count0
    elapsed = time.time() - start
    while h.aio_in_flight() > 0:
        h.poll(-1)
    h.shutdown()
    return {"iops": n / elapsed}


def start_raw_full(a, tmp, port):
    """qemu-nbd on a raw file whose blocks are all allocated beforehand (no
    file-system metadata to commit on the first write of a block)."""
    path = os.path.join(a.dir, "nbd_bench.rawfull")
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", "-o", "preallocation=full", path,
                    "%dM" % a.size_mb], check=True)
    p = nbd_bench.spawn(["qemu-nbd", "-f", "raw", "--cache=none", "--aio=io_uring", "-t", "-e", "8",
                         "-b", "127.0.0.1", "-p", str(port), "-x", "v", path],
                        stderr=open(os.path.join(tmp, "qemu-nbd-rawfull.log"), "w"))
    nbd_bench.started(p, lambda: nbd_bench.wait_port(port, p))
    return p, "nbd://127.0.0.1:%d/v" % port, [path]


WORKLOADS = [("qd1-flush", qd1_flush), ("fua-qd32", fua_qd32), ("mixed-16job", mixed)]


def main():
    a = nbd_bench.parse_args(__doc__)
    for tool in ("fio", "qemu-nbd", "qemu-img"):
        if shutil.which(tool) is None:
            sys.exit("sync_bench: %s is not installed (scripts/install-deps.sh installs it)" % tool)
    targets = [
        ("cask", lambda t, p: nbd_bench.start_cask(a, t, p)),
        ("qemu-nbd-raw", lambda t, p: nbd_bench.start_qemu(a, t, p, "raw")),
        ("qemu-nbd-qcow2", lambda t, p: nbd_bench.start_qemu(a, t, p, "qcow2")),
        ("qemu-nbd-raw-full", lambda t, p: start_raw_full(a, t, p)),
    ]
    def body(name, uri, tmp):
        res = {}
        for wname, fn in WORKLOADS:
            r = fn(uri, a)
            res[wname] = r
            extra = " (%.0f us per write+flush)" % r["lat_us"] if "lat_us" in r else ""
            print("%-16s %-12s %10.0f IOPS%s" % (name, wname, r["iops"], extra), flush=True)
        if name == "cask":
            env = dict(os.environ, CASK_SOCKET=os.path.join(tmp, "cask.sock"))
            st = subprocess.run([os.path.join(a.build, "cask"), "pool", "status", "-j", "bench"],
                                capture_output=True, text=True, env=env).stdout
            res["pool_status"] = json.loads(st) if st.strip() else {}
        return res

    results = nbd_bench.run_targets("cask-sync-bench-", targets, body)

    print()
    peers = ["qemu-nbd-raw", "qemu-nbd-qcow2", "qemu-nbd-raw-full"]
    hdr = "%-14s %10s" % ("workload", "cask IOPS")
    for p in peers:
        hdr += " %16s %8s" % (p + " IOPS", "ratio")
    print(hdr)
    for wname, _ in WORKLOADS:
        c = results["cask"][wname]["iops"]
        line = "%-14s %10.0f" % (wname, c)
        for p in peers:
            r = results[p][wname]["iops"]
            line += " %16.0f %7.2fx" % (r, c / r if r else 0)
        print(line)
    c, raw = results["cask"], results["qemu-nbd-raw"]
    print("\nqd1 write+flush latency: cask %.0f us, qemu-nbd raw %.0f us, qcow2 %.0f us, "
          "preallocated raw %.0f us" % (
              c["qd1-flush"]["lat_us"], raw["qd1-flush"]["lat_us"],
              results["qemu-nbd-qcow2"]["qd1-flush"]["lat_us"],
              results["qemu-nbd-raw-full"]["qd1-flush"]["lat_us"]))
    print("targets: qd1 latency <= 1.2x qemu-nbd raw (%.2fx); fua-qd32 IOPS >= qemu-nbd raw (%.2fx); "
          "mixed-16job IOPS >= 1.0x qemu-nbd raw (%.2fx)" % (
              c["qd1-flush"]["lat_us"] / raw["qd1-flush"]["lat_us"],
              c["fua-qd32"]["iops"] / raw["fua-qd32"]["iops"],
              c["mixed-16job"]["iops"] / raw["mixed-16job"]["iops"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "sync", "size_mb": a.size_mb, "seconds": a.seconds, "results": results}, f,
                      indent=2)
        print("results:", a.json)


if __name__ == "__main__":
    main()
