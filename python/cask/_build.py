#!/usr/bin/python3
"""Build cask._cask_cffi: cffi in API mode, compiled against include/cask/client.h
and linked with libcask.so.1 (so a declaration here that disagrees with the
header fails to compile rather than misbehaving at run time).

    python3 python/cask/_build.py BUILD_DIR      (make does this; the module
                                                  lands in BUILD_DIR/python/cask)
    python3 python/cask/_build.py BUILD_DIR OUT RPATH   (make install: a copy in
                                                  OUT that loads libcask.so.1 from RPATH)
"""
import os
import shutil
import sys

import cffi

CDEF = r"""
typedef struct cask_client cask_client;
typedef struct { int err; char code[48]; char message[512]; } cask_error_info;
const cask_error_info *cask_error(void);
typedef struct { char name[600]; int err; char code[48]; char message[256]; } cask_item_error;
size_t cask_error_items(const cask_item_error **items);
int cask_connect(const char *socket_path, cask_client **out);
void cask_disconnect(cask_client *c);
const char *cask_default_socket(void);
int cask_hello(cask_client *c, char *version, size_t len, int *protocol);

#define CASK_MAX_FEATURES 64
typedef struct {
    char server[32]; char version[64]; int protocol; unsigned nfeatures;
    char features[64][32];
} cask_capabilities_info;
int cask_capabilities(cask_client *c, cask_capabilities_info *out);
int cask_has_feature(const cask_capabilities_info *caps, const char *feature);
const char *cask_lib_version(void);

typedef struct {
    char name[64]; char guid[24]; char state[16]; char error[256];
    uint64_t size, allocated, free; unsigned nvdevs, volumes;
    uint64_t checksum_errors, io_errors, txg;
    uint64_t log_size, log_commits, log_blocks, log_bytes, log_fallbacks, log_replayed;
    char **vdevs; unsigned nvdevs_paths;
    ...;
} cask_pool_info;
typedef struct {
    char name[320]; char guid[24]; uint64_t size; uint32_t volblocksize;
    char compression[16], checksum[16], sync[16];
    uint64_t used, logical, create_txg, creation; uint64_t referenced; uint64_t usedbydataset;
    unsigned snapshots; uint64_t usedbysnapshots; uint64_t written; char origin[600];
    uint64_t logicalused; char receive_resume_token[96]; double compressratio; double refcompressratio;
    char compression_source[8], checksum_source[8], sync_source[8];
    ...;
} cask_vol_info;
typedef struct {
    char name[600]; char volume[320]; char guid[24]; uint64_t txg, creation, size;
    uint64_t referenced; uint64_t logical; uint64_t used; uint64_t logicalused;
    double refcompressratio; unsigned holds; unsigned clones;
    ...;
} cask_snap_info;
typedef struct { char snapshot[600]; char tag[64]; uint64_t creation; ...; } cask_hold_info;
typedef struct {
    size_t size; uint32_t volblocksize; const char *compression; const char *checksum; const char *sync; ...;
} cask_vol_props;

int cask_pool_create(cask_client *c, const char *name, const char *const *paths, unsigned n, uint64_t size);
int cask_pool_import(cask_client *c, const char *name, const char *const *paths, unsigned n,
    const char *dir, char *name_out, size_t name_len);
int cask_pool_export(cask_client *c, const char *name);
int cask_pool_destroy(cask_client *c, const char *name);
int cask_pool_list(cask_client *c, cask_pool_info **out, size_t *n);
int cask_pool_status(cask_client *c, const char *name, cask_pool_info *out);
#define CASK_POOL_FORCE ...
#define CASK_POOL_REWIND ...
int cask_pool_create_ex(cask_client *c, const char *name, const char *const *paths, unsigned n,
    uint64_t size, unsigned flags);
int cask_pool_import_ex(cask_client *c, const char *name, const char *const *paths, unsigned n,
    const char *dir, unsigned flags, char *name_out, size_t name_len);
typedef struct {
    uint64_t base_txg, first_discarded_txg, last_discarded_txg, last_discarded_time_ns, newer_damaged_txg;
} cask_pool_rewind_info;
int cask_pool_rewind_get(cask_client *c, const char *name, cask_pool_rewind_info *out);
int cask_pool_clear(cask_client *c, const char *name);
int cask_pool_inject(cask_client *c, const char *name, const char *op, int vdev, uint64_t after,
    int persistent);
void cask_pool_info_clear(cask_pool_info *p);
void cask_pool_info_free(cask_pool_info *list, size_t n);

int cask_vol_create(cask_client *c, const char *name, uint64_t size, const cask_vol_props *props);
int cask_vol_destroy(cask_client *c, const char *name);
int cask_vol_destroy_ex(cask_client *c, const char *name, unsigned flags);
int cask_vol_promote(cask_client *c, const char *name);
int cask_vol_resize(cask_client *c, const char *name, uint64_t size, int shrink);
int cask_vol_rename(cask_client *c, const char *name, const char *new_name);
int cask_vol_list(cask_client *c, const char *pool, cask_vol_info **out, size_t *n);
int cask_vol_get(cask_client *c, const char *name, cask_vol_info *out);
int cask_vol_log_damaged(cask_client *c, const char *name, char *buf, size_t len);
int cask_vol_checksum(cask_client *c, const char *name, uint8_t digest[16]);
int cask_vol_replica_add(cask_client *c, const char *vol, const char *replica, uint64_t *job);
int cask_vol_replica_remove(cask_client *c, const char *vol, const char *replica, unsigned flags);
int cask_vol_replica_replace(cask_client *c, const char *vol, const char *old_r, const char *new_r,
    uint64_t *job);
int cask_vol_replica_rebuild(cask_client *c, const char *vol, const char *replica, uint64_t *job);
typedef struct { uint64_t offset, length; } cask_verify_range;
typedef struct {
    uint64_t job, size, chunks, differing; unsigned nreplicas; char replicas[5][140];
} cask_verify_result;
int cask_vol_verify(cask_client *c, const char *vol, unsigned flags, cask_verify_result *out,
    cask_verify_range **ranges, size_t *n);
typedef struct {
    char address[64]; char pool[64]; uint64_t id; int local; char state[16]; char reason[16]; char link[16];
    uint64_t acked_seq, durable_seq, lag_ops;
} cask_replica_info;
typedef struct {
    char epoch[48]; char consistency[16]; char state[16]; char fenced_by[160];
    uint64_t seq, membership_version; uint32_t deadline_ms; size_t nreplicas;
    cask_replica_info replicas[5];
} cask_repl_status;
int cask_vol_repl_status(cask_client *c, const char *name, cask_repl_status *out);
typedef struct cask_repl_lease {
	size_t size;
	char state[16];
	uint64_t left_ms;
	uint32_t renewed_by;
	uint32_t needed;
	uint64_t lease_ms;
} cask_repl_lease;
int cask_vol_repl_status_ex(cask_client *c, const char *name, cask_repl_status *out, cask_repl_lease *lease);
typedef struct { uint64_t bytes, ops, peak_bytes, peak_ops; } cask_replica_backlog;
typedef struct cask_repl_backlog {
	size_t size;
	uint64_t max_bytes, max_ops;
	uint64_t waiting, waited, ejected;
	size_t nreplicas;
	cask_replica_backlog replicas[5];
} cask_repl_backlog;
int cask_vol_repl_backlog(cask_client *c, const char *name, cask_repl_backlog *out);
int cask_vol_takeover(cask_client *c, const char *name, cask_repl_status *out);
int cask_vol_takeover_ex(cask_client *c, const char *name, unsigned flags, cask_repl_status *out);
int cask_vol_set(cask_client *c, const char *name, const char *prop, const char *value);
int cask_vol_set_many(cask_client *c, const char *name, const char *const *props,
    const char *const *values, size_t n);
int cask_vol_inherit(cask_client *c, const char *name, const char *prop);

int cask_snap_create(cask_client *c, const char *const *names, size_t n);
int cask_snap_destroy(cask_client *c, const char *name);
int cask_snap_destroy_many(cask_client *c, const char *const *names, size_t n);
int cask_snap_rename(cask_client *c, const char *name, const char *new_name);
int cask_snap_list(cask_client *c, const char *name, cask_snap_info **out, size_t *n);
int cask_snap_hold(cask_client *c, const char *tag, const char *const *names, size_t n);
int cask_snap_release(cask_client *c, const char *tag, const char *const *names, size_t n);
int cask_snap_holds(cask_client *c, const char *name, cask_hold_info **out, size_t *n);
int cask_vol_rollback(cask_client *c, const char *snap, int destroy_later);
int cask_vol_clone(cask_client *c, const char *snap, const char *new_name);

typedef struct { size_t size; const char *from; const char *token; int wait; int timeout_ms; int no_policy; ...; } cask_send_args;
int cask_send(cask_client *c, const char *snap, const cask_send_args *a, int fd, uint64_t *job);
typedef struct { size_t size; int force; int wait; int timeout_ms; int no_policy; ...; } cask_recv_args;
int cask_recv(cask_client *c, const char *vol, const cask_recv_args *a, int fd, uint64_t *job,
    char *snap_out, size_t snap_len);
int cask_recv_abandon(cask_client *c, const char *vol);
typedef struct {
    uint64_t id; char kind[16]; char pool[64]; char target[600]; char state[16];
    uint64_t done, total; uint64_t elapsed_ms; char result[600];
    int err; char code[32]; char message[1024];
    ...;
} cask_job_info;
int cask_job_get(cask_client *c, uint64_t id, cask_job_info *out);
int cask_job_wait(cask_client *c, uint64_t id, int timeout_ms, cask_job_info *out);
int cask_job_cancel(cask_client *c, uint64_t id);
int cask_job_list(cask_client *c, cask_job_info **out, size_t *n);
int cask_job_pollfd(cask_client *c, uint64_t id);
typedef struct { uint64_t offset, length; int hole; ...; } cask_extent;
typedef struct cask_diff_iter cask_diff_iter;
int cask_diff_begin(cask_client *c, const char *from, const char *to, cask_diff_iter **it);
int cask_diff_next(cask_diff_iter *it, cask_extent *ext);
void cask_diff_end(cask_diff_iter *it);
typedef struct {
    uint64_t id; char frontend[16]; char peer[80]; long uid, pid; char export_name[256]; char state[16];
    int64_t since, idle; uint64_t bytes_in, bytes_out; int requests; uint64_t queued_bytes; char tls[96];
    ...;
} cask_conn_info;
int cask_conn_list(cask_client *c, cask_conn_info **out, size_t *n);
int cask_conn_kill(cask_client *c, uint64_t id);
int cask_pool_export_ex(cask_client *c, const char *name, unsigned flags);
typedef struct { uint32_t every_min; uint32_t keep; uint32_t hourly, daily, weekly, monthly; } cask_sched;
typedef struct {
    char name[320]; cask_sched policy; uint64_t set_time; uint64_t auto_snapshots; char last_snapshot[600];
    int64_t last_run; int64_t next_run; uint64_t runs, failures, pruned; char last_error[200];
} cask_sched_info;
int cask_sched_set(cask_client *c, const char *name, const cask_sched *policy);
int cask_sched_list(cask_client *c, const char *name, cask_sched_info **out, size_t *n);
int cask_sched_run(cask_client *c, const char *name, char *snapshot, size_t len);
typedef struct { int line, column; char message[1024]; ...; } cask_apply_error;
#define CASK_APPLY_PLANNED ...
#define CASK_APPLY_DONE ...
#define CASK_APPLY_FAILED ...
#define CASK_APPLY_NOT_DONE ...
typedef struct {
    char verb[16]; char kind[8]; char name[320]; char detail[1200]; size_t step; char action[1400];
    int state; int err; char code[32]; char message[512]; ...;
} cask_apply_item;
typedef struct {
    cask_apply_error *errors; size_t nerrors; cask_apply_item *items; size_t nitems;
    size_t ncreate, nchange, ndestroy, nunchanged, nsteps, ndone, nskipped; ...;
} cask_apply_result;
typedef struct {
    size_t size; const char *name; const char *base_dir; int dry_run; int prune; void *progress_arg; ...;
} cask_apply_args;
int cask_apply(cask_client *c, const char *text, size_t len, const cask_apply_args *a, cask_apply_result **out);
void cask_apply_result_free(cask_apply_result *r);
int cask_manifest_get(cask_client *c, const char *const *pools, size_t npools, char **text);
void free(void *);
"""


def build(build_dir, out=None, rpath=None):
    """Compile the binding against build_dir's libcask.so.1 into out (default
    BUILD/python/cask); the module finds the library through rpath (default
    build_dir: for an installed copy, the library's installed directory)."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    libdir = os.path.abspath(build_dir)
    out = out or os.path.join(libdir, "python", "cask")
    os.makedirs(out, exist_ok=True)
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("cask._cask_cffi", '#include <stdlib.h>\n#include "cask/client.h"\n',
                   include_dirs=[os.path.join(top, "include")], library_dirs=[libdir],
                   libraries=[":libcask.so.1"], extra_link_args=["-Wl,-rpath," + (rpath or libdir)],
                   extra_compile_args=["-Wall", "-Werror", "-Wno-unused-parameter"])
    tmp = os.path.join(libdir, "python", "tmp" if rpath is None else "tmp-install")
    lib = ffi.compile(tmpdir=tmp, verbose=False)
    shutil.copy(lib, out)
    for f in os.listdir(os.path.join(top, "python", "cask")):
        if f.endswith(".py") and f != "_build.py":
            shutil.copy(os.path.join(top, "python", "cask", f), out)
    if rpath is None:
        open(os.path.join(out, ".built"), "w").close()


if __name__ == "__main__":
    # _build.py [BUILD [OUT RPATH]]
    a = sys.argv[1:]
    build(a[0] if a else "build", *(a[1:3] if len(a) >= 3 else []))
