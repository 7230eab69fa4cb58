"""vio_stats_bound -- issue 17: the IO counters of daemon/vio_stats.c were never
freed, so a table keyed by export name grew with every new volume name that
clients ever opened. Now they go with the volume (destroy, rename, snapshot
destroy, pool export) and at most 256 idle volumes keep theirs (least
recently closed dropped first). argv: PORT CONTROL_SOCKET"""
import struct
import sys
import time

from viohelp import Ctl, check, nbd_raw, recvn

port, ctl = int(sys.argv[1]), Ctl(sys.argv[2])


def entries():
    return ctl.call("test.vio_fault", name="tank/keep")["stats_entries"]


def touch(name):
    """One NBD client reads 4 KiB of name, then leaves; wait until caskd closed its handle."""
    s, _ = nbd_raw(port, name)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 1, 0, 4096))
    check(len(recvn(s, 16 + 4096)) == 16 + 4096, "read of %s" % name)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 2, 0, 0))
    s.close()
    for _ in range(6000):
        if not ctl.call("client.list")["clients"]:
            return
        time.sleep(0.01)
    check(False, "the client of %s did not go" % name)


ctl.call("vol.create", name="tank/keep", size=1 << 20)
base = entries()
touch("tank/keep")
check(ctl.call("vol.iostat", name="tank/keep")["ops"]["read"]["count"] == 1, "counted")
check(entries() == base + 1, "an idle volume keeps its counters")

# destroy, rename, snapshot destroy: the counters go with the name
for i in range(100):
    ctl.call("vol.create", name="tank/n%d" % i, size=1 << 20)
    touch("tank/n%d" % i)
    ctl.call("vol.destroy", name="tank/n%d" % i)
check(entries() == base + 1, "100 destroyed volumes left %d entries" % (entries() - base - 1))
ctl.call("vol.create", name="tank/r", size=1 << 20)
touch("tank/r")
ctl.call("snap.create", names=["tank/r@s"])
touch("tank/r@s")
check(entries() == base + 3, "volume and snapshot counted")
ctl.call("snap.destroy", name="tank/r@s")
ctl.call("vol.rename", name="tank/r", new_name="tank/r2")
check(entries() == base + 1, "rename and snapshot destroy left %d entries" % (entries() - base - 1))
check(ctl.call("vol.iostat", name="tank/r2")["ops"]["read"]["count"] == 0, "a renamed volume starts afresh")

# idle volumes that stay: at most 256 keep their counters, the least recently closed go first
for i in range(262):
    ctl.call("vol.create", name="tank/m%d" % i, size=1 << 20)
    touch("tank/m%d" % i)
n = entries()
check(n == 256, "%d entries for 263 idle volumes (want the bound, 256)" % n)
check(ctl.call("vol.iostat", name="tank/keep")["ops"]["read"]["count"] == 0, "the oldest idle entry was dropped")
check(ctl.call("vol.iostat", name="tank/m261")["ops"]["read"]["count"] == 1, "the newest is kept")
# a pool export drops its volumes' counters (another pool's export keeps the table's count to ask)
ctl.call("pool.export", name="tank")
ctl.call("pool.import", paths=[sys.argv[3]])
check(ctl.call("vol.iostat", name="tank/m261")["ops"]["read"]["count"] == 0, "pool export kept counters")
check(entries() == 0, "pool export left %d entries" % entries())
print("stats bound: destroy/rename/snapshot destroy/export free counters; 263 idle volumes -> %d entries" % n)
