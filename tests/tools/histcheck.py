#!/usr/bin/python3
"""histcheck.py -- check a history of client operations on a block device.

  histcheck.py [--no-stale] [--prefix] [--json] [--max-report N] HISTORY...
      exit 0: no violation; 1: violations (one line each, then a summary);
      2: the history is malformed.

Several HISTORY files (one per process, or one shared file appended with
O_APPEND) are merged; operations are matched by id, so their lines may
interleave in any order. tests/tools/histrec.py records histories from
python3-libnbd clients. Design: docs/replication.md §13.2 ("As built").

History format (JSON Lines; `ts` is CLOCK_MONOTONIC in ns, one host)
--------------
  {"type":"header", "bs":4096, "multi_conn":true}          optional, first wins
  {"type":"invoke", "id":ID, "client":C, "op":OP, "off":BYTES, "len":BYTES,
   "fua":false, "ts":T}                OP: write, read, flush, trim, zero
                                       (write may carry "v": its value, default ID,
                                       or "vs": one value per block)
  {"type":"ok", "id":ID, "ts":T}       the server answered success; a read's
                                       ok carries "vs": one entry per block:
                                       a value (0 = zeros), null (bytes nobody
                                       wrote), or a list with one value per
                                       sector when the sectors differ (torn)
  {"type":"fail", "id":ID, "ts":T}     the op certainly had no effect (never sent)
  {"type":"info", "id":ID, "ts":T}     outcome unknown (connection lost, error
                                       reply, timeout): a write may or may not
                                       have happened, now or later
  {"type":"event", "what":W, "ts":T}   W = crash (volatile state is lost: every
                                       caskd of the volume killed / power loss),
                                       failover (controller change; nothing
                                       acknowledged may be lost), or any other
                                       word (kept as a note)

Each block (bs bytes) is a register. Values are opaque (the recorder uses
the writing op's id); 0 is zeros: the initial content, trims and
write-zeroes write 0. A value may have several writers (0 always does);
then a read passes if any of them explains it.

Durability: a write is durable when its FUA write is answered, or when a
FLUSH answered ok was sent after the write was answered (on any client
with multi_conn, else on its own client) with no crash in between. An op
invoked before a crash and answered after it is taken as completed at
the crash (the server was dead by then).

Checks (per block; `a < b` in time means a completed before b was invoked)
------
  phantom     a read returns bytes no write put there, or the value of a
              write invoked only after the read completed; a torn read
              (sectors of different writes) unless a crash or failover
              happened while one of those writes was in flight
  lost        after a crash, a read returns a write w although a write d
              was durable before the crash and w < d
  stale       (off with --no-stale, for consistency level `one`) a read
              returns w although a write w' was answered before the read
              began and w < w'; across a crash only durable w' count
  nonmonotonic a read returns w2 although a read that completed before it
              began returned w1 and w2 < w1 (across a crash only if w1
              was durable)
  prefix      (with --prefix) after a crash, the first reads of the blocks
              show a write y surviving while a write x with x < y was lost
              (x was answered, the block reads something older than x)

Each violation is printed with the operations involved (id, client, op,
offset, invoke/complete times). From Python: check(events, ...) returns a
Result with .violations (list of dicts) and .summary().
"""
import bisect
import gc
import json
import sys

INF = float("inf")
NINF = float("-inf")
CHECK_KINDS = ("phantom", "lost", "stale", "nonmonotonic", "prefix")


class HistoryError(Exception):
    pass


class Op:
    __slots__ = ("id", "client", "op", "off", "len", "fua", "inv", "cmp", "cmp_raw",
                 "status", "v", "vs", "rvs", "dur")

    def __init__(self, ev):
        self.id = ev["id"]
        self.client = ev.get("client")
        self.op = ev["op"]
        self.off = ev.get("off", 0)
        self.len = ev.get("len", 0)
        self.fua = bool(ev.get("fua", False))
        self.inv = ev["ts"]
        self.cmp = INF
        self.cmp_raw = INF
        self.status = None
        self.v = ev.get("v", self.id)
        self.vs = ev.get("vs")
        self.rvs = None
        self.dur = INF

    def desc(self):
        c = "-" if self.cmp_raw == INF else "%d" % self.cmp_raw
        return ("op %s (client %s %s%s off %d len %d, invoked %d, completed %s, %s)"
                % (self.id, self.client, self.op, " FUA" if self.fua else "", self.off,
                   self.len, self.inv, c, self.status or "pending"))


class Initial:
    """The virtual write of zeros before the history."""
    id = "initial"
    inv = NINF
    cmp = NINF
    cmp_raw = NINF
    dur = NINF
    status = "ok"

    def desc(self):
        return "the initial zeros"


INITIAL = Initial()


class MaxIndex:
    """Items (key, val, obj); query(t) = the (val, obj) with the largest val
    among items with key < t, or (-inf, None)."""

    def __init__(self, items):
        items.sort(key=lambda x: x[0])
        self.keys = [x[0] for x in items]
        self.best = []
        bv, bo = NINF, None
        for _, v, o in items:
            if v > bv:
                bv, bo = v, o
            self.best.append((bv, bo))

    def query(self, t):
        i = bisect.bisect_left(self.keys, t)
        if i == 0:
            return (NINF, None)
        return self.best[i - 1]


class EpochIndex:
    """Per-crash-epoch MaxIndex plus one over the items that survive crashes:
    query(t, e) looks at items of epoch e and at surviving items."""

    def __init__(self):
        self.items = {}
        self.surv = []

    def add(self, key, val, obj, epoch, survives):
        self.items.setdefault(epoch, []).append((key, val, obj))
        if survives:
            self.surv.append((key, val, obj))

    def build(self):
        self.idx = {e: MaxIndex(v) for e, v in self.items.items()}
        self.sidx = MaxIndex(self.surv)
        del self.items, self.surv

    def query(self, t, epoch):
        a = self.sidx.query(t)
        ix = self.idx.get(epoch)
        if ix is not None:
            b = ix.query(t)
            if b[0] > a[0]:
                return b
        return a


class Result:
    def __init__(self):
        self.violations = []
        self.counts = {}
        self.kinds = {}

    def add(self, kind, msg, ops):
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.violations.append({"kind": kind, "msg": msg,
                                "ops": [o.desc() for o in ops if o is not None]})

    @property
    def ok(self):
        return not self.violations

    def summary(self):
        c = self.counts
        head = ("histcheck: %d ops (%d writes, %d reads, %d flushes, %d trims/zeroes; "
                "%d indeterminate), %d blocks, %d crashes, %d failovers: "
                % (c.get("ops", 0), c.get("write", 0), c.get("read", 0), c.get("flush", 0),
                   c.get("trim", 0) + c.get("zero", 0), c.get("info", 0), c.get("blocks", 0),
                   c.get("crashes", 0), c.get("failovers", 0)))
        if self.ok:
            return head + "OK"
        return head + "%d violations (%s)" % (
            len(self.violations), ", ".join("%s %d" % kv for kv in sorted(self.kinds.items())))


def load(paths):
    events = []
    for p in paths:
        with open(p) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except ValueError as e:
                    raise HistoryError("%s:%d: %s" % (p, n, e))
    return events


def check(events, stale=True, prefix=False, bs=None, multi_conn=None):
    """Check a list of history events (dicts); returns a Result."""
    # The check allocates many long-lived objects and no cycles: the cyclic
    # collector would rescan them over and over (superlinear time).
    was = gc.isenabled()
    gc.disable()
    try:
        return _check(events, stale, prefix, bs, multi_conn)
    finally:
        if was:
            gc.enable()


def _check(events, stale, prefix, bs, multi_conn):
    res = Result()
    header = {}
    ops = {}
    crashes = []
    failovers = []
    for ev in events:
        t = ev.get("type")
        if t == "header":
            for k, v in ev.items():
                header.setdefault(k, v)
        elif t == "invoke":
            if ev["id"] in ops:
                raise HistoryError("op id %s invoked twice" % ev["id"])
            if ev.get("op") not in ("write", "read", "flush", "trim", "zero"):
                raise HistoryError("op %s: unknown op %s" % (ev["id"], ev.get("op")))
            ops[ev["id"]] = Op(ev)
        elif t in ("ok", "fail", "info"):
            pass
        elif t == "event":
            if ev.get("what") == "crash":
                crashes.append(ev["ts"])
            elif ev.get("what") == "failover":
                failovers.append(ev["ts"])
        else:
            raise HistoryError("unknown event type %r" % t)
    for ev in events:
        t = ev.get("type")
        if t in ("ok", "fail", "info"):
            o = ops.get(ev["id"])
            if o is None:
                raise HistoryError("%s for op %s that was never invoked" % (t, ev["id"]))
            if o.status is not None:
                raise HistoryError("op %s completed twice" % ev["id"])
            o.status = t
            if t == "ok":
                o.cmp = o.cmp_raw = ev["ts"]
                if o.cmp < o.inv:
                    raise HistoryError("op %s completed before it was invoked" % o.id)
                if o.op == "read":
                    o.rvs = ev.get("vs")
    bs = bs or header.get("bs", 4096)
    if multi_conn is None:
        multi_conn = header.get("multi_conn", True)
    crashes.sort()
    failovers.sort()
    faults = sorted(crashes + failovers)

    def epoch(t):
        return bisect.bisect_right(crashes, t)

    def next_crash(t):
        i = bisect.bisect_right(crashes, t)
        return crashes[i] if i < len(crashes) else INF

    # An op answered after a crash it was invoked before completed by the crash.
    for o in ops.values():
        if o.cmp != INF and crashes:
            c = next_crash(o.inv)
            if o.cmp >= c:
                o.cmp = c - 1

    # Durability of every answered write.
    flushes = [o for o in ops.values() if o.op == "flush" and o.status == "ok"]

    def flush_index(fl):
        fl = sorted(fl, key=lambda f: f.inv)
        invs = [f.inv for f in fl]
        suf = [INF] * (len(fl) + 1)
        for i in range(len(fl) - 1, -1, -1):
            suf[i] = min(fl[i].cmp, suf[i + 1])
        return invs, suf

    if multi_conn:
        fidx = {None: flush_index(flushes)}
    else:
        byc = {}
        for f in flushes:
            byc.setdefault(f.client, []).append(f)
        fidx = {c: flush_index(v) for c, v in byc.items()}
    writes = [o for o in ops.values() if o.op in ("write", "trim", "zero") and o.status != "fail"]
    for w in writes:
        if w.status != "ok":
            continue
        if w.fua:
            w.dur = w.cmp
            continue
        invs, suf = fidx.get(None if multi_conn else w.client, ([], [INF]))
        i = bisect.bisect_right(invs, w.cmp)
        d = suf[i]
        if d < INF and next_crash(w.cmp) < d:
            d = INF               # a crash came between the write and the flush
        w.dur = d

    def survives(w):
        return w.dur < next_crash(w.cmp)

    # Per block: writers by value, and the indexes.
    wby = {}                      # block -> value -> [writes]
    for w in writes:
        if w.off % bs or w.len % bs:
            raise HistoryError("op %s: offset/length not multiples of %d" % (w.id, bs))
        b0 = w.off // bs
        n = w.len // bs
        if w.op in ("trim", "zero"):
            vals = [0] * n
        elif w.vs is not None:
            vals = w.vs
            if len(vals) != n:
                raise HistoryError("op %s: %d values for %d blocks" % (w.id, len(vals), n))
        else:
            vals = [w.v] * n
        for i in range(n):
            wby.setdefault(b0 + i, {}).setdefault(vals[i], []).append(w)
    reads = [o for o in ops.values() if o.op == "read" and o.status == "ok"]
    for r in reads:
        if r.off % bs or r.len % bs:
            raise HistoryError("op %s: offset/length not multiples of %d" % (r.id, bs))
        if r.rvs is None or len(r.rvs) != r.len // bs:
            raise HistoryError("read %s: its ok must carry one value per block" % r.id)

    blocks = set(wby)
    for r in reads:
        blocks.update(range(r.off // bs, r.off // bs + r.len // bs))

    stale_idx = {}
    dur_idx = {}
    for b, byv in wby.items():
        ei = EpochIndex()
        di = []
        for ws in byv.values():
            for w in ws:
                if w.cmp == INF:
                    continue
                ei.add(w.cmp, w.inv, w, epoch(w.cmp), survives(w))
                if w.dur < INF:
                    di.append((w.dur, w.inv, w))
        ei.build()
        stale_idx[b] = ei
        dur_idx[b] = MaxIndex(di)

    def candidates(b, v, r):
        """The writes that can explain value v in block b for read r."""
        cs = [w for w in wby.get(b, {}).get(v, ()) if w.inv < r.cmp]
        if v == 0:
            cs.append(INITIAL)
        return cs

    # Per block reads in order, for the monotonic-reads index: (read, block, value, best, floor)
    subreads = []
    nbad = 0

    def torn_allowed(r, ws):
        for f in faults:
            if f >= r.inv:
                break
            for w in ws:
                if w.inv < f <= w.cmp_raw:
                    return True
        return False

    for r in reads:
        b0 = r.off // bs
        for i, got in enumerate(r.rvs):
            b = b0 + i
            if got is None:
                res.add("phantom", "block %d: read bytes that no write put there" % b, [r])
                nbad += 1
                continue
            if isinstance(got, list):
                distinct = []
                for v in got:
                    if v not in distinct:
                        distinct.append(v)
                if None in distinct:
                    res.add("phantom", "block %d: sectors read bytes that no write put there" % b, [r])
                    continue
                if len(distinct) > 1:
                    ws = [w for v in distinct for w in candidates(b, v, r)]
                    if not torn_allowed(r, ws):
                        res.add("phantom", "block %d: torn read (sectors of %s) with no crash "
                                "while one of those writes was in flight" % (b, distinct), [r] + ws[:4])
                        continue
                vals = distinct
            else:
                vals = [got]
            for v in vals:
                cs = candidates(b, v, r)
                if not cs:
                    later = wby.get(b, {}).get(v)
                    if later:
                        res.add("phantom", "block %d: read value %s before its write was invoked"
                                % (b, v), [r, later[0]])
                    else:
                        res.add("phantom", "block %d: read value %s that no write wrote there"
                                % (b, v), [r])
                    continue
                best = max(cs, key=lambda w: w.cmp)
                floor = min(cs, key=lambda w: w.inv)
                subreads.append((r, b, v, best, floor, len(vals) > 1))

    # lost and stale
    for r, b, v, best, floor, torn in subreads:
        e = epoch(r.inv)
        reported = False
        if e > 0:
            c_last = crashes[e - 1]
            mi, d = dur_idx[b].query(c_last) if b in dur_idx else (NINF, None)
            if mi > best.cmp:
                res.add("lost", "block %d: after the crash at %d the read returned %s, older "
                        "than a write that was durable before the crash" % (b, c_last, best.desc()),
                        [r, d])
                reported = True
        if stale and not reported and b in stale_idx:
            mi, w2 = stale_idx[b].query(r.inv, e)
            if mi > best.cmp:
                res.add("stale", "block %d: the read returned %s although a newer write had "
                        "been answered before the read began" % (b, best.desc()), [r, w2])

    # monotonic reads
    mono = {}
    for r, b, v, best, floor, torn in subreads:
        if torn:
            continue
        mono.setdefault(b, EpochIndex()).add(r.cmp, floor.inv, (r, floor), epoch(r.cmp),
                                             floor is INITIAL or survives(floor))
    for ix in mono.values():
        ix.build()
    for r, b, v, best, floor, torn in subreads:
        mi, prev = mono[b].query(r.inv, epoch(r.inv)) if b in mono else (NINF, None)
        if mi > best.cmp:
            r1, w1 = prev
            res.add("nonmonotonic", "block %d: the read returned %s, older than %s that an "
                    "earlier read returned" % (b, best.desc(), w1.desc()), [r, r1])

    if prefix:
        check_prefix(res, crashes, reads, wby, subreads, bs)

    c = res.counts
    c["ops"] = len(ops)
    for o in ops.values():
        c[o.op] = c.get(o.op, 0) + 1
        if o.status == "info":
            c["info"] = c.get("info", 0) + 1
    c["blocks"] = len(blocks)
    c["crashes"] = len(crashes)
    c["failovers"] = len(failovers)
    return res


def check_prefix(res, crashes, reads, wby, subreads, bs):
    """After each crash, the state the first reads show must be a prefix of
    the real-time order of answered writes. Writes and reads are bucketed by
    epoch, so each crash looks only at its own: O(n log n) in all."""
    winv = {b: sorted(w.inv for ws in byv.values() for w in ws) for b, byv in wby.items()}
    reads_by_epoch = {}
    for sr in subreads:
        reads_by_epoch.setdefault(bisect.bisect_right(crashes, sr[0].inv), []).append(sr)
    writes_by_epoch = {}
    seen = set()
    for byv in wby.values():
        for ws in byv.values():
            for w in ws:
                if w.status == "ok" and id(w) not in seen:
                    seen.add(id(w))
                    writes_by_epoch.setdefault(bisect.bisect_right(crashes, w.cmp), []).append(w)
    for k, cr in enumerate(crashes):
        nxt = crashes[k + 1] if k + 1 < len(crashes) else INF
        state = {}                 # block -> (survivor with the smallest inv, best cmp)
        for r, b, v, best, floor, torn in reads_by_epoch.get(k + 1, ()):
            if r.inv <= cr or r.cmp >= nxt:
                continue
            invs = winv.get(b, ())
            i = bisect.bisect_right(invs, cr)
            if i < len(invs) and invs[i] <= r.cmp:
                continue           # a write after the crash may show in this read
            cs = [w for w in wby.get(b, {}).get(v, ()) if w.inv < cr]
            if v == 0:
                cs.append(INITIAL)
            if not cs:
                continue
            lo = min(cs, key=lambda w: w.inv)
            hi = max(cs, key=lambda w: w.cmp)
            old = state.get(b)
            if old is None:
                state[b] = (lo, hi)
            else:               # several reads of the block: the most lenient
                state[b] = (lo if lo.inv < old[0].inv else old[0],
                            hi if hi.cmp > old[1].cmp else old[1])
        lost_first = None
        for x in writes_by_epoch.get(k, ()):
            if x.cmp >= cr or (lost_first is not None and x.cmp >= lost_first[0].cmp):
                continue
            for b in range(x.off // bs, (x.off + x.len) // bs):
                st = state.get(b)
                if st is not None and x.inv > st[1].cmp:
                    lost_first = (x, b)
                    break
        if lost_first is None:
            continue
        x, bx = lost_first
        for b, (lo, hi) in state.items():
            if lo is not INITIAL and lo.inv > x.cmp:
                res.add("prefix", "after the crash at %d block %d holds %s but block %d lost %s, "
                        "which was answered before it was invoked" % (cr, b, lo.desc(), bx, x.desc()),
                        [lo, x])
                break


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="check a block-device history (see the docstring)")
    ap.add_argument("--no-stale", action="store_true", help="skip the stale-read check (level one)")
    ap.add_argument("--prefix", action="store_true", help="check the cross-block prefix after crashes")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--max-report", type=int, default=50, help="violations printed (default 50)")
    ap.add_argument("history", nargs="+")
    o = ap.parse_args(argv)
    try:
        res = check(load(o.history), stale=not o.no_stale, prefix=o.prefix)
    except (HistoryError, KeyError, TypeError) as e:
        print("histcheck: malformed history: %s" % e, file=sys.stderr)
        return 2
    if o.json:
        print(json.dumps({"ok": res.ok, "counts": res.counts, "kinds": res.kinds,
                          "violations": res.violations[:o.max_report]}))
    else:
        for v in res.violations[:o.max_report]:
            print("VIOLATION %s: %s" % (v["kind"], v["msg"]))
            for d in v["ops"]:
                print("    " + d)
        if len(res.violations) > o.max_report:
            print("... %d more" % (len(res.violations) - o.max_report))
        print(res.summary())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
