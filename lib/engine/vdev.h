#ifndef CASK_ENGINE_VDEV_H
#define CASK_ENGINE_VDEV_H
#include "cask/engine.h"
#include "phys.h"
#include <stdint.h>

/* One vdev of an open pool. */
typedef struct vdev {
	ce_backend *be;
	char *path;
	uint32_t index;
	uint64_t guid;
	uint64_t asize;     /* usable size: multiple of CE_LABEL_REGION */
	uint64_t nsectors;  /* data-area sectors */
	int fd;             /* the file, when the backend is the plain file one (else -1): aread.c */
} vdev;

/* First byte of the data area and of label copy 1. */
#define VDEV_DATA_START ((uint64_t)CE_LABEL_REGION)
static inline uint64_t vdev_label_off(uint64_t asize, int copy)
{
	return copy == 0 ? 0 : asize - CE_LABEL_REGION;
}
uint64_t vdev_asize_of(uint64_t bytes);
uint64_t vdev_nsectors_of(uint64_t asize);
int vdev_read(vdev *vd, void *buf, size_t len, uint64_t off);
int vdev_writev(vdev *vd, const struct iovec *iov, int n, uint64_t off);
int vdev_flush(vdev *vd);
/*
 * Make [off, off+len) of a vdev that is a plain file allocated: zeroes go
 * into its holes (invariant 4: what is there is kept) and the file is
 * synced, so that the first writes there do not make the next FLUSH
 * commit file-system metadata. *written: bytes written. A block device or
 * a wrapped backend: nothing to do (0).
 */
int vdev_prewrite(vdev *vd, uint64_t off, uint64_t len, uint64_t *written);
/* The descriptor of a file backend (ce_backend_file_open), -1 for any other backend. */
int vdev_backend_fd(const ce_backend *be);
#endif
