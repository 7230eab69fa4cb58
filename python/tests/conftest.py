"""A real caskd for the binding's tests: its own state directory, control
socket and NBD port, a pool on a file; stopped (SIGTERM, must exit 0) and
removed after the tests, also when they fail."""
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
        import cask
        for _ in range(200):
            try:
                cask.Client(self.sock).close()
                return
            except cask.Error:
                if self.proc.poll() is not None:
                    raise RuntimeError("caskd exited at start")
                time.sleep(0.05)
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
    d = Daemon(tmp)
    import cask
    with cask.Client(d.sock) as c:
        c.pool_create("tank", [os.path.join(tmp, "tank0.vdev")], 256 << 20)
    yield d
    rc = d.stop()
    subprocess.run(["rm", "-rf", tmp])
    assert rc == 0, "caskd exited %d on SIGTERM" % rc


@pytest.fixture
def client(daemon):
    import cask
    with cask.Client(daemon.sock) as c:
        yield c
