#!/usr/bin/python3
"""iscsi_bench.py -- caskd's iSCSI target against tgt (Debian tgt 1.0.85) and against caskd's
own NBD, in the same run, with the same client: qemu-img bench (qemu's libiscsi and NBD
drivers). docs/iscsi.md §16. Prints IOPS (MB/s for 1 MiB), the ratios cask/tgt and
cask-iSCSI/cask-NBD, and CPU per IO of caskd and tgtd (utime+stime of the daemon over the
runs divided by the IOs). Nothing is asserted: the figures are printed.

    bench/iscsi_bench.py [--build build] [--runs 3] [--scale 1.0]

Both LUs are thin, 512-byte blocks, 1 GiB, backed by files in one scratch directory (cask: a
pool file; tgt: a sparse file, its rdwr backing store), each filled first by a sequential
write so that reads hit data. qemu-img bench has no random mode; with an odd stride of
7919 blocks (-S) over an image that is a multiple of 4 KiB it visits blocks in a scattered
order (qemu 7.2 wraps the offset modulo the image size)."""
import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--scale", type=float, default=1.0, help="multiply the IO counts")
args = ap.parse_args()

if not shutil.which("tgtd") or not shutil.which("tgtadm"):
    print("SKIP: tgt is not installed (apt-get install tgt)")
    sys.exit(77)
if not shutil.which("qemu-img"):
    print("SKIP: qemu-img is not installed")
    sys.exit(77)

CASKD = os.path.join(args.build, "caskd")
CASK = os.path.join(args.build, "cask")
SIZE = 1 << 30
tmp = tempfile.mkdtemp(prefix="cask-iscsi-bench-")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    for log in ("caskd.log", "tgtd.log"):
        path = os.path.join(tmp, log)
        if os.path.exists(path):
            sys.stderr.write("--- %s\n%s" % (log, open(path).read()[-2000:]))
    raise SystemExit("port %d did not open" % port)


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


try:
    # caskd: iSCSI and NBD
    iport, nport = free_port(), free_port()
    sock = os.path.join(tmp, "caskd.sock")
    env = dict(os.environ, CASK_SOCKET=sock)
    caskd = subprocess.Popen([CASKD, "--state", os.path.join(tmp, "state"), "--socket", sock,
                              "--nbd", "127.0.0.1:%d" % nport, "--iscsi", "127.0.0.1:%d" % iport, "-q"],
                             env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    procs.append(caskd)
    wait_port(iport)
    for _ in range(100):
        if subprocess.run([CASK, "version"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    subprocess.run([CASK, "pool", "create", "bench", os.path.join(tmp, "pool.vdev"), "--size", "3G"], env=env,
                   check=True, capture_output=True)
    subprocess.run([CASK, "vol", "create", "bench/v", "--size", "1G"], env=env, check=True, capture_output=True)
    # tgtd: a sparse file, its own control port
    tport, cport = free_port(), str(20000 + os.getpid() % 20000)
    backing = os.path.join(tmp, "tgt.img")
    with open(backing, "wb") as f:
        f.truncate(SIZE)
    tgtd = subprocess.Popen(["tgtd", "-f", "-C", cport, "--iscsi", "portal=127.0.0.1:%d" % tport],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "tgtd.log"), "w"))
    procs.append(tgtd)
    wait_port(tport)
    tiqn = "iqn.2026-12.io.cask.bench:tgt"

    def tgtadm(*a):
        subprocess.run(["tgtadm", "-C", cport, "--lld", "iscsi"] + list(a), check=True, capture_output=True)

    tgtadm("--op", "new", "--mode", "target", "--tid", "1", "-T", tiqn)
    tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", backing)
    tgtadm("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--params", "thin_provisioning=1")
    tgtadm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    targets = {
        "cask-iscsi": ("iscsi://127.0.0.1:%d/iqn.2026-12.io.cask:bench.v/0" % iport, caskd.pid),
        "tgt": ("iscsi://127.0.0.1:%d/%s/1" % (tport, tiqn), tgtd.pid),
        "cask-nbd": ("nbd://127.0.0.1:%d/bench/v" % nport, caskd.pid),
    }
    # fill both volumes once (reads then hit data)
    for name in ("cask-iscsi", "tgt"):
        subprocess.run(["qemu-img", "bench", "-f", "raw", "-w", "-t", "none", "-c", str(SIZE >> 20), "-d", "8",
                        "-s", "1M", "-q", targets[name][0]], check=True)

    def n(c):
        return str(max(64, int(c * args.scale)))

    stride = str(4096 * 7919)
    workloads = [
        ("4k randwrite QD32", ["-w", "-s", "4096", "-d", "32", "-S", stride, "-c", n(40000)], 4096),
        ("4k randread QD32", ["-s", "4096", "-d", "32", "-S", stride, "-c", n(40000)], 4096),
        ("4k randwrite QD1", ["-w", "-s", "4096", "-d", "1", "-S", stride, "-c", n(8000)], 4096),
        ("4k randread QD1", ["-s", "4096", "-d", "1", "-S", stride, "-c", n(8000)], 4096),
        ("1M seq write QD8", ["-w", "-s", "1M", "-d", "8", "-c", n(1024)], 1 << 20),
        ("1M seq read QD8", ["-s", "1M", "-d", "8", "-c", n(1024)], 1 << 20),
        ("4k write, flush/32", ["-w", "-s", "4096", "-d", "32", "-S", stride, "--flush-interval=32", "-c", n(20000)],
         4096),
    ]
    results = {}
    cpu = {k: [0, 0] for k in targets}
    qd1 = {k: [0.0, 0, 0.0] for k in targets}  # the client's CPU seconds, IOs, wall seconds at QD1

    def run_client(argv):
        """run qemu-img; (returncode, stdout, stderr, its rusage): the client's own CPU per IO"""
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(argv, capture_output=True, text=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return out.returncode, out.stdout, out.stderr, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    hz = os.sysconf("SC_CLK_TCK")
    for wname, wargs, bs in workloads:
        count = int(wargs[wargs.index("-c") + 1])
        for name, (url, pid) in targets.items():
            results[(wname, name)] = []
        for r in range(args.runs):
            order = list(targets) if r % 2 == 0 else list(reversed(list(targets)))
            for name in order:
                url, pid = targets[name]
                t0 = cpu_ticks(pid)
                rc, so, se, ru = run_client(["qemu-img", "bench", "-f", "raw", "-t", "none", "-i", "native"] + wargs +
                                            [url])
                if rc != 0:
                    rc, so, se, ru = run_client(["qemu-img", "bench", "-f", "raw", "-t", "none"] + wargs + [url])
                t1 = cpu_ticks(pid)
                m = re.search(r"Run completed in ([0-9.]+) seconds", so)
                if not m:
                    print("%s %s failed: %s" % (wname, name, se.strip()[:200]))
                    continue
                secs = float(m.group(1))
                results[(wname, name)].append(count / secs)
                cpu[name][0] += t1 - t0
                cpu[name][1] += count
                if "QD1" in wname:
                    qd1[name][0] += ru
                    qd1[name][1] += count
                    qd1[name][2] += secs
    print("%-20s %12s %12s %12s %9s %10s" % ("workload", "cask-iscsi", "tgt", "cask-nbd", "cask/tgt", "iscsi/nbd"))
    for wname, wargs, bs in workloads:
        med = {}
        for name in targets:
            v = results[(wname, name)]
            med[name] = statistics.median(v) if v else float("nan")
        unit = (lambda x: "%9.0f IOPS" % x) if bs == 4096 else (lambda x: "%7.1f MB/s" % (x * bs / 1e6))
        print("%-20s %12s %12s %12s %8.2fx %9.2fx" % (wname, unit(med["cask-iscsi"]).strip(), unit(med["tgt"]).strip(),
                                                  unit(med["cask-nbd"]).strip(), med["cask-iscsi"] / med["tgt"],
                                                  med["cask-iscsi"] / med["cask-nbd"]))
    for name in ("cask-iscsi", "tgt", "cask-nbd"):
        t, ios = cpu[name]
        if ios:
            print("CPU per IO %-10s %.1f us (%s: utime+stime over %d IOs)" % (
                name, t / hz * 1e6 / ios, "caskd" if name.startswith("cask") else "tgtd", ios))
    # at QD1 the wall time per IO is the client's work + the target's + two wake-ups; qemu's
    # libiscsi driver does much more per IO than its NBD client, so show what the client spent
    for name in ("cask-iscsi", "tgt", "cask-nbd"):
        c, ios, wall = qd1[name]
        if ios:
            print("QD1 %-10s wall %.1f us/IO, qemu-img's own CPU %.1f us/IO" % (name, wall / ios * 1e6, c / ios * 1e6))
    print("(the goals in docs/iscsi.md §16: >= 1.5x tgt on 4k random write, >= 1.0x on the rest, "
          ">= 0.8x of cask's NBD; median of %d runs; nothing asserted)" % args.runs)
finally:
    cleanup()
