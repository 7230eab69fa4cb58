/*
 * label.c -- vdev labels: who a vdev is and which pool it belongs to.
 *
 * Owns label_phys (docs/on-disk-format.md §1.1). Written once, at pool
 * creation, in two copies (start and end of the vdev) so that damage to
 * one end does not lose the pool.
 *
 * Invariants:
 *   1. A label is valid only if magic, version and checksum are right
 *      and its fields are consistent (index < nvdevs, own guid listed).
 *   2. Reading labels never writes: a file that is not a cask vdev is
 *      refused without a byte changed (import opens read-only first).
 *   3. The file must be at least lb_asize long; a shorter file is
 *      reported as truncated rather than read past its end.
 */
#include "label.h"
#include "checksum.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void
label_seal(label_phys *lb)
{
	checksum_compute(CE_CK_XXH128, lb, CE_CKSUM_OFF, lb->lb_cksum);
}

int
label_check(const label_phys *lb, const char **why)
{
	if (lb->lb_magic != LB_MAGIC) {
		*why = "bad label magic";
		return -EINVAL;
	}
	if (!checksum_verify(CE_CK_XXH128, lb, CE_CKSUM_OFF, lb->lb_cksum)) {
		*why = "label checksum mismatch";
		return -EIO;
	}
	if (lb->lb_version < CE_FORMAT_VERSION_MIN || lb->lb_version > CE_FORMAT_VERSION) {
		*why = "unsupported format version";
		return -ENOTSUP;
	}
	if (lb->lb_nvdevs == 0 || lb->lb_nvdevs > CE_MAX_VDEVS ||
	    lb->lb_vdev_index >= lb->lb_nvdevs ||
	    lb->lb_vdev_guids[lb->lb_vdev_index] != lb->lb_vdev_guid ||
	    lb->lb_pool_guid == 0 || lb->lb_asize < CE_MIN_VDEV_SIZE ||
	    lb->lb_asize % CE_LABEL_REGION != 0 ||
	    memchr(lb->lb_pool_name, '\0', sizeof(lb->lb_pool_name)) == NULL) {
		*why = "inconsistent label fields";
		return -EIO;
	}
	return 0;
}

int
label_write(vdev *vd, const label_phys *lb)
{
	const char *why;
	VERIFY0(label_check(lb, &why)); /* invariant 1: only a label that reads back valid is written */
	label_phys *buf = xmalloc_aligned(CE_LABEL_SIZE);
	int err = 0;
	memcpy(buf, lb, CE_LABEL_SIZE);
	for (int copy = 0; copy < 2 && err == 0; copy++) {
		struct iovec iov = { buf, CE_LABEL_SIZE };
		err = vdev_writev(vd, &iov, 1, vdev_label_off(vd->asize, copy));
	}
	if (err == 0)
		err = vdev_flush(vd);
	free(buf);
	return err;
}

int
label_read(ce_backend *be, const char *path, label_phys *out, int *nvalid)
{
	label_phys *buf = xmalloc_aligned(CE_LABEL_SIZE);
	label_phys good;
	const char *why0 = "unreadable", *why1 = "unreadable";
	int ok0 = 0, ok1 = 0, err;
	uint64_t size = be->size;

	if (size == 0) {
		err = err_set(-EINVAL, "%s: empty file, not a cask vdev", path);
		goto out;
	}
	if (size < CE_MIN_VDEV_SIZE) {
		/* Could be a truncated vdev: look at label 0 to say which. */
		if (size >= CE_LABEL_SIZE && be->pread(be, buf, CE_LABEL_SIZE, 0) == 0 &&
		    label_check(buf, &why0) == 0)
			err = err_set(-EINVAL, "%s: truncated cask vdev (%" PRIu64
			    " bytes, label says %" PRIu64 ")", path, size, buf->lb_asize);
		else
			err = err_set(-EINVAL, "%s: not a cask vdev (%" PRIu64
			    " bytes, too small)", path, size);
		goto out;
	}
	if (be->pread(be, buf, CE_LABEL_SIZE, 0) == 0 && label_check(buf, &why0) == 0) {
		ok0 = 1;
		good = *buf;
	}
	if (ok0 && size < good.lb_asize) {
		err = err_set(-EINVAL, "%s: truncated cask vdev (%" PRIu64
		    " bytes, label says %" PRIu64 ")", path, size, good.lb_asize);
		goto out;
	}
	uint64_t asize = ok0 ? good.lb_asize : vdev_asize_of(size);
	if (be->pread(be, buf, CE_LABEL_SIZE, vdev_label_off(asize, 1)) == 0 &&
	    label_check(buf, &why1) == 0) {
		ok1 = 1;
		if (!ok0)
			good = *buf;
		if (buf->lb_asize != asize)
			ok1 = 0, why1 = "label 1 disagrees on the vdev size";
	}
	if (!ok0 && !ok1) {
		if (strcmp(why0, "bad label magic") == 0 && strcmp(why1, "bad label magic") == 0)
			err = err_set(-EINVAL, "%s: not a cask vdev (no label found)", path);
		else
			err = err_set(-EIO, "%s: both labels damaged (label 0: %s; label 1: %s)",
			    path, why0, why1);
		goto out;
	}
	if (size < good.lb_asize) {
		err = err_set(-EINVAL, "%s: truncated cask vdev (%" PRIu64
		    " bytes, label says %" PRIu64 ")", path, size, good.lb_asize);
		goto out;
	}
	*out = good;
	*nvalid = ok0 + ok1;
	err = 0;
out:
	free(buf);
	return err;
}
