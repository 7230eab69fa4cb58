/*
 * vdev.c -- virtual devices and the file backend.
 *
 * Owns the ce_backend interface that all IO goes through, and the file
 * backend behind it (pread/pwritev + fdatasync, O_DIRECT by default so
 * that the engine's own cache is the only cache and "cold" means cold).
 *
 * Invariants:
 *   1. All IO is sector aligned (offset, length and, with O_DIRECT,
 *      buffer); the engine allocates its IO buffers with
 *      xmalloc_aligned().
 *   2. A vdev file open read-write is held with an exclusive flock, so a
 *      second process cannot import the same pool and corrupt it.
 *   3. Short reads and writes are retried until complete or an error;
 *      reads past the end of the file fail with -EIO.
 *   4. vdev_prewrite only writes zeroes where the file has a hole (or an
 *      unwritten extent, which reads as zeroes too), so it never changes
 *      what any read returns: it may run on a region that holds live
 *      data (an imported intent log before its replay). Where the file
 *      system cannot say where its holes are, it writes nothing.
 */
#include "vdev.h"
#include "phys.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

typedef struct file_be {
	ce_backend be;
	int fd;
} file_be;

static int
file_pread(ce_backend *be, void *buf, size_t len, uint64_t off)
{
	file_be *f = (file_be *)be;
	char *p = buf;
	while (len > 0) {
		ssize_t n = pread(f->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
file_pwritev(ce_backend *be, const struct iovec *iov, int iovcnt, uint64_t off)
{
	file_be *f = (file_be *)be;
	struct iovec local[1024];
	int done = 0;
	while (done < iovcnt) {
		int n = MIN(iovcnt - done, (int)ARRAY_SIZE(local));
		size_t total = 0;
		memcpy(local, iov + done, (size_t)n * sizeof(struct iovec));
		for (int i = 0; i < n; i++)
			total += local[i].iov_len;
		struct iovec *cur = local;
		int curn = n;
		while (total > 0) {
			ssize_t w = pwritev(f->fd, cur, curn, (off_t)off);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (w == 0)
				return -EIO;
			total -= (size_t)w;
			off += (uint64_t)w;
			while (w > 0 && curn > 0) {
				if ((size_t)w >= cur->iov_len) {
					w -= (ssize_t)cur->iov_len;
					cur++;
					curn--;
				} else {
					cur->iov_base = (char *)cur->iov_base + w;
					cur->iov_len -= (size_t)w;
					w = 0;
				}
			}
		}
		done += n;
	}
	return 0;
}

static int
file_flush(ce_backend *be)
{
	file_be *f = (file_be *)be;
	if (fdatasync(f->fd) != 0)
		return -errno;
	return 0;
}

static void
file_close(ce_backend *be)
{
	file_be *f = (file_be *)be;
	close(f->fd);
	free(f);
}

int
ce_backend_file_open(const char *path, unsigned flags, ce_backend **out)
{
	int oflags = (flags & CE_BE_RDONLY) ? O_RDONLY : O_RDWR;
	int fd = -1, err;
	struct stat st;
	uint64_t size;

	oflags |= O_CLOEXEC | ((flags & CE_BE_NOFOLLOW) ? O_NOFOLLOW : 0);
	if (!(flags & CE_BE_NODIRECT))
		fd = open(path, oflags | O_DIRECT);
	if (fd < 0 && ((flags & CE_BE_NODIRECT) || errno == EINVAL))
		fd = open(path, oflags);
	if (fd < 0)
		return err_set(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		err = err_set(-errno, "%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
			err = err_set(-errno, "%s: cannot get device size: %s", path, strerror(errno));
			goto out_close;
		}
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		err = err_set(-EINVAL, "%s: not a regular file or block device", path);
		goto out_close;
	}
	if (!(flags & (CE_BE_RDONLY | CE_BE_NOLOCK)) && flock(fd, LOCK_EX | LOCK_NB) != 0) {
		err = err_set(errno == EWOULDBLOCK ? -EBUSY : -errno,
		    "%s: in use by an open pool (locked)", path);
		goto out_close;
	}
	file_be *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->be.pread = file_pread;
	f->be.pwritev = file_pwritev;
	f->be.flush = file_flush;
	f->be.close = file_close;
	f->be.size = size;
	*out = &f->be;
	return 0;
out_close:
	close(fd);
	return err;
}

uint64_t
vdev_asize_of(uint64_t bytes)
{
	return P2ALIGN(bytes, (uint64_t)CE_LABEL_REGION);
}

uint64_t
vdev_nsectors_of(uint64_t asize)
{
	return (asize - 2ull * CE_LABEL_REGION) / CE_SECTOR;
}

int
vdev_backend_fd(const ce_backend *be)
{
	return be->pread == file_pread ? ((const file_be *)be)->fd : -1;
}

int
vdev_read(vdev *vd, void *buf, size_t len, uint64_t off)
{
	ASSERT(off % CE_SECTOR == 0 && len % CE_SECTOR == 0); /* invariant 1 */
	return vd->be->pread(vd->be, buf, len, off);
}

int
vdev_writev(vdev *vd, const struct iovec *iov, int n, uint64_t off)
{
	ASSERT(off % CE_SECTOR == 0); /* invariant 1: every piece is whole sectors too */
	for (int i = 0; i < n; i++)
		ASSERT(iov[i].iov_len % CE_SECTOR == 0);
	return vd->be->pwritev(vd->be, iov, n, off);
}

int
vdev_flush(vdev *vd)
{
	return vd->be->flush(vd->be);
}

#define PREWRITE_CHUNK (1u << 20)

int
vdev_prewrite(vdev *vd, uint64_t off, uint64_t len, uint64_t *written)
{
	struct stat st;
	uint64_t end = off + len, pos = off, wrote = 0;
	uint8_t *zero = NULL;
	int err = 0;

	*written = 0;
	if (vd->fd < 0 || fstat(vd->fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0; /* a block device, or a wrapped backend (tests): nothing to allocate */
	while (pos < end && err == 0) {
		off_t h = lseek(vd->fd, (off_t)pos, SEEK_HOLE);
		if (h < 0) {
			if (errno != ENXIO) /* EINVAL: no SEEK_HOLE here; invariant 4: write nothing */
				err = errno == EINVAL ? 0 : -errno;
			break;
		}
		if ((uint64_t)h >= end)
			break;
		off_t d = lseek(vd->fd, h, SEEK_DATA);
		uint64_t hend = d < 0 ? (uint64_t)st.st_size : (uint64_t)d;
		if (d < 0 && errno != ENXIO) {
			err = -errno;
			break;
		}
		/* whole sectors strictly inside the hole (invariant 4) */
		uint64_t s = P2ROUNDUP((uint64_t)h, (uint64_t)CE_SECTOR), e = P2ALIGN(MIN(hend, end), (uint64_t)CE_SECTOR);
		if (zero == NULL && s < e) {
			zero = xmalloc_aligned(PREWRITE_CHUNK);
			memset(zero, 0, PREWRITE_CHUNK);
		}
		while (s < e) {
			size_t n = (size_t)MIN((uint64_t)PREWRITE_CHUNK, e - s);
			ssize_t w = pwrite(vd->fd, zero, n, (off_t)s);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				err = w < 0 ? -errno : -EIO;
				break;
			}
			s += (uint64_t)w;
			wrote += (uint64_t)w;
		}
		pos = MAX(MIN(hend, end), pos + 1);
	}
	free(zero);
	if (wrote > 0 && err == 0 && fdatasync(vd->fd) != 0)
		err = -errno; /* commit the allocation now, not in the first FLUSH */
	*written = wrote;
	return err;
}
