#ifndef CASK_DAEMON_REPL_PROTO_H
#define CASK_DAEMON_REPL_PROTO_H
/*
 * proto.h -- the replica protocol, version 1: frames, their checksum, the
 * handshake payloads and the authentication MACs, byte for byte as
 * docs/replica-protocol.md says (the one place the wire layout is
 * written in C). No IO here: proto.c encodes into and decodes from
 * memory, so the fuzzer and the unit test drive it directly.
 */
#include <stddef.h>
#include <stdint.h>

#define RP_MAGIC 0x50524b43u /* "CKRP" */
#define RP_VERSION 1u
#define RP_HDR_SIZE 64u
#define RP_MAX_PAYLOAD 1114112u /* 1 MiB + 64 KiB */
#define RP_MAX_IO 1048576u
#define RP_NONCE 32u
#define RP_MAC 32u

enum rp_type {
	RP_HELLO = 0x01, RP_HELLO_REPLY = 0x02, RP_AUTH = 0x03, RP_AUTH_OK = 0x04, RP_ERROR = 0x05,
	RP_KEEPALIVE = 0x06, RP_KEEPALIVE_ACK = 0x07, RP_BYE = 0x08,
	RP_CREATE = 0x10, RP_ATTACH = 0x11, RP_STATUS_REQ = 0x12, RP_STATUS = 0x13, RP_RETIRE = 0x14,
	RP_PREPARE = 0x20, RP_PROMISE = 0x21, RP_START_EPOCH = 0x22, RP_EPOCH_STARTED = 0x23,
	RP_TAIL_LIST = 0x24, RP_TAIL_EXTENTS = 0x25, RP_TAIL_BEGIN = 0x26, RP_TAIL_DATA = 0x27,
	RP_WRITE = 0x30, RP_TRIM = 0x31, RP_ZERO = 0x32,
	RP_SNAPSHOT = 0x33, RP_SNAP_DESTROY = 0x34, RP_SNAP_RENAME = 0x35,
	RP_ROLLBACK = 0x36, RP_RESIZE = 0x37,
	RP_MB_COMMIT = 0x40, RP_MB_ACK = 0x41,
	RP_APPLIED = 0x50, RP_DURABLE = 0x51, RP_FLUSH = 0x52, RP_OP_DONE = 0x53,
	RP_READ = 0x58, RP_READ_DATA = 0x59,
	RP_CKSUM = 0x60, RP_CKSUM_REPLY = 0x61,
	RP_RB_BEGIN = 0x70, RP_RB_STATE = 0x71, RP_RB_SCAN = 0x72, RP_RB_RANGES = 0x73, RP_RB_READ = 0x74,
	RP_RB_DATA = 0x75, RP_RB_HOLE = 0x76, RP_RB_BAD = 0x77, RP_RB_PROGRESS = 0x78, RP_RB_CURSOR = 0x79,
	RP_RB_END = 0x7a,
};
/* HELLO feature bits (he_features, hr_features) */
enum { RP_FEAT_REBUILD = 1u << 0, RP_FEAT_VERIFY = 1u << 1 };
enum { RPF_FUA = 1u << 0, RPF_MORE = 1u << 1, RPF_REPAIR = 1u << 2 };
enum { HE_KEY = 1u << 0, HE_INSECURE = 1u << 1 };
/* he_features / hr_features (section 1) */
#define RP_FEAT_TAIL (1ull << 2) /* frames 0x24-0x27 and 0x33-0x35 (reconciliation, sequenced snapshots) */
#define RP_FEAT_RB_READ (1ull << 4) /* RB_READ 0x74 and RB_BAD 0x77 (section 8.4) */
#define RP_FEAT_VOLOP (1ull << 5) /* frames 0x36-0x37 (sequenced rollback and resize), ATTACH flag LEASE */
enum { PR_RESUME = 1, PR_TAKEOVER = 2, PR_JOIN = 3 };

/* ERROR codes (replica-protocol.md section 10) */
enum rp_err {
	RPE_BAD_FRAME = 1, RPE_BAD_CHECKSUM = 2, RPE_UNKNOWN_TYPE = 3, RPE_VERSION_MISMATCH = 4,
	RPE_AUTH_REQUIRED = 5, RPE_AUTH_FAILED = 6, RPE_BUSY = 7, RPE_DUPLICATE_ID = 8,
	RPE_VOLUME_NOT_FOUND = 16, RPE_VOLUME_EXISTS = 17, RPE_POOL_NOT_FOUND = 18,
	RPE_NOT_A_REPLICA = 19, RPE_WRONG_VOLUME = 20, RPE_NO_SPACE = 21, RPE_INVALID_ARGUMENT = 22,
	RPE_INVALID_RANGE = 23, RPE_IO_ERROR = 24, RPE_POOL_SUSPENDED = 25,
	RPE_REPLICA_SYNC_DISABLED = 26,
	RPE_STALE_EPOCH = 32, RPE_NOT_PROMISED = 33, RPE_PROMISED_ELSEWHERE = 34, RPE_NOT_SESSION = 35,
	RPE_EPOCH_REFUSED = 36, RPE_SEQUENCE_GAP = 37, RPE_SEQUENCE_DUP = 38, RPE_LAGGING = 39,
	RPE_MB_STALE = 40, RPE_RETIRED = 41, RPE_TAIL_UNKNOWN = 42, RPE_INTERNAL = 63,
};

typedef struct rp_hdr {
	uint32_t rf_magic;
	uint16_t rf_version;
	uint16_t rf_type;
	uint32_t rf_flags;
	uint32_t rf_len;
	uint64_t rf_epoch_ctr;
	uint64_t rf_epoch_node;
	uint64_t rf_seq;
	uint64_t rf_id;
	uint8_t rf_cksum[16];
} rp_hdr;
_Static_assert(sizeof(rp_hdr) == RP_HDR_SIZE, "rp_hdr is 64 bytes");

typedef struct rp_hello {
	char he_proto[16];
	uint16_t he_min_version;
	uint16_t he_max_version;
	uint32_t he_flags;
	uint64_t he_features;
	uint64_t he_instance;
	uint8_t he_nonce[RP_NONCE];
	char he_software[64];
	char he_addr[64];
	uint8_t he_reserved[56];
} rp_hello;
_Static_assert(sizeof(rp_hello) == 256, "HELLO is 256 bytes");

typedef struct rp_hello_reply {
	uint16_t hr_version;
	uint16_t hr_min_version;
	uint16_t hr_max_version;
	uint16_t hr_pad;
	uint32_t hr_flags;
	uint32_t hr_pad2;
	uint64_t hr_features;
	uint64_t hr_instance;
	uint8_t hr_nonce[RP_NONCE];
	char hr_software[64];
	uint8_t hr_reserved[128];
} rp_hello_reply;
_Static_assert(sizeof(rp_hello_reply) == 256, "HELLO_REPLY is 256 bytes");

typedef struct rp_auth {
	uint8_t au_mac[RP_MAC];
	uint8_t au_reserved[32];
} rp_auth;
_Static_assert(sizeof(rp_auth) == 64, "AUTH is 64 bytes");

typedef struct rp_error {
	uint32_t er_code;
	uint32_t er_errno;
	uint64_t er_ref_id;
	uint64_t er_ref_seq;
	uint64_t er_epoch_ctr;
	uint64_t er_epoch_node;
	uint64_t er_value;
	uint8_t er_fatal;
	uint8_t er_pad[7];
	char er_addr[64];
	char er_msg[136];
} rp_error;
_Static_assert(sizeof(rp_error) == 256, "ERROR is 256 bytes");

typedef struct rp_create {
	uint8_t cr_vol_uuid[16];
	uint64_t cr_size;
	uint32_t cr_volblocksize;
	uint8_t cr_compress;
	uint8_t cr_checksum;
	uint8_t cr_sync;
	uint8_t cr_pad;
	char cr_pool[64];
	char cr_name[256];
	uint64_t cr_epoch_ctr;
	uint64_t cr_epoch_node;
	char cr_holder_addr[64];
	uint8_t cr_reserved[80];
} rp_create;
_Static_assert(sizeof(rp_create) == 512, "CREATE is 512 bytes");

/* ATTACH at_flags: bit 0 LEASE (feature VOLOP): a lease connection, KEEPALIVE only (section 6.0, as built) */
enum { AT_LEASE = 1u << 0 };
typedef struct rp_attach {
	uint8_t at_vol_uuid[16];
	char at_pool[64];
	char at_name[256];
	uint32_t at_flags;
	uint8_t at_reserved[44];
} rp_attach;
_Static_assert(sizeof(rp_attach) == 384, "ATTACH is 384 bytes");

/* STATUS, PROMISE, EPOCH_STARTED (section 5.3) */
#define RP_STATUS_SIZE 2176u
typedef struct rp_status {
	uint8_t st_vol_uuid[16];
	uint64_t st_id;
	uint64_t st_pool_guid;
	uint64_t st_promised_ctr, st_promised_node;
	uint64_t st_last_ctr, st_last_node;
	uint64_t st_applied;
	uint64_t st_durable;
	uint64_t st_hi;
	uint32_t st_state;
	uint32_t st_flags;
	uint64_t st_size;
	uint32_t st_volblocksize;
	uint32_t st_lease_ms;
	uint64_t st_read_errors;
	char st_holder_addr[64];
	uint8_t st_reserved[72];
	uint8_t st_mb[1280];
	uint8_t st_hist[512];
	uint8_t st_rb[128];
} rp_status;
_Static_assert(sizeof(rp_status) == RP_STATUS_SIZE, "STATUS is 2176 bytes");
enum { ST_SESSION = 1u << 0, ST_SUSPENDED = 1u << 1, ST_SYNC_ALWAYS = 1u << 2 };

typedef struct rp_prepare {
	uint32_t pr_mode;
	uint32_t pr_pad;
	uint64_t pr_expect_ctr, pr_expect_node;
	char pr_addr[64];
	uint8_t pr_reserved[40];
} rp_prepare;
_Static_assert(sizeof(rp_prepare) == 128, "PREPARE is 128 bytes");

typedef struct rp_start_epoch {
	uint8_t se_mb[1280];
	uint32_t se_flags;
	uint8_t se_reserved[12];
} rp_start_epoch;
_Static_assert(sizeof(rp_start_epoch) == 1296, "START_EPOCH is 1296 bytes");

typedef struct rp_write {
	uint64_t wr_offset;
	uint32_t wr_length;
	uint32_t wr_pad;
} rp_write;
typedef struct rp_range {
	uint64_t offset, length;
} rp_range;
typedef struct rp_zero {
	uint64_t offset, length;
	uint32_t flags, pad;
} rp_zero;
typedef struct rp_read {
	uint64_t offset;
	uint32_t length, pad;
	uint64_t min_seq;
} rp_read;
typedef struct rp_read_data {
	uint64_t rd_applied, pad;
} rp_read_data;
typedef struct rp_mb_ack {
	uint64_t version, pad;
} rp_mb_ack;
/* Reconciliation (section 6.3) */
typedef struct rp_tail_list {
	uint64_t tl_after, tl_pad;
} rp_tail_list;
typedef struct rp_tail_extents {
	uint64_t te_top;          /* the highest seq this frame lists */
	uint32_t te_n, te_pad;    /* then te_n x (u64 offset, u64 length) */
} rp_tail_extents;
#define RP_TAIL_MAX 4096u
typedef struct rp_tail_begin {
	uint8_t tb_hist[512];     /* the reference's epoch history (eh_phys[16]) */
	uint32_t tb_nhist, tb_pad;
	uint64_t tb_pad2;
} rp_tail_begin;
_Static_assert(sizeof(rp_tail_begin) == 528, "TAIL_BEGIN is 528 bytes");
typedef struct rp_tail_data {
	uint64_t td_offset;
	uint32_t td_length;
	uint32_t td_flags;        /* bit 0: zeros (no data follows) */
} rp_tail_data;
/* SNAPSHOT, SNAP_DESTROY (320 bytes); SNAP_RENAME (576: then char[256] the new name) */
typedef struct rp_snap {
	uint64_t sn_identity;     /* 0 in this version (send identities are not carried) */
	uint32_t sn_flags, sn_pad;
	char sn_name[256];
	uint8_t sn_reserved[48];
} rp_snap;
_Static_assert(sizeof(rp_snap) == 320, "SNAPSHOT is 320 bytes");
/* ROLLBACK is an rp_snap (sn_name the snapshot, sn_flags SN_DESTROY_LATER); RESIZE (16 bytes): */
enum { SN_DESTROY_LATER = 1u << 0 };
enum { RZ_SHRINK = 1u << 0 };
typedef struct rp_resize {
	uint64_t rz_size;
	uint32_t rz_flags, rz_pad;
} rp_resize;
_Static_assert(sizeof(rp_resize) == 16, "RESIZE is 16 bytes");
typedef struct rp_op_done {
	uint32_t od_code, od_pad;
	uint64_t od_value;        /* the positive errno of a failed snapshot operation, else 0 */
} rp_op_done;

typedef struct rp_keepalive {
	uint64_t ka_time, pad;
} rp_keepalive;
_Static_assert(sizeof(rp_read) == 24 && sizeof(rp_zero) == 24 && sizeof(rp_write) == 16, "sizes");

/* Rebuild frames (replica-protocol.md section 8.3) */
typedef struct rp_rb_begin {
	uint32_t rb_kind;            /* 1 tail, 2 delta, 3 full */
	uint32_t rb_flags;           /* bit 0 resume */
	uint64_t rb_base_ctr, rb_base_node;
	uint64_t rb_base_seq;
	uint64_t rb_join_seq;
	uint64_t rb_source;
	uint64_t rb_cursor;
	uint8_t rb_reserved[72];
} rp_rb_begin;
typedef struct rp_rb_state {
	uint8_t rs_rb[128];          /* rb_phys */
	uint64_t rs_applied;
	uint64_t rs_durable_cursor;
} rp_rb_state;
typedef struct rp_rb_scan {
	uint64_t sc_base_seq;
	uint64_t sc_from;
	uint32_t sc_max;             /* <= RP_RB_MAX_RANGES */
	uint32_t sc_flags;           /* RB_SCAN_FULL, RB_SCAN_SYNC */
	uint64_t sc_snap;            /* 0: the live volume */
	uint8_t sc_reserved[16];
} rp_rb_scan;
enum { RB_SCAN_FULL = 1u << 0, RB_SCAN_SYNC = 1u << 1 };
#define RP_RB_MAX_RANGES 4096u
typedef struct rp_rb_ranges {
	uint64_t rr_next;
	uint32_t rr_n, rr_pad;
} rp_rb_ranges;
typedef struct rp_rb_range {
	uint64_t offset, length;
	uint32_t kind, pad;          /* 0 data, 1 hole */
} rp_rb_range;
/* CKSUM (feature VERIFY, replica-protocol.md section 8.2) */
#define RP_CKSUM_CHUNK (1u << 20)
#define RP_CKSUM_MAX 4096u
typedef struct rp_cksum {
	uint64_t ck_identity;        /* 0: the live volume (the only one built) */
	uint64_t ck_offset, ck_length;
	uint32_t ck_chunk, ck_pad;
	uint8_t ck_reserved[16];
} rp_cksum;
typedef struct rp_cksum_reply {
	uint64_t cr_offset;
	uint32_t cr_n, cr_pad;
} rp_cksum_reply;
_Static_assert(sizeof(rp_cksum) == 48, "CKSUM is 48 bytes");
_Static_assert(sizeof(rp_cksum_reply) == 16, "CKSUM_REPLY's head is 16 bytes");
typedef struct rp_rb_data {
	uint64_t offset;
	uint32_t length, pad;
	uint64_t state_seq;
} rp_rb_data;
typedef struct rp_rb_hole {
	uint64_t offset, length, state_seq;
} rp_rb_hole;
typedef struct rp_rb_read {     /* section 8.4 (feature RB_READ) */
	uint64_t rr_offset;
	uint32_t rr_length, rr_flags;
	uint64_t rr_snap_identity;   /* 0: the live volume (the only one built) */
	uint64_t rr_min_seq;
} rp_rb_read;
typedef struct rp_rb_bad {
	uint64_t bd_offset, bd_length;
	uint32_t bd_code, bd_pad;
} rp_rb_bad;
_Static_assert(sizeof(rp_rb_read) == 32 && sizeof(rp_rb_bad) == 24, "RB_READ and RB_BAD sizes");
typedef struct rp_rb_progress {
	uint64_t pg_cursor, pg_durable_cursor, pg_bytes_applied, pg_bytes_kept_newer, pg_applied, pg_pad;
} rp_rb_progress;
typedef struct rp_rb_cursor {
	uint64_t cu_cursor;
	uint64_t cu_done;            /* bytes of this rebuild's ranges sent so far (for the record) */
} rp_rb_cursor;
typedef struct rp_rb_end {
	uint32_t en_outcome, en_pad;
	uint64_t en_pad2;
} rp_rb_end;
_Static_assert(sizeof(rp_rb_begin) == 128 && sizeof(rp_rb_state) == 144 && sizeof(rp_rb_scan) == 48 &&
    sizeof(rp_rb_ranges) == 16 && sizeof(rp_rb_range) == 24 && sizeof(rp_rb_data) == 24 &&
    sizeof(rp_rb_hole) == 24 && sizeof(rp_rb_progress) == 48 && sizeof(rp_rb_cursor) == 16 &&
    sizeof(rp_rb_end) == 16, "rebuild frame sizes");

/* Fill the checksum of h (its other fields set, rf_len = plen) over h and payload. */
void rp_seal(rp_hdr *h, const void *payload, size_t plen);
/* The same for a payload in two parts a then b (a WRITE's 16 bytes and its data), without copying them. */
void rp_seal2(rp_hdr *h, const void *a, size_t an, const void *b, size_t bn);
/*
 * Check a received header before its payload is read: magic, length
 * (limit: max_len), version (0: any, during HELLO). 0 or an RPE_* code.
 */
int rp_check_header(const rp_hdr *h, uint32_t max_len, uint16_t version);
/* After the payload: 0 when the checksum matches, else RPE_BAD_CHECKSUM. */
int rp_verify(const rp_hdr *h, const void *payload);
/* The payload size a type must have (-1: variable, checked by the handler; -2: unknown type). */
long rp_payload_size(uint16_t type);
const char *rp_type_name(uint16_t type);
const char *rp_err_name(uint32_t code);
int rp_err_errno(uint32_t code);

/* A header for a frame of type t. */
void rp_hdr_init(rp_hdr *h, uint16_t type, uint32_t flags, uint32_t len, uint64_t ectr,
    uint64_t enode, uint64_t seq, uint64_t id);

/*
 * Version negotiation (section 4.2): the highest version in both ranges,
 * or 0 when they do not overlap.
 */
uint16_t rp_negotiate(uint16_t amin, uint16_t amax, uint16_t bmin, uint16_t bmax);

/*
 * The handshake MACs (section 4.3): role 0 the controller's mac_c, 1 the
 * replica's mac_r. nonce_self/inst_self are the computing role's own.
 */
void rp_mac(int role, const uint8_t *key, size_t keylen, const uint8_t nonce_c[RP_NONCE],
    const uint8_t nonce_r[RP_NONCE], uint64_t inst_c, uint64_t inst_r, uint16_t version,
    uint8_t out[RP_MAC]);
int rp_mac_equal(const uint8_t a[RP_MAC], const uint8_t b[RP_MAC]);
/*
 * Read a peer key file: at least 32 bytes after one trailing newline is
 * removed, not readable by group or others. 0, or -errno with why set.
 */
int rp_key_load(const char *path, uint8_t **key, size_t *len, const char **why);

/* An ERROR payload. */
void rp_error_fill(rp_error *e, uint32_t code, uint64_t ref_id, uint64_t ref_seq, int fatal,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
#endif
