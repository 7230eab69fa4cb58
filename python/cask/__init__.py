"""cask -- the Python binding of libcask (docs/client-api.md).

    import cask
    with cask.Client() as c:                      # $CASK_SOCKET or the default socket
        c.vol_create("tank/db", 20 << 30, compression="zstd")
        c.snapshot("tank/db@before", "tank/wal@before")    # one instant, all or none
        for s in c.snapshots("tank/db"):
            print(s["name"], s["used"])
        with open("db.stream", "wb") as f:
            c.send("tank/db@before", f)           # runs in caskd as a job; waits
        job = c.send("tank/db@before", f, wait=False)
        job.progress                               # (bytes done, bytes expected)

Names are str or bytes. Listings and diffs are generators of dicts or
tuples. Errors raise cask.Error (errno, code, name, message) or the
subclass its stable code selects (PoolNotFound, VolumeExists,
SnapshotHeld, BadStream, ...). A Client may be shared by threads (calls
are serialised on its connection); it is not valid in a child process
after fork. Jobs: job.wait(timeout), job.progress, job.cancel(), and
`await job` in asyncio.
"""
import asyncio
import errno as _errno
import json
import os
import time

from ._cask_cffi import ffi, lib

__all__ = ["Client", "Job", "Error", "MultipleErrors", "lib_version"]


class Error(Exception):
    """A failed call: errno (positive), the daemon's stable code, the name the
    call was about, and a message for people."""

    def __init__(self, errno, code, name, message):
        super().__init__(message or os.strerror(errno))
        self.errno = errno
        self.code = code
        self.name = name
        self.message = message

    def __repr__(self):
        return "%s(%d, %r, %r, %r)" % (type(self).__name__, self.errno, self.code, self.name, self.message)


class MultipleErrors(Error):
    """A batch call refused as a whole; .errors maps each refused name to its Error."""

    def __init__(self, errno, code, name, message, errors):
        super().__init__(errno, code, name, message)
        self.errors = errors


def _sub(name, doc):
    return type(name, (Error,), {"__doc__": doc})


NotRunning = _sub("NotRunning", "caskd cannot be reached, or the connection was lost")
PermissionDenied = _sub("PermissionDenied", "not allowed (or a read-only pool)")
InvalidArgument = _sub("InvalidArgument", "a bad name, size, property or request")
PoolNotFound = _sub("PoolNotFound", "no such pool")
PoolExists = _sub("PoolExists", "the pool (or a vdev of it) exists")
PoolUnavailable = _sub("PoolUnavailable", "the pool is known but did not import")
VolumeNotFound = _sub("VolumeNotFound", "no such volume")
VolumeExists = _sub("VolumeExists", "the volume exists")
SnapshotNotFound = _sub("SnapshotNotFound", "no such snapshot")
SnapshotExists = _sub("SnapshotExists", "the snapshot exists")
SnapshotHeld = _sub("SnapshotHeld", "the snapshot carries holds")
HoldExists = _sub("HoldExists", "the snapshot already carries that tag")
HoldNotFound = _sub("HoldNotFound", "no such hold")
HasSnapshots = _sub("HasSnapshots", "the volume has snapshots (destroy recursively)")
HasClones = _sub("HasClones", "snapshots to destroy have clones (destroy dependents too)")
HasNewerSnapshots = _sub("HasNewerSnapshots", "rollback past newer snapshots needs destroy_newer")
NotAClone = _sub("NotAClone", "promote of a volume that is not a clone")
Busy = _sub("Busy", "in use: open volumes, connected clients, a running job")
NoSpace = _sub("NoSpace", "the pool is full")
IOError_ = _sub("IOError", "an IO or checksum error, or a suspended pool")
globals()["IOError"] = IOError_  # cask.IOError (the builtin is not used in this module)
BadStream = _sub("BadStream", "a send stream that is damaged, truncated or of an unknown version")
WrongBase = _sub("WrongBase", "an incremental stream whose base is not the target's newest snapshot")
TargetChanged = _sub("TargetChanged", "the receive target was written since its base (force rolls it back)")
NotAPartialReceive = _sub("NotAPartialReceive", "abandon of a volume with no partial receive")
JobNotFound = _sub("JobNotFound", "no such job")
JobEnded = _sub("JobEnded", "the job has already ended")
Cancelled = _sub("Cancelled", "the job was cancelled")
TimedOut = _sub("TimedOut", "a call waited its timeout for a job that goes on (.job)")
VdevInUse = _sub("VdevInUse", "pool_create: a file holds data or a signature (force=True overwrites it)")
PoolNeedsRewind = _sub("PoolNeedsRewind", "pool_import: the newest txg is damaged; rewind=True discards it")
ClientNotFound = _sub("ClientNotFound", "client_kill: no connected client of that id")

# Every stable code (include/cask/errcodes.h; tests/integration/errcodes.sh checks that
# this table names each one, and no other).
_BY_CODE = {
    "NOT_RUNNING": NotRunning, "PERMISSION_DENIED": PermissionDenied,
    "BAD_REQUEST": InvalidArgument, "INVALID_ARGUMENT": InvalidArgument,
    "POOL_NOT_FOUND": PoolNotFound, "POOL_EXISTS": PoolExists, "POOL_UNAVAILABLE": PoolUnavailable,
    "VOLUME_NOT_FOUND": VolumeNotFound, "VOLUME_EXISTS": VolumeExists,
    "SNAPSHOT_NOT_FOUND": SnapshotNotFound, "SNAPSHOT_EXISTS": SnapshotExists,
    "SNAPSHOT_HELD": SnapshotHeld, "HOLD_EXISTS": HoldExists, "HOLD_NOT_FOUND": HoldNotFound,
    "HAS_SNAPSHOTS": HasSnapshots, "HAS_CLONES": HasClones, "HAS_NEWER_SNAPSHOTS": HasNewerSnapshots,
    "NOT_A_CLONE": NotAClone, "BUSY": Busy, "NO_SPACE": NoSpace, "IO_ERROR": IOError_,
    "POOL_SUSPENDED": IOError_, "BAD_STREAM": BadStream, "TRUNCATED_STREAM": BadStream,
    "UNSUPPORTED_STREAM": BadStream, "WRONG_BASE": WrongBase, "TARGET_CHANGED": TargetChanged,
    "NOT_A_PARTIAL_RECEIVE": NotAPartialReceive, "JOB_NOT_FOUND": JobNotFound,
    "JOB_ENDED": JobEnded, "CANCELLED": Cancelled,
    "TIMED_OUT": TimedOut, "VDEV_IN_USE": VdevInUse, "POOL_NEEDS_REWIND": PoolNeedsRewind,
    "CLIENT_NOT_FOUND": ClientNotFound,
    "REPLICA_READ_ONLY": PermissionDenied,  # a replica volume: only its controller writes it
    "REPLICATION_INSECURE": PermissionDenied, "PEER_UNREACHABLE": Error, "PEER_REFUSED": Error,
    "NOT_REPLICATED": InvalidArgument, "DATA_LOST": IOError_,  # a rebuild found ranges no replica can read
    "REPLICA_EXISTS": VolumeExists,  # replica_add of a member the volume already has
    "INTERNAL": Error, "UNKNOWN_OP": Error, "UNSUPPORTED_VERSION": Error, "BAD_VDEV": Error,
    "NOT_SUPPORTED": Error,
}


def _error(errno, code, name, message):
    cls = _BY_CODE.get(code, Error)
    return cls(errno, code, name, message)


def _b(name):
    if name is None:
        return ffi.NULL
    if isinstance(name, str):
        return name.encode()
    if isinstance(name, (bytes, bytearray)):
        return bytes(name)
    raise TypeError("a name is str or bytes, not %s" % type(name).__name__)


def _s(cstr):
    return ffi.string(cstr).decode(errors="replace")


def _fd(f):
    if isinstance(f, int):
        return f
    if hasattr(f, "fileno"):
        if hasattr(f, "flush"):
            f.flush()
        return f.fileno()
    raise TypeError("a stream is an int fd or an object with fileno()")


def lib_version():
    return _s(lib.cask_lib_version())


def _struct(p, fields):
    out = {}
    for f in fields:
        v = getattr(p, f)
        out[f] = _s(v) if isinstance(v, ffi.CData) else v
    return out


_VOL_FIELDS = ("name", "guid", "size", "volblocksize", "compression", "checksum", "sync", "used",
               "referenced", "usedbydataset", "usedbysnapshots", "written", "logical", "logicalused",
               "compressratio", "refcompressratio", "snapshots", "create_txg", "creation", "origin",
               "receive_resume_token")
_SNAP_FIELDS = ("name", "volume", "guid", "txg", "creation", "size", "referenced", "logical", "used",
                "logicalused", "refcompressratio", "holds", "clones")
_POOL_FIELDS = ("name", "guid", "state", "error", "size", "allocated", "free", "nvdevs", "volumes",
                "checksum_errors", "io_errors", "txg", "log_size", "log_commits", "log_blocks",
                "log_bytes", "log_fallbacks", "log_replayed")
_JOB_FIELDS = ("id", "kind", "pool", "target", "state", "done", "total", "elapsed_ms", "result")
_CLIENT_FIELDS = ("id", "frontend", "peer", "uid", "pid", "export_name", "state", "since", "idle", "bytes_in",
                  "bytes_out", "requests", "queued_bytes", "tls")


class Job:
    """A send, receive or rebuild running in caskd."""

    def __init__(self, client, job_id):
        self.client = client
        self.id = job_id

    def info(self, wait_ms=None):
        """The job's dict: kind, pool, target, state, done, total, elapsed_ms, result, and 'error'
        (an exception) when it failed."""
        j = ffi.new("cask_job_info *")
        if wait_ms is None:
            self.client._check(lib.cask_job_get(self.client._c, self.id, j), self.id)
        else:
            self.client._check(lib.cask_job_wait(self.client._c, self.id, int(wait_ms), j), self.id)
        d = _struct(j, _JOB_FIELDS)
        if j.err:
            d["error"] = _error(j.err, _s(j.code), d["target"], _s(j.message))
        return d

    @property
    def progress(self):
        """(stream bytes so far, expected total; 0 when unknown)"""
        d = self.info()
        return d["done"], d["total"]

    @property
    def state(self):
        """'running', 'done', 'failed' or 'cancelled'."""
        return self.info()["state"]

    def cancel(self):
        """Cancel a running job (cask.JobEnded if it has ended already)."""
        self.client._check(lib.cask_job_cancel(self.client._c, self.id), self.id)

    def wait(self, timeout=None):
        """Until the job ends (or timeout seconds pass: then None). Returns its
        result (e.g. the received snapshot's name) or raises its error. It
        waits in slices of a quarter second, so Ctrl-C (KeyboardInterrupt)
        interrupts it; the job goes on (cancel() stops it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 250
            if deadline is not None:
                step = max(0, min(step, int((deadline - time.monotonic()) * 1000)))
            d = self.info(wait_ms=step)
            if d["state"] != "running" or (deadline is not None and time.monotonic() >= deadline):
                break
        if d["state"] == "running":
            return None
        if "error" in d:
            raise d["error"]
        return d["result"] or None

    def pollfd(self):
        """A descriptor that becomes readable when the job ends (the caller closes it)."""
        return self.client._check(lib.cask_job_pollfd(self.client._c, self.id), self.id)

    def __await__(self):
        async def ended():
            loop = asyncio.get_running_loop()
            fd = self.pollfd()
            done = loop.create_future()
            loop.add_reader(fd, lambda: done.done() or done.set_result(None))
            try:
                await done
            finally:
                loop.remove_reader(fd)
                os.close(fd)
            d = self.info()
            if "error" in d:
                raise d["error"]
            return d["result"] or None
        return ended().__await__()

    def __repr__(self):
        return "<cask.Job %d>" % self.id


class Client:
    """A connection to caskd; `with cask.Client() as c:` closes it."""

    def __init__(self, socket=None):
        pp = ffi.new("cask_client **")
        self._c = ffi.NULL
        self._check(lib.cask_connect(_b(socket), pp), socket)
        self._c = pp[0]

    def close(self):
        """Close the connection (jobs it started are cancelled by caskd); `with` does this."""
        if self._c != ffi.NULL:
            lib.cask_disconnect(self._c)
            self._c = ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _check(self, rc, name=None, batch=False):
        if rc < 0:
            e = lib.cask_error()
            if isinstance(name, (bytes, bytearray)):
                name = bytes(name).decode(errors="replace")
            pp = ffi.new("const cask_item_error **")
            n = lib.cask_error_items(pp)
            if n == 1 and not batch:  # one name: its own error
                it = pp[0][0]
                raise _error(it.err, _s(it.code), _s(it.name), _s(e.message))
            if n > 0:  # a batch call refused: every refused name with its own error
                errors = {}
                for i in range(n):
                    it = pp[0][i]
                    errors[_s(it.name)] = _error(it.err, _s(it.code), _s(it.name), _s(it.message))
                raise MultipleErrors(e.err, _s(e.code), name, _s(e.message), errors)
            raise _error(e.err, _s(e.code), name, _s(e.message))
        return rc

    def _names(self, names):
        bs = [_b(n) for n in names]
        keep = [ffi.new("char[]", b) for b in bs]
        arr = ffi.new("const char *[]", keep)
        return arr, keep

    # ---- server ----
    def capabilities(self):
        """{'server', 'version', 'protocol', 'features'}: check a feature name in 'features' (a
        frozenset) before relying on it."""
        caps = ffi.new("cask_capabilities_info *")
        self._check(lib.cask_capabilities(self._c, caps))
        return {"server": _s(caps.server), "version": _s(caps.version), "protocol": caps.protocol,
                "features": frozenset(_s(caps.features[i]) for i in range(caps.nfeatures))}

    # ---- pools ----
    def pool_create(self, name, paths, size=0, force=False):
        """A new pool on the files or devices in paths (files are created with size bytes when
        missing or empty). A file that holds data or a signature raises VdevInUse (one that is
        a vdev of a pool: PoolExists) unless force=True, which overwrites it."""
        arr, keep = self._names(paths)
        self._check(lib.cask_pool_create_ex(self._c, _b(name), arr, len(paths), size,
                                            lib.CASK_POOL_FORCE if force else 0), name)

    def pool_import(self, name=None, paths=None, dir=None, rewind=False):
        """Import a pool by name and/or from paths or a directory to scan; returns the pool's name.
        A pool whose newest txg is damaged in every copy raises PoolNeedsRewind unless
        rewind=True, which discards it (pool_status()["rewound"] says what went)."""
        paths = paths or []
        arr, keep = self._names(paths)
        out = ffi.new("char[64]")
        self._check(lib.cask_pool_import_ex(self._c, _b(name), arr if paths else ffi.NULL, len(paths),
                                            _b(dir), lib.CASK_POOL_REWIND if rewind else 0, out, 64),
                    name)
        return _s(out)

    def pool_export(self, name, force=False):
        """Commit and close the pool; caskd forgets it (the vdevs keep it). Busy (naming them) while
        clients have its volumes open, unless force=True disconnects them first."""
        if force:
            self._check(lib.cask_pool_export_ex(self._c, _b(name), 0x100), name)
        else:
            self._check(lib.cask_pool_export(self._c, _b(name)), name)

    def pool_destroy(self, name):
        """Destroy the pool: its volumes and snapshots are gone, its vdev labels wiped."""
        self._check(lib.cask_pool_destroy(self._c, _b(name)), name)

    def pool_clear(self, name):
        """Resume a suspended pool once its devices work again."""
        self._check(lib.cask_pool_clear(self._c, _b(name)), name)

    def pool_inject(self, name, fault, vdev=-1, after=0, persistent=False):
        """Fault injection for testing: make "read", "write" or "flush" fail
        with EIO on vdev (-1: every vdev) after `after` more calls, once or
        until cleared; fault "none" removes it."""
        self._check(lib.cask_pool_inject(self._c, _b(name), _b(fault), vdev, after, 1 if persistent else 0),
                    name)

    def pools(self):
        """Every pool caskd knows (a generator of dicts: state, error, size, allocated, free, ...)."""
        pp, n = ffi.new("cask_pool_info **"), ffi.new("size_t *")
        self._check(lib.cask_pool_list(self._c, pp, n))
        try:
            for i in range(n[0]):
                yield _struct(pp[0][i], _POOL_FIELDS)
        finally:
            lib.cask_pool_info_free(pp[0], n[0])

    def pool_status(self, name):
        """One pool's dict, with 'vdevs' (their paths) and its error counters."""
        p = ffi.new("cask_pool_info *")
        self._check(lib.cask_pool_status(self._c, _b(name), p), name)
        d = _struct(p, _POOL_FIELDS)
        d["vdevs"] = [_s(p.vdevs[i]) for i in range(p.nvdevs_paths)] if p.vdevs != ffi.NULL else []
        lib.cask_pool_info_clear(p)
        # what an import with rewind discarded (None: nothing)
        rw = ffi.new("cask_pool_rewind_info *")
        self._check(lib.cask_pool_rewind_get(self._c, _b(name), rw), name)
        d["rewound"] = None if rw.last_discarded_txg == 0 else {
            "base_txg": rw.base_txg, "first_discarded_txg": rw.first_discarded_txg,
            "last_discarded_txg": rw.last_discarded_txg, "last_discarded_time_ns": rw.last_discarded_time_ns}
        d["newer_damaged_txg"] = rw.newer_damaged_txg
        return d

    # ---- volumes ----
    def vol_create(self, name, size, volblocksize=0, compression=None, checksum=None, sync=None):
        """A thin volume of size bytes; volblocksize 0 is the default (4K); compression, checksum,
        sync as strings."""
        props = ffi.new("cask_vol_props *")
        props.size = ffi.sizeof("cask_vol_props")
        # the strings must outlive the call: keep the cdata objects referenced
        keep = {k: ffi.new("char[]", _b(v)) for k, v in
                (("compression", compression), ("checksum", checksum), ("sync", sync)) if v}
        props.volblocksize = volblocksize
        props.compression = keep.get("compression", ffi.NULL)
        props.checksum = keep.get("checksum", ffi.NULL)
        props.sync = keep.get("sync", ffi.NULL)
        self._check(lib.cask_vol_create(self._c, _b(name), size, props), name)

    def vol_destroy(self, name, recursive=False, dependents=False, force=False):
        """Destroy a volume; recursive=True with its snapshots, dependents=True also the clones of
        those (and theirs); force=True first disconnects the clients that have it open."""
        flags = (1 if recursive or dependents else 0) | (2 if dependents else 0) | (0x100 if force else 0)
        self._check(lib.cask_vol_destroy_ex(self._c, _b(name), flags), name)

    def vol_resize(self, name, size, shrink=False):
        """Set the volume's size; a smaller size needs shrink=True (the data past it is gone)."""
        self._check(lib.cask_vol_resize(self._c, _b(name), size, 1 if shrink else 0), name)

    def vol_rename(self, name, new_name):
        """Rename a volume within its pool (its snapshots follow)."""
        self._check(lib.cask_vol_rename(self._c, _b(name), _b(new_name)), name)

    def vol_get(self, name):
        """The volume's properties as a dict; 'sources' says for each settable one whether it is
        'local' or 'default'."""
        v = ffi.new("cask_vol_info *")
        self._check(lib.cask_vol_get(self._c, _b(name), v), name)
        d = _struct(v, _VOL_FIELDS)
        d["sources"] = {"compression": _s(v.compression_source), "checksum": _s(v.checksum_source),
                        "sync": _s(v.sync_source)}
        # intent log damage found at import, until pool_clear ("" when clean)
        buf = ffi.new("char[]", 128)
        self._check(lib.cask_vol_log_damaged(self._c, _b(name), buf, 128), name)
        d["log_damaged"] = _s(buf)
        return d

    def _repl_status(self, st):
        out = _struct(st, ("epoch", "consistency", "state", "fenced_by", "seq", "membership_version",
                           "deadline_ms"))
        out["replicas"] = [_struct(st.replicas[i], ("address", "pool", "id", "local", "state", "reason", "link",
                                                    "acked_seq", "durable_seq", "lag_ops"))
                           for i in range(st.nreplicas)]
        return out

    def vol_status(self, name):
        """A replicated volume as this caskd sees it (docs/replication.md): its controller's epoch,
        consistency, state (serving, suspended, fenced; for a replica another caskd controls
        "replica", for a restarted controller "reconciling" or "moved", with fenced_by saying
        where it is) and per replica its address, state, link and acknowledged seq; "lease": the
        controller's read lease (state valid/pending/lapsed, left_ms, renewed_by, needed, lease_ms),
        None when this caskd does not control the volume; "backlog": the backlog limit (max_bytes,
        max_ops, waiting, waited, ejected) and per replica "backlog" (bytes, ops, peak_bytes,
        peak_ops; docs/replication.md 3.2 item 5), None likewise."""
        st = ffi.new("cask_repl_status *")
        ls = ffi.new("cask_repl_lease *")
        ls.size = ffi.sizeof("cask_repl_lease")
        self._check(lib.cask_vol_repl_status_ex(self._c, _b(name), st, ls), name)
        out = self._repl_status(st)
        out["lease"] = _struct(ls, ("state", "left_ms", "renewed_by", "needed", "lease_ms")) if ffi.string(ls.state) else None
        bl = ffi.new("cask_repl_backlog *")
        bl.size = ffi.sizeof("cask_repl_backlog")
        self._check(lib.cask_vol_repl_backlog(self._c, _b(name), bl), name)
        out["backlog"] = _struct(bl, ("max_bytes", "max_ops", "waiting", "waited", "ejected")) if bl.max_bytes else None
        for i, r in enumerate(out["replicas"]):
            r["backlog"] = _struct(bl.replicas[i], ("bytes", "ops", "peak_bytes", "peak_ops")) \
                if bl.max_bytes and i < bl.nreplicas else None
        return out

    def vol_takeover(self, name, force=False):
        """Become the controller of POOL/VOL, a replica this caskd holds (`cask vol takeover`,
        replication rule 7); its status once serving. force: `--force`, go on without in-sync
        replicas it cannot reach (writes only they acknowledged may be lost)."""
        st = ffi.new("cask_repl_status *")
        self._check(lib.cask_vol_takeover_ex(self._c, _b(name), 1 if force else 0, st), name)
        return self._repl_status(st)

    def vol_checksum(self, name):
        """The 16-byte digest of POOL/VOL's (or POOL/VOL@SNAP's) logical contents
        (XXH3-128 over 1 MiB chunks, holes as zeros; docs/replication.md 12.11):
        equal bytes and size, equal digest. .hex() gives what `cask vol checksum` prints."""
        d = ffi.new("uint8_t[16]")
        self._check(lib.cask_vol_checksum(self._c, _b(name), d), name)
        return bytes(ffi.buffer(d, 16))

    def vol_set(self, name, props=None, **kw):
        """Set properties, a dict and/or keywords (compression, checksum, sync):
        all of them together, or none."""
        items = list(dict(props or {}, **kw).items())
        karr, kk = self._names([k for k, _ in items])
        varr, vk = self._names([str(v) for _, v in items])
        self._check(lib.cask_vol_set_many(self._c, _b(name), karr, varr, len(items)), name)

    def vol_inherit(self, name, prop):
        """prop back to its default (source "default")."""
        self._check(lib.cask_vol_inherit(self._c, _b(name), _b(prop)), name)

    def volumes(self, pool=None):
        """Every volume, or a pool's (a generator of dicts, fetched page by page)."""
        pp, n = ffi.new("cask_vol_info **"), ffi.new("size_t *")
        self._check(lib.cask_vol_list(self._c, _b(pool), pp, n), pool)
        try:
            for i in range(n[0]):
                yield _struct(pp[0][i], _VOL_FIELDS)
        finally:
            lib.free(pp[0])

    def vol_clone(self, snapshot, new_name):
        """A writable volume new_name sharing the snapshot's blocks."""
        self._check(lib.cask_vol_clone(self._c, _b(snapshot), _b(new_name)), snapshot)

    def vol_rollback(self, snapshot, destroy_newer=False):
        """Make the volume what snapshot recorded; newer snapshots refuse it unless
        destroy_newer=True destroys them."""
        self._check(lib.cask_vol_rollback(self._c, _b(snapshot), 1 if destroy_newer else 0), snapshot)

    def vol_promote(self, name):
        """The clone takes over its origin's snapshots up to the origin; the former parent becomes
        its clone."""
        self._check(lib.cask_vol_promote(self._c, _b(name)), name)

    # ---- snapshots ----
    def snapshot(self, *names):
        """All the named snapshots (one pool) at one instant, or none."""
        arr, keep = self._names(names)
        self._check(lib.cask_snap_create(self._c, arr, len(names)), names[0] if len(names) == 1 else None,
                    len(names) > 1)

    def snap_destroy(self, *names):
        """Destroy the named snapshots (one pool), all in one transaction or none."""
        arr, keep = self._names(names)
        self._check(lib.cask_snap_destroy_many(self._c, arr, len(names)),
                    names[0] if len(names) == 1 else None, len(names) > 1)

    def snap_rename(self, name, new_name):
        """Rename a snapshot (new_name: NEW or POOL/VOL@NEW; it keeps its volume)."""
        self._check(lib.cask_snap_rename(self._c, _b(name), _b(new_name)), name)

    def snapshots(self, name=None):
        """Snapshots of every pool, a pool or a volume (a generator of dicts, by volume then age)."""
        pp, n = ffi.new("cask_snap_info **"), ffi.new("size_t *")
        self._check(lib.cask_snap_list(self._c, _b(name), pp, n), name)
        try:
            for i in range(n[0]):
                yield _struct(pp[0][i], _SNAP_FIELDS)
        finally:
            lib.free(pp[0])

    def hold(self, tag, *names):
        """Put hold `tag` on each named snapshot (all or none): a held snapshot cannot be destroyed."""
        arr, keep = self._names(names)
        self._check(lib.cask_snap_hold(self._c, _b(tag), arr, len(names)), names[0] if len(names) == 1 else None,
                    len(names) > 1)

    def release(self, tag, *names):
        """Take hold `tag` off each named snapshot (all or none)."""
        arr, keep = self._names(names)
        self._check(lib.cask_snap_release(self._c, _b(tag), arr, len(names)),
                    names[0] if len(names) == 1 else None, len(names) > 1)

    def holds(self, name=None):
        """Holds of every pool, a pool or one snapshot (a generator of {'snapshot', 'tag',
        'creation'})."""
        pp, n = ffi.new("cask_hold_info **"), ffi.new("size_t *")
        self._check(lib.cask_snap_holds(self._c, _b(name), pp, n), name)
        try:
            for i in range(n[0]):
                yield {"snapshot": _s(pp[0][i].snapshot), "tag": _s(pp[0][i].tag),
                       "creation": pp[0][i].creation}
        finally:
            lib.free(pp[0])

    # ---- snapshot policies (docs/manifests.md "Snapshot policy") ----
    def schedule_set(self, name, every_min=None, keep=0, hourly=0, daily=0, weekly=0, monthly=0):
        """Set (replace) POOL/VOL's snapshot policy: an automatic snapshot every every_min minutes,
        keeping the newest `keep` and one per hour/day/week/month for that many periods;
        every_min=None removes the policy. Stored in the pool; caskd runs it."""
        if every_min is None:
            self._check(lib.cask_sched_set(self._c, _b(name), ffi.NULL), name)
            return
        p = ffi.new("cask_sched *", {"every_min": every_min, "keep": keep, "hourly": hourly, "daily": daily,
                                     "weekly": weekly, "monthly": monthly})
        self._check(lib.cask_sched_set(self._c, _b(name), p), name)

    # ---- manifests ----
    def apply(self, manifest, dry_run=False, prune=False, name=None, base_dir=None):
        """Make caskd's pools and volumes match a cask/v1 manifest (docs/manifests.md),
        as `cask apply -f` does: YAML text (str or bytes), or a dict (sent as JSON,
        which YAML reads). dry_run: plan only; prune: also destroy and shrink.
        name: what error messages call the manifest; base_dir: where relative vdev
        paths start (default: the current directory). Returns {"plan": [item, ...],
        "summary": {"create", "change", "destroy", "unchanged", "skipped"},
        "changes", "done"}; an item is {"verb", "kind", "name", "detail", "step",
        "action", "state" (planned, done, failed, not-done), "error"}. A manifest
        with errors raises cask.InvalidArgument whose .errors lists every one as
        (line, column, message), and nothing changes; a change caskd refuses raises
        its error, whose .result is the plan with each item's state (applying again
        converges)."""
        if isinstance(manifest, dict):
            text = json.dumps(manifest).encode()
        elif isinstance(manifest, str):
            text = manifest.encode()
        elif isinstance(manifest, (bytes, bytearray)):
            text = bytes(manifest)
        else:
            raise TypeError("a manifest is YAML text (str or bytes) or a dict, not %s" % type(manifest).__name__)
        a = ffi.new("cask_apply_args *")
        a.size = ffi.sizeof("cask_apply_args")
        keep = [ffi.new("char[]", _b(name)) if name else ffi.NULL,
                ffi.new("char[]", _b(os.fspath(base_dir))) if base_dir else ffi.NULL]
        a.name, a.base_dir = keep
        a.dry_run = 1 if dry_run else 0
        a.prune = 1 if prune else 0
        pp = ffi.new("cask_apply_result **")
        buf = ffi.new("char[]", text)
        rc = lib.cask_apply(self._c, buf, len(text), a, pp)
        if pp[0] == ffi.NULL:
            self._check(rc)
        try:
            r = pp[0]
            states = {lib.CASK_APPLY_PLANNED: "planned", lib.CASK_APPLY_DONE: "done",
                      lib.CASK_APPLY_FAILED: "failed", lib.CASK_APPLY_NOT_DONE: "not-done"}
            items = []
            for i in range(r.nitems):
                it = r.items[i]
                d = {"verb": _s(it.verb), "kind": _s(it.kind), "name": _s(it.name), "detail": _s(it.detail),
                     "step": it.step, "action": _s(it.action), "state": states[it.state], "error": None}
                if it.state == lib.CASK_APPLY_FAILED:
                    d["error"] = {"errno": it.err, "code": _s(it.code), "message": _s(it.message)}
                items.append(d)
            result = {"plan": items,
                      "summary": {"create": r.ncreate, "change": r.nchange, "destroy": r.ndestroy,
                                  "unchanged": r.nunchanged, "skipped": r.nskipped},
                      "changes": r.nsteps, "done": r.ndone}
            errors = [(r.errors[i].line, r.errors[i].column, _s(r.errors[i].message)) for i in range(r.nerrors)]
        finally:
            lib.cask_apply_result_free(pp[0])
        try:
            self._check(rc)
        except Error as e:
            e.errors = errors
            e.result = result
            raise
        return result

    def manifest(self, pools=()):
        """The running state of every pool (or those named) as cask/v1 manifest text that
        apply() accepts unchanged (`cask get manifest`)."""
        pools = list(pools)
        arr, keep = self._names(pools) if pools else (ffi.NULL, [])
        out = ffi.new("char **")
        self._check(lib.cask_manifest_get(self._c, arr, len(keep), out), ",".join(pools) or None)
        try:
            return _s(out[0])
        finally:
            lib.free(out[0])

    def schedules(self, name=None):
        """The snapshot policies of every pool, a pool or a volume (a generator of dicts: name,
        every_min, keep, retain {hourly, daily, weekly, monthly}, set_time, auto_snapshots,
        last_snapshot, last_run, next_run (slots, seconds since the epoch; None: none), runs,
        failures, pruned, last_error)."""
        pp, n = ffi.new("cask_sched_info **"), ffi.new("size_t *")
        self._check(lib.cask_sched_list(self._c, _b(name), pp, n), name)
        try:
            for i in range(n[0]):
                s = pp[0][i]
                yield {"name": _s(s.name), "every_min": s.policy.every_min, "keep": s.policy.keep,
                       "retain": {"hourly": s.policy.hourly, "daily": s.policy.daily,
                                  "weekly": s.policy.weekly, "monthly": s.policy.monthly},
                       "set_time": s.set_time, "auto_snapshots": s.auto_snapshots,
                       "last_snapshot": _s(s.last_snapshot) or None,
                       "last_run": s.last_run if s.last_run >= 0 else None,
                       "next_run": s.next_run if s.next_run >= 0 else None,
                       "runs": s.runs, "failures": s.failures, "pruned": s.pruned,
                       "last_error": _s(s.last_error) or None}
        finally:
            lib.free(pp[0])

    def schedule_run(self, name):
        """Take POOL/VOL's automatic snapshot now (named after the minute), then prune as its
        policy says; returns the snapshot's name."""
        buf = ffi.new("char[]", 600)
        self._check(lib.cask_sched_run(self._c, _b(name), buf, 600), name)
        return _s(buf)

    # ---- send, receive, diff, jobs ----
    def _finish(self, job, wait, timeout):
        if not wait:
            return job
        r = job.wait(timeout)
        if r is None and job.state == "running":
            e = TimedOut(60, "TIMED_OUT", None, "job %d is still running after %s s" % (job.id, timeout))
            e.job = job
            raise e
        return r

    def send(self, snapshot, stream, base=None, token=None, wait=True, timeout=None, policy=True):
        """Write a send stream of snapshot (or what token resumes) to stream (an
        int fd or a file object). wait=False returns the Job at once; with a
        timeout (seconds), cask.TimedOut (its .job goes on) if it runs longer.
        The stream carries the volume's snapshot policy unless policy=False
        (docs/send-stream.md 3.1)."""
        a = ffi.new("cask_send_args *")
        a.size = ffi.sizeof("cask_send_args")
        keep = [ffi.new("char[]", _b(base)) if base else ffi.NULL,
                ffi.new("char[]", _b(token)) if token else ffi.NULL]
        setattr(a, "from", keep[0])
        a.token = keep[1]
        a.wait = 0
        a.no_policy = 0 if policy else 1
        job = ffi.new("uint64_t *")
        self._check(lib.cask_send(self._c, _b(snapshot) if snapshot else ffi.NULL, a, _fd(stream), job),
                    snapshot)
        return self._finish(Job(self, job[0]), wait, timeout)

    def recv(self, volume, stream, force=False, wait=True, timeout=None, policy=True):
        """Read a send stream from stream into volume; returns the snapshot made
        (or, with wait=False, the Job). The snapshot policy the stream carries is
        installed on a volume that has none, unless policy=False."""
        job = ffi.new("uint64_t *")
        ra = ffi.new("cask_recv_args *")
        ra.size = ffi.sizeof("cask_recv_args")
        ra.force = 1 if force else 0
        ra.no_policy = 0 if policy else 1
        self._check(lib.cask_recv(self._c, _b(volume), ra, _fd(stream), job, ffi.NULL, 0), volume)
        return self._finish(Job(self, job[0]), wait, timeout)

    def vol_replica_add(self, volume, replica, wait=True, timeout=None):
        """Add a replica ("HOST:PORT/POOL") to a replicated volume this caskd controls: a rebuild
        Job (full copy) that it returns with wait=False; else its result once it is in sync."""
        job = ffi.new("uint64_t *")
        self._check(lib.cask_vol_replica_add(self._c, _b(volume), _b(replica), job), volume)
        return self._finish(Job(self, job[0]), wait, timeout)

    def vol_replica_replace(self, volume, old, new, wait=True, timeout=None):
        """Add replica new (full copy), then remove old: a rebuild Job, as vol_replica_add."""
        job = ffi.new("uint64_t *")
        self._check(lib.cask_vol_replica_replace(self._c, _b(volume), _b(old), _b(new), job), volume)
        return self._finish(Job(self, job[0]), wait, timeout)

    def vol_replica_rebuild(self, volume, replica, wait=True, timeout=None):
        """Bring a degraded replica back (delta, resume or full): a rebuild Job, as vol_replica_add."""
        job = ffi.new("uint64_t *")
        self._check(lib.cask_vol_replica_rebuild(self._c, _b(volume), _b(replica), job), volume)
        return self._finish(Job(self, job[0]), wait, timeout)

    def vol_verify(self, volume):
        """Compare the in-sync replicas of a replicated volume this caskd controls, 1 MiB chunk by
        chunk (`cask vol verify`, a "verify" job; waits for it): a dict with job, size, chunks,
        differing, replicas (names) and ranges (a list of (offset, length) that differ)."""
        out = ffi.new("cask_verify_result *")
        rg = ffi.new("cask_verify_range **")
        n = ffi.new("size_t *")
        self._check(lib.cask_vol_verify(self._c, _b(volume), 0, out, rg, n), volume)
        try:
            ranges = [(rg[0][i].offset, rg[0][i].length) for i in range(n[0])]
        finally:
            lib.free(rg[0])
        return {"job": out.job, "size": out.size, "chunks": out.chunks, "differing": out.differing,
                "replicas": [ffi.string(out.replicas[i]).decode() for i in range(out.nreplicas)],
                "ranges": ranges}

    def vol_replica_remove(self, volume, replica):
        """Take a replica out of the volume (a membership change; its volume stays there)."""
        self._check(lib.cask_vol_replica_remove(self._c, _b(volume), _b(replica), 0), volume)

    def recv_abandon(self, volume):
        """Drop the volume's partial receive: a full one is destroyed, an incremental one rolled
        back to its base."""
        self._check(lib.cask_recv_abandon(self._c, _b(volume)), volume)

    def diff(self, base, target):
        """(offset, length, "data" | "hole") for what changed from snapshot base to target."""
        it = ffi.new("cask_diff_iter **")
        self._check(lib.cask_diff_begin(self._c, _b(base), _b(target), it), base)
        ext = ffi.new("cask_extent *")
        try:
            while True:
                r = lib.cask_diff_next(it[0], ext)
                if r == 0:
                    return
                self._check(r, target)
                yield ext.offset, ext.length, "hole" if ext.hole else "data"
        finally:
            lib.cask_diff_end(it[0])

    def job(self, job_id):
        """The Job of that id (cask.JobNotFound when caskd no longer knows it)."""
        j = Job(self, job_id)
        j.info()
        return j

    def clients(self):
        """The clients connected to caskd's frontends (a generator of dicts, by id)."""
        pp, n = ffi.new("cask_conn_info **"), ffi.new("size_t *")
        self._check(lib.cask_conn_list(self._c, pp, n))
        try:
            for i in range(n[0]):
                d = _struct(pp[0][i], _CLIENT_FIELDS)
                d["export"] = d.pop("export_name")
                yield d
        finally:
            lib.free(pp[0])

    def client_kill(self, client_id):
        """Disconnect a client (its requests in flight are answered first)."""
        self._check(lib.cask_conn_kill(self._c, client_id))

    def jobs(self):
        """Running jobs and the newest 64 ended ones (a generator of dicts)."""
        pp, n = ffi.new("cask_job_info **"), ffi.new("size_t *")
        self._check(lib.cask_job_list(self._c, pp, n))
        try:
            for i in range(n[0]):
                yield _struct(pp[0][i], _JOB_FIELDS)
        finally:
            lib.free(pp[0])


del _errno
