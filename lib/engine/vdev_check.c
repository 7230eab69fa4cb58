/*
 * vdev_check.c -- may this path become a vdev of a new pool?
 *
 * Owns the policy that ce_pool_create applies to each path before it
 * opens, creates or writes anything, as `zpool create` does:
 *
 *   1. Symbolic links are resolved here, one component at a time, and a
 *      link is followed only if root or the caller (euid) owns it and it
 *      does not sit in a sticky world-writable directory (such as /tmp),
 *      where any user can plant one. The result is a path with no links
 *      left; the pool opens that path with O_NOFOLLOW (and creates a
 *      missing file with O_EXCL), so a link swapped in after the check
 *      makes the open fail instead of being followed.
 *   2. Without CE_POOL_FORCE, a path whose contents another program may
 *      own is refused: a signature libblkid recognises (a filesystem, a
 *      partition table, RAID or LVM metadata, swap...), or any non-zero
 *      byte. For a regular file every data extent is read (holes are
 *      skipped with SEEK_DATA, and the scan stops at the first non-zero
 *      byte); for a block device the first and last VC_EDGE bytes, where
 *      labels and partition tables live, besides libblkid's probe.
 *      These refusals are -EEXIST with the code CE_E_VDEV_IN_USE (what
 *      -f overrides), unlike another pool's label below, which stays the
 *      EEXIST that CASK_1.0 clients knew as POOL_EXISTS.
 *   3. An existing non-empty file or a device whose size differs from
 *      the size the caller asked for is an error, never silently used at
 *      its own size (CE_POOL_FORCE does not change that).
 *
 * Nothing here writes. Another cask pool's label is checked by the
 * caller (ce_vdev_probe), so that its message can name that pool.
 */
#include "vdev_check.h"
#include "util.h"

#include <blkid/blkid.h>
#include <cask/errcodes.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define VC_MAX_LINKS 40             /* as the kernel's MAXSYMLINKS */
#define VC_EDGE (4ull << 20)        /* checked at each end of a block device */
#define VC_CHUNK (1u << 20)

/* The link at `link` (already lstat'ed as `st`), in directory `dir`: may we follow it? */
static int
link_allowed(const char *link, const struct stat *st, const char *dir)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return err_set(-EPERM, "%s: a symbolic link owned by another user (uid %u); "
		    "refusing to follow it (give the path it points to)", link, (unsigned)st->st_uid);
	struct stat ds;
	if (stat(dir[0] ? dir : "/", &ds) == 0 && (ds.st_mode & S_ISVTX) && (ds.st_mode & S_IWOTH))
		return err_set(-EPERM, "%s: a symbolic link in the world-writable sticky directory %s; "
		    "refusing to follow it (give the path it points to)", link, dir[0] ? dir : "/");
	return 0;
}

/* Append component c (len n) to the resolved path r (no trailing slash; "" is the root). */
static int
push(char *r, size_t cap, const char *c, size_t n, const char *path)
{
	size_t l = strlen(r);
	if (l + 1 + n + 1 > cap)
		return err_set(-ENAMETOOLONG, "%s: path too long", path);
	r[l] = '/';
	memcpy(r + l + 1, c, n);
	r[l + 1 + n] = '\0';
	return 0;
}

/*
 * Invariant 1. `rest` holds what is left to resolve; each link's target
 * is put in front of it. On success `out` is absolute, free of links,
 * "." and "..", and *missing says whether its last component exists.
 */
static int
resolve(const char *path, char *out, size_t outlen, int *missing)
{
	char r[PATH_MAX] = "", rest[PATH_MAX * 2], tmp[PATH_MAX * 2], target[PATH_MAX];
	int links = 0;

	if (path[0] != '/') {
		if (getcwd(r, sizeof(r)) == NULL)
			return err_set(-errno, "%s: cannot get the current directory: %s", path, strerror(errno));
		if (strcmp(r, "/") == 0)
			r[0] = '\0';
	}
	if (strlen(path) >= sizeof(rest))
		return err_set(-ENAMETOOLONG, "%s: path too long", path);
	snprintf(rest, sizeof(rest), "%s", path);
	*missing = 0;
	char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, "/");
		int last = p[n + strspn(p + n, "/")] == '\0';
		if (n == 1 && p[0] == '.') {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *s = strrchr(r, '/');
			if (s != NULL)
				*s = '\0';
			p += n;
			continue;
		}
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", r);
		int err = push(r, sizeof(r), p, n, path);
		if (err != 0)
			return err;
		p += n;
		struct stat st;
		if (lstat(r, &st) != 0) {
			if (errno == ENOENT && last) {
				*missing = 1;
				break;
			}
			return err_set(-errno, "%s: %s: %s", path, r, strerror(errno));
		}
		if (!S_ISLNK(st.st_mode)) {
			if (!last && !S_ISDIR(st.st_mode))
				return err_set(-ENOTDIR, "%s: %s is not a directory", path, r);
			continue;
		}
		if ((err = link_allowed(r, &st, dir)) != 0)
			return err;
		if (++links > VC_MAX_LINKS)
			return err_set(-ELOOP, "%s: too many levels of symbolic links", path);
		ssize_t tl = readlink(r, target, sizeof(target) - 1);
		if (tl < 0)
			return err_set(-errno, "%s: %s: %s", path, r, strerror(errno));
		target[tl] = '\0';
		/* the link's target, then what was left after the link */
		size_t pl = strlen(p);
		if ((size_t)tl + 1 + pl + 1 > sizeof(tmp))
			return err_set(-ENAMETOOLONG, "%s: path too long", path);
		memcpy(tmp, target, (size_t)tl);
		tmp[tl] = '/';
		memcpy(tmp + tl + 1, p, pl + 1);
		memcpy(rest, tmp, (size_t)tl + 1 + pl + 1);
		p = rest;
		if (target[0] == '/')
			r[0] = '\0';
		else
			snprintf(r, sizeof(r), "%s", dir);
	}
	if (r[0] == '\0')
		snprintf(r, sizeof(r), "/");
	if (strlen(r) >= outlen)
		return err_set(-ENAMETOOLONG, "%s: path too long", path);
	snprintf(out, outlen, "%s", r);
	return 0;
}

/* Invariant 2, libblkid's half: a filesystem, partition table or other known signature. */
static int
probe_signature(const char *path)
{
	blkid_probe pr = blkid_new_probe_from_filename(path);
	if (pr == NULL)
		return err_set(-errno ? -errno : -EIO, "%s: cannot probe for signatures: %s", path,
		    strerror(errno ? errno : EIO));
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(pr, 1);
	int rc = blkid_do_safeprobe(pr), err = 0;
	if (rc == 0) {
		const char *type = NULL, *what = "a filesystem or other signature";
		if (blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0)
			what = "a partition table";
		else if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0)
			what = "a signature";
		err = err_setc(CE_E_VDEV_IN_USE, -EEXIST, "%s: holds %s%s%s%s (found by libblkid); use -f to overwrite it",
		    path, what, type ? " (" : "", type ? type : "", type ? ")" : "");
	} else if (rc == -2) {
		err = err_setc(CE_E_VDEV_IN_USE, -EEXIST, "%s: holds several conflicting signatures (found by libblkid); "
		    "use -f to overwrite it", path);
	}
	blkid_free_probe(pr);
	return err;
}

/* Is [off, off + len) of fd all zeros? -errno on a read error, 1 if not, 0 if so. */
static int
range_nonzero(int fd, uint64_t off, uint64_t len, uint8_t *buf, uint64_t *where)
{
	while (len > 0) {
		size_t n = (size_t)MIN(len, (uint64_t)VC_CHUNK);
		ssize_t got = pread(fd, buf, n, (off_t)off);
		if (got < 0)
			return -errno;
		if (got == 0)
			return 0;
		for (ssize_t i = 0; i < got; i++)
			if (buf[i] != 0) {
				*where = off + (uint64_t)i;
				return 1;
			}
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	return 0;
}

/* Invariant 2, the data half. */
static int
scan_data(const char *path, int fd, const struct stat *st, uint64_t size)
{
	uint8_t *buf = xmalloc(VC_CHUNK);
	uint64_t where = 0;
	int rc = 0;
	if (S_ISBLK(st->st_mode)) {
		uint64_t edge = MIN(size, VC_EDGE);
		rc = range_nonzero(fd, 0, edge, buf, &where);
		if (rc == 0 && size > edge)
			rc = range_nonzero(fd, size - edge, edge, buf, &where);
	} else {
		off_t pos = 0;
		while (rc == 0 && (uint64_t)pos < size) {
			off_t d = lseek(fd, pos, SEEK_DATA);
			if (d < 0) {
				if (errno != ENXIO)
					rc = -errno;
				break; /* ENXIO: only a hole from pos to the end */
			}
			off_t h = lseek(fd, d, SEEK_HOLE);
			if (h < 0) {
				rc = -errno;
				break;
			}
			rc = range_nonzero(fd, (uint64_t)d, (uint64_t)(h - d), buf, &where);
			pos = h;
		}
	}
	free(buf);
	if (rc < 0)
		return err_set(rc, "%s: cannot read it to check for data: %s", path, strerror(-rc));
	if (rc > 0)
		return err_setc(CE_E_VDEV_IN_USE, -EEXIST, "%s: holds data (a non-zero byte at offset %" PRIu64 "); "
		    "use -f to overwrite it", path, where);
	return 0;
}

int
vdev_check_new(const char *path, uint64_t want_size, int force, char *canon, size_t canonlen,
    int *missing)
{
	int err = resolve(path, canon, canonlen, missing);
	/* invariant 1: what the pool opens is absolute, with no "." or ".." left */
	ASSERT(err != 0 || (canon[0] == '/' && strstr(canon, "/./") == NULL && strstr(canon, "/../") == NULL));
	if (err != 0 || *missing)
		return err;
	int fd = open(canon, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return err_set(-errno, "%s: %s", path, strerror(errno));
	struct stat st;
	uint64_t size = 0;
	if (fstat(fd, &st) != 0) {
		err = err_set(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
			err = err_set(-errno, "%s: cannot get device size: %s", path, strerror(errno));
			goto out;
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		err = err_set(-EINVAL, "%s: not a regular file or block device", path);
		goto out;
	}
	if (size == 0 && S_ISREG(st.st_mode))
		goto out; /* an empty file: the caller makes it the asked size */
	char a[16], b[16];
	if (want_size != 0 && want_size != size) {
		err = err_set(-EINVAL, "%s: exists with size %s (%" PRIu64 " bytes), not the %s "
		    "asked for; omit the size to use it as it is", path,
		    util_fmt_size(size, a, sizeof(a)), size, util_fmt_size(want_size, b, sizeof(b)));
		goto out;
	}
	if (force)
		goto out;
	if ((err = probe_signature(canon)) != 0)
		goto out;
	err = scan_data(path, fd, &st, size);
out:
	close(fd);
	return err;
}
