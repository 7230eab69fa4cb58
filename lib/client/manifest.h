/*
 * manifest.h -- loading and checking a `cask/v1` manifest (docs/manifests.md).
 *
 * manifest_load_text reads one YAML text with libyaml into the structures
 * below and checks everything that can be checked without caskd: types,
 * unknown and duplicate fields, names, sizes, property values, policies.
 * Every problem is recorded with its position (file:line:column, 1-based)
 * and loading goes on, so that a caller reports all of them at once.
 * apply.c (cask_apply) adds the problems that need the running state with
 * manifest_err. Internal to libcask (lib/client); the CLI uses only
 * cask/client.h.
 */
#ifndef CASK_CLIENT_MANIFEST_H
#define CASK_CLIENT_MANIFEST_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct mf_pos {
	int line, col; /* 1-based; 0: no position */
} mf_pos;

typedef struct mf_pool {
	char *name;
	mf_pos pos, vdevs_pos, size_pos;
	char **vdevs; /* absolute paths (relative ones resolved against the file's directory) */
	mf_pos *vdev_pos;
	size_t nvdevs;
	int has_size;
	uint64_t size;
} mf_pool;

/* The properties a manifest may manage, in this order. */
enum { MF_COMPRESSION, MF_CHECKSUM, MF_SYNC, MF_VOLBLOCKSIZE, MF_NPROPS };
extern const char *const mf_prop_names[MF_NPROPS];

typedef struct mf_policy {
	int present;
	int valid;          /* present and without errors */
	mf_pos pos;
	uint64_t every_min;
	unsigned keep, hourly, daily, weekly, monthly;
} mf_policy;

typedef struct mf_vol {
	char *name; /* POOL/VOL */
	char pool[64];
	mf_pos pos, size_pos;
	uint64_t size;
	const char *prop[MF_NPROPS]; /* canonical values (static strings); NULL: not managed */
	mf_pos prop_pos[MF_NPROPS];
	uint32_t volblocksize;       /* 0: not given (4K) */
	mf_policy snapshots;
	int absent;                  /* absent: true: the volume must not exist */
	int destroy;                 /* with absent: MF_DESTROY_* (what may go with it) */
	int allow_shrink;            /* allowShrink: true: a smaller size shrinks it without --prune */
	int release_holds;           /* with absent and destroy: releaseHolds: true: release the holds on
	                                the snapshots that go, then destroy */
	mf_pos absent_pos;
} mf_vol;
enum { MF_DESTROY_NONE, MF_DESTROY_SNAPSHOTS, MF_DESTROY_CLONES };

typedef struct mf_error {
	mf_pos pos;
	char *msg;
} mf_error;

typedef struct manifest {
	char *file;  /* as given ("-": standard input) */
	mf_pool *pools;
	size_t npools;
	mf_vol *vols;
	size_t nvols;
	mf_error *errs;
	size_t nerrs;
} manifest;

/*
 * Load and check text[0..len), called name in messages; relative vdev paths
 * start at base_dir (NULL: the current directory). Returns the number of
 * errors recorded (0: usable).
 */
size_t manifest_load_text(const char *name, const char *text, size_t len, const char *base_dir, manifest *m);
void manifest_err(manifest *m, mf_pos pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The errors in file order (stable). */
void manifest_sort_errors(manifest *m);
void manifest_free(manifest *m);

/* Sizes: bytes, or a number with K M G T P E (powers of 1024). 0, or -1 with *why set. */
int mf_parse_size(const char *s, uint64_t *out, const char **why);
/* The shortest exact form: "20G" when it divides evenly, else bytes. */
const char *mf_fmt_size(uint64_t v, char *buf, size_t len);
int mf_pool_name_valid(const char *s);
/* "every 15m, keep 8, retain hourly 24, daily 7" */
void mf_fmt_policy(const mf_policy *p, char *buf, size_t len);
#endif
