"""A real caskd for the binding's tests: its own state directory, control
socket and NBD port, a pool on a file; stopped (SIGTERM, must exit 0) and
removed after the tests, also when they fail."""
import functools
import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

BUILD = os.path.abspath(os.environ.get("CASK_BUILD", "build"))
sys.path.insert(0, os.path.join(BUILD, "python"))

import cask  # noqa: E402

# What the tests called and what they saw raised, so that the last test can
# check that every call and every exception class of the binding was used.
# Only calls made by the tests count, not the binding's calls to itself.
CALLED = set()
RAISED = set()


def _outside(depth=2):
    return not sys._getframe(depth).f_globals.get("__name__", "").startswith("cask")


def _recorded_gen(it):
    try:
        return (yield from it)
    except cask.Error as e:
        RAISED.add(type(e))
        raise


def _wrap(qual, fn):
    @functools.wraps(fn)
    def call(*a, **kw):
        outer = _outside()
        if outer:
            CALLED.add(qual)
        try:
            r = fn(*a, **kw)
        except cask.Error as e:
            if outer:
                RAISED.add(type(e))
            raise
        if outer and (inspect.isgenerator(r) or qual.endswith("__await__")):
            return _recorded_gen(r)
        return r
    return call


def public_api():
    """The binding's calls: module functions, Client and Job methods and properties."""
    names = {"lib_version"}
    for cls in (cask.Client, cask.Job):
        for n, v in vars(cls).items():
            if (not n.startswith("_") or n in ("__enter__", "__exit__", "__await__") or
                    (cls is cask.Client and n == "__init__")) and \
                    (callable(v) or isinstance(v, property)):
                names.add("%s.%s" % (cls.__name__, n))
    return names


def _record():
    for cls in (cask.Client, cask.Job):
        for n, v in list(vars(cls).items()):
            q = "%s.%s" % (cls.__name__, n)
            if q not in public_api():
                continue
            if isinstance(v, property):
                setattr(cls, n, property(_wrap(q, v.fget)))
            else:
                setattr(cls, n, _wrap(q, v))
    cask.lib_version = _wrap("lib_version", cask.lib_version)


_record()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    def __init__(self, tmp):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "run", "caskd.sock")
        self.port = free_port()
        self.log = open(os.path.join(tmp, "caskd.log"), "w")
        self.proc = subprocess.Popen([os.path.join(BUILD, "caskd"), "--state", os.path.join(tmp, "state"),
                                      "--socket", self.sock, "--nbd", "127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=self.log)
        for _ in range(200):
            try:
                cask.Client(self.sock).close()
                return
            except cask.Error:
                if self.proc.poll() is not None:
                    self.log.close()
                    raise RuntimeError("caskd exited at start")
                time.sleep(0.05)
        self.proc.kill()                                 # ours: end it before giving up
        self.proc.wait()
        self.log.close()
        raise RuntimeError("caskd did not come up")

    def uri(self, name):
        return "nbd://127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.log.close()
        return rc


@pytest.fixture(scope="session")
def daemon():
    tmp = tempfile.mkdtemp(prefix="cask-py-")
    try:
        d = Daemon(tmp)
        try:
            with cask.Client(d.sock) as c:
                c.pool_create("tank", [os.path.join(tmp, "tank0.vdev")], 256 << 20)
            yield d
        finally:
            rc = d.stop()
            assert rc == 0, "caskd exited %d on SIGTERM" % rc
    finally:
        subprocess.run(["rm", "-rf", tmp])


@pytest.fixture
def client(daemon):
    with cask.Client(daemon.sock) as c:
        yield c
