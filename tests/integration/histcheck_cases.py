#!/usr/bin/python3
"""histcheck_cases.py -- the history checker (tests/tools/histcheck.py) on
hand-built histories: each clean one must pass, each broken one must be
reported with the violation kind it contains, and a generated history of
tens of thousands of operations from a model that keeps the durability
contract must pass, while the same history with one read made stale, one
acknowledged write lost or one prefix broken must fail."""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import histcheck  # noqa: E402

BS = 4096
failures = []


class H:
    """A hand-built history. Times are small integers."""

    def __init__(self, multi_conn=True):
        self.ev = [{"type": "header", "bs": BS, "multi_conn": multi_conn}]
        self.n = 0

    def _op(self, client, op, block, nblocks, t0, t1, status="ok", fua=False, vs=None):
        self.n += 1
        oid = self.n
        self.ev.append({"type": "invoke", "id": oid, "client": client, "op": op,
                        "off": block * BS, "len": nblocks * BS, "fua": fua, "ts": t0})
        if status is not None:
            e = {"type": status, "id": oid, "ts": t1}
            if op == "read" and status == "ok":
                e["vs"] = vs
            self.ev.append(e)
        return oid

    def w(self, client, block, t0, t1, status="ok", fua=False, n=1):
        return self._op(client, "write", block, n, t0, t1, status, fua)

    def r(self, client, block, t0, t1, vs):
        return self._op(client, "read", block, len(vs), t0, t1, vs=vs)

    def f(self, client, t0, t1, status="ok"):
        return self._op(client, "flush", 0, 0, t0, t1, status)

    def trim(self, client, block, t0, t1):
        return self._op(client, "trim", block, 1, t0, t1)

    def crash(self, t):
        self.ev.append({"type": "event", "what": "crash", "ts": t})

    def failover(self, t):
        self.ev.append({"type": "event", "what": "failover", "ts": t})


def expect(name, h, kinds, **kw):
    """kinds: the set of violation kinds that must be reported (empty: clean)."""
    res = histcheck.check(h.ev, **kw)
    got = set(res.kinds)
    if got != set(kinds):
        failures.append(name)
        print("FAIL %s: want %s, got %s" % (name, sorted(kinds) or "clean", sorted(got) or "clean"))
        for v in res.violations:
            print("    %s: %s" % (v["kind"], v["msg"]))
    else:
        print("ok   %s: %s" % (name, ", ".join("%s %d" % kv for kv in sorted(res.kinds.items()))
                                or "clean"))
        for v in res.violations[:1]:
            print("       e.g. %s: %s" % (v["kind"], v["msg"]))


def hand_built():
    # --- clean histories
    h = H()
    a = h.w(1, 0, 0, 1)
    h.r(1, 0, 2, 3, [a])
    b = h.w(1, 0, 4, 5)
    h.r(2, 0, 6, 7, [b])
    expect("sequential", h, [])

    for pick in ("old", "new"):
        h = H()
        a = h.w(1, 0, 0, 1)
        b = h.w(2, 0, 10, 30)
        h.r(3, 0, 15, 25, [a if pick == "old" else b])
        expect("read concurrent with a write returns the %s value" % pick, h, [])

    for pick in ("durable", "later"):
        h = H()
        a = h.w(1, 0, 0, 1, fua=True)
        b = h.w(1, 0, 2, 3)
        h.crash(10)
        h.r(1, 0, 11, 12, [a if pick == "durable" else b])
        expect("after a crash the %s value" % pick, h, [])

    h = H()
    a = h.w(1, 0, 0, 1)
    h.f(2, 2, 3)
    h.w(1, 0, 4, 5)
    h.crash(10)
    h.r(1, 0, 11, 12, [a])
    expect("unflushed write lost in a crash, flushed one kept", h, [])

    h = H()
    a = h.w(1, 0, 0, 1, fua=True)
    b = h.w(1, 0, 2, None, status=None)      # in flight when the server died
    h.crash(10)
    h.r(1, 0, 11, 12, [b])
    h.r(1, 0, 13, 14, [b])
    expect("an in-flight write applied before the crash", h, [])

    h = H()
    h.w(1, 0, 0, 1)
    h.trim(1, 0, 2, 3)
    h.r(1, 0, 4, 5, [0])
    expect("trim reads zeros", h, [])

    h = H()
    a = h.w(1, 0, 0, 1, fua=True)
    b = h.w(1, 0, 2, 20)                     # answered after the crash: done by then
    h.crash(10)
    h.r(1, 0, 21, 22, [a])
    expect("a write answered after the crash instant is not durable", h, [])

    h = H()
    a = h.w(1, 0, 0, 1)
    h.crash(5)
    h.f(1, 6, 7)
    h.r(1, 0, 8, 9, [0])
    expect("a flush after a crash does not cover writes before it", h, [])

    h = H()
    a = h.w(1, 0, 0, 1, fua=True)
    b = h.w(2, 0, 2, None, status="info")
    h.crash(10)
    h.r(1, 0, 11, 12, [[b, b, a, a, a, a, a, a]])
    expect("torn read where a crash hit a write in flight", h, [])

    h = H()
    a = h.w(1, 0, 0, 1, n=3)
    h.r(2, 0, 2, 3, [a, a, a, 0])
    expect("multi-block write and read", h, [])

    h = H()
    x = h.w(1, 0, 0, 1)
    y = h.w(1, 1, 2, 3)
    h.crash(10)
    h.r(1, 0, 11, 12, [x, 0])
    expect("after a crash an older write kept and a newer lost (prefix)", h, [], prefix=True)

    h = H()
    a = h.w(1, 0, 0, 1)
    b = h.w(1, 0, 2, 3)
    h.failover(10)
    h.r(1, 0, 11, 12, [b])
    expect("failover keeps acknowledged writes", h, [])

    h = H(multi_conn=False)
    a = h.w(1, 0, 0, 1)
    h.f(2, 2, 3)                             # another connection's flush
    h.crash(10)
    h.r(1, 0, 11, 12, [0])
    expect("without multi_conn another client's flush covers nothing", h, [])

    # --- broken histories
    h = H()
    a = h.w(1, 0, 0, 1, fua=True)
    h.crash(10)
    h.r(1, 0, 11, 12, [0])
    expect("lost FUA write", h, ["lost"])

    h = H()
    a = h.w(1, 0, 0, 1)
    h.f(2, 2, 3)
    h.crash(10)
    h.r(1, 0, 11, 12, [0])
    expect("lost flushed write", h, ["lost"])

    h = H()
    a = h.w(1, 0, 0, 1)
    b = h.w(2, 0, 2, 3)
    h.r(3, 0, 4, 5, [a])
    expect("stale read", h, ["stale"])
    expect("stale read with --no-stale (level one)", h, [], stale=False)

    h = H()
    a = h.w(1, 0, 0, 1)
    b = h.w(2, 0, 2, 3)
    h.failover(4)
    h.r(3, 0, 5, 6, [a])
    expect("acknowledged write lost in a failover", h, ["stale"])

    h = H()
    h.w(1, 0, 0, 1)
    h.r(1, 0, 2, 3, [12345])
    expect("read of a value never written", h, ["phantom"])

    h = H()
    h.r(1, 0, 0, 1, [2])
    h.w(1, 0, 2, 3)
    expect("read of a write invoked after the read completed", h, ["phantom"])

    h = H()
    h.r(1, 0, 0, 1, [None])
    expect("read of garbage", h, ["phantom"])

    h = H()
    a = h.w(1, 0, 0, 1)
    b = h.w(2, 0, 2, 3)
    h.r(1, 0, 4, 5, [[a, a, a, a, b, b, b, b]])
    expect("torn read with no crash", h, ["phantom"])

    h = H()
    a = h.w(1, 0, 0, 1)
    b = h.w(2, 0, 2, 100)
    h.r(3, 0, 3, 4, [b])
    h.r(3, 0, 5, 6, [a])
    expect("non-monotonic reads", h, ["nonmonotonic"])

    h = H()
    x = h.w(1, 0, 0, 1)
    y = h.w(1, 1, 2, 3)
    h.crash(10)
    h.r(1, 0, 11, 12, [0, y])
    expect("non-prefix after a crash", h, ["prefix"], prefix=True)
    expect("non-prefix after a crash without --prefix", h, [])

    h = H()
    a = h.w(1, 0, 0, 1)
    h.f(1, 2, 3)
    h.crash(10)
    h.r(1, 0, 11, 12, [a])
    b = h.w(1, 0, 13, 14)
    h.f(1, 15, 16)
    h.crash(20)
    h.r(1, 0, 21, 22, [a])
    expect("lost flushed write at the second crash", h, ["lost"])


def generate(seed, nclients=8, nops=40000, hot=16, cold=4096, crashes=4, broken=None,
             flush_p=0.07):
    """A history from a model device that keeps the durability contract the
    way cask does (a FLUSH or FUA makes everything applied so far durable;
    a crash reverts to the durable state). Returns (events, info).
    broken="lose-flush": a crash reverts to the state before the last
    FLUSH or FUA; broken="lagging-reads": one read in 50 returns what the
    block held before its latest write (a lagging replica); broken=
    "non-prefix": a crash keeps the newest non-durable change and loses the
    older ones."""
    rnd = random.Random(seed)
    ops = []
    per = nops // nclients
    span = per * 10
    crash_at = sorted(rnd.randrange(span // 10, span) for _ in range(crashes))
    for c in range(1, nclients + 1):
        t = rnd.randrange(5)
        for _ in range(per):
            k = rnd.random()
            blk = rnd.randrange(hot) if rnd.random() < 0.7 else hot + rnd.randrange(cold)
            n = 1 if rnd.random() < 0.9 else rnd.randrange(2, 5)
            if k < 0.45:
                kind = "write"
            elif k < 0.9:
                kind = "read"
            elif k < 0.9 + flush_p:
                kind = "flush"
            else:
                kind = "trim"
            inv = t + 1
            p = inv + rnd.randrange(1, 8)
            cmp = p + rnd.randrange(1, 8)
            ops.append({"client": c, "op": kind, "blk": blk, "n": n, "inv": inv, "p": p,
                        "cmp": cmp, "fua": kind == "write" and rnd.random() < 0.1})
            t = cmp + rnd.randrange(0, 6)
    ops.sort(key=lambda o: o["p"])
    state = {}
    durable = {}
    before_durable = {}
    previous = {}
    lastp = {}
    events = [{"type": "header", "bs": BS, "multi_conn": True}]
    ci = 0
    oid = 0
    stats = {"lost": 0}
    for o in ops:
        while ci < len(crash_at) and crash_at[ci] < o["p"]:
            stats["lost"] += sum(1 for b in state if state[b] != durable.get(b, 0))
            new = dict(before_durable if broken == "lose-flush" else durable)
            if broken == "non-prefix":
                # keep only the newest changed block: every older change is lost
                changed = [b for b in state if state[b] != durable.get(b, 0)]
                if changed:
                    keep = max(changed, key=lambda b: lastp[b])
                    new[keep] = state[keep]
            state = new
            events.append({"type": "event", "what": "crash", "ts": crash_at[ci]})
            ci += 1
        oid += 1
        o["id"] = oid
        c_before = next((c for c in crash_at if c > o["inv"]), None)
        if c_before is not None and c_before < o["cmp"]:
            # the crash hit it in flight: its effect is as of p (< crash, else
            # the loop above would have crashed first), its answer never came
            o["status"] = "info"
            if c_before < o["p"]:
                continue
        else:
            o["status"] = "ok"
        blocks = range(o["blk"], o["blk"] + o["n"])
        if o["op"] == "write":
            for b in blocks:
                previous[b] = state.get(b, 0)
                state[b] = oid
                lastp[b] = o["p"]
        elif o["op"] == "trim":
            for b in blocks:
                previous[b] = state.get(b, 0)
                state[b] = 0
                lastp[b] = o["p"]
        elif o["op"] == "read":
            if broken == "lagging-reads" and rnd.random() < 0.02:
                o["vs"] = [previous.get(b, 0) for b in blocks]
            else:
                o["vs"] = [state.get(b, 0) for b in blocks]
        if o["op"] == "flush" or o["fua"]:
            before_durable = durable
            durable = dict(state)
    for o in ops:
        if "id" not in o:
            continue
        ln = 0 if o["op"] == "flush" else o["n"] * BS
        events.append({"type": "invoke", "id": o["id"], "client": o["client"], "op": o["op"],
                       "off": o["blk"] * BS, "len": ln, "fua": o["fua"], "ts": o["inv"]})
        e = {"type": o["status"], "id": o["id"], "ts": o["cmp"]}
        if o["op"] == "read":
            if o["status"] != "ok":
                continue
            e["vs"] = o["vs"]
        events.append(e)
    return events, stats


def generated():
    events, st = generate(7)
    t0 = time.monotonic()
    res = histcheck.check(events, prefix=True)
    secs = time.monotonic() - t0
    print("generated: %s (%.1f s; the model lost %d non-durable block values in its crashes)"
          % (res.summary(), secs, st["lost"]))
    if not res.ok or res.counts["ops"] < 30000 or res.counts["crashes"] != 4:
        failures.append("generated history")
        for v in res.violations[:5]:
            print("    %s: %s" % (v["kind"], v["msg"]))
    byid = {e["id"]: e for e in events if e["type"] == "invoke"}
    oks = {e["id"]: e for e in events if e["type"] == "ok"}
    crash_ts = sorted(e["ts"] for e in events if e["type"] == "event")

    def epoch(t):
        return sum(1 for c in crash_ts if c <= t)

    # Mutation 1: a read after two answered writes to its block, in the same
    # epoch, returns the older one.
    writes_by_block = {}
    for i, e in byid.items():
        if e["op"] == "write" and e["len"] == BS and i in oks:
            writes_by_block.setdefault(e["off"] // BS, []).append(i)
    done = False
    for i, e in byid.items():
        if done or e["op"] != "read" or i not in oks or e["len"] != BS:
            continue
        ws = [w for w in writes_by_block.get(e["off"] // BS, [])
              if oks[w]["ts"] < e["ts"] and epoch(byid[w]["ts"]) == epoch(e["ts"])]
        ws.sort(key=lambda w: oks[w]["ts"])
        for k in range(len(ws) - 1):
            old, new = ws[k], ws[-1]
            if oks[old]["ts"] < byid[new]["ts"] and oks[i]["vs"] == [new]:
                mutated = [dict(x) for x in events]
                for x in mutated:
                    if x["type"] == "ok" and x["id"] == i:
                        x["vs"] = [old]
                r = histcheck.check(mutated)
                print("mutated (stale read): %s" % r.summary())
                if "stale" not in r.kinds:
                    failures.append("mutated stale read not found")
                done = True
                break
    if not done:
        failures.append("no read to mutate into a stale one")
    # Mutation 2: a FUA write answered before the last crash is read back after it
    # as what was there before (lost).
    last = crash_ts[-1]
    done = False
    for i, e in byid.items():
        if e["op"] == "write" and e["fua"] and i in oks and oks[i]["ts"] < last \
                and epoch(oks[i]["ts"]) == len(crash_ts) - 1 and e["len"] == BS:
            blk = e["off"] // BS
            mutated = events + [
                {"type": "invoke", "id": 10**9, "client": 99, "op": "read", "off": blk * BS,
                 "len": BS, "ts": last + 1},
                {"type": "ok", "id": 10**9, "ts": last + 2, "vs": [0]}]
            r = histcheck.check(mutated)
            print("mutated (lost FUA write, read as zeros): %s" % r.summary())
            if "lost" not in r.kinds:
                failures.append("mutated lost write not found")
            done = True
            break
    if not done:
        failures.append("no FUA write to lose")


def broken_models():
    """Histories from models that break the contract must be caught."""
    for broken, kinds in (("lose-flush", {"lost"}), ("lagging-reads", {"stale", "nonmonotonic"}),
                          (None, set()), ("non-prefix", {"prefix"})):
        rare = broken in (None, "non-prefix")    # few flushes: much to lose at a crash
        events, st = generate(11, nops=20000, broken=broken, crashes=10,
                              flush_p=0.005 if rare else 0.07)
        res = histcheck.check(events, prefix=rare)
        print("model %s%s: %s" % (broken or "clean", " (--prefix)" if rare else "", res.summary()))
        if kinds and not set(res.kinds) & kinds:
            failures.append("model %s: no %s reported" % (broken, "/".join(sorted(kinds))))
        if not kinds and not res.ok:
            failures.append("the clean model with rare flushes: %s" % res.summary())


def command_line():
    """The command: exit codes 0 clean, 1 violations, 2 malformed."""
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "histcheck.py")
    d = tempfile.mkdtemp()
    h = H()
    a = h.w(1, 0, 0, 1, fua=True)
    h.crash(10)
    good = os.path.join(d, "good.jsonl")
    bad = os.path.join(d, "bad.jsonl")
    junk = os.path.join(d, "junk.jsonl")
    with open(good, "w") as f:
        for e in h.ev + [{"type": "invoke", "id": 50, "client": 1, "op": "read", "off": 0,
                          "len": BS, "ts": 11}, {"type": "ok", "id": 50, "ts": 12, "vs": [a]}]:
            f.write(json.dumps(e) + "\n")
    with open(bad, "w") as f:
        for e in h.ev + [{"type": "invoke", "id": 50, "client": 1, "op": "read", "off": 0,
                          "len": BS, "ts": 11}, {"type": "ok", "id": 50, "ts": 12, "vs": [0]}]:
            f.write(json.dumps(e) + "\n")
    with open(junk, "w") as f:
        f.write('{"type":"ok","id":3,"ts":1}\n')
    for path, want in ((good, 0), (bad, 1), (junk, 2)):
        p = subprocess.run([sys.executable, tool, path], capture_output=True, text=True)
        print("histcheck.py %s: exit %d: %s" % (os.path.basename(path), p.returncode,
                                                (p.stdout + p.stderr).strip().splitlines()[-1]))
        if p.returncode != want:
            failures.append("command exit %d for %s, want %d" % (p.returncode, path, want))
    for x in (good, bad, junk):
        os.unlink(x)
    os.rmdir(d)


if __name__ == "__main__":
    hand_built()
    generated()
    broken_models()
    command_line()
    if failures:
        sys.exit("histcheck_cases: %d failed: %s" % (len(failures), "; ".join(failures)))
    print("histcheck_cases: all cases as expected")
