/*
 * pool.c -- pools: creating, importing, exporting and describing them.
 *
 * Owns the ce_pool object's life cycle:
 *
 *   ce_pool_create: format vdevs (labels), empty MOS, commit txg 1
 *   ce_pool_import: read labels, check the vdev set, pick the newest
 *                   valid uberblock, load MOS, bitmaps and volumes
 *          -> open (sync thread running)
 *   ce_pool_export: commit everything, stop the sync thread, close
 *   ce_pool_abandon: stop without committing the open txg
 *
 * Invariants:
 *   1. Import never writes before every check has passed: vdev files are
 *      first opened read-only, and a file that is not one of this pool's
 *      vdevs (no label, damaged labels, truncated, another pool, a vdev
 *      missing or given twice) is refused with a message naming it.
 *   2. Create refuses a file that already holds a cask label, so a pool
 *      cannot be overwritten by accident; files it created are removed
 *      again if creation fails.
 *   3. An open vdev is flocked: two processes never own one pool.
 */
#include "aread.h"
#include "blkio.h"
#include "bufpool.h"
#include "dataset.h"
#include "hold.h"
#include "label.h"
#include "mos.h"
#include "pipe.h"
#include "pool_impl.h"
#include "pool_sync.h"
#include "sched_policy.h"
#include "attr.h"
#include "txg.h"
#include "uberblock.h"
#include "util.h"
#include "vdev_check.h"
#include "vol.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *
ce_errmsg(void)
{
	return err_get();
}

int
ce_vdev_probe(const char *path, ce_vdev_label *out)
{
	ce_backend *be;
	label_phys lb;
	int nvalid;
	err_clear();
	int err = ce_backend_file_open(path, CE_BE_RDONLY | CE_BE_NOLOCK, &be);
	if (err != 0)
		return err;
	err = label_read(be, path, &lb, &nvalid);
	be->close(be);
	if (err != 0)
		return err;
	memset(out, 0, sizeof(*out));
	snprintf(out->pool_name, sizeof(out->pool_name), "%s", lb.lb_pool_name);
	out->pool_guid = lb.lb_pool_guid;
	out->index = lb.lb_vdev_index;
	out->nvdevs = lb.lb_nvdevs;
	return 0;
}

static int
pool_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > CE_POOL_NAME_MAX || !isalnum((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return 0;
	}
	return 1;
}

static void
opts_defaults(ce_pool_opts *o, const ce_pool_opts *in)
{
	memset(o, 0, sizeof(*o));
	if (in != NULL)
		*o = *in;
	if (o->cache_bytes == 0)
		o->cache_bytes = 256ull << 20;
	if (o->readahead_bytes == 0)
		o->readahead_bytes = 4ull << 20;
	if (o->readahead_bytes == CE_READAHEAD_NONE)
		o->readahead_bytes = 0;
	o->readahead_bytes = MIN(o->readahead_bytes, MIN(64ull << 20, o->cache_bytes / 4));
	if (o->dirty_max == 0)
		o->dirty_max = 512ull << 20;
	if (o->dirty_sync == 0)
		o->dirty_sync = o->dirty_max / 4;
	if (o->txg_timeout_ms == 0)
		o->txg_timeout_ms = 5000;
}

static ce_pool *
pool_alloc(const ce_pool_opts *opts, unsigned nvdevs)
{
	ce_pool *p = xcalloc(1, sizeof(*p));
	opts_defaults(&p->opts, opts);
	p->nvdevs = nvdevs;
	p->vds = xcalloc(nvdevs, sizeof(vdev));
	for (unsigned i = 0; i < nvdevs; i++)
		p->vds[i].fd = -1;
	pthread_mutex_init(&p->config_lock, NULL);
	pthread_mutex_init(&p->lock, NULL);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&p->free_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	txg_init(p);
	ilog_init(p);
	ilog_set_ops(p, &vol_ilog_ops);
	pool_sync_init(p);
	dataset_init(p);
	hold_init(p);
	sched_init(p);
	attr_init(p);
	fault_init(&p->faults);
	return p;
}

static void
pool_free(ce_pool *p)
{
	VERIFY(!txg_running(p)); /* the sync thread stopped first (export, abandon, a failed open) */
	aread_fini(p);
	ilog_fini(p);
	vol_free_all(p);
	pool_sync_fini(p);
	hold_fini(p);
	sched_fini(p);
	attr_fini(p);
	repl_pool_fini(p);
	if (p->alloc.v != NULL)
		alloc_fini(&p->alloc);
	if (p->cache.max != 0)
		cache_fini(&p->cache);
	if (p->budgeted)
		bufpool_budget_add(-(long long)(p->opts.dirty_max + p->opts.cache_bytes));
	pipe_fini(p); /* its workers, before the buffers they might use */
	blk_fini(p);
	mos_fini(p);
	for (unsigned i = 0; i < p->nvdevs; i++) {
		if (p->vds[i].be != NULL)
			p->vds[i].be->close(p->vds[i].be);
		free(p->vds[i].path);
	}
	free(p->vds);
	fault_fini(&p->faults);
	pthread_mutex_destroy(&p->config_lock);
	pthread_mutex_destroy(&p->lock);
	pthread_rwlock_destroy(&p->free_lock);
	txg_fini(p);
	free(p);
}

static int
open_vdev(const ce_pool_opts *o, const char *path, unsigned index, unsigned flags, vdev *vd,
    fault_state *fstate)
{
	ce_backend *be;
	int err = ce_backend_file_open(path, flags, &be);
	if (err != 0)
		return err;
	vd->fd = o->wrap != NULL ? -1 : vdev_backend_fd(be); /* aread.c reads the plain file itself */
	if (o->wrap != NULL)
		be = o->wrap(be, index, o->wrap_arg);
	vd->be = fault_wrap(be, index, fstate);
	vd->path = xstrdup(path);
	vd->index = index;
	return 0;
}

static void
pool_setup_memory(ce_pool *p)
{
	bufpool_budget_add((long long)(p->opts.dirty_max + p->opts.cache_bytes));
	p->budgeted = 1;
	uint64_t ns[CE_MAX_VDEVS];
	for (unsigned i = 0; i < p->nvdevs; i++)
		ns[i] = p->vds[i].nsectors;
	alloc_init(&p->alloc, p->nvdevs, ns);
	cache_init(&p->cache, p->opts.cache_bytes);
}

int
ce_pool_create(const char *name, const char *const *paths, unsigned npaths,
    const ce_pool_opts *opts, ce_pool **out)
{
	char *created[CE_MAX_VDEVS] = { NULL }; /* files this call made: removed if it fails */
	ce_pool *p = NULL;
	int err;

	err_clear();
	if (!pool_name_valid(name))
		return err_set(-EINVAL, "bad pool name '%s' (1-%u characters: letters, digits, "
		    "'_', '-', '.'; starting with a letter or digit)", name ? name : "", CE_POOL_NAME_MAX);
	if (npaths == 0 || npaths > CE_MAX_VDEVS)
		return err_set(-EINVAL, "a pool needs 1 to %u vdevs", CE_MAX_VDEVS);
	p = pool_alloc(opts, npaths);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->guid = util_random64();

	int force = (p->opts.flags & CE_POOL_FORCE) != 0;
	for (unsigned i = 0; i < npaths; i++) {
		/*
		 * Read-only first (vdev_check.c): links, signatures, data and the
		 * size are checked, and an existing vdev refused, before anything
		 * is created, locked or written.
		 */
		char canon[PATH_MAX];
		int missing;
		ce_vdev_label old;
		if (!force && ce_vdev_probe(paths[i], &old) == 0) {
			err = err_set(-EEXIST, "%s: already a vdev of pool '%s'; destroy that pool first "
			    "(or use -f if that pool is gone for good)", paths[i], old.pool_name);
			goto fail;
		}
		if ((err = vdev_check_new(paths[i], p->opts.vdev_size, force, canon, sizeof(canon),
		    &missing)) != 0)
			goto fail;
		struct stat st;
		if (missing || (stat(canon, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)) {
			if (p->opts.vdev_size < CE_MIN_VDEV_SIZE) {
				err = err_set(-EINVAL, "%s: %s; give a size of at least 16M to create it",
				    paths[i], missing ? "does not exist" : "is empty");
				goto fail;
			}
			/* O_EXCL | O_NOFOLLOW: never through a link planted since the check */
			int fd = open(canon, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (missing ? O_CREAT | O_EXCL : 0),
			    0600);
			if (fd >= 0 && missing)
				created[i] = xstrdup(canon);
			if (fd < 0 || ftruncate(fd, (off_t)p->opts.vdev_size) != 0) {
				err = err_set(-errno, "%s: cannot create: %s", paths[i], strerror(errno));
				if (fd >= 0)
					close(fd);
				goto fail;
			}
			close(fd);
		}
		if ((err = open_vdev(&p->opts, canon, i, (p->opts.flags & ~CE_BE_RDONLY) | CE_BE_NOFOLLOW,
		    &p->vds[i], &p->faults)) != 0)
			goto fail;
		vdev *vd = &p->vds[i];
		vd->asize = vdev_asize_of(vd->be->size);
		if (vd->asize < CE_MIN_VDEV_SIZE) {
			err = err_set(-EINVAL, "%s: too small (%" PRIu64 " bytes; at least 16M)",
			    paths[i], vd->be->size);
			goto fail;
		}
		vd->nsectors = vdev_nsectors_of(vd->asize);
		vd->guid = util_random64();
	}
	label_phys lb;
	memset(&lb, 0, sizeof(lb));
	lb.lb_magic = LB_MAGIC;
	lb.lb_version = CE_FORMAT_VERSION;
	lb.lb_pool_guid = p->guid;
	lb.lb_nvdevs = npaths;
	lb.lb_create_txg = 1;
	lb.lb_ctime = (uint64_t)time(NULL);
	snprintf(lb.lb_pool_name, sizeof(lb.lb_pool_name), "%s", name);
	for (unsigned i = 0; i < npaths; i++)
		lb.lb_vdev_guids[i] = p->vds[i].guid;
	for (unsigned i = 0; i < npaths; i++) {
		lb.lb_vdev_guid = p->vds[i].guid;
		lb.lb_vdev_index = i;
		lb.lb_asize = p->vds[i].asize;
		label_seal(&lb);
		if ((err = label_write(&p->vds[i], &lb)) != 0) {
			err = err_set(err, "%s: cannot write label: %s", paths[i], strerror(-err));
			goto fail;
		}
	}
	pool_setup_memory(p);
	aread_init(p); /* the read ring, or the reason there is none */
	mos_init_empty(p);
	if ((err = ilog_create_region(p)) != 0)
		goto fail;
	ilog_new_epoch(p, 1);
	txg_reset(p, 0); /* txg 1 open */
	if ((err = pool_sync(p, 1)) != 0) {
		err = err_set(err, "pool %s: first commit failed: %s", name, strerror(-err));
		goto fail;
	}
	txg_reset(p, 1);
	if ((err = txg_start(p)) != 0)
		goto fail;
	*out = p;
	for (unsigned i = 0; i < npaths; i++)
		free(created[i]);
	return 0;
fail:
	for (unsigned i = 0; i < npaths; i++) {
		if (created[i])
			unlink(created[i]);
		free(created[i]);
	}
	pool_free(p);
	return err;
}

int
ce_pool_import(const char *const *paths, unsigned npaths, const ce_pool_opts *opts,
    ce_pool **out)
{
	label_phys lbs[CE_MAX_VDEVS];
	int nvalid[CE_MAX_VDEVS];
	ce_pool *p = NULL;
	int err;

	err_clear();
	if (npaths == 0 || npaths > CE_MAX_VDEVS)
		return err_set(-EINVAL, "a pool has 1 to %u vdevs", CE_MAX_VDEVS);
	/* Check every label read-only before anything is opened for writing. */
	for (unsigned i = 0; i < npaths; i++) {
		ce_backend *be;
		if ((err = ce_backend_file_open(paths[i], CE_BE_RDONLY | CE_BE_NOLOCK, &be)) != 0)
			return err;
		err = label_read(be, paths[i], &lbs[i], &nvalid[i]);
		be->close(be);
		if (err != 0)
			return err;
	}
	for (unsigned i = 0; i < npaths; i++) {
		if (lbs[i].lb_pool_guid != lbs[0].lb_pool_guid)
			return err_set(-EINVAL, "%s belongs to pool '%s' (guid %016" PRIx64 "), but %s "
			    "to pool '%s' (guid %016" PRIx64 ")", paths[i], lbs[i].lb_pool_name,
			    lbs[i].lb_pool_guid, paths[0], lbs[0].lb_pool_name, lbs[0].lb_pool_guid);
		if (memcmp(lbs[i].lb_vdev_guids, lbs[0].lb_vdev_guids, sizeof(lbs[0].lb_vdev_guids)) != 0 ||
		    lbs[i].lb_nvdevs != lbs[0].lb_nvdevs)
			return err_set(-EINVAL, "%s and %s disagree about the vdevs of pool '%s'",
			    paths[i], paths[0], lbs[0].lb_pool_name);
		for (unsigned j = 0; j < i; j++)
			if (lbs[j].lb_vdev_index == lbs[i].lb_vdev_index)
				return err_set(-EINVAL, "%s and %s are the same vdev %u of pool '%s'",
				    paths[j], paths[i], lbs[i].lb_vdev_index, lbs[0].lb_pool_name);
	}
	if (npaths != lbs[0].lb_nvdevs)
		return err_set(-ENXIO, "pool '%s' has %u vdevs but %u were given", lbs[0].lb_pool_name,
		    lbs[0].lb_nvdevs, npaths);

	p = pool_alloc(opts, npaths);
	p->readonly = (p->opts.flags & CE_BE_RDONLY) != 0;
	snprintf(p->name, sizeof(p->name), "%s", lbs[0].lb_pool_name);
	p->guid = lbs[0].lb_pool_guid;
	for (unsigned i = 0; i < npaths; i++) {
		unsigned idx = lbs[i].lb_vdev_index;
		if ((err = open_vdev(&p->opts, paths[i], idx, p->opts.flags, &p->vds[idx], &p->faults)) != 0)
			goto fail;
		p->vds[idx].guid = lbs[i].lb_vdev_guid;
		p->vds[idx].asize = lbs[i].lb_asize;
		p->vds[idx].nsectors = vdev_nsectors_of(lbs[i].lb_asize);
	}
	pool_setup_memory(p);
	aread_init(p); /* the read ring, or the reason there is none */
	uberblock_phys ub;
	ub_newer newer;
	if ((err = uberblock_scan(p->vds, p->nvdevs, p->guid, &ub, &newer)) != 0) {
		err = err_set(-EIO, "pool '%s': no valid uberblock (creation never finished, or "
		    "every uberblock is damaged)", p->name);
		goto fail;
	}
	/* uberblock.c invariant 4: never go back past a damaged newer commit without being told to */
	if (newer.txg != 0) {
		p->newer_damaged_txg = newer.txg;
		p->newer_damaged_ns = newer.time_ns;
		uint64_t lost = p->newer_damaged_txg - ub.ub_txg;
		double secs = p->newer_damaged_ns > ub.ub_timestamp ?
		    (double)(p->newer_damaged_ns - ub.ub_timestamp) / 1e9 : 0;
		if (!p->readonly && !(p->opts.flags & CE_POOL_REWIND)) {
			err = err_setc(CE_E_POOL_NEEDS_REWIND, -EUCLEAN, "pool '%s': the uberblock of txg %" PRIu64 " is damaged in "
			    "every copy; importing would go back to txg %" PRIu64 " and discard %" PRIu64
			    " committed txg%s (%.1f s of changes after it; what the intent log still "
			    "holds is replayed); import with --rewind to accept that", p->name,
			    p->newer_damaged_txg, ub.ub_txg, lost, lost == 1 ? "" : "s", secs);
			goto fail;
		}
		p->rewound = !p->readonly;
		/* the loss is accepted: the damaged records go, so the next import does not refuse again */
		for (unsigned s = 0; s < CE_UB_SLOTS && p->rewound; s++)
			if ((newer.slots >> s & 1) && (err = uberblock_slot_clear(p->vds, p->nvdevs, s)) != 0) {
				err = err_set(err, "pool '%s': cannot clear a damaged uberblock slot: %s", p->name,
				    strerror(-err));
				goto fail;
			}
	}
	if ((err = mos_load(p, &ub)) != 0)
		goto fail;
	p->import_ub = ub;
	if ((err = vol_load_all(p)) != 0)
		goto fail;
	if ((err = ilog_load(p)) != 0)
		goto fail;
	/* A version-1 pool (or one that had no room) gets its log region now. */
	if (!p->readonly && !p->ilog.enabled)
		(void)ilog_create_region(p);
	txg_reset(p, ub.ub_txg);
	/* Self-heal: a vdev with one damaged label copy gets it rewritten. */
	for (unsigned i = 0; i < npaths && !p->readonly; i++) {
		if (nvalid[i] < 2 && (err = label_write(&p->vds[lbs[i].lb_vdev_index], &lbs[i])) != 0) {
			err = err_set(err, "%s: cannot repair its damaged label: %s", paths[i], strerror(-err));
			goto fail;
		}
	}
	if (!p->readonly && (err = txg_start(p)) != 0)
		goto fail;
	/* Changes the intent log holds beyond the uberblock: replay and commit them. */
	if (!p->readonly && (err = ilog_replay(p, &ub)) != 0) {
		txg_stop(p);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	pool_free(p);
	return err;
}

int
ce_pool_sync(ce_pool *p)
{
	err_clear();
	if (p->readonly)
		return 0;
	/* A log epoch waiting for its first commit gets one: flushes use the log after this. */
	if (ilog_epoch_pending(p)) {
		pthread_mutex_lock(&p->lock);
		txg_mark_dirty(p, txg_open(p));
		pthread_mutex_unlock(&p->lock);
	}
	return txg_sync_now(p);
}

/*
 * Resume a suspended pool: probe the devices, then rebuild the in-memory
 * state from the newest committed uberblock exactly as import does (MOS,
 * bitmaps, volumes, then the intent log replay), keeping the volume
 * objects that open handles point to.
 */
int
ce_pool_clear(ce_pool *p)
{
	int err = 0;
	err_clear();
	if (p->readonly)
		return 0;
	pthread_mutex_lock(&p->config_lock);
	atomic_store(&p->io_errors, 0);
	atomic_store(&p->cksum_errors, 0);
	ilog_ack_damage(p); /* intent log damage: acknowledged (ilog.c invariant 6) */
	ilog_unmark(p); /* and the volumes' log_damaged marks */
	pthread_mutex_lock(&p->lock);
	int susp = txg_suspended(p);
	pthread_mutex_unlock(&p->lock);
	if (susp == 0) {
		pthread_mutex_unlock(&p->config_lock);
		return 0;
	}
	/* The devices must answer again: read the uberblocks, flush every vdev. */
	uberblock_phys ub;
	if (uberblock_find_best(p->vds, p->nvdevs, p->guid, &ub) != 0) {
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-EIO, "pool %s: its uberblocks cannot be read yet; still suspended", p->name);
	}
	for (unsigned v = 0; v < p->nvdevs; v++) {
		/* Rewrite the label with its own bytes (harmless even if torn), then flush. */
		label_phys lb;
		int nvalid;
		err = label_read(p->vds[v].be, p->vds[v].path, &lb, &nvalid);
		if (err == 0)
			err = label_write(&p->vds[v], &lb);
		if (err == 0)
			err = vdev_flush(&p->vds[v]);
		if (err != 0) {
			pthread_mutex_unlock(&p->config_lock);
			return err_set(err, "pool %s: vdev %s still fails (%s); still suspended", p->name,
			    p->vds[v].path, strerror(-err));
		}
	}
	txg_stop(p);
	ilog_reset(p);
	pool_sync_reset(p); /* the txgs that did not commit: their lists and tasks */
	/* Writers that were inside a txg when the pool suspended leave now. */
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (txg_holders(p) == 0)
			break;
		pthread_mutex_unlock(&p->lock);
		usleep(1000);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);

	pthread_rwlock_wrlock(&p->free_lock);
	aread_drain(p); /* asynchronous reads fill the cache rebuilt below */
	wq_discard(p);
	mos_fini(p);
	alloc_fini(&p->alloc);
	cache_fini(&p->cache);
	uint64_t ns[CE_MAX_VDEVS];
	for (unsigned i = 0; i < p->nvdevs; i++)
		ns[i] = p->vds[i].nsectors;
	alloc_init(&p->alloc, p->nvdevs, ns);
	cache_init(&p->cache, p->opts.cache_bytes);
	err = mos_load(p, &ub);
	p->import_ub = ub;
	txg_reset(p, ub.ub_txg);
	if (err == 0)
		err = vol_reload_all(p);
	if (err == 0)
		err = ilog_load(p);
	pthread_rwlock_unlock(&p->free_lock);
	if (err == 0) {
		pthread_mutex_lock(&p->lock);
		atomic_fetch_add(&p->clear_gen, 1); /* older handles may no longer write */
		txg_resume(p);
		pthread_mutex_unlock(&p->lock);
		err = txg_start(p);
	}
	if (err == 0)
		err = ilog_replay(p, &ub);
	if (err != 0) {
		pthread_mutex_lock(&p->lock);
		char why[TXG_REASON_MAX];
		snprintf(why, sizeof(why), "clear failed: %s", err_get()[0] ? err_get() : strerror(-err));
		txg_suspend(p, err, why);
		pthread_mutex_unlock(&p->lock);
		err = err_set(err, "pool %s: clear failed: %s", p->name, strerror(-err));
	}
	pthread_mutex_unlock(&p->config_lock);
	return err;
}

int
ce_pool_export(ce_pool *p)
{
	int err = 0;
	err_clear();
	if (!p->readonly) {
		err = txg_sync_now(p);
		txg_stop(p);
	}
	pool_free(p);
	return err;
}

void
ce_pool_abandon(ce_pool *p)
{
	txg_stop(p);
	pool_free(p);
}

const char *
ce_pool_name(const ce_pool *p)
{
	return p->name;
}

int
ce_pool_stat_get(ce_pool *p, ce_pool_stat *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s", p->name);
	st->guid = p->guid;
	st->nvdevs = p->nvdevs;
	st->size = p->alloc.total * CE_SECTOR;
	st->allocated = alloc_used_sectors(&p->alloc) * CE_SECTOR;
	st->free = alloc_free_sectors(&p->alloc) * CE_SECTOR;
	st->cksum_errors = atomic_load(&p->cksum_errors);
	st->io_errors = atomic_load(&p->io_errors);
	pthread_mutex_lock(&p->cache.lock);
	st->cache_bytes = p->cache.bytes;
	st->cache_max = p->cache.max;
	pthread_mutex_unlock(&p->cache.lock);
	pthread_mutex_lock(&p->lock);
	txg_stat(p, st);
	st->last_sync_bytes = blk_last_sync_bytes(p);
	st->sync_threads = pipe_threads(p);
	st->sync_cksum_known = __atomic_load_n(&p->cksum_known, __ATOMIC_RELAXED);
	if (p->rewound) {
		st->rewound_base_txg = p->import_ub.ub_txg;
		st->rewound_txg = p->newer_damaged_txg;
		st->rewound_time_ns = p->newer_damaged_ns;
	} else {
		st->newer_damaged_txg = p->newer_damaged_txg;
	}
	for (size_t i = 0; i < ds_count(p); i++)
		if (ds_at(p, i)->destroy_txg == 0 && !ds_at(p, i)->is_snap) {
			st->nvols++;
			st->log_damaged_vols += ds_at(p, i)->logdmg_lo != 0;
		}
	pthread_mutex_unlock(&p->lock);
	ilog_stat(p, st);
	return 0;
}
