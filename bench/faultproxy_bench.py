#!/usr/bin/python3
"""faultproxy_bench -- what the test tools cost, so that benchmarks and
soak tests run through them know what they measure.

  * the fault proxy (tests/tools/faultproxy.py, no fault set) between fio
    (ioengine=nbd) and caskd, against a direct connection in the same run:
    4K random read and write at QD32 and QD1 (IOPS, mean latency), 1M
    sequential read (MB/s); ratios via-proxy / direct;
  * the proxy with `delay r2c 20` at QD1: the added latency it really adds;
  * histcheck.py on generated histories of 10000 and 40000 operations
    (ops checked per second).

    bench/faultproxy_bench.py [--build build] [--dir /var/tmp] [--seconds 5]
                              [--size-mb 256]

The figures are as noisy as the machine they run on (2 shared cores here).
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

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "tools"))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from faultproxy import FaultProxy  # noqa: E402
import histcheck  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def fio(uri, rw, bs, depth, seconds, size_mb):
    cmd = ["fio", "--output-format=json", "--name=bench", "--ioengine=nbd", "--uri=" + uri,
           "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % depth, "--size=%dM" % size_mb,
           "--randrepeat=0", "--norandommap"]
    if rw.startswith("rand"):
        cmd += ["--time_based", "--runtime=%d" % seconds, "--ramp_time=1"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["write"] if "write" in rw else job["read"]
    return {"iops": side["iops"], "mbs": side["bw_bytes"] / 1e6,
            "lat_us": side["clat_ns"]["mean"] / 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=256)
    a = ap.parse_args()
    if shutil.which("fio") is None:
        sys.exit("fio is not installed")
    tmp = tempfile.mkdtemp(prefix="fpbench-", dir=a.dir)
    port = free_port()
    sock = os.path.join(tmp, "caskd.sock")
    caskd = subprocess.Popen([os.path.join(a.build, "caskd"), "--state", os.path.join(tmp, "state"),
                              "--socket", sock, "--nbd", "127.0.0.1:%d" % port, "-q"],
                             stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    proxy = None
    try:
        env = dict(os.environ, CASK_SOCKET=sock)
        cask = os.path.join(a.build, "cask")
        for _ in range(200):
            if subprocess.run([cask, "version"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        subprocess.run([cask, "pool", "create", "bench", os.path.join(tmp, "p.vdev"),
                        "--size", "%dM" % (a.size_mb * 2 + 256)], env=env, check=True)
        subprocess.run([cask, "vol", "create", "bench/v", "--size", "%dM" % a.size_mb],
                       env=env, check=True)
        proxy = FaultProxy(os.path.join(tmp, "proxy.sock"),
                           {"p": ("127.0.0.1:0", "127.0.0.1:%d" % port)},
                           log=os.path.join(tmp, "proxy.log"))
        direct = "nbd://127.0.0.1:%d/bench/v" % port
        via = "nbd://127.0.0.1:%d/bench/v" % proxy.port("p")
        fio(direct, "write", "1m", 8, a.seconds, a.size_mb)       # fill
        rows = [("seqread-1m", "read", "1m", 8), ("randread-4k-qd32", "randread", "4k", 32),
                ("randwrite-4k-qd32", "randwrite", "4k", 32), ("randread-4k-qd1", "randread", "4k", 1)]
        print("%-20s %12s %12s %7s   %s" % ("workload", "direct", "via proxy", "ratio", "mean latency us"))
        for name, rw, bs, qd in rows:
            d = fio(direct, rw, bs, qd, a.seconds, a.size_mb)
            v = fio(via, rw, bs, qd, a.seconds, a.size_mb)
            key, unit = ("mbs", "MB/s") if bs == "1m" else ("iops", "IOPS")
            print("%-20s %7.0f %4s %7.0f %4s %7.2f   %.0f -> %.0f"
                  % (name, d[key], unit, v[key], unit, v[key] / d[key], d["lat_us"], v["lat_us"]))
        proxy.cmd("delay p r2c 20")
        v = fio(via, "randread", "4k", 1, a.seconds, a.size_mb)
        d = fio(direct, "randread", "4k", 1, a.seconds, a.size_mb)
        print("delay r2c 20 ms, randread 4k QD1: mean latency %.2f ms direct, %.2f ms via proxy "
              "(+%.2f ms)" % (d["lat_us"] / 1000, v["lat_us"] / 1000, (v["lat_us"] - d["lat_us"]) / 1000))
    finally:
        if proxy:
            proxy.close()
        caskd.send_signal(signal.SIGTERM)
        caskd.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    sys.argv = [sys.argv[0]]
    import histcheck_cases as hc  # noqa: E402  (its generator; importing runs nothing else)
    for n in (10000, 40000):
        ev, _ = hc.generate(3, nops=n)
        t0 = time.monotonic()
        res = histcheck.check(ev, prefix=True)
        secs = time.monotonic() - t0
        print("histcheck %6d ops, %d crashes: %.2f s, %.0f ops/s, %s"
              % (n, res.counts["crashes"], secs, n / secs, "OK" if res.ok else "VIOLATIONS"))


if __name__ == "__main__":
    main()
