#!/usr/bin/python3
"""api_bench -- what managing storage through the client API costs, beside
what a program pays without it: running the `cask` CLI and parsing its
JSON output, measured in the same run against the same caskd (issue 7).

A caskd on a pool file in --dir; a volume with --snapshots snapshots
(default 10,000, made through the binding in batches of 1,000). Then:

  C        build/bench/api_bench: cask_vol_get round trips on one handle
           (calls/s, median and p99 latency), T threads sharing one handle
           and T threads with a handle each, cask_snap_list of every
           snapshot (all pages)
  Python   the binding: c.vol_get() calls/s and median latency;
           list(c.snapshots(vol)) time
  CLI      `cask vol get all VOL -j` + json.loads per call, calls/s;
           `cask snap list VOL -j` + json.loads time

Ratios are against the CLI. There is no target in the issue; the figures
are the record of what one call costs.

    bench/api_bench.py [--build build] [--dir /var/tmp] [--snapshots 10000] [--calls 20000] [--json FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd_bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--snapshots", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    sys.path.insert(0, os.path.join(build, "python"))
    import cask
    tmp = tempfile.mkdtemp(prefix="api_bench-", dir=a.dir)
    proc = None
    res = {"snapshots": a.snapshots}
    try:
        proc, sock = nbd_bench.start_caskd(build, tmp, nbd_bench.free_port())
        env = dict(os.environ, CASK_SOCKET=sock)
        cli = os.path.join(build, "cask")
        vol = "b/v"
        with cask.Client(sock) as c:
            c.pool_create("b", [os.path.join(tmp, "pool.vdev")], 1 << 30)
            c.vol_create(vol, 64 << 20)
            print("making %d snapshots ..." % a.snapshots, flush=True)
            for s in range(0, a.snapshots, 1000):
                c.snapshot(*["%s@s%05d" % (vol, i) for i in range(s, min(s + 1000, a.snapshots))])

            out = subprocess.run([os.path.join(build, "bench", "api_bench"), "--socket", sock, "--vol", vol,
                                  "--calls", str(a.calls), "--threads", str(a.threads)],
                                 check=True, capture_output=True, text=True).stdout
            res["c"] = json.loads(out)

            n = a.calls // 4
            for _ in range(2000):                        # warm up, as the C side does
                c.vol_get(vol)
            lat = []
            t0 = time.monotonic()
            for _ in range(n):
                t = time.monotonic()
                c.vol_get(vol)
                lat.append(time.monotonic() - t)
            res["py_get_cps"] = n / (time.monotonic() - t0)
            res["py_get_median_us"] = statistics.median(lat) * 1e6
            times = []
            for _ in range(3):
                t = time.monotonic()
                items = len(list(c.snapshots(vol)))
                times.append(time.monotonic() - t)
            res["py_list_items"] = items
            res["py_list_ms"] = statistics.median(times) * 1e3

        n = 200
        t0 = time.monotonic()
        for _ in range(n):
            r = subprocess.run([cli, "vol", "get", "all", vol, "-j"], check=True, env=env, capture_output=True)
            json.loads(r.stdout)
        res["cli_get_cps"] = n / (time.monotonic() - t0)
        times = []
        for _ in range(3):
            t = time.monotonic()
            r = subprocess.run([cli, "snap", "list", vol, "-j"], check=True, env=env, capture_output=True)
            items = len(json.loads(r.stdout))
            times.append(time.monotonic() - t)
        res["cli_list_items"] = items
        res["cli_list_ms"] = statistics.median(times) * 1e3
    finally:
        nbd_bench.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    c = res["c"]
    print("one volume's properties (vol get), against one caskd, same run:")
    print("  %-40s %9.0f calls/s  %6.1f us median  %6.1f us p99  %6.0fx CLI" % (
        "libcask, one thread", c["get_cps"], c["get_median_us"], c["get_p99_us"], c["get_cps"] / res["cli_get_cps"]))
    print("  %-40s %9.0f calls/s  %.2fx one thread" % (
        "libcask, %d threads on one handle" % c["threads"], c["shared_cps"], c["shared_cps"] / c["get_cps"]))
    print("  %-40s %9.0f calls/s  %.2fx one thread" % (
        "libcask, %d threads, a handle each" % c["threads"], c["own_cps"], c["own_cps"] / c["get_cps"]))
    print("  %-40s %9.0f calls/s  %6.1f us median  %19s %6.0fx CLI" % (
        "Python binding", res["py_get_cps"], res["py_get_median_us"], "", res["py_get_cps"] / res["cli_get_cps"]))
    print("  %-40s %9.0f calls/s" % ("cask vol get all -j + json.loads", res["cli_get_cps"]))
    print("listing %d snapshots (every page):" % c["list_items"])
    print("  %-40s %9.1f ms  %6.1fx faster than CLI" % ("libcask cask_snap_list", c["list_median_ms"],
                                                      res["cli_list_ms"] / c["list_median_ms"]))
    print("  %-40s %9.1f ms  %6.1fx faster than CLI" % ("Python list(c.snapshots())", res["py_list_ms"],
                                                      res["cli_list_ms"] / res["py_list_ms"]))
    print("  %-40s %9.1f ms" % ("cask snap list -j + json.loads", res["cli_list_ms"]))
    assert c["list_items"] == res["py_list_items"] == res["cli_list_items"] == a.snapshots
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
