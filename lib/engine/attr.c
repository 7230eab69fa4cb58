/*
 * attr.c -- dataset attributes, stored in the pool (format:
 * docs/on-disk-format.md section 4.9).
 *
 * Small per-volume records a frontend keeps in the pool, in namespaces it
 * owns: today the iSCSI target's persistent reservations with APTPL
 * (daemon/scsi.c). The engine stores them, drops them with their volume,
 * and knows nothing of what they mean.
 *
 * All attributes of a pool live in one array in memory and on disk in one
 * small object rooted in the MOS header block at CE_MOS_ATTR_OFF,
 * rewritten whole in the txg of any change, as the policy object is
 * (sched.c, whose shape this file follows). A replace is a sync task: its
 * open-context half changes `at`, what open context sees (pool->lock); its
 * syncing half (attr_task) makes the same change to `at_sync`, the records
 * as of the txg being synced, which only the sync thread touches;
 * attr_sync writes that, after sched_sync in pass 1.
 *
 * Invariants:
 *   1. The records of one (volume, namespace) change together, in one txg
 *      (ce_attr_replace), and are keyed by the volume's guid (a rename
 *      keeps them). Records of a volume that no longer exists are never
 *      returned, are left out when the object is next written and are
 *      dropped when it is loaded.
 *   2. The object written in txg t holds exactly the changes of txgs up
 *      to t (as sched.c's invariant 2).
 *   3. at equals at_sync plus the changes whose tasks have not run yet.
 *   4. A stored record is valid (attr_valid): guid and namespace not 0,
 *      at_len at most CE_ATTR_VAL_MAX; import checks the same, and a bad
 *      record makes the object damaged.
 *   5. The MOS header says FMT_V_ISCSI from the first txg that writes the
 *      object with a record on; a pool that never stores one keeps its
 *      version (older software can still read it).
 */
#include "attr.h"
#include "dataset.h"
#include "mos.h"
#include "pool_sync.h"
#include "recobj.h"
#include "util.h"
#include "vol.h"

#include <errno.h>
#include <string.h>

_Static_assert(CE_ATTR_VALUE_MAX == CE_ATTR_VAL_MAX, "ce_attr holds a whole attr_phys value");

#define ATTR_PER_LEAF (CE_META_BLOCK / sizeof(attr_phys)) /* 32 */

static mos_attr_phys *
attr_root(ce_pool *p)
{
	return (mos_attr_phys *)mos_ptr(p, CE_MOS_ATTR_OFF);
}

void
attr_init(ce_pool *p)
{
	tree_init(&p->at_tree, BP_ATTR, 1); /* a created pool has no attribute object yet (attr_load: import) */
}

void
attr_fini(ce_pool *p)
{
	free(p->at);
	p->at = NULL;
	p->nat = p->capat = 0;
	free(p->at_sync);
	p->at_sync = NULL;
	p->natsync = p->capatsync = 0;
}

static void
attr_put(attr_phys **a, size_t *n, size_t *cap, const attr_phys *r)
{
	recs_put((void **)a, n, cap, r, sizeof(*r));
}

static int
attr_valid(const attr_phys *r)
{
	return r->at_ds_guid != 0 && r->at_ns != 0 && r->at_len <= CE_ATTR_VAL_MAX;
}

/* Drop every record of (guid, ns) from the array, keeping the others' order. */
static void
attr_drop(attr_phys *a, size_t *n, uint64_t guid, uint16_t ns)
{
	size_t k = 0;
	for (size_t i = 0; i < *n; i++)
		if (!(a[i].at_ds_guid == guid && a[i].at_ns == ns))
			a[k++] = a[i];
	*n = k;
}

/* At import and clear, after the datasets. */
int
attr_load(ce_pool *p)
{
	mos_attr_phys *ma = attr_root(p);
	attr_fini(p);
	tree_init(&p->at_tree, BP_ATTR, 1);
	p->at_disk_leaves = 0;
	p->at_dirty = 0;
	if (mos_hdr(p)->mh_version < FMT_V_ISCSI)
		return 0; /* older pools have zeros there (never written) */
	uint64_t n = ma->ma_count, nleaves;
	attr_phys *buf;
	int err = recobj_read(p, &p->at_tree, &ma->ma_root, ma->ma_levels, n, sizeof(attr_phys),
	    "attribute object", (void **)&buf, &nleaves);
	if (err != 0 || n == 0)
		return err;
	p->at_disk_leaves = nleaves;
	pthread_mutex_lock(&p->lock); /* the directory's lock (the sync thread is stopped) */
	for (uint64_t i = 0; i < n; i++) {
		if (!attr_valid(&buf[i])) {
			pthread_mutex_unlock(&p->lock);
			free(buf);
			attr_fini(p);
			return err_set(-EIO, "pool %s: attribute record %llu is damaged", p->name, (unsigned long long)i);
		}
		if (recobj_vol_at(p, buf[i].at_ds_guid, UINT64_MAX) == NULL) {
			p->at_dirty = 1; /* its volume is gone: rewritten without it at the next commit */
			continue;
		}
		attr_put(&p->at, &p->nat, &p->capat, &buf[i]);
		attr_put(&p->at_sync, &p->natsync, &p->capatsync, &buf[i]);
	}
	pthread_mutex_unlock(&p->lock);
	free(buf);
	return 0;
}

/* A replace of txg t, in its sync (invariant 2). */
typedef struct attr_chg {
	uint64_t guid;
	uint16_t ns;
	size_t n;
	attr_phys r[];
} attr_chg;

static int
attr_task(ce_pool *p, void *arg, uint64_t t)
{
	attr_chg *c = arg;
	(void)t;
	ASSERT(pool_sync_thread(p)); /* at_sync is the sync thread's */
	attr_drop(p->at_sync, &p->natsync, c->guid, c->ns);
	for (size_t i = 0; i < c->n; i++)
		attr_put(&p->at_sync, &p->natsync, &p->capatsync, &c->r[i]);
	p->at_dirty = 1;
	return 0;
}

/* Pass 1 of txg t (pool_sync, after sched_sync): rewrite the object if t changed a record. */
int
attr_sync(ce_pool *p, uint64_t t)
{
	ASSERT(pool_sync_thread(p));
	if (!p->at_dirty)
		return 0;
	uint8_t *buf = xcalloc(p->natsync ? (p->natsync + ATTR_PER_LEAF - 1) / ATTR_PER_LEAF : 1, CE_META_BLOCK);
	uint64_t n = 0;
	pthread_mutex_lock(&p->lock); /* destroy_txg: open context may be destroying one in t + 1 */
	for (size_t i = 0; i < p->natsync; i++)
		if (recobj_vol_at(p, p->at_sync[i].at_ds_guid, t) != NULL) /* invariant 1 */
			((attr_phys *)buf)[n++] = p->at_sync[i];
	pthread_mutex_unlock(&p->lock);
	p->at_dirty = 0;
	int err = recobj_write(p, &p->at_tree, &p->at_disk_leaves, t, buf, n, sizeof(attr_phys), BP_ATTR);
	free(buf);
	if (err != 0)
		return err;
	if (n == 0 && mos_hdr(p)->mh_version < FMT_V_ISCSI)
		return 0; /* never used here: the header block keeps its zeros (invariant 5) */
	mos_attr_phys *ma = attr_root(p);
	ma->ma_count = (uint32_t)n;
	ma->ma_levels = p->at_tree.levels;
	ma->ma_root = p->at_tree.root;
	mos_mark_dirty(p, CE_MOS_ATTR_OFF, sizeof(*ma));
	if (mos_hdr(p)->mh_version < FMT_V_ISCSI) {
		mos_hdr(p)->mh_version = FMT_V_ISCSI; /* older software reads zeros there */
		mos_mark_dirty(p, 0, CE_META_BLOCK);
	}
	return 0;
}

int
ce_attr_replace(ce_pool *p, const char *vol, uint16_t ns, const ce_attr *a, size_t n)
{
	err_clear();
	if (ns == 0)
		return err_set(-EINVAL, "attribute namespace 0 is reserved");
	if (n > CE_ATTR_MAX)
		return err_set(-EINVAL, "at most %u attribute records per volume and namespace", CE_ATTR_MAX);
	for (size_t i = 0; i < n; i++)
		if (a[i].len > CE_ATTR_VAL_MAX)
			return err_set(-EINVAL, "an attribute value is at most %u bytes", CE_ATTR_VAL_MAX);
	int err = vol_mgmt_begin(p);
	if (err != 0)
		return err;
	volume *v = vol != NULL ? vol_find(p, vol) : NULL;
	if (v == NULL || v->is_snap || v->destroy_txg != 0) {
		vol_mgmt_abort(p);
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, vol ? vol : "(null)");
	}
	attr_chg *c = xcalloc(1, sizeof(*c) + n * sizeof(attr_phys));
	c->guid = v->guid;
	c->ns = ns;
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		attr_phys *r = &c->r[i];
		r->at_ds_guid = v->guid;
		r->at_ns = ns;
		r->at_key = a[i].key;
		r->at_len = a[i].len;
		memcpy(r->at_val, a[i].val, a[i].len);
	}
	attr_drop(p->at, &p->nat, v->guid, ns);
	for (size_t i = 0; i < n; i++)
		attr_put(&p->at, &p->nat, &p->capat, &c->r[i]);
	synctask_add(p, attr_task, c); /* the object of the open txg gets the same change */
	return vol_mgmt_commit(p);   /* returns once that txg committed */
}

int
ce_attr_get(ce_pool *p, const char *vol, uint16_t ns, ce_attr **out, size_t *count)
{
	err_clear();
	*out = NULL;
	*count = 0;
	pthread_mutex_lock(&p->config_lock);
	pthread_mutex_lock(&p->lock);
	volume *v = vol != NULL ? vol_find(p, vol) : NULL;
	if (v == NULL || v->is_snap || v->destroy_txg != 0) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->config_lock);
		return err_set(-ENOENT, "volume %s/%s does not exist", p->name, vol ? vol : "(null)");
	}
	size_t k = 0;
	for (size_t i = 0; i < p->nat; i++)
		k += p->at[i].at_ds_guid == v->guid && p->at[i].at_ns == ns;
	ce_attr *a = xcalloc(k ? k : 1, sizeof(*a));
	k = 0;
	for (size_t i = 0; i < p->nat; i++) {
		const attr_phys *r = &p->at[i];
		if (r->at_ds_guid != v->guid || r->at_ns != ns)
			continue;
		a[k].key = r->at_key;
		a[k].len = r->at_len;
		memcpy(a[k].val, r->at_val, r->at_len);
		k++;
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->config_lock);
	*out = a;
	*count = k;
	return 0;
}
