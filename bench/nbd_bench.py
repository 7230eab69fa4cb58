#!/usr/bin/python3
"""nbd_bench -- cask over NBD beside its peers, measured in the same run
with fio (ioengine=nbd): caskd, qemu-nbd on a raw file (--cache=none
--aio=io_uring), qemu-nbd on qcow2, and nbdkit's memory plugin (the NBD
transport ceiling: no disk at all).

Each target is a fresh 1 GiB device (--size-mb), filled by the first
workload. Workloads, in order: seqwrite-1m (fills the device), seqread-1m,
randwrite-4k at QD32, randread-4k at QD32, and seqread-1m-aged (the
sequential read again after the random writes: copy-on-write has
scattered the overwritten blocks, a raw file has not). Random workloads run for
--seconds each. Prints a table of IOPS and MB/s with ratios of cask to
each peer, and writes the same as JSON (--json).

    bench/nbd_bench.py [--build build] [--dir /var/tmp] [--seconds 10]
                       [--size-mb 1024] [--json FILE]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

WORKLOADS = [
    # name, fio rw, bs, iodepth, time based
    ("seqwrite-1m", "write", "1m", 8, False),
    ("seqread-1m", "read", "1m", 8, False),
    ("randwrite-4k-qd32", "randwrite", "4k", 32, True),
    ("randread-4k-qd32", "randread", "4k", 32, True),
    ("seqread-1m-aged", "read", "1m", 8, False),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited early (status %s)" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_caskd(build, tmp, port):
    """A caskd on loopback with its state, socket (returned) and log in tmp."""
    sock = os.path.join(tmp, "caskd.sock")
    p = subprocess.Popen([os.path.join(build, "caskd"), "--state", os.path.join(tmp, "state"), "--socket", sock,
                          "--nbd", "127.0.0.1:%d" % port, "-q"], stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    wait_port(port, p)
    return p, sock


def run_fio(uri, rw, bs, depth, timed, seconds, size):
    cmd = ["fio", "--output-format=json", "--name=bench", "--ioengine=nbd", "--uri=" + uri,
           "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % depth, "--size=%dM" % size,
           "--randrepeat=0", "--norandommap"]
    if timed:
        cmd += ["--time_based", "--runtime=%d" % seconds, "--ramp_time=1"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["write"] if "write" in rw else job["read"]
    return {"iops": side["iops"], "mbs": side["bw_bytes"] / 1e6}


class Target:
    def __init__(self, name, start):
        self.name = name
        self.start = start


def start_cask(a, tmp, port):
    state = os.path.join(tmp, "cask-state")
    sock = os.path.join(tmp, "cask.sock")
    p = subprocess.Popen([os.path.join(a.build, "caskd"), "--state", state, "--socket", sock,
                          "--nbd", "127.0.0.1:%d" % port, "-q"], stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    wait_port(port, p)
    env = dict(os.environ, CASK_SOCKET=sock)
    cask = os.path.join(a.build, "cask")
    subprocess.run([cask, "pool", "create", "bench", os.path.join(a.dir, "nbd_bench.cask"),
                    "--size", "%dM" % (a.size_mb * 2 + 512)], check=True, env=env)
    subprocess.run([cask, "vol", "create", "bench/v", "--size", "%dM" % a.size_mb], check=True, env=env)
    return p, "nbd://127.0.0.1:%d/bench/v" % port, [os.path.join(a.dir, "nbd_bench.cask")]


def start_qemu(a, tmp, port, fmt):
    path = os.path.join(a.dir, "nbd_bench." + fmt)
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, "%dM" % a.size_mb], check=True)
    p = subprocess.Popen(["qemu-nbd", "-f", fmt, "--cache=none", "--aio=io_uring", "-t", "-e", "8",
                          "-b", "127.0.0.1", "-p", str(port), "-x", "v", path],
                         stderr=open(os.path.join(tmp, "qemu-nbd-%s.log" % fmt), "w"))
    wait_port(port, p)
    return p, "nbd://127.0.0.1:%d/v" % port, [path]


def start_nbdkit(a, tmp, port):
    p = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "memory", "%dM" % a.size_mb],
                         stderr=open(os.path.join(tmp, "nbdkit.log"), "w"))
    wait_port(port, p)
    return p, "nbd://127.0.0.1:%d/" % port, []


def run_targets(prefix, targets, body):
    """Start each target in turn (a fresh port, a shared scratch directory),
    call body(name, uri, tmp) and store what it returns, then stop it and
    remove its files, also when body fails."""
    results = {}
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        for name, start in targets:
            proc, uri, files = start(tmp, free_port())
            try:
                results[name] = body(name, uri, tmp)
            finally:
                stop(proc)
                for f in files:
                    if os.path.exists(f):
                        os.unlink(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def parse_args(doc):
    """The options every NBD benchmark takes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/var/tmp", help="where the device files go (a real disk)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--json")
    return ap.parse_args()


def main():
    a = parse_args(__doc__)
    for tool in ("fio", "qemu-nbd", "qemu-img", "nbdkit"):
        if shutil.which(tool) is None:
            sys.exit("nbd_bench: %s is not installed (scripts/install-deps.sh installs it)" % tool)
    targets = [
        ("cask", lambda t, p: start_cask(a, t, p)),
        ("qemu-nbd-raw", lambda t, p: start_qemu(a, t, p, "raw")),
        ("qemu-nbd-qcow2", lambda t, p: start_qemu(a, t, p, "qcow2")),
        ("nbdkit-memory", lambda t, p: start_nbdkit(a, t, p)),
    ]
    def body(name, uri, tmp):
        res = {}
        for wname, rw, bs, depth, timed in WORKLOADS:
            r = run_fio(uri, rw, bs, depth, timed, a.seconds, a.size_mb)
            res[wname] = r
            print("%-16s %-20s %10.0f IOPS %9.1f MB/s" % (name, wname, r["iops"], r["mbs"]), flush=True)
        return res

    results = run_targets("cask-nbd-bench-", targets, body)

    print()
    peers = ["qemu-nbd-raw", "qemu-nbd-qcow2", "nbdkit-memory"]
    hdr = "%-20s %12s %10s" % ("workload", "cask IOPS", "cask MB/s")
    for p in peers:
        hdr += " %14s %8s" % (p + " MB/s", "ratio")
    print(hdr)
    for wname, *_ in WORKLOADS:
        c = results["cask"][wname]
        line = "%-20s %12.0f %10.1f" % (wname, c["iops"], c["mbs"])
        for p in peers:
            r = results[p][wname]
            line += " %14.1f %7.2fx" % (r["mbs"], c["mbs"] / r["mbs"] if r["mbs"] else 0)
        print(line)
    c, raw, mem = results["cask"], results["qemu-nbd-raw"], results["nbdkit-memory"]
    print("\ntargets: randwrite-4k >= 1.5x qemu-nbd raw (%.2fx) and >= 0.8x nbdkit memory (%.2fx); "
          "randread-4k >= 1.0x qemu-nbd raw (%.2fx)" % (
              c["randwrite-4k-qd32"]["iops"] / raw["randwrite-4k-qd32"]["iops"],
              c["randwrite-4k-qd32"]["iops"] / mem["randwrite-4k-qd32"]["iops"],
              c["randread-4k-qd32"]["iops"] / raw["randread-4k-qd32"]["iops"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "nbd", "size_mb": a.size_mb, "seconds": a.seconds, "results": results}, f, indent=2)
        print("results:", a.json)


if __name__ == "__main__":
    main()
