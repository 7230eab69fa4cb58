#!/usr/bin/python3
"""tls_bench -- what NBD over TLS costs: one caskd with --tls=on (PSK and an
x509 certificate it makes with openssl), one volume, and the same client
over a plain connection and over TLS (PSK: nbds://...?tls-psk-file=),
measured in the same run: fio (ioengine=nbd) randwrite-4k and randread-4k
at QD32 in the clear, and, because fio's libnbd engine refuses the
tls-psk-file of a URI, nbdcopy for both: write-4k-qd32 (a random file to
the volume) and read-4k-qd32 (the volume to null:, --no-extents), 4 KiB
requests, 32 in flight, one connection. Prints IOPS and the TLS/plain
ratio, and writes JSON with --json. The figures are as noisy as the machine.

    bench/tls_bench.py [--build build] [--dir /var/tmp] [--seconds 10] [--size-mb 1024] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_bench import free_port, run_fio, stop, wait_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cask-tls-bench-", dir=a.dir)
    psk = os.path.join(tmp, "keys.psk")
    with open(psk, "w") as f:
        f.write("bench:%s\n" % os.urandom(32).hex())
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    port = free_port()
    sock = os.path.join(tmp, "caskd.sock")
    p = subprocess.Popen([os.path.join(a.build, "caskd"), "--state", os.path.join(tmp, "state"), "--socket", sock,
                          "--nbd", "127.0.0.1:%d" % port, "--tls=on", "--tls-psk", psk, "--tls-cert", cert,
                          "--tls-key", key, "-q"], stderr=open(os.path.join(tmp, "caskd.log"), "w"))
    res = {}
    try:
        wait_port(port, p)
        cask = [os.path.join(a.build, "cask"), "--socket", sock]
        subprocess.run(cask + ["pool", "create", "tank", os.path.join(tmp, "tank0.vdev"), "--size",
                               "%dM" % (a.size_mb * 2)], check=True)
        subprocess.run(cask + ["vol", "create", "tank/b", "--size", "%dM" % a.size_mb], check=True)
        plain = "nbd://127.0.0.1:%d/tank/b" % port
        tls = "nbds://bench@localhost:%d/tank/b?tls-psk-file=%s" % (port, psk)
        src = os.path.join(tmp, "random.img")
        with open(src, "wb") as f:
            for _ in range(a.size_mb):
                f.write(os.urandom(1 << 20))
        n = a.size_mb * 256  # 4 KiB requests per pass
        for mode, uri in (("plain", plain), ("tls", tls)):
            for name, args in (("write-4k-qd32 (nbdcopy)", [src, uri]),
                               ("read-4k-qd32 (nbdcopy)", ["--no-extents", uri, "null:"])):
                t0 = time.time()
                subprocess.run(["nbdcopy", "--connections=1", "--requests=32", "--request-size=4096"] + args,
                               check=True, capture_output=True)
                res.setdefault(name, {})[mode] = {"iops": n / (time.time() - t0)}
        for name, rw in (("randwrite-4k-qd32 (fio)", "randwrite"), ("randread-4k-qd32 (fio)", "randread")):
            res[name] = {"plain": run_fio(plain, rw, "4k", 32, True, a.seconds, a.size_mb)}
    finally:
        stop(p)
    print("%-26s %12s %12s %10s" % ("workload", "plain IOPS", "TLS IOPS", "TLS/plain"))
    for name, r in res.items():
        if "tls" in r:
            print("%-26s %12.0f %12.0f %9.2fx" % (name, r["plain"]["iops"], r["tls"]["iops"],
                                                 r["tls"]["iops"] / r["plain"]["iops"]))
        else:
            print("%-26s %12.0f %12s %10s" % (name, r["plain"]["iops"], "-", "(fio: no TLS)"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"tls": res}, f, indent=1)
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
