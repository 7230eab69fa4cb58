/*
 * phys.h -- the on-disk structures of format version 9 (CE_FORMAT_VERSION;
 * import reads versions 1 to 9 and upgrades them as their features are
 * first used: 6 when a volume first becomes a replica (FMT_V_REPL), 7 when
 * a pool first stores a snapshot policy or an automatic snapshot
 * (FMT_V_SCHED), 8 when it first stores a dataset attribute (FMT_V_ISCSI),
 * 9 when a replica's sequence->txg map first gets the rollback entry
 * (0, s) (FMT_V_ROLLMAP, repl.c invariant 10)), transcribed from
 * docs/on-disk-format.md. Uberblocks say CE_UB_VERSION (8) whatever the
 * pool's version: an older reader discards a slot of a newer version
 * silently (it would open an older txg), whereas one it reads takes it to
 * the MOS header, whose version it refuses by name (section 1.2). Each structure
 * added after version 1 names the version that added it. Every field is
 * little-endian; the engine currently runs on little-endian hosts only
 * and refuses to build elsewhere rather than writing a format it cannot
 * read back.
 */
#ifndef CASK_ENGINE_PHYS_H
#define CASK_ENGINE_PHYS_H

#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
    "the cask format is written by little-endian hosts only");

#define FMT_V_REPL 6u /* replication: ds_role, ds_repl_idx, the replica object (section 7) */
#define FMT_V_SCHED 7u /* snapshot policies and automatic snapshots (section 4.8) */
#define FMT_V_ISCSI 8u /* dataset attributes: the iSCSI target's APTPL reservations (section 4.9) */
#define FMT_V_ROLLMAP 9u /* the replica map's rollback entry (0, s) (section 7.4) */
#define CE_FORMAT_VERSION FMT_V_ROLLMAP /* the newest version this build writes */
#define CE_FORMAT_VERSION_MIN 1u /* oldest version import accepts (and upgrades) */
#define CE_UB_VERSION 8u /* ub_version of every uberblock written (section 1.2) */
_Static_assert(CE_FORMAT_VERSION == 9u, "a new format version: update this essay and docs/on-disk-format.md");
_Static_assert(CE_UB_VERSION <= CE_FORMAT_VERSION, "uberblocks this build writes, it reads");
#define CE_SECTOR 4096u
#define CE_SECTOR_SHIFT 12
#define CE_LABEL_REGION (512u * 1024u)
#define CE_LABEL_SIZE 4096u
#define CE_UB_RING_OFF (16u * 1024u)
#define CE_UB_SLOTS 64u
#define CE_UB_SIZE 4096u
#define CE_MIN_VDEV_SIZE (16ull << 20)
#define CE_MAX_VDEVS 64u
#define CE_IND_SIZE 16384u           /* indirect block bytes */
#define CE_IND_SHIFT 8               /* log2(pointers per indirect) */
#define CE_IND_PTRS (1u << CE_IND_SHIFT)
#define CE_META_BLOCK 16384u         /* MOS and bitmap leaf size */
#define CE_MOS_DS_OFF 16384u
#define CE_DS_SIZE 512u
#define CE_DS_GROW 32u
#define CE_NAME_MAX 255u
#define CE_POOL_NAME_MAX 63u
#define CE_CKSUM_OFF 4064u

#define LB_MAGIC 0x4c42414c4b534143ull /* "CASKLABL" */
#define UB_MAGIC 0x4b4c4255424b5341ull /* "ASKBUBLK" */
#define MH_MAGIC 0x5248534f4d4b5341ull /* "ASKMOSHR" */

enum { CE_COMP_OFF = 0, CE_COMP_LZ4 = 1, CE_COMP_ZSTD = 2, CE_COMP_MAX = 2 };
enum { CE_CK_XXH128 = 1, CE_CK_SHA256 = 2, CE_CK_MAX = 2 };
enum {
	BP_HOLE = 0,
	BP_DATA = 1,
	BP_INDIRECT = 2,
	BP_MOS = 3,
	BP_BITMAP = 4,
	BP_DEADLIST = 5,
	BP_HOLDS = 6,
	BP_REPL = 7,      /* format 6: the replica object (section 7) */
	BP_SCHED = 8,     /* format 7: the snapshot policy object (section 4.8) */
	BP_ATTR = 9,      /* format 8: the dataset attribute object (section 4.9) */
};

typedef struct bp_phys {
	uint64_t bp_offset;
	uint32_t bp_psize;
	uint32_t bp_lsize;
	uint64_t bp_birth;
	uint16_t bp_vdev;
	uint8_t bp_comp;
	uint8_t bp_cksum_type;
	uint8_t bp_type;
	uint8_t bp_level;
	uint16_t bp_pad;
	uint8_t bp_cksum[32];
} bp_phys;
_Static_assert(sizeof(bp_phys) == 64, "bp_phys is 64 bytes");

static inline int
bp_is_hole(const bp_phys *bp)
{
	return bp->bp_type == BP_HOLE;
}

static inline uint64_t
bp_asize(const bp_phys *bp)
{
	return bp_is_hole(bp) ? 0 : ((uint64_t)bp->bp_psize + CE_SECTOR - 1) / CE_SECTOR * CE_SECTOR;
}

typedef struct label_phys {
	uint64_t lb_magic;
	uint32_t lb_version;
	uint32_t lb_flags;
	uint64_t lb_pool_guid;
	uint64_t lb_vdev_guid;
	uint64_t lb_asize;
	uint32_t lb_vdev_index;
	uint32_t lb_nvdevs;
	uint64_t lb_create_txg;
	uint64_t lb_ctime;
	char lb_pool_name[64];
	uint64_t lb_vdev_guids[CE_MAX_VDEVS];
	uint8_t lb_reserved[CE_CKSUM_OFF - 640];
	uint8_t lb_cksum[32];
} label_phys;
_Static_assert(sizeof(label_phys) == CE_LABEL_SIZE, "label_phys is 4 KiB");

typedef struct uberblock_phys {
	uint64_t ub_magic;
	uint32_t ub_version;
	uint32_t ub_pad;
	uint64_t ub_txg;
	uint64_t ub_pool_guid;
	uint64_t ub_timestamp;
	uint64_t ub_mos_size;
	uint8_t ub_mos_levels;
	uint8_t ub_pad2[15];
	bp_phys ub_mos;
	uint64_t ub_log_epoch;  /* intent log: 0 = nothing to replay */
	uint64_t ub_log_seq;
	uint64_t ub_log_off;
	uint8_t ub_reserved[CE_CKSUM_OFF - 152];
	uint8_t ub_cksum[32];
} uberblock_phys;
_Static_assert(sizeof(uberblock_phys) == CE_UB_SIZE, "uberblock_phys is 4 KiB");

typedef struct mos_vdev_phys {
	uint64_t mv_guid;
	uint64_t mv_nsectors;
	uint64_t mv_alloc;
	uint64_t mv_sm_size;
	uint8_t mv_sm_levels;
	uint8_t mv_pad[31];
	bp_phys mv_sm_root;
} mos_vdev_phys;
_Static_assert(sizeof(mos_vdev_phys) == 128, "mos_vdev_phys is 128 bytes");

typedef struct mos_header_phys {
	uint64_t mh_magic;
	uint32_t mh_version;
	uint32_t mh_nvdevs;
	uint32_t mh_ds_capacity;
	uint32_t mh_pad;
	uint64_t mh_pool_guid;
	char mh_pool_name[64];
	uint32_t mh_log_vdev;
	uint32_t mh_log_pad;
	uint64_t mh_log_sector;
	uint64_t mh_log_nsectors;
	uint32_t mh_holds_count;  /* format 4: snapshot holds (section 4.6) */
	uint8_t mh_holds_levels;
	uint8_t mh_holds_pad[3];
	bp_phys mh_holds_root;
	uint8_t mh_reserved[256 - 192];
	mos_vdev_phys mh_vdevs[CE_MAX_VDEVS];
} mos_header_phys;
_Static_assert(sizeof(mos_header_phys) == 256 + 128 * CE_MAX_VDEVS, "mos header layout");
_Static_assert(sizeof(mos_header_phys) <= CE_MOS_DS_OFF, "mos header fits");

enum { DS_TYPE_VOLUME = 1, DS_TYPE_SNAPSHOT = 2 };
#define DS_FLAG_SYNC_MASK 3u /* ds_flags bits 0-1: the sync property (CE_SYNC_*) */
#define DS_FLAG_LOCAL_SHIFT 2 /* format 5: bits 2-4, which properties were set (CE_PROP_*) */
#define DS_FLAG_LOCAL_MASK (7u << DS_FLAG_LOCAL_SHIFT)
#define DS_FLAG_AUTO (1u << 5) /* format 7, a snapshot: taken by a snapshot policy (section 4.8) */

typedef struct ds_phys {
	uint64_t ds_guid;
	uint32_t ds_type;
	uint32_t ds_flags;
	uint64_t ds_size;
	uint32_t ds_volblocksize;
	uint8_t ds_levels;
	uint8_t ds_compress;
	uint8_t ds_checksum;
	uint8_t ds_pad;
	uint64_t ds_create_txg;
	uint64_t ds_used;
	uint64_t ds_logical;
	uint64_t ds_ctime;
	bp_phys ds_root;
	char ds_name[256];
	/* format 3: snapshots (zero in older records: no snapshots) */
	uint64_t ds_prev_guid;   /* next older snapshot in the chain (volume: its newest) */
	uint64_t ds_prev_txg;    /* that snapshot's txg: blocks born at or before it are shared */
	uint64_t ds_head_guid;   /* snapshot: its volume; volume: 0 */
	uint64_t ds_dl_count;    /* dead list entries */
	uint64_t ds_dl_bytes;    /* their allocated bytes */
	uint8_t ds_dl_levels;    /* levels of the dead list object */
	uint8_t ds_recv;         /* format 5: 1 while a partial receive (section 4.7) */
	uint8_t ds_role;         /* format 6: 0 none, 1 a replica volume (section 7.1) */
	uint8_t ds_pad2;
	uint32_t ds_repl_idx;    /* format 6, a replica volume: its record's slot */
	uint64_t ds_send_guid;   /* format 5, snapshot: its send identity if received (0: ds_guid) */
	uint8_t ds_pad3[8];
	bp_phys ds_dl_root;      /* root of the dead list object */
} ds_phys;
_Static_assert(sizeof(ds_phys) == CE_DS_SIZE, "ds_phys is 512 bytes");
_Static_assert(__builtin_offsetof(ds_phys, ds_role) == 426 && __builtin_offsetof(ds_phys, ds_repl_idx) == 428,
    "ds_role at 426, ds_repl_idx at 428");

/* Receive table (format version 5, docs/on-disk-format.md section 4.7). */
#define CE_MOS_RECV_OFF 12288u
#define CE_RECV_SLOTS 16u
typedef struct recv_slot_phys {
	uint64_t rs_vol_guid;
	uint64_t rs_to_guid;
	uint64_t rs_from_guid;
	uint64_t rs_src_vol_guid;
	uint64_t rs_offset;
	uint64_t rs_to_txg;
	uint64_t rs_size;
	uint32_t rs_flags;
	uint32_t rs_pad;
	uint8_t rs_reserved[192];
} recv_slot_phys;
_Static_assert(sizeof(recv_slot_phys) == 256, "recv_slot_phys is 256 bytes");
_Static_assert(sizeof(mos_header_phys) <= CE_MOS_RECV_OFF, "the receive table follows the header");
_Static_assert(CE_MOS_RECV_OFF + CE_RECV_SLOTS * 256 <= CE_MOS_DS_OFF, "and fits before the records");
#define RS_INCREMENTAL 1u

/* Replication state (format version 6, docs/on-disk-format.md section 7). */
#define CE_MOS_REPL_OFF 8448u
#define MR_MAGIC 0x4c5045524b534143ull /* "CASKREPL" */
#define CE_REPL_REC_SIZE 4096u
#define CE_REPL_PER_LEAF (CE_META_BLOCK / CE_REPL_REC_SIZE) /* 4 */
#define CE_REPL_MAX_SLOTS 1024u
#define CE_REPL_HIST 16u
#define CE_REPL_MAP 112u
#define CE_REPL_MEMBERS 5u
enum { DS_ROLE_NONE = 0, DS_ROLE_REPLICA = 1 };
enum { RP_COMPLETE = 1, RP_REBUILDING = 2, RP_RETIRED = 3 };
enum { RP_CONTROLLER_HERE = 1u << 0, RP_FORCED = 1u << 1 };
enum { MM_IN_SYNC = 1, MM_REBUILDING = 2, MM_DEGRADED = 3, MM_EJECTED = 4 };
enum { MB_ONE = 1, MB_QUORUM = 2, MB_ALL = 3 };
#define EH_ADOPTED 1u

typedef struct epoch_phys {
	uint64_t ep_counter;
	uint64_t ep_node;
} epoch_phys;

typedef struct mos_repl_phys {
	uint64_t mr_magic;
	uint32_t mr_nslots;
	uint32_t mr_used;
	uint8_t mr_levels;
	uint8_t mr_pad[47];
	bp_phys mr_root;
} mos_repl_phys;
_Static_assert(sizeof(mos_repl_phys) == 128, "mos_repl_phys is 128 bytes");
_Static_assert(sizeof(mos_header_phys) <= CE_MOS_REPL_OFF, "the replica root follows the header");
_Static_assert(CE_MOS_REPL_OFF + 128 <= CE_MOS_RECV_OFF, "and precedes the receive table");

typedef struct mm_phys {
	uint64_t mm_id;
	uint64_t mm_pool_guid;
	uint8_t mm_state;
	uint8_t mm_reason;
	uint16_t mm_flags;
	uint32_t mm_pad;
	uint64_t mm_since_seq;
	uint64_t mm_since_time;
	char mm_addr[64];
	char mm_pool[64];
	uint8_t mm_reserved[24];
} mm_phys;
_Static_assert(sizeof(mm_phys) == 192, "mm_phys is 192 bytes");

typedef struct mb_phys {
	uint64_t mb_version;
	epoch_phys mb_epoch;
	uint64_t mb_seq;
	uint8_t mb_level;
	uint8_t mb_nmembers;
	uint8_t mb_change;
	uint8_t mb_on_no_quorum;
	uint32_t mb_deadline_ms;
	uint32_t mb_rebuild_wait_s;
	uint32_t mb_rebuild_rate;
	uint8_t mb_vol_uuid[16];
	char mb_name[256];
	mm_phys mb_members[CE_REPL_MEMBERS];
} mb_phys;
_Static_assert(sizeof(mb_phys) == 1280, "mb_phys is 1280 bytes");

typedef struct eh_phys {
	epoch_phys eh_epoch;
	uint64_t eh_base;
	uint32_t eh_flags;
	uint32_t eh_pad;
} eh_phys;
_Static_assert(sizeof(eh_phys) == 32, "eh_phys is 32 bytes");

typedef struct rb_phys {
	uint32_t rb_kind;
	uint32_t rb_flags;
	epoch_phys rb_base_epoch;
	uint64_t rb_base_seq;
	uint64_t rb_join_seq;
	uint64_t rb_cursor;
	uint64_t rb_done;
	uint64_t rb_total;
	uint64_t rb_source;
	uint64_t rb_started;
	uint64_t rb_transferred;
	uint8_t rb_reserved[40];
} rb_phys;
_Static_assert(sizeof(rb_phys) == 128, "rb_phys is 128 bytes");

typedef struct sm_phys {
	uint64_t sm_txg;
	uint64_t sm_hi;
} sm_phys;

typedef struct repl_phys {
	uint64_t rp_ds_guid;
	uint8_t rp_vol_uuid[16];
	uint32_t rp_state;
	uint32_t rp_flags;
	epoch_phys rp_promised;
	epoch_phys rp_last_epoch;
	uint64_t rp_applied;
	uint64_t rp_hi;
	uint32_t rp_map_count;
	uint32_t rp_hist_count;
	uint64_t rp_pad;
	char rp_holder_addr[64];
	uint8_t rp_reserved[96];
	mb_phys rp_mb;
	eh_phys rp_hist[CE_REPL_HIST];
	rb_phys rp_rb;
	uint8_t rp_reserved2[128];
	sm_phys rp_map[CE_REPL_MAP];
} repl_phys;
_Static_assert(sizeof(repl_phys) == CE_REPL_REC_SIZE, "repl_phys is 4096 bytes");
_Static_assert(__builtin_offsetof(repl_phys, rp_mb) == 256, "rp_mb at 256");
_Static_assert(__builtin_offsetof(repl_phys, rp_hist) == 1536, "rp_hist at 1536");
_Static_assert(__builtin_offsetof(repl_phys, rp_rb) == 2048, "rp_rb at 2048");
_Static_assert(__builtin_offsetof(repl_phys, rp_map) == 2304, "rp_map at 2304");

/*
 * Snapshot policies (FMT_V_SCHED, docs/on-disk-format.md section 4.8): the
 * root of the policy object in the MOS header block, and its records.
 */
#define CE_MOS_SCHED_OFF 8704u
typedef struct mos_sched_phys {
	uint32_t ms_count;       /* records in the object */
	uint8_t ms_levels;       /* levels of its tree */
	uint8_t ms_pad[59];
	bp_phys ms_root;         /* a hole while there are none */
} mos_sched_phys;
_Static_assert(sizeof(mos_sched_phys) == 128, "mos_sched_phys is 128 bytes");
_Static_assert(CE_MOS_SCHED_OFF >= sizeof(mos_header_phys) + 128, "after the header and format 6's replica root");
_Static_assert(CE_MOS_SCHED_OFF + 128 <= CE_MOS_RECV_OFF, "before the receive table");
typedef struct sched_phys {
	uint64_t sc_vol_guid;    /* the volume (ds_guid); 0 never in the object */
	uint32_t sc_every_min;   /* minutes between automatic snapshots, 1 .. 527040 */
	uint32_t sc_keep;        /* newest automatic snapshots kept */
	uint32_t sc_hourly, sc_daily, sc_weekly, sc_monthly; /* retain: periods kept, one snapshot each */
	uint64_t sc_mtime;       /* when the policy was set (seconds since the epoch) */
	uint8_t sc_pad[88];
} sched_phys;
_Static_assert(sizeof(sched_phys) == 128, "sched_phys is 128 bytes");

/*
 * Dataset attributes (FMT_V_ISCSI, docs/on-disk-format.md section 4.9): the
 * root of the attribute object in the MOS header block, and its records.
 */
#define CE_MOS_ATTR_OFF 10240u
typedef struct mos_attr_phys {
	uint32_t ma_count;       /* records in the object */
	uint8_t ma_levels;       /* levels of its tree */
	uint8_t ma_pad[59];
	bp_phys ma_root;         /* a hole while there are none */
} mos_attr_phys;
_Static_assert(sizeof(mos_attr_phys) == 128, "mos_attr_phys is 128 bytes");
_Static_assert(CE_MOS_ATTR_OFF >= CE_MOS_SCHED_OFF + 128, "after format 7's policy root");
_Static_assert(CE_MOS_ATTR_OFF + 128 <= CE_MOS_RECV_OFF, "before the receive table");
#define CE_ATTR_VAL_MAX 496u
typedef struct attr_phys {
	uint64_t at_ds_guid;     /* the volume (ds_guid); never 0 */
	uint16_t at_ns;          /* namespace, 1 = iSCSI persistent reservations */
	uint16_t at_key;
	uint16_t at_len;         /* bytes of at_val used */
	uint16_t at_pad;
	uint8_t at_val[CE_ATTR_VAL_MAX];
} attr_phys;
_Static_assert(sizeof(attr_phys) == 512, "attr_phys is 512 bytes");

/* Snapshot holds (format version 4, docs/on-disk-format.md section 4.6). */
#define CE_HOLD_TAG_MAX 63u
typedef struct hold_phys {
	uint64_t hd_snap_guid;
	uint64_t hd_ctime;
	char hd_tag[64];
	uint8_t hd_pad[48];
} hold_phys;
_Static_assert(sizeof(hold_phys) == 128, "hold_phys is 128 bytes");

/* Intent log (format version 2, docs/on-disk-format.md section 6). */
#define LG_MAGIC 0x474f4c494b534143ull /* "CASKILOG" */
#define LG_VERSION 1u
#define LG_HDR_SIZE 96u
#define LR_HDR_SIZE 40u
enum { LR_WRITE = 1, LR_ZERO = 2, LR_WRITE_PTR = 3 };

typedef struct ilog_ptr_phys {
	uint32_t lp_vdev;
	uint32_t lp_pad;
	uint64_t lp_offset;
	uint8_t lp_cksum[32];
} ilog_ptr_phys;
_Static_assert(sizeof(ilog_ptr_phys) == 48, "ilog_ptr_phys is 48 bytes");

typedef struct ilog_blk_phys {
	uint64_t lg_magic;
	uint32_t lg_version;
	uint32_t lg_nsectors;
	uint64_t lg_pool_guid;
	uint64_t lg_epoch;
	uint64_t lg_seq;
	uint32_t lg_nrecs;
	uint32_t lg_used;
	uint8_t lg_pad[16];
	uint8_t lg_cksum[32];
} ilog_blk_phys;
_Static_assert(sizeof(ilog_blk_phys) == LG_HDR_SIZE, "ilog_blk_phys is 96 bytes");

typedef struct ilog_rec_phys {
	uint16_t lr_type;
	uint16_t lr_pad;
	uint32_t lr_datalen;
	uint64_t lr_ds_guid;
	uint64_t lr_txg;
	uint64_t lr_offset;
	uint64_t lr_length;
} ilog_rec_phys;
_Static_assert(sizeof(ilog_rec_phys) == LR_HDR_SIZE, "ilog_rec_phys is 40 bytes");

#endif
