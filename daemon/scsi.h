#ifndef CASK_DAEMON_SCSI_H
#define CASK_DAEMON_SCSI_H
/*
 * scsi -- the SCSI block-device core (SPC-4/SBC-3) behind the iSCSI
 * target (docs/iscsi.md §10-13). It knows no iSCSI: a transport hands it
 * a command (a nexus, a LUN, a CDB, the expected transfer length and the
 * Data-Out bytes) and gets back status, sense, Data-In and residuals.
 *
 * A logical unit (scsi_lu) is one opened volume plus the state every
 * session of its target shares: unit attentions per I_T nexus, the
 * SPC-2 and persistent reservations, mode page values. Its lock is held
 * only across state decisions, never across IO or a callback.
 */
#include <stddef.h>
#include <stdint.h>
#include "vio.h"

typedef struct scsi_lu scsi_lu;
typedef struct scsi_nexus scsi_nexus;
typedef struct scsi_cmd scsi_cmd;

enum { SCSI_DIR_NONE = 0, SCSI_DIR_IN = 1, SCSI_DIR_OUT = 2 };
enum { SCSI_GOOD = 0x00, SCSI_CHECK = 0x02, SCSI_CONDITION_MET = 0x04, SCSI_BUSY = 0x08,
	SCSI_RESV_CONFLICT = 0x18, SCSI_TASK_SET_FULL = 0x28, SCSI_TASK_ABORTED = 0x40 };
#define SCSI_SENSE_MAX 32
#define SCSI_MAX_XFER (32u << 20) /* MAXIMUM TRANSFER LENGTH in bytes (VPD B0) */

struct scsi_cmd {
	/* set by the transport */
	scsi_nexus *nx;
	uint64_t lun;            /* LUN field as it came (SAM flat encoding of LUN 0 is 0) */
	uint8_t cdb[16];
	uint8_t attr;            /* task attribute: 0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA */
	uint32_t edtl;           /* expected data transfer length */
	int dir;                 /* SCSI_DIR_* from the transport's R/W bits */
	uint8_t *dout;           /* Data-Out (edtl bytes) once collected */
	void (*done)(scsi_cmd *c); /* exactly once, on any thread */
	void *udata;
	/* set by scsi_prepare / scsi_exec */
	int need_out;            /* scsi_prepare: how much Data-Out the command takes (bytes) */
	uint8_t status;
	uint8_t sense[SCSI_SENSE_MAX];
	uint32_t sense_len;
	uint8_t *din;            /* Data-In (owned by the command until scsi_cmd_fini) */
	uint32_t din_len;        /* bytes of din to send (already min(SPDTL, EDTL)) */
	int resid_over, resid_under;
	uint32_t resid;
	int withdrawn;           /* status BUSY because scsi_cancel withdrew it: it had no effect (see there) */
	/* private */
	const void *op;
	uint64_t lba;
	uint32_t nblk;
	uint32_t spdtl;
	int fua, flag1, flag2;
	_Atomic int pending;
	_Atomic int ioerr;
	int ioerr_code;
	vio_req *reqs;
	void *work_then;
	int nreqs;
	uint8_t *work;
	_Atomic int cancel;      /* scsi_cancel was called: no further phase that writes begins */
	_Atomic int wrote;       /* its writes landed (WRITE AND VERIFY before the read-back): never withdrawn */
	_Atomic int reqs_busy;   /* spin lock: reqs being replaced, or walked by scsi_cancel */
};

/* ---- logical units ---- */
/* Open (or share) the LU of an export ("pool/vol" or "pool/vol@snap"); NULL with *err. */
/* tport: the target port's SCSI name string (VPD 0x83); bs: logical block size (512 or 4096),
 * used only by the session that opens the LU first. */
scsi_lu *scsi_lu_get(const char *export_name, const char *tport, uint32_t bs, int *err);
void scsi_lu_put(scsi_lu *lu);
vio_vol *scsi_lu_vol(scsi_lu *lu);
/* The nexus of an initiator port ("iqn...,i,0xISID") on lu, created on first use. */
scsi_nexus *scsi_nexus_get(scsi_lu *lu, const char *initiator_port);
/* The nexus's session ended (logout, connection loss): SPC-2 reservation released. */
void scsi_nexus_lost(scsi_nexus *nx);
scsi_lu *scsi_nexus_lu(scsi_nexus *nx);

/* ---- commands ---- */
/* Decode and check the CDB (docs/iscsi.md §10.2 steps 1-9). 0: run it with scsi_exec after
 * collecting need_out bytes of Data-Out; -1: answered (status/sense set), do not call done. */
int scsi_prepare(scsi_cmd *c);
/* After scsi_prepare accepted it: whether the command reaches the medium (the volume IO stack). */
int scsi_cmd_medium(const scsi_cmd *c);
/* Run a prepared command; c->done runs exactly once (maybe inside). */
void scsi_exec(scsi_cmd *c);
/* After scsi_prepare accepted it: whether the command may change the medium (WRITE, UNMAP, ...). */
int scsi_cmd_writes(const scsi_cmd *c);
/* After scsi_prepare accepted it: whether the command changes no state at all (reads, VERIFY,
 * PRE-FETCH, SYNCHRONIZE CACHE, queries), so the transport may answer it early and drop its
 * completion. PERSISTENT RESERVE OUT, MODE SELECT and every writing command are not. */
int scsi_cmd_no_effect(const scsi_cmd *c);
/*
 * The transport stops waiting for a command in scsi_exec (the stall bound, docs/iscsi.md §9.3):
 * its vio requests that have not begun are withdrawn (vio_withdraw; a COMPARE AND WRITE waiting
 * for its range lock, vio_lock_withdraw) and no writing phase it has not begun begins (the write
 * of COMPARE AND WRITE / OR WRITE). c->done then comes once what is running of it completes,
 * with status BUSY and c->withdrawn = 1, unless an earlier error decided the status; a command
 * answered so wrote nothing. Nothing is withdrawn of a phase of several writing requests (WRITE
 * SAME with a pattern, UNMAP of several ranges: part may have begun) nor of WRITE AND VERIFY
 * once its write landed (its read-back runs and decides the status): those are waited for, as a
 * begun write is. On the transport's thread; may be called
 * again (a request moving between layers may be missed). Returns how many requests or locks it
 * withdrew now.
 */
int scsi_cancel(scsi_cmd *c);
/* Free what the core allocated (din, work buffers). */
void scsi_cmd_fini(scsi_cmd *c);
/* Set CHECK CONDITION with sense KEY/ASC/ASCQ (for transport-found errors, e.g. 0E/03). */
void scsi_set_sense(scsi_cmd *c, int key, int asc, int ascq);

/* ---- task management ---- */
/* LU RESET / TARGET WARM RESET: reservation (SPC-2) released, mode pages to defaults,
 * UA 29/00 for every nexus of the LU. */
void scsi_lu_reset(scsi_lu *lu);
/*
 * PREEMPT AND ABORT (SPC-4 5.14.7.6): the transport ends every task of the
 * nexuses nx[0..n) on lu (waiting for those already in the core), then calls
 * done(arg) once, from any thread. Set once at start; without it the tasks
 * are not aborted.
 */
typedef void (*scsi_abort_hook)(scsi_lu *lu, scsi_nexus *const *nx, size_t n, void (*done)(void *arg), void *arg);
void scsi_set_abort_hook(scsi_abort_hook fn);
#endif

/* --iscsi-tp-threshold: the soft threshold (UA 38/07) of LUs opened from now on, in % of their
 * pool's size (0: none). */
void scsi_set_tp_threshold(int pct);

/* ---- the operator's view of persistent reservations (cask iscsi pr) ---- */
typedef struct scsi_pr_reg {
	uint64_t key;
	char port[320];          /* the I_T nexus's initiator port: IQN,i,0xISID */
	int holder;              /* holds the reservation (every registrant for the all-registrants types) */
} scsi_pr_reg;
typedef struct scsi_pr_info {
	int open;                /* the LU is open (some session is logged in) */
	uint32_t generation;
	int type;                /* 0 none, else the PR TYPE code (1, 3, 5, 6, 7, 8) */
	int aptpl;
	size_t nregs;
	scsi_pr_reg *regs;       /* malloc'd: free it */
} scsi_pr_info;
/* The PR state of an export ("pool/vol[@snap]"): from its open LU, else the copy kept in memory
 * since its last session, else the pool's (APTPL). 0, or -ENOENT (no such volume). */
int scsi_pr_info_get(const char *export_name, scsi_pr_info *out);
/* "write-exclusive", "exclusive-access", ..."-registrants-only", "-all-registrants"; "none". */
const char *scsi_pr_type_name(int type);
