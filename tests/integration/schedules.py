"""schedules.py -- a simulated year of snapshot policies against a model.

Driven by schedules.sh on a caskd started with --test-ops --sched-clock: the
scheduler's clock moves only by test.sched_clock, which also runs a pass, so
a year runs in seconds and no assertion depends on the wall clock.

The model is written here from docs/manifests.md, independently of
daemon/sched.c: a pass at time t takes one snapshot at the slot t - t % every
when that slot is newer than the newest automatic snapshot; then it keeps the
newest `keep` and, per retain count, the oldest snapshot of each of that many
newest hours/days/ISO weeks/months (UTC) that have one, plus every held or
cloned snapshot; everything else automatic goes. After every step the
automatic snapshots caskd has must be exactly the model's.

usage: schedules.py SOCKET POOL T0 STATEFILE   (prints the clock it ended at)
"""
import calendar
import json
import random
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from viohelp import Ctl, check, fail  # noqa: E402

sock, pool, t0, statefile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctl = Ctl(sock)


def slot_name(t):
    return time.strftime("auto-%Y-%m-%dT%H:%MZ", time.gmtime(t))


def period(kind, t):
    if kind == "hourly":
        return t // 3600
    if kind == "daily":
        return t // 86400
    if kind == "weekly":
        # ISO weeks start on Monday; 1970-01-05 was the first Monday
        return (t // 86400 - 4) // 7
    g = time.gmtime(t)
    return g.tm_year * 12 + g.tm_mon


class Model:
    def __init__(self, every, keep, retain):
        self.set_policy(every, keep, retain)
        self.snaps = set()      # slot times of the automatic snapshots
        self.pinned = set()     # held or cloned: never pruned

    def set_policy(self, every, keep, retain):
        self.every, self.keep, self.retain = every, keep, retain

    def kept(self):
        s = sorted(self.snaps)
        k = set(s[-self.keep:]) if self.keep else set()
        for kind, n in self.retain.items():
            if not n:
                continue
            oldest = {}
            for t in s:
                oldest.setdefault(period(kind, t), t)
            for p in sorted(oldest, reverse=True)[:n]:
                k.add(oldest[p])
        return k | (self.pinned & self.snaps)

    def step(self, now):
        slot = now - now % self.every
        if not self.snaps or slot > max(self.snaps):
            self.snaps.add(slot)
        self.snaps = self.kept()


def actual(vol):
    """slot times of vol's automatic snapshots, as caskd lists them"""
    out = set()
    for s in ctl.call("snap.list", name="%s/%s" % (pool, vol))["snapshots"]:
        snap = s["name"].split("@", 1)[1]
        if snap.startswith("auto-") and s.get("automatic"):
            out.add(calendar.timegm(time.strptime(snap, "auto-%Y-%m-%dT%H:%MZ")))
    return out


def compare(models, now, what):
    for vol, m in models.items():
        got = actual(vol)
        if got != m.snaps:
            fail("%s at %s: %s has %s automatic snapshots, the model %s; only caskd's: %s; only the "
                 "model's: %s" % (what, slot_name(now), vol, len(got), len(m.snaps),
                                  sorted(slot_name(t) for t in got - m.snaps),
                                  sorted(slot_name(t) for t in m.snaps - got)))


def sched_set(vol, every_min, keep, retain):
    pol = {"every_min": every_min, "keep": keep}
    pol.update(retain)
    ctl.call("sched.set", name="%s/%s" % (pool, vol), policy=pol)


def clock(t):
    return ctl.call("test.sched_clock", time=t)


YEAR_RETAIN = {"daily": 7, "weekly": 4, "monthly": 6}
models = {"a": Model(3600, 4, YEAR_RETAIN), "b": Model(3600, 4, YEAR_RETAIN)}
rng = random.Random(20261202)
now = t0
r = clock(now)
for m in models.values():
    m.step(now)
compare(models, now, "start")
# a and b have the same schedule: a pass takes both in one instant (one txg)
now += 3600
clock(now)
for m in models.values():
    m.step(now)
compare(models, now, "the second hour")
txg = {s["name"].split("/")[-1]: s["txg"] for s in ctl.call("snap.list", name=pool)["snapshots"]}
check(txg.get("a@" + slot_name(now)) == txg.get("b@" + slot_name(now)) is not None,
      "a's and b's automatic snapshots of one slot are not one instant: %s" % txg)

steps = 0
backwards = 0
end = t0 + 365 * 86400
held = cloned = None
changed_b = False
while now < end:
    x = rng.random()
    # mostly on time, sometimes late, sometimes an outage of hours or days
    dt = 3600 if x < 0.55 else rng.choice([60, 1800, 7200, 5 * 3600, 13 * 3600, 25 * 3600, 3 * 86400])
    now += dt
    clock(now)
    for m in models.values():
        m.step(now)
    steps += 1
    compare(models, now, "step %d" % steps)
    if steps == 40 and held is None:
        # hold the oldest automatic snapshot a has now, and clone the next: they must survive pruning
        snaps = sorted(models["a"].snaps)
        held, cloned = snaps[0], snaps[1]
        ctl.call("snap.hold", tag="keepme", names=["%s/a@%s" % (pool, slot_name(held))])
        ctl.call("vol.clone", name="%s/a@%s" % (pool, slot_name(cloned)), new_name="%s/a-clone" % pool)
        models["a"].pinned |= {held, cloned}
    if steps % 97 == 0:
        # the clock goes back five hours, a pass runs, then it returns: no duplicate, no wrong prune
        back = now - 5 * 3600
        clock(back)
        for m in models.values():
            m.step(back)
        compare(models, back, "clock back at step %d" % steps)
        backwards += 1
        clock(now)
        for m in models.values():
            m.step(now)
    if steps == 200 and not changed_b:
        # a changed policy takes effect at the next pass, without a restart
        sched_set("b", 120, 3, {"hourly": 5})
        models["b"].set_policy(7200, 3, {"hourly": 5})
        clock(now)
        models["b"].step(now)
        changed_b = True
compare(models, now, "the end")
a = models["a"]
check(held in a.snaps and cloned in a.snaps, "the held or the cloned snapshot was pruned")
# hand-made snapshots stay, whatever their names
names = {s["name"].split("/", 1)[1] for s in ctl.call("snap.list", name=pool)["snapshots"]}
for n in ("a@manual", "a@auto-2025-12-31T00:00Z"):
    check(n in names, "the hand-made snapshot %s was pruned" % n)
months = {time.gmtime(t)[:2] for t in a.snaps}
print("simulated a year in %d steps (%d with the clock going back): a keeps %d automatic snapshots "
      "(%d months), b %d; held %s and cloned %s kept" % (steps, backwards, len(a.snaps), len(months),
                                                       len(models["b"].snaps), slot_name(held),
                                                       slot_name(cloned)))
check(len(a.snaps) >= 4 + 6, "too few kept: %d" % len(a.snaps))
json.dump({"now": now, "a": sorted(a.snaps), "b": sorted(models["b"].snaps)}, open(statefile, "w"))
print(now)
