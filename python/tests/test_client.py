"""The Python binding against a real caskd: every call, the exception
classes the daemon's codes select, send/receive through file objects and
fds, jobs (wait, progress, cancel, asyncio), threads sharing one client."""
import asyncio
import os
import threading

import pytest

import cask


def nbd_read(daemon, name, length, offset=0):
    import nbd
    h = nbd.NBD()
    h.connect_uri(daemon.uri(name))
    try:
        return h.pread(length, offset)
    finally:
        h.shutdown()


def nbd_write(daemon, name, data, offset=0):
    import nbd
    h = nbd.NBD()
    h.connect_uri(daemon.uri(name))
    try:
        h.pwrite(data, offset)
        h.flush()
    finally:
        h.shutdown()


def test_capabilities(client):
    caps = client.capabilities()
    assert caps["server"] == "caskd" and caps["protocol"] == 1
    assert {"snapshots", "holds", "send", "recv", "jobs", "vol.diff"} <= caps["features"]
    assert cask.lib_version() == "1.0.0"


def test_volumes(client):
    client.vol_create("tank/a", 8 << 20, compression="zstd")
    client.vol_create(b"tank/b", 4 << 20)              # bytes names work too
    names = [v["name"] for v in client.volumes("tank")]
    assert "tank/a" in names and "tank/b" in names
    v = client.vol_get("tank/a")
    assert v["size"] == 8 << 20 and v["compression"] == "zstd" and v["origin"] == ""
    assert client.vol_get("tank/a")["sources"] == {"compression": "local", "checksum": "default",
                                                   "sync": "default"}
    client.vol_set("tank/a", {"checksum": "sha256"}, sync="always")
    v = client.vol_get("tank/a")
    assert v["checksum"] == "sha256" and v["sync"] == "always"
    assert v["sources"]["sync"] == "local" and v["sources"]["checksum"] == "local"
    with pytest.raises(cask.InvalidArgument):            # all or none
        client.vol_set("tank/a", sync="standard", compression="gzip")
    assert client.vol_get("tank/a")["sync"] == "always"
    client.vol_inherit("tank/a", "sync")
    v = client.vol_get("tank/a")
    assert v["sync"] == "standard" and v["sources"]["sync"] == "default"
    client.vol_resize("tank/b", 6 << 20)
    client.vol_rename("tank/b", "tank/b2")
    assert client.vol_get("tank/b2")["size"] == 6 << 20
    with pytest.raises(cask.VolumeExists) as e:
        client.vol_create("tank/a", 1 << 20)
    assert e.value.errno == 17 and e.value.code == "VOLUME_EXISTS" and e.value.name == "tank/a"
    with pytest.raises(cask.VolumeNotFound):
        client.vol_get("tank/nope")
    with pytest.raises(cask.PoolNotFound):
        client.vol_get("nopool/x")
    with pytest.raises(cask.InvalidArgument):
        client.vol_create("tank/bad name", 1 << 20)
    with pytest.raises(cask.InvalidArgument):
        client.vol_set("tank/a", compression="gzip")
    with pytest.raises(TypeError):
        client.vol_get(42)
    client.vol_destroy("tank/b2")
    client.vol_destroy("tank/a")


def test_pools(client, daemon):
    pools = {p["name"]: p for p in client.pools()}
    assert pools["tank"]["state"] == "ONLINE" and pools["tank"]["size"] > 0
    st = client.pool_status("tank")
    assert st["vdevs"] and st["vdevs"][0].endswith("tank0.vdev")
    with pytest.raises(cask.PoolNotFound):
        client.pool_status("nopool")
    with pytest.raises(cask.PoolExists):
        client.pool_create("tank", [os.path.join(daemon.tmp, "other.vdev")], 64 << 20)
    client.pool_create("spare", [os.path.join(daemon.tmp, "spare.vdev")], 64 << 20)
    client.vol_create("spare/v", 1 << 20, sync="always")
    client.vol_set("spare/v", checksum="sha256")
    client.pool_export("spare")
    assert client.pool_import("spare", paths=[os.path.join(daemon.tmp, "spare.vdev")]) == "spare"
    v = client.vol_get("spare/v")                        # property sources are kept on disk
    assert v["sources"] == {"compression": "default", "checksum": "local", "sync": "local"}
    assert v["sync"] == "always" and v["checksum"] == "sha256"
    client.pool_destroy("spare")


def test_snapshots_holds_clones(client, daemon):
    client.vol_create("tank/s", 4 << 20)
    client.vol_create("tank/t", 4 << 20)
    nbd_write(daemon, "tank/s", b"x" * 65536)
    client.snapshot("tank/s@1", "tank/t@1")             # one instant
    snaps = {s["name"]: s for s in client.snapshots("tank/s")}
    assert "tank/s@1" in snaps and snaps["tank/s@1"]["holds"] == 0
    with pytest.raises(cask.MultipleErrors) as e:        # all or none, each refusal named
        client.snapshot("tank/s@2", "tank/nope@2", "tank/s@1")
    assert set(e.value.errors) == {"tank/nope@2", "tank/s@1"}
    assert isinstance(e.value.errors["tank/nope@2"], cask.VolumeNotFound)
    assert isinstance(e.value.errors["tank/s@1"], cask.SnapshotExists)
    with pytest.raises(cask.MultipleErrors) as e:
        client.hold("t", "tank/s@1", "tank/s@nope")
    assert isinstance(e.value.errors["tank/s@nope"], cask.SnapshotNotFound)
    assert not any(s["name"] == "tank/s@2" for s in client.snapshots())
    client.hold("keep", "tank/s@1", "tank/t@1")
    assert [(h["snapshot"], h["tag"]) for h in client.holds("tank/s@1")] == [("tank/s@1", "keep")]
    with pytest.raises(cask.HoldExists):
        client.hold("keep", "tank/s@1")
    with pytest.raises(cask.SnapshotHeld):
        client.snap_destroy("tank/s@1")
    with pytest.raises(cask.HoldNotFound):
        client.release("other", "tank/s@1")
    client.release("keep", "tank/s@1", "tank/t@1")
    client.snap_rename("tank/s@1", "one")
    nbd_write(daemon, "tank/s", b"y" * 4096)
    client.snapshot("tank/s@2")
    with pytest.raises(cask.HasNewerSnapshots):
        client.vol_rollback("tank/s@one")
    client.vol_clone("tank/s@one", "tank/c")
    assert client.vol_get("tank/c")["origin"] == "tank/s@one"
    with pytest.raises(cask.NotAClone):
        client.vol_promote("tank/s")
    with pytest.raises(cask.HasSnapshots):
        client.vol_destroy("tank/s")
    with pytest.raises(cask.HasClones):
        client.vol_destroy("tank/s", recursive=True)
    client.vol_promote("tank/c")
    assert client.vol_get("tank/s")["origin"] == "tank/c@one"
    d = list(client.diff("tank/c@one", "tank/s@2"))
    assert d == [(0, 4096, "data")], d
    client.vol_destroy("tank/c", dependents=True)
    client.vol_destroy("tank/t", recursive=True)
    assert not any(v["name"] in ("tank/s", "tank/c", "tank/t") for v in client.volumes())


def test_send_recv_jobs(client, daemon, tmp_path):
    client.vol_create("tank/src", 8 << 20)
    data = os.urandom(1 << 20)
    nbd_write(daemon, "tank/src", data, 1 << 20)
    client.snapshot("tank/src@s1")
    path = tmp_path / "s1.stream"
    with open(path, "wb") as f:                          # a file object
        assert client.send("tank/src@s1", f) == "tank/src@s1"
    assert path.stat().st_size > 1 << 20
    fd = os.open(path, os.O_RDONLY)                      # an int fd
    try:
        assert client.recv("tank/dst", fd) == "tank/dst@s1"
    finally:
        os.close(fd)
    assert nbd_read(daemon, "tank/dst@s1", 1 << 20, 1 << 20) == data
    # incremental, not waiting: a Job with progress
    nbd_write(daemon, "tank/src", b"z" * 8192)
    client.snapshot("tank/src@s2")
    path2 = tmp_path / "s2.stream"
    with open(path2, "wb") as f:
        job = client.send("tank/src@s2", f, base="@s1", wait=False)
        assert isinstance(job, cask.Job)
        job.wait(timeout=30)
        done, total = job.progress
        assert done == total == path2.stat().st_size
    with open(path2, "rb") as f:
        job = client.recv("tank/dst", f, wait=False)
        assert asyncio.run(_await(job)) == "tank/dst@s2"
    assert nbd_read(daemon, "tank/dst", 8192) == b"z" * 8192
    # bad streams
    bad = tmp_path / "bad.stream"
    bad.write_bytes(b"not a stream at all" * 10)
    with open(bad, "rb") as f, pytest.raises(cask.InvalidArgument):
        client.recv("tank/x", f)
    trunc = tmp_path / "trunc.stream"
    trunc.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with open(trunc, "rb") as f, pytest.raises(cask.BadStream) as e:
        client.recv("tank/half", f)
    assert e.value.code == "TRUNCATED_STREAM"
    token = client.vol_get("tank/half")["receive_resume_token"]
    assert token.startswith("1-")
    r, w = os.pipe()
    job = client.send(None, w, token=token, wait=False)
    os.close(w)
    try:
        assert client.recv("tank/half", r) == "tank/half@s1"
    finally:
        os.close(r)
    job.wait()
    with open(path2, "rb") as f, pytest.raises(cask.WrongBase):
        client.recv("tank/dst", f)                       # dst's newest is s2 already


async def _await(job):
    return await job


def test_cancel_and_threads(client, daemon):
    r, w = os.pipe()
    try:
        job = client.recv("tank/never", r, wait=False)
        assert job.state == "running"
        import select
        pfd = job.pollfd()
        try:
            assert select.select([pfd], [], [], 0.3)[0] == []    # still running
            job.cancel()
            assert select.select([pfd], [], [], 10)[0] == [pfd]  # readable once it ends
        finally:
            os.close(pfd)
        with pytest.raises(cask.Cancelled):
            job.wait(timeout=10)
    finally:
        os.close(r)
        os.close(w)
    assert not any(v["name"] == "tank/never" for v in client.volumes())
    r, w = os.pipe()
    try:
        with pytest.raises(cask.TimedOut) as e:         # waits at most the timeout; the job goes on
            client.recv("tank/never", r, timeout=0.3)
        assert e.value.job.state == "running"
        e.value.job.cancel()
        with pytest.raises(cask.Cancelled):
            e.value.job.wait()
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(cask.JobNotFound):
        client.job(10 ** 9)
    # several threads on one client
    client.vol_create("tank/th", 4 << 20)
    errors = []

    def work(i):
        try:
            for k in range(20):
                assert client.vol_get("tank/th")["size"] == 4 << 20
                list(client.snapshots())
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    client.vol_destroy("tank/th")


def test_not_running(tmp_path):
    with pytest.raises(cask.NotRunning) as e:
        cask.Client(str(tmp_path / "no.sock"))
    assert e.value.errno in (2, 111)
