#ifndef CASK_ENGINE_VDEV_CHECK_H
#define CASK_ENGINE_VDEV_CHECK_H
#include <stddef.h>
#include <stdint.h>

/*
 * May path become a vdev of a new pool (vdev_check.c)? 0 with its
 * resolved, link-free path in canon and *missing set when it does not
 * exist yet; -errno and err_get() when it is refused. want_size is the
 * size the caller asked for (0: none); force skips the content checks.
 */
int vdev_check_new(const char *path, uint64_t want_size, int force, char *canon, size_t canonlen,
    int *missing);
#endif
