#!/usr/bin/python3
"""send_bench -- send and receive throughput through a real caskd, beside
the sequential read rate of the same pool file, in the same run (issue 6).

A caskd on a pool file in --dir gets a --size-mb volume (default 4096)
filled with real data: a tar stream of /usr (programs, libraries, text;
repeated if /usr is smaller), written over NBD with qemu-img. Then, with
the page cache dropped before each measurement:

  cat        `cat POOLFILE > /dev/null`: the sequential read rate of the
             pool file, the peer the targets are measured against
  send       `cask send POOL/VOL@s1 > /dev/null`: stream bytes per second
  recv       `cask recv POOL2/COPY < STREAM` from a stream file (in the page
             cache, so the receive's own cost is what is measured), into a
             second pool file, as on another host
  incr       1% of the volume rewritten in random 64 KiB pieces, snapshot,
             `cask send -i @s1 POOL/VOL@s2 > /dev/null`; its time against
             the full send's

Targets: send and recv >= 0.8x the cat rate; the 1% incremental <= 5% of
the full send's time.

    bench/send_bench.py [--build build] [--dir /var/tmp] [--size-mb 4096] [--json FILE]
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd_bench  # noqa: E402


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(cmd, env, stdin=None, stdout=subprocess.DEVNULL):
    t = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdin=stdin, stdout=stdout)
    return time.monotonic() - t


def make_data(path, size):
    """size bytes of real data: tar of /usr, repeated."""
    with open(path, "wb") as out:
        left = size
        while left > 0:
            p = subprocess.Popen(["tar", "c", "--ignore-failed-read", "/usr"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            while left > 0:
                b = p.stdout.read(min(left, 8 << 20))
                if not b:
                    break
                out.write(b)
                left -= len(b)
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--size-mb", type=int, default=4096)
    ap.add_argument("--json")
    a = ap.parse_args()
    for tool in ("qemu-img", "qemu-io", "tar"):
        if shutil.which(tool) is None:
            sys.exit("send_bench: %s is not installed" % tool)
    size = a.size_mb << 20
    tmp = tempfile.mkdtemp(prefix="send_bench-", dir=a.dir)
    proc = None
    res = {"size_mb": a.size_mb}
    try:
        port = nbd_bench.free_port()
        proc, sock = nbd_bench.start_caskd(a.build, tmp, port)
        env = dict(os.environ, CASK_SOCKET=sock)
        cask = os.path.join(a.build, "cask")
        pool = os.path.join(tmp, "pool.vdev")
        # the volume, its metadata and the 1% rewrite; the copy is received into a second pool,
        # as on another host, so the source pool file is mostly data (cat reads few holes)
        subprocess.run([cask, "pool", "create", "b", pool, "--size", "%dM" % (a.size_mb * 5 // 4 + 512)],
                       check=True, env=env)
        subprocess.run([cask, "pool", "create", "c", os.path.join(tmp, "copy.vdev"), "--size",
                        "%dM" % (a.size_mb * 5 // 4 + 512)], check=True, env=env)
        subprocess.run([cask, "vol", "create", "b/v", "--size", "%dM" % a.size_mb], check=True, env=env)
        data = os.path.join(tmp, "data.raw")
        print("filling a %d MiB volume with a tar of /usr ..." % a.size_mb, flush=True)
        make_data(data, size)
        subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", data,
                        "nbd://127.0.0.1:%d/b/v" % port], check=True)
        os.unlink(data)
        subprocess.run([cask, "snap", "create", "b/v@s1"], check=True, env=env)
        st = os.stat(pool)
        res["pool_file_bytes"] = st.st_size
        res["pool_file_allocated"] = st.st_blocks * 512
        dropped = drop_caches()
        res["caches_dropped"] = dropped

        t = timed(["cat", pool], env)
        res["cat_mbs"] = st.st_size / t / 1e6
        drop_caches()
        stream = os.path.join(tmp, "s1.stream")
        with open(stream, "wb") as f:
            t_full = timed([cask, "send", "b/v@s1"], env, stdout=f)
        sbytes = os.path.getsize(stream)
        res["stream_bytes"] = sbytes
        res["send_s"] = t_full
        res["send_mbs"] = sbytes / t_full / 1e6
        drop_caches()
        t = timed([cask, "send", "b/v@s1"], env)  # to /dev/null: the read side alone
        res["send_devnull_mbs"] = sbytes / t / 1e6
        with open(stream, "rb") as f:  # warm the stream file: measure the receive
            while f.read(8 << 20):
                pass
        with open(stream, "rb") as f:
            t = timed([cask, "recv", "c/copy"], env, stdin=f)
        res["recv_mbs"] = sbytes / t / 1e6
        os.unlink(stream)

        # 1% rewritten in 64 KiB pieces
        rnd = random.Random(6)
        pieces = max(1, size // 100 // 65536)
        cmds = []
        for _ in range(pieces):
            cmds += ["-c", "write -P %d %d 64k" % (rnd.randrange(1, 255), rnd.randrange(size // 65536) * 65536)]
        for i in range(0, len(cmds), 400):
            subprocess.run(["qemu-io", "-f", "raw"] + cmds[i:i + 400] + ["nbd://127.0.0.1:%d/b/v" % port],
                           check=True, stdout=subprocess.DEVNULL)
        subprocess.run([cask, "snap", "create", "b/v@s2"], check=True, env=env)
        drop_caches()
        t_inc = timed([cask, "send", "-i", "@s1", "b/v@s2"], env)
        res["incr_s"] = t_inc
        res["incr_ratio"] = t_inc / t_full
        res["incr_rewritten_mb"] = pieces * 65536 / 1e6
    finally:
        nbd_bench.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    print("send/receive of a %d MiB volume of real data (pool file %.0f MB, %.0f MB allocated; "
          "caches dropped: %s)" % (a.size_mb, res["pool_file_bytes"] / 1e6, res["pool_file_allocated"] / 1e6,
                                    res["caches_dropped"]))
    print("  %-34s %8.0f MB/s" % ("cat POOLFILE > /dev/null", res["cat_mbs"]))
    print("  %-34s %8.0f MB/s  %.2fx cat  (stream %.0f MB in %.1f s)" % (
        "cask send > file", res["send_mbs"], res["send_mbs"] / res["cat_mbs"], res["stream_bytes"] / 1e6,
        res["send_s"]))
    print("  %-34s %8.0f MB/s  %.2fx cat" % ("cask send > /dev/null", res["send_devnull_mbs"],
                                            res["send_devnull_mbs"] / res["cat_mbs"]))
    print("  %-34s %8.0f MB/s  %.2fx cat" % ("cask recv < stream (cached)", res["recv_mbs"],
                                            res["recv_mbs"] / res["cat_mbs"]))
    print("  incremental, %.0f MB (1%%) rewritten: %.2f s = %.3f of the full send's %.1f s" % (
        res["incr_rewritten_mb"], res["incr_s"], res["incr_ratio"], res["send_s"]))
    ok_send = res["send_devnull_mbs"] >= 0.8 * res["cat_mbs"]
    ok_recv = res["recv_mbs"] >= 0.8 * res["cat_mbs"]
    print("targets: send >= 0.8x cat: %s; recv >= 0.8x cat: %s; 1%% incremental <= 5%% of full: %s" % (
        "met" if ok_send else "NOT met", "met" if ok_recv else "NOT met",
        "met" if res["incr_ratio"] <= 0.05 else "NOT met"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
