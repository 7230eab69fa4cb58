/*
 * cask/errcodes.h -- the stable error codes, declared once.
 *
 * Every failure carries, beside its negative errno, a stable code: what
 * went wrong in terms a program may branch on (LMDB's MDB_NOTFOUND beside
 * errno). The engine gives it (ce_errcode(), engine.h), caskd sends its
 * wire name as the "code" of an error (docs/control-protocol.md), libcask
 * hands it to clients (cask_error()->code) and the Python binding turns it
 * into an exception class. Messages are for people and may be reworded at
 * any time; nothing may compare them. This table is the one list: the
 * daemon takes its names from it, and tests/integration/errcodes.sh fails
 * when docs/control-protocol.md or python/cask disagree with it.
 *
 * X(num, SYM, wire, errno, meaning):
 *   num    the value of CE_E_SYM: never reused or renumbered (append only)
 *   wire   the code caskd sends and libcask reports; several codes may
 *          share one (CE_E_VOLUME_OPEN is a BUSY on the wire); NULL for a
 *          code that never goes on the wire as it is: the daemon names
 *          what was not found or exists (POOL_NOT_FOUND, VOLUME_EXISTS ...)
 *   errno  the errno such a failure usually has (0: any)
 *
 * The first group is what a failure's errno alone says (CE_ERRNO_CODES
 * below derives it); the second, conditions the engine names itself
 * (err_setc) because their errno is shared with others; the third, codes
 * of caskd's own (framing, jobs, registry); then libcask's own; codes
 * added after CASK_1.0 follow, whatever their group. A
 * specific code the engine gives must be what the protocol already said
 * for that failure: the codes of CASK_1.0 are frozen.
 */
#ifndef CASK_ERRCODES_H
#define CASK_ERRCODES_H

#include <errno.h>

#define CE_ERRCODES(X)                                                                             \
	X(0, NONE, NULL, 0, "no failure")                                                          \
	X(1, INTERNAL, "INTERNAL", 0, "anything else; the message says what")                      \
	X(2, NOT_FOUND, NULL, ENOENT, "something named does not exist (the daemon says what)")     \
	X(3, EXISTS, NULL, EEXIST, "something named exists (the daemon says what)")                \
	X(4, INVALID_ARGUMENT, "INVALID_ARGUMENT", EINVAL, "an argument has a bad value")          \
	X(5, PERMISSION_DENIED, "PERMISSION_DENIED", EACCES, "not allowed, or a read-only pool")   \
	X(6, BUSY, "BUSY", EBUSY, "in use")                                                        \
	X(7, NO_SPACE, "NO_SPACE", ENOSPC, "the pool is full")                                     \
	X(8, IO_ERROR, "IO_ERROR", EIO, "an IO or checksum error, or a suspended pool")            \
	X(9, POOL_UNAVAILABLE, "POOL_UNAVAILABLE", ENXIO, "the pool's vdevs did not import")       \
	X(10, CANCELLED, "CANCELLED", ECANCELED, "a job was cancelled")                            \
	X(11, TRUNCATED_STREAM, "TRUNCATED_STREAM", EPIPE, "a send stream ended early")            \
	X(12, BAD_STREAM, "BAD_STREAM", EBADMSG, "a damaged, reordered or repeated record")        \
	X(13, UNSUPPORTED_STREAM, "UNSUPPORTED_STREAM", ENOTSUP, "an unknown send stream version") \
	X(14, WRONG_BASE, "WRONG_BASE", EXDEV, "an incremental stream for another base")           \
	X(15, TARGET_CHANGED, "TARGET_CHANGED", ETXTBSY, "the target was written since its base")  \
	X(16, POOL_NOT_FOUND, "POOL_NOT_FOUND", ENOENT, "no pool of that name")                    \
	X(17, POOL_EXISTS, "POOL_EXISTS", EEXIST, "the pool exists, or a file is already a vdev")  \
	X(18, VOLUME_NOT_FOUND, "VOLUME_NOT_FOUND", ENOENT, "no volume of that name")              \
	X(19, VOLUME_EXISTS, "VOLUME_EXISTS", EEXIST, "a volume of that name exists")              \
	X(20, SNAPSHOT_NOT_FOUND, "SNAPSHOT_NOT_FOUND", ENOENT, "no snapshot of that name")        \
	X(21, SNAPSHOT_EXISTS, "SNAPSHOT_EXISTS", EEXIST, "a snapshot of that name exists")        \
	X(22, HAS_NEWER_SNAPSHOTS, "HAS_NEWER_SNAPSHOTS", EEXIST, "rollback past newer snapshots") \
	X(23, HELD, "SNAPSHOT_HELD", EBUSY, "the snapshot carries holds")                          \
	X(24, HOLD_EXISTS, "HOLD_EXISTS", EEXIST, "the snapshot already carries that tag")         \
	X(25, HOLD_NOT_FOUND, "HOLD_NOT_FOUND", ENOENT, "no such snapshot, or not that tag")       \
	X(26, HAS_SNAPSHOTS, "HAS_SNAPSHOTS", EBUSY, "destroy of a volume with snapshots")         \
	X(27, HAS_CLONES, "HAS_CLONES", EBUSY, "destroy of snapshots that have clones")            \
	X(28, NOT_A_CLONE, "NOT_A_CLONE", EINVAL, "promote of a volume that is not a clone")       \
	X(29, NOT_A_PARTIAL_RECEIVE, "NOT_A_PARTIAL_RECEIVE", ENOENT, "no partial receive there")  \
	X(30, VOLUME_OPEN, "BUSY", EBUSY, "the volume is open (NBD clients)")                      \
	X(31, POOL_SUSPENDED, "POOL_SUSPENDED", EIO, "pool.clear: the devices still fail")         \
	X(32, BAD_VDEV, "BAD_VDEV", EINVAL, "a file that is not a (healthy) vdev of the pool")     \
	X(33, BAD_REQUEST, "BAD_REQUEST", EINVAL, "malformed frame or JSON, a mistyped argument")  \
	X(34, UNSUPPORTED_VERSION, "UNSUPPORTED_VERSION", EPROTO, "not protocol version 1")        \
	X(35, UNKNOWN_OP, "UNKNOWN_OP", EOPNOTSUPP, "no such operation")                           \
	X(36, JOB_NOT_FOUND, "JOB_NOT_FOUND", ENOENT, "no job of that id")                         \
	X(37, JOB_ENDED, "JOB_ENDED", EALREADY, "job.cancel of a job that has ended")              \
	X(38, NOT_RUNNING, "NOT_RUNNING", ECONNREFUSED, "libcask: caskd cannot be reached")        \
	X(39, TIMED_OUT, "TIMED_OUT", ETIMEDOUT, "libcask: a job still runs after the timeout")  \
	X(40, NOT_SUPPORTED, "NOT_SUPPORTED", ENOTSUP, "not enabled in this caskd (test.vio_fault without --test-ops)")  \
	X(41, VDEV_IN_USE, "VDEV_IN_USE", EEXIST, "pool.create: a file holds data or a signature")  \
	X(42, POOL_NEEDS_REWIND, "POOL_NEEDS_REWIND", EUCLEAN, "import would discard a damaged txg") \
	X(43, CLIENT_NOT_FOUND, "CLIENT_NOT_FOUND", ENOENT, "client.kill: no connected client of that id")  \
	X(44, REPLICA_READ_ONLY, "REPLICA_READ_ONLY", EROFS, "a replica volume: only its controller writes it")  \
	X(45, REPLICATION_INSECURE, "REPLICATION_INSECURE", EPERM, "replication without --peer-key or --insecure-peers")  \
	X(46, PEER_UNREACHABLE, "PEER_UNREACHABLE", EHOSTUNREACH, "a replica's caskd cannot be reached")  \
	X(47, PEER_REFUSED, "PEER_REFUSED", ECONNREFUSED, "a replica's caskd refused: key, version or its own error")  \
	X(48, NOT_REPLICATED, "NOT_REPLICATED", EINVAL, "vol.status of a volume this caskd does not control")  \
	X(49, DATA_LOST, "DATA_LOST", EIO, "a range no replica can read: a rebuild names it and stops short")  \
	X(50, REPLICA_EXISTS, "REPLICA_EXISTS", EEXIST, "replica add of a member the volume already has")

/*
 * What an errno alone says, for a failure that was given no specific code:
 * X(errno, SYM). Any other errno is CE_E_INTERNAL.
 */
#define CE_ERRNO_CODES(X)                                                                          \
	X(ENOENT, NOT_FOUND)                                                                       \
	X(EEXIST, EXISTS)                                                                          \
	X(EINVAL, INVALID_ARGUMENT)                                                                \
	X(EFBIG, INVALID_ARGUMENT)                                                                 \
	X(ERANGE, INVALID_ARGUMENT)                                                                \
	X(EROFS, PERMISSION_DENIED)                                                                \
	X(EACCES, PERMISSION_DENIED)                                                               \
	X(EPERM, PERMISSION_DENIED)                                                                \
	X(EBUSY, BUSY)                                                                             \
	X(ENOSPC, NO_SPACE)                                                                        \
	X(EIO, IO_ERROR)                                                                           \
	X(ENXIO, POOL_UNAVAILABLE)                                                                 \
	X(ECANCELED, CANCELLED)                                                                    \
	X(EPIPE, TRUNCATED_STREAM)                                                                 \
	X(EBADMSG, BAD_STREAM)

typedef enum ce_errcode_t {
#define CE_ERRCODE_ENUM_(n, s, w, e, m) CE_E_##s = n,
	CE_ERRCODES(CE_ERRCODE_ENUM_)
#undef CE_ERRCODE_ENUM_
} ce_errcode_t;

/* The wire name of a code (docs/control-protocol.md), or NULL (none, or not one code). */
static inline const char *
ce_errcode_wire(int code)
{
	switch (code) { /* a duplicate number fails to compile here */
#define CE_ERRCODE_WIRE_(n, s, w, e, m) case n: return w;
	CE_ERRCODES(CE_ERRCODE_WIRE_)
#undef CE_ERRCODE_WIRE_
	}
	return (const char *)0;
}

/* The code's symbol without its prefix ("HELD"), or NULL for an unknown number. */
static inline const char *
ce_errcode_symbol(int code)
{
	switch (code) {
#define CE_ERRCODE_SYM_(n, s, w, e, m) case n: return #s;
	CE_ERRCODES(CE_ERRCODE_SYM_)
#undef CE_ERRCODE_SYM_
	}
	return (const char *)0;
}

/* The code an errno (negative or positive) says by itself; CE_E_NONE for 0. */
static inline ce_errcode_t
ce_errcode_of_errno(int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		return CE_E_NONE;
#define CE_ERRNO_CODE_(e, s) if (err == (e)) return CE_E_##s;
	CE_ERRNO_CODES(CE_ERRNO_CODE_)
#undef CE_ERRNO_CODE_
	return CE_E_INTERNAL;
}

#endif
