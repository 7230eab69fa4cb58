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
/* A policy ce_sched_set accepts: every 1 .. CE_SCHED_EVERY_MAX, counts at most CE_SCHED_COUNT_MAX, one above 0. */
int sched_valid(const ce_sched *s);
/* Inside a vol_mgmt_begin .. commit (pool->lock held): set (policy NULL: remove) v's policy in that txg. */
int sched_stage(ce_pool *p, volume *v, const ce_sched *policy);
/* v's policy (pool->lock held): 1 and *out, 0 when it has none. */
int sched_get(ce_pool *p, const volume *v, ce_sched *out);

#endif
