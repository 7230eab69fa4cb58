/*
 * registry.c -- the pools caskd owns.
 *
 * Owns the list of open pools and the pool cache file STATE/pools.cache,
 * which lists each pool's vdev paths so that caskd imports them again at
 * start. The file is rewritten whole (temporary file, fsync, rename) after
 * every change, so a crash leaves the old or the new list, never half.
 *
 * Invariants:
 *   1. A pool in use (an open volume handle, or a request running on it
 *      through reg_with_pool) is never exported or destroyed: those fail
 *      with EBUSY. When the only users are requests (short, like a
 *      scheduler pass or a property change; not a client's open volume),
 *      export and destroy first wait up to REMOVE_WAIT_S for them to end,
 *      so that one running at that moment does not make them fail.
 *   2. A pool listed in the cache that fails to import at start is logged
 *      and kept in the cache (the disk may come back), not dropped. That
 *      includes one that would need a rewind (POOL_NEEDS_REWIND): start
 *      never discards committed txgs; only pool.import with "rewind" does.
 *   3. One caskd per state directory: reg_init takes an exclusive flock on
 *      STATE/caskd.lock (which holds the owner's pid, for the message) and
 *      keeps it until the process exits; a second caskd on the same
 *      directory refuses to start before it reads or writes anything
 *      there, so it can never rewrite the first one's pool cache.
 *
 * Format of pools.cache (text, one pool per line):
 *   cask-pool-cache 1
 *   pool<TAB>NAME<TAB>PATH[<TAB>PATH...]
 */
#include "registry.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

typedef struct rpool {
	char name[64];
	ce_pool *p;      /* NULL when listed but not imported */
	char **paths;
	unsigned npaths;
	int users;
	int requests;    /* of users: reg_with_pool calls running */
	int suspended_seen; /* the watcher logged its suspension */
} rpool;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle = PTHREAD_COND_INITIALIZER;
static rpool *pools;
static size_t npools;
static char cache_path[PATH_MAX];
static ce_pool_opts popts;

/* "2026-12-01 23:59:59 UTC" for a time in ns since the epoch */
static void
utc_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	if (ns == 0 || gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "an unknown time");
}

/*
 * One line for a pool that an import rewound past damaged txgs (what was
 * discarded, and when the newest of them had committed), or that a
 * read-only import found such a txg in.
 */
static void
log_rewound(ce_pool *p)
{
	ce_pool_stat st;
	char when[64];
	ce_pool_stat_get(p, &st);
	if (st.rewound_txg != 0) {
		utc_time(st.rewound_time_ns, when, sizeof(when));
		log_warn("pool %s: imported with rewind: txgs %" PRIu64 "-%" PRIu64 " discarded (the newest "
		    "committed at %s, its uberblock damaged in every copy); the pool goes on from txg %" PRIu64,
		    ce_pool_name(p), st.rewound_base_txg + 1, st.rewound_txg, when, st.rewound_base_txg);
	} else if (st.newer_damaged_txg != 0) {
		log_warn("pool %s: imported read-only at an older txg than txg %" PRIu64 ", whose uberblock "
		    "is damaged in every copy", ce_pool_name(p), st.newer_damaged_txg);
	}
	reg_log_damage(p);
}

int
reg_log_damage_text(const ce_pool_stat *st, const char *name, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	if (st->log_damaged_seq != 0) {
		if (st->log_lost_blocks > 0)
			used += (size_t)snprintf(buf, len, "intent log block %" PRIu64 " fails its checksum: replay "
			    "stopped there, and the %" PRIu64 " intact blocks after it (%" PRIu64 " records of "
			    "acknowledged writes) were not replayed", st->log_damaged_seq, st->log_lost_blocks,
			    st->log_lost_records);
		else
			used += (size_t)snprintf(buf, len, "the intent log's last block (%" PRIu64 ") fails its "
			    "checksum and was not replayed (damage, or a write a crash tore before it was "
			    "acknowledged)", st->log_damaged_seq);
	}
	if (st->log_bad_inplace != 0 && used < len)
		used += (size_t)snprintf(buf + used, len - used, "%s%" PRIu64 " logged write%s whose data fails its "
		    "checksum %s not replayed%s", used ? "; " : "", st->log_bad_inplace,
		    st->log_bad_inplace == 1 ? "" : "s", st->log_bad_inplace == 1 ? "was" : "were",
		    st->log_bad_inplace_certain ? " (they had been acknowledged)" :
		    " (damage, or the last writes before a crash, never acknowledged)");
	if (used == 0)
		return 0;
	if (used < len)
		used += (size_t)snprintf(buf + used, len - used, "; the ranges they wrote read older data");
	if (st->log_damaged_vols != 0 && used < len)
		used += (size_t)snprintf(buf + used, len - used, "; %u volume%s marked (property log_damaged)",
		    st->log_damaged_vols, st->log_damaged_vols == 1 ? " is" : "s are");
	if (used < len)
		snprintf(buf + used, len - used, ". 'cask pool clear %s' acknowledges this", name);
	return 1;
}

void
reg_log_damage(ce_pool *p)
{
	ce_pool_stat st;
	char msg[1024];
	ce_pool_stat_get(p, &st);
	if (!reg_log_damage_text(&st, ce_pool_name(p), msg, sizeof(msg)))
		return;
	log_warn("pool %s: %s", ce_pool_name(p), msg);
	ce_vol_info *vi;
	size_t n;
	if (st.log_damaged_vols == 0 || ce_vol_list(p, &vi, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (vi[i].log_damaged[0] != '\0')
			log_warn("pool %s: volume %s: log_damaged=%s", ce_pool_name(p), vi[i].name, vi[i].log_damaged);
	free(vi);
}

static rpool *
find(const char *name)
{
	for (size_t i = 0; i < npools; i++)
		if (strcmp(pools[i].name, name) == 0)
			return &pools[i];
	return NULL;
}

static void
free_paths(char **paths, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Rewrite the cache file; caller holds lock. */
static int
save_cache(void)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", cache_path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return err_set(-errno, "%s: %s", tmp, strerror(errno));
	fprintf(f, "cask-pool-cache 1\n");
	for (size_t i = 0; i < npools; i++) {
		fprintf(f, "pool\t%s", pools[i].name);
		for (unsigned k = 0; k < pools[i].npaths; k++)
			fprintf(f, "\t%s", pools[i].paths[k]);
		fprintf(f, "\n");
	}
	int err = 0;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		err = -errno;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, cache_path) != 0)
		err = -errno;
	if (err != 0) {
		unlink(tmp);
		return err_set(err, "cannot save %s: %s", cache_path, strerror(-err));
	}
	return 0;
}

/* Once per pool opened: whether its reads go through io_uring, and if not why (docs/design-vio.md §8). */
static void
log_aread(const char *name, ce_pool *p)
{
	ce_aread_stat as;
	if (p == NULL || ce_pool_aread_stat(p, &as) != 0)
		return;
	if (as.available)
		log_info("pool %s: asynchronous reads through io_uring", name);
	else
		log_info("pool %s: asynchronous reads unavailable (%s): reads use the IO worker threads", name, as.why);
}

static void
add(const char *name, ce_pool *p, char **paths, unsigned n)
{
	log_aread(name, p);
	pools = xrealloc(pools, (npools + 1) * sizeof(rpool));
	rpool *r = &pools[npools++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->p = p;
	r->paths = paths;
	r->npaths = n;
}

static char **
abs_paths(const char *const *paths, unsigned n)
{
	char **out = xcalloc(n, sizeof(char *));
	for (unsigned i = 0; i < n; i++) {
		char buf[PATH_MAX];
		if (realpath(paths[i], buf) != NULL)
			out[i] = xstrdup(buf);
		else
			out[i] = xstrdup(paths[i]);
	}
	return out;
}

/* Invariant 3: the state directory's lock, held (never closed) for the life of the process. */
static int
lock_state(const char *state_dir)
{
	char path[PATH_MAX], owner[32] = "";
	snprintf(path, sizeof(path), "%s/caskd.lock", state_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(-errno, "%s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		ssize_t n = pread(fd, owner, sizeof(owner) - 1, 0);
		owner[n > 0 ? n : 0] = '\0';
		owner[strcspn(owner, "\n")] = '\0';
		close(fd);
		if (e != EWOULDBLOCK)
			return err_set(-e, "%s: cannot lock: %s", path, strerror(e));
		return err_set(-EBUSY, "state directory %s is in use by another caskd%s%s%s; "
		    "give each caskd its own --state", state_dir, owner[0] ? " (pid " : "", owner,
		    owner[0] ? ")" : "");
	}
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		log_warn("%s: cannot record the pid: %s", path, strerror(errno));
	return 0;
}

int
reg_init(const char *state_dir, const ce_pool_opts *opts)
{
	int err = lock_state(state_dir);
	if (err != 0)
		return err;
	popts = *opts;
	snprintf(cache_path, sizeof(cache_path), "%s/pools.cache", state_dir);
	FILE *f = fopen(cache_path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		return err_set(-errno, "%s: %s", cache_path, strerror(errno));
	}
	char line[8192];
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (lineno == 1) {
			if (strcmp(line, "cask-pool-cache 1") != 0) {
				fclose(f);
				return err_set(-EINVAL, "%s: not a pool cache (version line '%s')", cache_path, line);
			}
			continue;
		}
		char *save = NULL, *tok = strtok_r(line, "\t", &save);
		if (tok == NULL || strcmp(tok, "pool") != 0)
			continue;
		char *name = strtok_r(NULL, "\t", &save);
		char *paths[64];
		unsigned n = 0;
		while (n < 64 && (tok = strtok_r(NULL, "\t", &save)) != NULL)
			paths[n++] = tok;
		if (name == NULL || n == 0) {
			log_warn("%s:%d: malformed line ignored", cache_path, lineno);
			continue;
		}
		ce_pool *p = NULL;
		err = ce_pool_import((const char *const *)paths, n, &popts, &p);
		if (err != 0 && ce_errcode() == CE_E_POOL_NEEDS_REWIND) {
			log_err("pool %s: not imported: %s (kept in the pool cache; 'cask pool import --rewind' "
			    "with its vdevs accepts the loss)", name, ce_errmsg());
			p = NULL;
		} else if (err != 0) {
			log_err("pool %s: import failed: %s (kept in the pool cache)", name, ce_errmsg());
			p = NULL;
		} else if (strcmp(ce_pool_name(p), name) != 0) {
			log_warn("pool cache names %s, but its vdevs hold pool %s", name, ce_pool_name(p));
			name = (char *)ce_pool_name(p);
		}
		if (p != NULL) {
			log_info("pool %s imported (%u vdevs)", name, n);
			log_rewound(p);
		}
		add(name, p, abs_paths((const char *const *)paths, n), n);
	}
	fclose(f);
	return 0;
}

/*
 * The watcher: one log line when a pool suspends (with the reason and what
 * to do) and one when it is back online. Polls once a second.
 */
static pthread_t watch_tid;
static int watch_running, watch_stop;
static pthread_cond_t watch_cv = PTHREAD_COND_INITIALIZER;

static void *
watch(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!watch_stop) {
		for (size_t i = 0; i < npools; i++) {
			rpool *r = &pools[i];
			if (r->p == NULL)
				continue;
			ce_pool_stat st;
			ce_pool_stat_get(r->p, &st);
			if (st.suspended && !r->suspended_seen) {
				log_err("pool %s SUSPENDED: %s (%s); writes and flushes fail until the device "
				    "works and 'cask pool clear %s' is run", r->name, st.suspend_reason,
				    strerror(-st.suspended), r->name);
				r->suspended_seen = 1;
			} else if (!st.suspended && r->suspended_seen) {
				log_info("pool %s is online again", r->name);
				r->suspended_seen = 0;
			}
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&watch_cv, &lock, &ts);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int
reg_watch_start(void)
{
	watch_stop = 0;
	int err = pthread_create(&watch_tid, NULL, watch, NULL);
	if (err != 0)
		return err_set(-err, "cannot start the pool watcher thread");
	watch_running = 1;
	return 0;
}

void
reg_watch_stop(void)
{
	if (!watch_running)
		return;
	pthread_mutex_lock(&lock);
	watch_stop = 1;
	pthread_cond_broadcast(&watch_cv);
	pthread_mutex_unlock(&lock);
	pthread_join(watch_tid, NULL);
	watch_running = 0;
}

void
reg_shutdown(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < npools; i++) {
		while (pools[i].users > 0)
			pthread_cond_wait(&idle, &lock);
		if (pools[i].p != NULL) {
			int err = ce_pool_export(pools[i].p);
			if (err != 0)
				log_err("pool %s: export failed: %s", pools[i].name, ce_errmsg());
			else
				log_info("pool %s exported", pools[i].name);
		}
		free_paths(pools[i].paths, pools[i].npaths);
	}
	free(pools);
	pools = NULL;
	npools = 0;
	pthread_mutex_unlock(&lock);
}

int
reg_pool_create(const char *name, const char *const *paths, unsigned n, uint64_t size, unsigned flags)
{
	ce_pool_opts o = popts;
	o.vdev_size = size;
	o.flags |= flags & CE_POOL_FORCE;
	pthread_mutex_lock(&lock);
	if (find(name) != NULL) {
		pthread_mutex_unlock(&lock);
		return err_set(-EEXIST, "pool %s already exists", name);
	}
	ce_pool *p;
	int err = ce_pool_create(name, paths, n, &o, &p);
	if (err == 0) {
		add(name, p, abs_paths(paths, n), n);
		if ((err = save_cache()) != 0)
			log_err("%s", ce_errmsg());
		log_info("pool %s created (%u vdevs%s)", name, n, flags & CE_POOL_FORCE ? ", forced" : "");
		err = 0;
	}
	pthread_mutex_unlock(&lock);
	return err;
}

int
reg_pool_import(const char *const *paths, unsigned n, unsigned flags, char *name_out, size_t name_len)
{
	ce_pool *p;
	ce_pool_opts o = popts;
	o.flags |= flags & CE_POOL_REWIND;
	ce_vdev_label lb;
	/* An imported pool's vdevs are locked: say what matters, not that they are locked. */
	if (n > 0 && ce_vdev_probe(paths[0], &lb) == 0) {
		pthread_mutex_lock(&lock);
		rpool *have = find(lb.pool_name);
		int open = have != NULL && have->p != NULL;
		pthread_mutex_unlock(&lock);
		if (open)
			return err_set(-EEXIST, "pool %s is already imported", lb.pool_name);
	}
	int err = ce_pool_import(paths, n, &o, &p);
	if (err != 0)
		return err;
	log_rewound(p);
	pthread_mutex_lock(&lock);
	rpool *r = find(ce_pool_name(p));
	if (r != NULL && r->p != NULL) {
		pthread_mutex_unlock(&lock);
		ce_pool_export(p);
		return err_set(-EEXIST, "a pool named %s is already imported", ce_pool_name(p));
	}
	if (r != NULL) {
		r->p = p;
		log_aread(r->name, p);
		free_paths(r->paths, r->npaths);
		r->paths = abs_paths(paths, n);
		r->npaths = n;
	} else {
		add(ce_pool_name(p), p, abs_paths(paths, n), n);
	}
	snprintf(name_out, name_len, "%s", ce_pool_name(p));
	if (save_cache() != 0)
		log_err("%s", ce_errmsg());
	log_info("pool %s imported (%u vdevs)", ce_pool_name(p), n);
	pthread_mutex_unlock(&lock);
	return 0;
}

#define REMOVE_WAIT_S 5

static int
remove_pool(const char *name, int destroy)
{
	pthread_mutex_lock(&lock);
	rpool *r = find(name);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += REMOVE_WAIT_S;
	/* invariant 1: requests alone are waited for (r is found again: the array may move meanwhile) */
	while (r != NULL && r->users > 0 && r->users == r->requests &&
	    pthread_cond_timedwait(&idle, &lock, &dl) == 0)
		r = find(name);
	if (r == NULL) {
		pthread_mutex_unlock(&lock);
		return err_set(-ENOENT, "pool %s does not exist", name);
	}
	if (r->users > 0) {
		pthread_mutex_unlock(&lock);
		return err_set(-EBUSY, "pool %s is in use (%d open volumes or requests)", name, r->users);
	}
	int err = 0;
	if (r->p != NULL)
		err = ce_pool_export(r->p);
	if (err == 0 && destroy) {
		/* Wipe both label regions so the vdevs can never be imported again. */
		static char zero[512 * 1024]; /* one label region */
		for (unsigned i = 0; i < r->npaths && err == 0; i++) {
			int fd = open(r->paths[i], O_WRONLY | O_CLOEXEC);
			off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
			if (fd < 0 || end < 0 ||
			    pwrite(fd, zero, sizeof(zero), 0) != (ssize_t)sizeof(zero) ||
			    pwrite(fd, zero, sizeof(zero), (end / (off_t)sizeof(zero) - 1) * (off_t)sizeof(zero)) !=
				(ssize_t)sizeof(zero) || fsync(fd) != 0)
				err = err_set(-errno, "%s: cannot wipe its labels: %s", r->paths[i], strerror(errno));
			if (fd >= 0)
				close(fd);
		}
	}
	if (err == 0) {
		log_info("pool %s %s", name, destroy ? "destroyed" : "exported");
		free_paths(r->paths, r->npaths);
		*r = pools[--npools];
		if (save_cache() != 0)
			log_err("%s", ce_errmsg());
	} else {
		r->p = NULL; /* export closed it even on error */
	}
	pthread_mutex_unlock(&lock);
	return err;
}

int
reg_pool_export(const char *name)
{
	return remove_pool(name, 0);
}

int
reg_pool_destroy(const char *name)
{
	return remove_pool(name, 1);
}

static rpool *
hold(const char *name, int *err)
{
	rpool *r = find(name);
	if (r == NULL) {
		*err = err_set(-ENOENT, "pool %s does not exist", name);
		return NULL;
	}
	if (r->p == NULL) {
		*err = err_set(-ENXIO, "pool %s is not imported (its vdevs failed to open at start)", name);
		return NULL;
	}
	r->users++;
	*err = 0;
	return r;
}

static void
release(const char *name)
{
	rpool *r = find(name);
	VERIFY(r != NULL && r->users > 0);
	if (--r->users == 0)
		pthread_cond_broadcast(&idle);
}

int
reg_with_pool(const char *name, int (*fn)(ce_pool *p, void *arg), void *arg)
{
	int err;
	pthread_mutex_lock(&lock);
	rpool *r = hold(name, &err);
	ce_pool *p = r ? r->p : NULL;
	if (r != NULL)
		r->requests++;
	pthread_mutex_unlock(&lock);
	if (r == NULL)
		return err;
	err = fn(p, arg);
	pthread_mutex_lock(&lock);
	r = find(name);
	VERIFY(r != NULL && r->requests > 0);
	r->requests--;
	release(name);
	pthread_mutex_unlock(&lock);
	return err;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
reg_pool_names(char ***names, size_t *n)
{
	pthread_mutex_lock(&lock);
	char **out = xcalloc(npools ? npools : 1, sizeof(char *));
	for (size_t i = 0; i < npools; i++)
		out[i] = xstrdup(pools[i].name);
	*n = npools;
	pthread_mutex_unlock(&lock);
	qsort(out, *n, sizeof(char *), cmp_str);
	*names = out;
	return 0;
}

int
reg_pool_paths(const char *name, char ***paths, unsigned *n)
{
	pthread_mutex_lock(&lock);
	rpool *r = find(name);
	if (r == NULL) {
		pthread_mutex_unlock(&lock);
		return err_set(-ENOENT, "pool %s does not exist", name);
	}
	char **out = xcalloc(r->npaths, sizeof(char *));
	for (unsigned i = 0; i < r->npaths; i++)
		out[i] = xstrdup(r->paths[i]);
	*n = r->npaths;
	*paths = out;
	pthread_mutex_unlock(&lock);
	return 0;
}

int
reg_vol_open(const char *export_name, ce_vol **v, ce_pool **p)
{
	char pool[64];
	const char *slash = strchr(export_name, '/');
	if (slash == NULL || slash == export_name || (size_t)(slash - export_name) >= sizeof(pool) ||
	    slash[1] == '\0')
		return err_set(-EINVAL, "export '%s' is not of the form POOL/VOLUME", export_name);
	snprintf(pool, sizeof(pool), "%.*s", (int)(slash - export_name), export_name);
	int err;
	pthread_mutex_lock(&lock);
	rpool *r = hold(pool, &err);
	pthread_mutex_unlock(&lock);
	if (r == NULL)
		return err;
	err = ce_vol_open(r->p, slash + 1, v);
	if (err != 0) {
		pthread_mutex_lock(&lock);
		release(pool);
		pthread_mutex_unlock(&lock);
		return err;
	}
	*p = r->p;
	return 0;
}

void
reg_vol_close(ce_vol *v, ce_pool *p)
{
	ce_vol_close(v);
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < npools; i++)
		if (pools[i].p == p)
			release(pools[i].name);
	pthread_mutex_unlock(&lock);
}

int
reg_exports(char ***names, size_t *n)
{
	pthread_mutex_lock(&lock);
	char **out = NULL;
	size_t k = 0;
	for (size_t i = 0; i < npools; i++) {
		if (pools[i].p == NULL)
			continue;
		ce_vol_info *vi;
		size_t nv;
		if (ce_vol_list(pools[i].p, &vi, &nv) != 0)
			continue;
		out = xrealloc(out, (k + nv + 1) * sizeof(char *));
		for (size_t j = 0; j < nv; j++) {
			char buf[400];
			snprintf(buf, sizeof(buf), "%s/%s", pools[i].name, vi[j].name);
			out[k++] = xstrdup(buf);
		}
		free(vi);
		ce_snap_info *si;
		size_t ns;
		if (ce_snap_list(pools[i].p, NULL, &si, &ns) != 0)
			continue;
		out = xrealloc(out, (k + ns + 1) * sizeof(char *));
		for (size_t j = 0; j < ns; j++) {
			char buf[400];
			snprintf(buf, sizeof(buf), "%s/%s", pools[i].name, si[j].name);
			out[k++] = xstrdup(buf);
		}
		free(si);
	}
	pthread_mutex_unlock(&lock);
	if (out == NULL)
		out = xcalloc(1, sizeof(char *));
	qsort(out, k, sizeof(char *), cmp_str);
	*names = out;
	*n = k;
	return 0;
}
