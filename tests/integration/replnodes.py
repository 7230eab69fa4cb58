#!/usr/bin/python3
"""replnodes.py -- several real caskd processes on loopback for the
replication tests (repl_takeover.sh, repl_restart.sh, repl_snapshots.sh).

    from replnodes import Cluster
    cl = Cluster(tdir, build, ["a", "b", "c"], daemon_build)   # a peer key, free ports;
                                                 # caskd from daemon_build (the sanitizer build) if given
    a = cl["a"]; a.start(); a.cask("pool", "create", "tank", path, "--size", "256M")
    a.ctl("vol.status", name="tank/v")           # the control protocol (viohelp.Ctl)
    a.kill9(); a.start(); a.stop()               # the same state directory again
    a.uri("tank/v")                              # nbd://127.0.0.1:PORT/tank/v
    a.args, a.daemon_env                         # more caskd arguments / environment (before start)
    checksum(a, "tank/v@s")                      # `cask vol checksum` on that node
    start_three(cl)                              # a, b, c with pools tank, p2, p3; tank/v 3-way on A
    kill_under_load(cl, rec, seed, recover)      # kill -9 of A under three history-recording clients
    wait_applied(a, "tank/v")                    # every in-sync member applied all (before reading one directly)
    digest(uri, size)                            # sha256 of the volume's bytes read over NBD
    cl.close()                                   # every caskd still running: SIGTERM, then SIGKILL
    cl.sanitizer_reports()                       # sanitizer reports in any caskd log (a test fails on them)

Network namespaces (docs/replication.md section 13.1): Cluster(...,
netns=True) puts every caskd in its own namespace, joined to a bridge in
the test's namespace by a veth pair (10.X.Y.1 the bridge, 10.X.Y.10+i the
node); cl.partition("a") / cl.heal("a") set the node's veth down / up (a
hard partition: nothing reaches it, nothing leaves it); node.run_in(argv)
runs a command inside the node's namespace (an NBD client of a
partitioned node). netns="auto" uses them when `ip netns` works (root)
and falls back to loopback, printing why; cl.netns says which. Namespaces,
veths and the bridge are removed by close() (and at exit).

Each node keeps its state directory, control socket, NBD port and
--replica-listen port across restarts; its log is TDIR/caskd_NAME.log.
"""
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from viohelp import Ctl  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


class NetNS:
    """A bridge in this namespace and one namespace + veth pair per node."""

    def __init__(self, names):
        import random
        self.tag = "%05x" % random.randrange(1 << 20)
        used = _ip("-4", "addr").stdout
        for _ in range(50):
            self.net = "10.%d.%d" % (random.randrange(200, 250), random.randrange(1, 255))
            if self.net + "." not in used:
                break
        self.br = "ckb" + self.tag
        self.ns, self.host, self.addr = {}, {}, {}
        self.created = []
        try:
            _ip("link", "add", self.br, "type", "bridge")
            self.created.append(("link", self.br))
            _ip("addr", "add", self.net + ".1/24", "dev", self.br)
            _ip("link", "set", self.br, "up")
            for i, n in enumerate(names):
                ns, h, v = "cask%s%s" % (self.tag, n), "ck%s%dh" % (self.tag, i), "ck%s%dn" % (self.tag, i)
                _ip("netns", "add", ns)
                self.created.append(("netns", ns))
                _ip("link", "add", h, "type", "veth", "peer", "name", v)
                self.created.append(("link", h))
                _ip("link", "set", v, "netns", ns)
                _ip("link", "set", h, "master", self.br)
                _ip("link", "set", h, "up")
                _ip("-n", ns, "addr", "add", "%s.%d/24" % (self.net, 10 + i), "dev", v)
                _ip("-n", ns, "link", "set", v, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                self.ns[n], self.host[n], self.addr[n] = ns, h, "%s.%d" % (self.net, 10 + i)
        except BaseException:
            self.remove()
            raise

    def remove(self):
        for kind, name in reversed(self.created):
            if kind == "netns":
                _ip("netns", "del", name, check=False)
            else:
                _ip("link", "del", name, check=False)
        self.created = []

    @staticmethod
    def unavailable():
        """Why namespaces cannot be used here, or None."""
        if os.geteuid() != 0:
            return "not root"
        try:
            r = _ip("netns", "list", check=False)
        except OSError as e:
            return "no ip command: %s" % e
        if r.returncode != 0:
            return "ip netns: %s" % r.stderr.strip()
        return None


class _AddrInUse(Exception):
    """caskd exited at start because a port it was given is taken."""


class Node:
    def __init__(self, cl, name):
        self.cl, self.name = cl, name
        self.host = cl.nsnet.addr[name] if cl.nsnet else "127.0.0.1"
        self.state = os.path.join(cl.t, "state_" + name)
        self.sock = os.path.join(cl.t, "run_" + name, "caskd.sock")
        self.port, self.rport = free_port(), free_port()
        self.raddr = "%s:%d" % (self.host, self.rport)
        self.log = os.path.join(cl.t, "caskd_%s.log" % name)
        self.proc = None
        self.args = []                          # more caskd arguments (e.g. --replica-advertise, --test-ops)
        self.daemon_env = {}                    # more environment for caskd

    def start(self, wait=True):
        """Start caskd; wait until it answers. Ports come from free_port(), which
        another process may take before caskd binds them: a first start that
        fails with EADDRINUSE picks new ports, a restart (its replica address is
        recorded by its peers) tries the same ones again, a few times."""
        assert self.proc is None or self.proc.poll() is not None
        for attempt in range(8):
            try:
                return self._start_once()
            except _AddrInUse:
                if attempt == 7:
                    raise RuntimeError("caskd %s: its ports stayed in use: %s" % (self.name, self.tail()))
                if not getattr(self, "started_once", False):
                    self.port, self.rport = free_port(), free_port()
                    self.raddr = "%s:%d" % (self.host, self.rport)
                else:
                    time.sleep(0.5)

    def _start_once(self):
        mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen(self.ns_prefix() + [self.cl.daemon_build + "/caskd", "--state", self.state,
                                          "--socket", self.sock, "--nbd", "%s:%d" % (self.host, self.port), "--peer-key", self.cl.key,
                                          "--replica-listen", self.raddr] + list(self.args),
                                         stdout=lf, stderr=lf, env=dict(os.environ, **self.daemon_env))
        end = time.monotonic() + 60             # a sanitizer caskd on a loaded machine; a bound, not a measurement
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                with open(self.log, "rb") as f:
                    f.seek(mark)
                    if b"Address already in use" in f.read():
                        raise _AddrInUse()
                raise RuntimeError("caskd %s exited at start: %s" % (self.name, self.tail()))
            if os.path.exists(self.sock) and self.cask_rc("version") == 0:
                self.started_once = True
                return self
            time.sleep(0.05)
        raise RuntimeError("caskd %s did not come up in 60 s: %s" % (self.name, self.tail()))

    def ns_prefix(self):
        return ["ip", "netns", "exec", self.cl.nsnet.ns[self.name]] if self.cl.nsnet else []

    def run_in(self, argv, **kw):
        """Run argv inside this node's namespace (or here, on loopback)."""
        return subprocess.run(self.ns_prefix() + list(argv), **kw)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("caskd %s did not stop on SIGTERM" % self.name)
            if rc != 0:
                raise RuntimeError("caskd %s exited %d on SIGTERM" % (self.name, rc))

    def env(self):
        e = dict(os.environ)
        e["CASK_SOCKET"] = self.sock
        return e

    def cask_rc(self, *args):
        return subprocess.run([self.cl.build + "/cask"] + list(args), env=self.env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode

    def cask(self, *args, check=True):
        r = subprocess.run([self.cl.build + "/cask"] + list(args), env=self.env(), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("cask %s on %s: %s" % (" ".join(args), self.name, r.stderr.strip()))
        return r

    def ctl(self, op, **args):
        c = Ctl(self.sock)
        try:
            return c.call(op, **args)
        finally:
            c.s.close()

    def status(self, name):
        return self.ctl("vol.status", name=name)

    def wait_state(self, name, states, timeout=60):
        """Poll vol.status until its state is one of states; the last status."""
        end = time.monotonic() + timeout
        st = None
        while time.monotonic() < end:
            try:
                st = self.status(name)
                if st.get("state") in states:
                    return st
            except RuntimeError as e:
                st = {"error": str(e)}
            time.sleep(0.1)
        raise RuntimeError("%s on %s: state never became %s: %s" % (name, self.name, states, st))

    def uri(self, vol):
        return "nbd://%s:%d/%s" % (self.host, self.port, vol)

    def tail(self, n=30):
        try:
            with open(self.log, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    def __init__(self, tdir, build, names, daemon_build=None, netns=False):
        self.t, self.build = tdir, build
        self.nsnet = None
        if netns:
            why = NetNS.unavailable()
            if why is None:
                self.nsnet = NetNS(names)
                import atexit
                atexit.register(self.nsnet.remove)
            elif netns != "auto":
                raise RuntimeError("network namespaces unavailable: " + why)
            else:
                print("replnodes: network namespaces unavailable (%s): loopback ports" % why)
        self.netns = self.nsnet is not None
        self.daemon_build = daemon_build or build  # CASK_ASAN_BUILD: the sanitizer caskd
        self.key = os.path.join(tdir, "peer.key")
        if not os.path.exists(self.key):
            with open(self.key, "wb") as f:
                f.write(os.urandom(32).hex().encode() + b"\n")
            os.chmod(self.key, 0o600)
        self.nodes = {n: Node(self, n) for n in names}

    def __getitem__(self, n):
        return self.nodes[n]

    def partition(self, name):
        """A hard partition: the node's veth goes down (namespaces only)."""
        _ip("link", "set", self.nsnet.host[name], "down")

    def heal(self, name):
        _ip("link", "set", self.nsnet.host[name], "up")

    def close(self):
        for n in self.nodes.values():
            if n.alive():
                n.proc.send_signal(signal.SIGTERM)
                try:
                    n.proc.wait(30)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait()
        if self.nsnet is not None:
            self.nsnet.remove()

    def sanitizer_reports(self):
        """Lines of AddressSanitizer/LeakSanitizer/UBSan reports in any caskd log."""
        out = []
        for n in self.nodes.values():
            try:
                with open(n.log, errors="replace") as f:
                    out += ["%s: %s" % (n.name, l.strip()) for l in f
                            if "Sanitizer" in l and "ERROR" in l or "runtime error" in l]
            except OSError:
                pass
        return out

    def logs(self):
        return "\n".join("--- caskd %s ---\n%s" % (n.name, n.tail()) for n in self.nodes.values())


def start_three(cl, size="16M"):
    """Start nodes a, b, c of cl with pools tank, p2, p3 (256M each) and create
    tank/v on A, 3-way with its replicas p2/v on B and p3/v on C (the setup of
    repl_restart.sh and repl_takeover.sh)."""
    for n, pool in (("a", "tank"), ("b", "p2"), ("c", "p3")):
        cl[n].start()
        cl[n].cask("pool", "create", pool, os.path.join(cl.t, "%s.vdev" % pool), "--size", "256M")
    cl["a"].cask("vol", "create", "tank/v", "--size", size, "--replica", cl["b"].raddr + "/p2",
                 "--replica", cl["c"].raddr + "/p3")


def kill_under_load(cl, rec, seed, recover, nblocks=48, ops=(300, 200), kill_at=120):
    """kill -9 of A under load: three clients of A's tank/v recording a history
    (rec: a tests/tools/histrec.py Recorder) write, read and flush blocks
    0..nblocks-1 at random (seeded); at client 1's op kill_at A is killed
    (event "failover" in the history). Then recover() -- the restart or the
    takeover -- runs and returns the URI the clients go on through, ops[1]
    more ops each on a new connection. Returns when every client is done."""
    import random
    import threading
    import histrec
    killed, back = threading.Event(), threading.Event()
    where = {}

    def worker(n):
        rnd = random.Random(int(seed) * 10 + n)
        for part in (0, 1):
            cli = rec.client(n + 10 * part, where.get("uri", cl["a"].uri("tank/v")))
            for i in range(ops[part]):
                try:
                    cli.random_op(rnd, nblocks)
                except histrec.ClientDead:
                    break
                if part == 0 and n == 1 and i == kill_at:
                    cl["a"].kill9()
                    rec.event("failover")
                    killed.set()
            try:
                cli.close()
            except histrec.ClientDead:
                pass
            if part == 0:
                back.wait(600)                  # a bound on waiting for recover(), not a time check
    ths = [threading.Thread(target=worker, args=(n,)) for n in (1, 2, 3)]
    for t in ths:
        t.start()
    try:
        assert killed.wait(600), "client 1 never reached op %d: A was not killed" % kill_at
        where["uri"] = recover()
    finally:
        back.set()
        for t in ths:
            t.join()


def wait_applied(node, vol, timeout=120):
    """Poll vol.status on the controller node until every in-sync member has
    applied every operation numbered so far (acked_seq == seq); its status.
    Only then is a read of a member's own export (or its checksum) a read of
    the volume: at quorum a write is acknowledged once a quorum applied it,
    and a slow member applies it later (on a loaded machine, later still)."""
    end = time.monotonic() + timeout
    while True:
        st = node.status(vol)
        behind = [r for r in st["replicas"] if r["state"] == "in-sync" and r["acked_seq"] < st["seq"]]
        if not behind:
            return st
        if time.monotonic() > end:
            raise RuntimeError("%s on %s: in-sync members still behind seq %d after %d s: %s"
                               % (vol, node.name, st["seq"], timeout, behind))
        time.sleep(0.05)


def checksum(node, name):
    """`cask vol checksum POOL/VOL[@SNAP]` on that node: the digest of the logical contents."""
    import json
    return json.loads(node.cask("vol", "checksum", name, "-j").stdout)["digest"]


def digest(uri, size, chunk=1 << 20):
    """sha256 of a volume's logical bytes, read over NBD (holes as zeros)."""
    import nbd
    h = nbd.NBD()
    h.connect_uri(uri)
    d = hashlib.sha256()
    for off in range(0, size, chunk):
        d.update(h.pread(min(chunk, size - off), off))
    h.shutdown()
    return d.hexdigest()
