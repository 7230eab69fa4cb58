#!/usr/bin/python3
"""histcheck_nbd_kill.py -- the recorded workload of histcheck_nbd_kill.sh.

  histcheck_nbd_kill.py load URI HISTORY ROUND CASKD_PID SEED
      2 processes x 3 threads, each thread its own NBD connection (the
      second process's with up to 8 requests in flight: libnbd aio), write,
      read, flush, trim and zero blocks of a hot set (16 blocks) and a cold
      set (2048 blocks) with FUA now and then, recording everything with
      histrec; after a random moment caskd (CASKD_PID) is killed with
      SIGKILL, and once it is dead a `crash` event is recorded. Every
      thread stops at its first error.
  histcheck_nbd_kill.py verify URI HISTORY ROUND
      records a read of every block of the workload (after the restart).
"""
import multiprocessing
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import histrec  # noqa: E402

HOT = 16
COLD = 2048
NPROC = 2
NTHREAD = 3
DEPTH = 8                         # requests in flight per aio connection


def pick(r):
    if r.random() < 0.6:
        b = r.randrange(HOT)
    else:
        b = HOT + r.randrange(COLD)
    n = 1 if r.random() < 0.85 else r.randrange(2, 5)
    return b, min(n, HOT + COLD - b)


def worker(uri, hist, cid, seed, counts):
    r = random.Random(seed)
    rec = histrec.Recorder(hist)
    try:
        c = rec.client(cid, uri)
    except Exception as e:            # the kill came before we connected
        print("client %d: connect: %s" % (cid, e))
        return
    n = 0
    try:
        while True:
            k = r.random()
            b, cnt = pick(r)
            if k < 0.45:
                ok = c.write(b, cnt, fua=r.random() < 0.1)
            elif k < 0.85:
                ok = c.read(b, cnt) is not None
            elif k < 0.95:
                ok = c.flush()
            elif k < 0.98:
                ok = c.trim(b, cnt)
            else:
                ok = c.zero(b, cnt)
            n += 1
            if not ok:
                break
    except histrec.ClientDead:
        pass
    counts.append(n)
    c.close()
    rec.close()


def aio_worker(uri, hist, cid, seed, counts):
    """Like worker, with up to DEPTH requests in flight on its connection."""
    r = random.Random(seed)
    rec = histrec.Recorder(hist)
    try:
        c = rec.aio_client(cid, uri)
    except Exception as e:
        print("client %d: connect: %s" % (cid, e))
        return
    n = 0
    try:
        while not c.dead:
            while c.in_flight < DEPTH and not c.dead:
                k = r.random()
                b, cnt = pick(r)
                if k < 0.45:
                    c.aio_write(b, cnt, fua=r.random() < 0.1)
                elif k < 0.85:
                    c.aio_read(b, cnt)
                elif k < 0.95:
                    c.aio_flush()
                elif k < 0.98:
                    c.aio_trim(b, cnt)
                else:
                    c.aio_zero(b, cnt)
                n += 1
            c.poll(50)
    except histrec.ClientDead:
        pass
    counts.append(n)
    c.close()
    rec.close()


def proc_main(uri, hist, first_cid, seed, q, aio):
    counts = []
    ts = [threading.Thread(target=aio_worker if aio else worker,
                           args=(uri, hist, first_cid + i, seed * 7 + i, counts))
          for i in range(NTHREAD)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(sum(counts))


def dead(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # reaped between the open and the read
        return True


def load(uri, hist, rnd, pid, seed):
    r = random.Random(seed)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    base = rnd * 16 + 1
    ps = [ctx.Process(target=proc_main,
                      args=(uri, hist, base + p * NTHREAD, seed * 13 + p, q, p == NPROC - 1))
          for p in range(NPROC)]
    for p in ps:
        p.start()
    time.sleep(0.5 + r.random() * 1.5)
    os.kill(pid, 9)
    while not dead(pid):
        time.sleep(0.005)
    rec = histrec.Recorder(hist)
    rec.event("crash", round=rnd)
    rec.close()
    total = sum(q.get(timeout=120) for _ in ps)
    for p in ps:
        p.join(60)
        if p.exitcode != 0:
            sys.exit("a client process exited %s" % p.exitcode)
    print("round %d: %d ops by %d clients, then SIGKILL" % (rnd, total, NPROC * NTHREAD))


def verify(uri, hist, rnd):
    histrec.read_all(uri, hist, rnd * 16 + 15, HOT + COLD)


def main(a):
    if len(a) == 6 and a[0] == "load":
        load(a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
    elif len(a) == 4 and a[0] == "verify":
        verify(a[1], a[2], int(a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
