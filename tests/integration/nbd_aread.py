"""nbd_aread -- many reads outstanding on one NBD connection go through the
engine's asynchronous read path: 64 libnbd aio reads kept in flight over a
cold cache, every reply checked against what was written, out-of-order
replies accepted by request, caskd's thread count unchanged by the load.
Usage: nbd_aread.py PORT CASKD_PID SEED SIZE"""
import random
import sys

import nbd

from viohelp import check, threads

port, pid, seed, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
BS = 4096
DEPTH = 64
TOTAL = 8192


def block(i):
    """The bytes written at block i: its number and the seed, repeated."""
    return (b"%016x%016x" % (i, seed)) * (BS // 32)


h = nbd.NBD()
h.connect_uri("nbd://127.0.0.1:%d/tank/v" % port)
check(h.get_size() == size, "size %d" % h.get_size())
nblk = size // BS
t0 = threads(pid)

rng = random.Random(seed)
done = {}
issued = 0
completed = 0
errors = []
max_out = 0
out_of_order = 0
last_done = -1


def make_cb(i, blk, buf):
    def cb(error):
        global completed, out_of_order, last_done
        if error.value != 0:
            errors.append((blk, error.value))
        else:
            got = buf.to_bytearray()
            if bytes(got) != block(blk):
                errors.append((blk, "wrong data"))
        if i < last_done:
            out_of_order += 1
        last_done = max(last_done, i)
        completed += 1
        return 1
    return cb


while completed < TOTAL:
    while issued < TOTAL and h.aio_in_flight() < DEPTH:
        blk = rng.randrange(nblk)
        buf = nbd.Buffer(BS)
        h.aio_pread(buf, blk * BS, completion=make_cb(issued, blk, buf))
        issued += 1
    max_out = max(max_out, h.aio_in_flight())
    h.poll(-1)

check(not errors, "read errors: %s" % errors[:5])
check(max_out >= DEPTH - 1, "only %d reads outstanding" % max_out)
t1 = threads(pid)
check(t1 == t0, "caskd's thread count changed under load: %d -> %d" % (t0, t1))
# a whole-range read that spans many blocks, and a partial one
got = h.pread(64 * BS + 100, 10 * BS - 50)
want = b"".join(block(i) for i in range(9, 76))[BS - 50:BS - 50 + 64 * BS + 100]
check(got == want, "multi-block read")
h.shutdown()
print("nbd_aread: %d reads, %d outstanding at most, %d completed out of order, %d threads" %
      (TOTAL, max_out, out_of_order, t1))
