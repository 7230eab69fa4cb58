#ifndef CASK_DAEMON_REPL_CTRL_H
#define CASK_DAEMON_REPL_CTRL_H
/*
 * ctrl.h -- the replication controller, a layer of the volume IO
 * interface (docs/replication.md section 4; ctrl.c).
 */
#include <stddef.h>
#include <stdint.h>
#include "../vio.h"

typedef struct json_object json_object;

/*
 * Create pool/name (size bytes) as a replicated volume: replica 0 here, one
 * per replicas[i] ("HOST:PORT/POOL") on the caskd listening there; start
 * epoch 1 and serve it through the controller. level: 1 one, 2 quorum, 3 all.
 * 0 or -errno with the message set (and a stable code: ce_errcode()).
 */
int repl_ctrl_create(const char *pool, const char *name, uint64_t size, const ce_vol_props *props,
    const char *const *replicas, size_t n, int level, uint32_t deadline_ms);
/* The controller layer for export pool/vol if this caskd controls it, else below unchanged. */
vio_dev *repl_ctrl_layer(vio_vol *v, const char *export_name, vio_dev *below, ce_pool *p, ce_vol *cv);
/* vol.status: 0 with the fields added to res, -ENOENT when not a controlled volume. */
int repl_ctrl_status(const char *export_name, json_object *res);
/*
 * `vol takeover` (rule 7): become the controller of replica pool/name from
 * the members it can reach (membership read from them, the old controller
 * fenced by a new epoch). 0 serving, or -errno with the message and code set.
 */
int repl_ctrl_takeover(const char *pool, const char *name);
/* At start, after the replica service: reconcile (resume) every volume this caskd controlled. */
void repl_ctrl_resume_all(void);
/* The same for one pool just imported (pool.import); volumes already controlled or resuming are left alone. */
void repl_ctrl_resume_pool(const char *pool);
/*
 * A sequenced snapshot operation (CE_REPL_SNAP_*) on a volume this caskd
 * controls: taken at one seq on every in-sync replica (rule 6). -ENOENT
 * (nothing set) when it controls no such volume.
 */
int repl_ctrl_snap(const char *export_name, int op, const char *snap, const char *newname);
/* 1 when this caskd controls the replicated volume export_name. */
int repl_ctrl_controls(const char *export_name);
/* At shutdown: stop every controller (after the frontends closed their handles). */
void repl_ctrl_shutdown(void);
#endif
