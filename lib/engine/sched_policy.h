/*
 * sched_policy.h -- snapshot policies (sched.c): the policy object and its sync.
 * Not "sched.h": lib/engine is an -I directory, and that name would shadow
 * the system <sched.h> that <pthread.h> includes.
 */
#ifndef CASK_ENGINE_SCHED_POLICY_H
#define CASK_ENGINE_SCHED_POLICY_H

#include "pool_impl.h"

int sched_load(ce_pool *p);
int sched_sync(ce_pool *p, uint64_t txg);
void sched_init(ce_pool *p);
void sched_fini(ce_pool *p);

#endif
