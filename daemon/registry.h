#ifndef CASK_DAEMON_REGISTRY_H
#define CASK_DAEMON_REGISTRY_H
#include <stddef.h>
#include <stdint.h>
#include "cask/engine.h"

/* The pools this caskd owns, remembered across restarts in STATE/pools.cache. */
int reg_init(const char *state_dir, const ce_pool_opts *opts);
void reg_shutdown(void); /* commit and export every pool */
/* Log pools that suspend or come back online (a thread polling once a second). */
int reg_watch_start(void);
void reg_watch_stop(void);

/* flags: CE_POOL_FORCE (create), CE_POOL_REWIND (import); 0 for neither */
int reg_pool_create(const char *name, const char *const *paths, unsigned n, uint64_t size, unsigned flags);
int reg_pool_import(const char *const *paths, unsigned n, unsigned flags, char *name_out, size_t name_len);
int reg_pool_export(const char *name);
int reg_pool_destroy(const char *name);
/* Run fn with the named pool held (it cannot be exported meanwhile). */
int reg_with_pool(const char *name, int (*fn)(ce_pool *p, void *arg), void *arg);
/* Names of the open pools, sorted; caller frees the array and the strings. */
int reg_pool_names(char ***names, size_t *n);
/* Paths of a pool's vdevs (for status), newly allocated. */
int reg_pool_paths(const char *name, char ***paths, unsigned *n);

/* The intent log damage the pool's last replay found (ce_pool_stat log_*), for people: 1 with
 * buf filled, 0 (buf "") when there is none. reg_log_damage logs it as a warning. */
int reg_log_damage_text(const ce_pool_stat *st, const char *name, char *buf, size_t len);
void reg_log_damage(ce_pool *p);

/* An export is "pool/vol". The pool stays held until reg_vol_close. */
int reg_vol_open(const char *export_name, ce_vol **v, ce_pool **p);
void reg_vol_close(ce_vol *v, ce_pool *p);
/* Every export name, sorted; caller frees. */
int reg_exports(char ***names, size_t *n);
#endif
