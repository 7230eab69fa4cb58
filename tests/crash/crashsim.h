/*
 * crashsim.h -- a crash-simulating IO backend for tests.
 *
 * Wrapped under a pool (ce_pool_opts.wrap), it behaves like a disk with a
 * volatile write cache: writes are held until the vdev is flushed, reads
 * see them. At a chosen write (the crash point) every later IO fails, and
 * the test can then build crash states of each vdev: what the media holds
 * after power is lost with some of the unflushed writes on it (none, all,
 * a random subset applied in a random order, one sector torn). The crash
 * point is a write or a flush (power fails while it runs). A crash state is itself
 * a backend, so a fresh engine can import it.
 */
#ifndef CASK_TEST_CRASHSIM_H
#define CASK_TEST_CRASHSIM_H
#include <stdint.h>

#include "cask/engine.h"

typedef struct crashsim crashsim;

/* crash_at: the 0-based index of the write at which power fails (-1: never). */
crashsim *crashsim_new(long crash_at);
/* crash_at_flush: the 0-based index of the flush during which power fails. */
crashsim *crashsim_new_at_flush(long crash_at_flush);
long crashsim_flushes(const crashsim *cs);  /* flushes completed so far */
void crashsim_free(crashsim *cs);
/* For ce_pool_opts.wrap, with wrap_arg = the crashsim. */
ce_backend *crashsim_wrap(ce_backend *inner, unsigned idx, void *arg);
long crashsim_writes(const crashsim *cs);   /* writes issued so far */
int crashsim_crashed(const crashsim *cs);
unsigned crashsim_pending(const crashsim *cs, unsigned idx); /* unflushed writes of a vdev */

enum { CS_DROP_ALL, CS_KEEP_ALL, CS_RANDOM, CS_TORN, CS_NMODES,
	CS_LYING = CS_NMODES /* a broken device that lost flushed writes: checkers must catch it */ };
extern const char *crashsim_mode_names[CS_NMODES + 1];

/* Describe the crash state to build for every vdev; used by crashsim_image_wrap. */
typedef struct crash_state {
	crashsim *cs;
	int mode;
	uint64_t seed;
} crash_state;
/* For ce_pool_opts.wrap, with wrap_arg = a crash_state: the vdev as it is after the crash. */
ce_backend *crashsim_image_wrap(ce_backend *inner, unsigned idx, void *arg);
#endif
