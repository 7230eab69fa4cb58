"""nbd_holders -- issue 17 item 3: an idle NBD client of any local user used to
block vol destroy, rollback, snap destroy and pool export forever, with no way
to see or drop clients. Now: client.list shows who is connected, client.kill
drops one, a BUSY names the clients holding the object and force disconnects
them. argv: PORT UNIX_NBD_SOCKET CONTROL_SOCKET"""
import os
import socket
import struct
import sys
import time

from viohelp import Ctl, check, fail, nbd_raw, recvn

port, usock, csock = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctl = Ctl(csock)


def nbd_unix(export):
    s = socket.socket(socket.AF_UNIX)
    s.connect(usock)
    h = recvn(s, 18)
    check(h[:16] == b"NBDMAGICIHAVEOPT", "greeting")
    s.sendall(struct.pack(">I", 3))
    name = export.encode()
    payload = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(payload)) + payload)
    while True:
        magic, opt, rtype, rlen = struct.unpack(">QIII", recvn(s, 20))
        if rlen:
            recvn(s, rlen)
        if rtype == 1:
            return s
        check(not rtype & 0x80000000, "GO refused")


def clients():
    return ctl.call("client.list")["clients"]


def wait_listed(export, n=1):
    for _ in range(1200):
        got = [c for c in clients() if c["export"] == export and c["state"] == "serving"]
        if len(got) >= n:
            return got
        time.sleep(0.05)
    fail("no serving client of %s in client.list: %r" % (export, clients()))


def closed(s):
    """The server closed s (reads EOF or a reset), waiting as long as it takes."""
    s.settimeout(30)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def expect_busy(op, want_ids, **args):
    try:
        ctl.call(op, **args)
    except RuntimeError as e:
        msg = str(e)
        check(msg.startswith("BUSY:"), "%s: want BUSY, got %s" % (op, msg))
        for i in want_ids:
            check(("client %d " % i) in msg, "%s: the error does not name client %d: %s" % (op, i, msg))
        check("force" in msg, "%s: the error does not mention force: %s" % (op, msg))
        return msg
    fail("%s succeeded while a client held it" % op)


# 1. client.list: a TCP client and a unix one (uid and pid known for it)
a, _ = nbd_raw(port, "tank/v")
b = nbd_unix("tank/v")
got = wait_listed("tank/v", 2)
tcp = [c for c in got if c["peer"].startswith("127.0.0.1:")]
uni = [c for c in got if c["peer"].startswith("unix#")]
check(len(tcp) == 1 and len(uni) == 1, "one TCP and one unix client: %r" % got)
check("uid" not in tcp[0], "a TCP client has no uid")
check(uni[0]["uid"] == os.geteuid() and uni[0]["pid"] == os.getpid(), "unix peer credentials: %r" % uni[0])
check(tcp[0]["frontend"] == "nbd" and tcp[0]["bytes_in"] > 0 and tcp[0]["bytes_out"] > 0, "counters %r" % tcp[0])
check(tcp[0]["requests"] == 0 and tcp[0]["since"] > 0, "requests and since: %r" % tcp[0])
ids = sorted(c["id"] for c in got)

# 2. vol.destroy names both holders; nothing destroyed
msg = expect_busy("vol.destroy", ids, name="tank/v")
check(ctl.call("vol.get", name="tank/v")["name"] == "tank/v", "the volume survived the refused destroy")

# 3. client.kill one: its socket closes, the list drops it; an unknown id is CLIENT_NOT_FOUND
ctl.call("client.kill", id=tcp[0]["id"])
check(closed(a), "the killed client's socket was not closed")
check(tcp[0]["id"] not in [c["id"] for c in clients()], "a killed client is still listed")
try:
    ctl.call("client.kill", id=tcp[0]["id"])
    fail("client.kill of a gone client succeeded")
except RuntimeError as e:
    check(str(e).startswith("CLIENT_NOT_FOUND:"), "kill of a gone client: %s" % e)

# 4. snap.destroy of an open snapshot: BUSY naming the client; force disconnects it
ctl.call("snap.create", names=["tank/v@s1", "tank/v@s2"])
c = nbd_unix("tank/v@s2")
sid = wait_listed("tank/v@s2")[0]["id"]
expect_busy("snap.destroy", [sid], name="tank/v@s2")
ctl.call("snap.destroy", name="tank/v@s2", force=True)
check(closed(c), "snap.destroy force left its client connected")
check(sid not in [x["id"] for x in clients()], "snap.destroy force: client still listed")

# 5. vol.rollback: the unix client b holds tank/v (a snapshot client would not count)
keep = nbd_unix("tank/v@s1")
expect_busy("vol.rollback", [uni[0]["id"]], name="tank/v@s1")
ctl.call("vol.rollback", name="tank/v@s1", force=True)
check(closed(b), "vol.rollback force left its client connected")
kid = wait_listed("tank/v@s1")[0]["id"]
check(kid in [x["id"] for x in clients()], "vol.rollback force disconnected a client of a snapshot")

# 6. pool.export: every client of the pool, named; force drops them and exports
d, _ = nbd_raw(port, "tank/w")
did = wait_listed("tank/w")[0]["id"]
expect_busy("pool.export", [kid, did], name="tank")
ctl.call("pool.export", name="tank", force=True)
check(closed(keep) and closed(d), "pool.export force left clients connected")
check(clients() == [], "clients listed after pool.export force: %r" % clients())
print("holders: list, kill, BUSY naming holders and force for vol.destroy, snap.destroy, vol.rollback, pool.export")
