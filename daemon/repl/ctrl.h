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
/* Online verify (replication.md 12.11): a job comparing the in-sync members chunk by chunk; waits for it and
 * fills res {"job", "size", "chunk", "chunks", "differing", "replicas", "ranges"}; 0 or -errno. */
int repl_verify(const char *export_name, json_object *res);
/*
 * `vol takeover` (rule 7): become the controller of replica pool/name from
 * the members it can reach (membership read from them, the old controller
 * fenced by a new epoch). 0 serving, or -errno with the message and code set.
 * force (`--force`, replication.md 3.7 steps 4 and 8): go on when fewer
 * in-sync members than |I| - k + 1 can be counted (writes acknowledged only
 * by the others may be lost: logged, and vol status "forced"), and start
 * with fewer than k; a prepare quorum is still needed (that is the fence).
 */
int repl_ctrl_takeover(const char *pool, const char *name, int force);
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
/*
 * Sequenced rollback (to snapshot `snap`, the part after '@'; flags
 * CE_ROLLBACK_DESTROY_LATER) and resize (flags CE_RESIZE_SHRINK) of a volume
 * this caskd controls: at one seq on every in-sync replica, answered when k
 * have it durable. -ENOENT (nothing set) when it controls no such volume.
 */
int repl_ctrl_rollback(const char *export_name, const char *snap, unsigned flags);
int repl_ctrl_resize(const char *export_name, uint64_t size, unsigned flags);
/* 1 when this caskd controls the replicated volume export_name. */
int repl_ctrl_controls(const char *export_name);
/* At shutdown: stop every controller (after the frontends closed their handles). */
void repl_ctrl_shutdown(void);
/*
 * caskd --repl-backlog BYTES: the most data (and BYTES / 4096 operations) a
 * member may have queued and not applied before a new write either ejects it
 * or waits for it (docs/replication.md 3.2 item 5, as built). Set at start,
 * before any controller runs. 0, or -EINVAL outside MIN..MAX.
 */
#define REPL_BACKLOG_DEFAULT (256ull << 20)
#define REPL_BACKLOG_MIN (1ull << 20)
#define REPL_BACKLOG_MAX (64ull << 30)
#define REPL_BACKLOG_BYTES_PER_OP 4096
int repl_ctrl_set_backlog(uint64_t bytes);
uint64_t repl_ctrl_backlog(void); /* the limit in bytes */

/* -o rebuild_rate= (MB/s, 0 unlimited) of a controlled volume; -ENOENT. */
int repl_ctrl_set_rebuild_rate(const char *export_name, uint32_t mbs);

/*
 * Rebuild hooks (ctrl.c's last section; used by the rebuild job in
 * rebuild.c, docs/replication.md section 12). A member is named by its
 * slot; frames of a rebuilding member's RB_STATE, RB_RANGES and
 * RB_PROGRESS go to its rb_frame_fn (called with the controller's lock
 * held: it must only copy and signal).
 */
#include "proto.h"
typedef struct ctrl ctrl;
typedef struct rb_live rb_live;
typedef void (*rb_frame_fn)(void *arg, const rp_hdr *h, const uint8_t *pl);
typedef struct ctrl_rb_progress {
	uint64_t job;                /* 0: no rebuild was ever started for it */
	int kind;                    /* CE_RB_* */
	char state[16];              /* running, done, failed, cancelled */
	uint64_t done, total, transferred, rate, eta_s;
	uint64_t durable_cursor;     /* the target's committed cursor (byte offset), from RB_PROGRESS */
} ctrl_rb_progress;
/* The controller of export_name, claimed for one rebuild job (-ENOENT, -EBUSY, -ESTALE fenced). */
ctrl *ctrl_rb_claim(const char *export_name, int *err);
void ctrl_rb_release(ctrl *c);
const char *ctrl_rb_name(const ctrl *c);
int ctrl_rb_member(ctrl *c, const char *replica, int *idx);
int ctrl_rb_add_slot(ctrl *c, const char *replica, int *idx);
int ctrl_rb_connect(ctrl *c, int idx, int create, rp_status *st, char *msg, size_t mlen);
int ctrl_rb_start(ctrl *c, int idx, rp_rb_begin *b, rb_frame_fn cb, void *arg, rb_live *live, uint64_t *J);
void ctrl_rb_lock(ctrl *c);
void ctrl_rb_unlock(ctrl *c);
int ctrl_rb_queue(ctrl *c, int idx, uint16_t type, const void *pl, size_t n, const void *data, size_t dn);
int ctrl_rb_failed(ctrl *c, int idx);
/* Every rebuild byte is queued to member idx (a snapshot waits for that, then goes to it too). */
void ctrl_rb_copied(ctrl *c, int idx);
/* The local replica when it is in sync (the source), its record in *info; NULL otherwise. */
ce_vol *ctrl_rb_source(ctrl *c, ce_epoch *e, uint64_t *id, uint32_t *rate, ce_repl_info *info);
int ctrl_rb_wait_local(ctrl *c, uint64_t seq);
/* The other sources (section 12.9): remote members of I counting now, not idx; whether the local one is. */
int ctrl_rb_peers(ctrl *c, int idx, char (*addr)[64], char (*pool)[64], int max);
int ctrl_rb_local_ok(ctrl *c);
/* A bound connection of the caller's own to member addr/pool (HELLO, AUTH, ATTACH); 0 with *fd, or -errno, msg. */
int ctrl_rb_attach(ctrl *c, const char *addr, const char *pool, int *fd, uint64_t *features, char *msg, size_t mlen);
int ctrl_rb_join(ctrl *c, int idx, char *msg, size_t mlen);
void ctrl_rb_stop(ctrl *c, int idx, const char *why);
int ctrl_rb_remove(ctrl *c, int idx, char *msg, size_t mlen);
void ctrl_rb_set_progress(ctrl *c, int idx, const ctrl_rb_progress *p);
int repl_ctrl_set_rebuild_wait(const char *export_name, uint32_t seconds);
void ctrl_rb_candidates(int max_tries, void (*fn)(const char *, const char *, uint64_t, uint32_t, void *),
    void *arg);
void ctrl_rb_untry(const char *export_name, const char *replica);
/* rebuild.c: a member's rebuild fields for vol.status */
void rb_status_json(const ctrl_rb_progress *p, json_object *o);
#endif
