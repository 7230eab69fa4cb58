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
/* At shutdown: stop every controller (after the frontends closed their handles). */
void repl_ctrl_shutdown(void);
#endif
