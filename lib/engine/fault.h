#ifndef CASK_ENGINE_FAULT_H
#define CASK_ENGINE_FAULT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "cask/engine.h"

/* The injected fault of one pool (fault.c). */
typedef struct fault_state {
	pthread_mutex_t lock;
	_Atomic int armed;
	ce_fault f;
	uint64_t left;   /* calls that still succeed */
	uint64_t hits;   /* calls failed so far */
} fault_state;

void fault_init(fault_state *st);
void fault_fini(fault_state *st);
ce_backend *fault_wrap(ce_backend *inner, unsigned idx, fault_state *st);
#endif
