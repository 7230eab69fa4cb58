/*
 * txg.h -- the txg state machine (txg.c): holds, waits, the sync thread,
 * dirty accounting. txg.c alone writes p->tx; other files read it through
 * the accessors below and change it through the functions.
 */
#ifndef CASK_ENGINE_TXG_H
#define CASK_ENGINE_TXG_H

#include "pool_impl.h"

uint64_t txg_hold(ce_pool *p, int *err);
void txg_rele(ce_pool *p, uint64_t txg);
int txg_wait_synced(ce_pool *p, uint64_t txg);
int txg_sync_now(ce_pool *p);
int txg_start(ce_pool *p);
void txg_stop(ce_pool *p);
void txg_dirty_add(ce_pool *p, int64_t bytes, int open);
void txg_throttle(ce_pool *p);

/* The condition variables (pool_alloc, pool_free). */
void txg_init(ce_pool *p);
void txg_fini(ce_pool *p);
/* Create, import, clear (sync thread stopped): txg `synced` committed, the next one open, nothing dirty. */
void txg_reset(ce_pool *p, uint64_t synced);
/* pool->lock: the open txg has something to commit and its timeout starts; returns it. */
uint64_t txg_mark_open(ce_pool *p);
/* pool->lock: txg t (open) has something to commit (the timeout is not started). */
void txg_mark_dirty(ce_pool *p, uint64_t t);
/* Ask for the open txg to be synced soon, without waiting (takes pool->lock). */
void txg_kick(ce_pool *p);
/* pool->lock: wait until no txg is syncing or quiesced; the suspension's -errno, or 0. */
int txg_wait_quiet(ce_pool *p);
/* pool->lock: ce_pool_clear resumes the pool; a failed clear suspends it (first reason kept). */
void txg_resume(ce_pool *p);
void txg_suspend(ce_pool *p, int err, const char *why);
/* pool->lock: writers inside any txg. */
uint64_t txg_holders(const ce_pool *p);
/* pool->lock: the txg part of ce_pool_stat. */
void txg_stat(const ce_pool *p, ce_pool_stat *st);

/* Readers (pool->lock, or a thread that no txg can move under: import, the sync thread). */
static inline uint64_t
txg_open(const ce_pool *p)
{
	return p->tx.open_txg;
}

static inline uint64_t
txg_synced(const ce_pool *p)
{
	return p->tx.synced_txg;
}

static inline uint64_t
txg_syncing(const ce_pool *p)
{
	return p->tx.syncing_txg;
}

static inline int
txg_suspended(const ce_pool *p)
{
	return p->tx.suspended;
}

static inline int
txg_running(const ce_pool *p)
{
	return p->tx.thread_running;
}

/* No lock: bytes of dirty data buffers (an atomic load; txg_dirty_add stores it). */
static inline uint64_t
txg_dirty_bytes(ce_pool *p)
{
	return __atomic_load_n(&p->tx.dirty_total, __ATOMIC_RELAXED);
}

#endif
