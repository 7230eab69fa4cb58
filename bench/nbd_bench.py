#!/usr/bin/python3
"""nbd_bench -- cask over NBD beside its peers, measured in the same run
with fio (ioengine=nbd): caskd, qemu-nbd on a raw file (--cache=none
--aio=io_uring), qemu-nbd on qcow2, and nbdkit's memory plugin (the NBD
transport ceiling: no disk at all).

Each target is a fresh 1 GiB device (--size-mb), filled by the first
workload. Workloads, in order: seqwrite-1m (fills the device), seqread-1m,
randwrite-4k at QD32, randread-4k at QD32 and QD1 (with its mean latency),
the random 4K workloads again over 4 connections to the export (fio
numjobs=4, one NBD connection each), and seqread-1m-aged (the sequential
read again after the random writes: copy-on-write has scattered the
overwritten blocks, a raw file has not), and randwrite-4k-qd1-flush (a
FLUSH after every write, fio --fsync=1: the mean latency of a write and
its flush, on a device whose intent log has not been used yet). Random
workloads run for
--seconds each. Then nbdcopy reads the whole export to /dev/null over 1
and over 4 connections (multi-conn), and the server's RSS and thread
count are read from /proc with 1, 64 and 1,000 idle clients connected
(cask and nbdkit only: qemu-nbd serves at most -e clients). Prints a
table of IOPS and MB/s with ratios of cask to each peer, and writes the
same as JSON (--json). The figures are as noisy as the machine they run on.

--targets picks the servers (default: cask and the three peers);
cask-no-uring is caskd --no-io-uring, its reads on worker threads (the
synchronous read path, for a before/after of the io_uring read path in one
run). --workloads picks workloads (seqwrite-1m, the fill, always runs
first); --quick leaves out nbdcopy and the idle-client figures.

    bench/nbd_bench.py [--build build] [--dir /var/tmp] [--seconds 10]
                       [--size-mb 1024] [--json FILE] [--targets T,...]
                       [--workloads W,...] [--quick] [--ab OLD_BUILD [--rounds N]]

With --ab OLD_BUILD the peers are left out: caskd of OLD_BUILD and of
--build are measured alternately, --rounds times each (ABBA order, so a
drift in the machine's load falls on both), and the table gives each
workload's median MB/s of both and new/old, and the median CPU
(user+system) caskd used per MB moved, a less noisy second measure on a
loaded machine. --workloads applies here too. --only is another name for
--workloads.
"""
import argparse
import atexit
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
    # name, fio rw, bs, iodepth, time based, connections (fio numjobs)
    ("seqwrite-1m", "write", "1m", 8, False, 1),
    ("seqread-1m", "read", "1m", 8, False, 1),
    ("randwrite-4k-qd32", "randwrite", "4k", 32, True, 1),
    ("randread-4k-qd32", "randread", "4k", 32, True, 1),
    ("randread-4k-qd1", "randread", "4k", 1, True, 1),
    ("randwrite-4k-qd32-4conn", "randwrite", "4k", 32, True, 4),
    ("randread-4k-qd32-4conn", "randread", "4k", 32, True, 4),
    ("seqread-1m-aged", "read", "1m", 8, False, 1),
    ("randwrite-4k-qd1-flush", "randwrite", "4k", 1, True, 1),
]
# workloads that FLUSH after every write (fio --fsync=1): the QD1 sync-write latency
FSYNC = {"randwrite-4k-qd1-flush": 1}
IDLE_CLIENTS = (1, 64, 1000)
CURRENT = {}  # the running server's process (for /proc figures)
STARTED = []  # every server this run started: stopped at exit (by its pid, never by name)


def _stop_started():
    for p in STARTED:
        stop(p)


def _exit_on_signal(signum, frame):
    # SIGTERM / SIGHUP unwind like SIGINT does: the finally blocks stop the servers and remove the files
    raise SystemExit(128 + signum)


atexit.register(_stop_started)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _exit_on_signal)


def spawn(argv, **kw):
    """subprocess.Popen, remembered so that the server is stopped at exit whatever happens."""
    p = subprocess.Popen(argv, **kw)
    STARTED.append(p)
    return p


def started(p, setup):
    """Run setup(); if it fails, stop p (a server left running by a failed start) and re-raise."""
    try:
        return setup()
    except BaseException:
        stop(p)
        raise


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
    p = spawn([os.path.join(build, "caskd"), "--state", os.path.join(tmp, "state"), "--socket", sock,
               "--nbd", "127.0.0.1:%d" % port, "-q"], stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    started(p, lambda: wait_port(port, p))
    return p, sock


def run_fio(uri, rw, bs, depth, timed, seconds, size, jobs=1, fsync=0):
    cmd = ["fio", "--output-format=json", "--name=bench", "--ioengine=nbd", "--uri=" + uri,
           "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % depth, "--size=%dM" % size,
           "--randrepeat=0", "--norandommap"]
    if fsync:
        cmd += ["--fsync=%d" % fsync]
    if jobs > 1:
        cmd += ["--numjobs=%d" % jobs, "--group_reporting"]
    if timed:
        cmd += ["--time_based", "--runtime=%d" % seconds, "--ramp_time=1"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["write"] if "write" in rw else job["read"]
    return {"iops": side["iops"], "mbs": side["bw_bytes"] / 1e6, "lat_us": side["clat_ns"]["mean"] / 1000,
            "io_mb": side["io_bytes"] / 1e6}


def cpu_seconds(proc):
    """User plus system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = open("/proc/%d/stat" % proc.pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pick_workloads(a):
    """The WORKLOADS --workloads names, in their order; seqwrite-1m (the fill) always."""
    wanted = set(a.workloads.split(",")) | {"seqwrite-1m"}
    for w in wanted:
        if w not in [x[0] for x in WORKLOADS]:
            sys.exit("nbd_bench: no workload %s" % w)
    return [w for w in WORKLOADS if w[0] in wanted]


def run_nbdcopy(uri, conns):
    """Seconds and MB/s for nbdcopy of the whole export to /dev/null over conns connections."""
    if shutil.which("nbdcopy") is None:
        return None
    t0 = time.time()
    subprocess.run(["nbdcopy", "--connections=%d" % conns, "--requests=16", uri, "null:"], check=True,
                   capture_output=True)
    return time.time() - t0


def proc_figures(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("VmRSS", "Threads"):
                out[k] = int(line.split()[1])
    return out


def idle_clients(uri, pid, n):
    """RSS (KiB) and threads of the server with n raw NBD clients connected and idle after GO."""
    host, rest = uri[len("nbd://"):].split("/", 1)
    port = int(host.split(":")[1])
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.recv(18, socket.MSG_WAITALL)
            s.sendall((3).to_bytes(4, "big"))
            name = rest.encode()
            payload = len(name).to_bytes(4, "big") + name + (0).to_bytes(2, "big")
            s.sendall(b"IHAVEOPT" + (7).to_bytes(4, "big") + len(payload).to_bytes(4, "big") + payload)
            while True:
                h = s.recv(20, socket.MSG_WAITALL)
                rtype, rlen = int.from_bytes(h[12:16], "big"), int.from_bytes(h[16:20], "big")
                if rlen:
                    s.recv(rlen, socket.MSG_WAITALL)
                if rtype == 1 or rtype & 0x80000000:
                    break
            socks.append(s)
        time.sleep(0.5)
        return proc_figures(pid)
    finally:
        for s in socks:
            s.close()
        time.sleep(0.5)


class Target:
    def __init__(self, name, start):
        self.name = name
        self.start = start


def start_cask(a, tmp, port, extra=(), tag="cask", build=None):
    """caskd of build (default --build) with extra options; tag names its state and socket in tmp
    (two cask targets share tmp)."""
    build = build or a.build
    state = os.path.join(tmp, tag + "-state")
    shutil.rmtree(state, ignore_errors=True)
    sock = os.path.join(tmp, tag + ".sock")
    p = spawn([os.path.join(build, "caskd"), "--state", state, "--socket", sock,
               "--nbd", "127.0.0.1:%d" % port, "-q"] + list(extra),
              stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    env = dict(os.environ, CASK_SOCKET=sock)
    cask = os.path.join(build, "cask")
    dev = os.path.join(a.dir, "nbd_bench.cask")

    def setup():
        wait_port(port, p)
        subprocess.run([cask, "pool", "create", "bench", dev, "--size", "%dM" % (a.size_mb * 2 + 512)],
                       check=True, env=env)
        subprocess.run([cask, "vol", "create", "bench/v", "--size", "%dM" % a.size_mb], check=True, env=env)
    started(p, setup)
    return p, "nbd://127.0.0.1:%d/bench/v" % port, [dev]


def start_qemu(a, tmp, port, fmt):
    path = os.path.join(a.dir, "nbd_bench." + fmt)
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, "%dM" % a.size_mb], check=True)
    p = spawn(["qemu-nbd", "-f", fmt, "--cache=none", "--aio=io_uring", "-t", "-e", "8",
               "-b", "127.0.0.1", "-p", str(port), "-x", "v", path],
              stderr=open(os.path.join(tmp, "qemu-nbd-%s.log" % fmt), "w"))
    started(p, lambda: wait_port(port, p))
    return p, "nbd://127.0.0.1:%d/v" % port, [path]


def start_nbdkit(a, tmp, port):
    p = spawn(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "memory", "%dM" % a.size_mb],
              stderr=open(os.path.join(tmp, "nbdkit.log"), "w"))
    started(p, lambda: wait_port(port, p))
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
            CURRENT["proc"] = proc
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


def parse_args(doc, extra=False):
    """The options every NBD benchmark takes (extra: nbd_bench's own)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/var/tmp", help="where the device files go (a real disk; in a private "
                    "directory made there and removed at exit)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--json")
    if extra:
        ap.add_argument("--targets", default="cask,qemu-nbd-raw,qemu-nbd-qcow2,nbdkit-memory")
        ap.add_argument("--workloads", "--only", default=",".join(w[0] for w in WORKLOADS))
        ap.add_argument("--quick", action="store_true", help="no nbdcopy, no idle-client figures")
        ap.add_argument("--ab", metavar="OLD_BUILD", help="caskd of OLD_BUILD against --build's, no peers")
        ap.add_argument("--rounds", type=int, default=2, help="with --ab: runs of each build")
    a = ap.parse_args()
    a.dir = private_dir(a.dir, "nbd_bench-")
    return a


def private_dir(parent, prefix):
    """A directory of this run's own under parent (two runs never share a device file), removed at exit."""
    d = tempfile.mkdtemp(prefix=prefix, dir=parent)
    atexit.register(shutil.rmtree, d, True)
    return d


def main():
    a = parse_args(__doc__, extra=True)
    for tool in ("fio",) if a.ab else ("fio", "qemu-nbd", "qemu-img", "nbdkit"):
        if shutil.which(tool) is None:
            sys.exit("nbd_bench: %s is not installed (scripts/install-deps.sh installs it)" % tool)
    if a.ab:
        return main_ab(a)
    every = {
        "cask": lambda t, p: start_cask(a, t, p),
        "cask-no-uring": lambda t, p: start_cask(a, t, p, ["--no-io-uring"], "cask-no-uring"),
        "qemu-nbd-raw": lambda t, p: start_qemu(a, t, p, "raw"),
        "qemu-nbd-qcow2": lambda t, p: start_qemu(a, t, p, "qcow2"),
        "nbdkit-memory": lambda t, p: start_nbdkit(a, t, p),
    }
    names = a.targets.split(",")
    for n in names:
        if n not in every:
            sys.exit("nbd_bench: no target %s (%s)" % (n, ", ".join(every)))
    if "cask" not in names:
        sys.exit("nbd_bench: the targets must include cask")
    targets = [(n, every[n]) for n in names]
    workloads = pick_workloads(a)

    def body(name, uri, tmp):
        res = {}
        print("%-16s load before: %s" % (name, " ".join(open("/proc/loadavg").read().split()[:3])), flush=True)
        for wname, rw, bs, depth, timed, jobs in workloads:
            r = run_fio(uri, rw, bs, depth, timed, a.seconds, a.size_mb, jobs, FSYNC.get(wname, 0))
            res[wname] = r
            print("%-16s %-24s %10.0f IOPS %9.1f MB/s %9.1f us" % (name, wname, r["iops"], r["mbs"], r["lat_us"]),
                  flush=True)
        for conns in () if a.quick else (1, 4):
            secs = run_nbdcopy(uri, conns)
            if secs:
                res["nbdcopy-%dconn" % conns] = {"secs": secs, "mbs": a.size_mb * 1.048576 / secs}
                print("%-16s %-24s %9.1f MB/s" % (name, "nbdcopy-%dconn" % conns, a.size_mb * 1.048576 / secs),
                      flush=True)
        if name in ("cask", "nbdkit-memory") and not a.quick:
            pid = CURRENT["proc"].pid
            res["idle"] = {"0": proc_figures(pid)}
            for n in IDLE_CLIENTS:
                res["idle"][str(n)] = idle_clients(uri, pid, n)
            print("%-16s idle clients: %s" % (name, ", ".join("%s: %d KiB RSS, %d threads" % (
                k, v["VmRSS"], v["Threads"]) for k, v in res["idle"].items())), flush=True)
        return res

    results = run_targets("cask-nbd-bench-", targets, body)

    print()
    peers = [n for n in names if n != "cask"]
    hdr = "%-24s %12s %10s" % ("workload", "cask IOPS", "cask MB/s")
    for p in peers:
        hdr += " %14s %8s" % (p + " MB/s", "ratio")
    print(hdr)
    for wname in [w[0] for w in workloads] + ["nbdcopy-1conn", "nbdcopy-4conn"]:
        if wname not in results["cask"]:
            continue
        c = results["cask"][wname]
        line = "%-24s %12s %10.1f" % (wname, "%.0f" % c["iops"] if "iops" in c else "-", c["mbs"])
        for p in peers:
            r = results[p].get(wname, {"mbs": 0})
            line += " %14.1f %7.2fx" % (r["mbs"], c["mbs"] / r["mbs"] if r["mbs"] else 0)
        print(line)
    c = results["cask"]
    raw, mem = results.get("qemu-nbd-raw"), results.get("nbdkit-memory")
    for p in peers:
        r = results[p]
        if "randread-4k-qd1" in c and "randread-4k-qd1" in r:
            print("randread-4k QD1 mean latency: cask %.1f us, %s %.1f us (%.2fx)" % (
                c["randread-4k-qd1"]["lat_us"], p, r["randread-4k-qd1"]["lat_us"],
                c["randread-4k-qd1"]["lat_us"] / r["randread-4k-qd1"]["lat_us"]))
    for t in names:
        r = results[t]
        if "randread-4k-qd32-4conn" not in r or "randwrite-4k-qd32-4conn" not in r:
            continue
        line = "%-14s 4 connections vs 1: randread %.2fx, randwrite %.2fx" % (
            t, r["randread-4k-qd32-4conn"]["iops"] / r["randread-4k-qd32"]["iops"],
            r["randwrite-4k-qd32-4conn"]["iops"] / r["randwrite-4k-qd32"]["iops"])
        if "nbdcopy-4conn" in r:
            line += ", nbdcopy %.2fx" % (r["nbdcopy-4conn"]["mbs"] / r["nbdcopy-1conn"]["mbs"])
        print(line)
    def ratio(w, peer, key="iops"):
        return c[w][key] / peer[w][key] if peer and w in c and w in peer else float("nan")
    print("\ntargets: randread-4k QD32 >= 1.3x qemu-nbd raw (%.2fx); randwrite-4k QD32 >= 2.0x qemu-nbd raw "
          "(%.2fx) and >= 0.9x nbdkit memory (%.2fx); randread QD1 latency <= qemu-nbd raw's (%.2fx)" % (
              ratio("randread-4k-qd32", raw), ratio("randwrite-4k-qd32", raw), ratio("randwrite-4k-qd32", mem),
              ratio("randread-4k-qd1", raw, "lat_us")))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "nbd", "size_mb": a.size_mb, "seconds": a.seconds, "results": results}, f, indent=2)
        print("results:", a.json)


def main_ab(a):
    """Old and new caskd alternated (ABBA...), each with the same workloads; medians and new/old."""
    order = []
    for r in range(a.rounds):
        pair = [("old", a.ab), ("new", a.build)]
        order += pair if r % 2 == 0 else pair[::-1]
    targets = [("%s#%d" % (tag, i), (lambda b: lambda t, p: start_cask(a, t, p, build=b))(build))
               for i, (tag, build) in enumerate(order)]
    workloads = pick_workloads(a)

    def body(name, uri, tmp):
        res = {}
        for wname, rw, bs, depth, timed, jobs in workloads:
            c0 = cpu_seconds(CURRENT["proc"])
            res[wname] = run_fio(uri, rw, bs, depth, timed, a.seconds, a.size_mb, jobs, FSYNC.get(wname, 0))
            # caskd's CPU per MB moved: less noisy than wall clock on a loaded machine (the
            # ramp's CPU is counted, its bytes are not: the same bias for old and new)
            res[wname]["cpu_ms_mb"] = 1000 * (cpu_seconds(CURRENT["proc"]) - c0) / max(res[wname]["io_mb"], 1e-9)
            print("%-10s %-24s %10.0f IOPS %9.1f MB/s %9.1f us %7.2f CPU ms/MB  load %s" % (
                name, wname, res[wname]["iops"], res[wname]["mbs"], res[wname]["lat_us"],
                res[wname]["cpu_ms_mb"], open("/proc/loadavg").read().split()[0]), flush=True)
        return res

    results = run_targets("cask-nbd-ab-", targets, body)

    def median(xs):
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

    print("\n%-24s %9s %9s %8s %9s %9s %8s   (medians of %d runs each)" % (
        "workload", "old MB/s", "new MB/s", "new/old", "old CPU", "new CPU", "new/old", a.rounds))
    table = {}
    for wname in [w[0] for w in workloads]:
        def med(side, key):
            return median([r[wname][key] for n, r in results.items() if n.startswith(side)])
        o, n_ = med("old", "mbs"), med("new", "mbs")
        co, cn = med("old", "cpu_ms_mb"), med("new", "cpu_ms_mb")
        table[wname] = {"old": o, "new": n_, "ratio": n_ / o if o else 0,
                        "old_cpu_ms_mb": co, "new_cpu_ms_mb": cn, "cpu_ratio": cn / co if co else 0}
        print("%-24s %9.1f %9.1f %7.2fx %9.2f %9.2f %7.2fx" % (wname, o, n_, n_ / o if o else 0,
                                                              co, cn, cn / co if co else 0))
    print("(CPU: caskd's user+system milliseconds per MB moved; load now %s)"
          % " ".join(open("/proc/loadavg").read().split()[:3]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"bench": "nbd-ab", "old": a.ab, "new": a.build, "size_mb": a.size_mb,
                       "seconds": a.seconds, "runs": results, "median": table}, f, indent=2)
        print("results:", a.json)


if __name__ == "__main__":
    main()
