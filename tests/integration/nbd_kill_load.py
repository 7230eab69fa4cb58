#!/usr/bin/python3
"""nbd_kill_load.py -- the checker for nbd_kill_load.sh.

  nbd_kill_load.py load   URI STATE PID SEED   write under load, SIGKILL PID
  nbd_kill_load.py verify URI STATE            check the volume against STATE

`load` runs four writer threads, each with its own NBD connection and its
own blocks (so every block's writes are ordered: a block is rewritten only
after its previous write was answered). Each write carries (block, gen) in
every 16 bytes; some are FUA, and every thread sends a FLUSH now and then.
What the clients were told is recorded:

  * a FUA write that was answered is durable;
  * a FLUSH that was answered makes durable every write answered before the
    FLUSH was sent (on any connection: the export has CAN_MULTI_CONN).

After a random delay the daemon (PID) is killed with SIGKILL while all
threads write. `verify` then reads every block: it must hold its last
durable generation or one written after it -- never an older one, never
bytes that no client wrote. The values read become the next round's base.
"""
import json
import os
import random
import signal
import struct
import sys
import threading
import time

import nbd

BS = 4096
NTHREADS = 4


def block_data(blk, gen):
    return struct.pack("<QQ", blk, gen) * (BS // 16)


def decode(buf):
    """(block, gen) of a block's bytes, (None, 0) for zeros, None for garbage."""
    if buf == bytes(BS):
        return (None, 0)
    blk, gen = struct.unpack_from("<QQ", buf)
    if buf != block_data(blk, gen):
        return None
    return (blk, gen)


def load(uri, state_path, pid, seed):
    rnd = random.Random(seed)
    with open(state_path) as f:
        st = json.load(f)
    nblocks = st["nblocks"]
    base = st["base"]                 # block -> generation the volume holds now
    next_gen = st["next_gen"]
    lock = threading.Lock()
    done_seq = [0]                    # answered writes, in answer order
    # per block: list of [gen, answered_seq or None, fua]
    writes = {}
    flush_marks = []                  # answered FLUSHes: the done_seq they covered
    stop = threading.Event()
    gen_box = [next_gen]

    def writer(tid):
        h = nbd.NBD()
        h.connect_uri(uri)
        r = random.Random(seed * 31 + tid)
        mine = list(range(tid, nblocks, NTHREADS))
        n = 0
        try:
            while not stop.is_set():
                blk = r.choice(mine)
                with lock:
                    gen_box[0] += 1
                    gen = gen_box[0]
                    rec = [gen, None, False]
                    writes.setdefault(blk, []).append(rec)
                fua = r.random() < 0.25
                h.pwrite(block_data(blk, gen), blk * BS, nbd.CMD_FLAG_FUA if fua else 0)
                with lock:
                    done_seq[0] += 1
                    rec[1] = done_seq[0]
                    rec[2] = fua
                n += 1
                if n % 8 == 0:
                    with lock:
                        mark = done_seq[0]
                    h.flush()
                    with lock:
                        flush_marks.append(mark)
        except nbd.Error:
            pass                      # the daemon was killed under us
        finally:
            try:
                del h
            except Exception:
                pass

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(NTHREADS)]
    for t in threads:
        t.start()
    # the kill comes at a random moment after the first write answered as durable (a FUA write or
    # one a FLUSH covered): on a loaded machine the clients may not have connected 0.15 s in, and
    # a round (the sync=disabled control above all) with nothing acknowledged checks nothing
    def durable_answered():
        with lock:
            return bool(flush_marks) or any(rec[2] for recs in writes.values() for rec in recs)
    end = time.monotonic() + 120
    while time.monotonic() < end and not durable_answered():
        time.sleep(0.01)
    time.sleep(0.05 + rnd.random() * 0.9)
    os.kill(pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    covered = max(flush_marks) if flush_marks else 0
    durable = {}
    later = {}
    nwrites = nfua = 0
    for blk, recs in writes.items():
        d = None
        for i, (gen, seq, fua) in enumerate(recs):
            nwrites += 1
            if seq is not None and (fua or seq <= covered):
                d = i
            nfua += 1 if (seq is not None and fua) else 0
        key = str(blk)
        if d is not None:
            durable[key] = recs[d][0]
            later[key] = [g for g, _, _ in recs[d + 1:]]
        else:
            later[key] = [g for g, _, _ in recs]
    st["next_gen"] = gen_box[0]
    st["durable"] = durable
    st["later"] = later
    with open(state_path, "w") as f:
        json.dump(st, f)
    print("load: %d writes (%d FUA answered), %d flushes answered, %d blocks with a durable write"
          % (nwrites, nfua, len(flush_marks), len(durable)))


def verify(uri, state_path):
    with open(state_path) as f:
        st = json.load(f)
    nblocks = st["nblocks"]
    base = st["base"]
    durable = st.get("durable", {})
    later = st.get("later", {})
    h = nbd.NBD()
    h.connect_uri(uri)
    bad = 0
    chunk = 256
    newbase = {}
    for first in range(0, nblocks, chunk):
        buf = h.pread(chunk * BS, first * BS)
        for i in range(chunk):
            blk = first + i
            key = str(blk)
            got = decode(buf[i * BS:(i + 1) * BS])
            if got is None or (got[0] is not None and got[0] != blk):
                print("block %d: bytes no client wrote there" % blk)
                bad += 1
                continue
            gen = got[1]
            if key in durable:
                allowed = [durable[key]] + later.get(key, [])
            else:
                allowed = [base.get(key, 0)] + later.get(key, [])
            if gen not in allowed:
                why = "lost an acknowledged write" if key in durable else "went back in time"
                print("block %d: reads generation %d, allowed %s (%s)" % (blk, gen, allowed[:4], why))
                bad += 1
            newbase[key] = gen
    h.shutdown()
    st["base"] = {k: v for k, v in newbase.items() if v != 0}
    st.pop("durable", None)
    st.pop("later", None)
    with open(state_path, "w") as f:
        json.dump(st, f)
    if bad:
        sys.exit("verify: %d bad blocks" % bad)
    print("verify: %d blocks hold their durable value or a later one" % nblocks)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "init":
        with open(sys.argv[2], "w") as f:
            json.dump({"nblocks": int(sys.argv[3]), "base": {}, "next_gen": 0}, f)
    elif len(sys.argv) == 6 and sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) == 4 and sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
