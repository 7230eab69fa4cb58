#ifndef CASK_ENGINE_LABEL_H
#define CASK_ENGINE_LABEL_H
#include "phys.h"
#include "vdev.h"

void label_seal(label_phys *lb);
/* 0 if lb is a valid v1 label; else -errno and a reason in *why. */
int label_check(const label_phys *lb, const char **why);
/* Write both copies of the label to a vdev (then flushes). */
int label_write(vdev *vd, const label_phys *lb);
/*
 * Read and validate a vdev file's labels. On success *out is a valid
 * label (copy 0 preferred) and *nvalid the number of valid copies. A
 * file that is empty, not a cask vdev, truncated or damaged gets -errno
 * and a message in ce_errmsg().
 */
int label_read(ce_backend *be, const char *path, label_phys *out, int *nvalid);
#endif
