#ifndef CASK_DAEMON_REPL_REBUILD_H
#define CASK_DAEMON_REPL_REBUILD_H
/*
 * rebuild.h -- rebuild in caskd (docs/replication.md section 12;
 * frames: docs/replica-protocol.md section 8.3; rebuild.c): the target's
 * handling of the RB_* frames (called by service.c) and the controller's
 * rebuild job (driven through ctrl.c's rebuild hooks, ctrl.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "cask/engine.h"
#include "proto.h"

typedef struct json_object json_object;

/* ---- the target (service.c) ---- */

/* What the replica service lends the target side for one frame. */
typedef struct rb_peer {
	void *conn;
	ce_pool *p;
	const char *name;
	ce_vol *h;                   /* the replica handle */
	ce_epoch e;                  /* the frame's epoch (checked: the promised one) */
	int session;                 /* the connection is the volume's session */
	uint8_t *out;                /* RP_MAX_PAYLOAD bytes of scratch */
	uint64_t *rx_bytes;          /* the connection's rebuild bytes applied since RB_BEGIN */
	uint64_t *rx_committed;      /* rx_bytes at the last commit the target made of its own */
	int (*send)(void *conn, uint16_t type, uint32_t flags, uint64_t id, const void *pl, size_t n);
	void (*error)(void *conn, uint32_t code, const rp_hdr *ref, int fatal, const char *msg);
	void (*take_session)(void *conn);
	ce_vol *rd;                  /* a plain handle: RB_READ reads through it */
	const char *export_name;     /* POOL/NAME, for the log */
} rb_peer;

/* A frame type the replica side handles (RB_BEGIN, RB_SCAN, RB_DATA, RB_HOLE, RB_CURSOR, RB_END, and RB_READ:
 * a member of I read by another member's rebuild, replica-protocol.md section 8.4). */
int rb_target_type(uint16_t type);
/* Whether the connection state allows it: RB_BEGIN and RB_SCAN on a bound connection, the rest on the session. */
int rb_target_needs_session(uint16_t type);
/* The target commits its rebuild data and cursor at least this often (bytes applied). */
#define RB_COMMIT_EVERY (16ull << 20)
/* Handle one such frame (header checked, payload verified, epoch checked): 0 go on, <0 close. */
int rb_target_frame(rb_peer *rp, const rp_hdr *h, const uint8_t *pl);

/* ---- the controller (ctrl.c, the control operations) ---- */

enum { RB_OP_REBUILD = 1, RB_OP_ADD = 2, RB_OP_REPLACE = 3, RB_OP_FULL = 4 /* a member, copied whole */ };
/*
 * Start a rebuild job of export_name's member `replica` (HOST:PORT/POOL):
 * RB_OP_REBUILD an existing member (delta from the common point, a resume
 * of its own record, or full), RB_OP_ADD a new member (created there, full),
 * RB_OP_REPLACE add `replica` and remove `old` once it is in sync.
 * 0 with *job, or -errno with the message and code set.
 */
int repl_rebuild_start(const char *export_name, const char *replica, const char *old, int op, uint64_t *job);
/* The automatic rebuild of members that come back (-o rebuild_wait; started once, on first use). */
void repl_rebuild_policy_start(void);
/* Remove member `replica` (a membership change without it). */
int repl_replica_remove(const char *export_name, const char *replica);

typedef struct rb_live rb_live;
/* The byte ranges live operations touched since a rebuild's join point (ctrl.c holds its lock). */
rb_live *rb_live_new(void);
void rb_live_free(rb_live *l);
void rb_live_add(rb_live *l, uint64_t off, uint64_t len);
#endif
