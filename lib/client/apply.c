/*
 * apply.c -- cask_apply and cask_manifest_get (docs/manifests.md): the
 * engine of `cask apply -f FILE` and `cask get manifest`, in libcask so that
 * every program (the CLI, Python's Client.apply) applies manifests the same
 * way.
 *
 * cask_apply runs in four steps, and changes nothing before the third:
 *   1. load: manifest_load_text checks the text alone (every error, with
 *      positions);
 *   2. compare: read the running state through libcask's own calls and
 *      check the text against it (undeclared pools, vdevs or a pool size
 *      that differ, a changed volblocksize); these errors carry positions
 *      too. Any error of step 1 or 2: all of them in the result, -EINVAL.
 *      Then build the plan: a list of actions, destructive ones first;
 *   3. hand the plan to the caller's progress callback (and stop here with
 *      dry_run);
 *   4. run the actions in order, one libcask call each, marking each item
 *      DONE; at the first failure the item is FAILED (with caskd's error)
 *      and the rest NOT_DONE. Each action is derived from the state found
 *      in step 2, so applying again after a failure (or twice) converges:
 *      what was done is then "unchanged".
 * Only the client API (cask/client.h) is used to talk to caskd.
 */
#include "cask/client.h"
#include "cask/errcodes.h"
#include "client_impl.h"
#include "manifest.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
enum act_kind {
	/* in the order they are printed and run */
	A_RELEASE, A_DESTROY, A_SHRINK, A_KEEP, A_WOULD_DESTROY, A_WOULD_SHRINK,
	A_CREATE_POOL, A_CREATE_VOL, A_GROW, A_SET, A_SCHED, A_UNCHANGED, A_NKINDS
};
static const char *const verb[A_NKINDS] = { "release", "destroy", "shrink", "keep", "would-destroy", "would-shrink",
	"create", "create", "change", "change", "change", "unchanged" };

typedef struct action {
	int kind;
	size_t seq;                     /* the order it was planned in: ties keep it */
	int is_pool;
	char name[320];
	char detail[1200];
	const mf_pool *pool;
	const mf_vol *vol;
	uint64_t from, to;              /* sizes: shrink, grow */
	unsigned flags;                 /* A_DESTROY: CASK_DESTROY_* (a volume the file says is absent) */
	char snap[600], tag[64];        /* A_RELEASE: the hold (releaseHolds: true) */
	const char *props[MF_NPROPS];   /* A_SET: the changed properties, their old and new values */
	const char *old[MF_NPROPS];
	const char *val[MF_NPROPS];
	size_t nprops;
} action;

typedef struct plan {
	action *a;
	size_t n;
} plan;

/* What caskd has, for the pools the manifest is about. */
typedef struct spool {
	cask_pool_info info;
	int managed;          /* listed under pools: */
	cask_vol_info *vols;  /* NULL until listed */
	size_t nvols;
	int listed;
	cask_sched_info *scheds; /* the snapshot policies, NULL until listed */
	size_t nscheds;
	int sched_listed;
} spool;

typedef struct state {
	cask_pool_info *pools;
	size_t npools;
	spool *sp;            /* one per pools[i] */
} state;

static action *
add(plan *p, int kind, int is_pool, const char *name)
{
	p->a = xrealloc(p->a, (p->n + 1) * sizeof(*p->a));
	action *a = &p->a[p->n++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->seq = p->n - 1;
	a->is_pool = is_pool;
	snprintf(a->name, sizeof(a->name), "%s", name);
	return a;
}

static int
kind_cmp(const void *x, const void *y)
{
	const action *a = x, *b = y;
	if (a->kind != b->kind)
		return a->kind - b->kind;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static spool *
find_pool(state *s, const char *name)
{
	for (size_t i = 0; i < s->npools; i++)
		if (strcmp(s->pools[i].name, name) == 0)
			return &s->sp[i];
	return NULL;
}

static const mf_pool *
mf_find_pool(const manifest *m, const char *name)
{
	for (size_t i = 0; i < m->npools; i++)
		if (m->pools[i].name && strcmp(m->pools[i].name, name) == 0)
			return &m->pools[i];
	return NULL;
}

static const cask_vol_info *
find_vol(const spool *sp, const char *name)
{
	for (size_t i = 0; i < sp->nvols; i++)
		if (strcmp(sp->vols[i].name, name) == 0)
			return &sp->vols[i];
	return NULL;
}

static const char *
sz(uint64_t v, char *buf, size_t n)
{
	return mf_fmt_size(v, buf, n);
}

static void
state_free(state *s)
{
	for (size_t i = 0; i < s->npools; i++) {
		free(s->sp[i].vols);
		free(s->sp[i].scheds);
	}
	free(s->sp);
	cask_pool_info_free(s->pools, s->npools);
	memset(s, 0, sizeof(*s));
}

static int
list_vols(cask_client *c, spool *sp)
{
	if (sp->listed)
		return 0;
	int rc = cask_vol_list(c, sp->info.name, &sp->vols, &sp->nvols);
	if (rc != 0)
		return rc;
	sp->listed = 1;
	return 0;
}

static int
list_scheds(cask_client *c, spool *sp)
{
	if (sp->sched_listed)
		return 0;
	int rc = cask_sched_list(c, sp->info.name, &sp->scheds, &sp->nscheds);
	if (rc != 0)
		return rc;
	sp->sched_listed = 1;
	return 0;
}

static const cask_sched_info *
find_sched(const spool *sp, const char *name)
{
	for (size_t i = 0; i < sp->nscheds; i++)
		if (strcmp(sp->scheds[i].name, name) == 0)
			return &sp->scheds[i];
	return NULL;
}

static int
path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Paths resolved the same way on both sides, so that a/./b and a/b compare equal. */
static char *
canon_path(const char *p)
{
	char buf[PATH_MAX];
	return xstrdup(realpath(p, buf) != NULL ? buf : p);
}

/* Check an existing pool against its entry: vdevs and size. 0, or the error of the call that failed. */
static int
check_pool(cask_client *c, manifest *m, const mf_pool *mp, spool *sp)
{
	if (strcmp(sp->info.state, "ONLINE") != 0) {
		manifest_err(m, mp->pos, "pool %s is %s%s%s; apply needs it ONLINE (cask pool status %s)", mp->name,
		    sp->info.state, sp->info.error[0] ? ": " : "", sp->info.error, mp->name);
		return 0;
	}
	cask_pool_info st;
	int rc = cask_pool_status(c, mp->name, &st);
	if (rc != 0)
		return rc;
	size_t n = st.nvdevs_paths;
	char **have = xcalloc(n ? n : 1, sizeof(char *)), **want = xcalloc(mp->nvdevs ? mp->nvdevs : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		have[i] = canon_path(st.vdevs[i]);
	for (size_t i = 0; i < mp->nvdevs; i++)
		want[i] = canon_path(mp->vdevs[i]);
	qsort(have, n, sizeof(char *), path_cmp);
	qsort(want, mp->nvdevs, sizeof(char *), path_cmp);
	int same = n == mp->nvdevs;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(have[i], want[i]) == 0;
	if (!same && mp->nvdevs > 0) {
		char list[2048] = "";
		for (size_t i = 0; i < n; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", have[i]);
		manifest_err(m, mp->vdevs_pos, "pool %s exists with other vdevs [%s]; cask cannot add, remove or "
		    "replace vdevs", mp->name, list);
	}
	/* size: the size of its vdev files, when they are regular files of one size */
	uint64_t fsize = 0;
	int known = n > 0;
	for (size_t i = 0; i < n && known; i++) {
		struct stat sb;
		if (stat(have[i], &sb) != 0 || !S_ISREG(sb.st_mode) || (i > 0 && (uint64_t)sb.st_size != fsize))
			known = 0;
		else
			fsize = (uint64_t)sb.st_size;
	}
	if (mp->has_size && known && fsize != mp->size) {
		char a[32], b[32];
		manifest_err(m, mp->size_pos, "pool %s: its vdev files are %s, the file says %s; a pool cannot be "
		    "resized", mp->name, sz(fsize, a, sizeof(a)), sz(mp->size, b, sizeof(b)));
	}
	for (size_t i = 0; i < n; i++)
		free(have[i]);
	for (size_t i = 0; i < mp->nvdevs; i++)
		free(want[i]);
	free(have);
	free(want);
	cask_pool_info_clear(&st);
	return 0;
}

static void
plan_new_pool(manifest *m, plan *p, const mf_pool *mp)
{
	for (size_t i = 0; i < mp->nvdevs; i++) {
		struct stat sb;
		char a[32], b[32];
		int exists = stat(mp->vdevs[i], &sb) == 0;
		if (mp->size_pos.line == 0 && !exists) /* no size: given (a bad one is reported) */
			manifest_err(m, mp->vdev_pos[i], "pool %s: vdev %s does not exist; give the pool a size: to "
			    "create it", mp->name, mp->vdevs[i]);
		/* caskd uses a file that exists (and is not empty) as it is: the next apply would see
		   another size than the file's, so refuse it now rather than never converge */
		else if (mp->has_size && exists && S_ISREG(sb.st_mode) && sb.st_size != 0 &&
		    (uint64_t)sb.st_size != mp->size)
			manifest_err(m, mp->vdev_pos[i], "pool %s: vdev %s exists and is %s, the file says size %s "
			    "(an existing file is used as it is)", mp->name, mp->vdevs[i], sz((uint64_t)sb.st_size, a,
			    sizeof(a)), sz(mp->size, b, sizeof(b)));
	}
	action *a = add(p, A_CREATE_POOL, 1, mp->name);
	a->pool = mp;
	size_t o = 0;
	o += (size_t)snprintf(a->detail + o, sizeof(a->detail) - o, "vdevs [");
	for (size_t i = 0; i < mp->nvdevs && o < sizeof(a->detail); i++)
		o += (size_t)snprintf(a->detail + o, sizeof(a->detail) - o, "%s%s", i ? ", " : "", mp->vdevs[i]);
	if (o < sizeof(a->detail)) {
		char b[32];
		if (mp->has_size)
			snprintf(a->detail + o, sizeof(a->detail) - o, "], size %s", sz(mp->size, b, sizeof(b)));
		else
			snprintf(a->detail + o, sizeof(a->detail) - o, "]");
	}
}

static void
describe_props(const mf_vol *v, char *out, size_t n)
{
	char b[32];
	size_t o = (size_t)snprintf(out, n, "size %s", sz(v->size, b, sizeof(b)));
	for (int i = 0; i < MF_NPROPS && o < n; i++)
		if (v->prop[i] != NULL)
			o += (size_t)snprintf(out + o, n - o, ", %s %s", mf_prop_names[i], v->prop[i]);
}

static const char *
cur_prop(const cask_vol_info *v, int i)
{
	return i == MF_COMPRESSION ? v->compression : i == MF_CHECKSUM ? v->checksum : v->sync;
}

/* ", snapshots every 15m, keep 8, ..." of the file's policy, appended at out[o..n) */
static void
add_policy(const mf_policy *pol, char *out, size_t n)
{
	size_t o = strlen(out);
	if (!pol->valid || o >= n)
		return;
	char b[400];
	mf_fmt_policy(pol, b, sizeof(b));
	snprintf(out + o, n - o, ", snapshots %s", b);
}

static void
running_policy(const cask_sched_info *si, char *out, size_t n)
{
	if (si == NULL) {
		snprintf(out, n, "none");
		return;
	}
	mf_policy p = { 1, 1, { 0, 0 }, si->policy.every_min, si->policy.keep, si->policy.hourly,
		si->policy.daily, si->policy.weekly, si->policy.monthly };
	mf_fmt_policy(&p, out, n);
}

static int
same_policy(const mf_policy *p, const cask_sched_info *si)
{
	return si != NULL && p->every_min == si->policy.every_min && p->keep == si->policy.keep &&
	    p->hourly == si->policy.hourly && p->daily == si->policy.daily && p->weekly == si->policy.weekly &&
	    p->monthly == si->policy.monthly;
}

/* cur_sched: the volume's running policy (NULL: none); a file without snapshots: leaves it as it is. */
static void
plan_vol(manifest *m, plan *p, const mf_vol *mv, const cask_vol_info *cur, const cask_sched_info *cur_sched,
    int prune)
{
	char a1[32], a2[32];
	if (cur == NULL) {
		action *a = add(p, A_CREATE_VOL, 0, mv->name);
		a->vol = mv;
		describe_props(mv, a->detail, sizeof(a->detail));
		add_policy(&mv->snapshots, a->detail, sizeof(a->detail));
		return;
	}
	int changed = 0;
	if (mv->volblocksize != 0 && mv->volblocksize != cur->volblocksize)
		manifest_err(m, mv->prop_pos[MF_VOLBLOCKSIZE], "volume %s: volblocksize is fixed when a volume is "
		    "created (it has %s, the file says %s)", mv->name, sz(cur->volblocksize, a1, sizeof(a1)),
		    mv->prop[MF_VOLBLOCKSIZE]);
	if (mv->size > cur->size) {
		action *a = add(p, A_GROW, 0, mv->name);
		a->vol = mv;
		a->from = cur->size;
		a->to = mv->size;
		snprintf(a->detail, sizeof(a->detail), "size %s -> %s", sz(cur->size, a1, sizeof(a1)), sz(mv->size, a2, sizeof(a2)));
		changed = 1;
	} else if (mv->size < cur->size) {
		int may = prune || mv->allow_shrink;
		action *a = add(p, may ? A_SHRINK : A_WOULD_SHRINK, 0, mv->name);
		a->vol = mv;
		a->from = cur->size;
		a->to = mv->size;
		snprintf(a->detail, sizeof(a->detail), "size %s -> %s (discards the data past %s)%s",
		    sz(cur->size, a1, sizeof(a1)), sz(mv->size, a2, sizeof(a2)), a2,
		    may ? "" : "; only with --prune or allowShrink: true");
		changed = 1;
	}
	action *s = NULL;
	for (int i = 0; i < MF_VOLBLOCKSIZE; i++) {
		if (mv->prop[i] == NULL || strcmp(mv->prop[i], cur_prop(cur, i)) == 0)
			continue;
		if (s == NULL) {
			s = add(p, A_SET, 0, mv->name);
			s->vol = mv;
		}
		s->props[s->nprops] = mf_prop_names[i];
		s->old[s->nprops] = cur_prop(cur, i);
		s->val[s->nprops++] = mv->prop[i];
		changed = 1;
	}
	if (mv->snapshots.valid && !same_policy(&mv->snapshots, cur_sched)) {
		action *a = add(p, A_SCHED, 0, mv->name);
		a->vol = mv;
		char was[400], now[400];
		running_policy(cur_sched, was, sizeof(was));
		mf_fmt_policy(&mv->snapshots, now, sizeof(now));
		snprintf(a->detail, sizeof(a->detail), "snapshots %s -> %s", was, now);
		changed = 1;
	}
	if (!changed) {
		action *a = add(p, A_UNCHANGED, 0, mv->name);
		a->vol = mv;
		describe_props(mv, a->detail, sizeof(a->detail));
		add_policy(&mv->snapshots, a->detail, sizeof(a->detail));
	}
}

/* A volume of a managed pool that the file does not name. */
static int
plan_prune(cask_client *c, plan *p, const cask_vol_info *v, int prune)
{
	if (v->receive_resume_token[0] != '\0') {
		action *a = add(p, A_KEEP, 0, v->name);
		snprintf(a->detail, sizeof(a->detail), "not in the file, but a partial receive (cask recv -A to abandon it)");
		return 0;
	}
	if (v->snapshots > 0) {
		cask_snap_info *snaps;
		size_t n;
		int rc = cask_snap_list(c, v->name, &snaps, &n);
		if (rc != 0)
			return rc;
		unsigned held = 0, cloned = 0;
		for (size_t i = 0; i < n; i++) {
			held += snaps[i].holds > 0;
			cloned += snaps[i].clones > 0;
		}
		free(snaps);
		action *a = add(p, A_KEEP, 0, v->name);
		snprintf(a->detail, sizeof(a->detail), "not in the file, but it has %zu snapshot%s (%u held, %u with "
		    "clones); --prune never destroys a volume with snapshots, clones or holds (absent: true with destroy: "
		    "and, for holds, releaseHolds: true in the file does)", n, n == 1 ? "" : "s",
		    held, cloned);
		return 0;
	}
	action *a = add(p, prune ? A_DESTROY : A_WOULD_DESTROY, 0, v->name);
	snprintf(a->detail, sizeof(a->detail), "not in the file%s", prune ? "" : "; only with --prune");
	return 0;
}


/* Is v a clone of a snapshot of h, or of such a clone, and so on (the volumes -R destroys with h)? */
static int
depends_on(const spool *sp, const cask_vol_info *v, const char *h, int depth)
{
	size_t hl = strlen(h);
	if (v->origin[0] == '\0' || depth > 64)
		return 0;
	if (strncmp(v->origin, h, hl) == 0 && v->origin[hl] == '@')
		return 1;
	char parent[320];
	snprintf(parent, sizeof(parent), "%.*s", (int)strcspn(v->origin, "@"), v->origin);
	const cask_vol_info *pv = find_vol(sp, parent);
	return pv != NULL && depends_on(sp, pv, h, depth + 1);
}

/*
 * A volume the file says is absent (absent: true): destroyed, with what
 * destroy: allows going with it; kept, and said why, when it has more
 * (snapshots, clones of them) or a held snapshot, unless releaseHolds:
 * true (then each hold is released first, one step each). A clone that would go with it but that the file declares is an
 * error.
 */
static int
plan_absent(cask_client *c, manifest *m, plan *p, const spool *sp, const cask_vol_info *v, const mf_vol *mv)
{
	if (v->receive_resume_token[0] != '\0') {
		action *a = add(p, A_KEEP, 0, v->name);
		snprintf(a->detail, sizeof(a->detail), "absent in the file, but a partial receive (cask recv -A to "
		    "abandon it)");
		return 0;
	}
	/* the clones (and theirs) that destroying it with its snapshots takes along */
	char clones[800] = "";
	size_t nclones = 0, o = 0;
	for (size_t i = 0; i < sp->nvols; i++) {
		if (!depends_on(sp, &sp->vols[i], v->name, 0))
			continue;
		nclones++;
		if (o < sizeof(clones))
			o += (size_t)snprintf(clones + o, sizeof(clones) - o, "%s%s", o ? ", " : "", sp->vols[i].name);
		for (size_t j = 0; j < m->nvols && mv->destroy == MF_DESTROY_CLONES; j++)
			if (m->vols[j].name && !m->vols[j].absent && strcmp(m->vols[j].name, sp->vols[i].name) == 0)
				manifest_err(m, mv->absent_pos, "volume %s: absent with destroy: clones would destroy %s, "
				    "which the file declares (line %d)", v->name, sp->vols[i].name, m->vols[j].pos.line);
	}
	size_t nsnaps = 0;
	if (v->snapshots > 0) {
		cask_snap_info *snaps;
		int rc = cask_snap_list(c, v->name, &snaps, &nsnaps);
		if (rc != 0)
			return rc;
		free(snaps);
	}
	/*
	 * The holds on the snapshots the destroy would take: the volume's and,
	 * with destroy: clones, those of the clones that go with it (caskd
	 * refuses the whole destroy if one of them is held).
	 */
	cask_hold_info *holds = NULL;
	size_t nholds = 0, nheld = 0, hn = 0;
	if (nsnaps > 0) {
		int rc = cask_snap_holds(c, sp->info.name, &holds, &nholds);
		if (rc != 0)
			return rc;
	}
	char tags[800] = "";
	size_t to = 0;
	for (size_t i = 0; i < nholds; i++) {
		const char *hs = holds[i].snapshot;
		char hv[320];
		snprintf(hv, sizeof(hv), "%.*s", (int)strcspn(hs, "@"), hs);
		const cask_vol_info *owner = find_vol(sp, hv);
		int goes = strcmp(hv, v->name) == 0 || (mv->destroy == MF_DESTROY_CLONES && owner != NULL &&
		    depends_on(sp, owner, v->name, 0));
		if (!goes)
			continue;
		nheld += hn == 0 || strcmp(hs, holds[hn - 1].snapshot) != 0; /* sorted by snapshot */
		holds[hn++] = holds[i];
		if (to < sizeof(tags))
			to += (size_t)snprintf(tags + to, sizeof(tags) - to, "%s%s on %s", to ? ", " : "", holds[i].tag,
			    hs);
	}
	const char *why = NULL;
	char buf[1200];
	if (hn > 0 && !mv->release_holds) {
		snprintf(buf, sizeof(buf), "absent in the file, but %zu of the snapshots it would destroy %s held (%s); "
		    "apply releases holds only with destroy: and releaseHolds: true in the file", nheld,
		    nheld == 1 ? "is" : "are", tags);
		why = buf;
	} else if (nsnaps > 0 && mv->destroy == MF_DESTROY_NONE) {
		snprintf(buf, sizeof(buf), "absent in the file, but it has %zu snapshot%s; destroy: snapshots in the "
		    "file destroys %s too", nsnaps, nsnaps == 1 ? "" : "s", nsnaps == 1 ? "it" : "them");
		why = buf;
	} else if (nclones > 0 && mv->destroy != MF_DESTROY_CLONES) {
		snprintf(buf, sizeof(buf), "absent in the file, but its snapshots have clones (%s); destroy: clones in "
		    "the file destroys those too", clones);
		why = buf;
	}
	if (why != NULL) {
		free(holds);
		action *a = add(p, A_KEEP, 0, v->name);
		snprintf(a->detail, sizeof(a->detail), "%s", why);
		return 0;
	}
	/* releaseHolds: true: each hold its own step, all before the destroys (the plan's order) */
	for (size_t i = 0; i < hn; i++) {
		action *r = add(p, A_RELEASE, 0, v->name);
		snprintf(r->snap, sizeof(r->snap), "%s", holds[i].snapshot);
		snprintf(r->tag, sizeof(r->tag), "%s", holds[i].tag);
		snprintf(r->detail, sizeof(r->detail), "hold %s on %s (releaseHolds: true)", r->tag, r->snap);
	}
	free(holds);
	action *a = add(p, A_DESTROY, 0, v->name);
	a->flags = mv->destroy == MF_DESTROY_CLONES ? CASK_DESTROY_CLONES | CASK_DESTROY_SNAPSHOTS :
	    mv->destroy == MF_DESTROY_SNAPSHOTS && nsnaps > 0 ? CASK_DESTROY_SNAPSHOTS : 0;
	o = (size_t)snprintf(a->detail, sizeof(a->detail), "absent in the file");
	if (nsnaps > 0 && o < sizeof(a->detail))
		o += (size_t)snprintf(a->detail + o, sizeof(a->detail) - o, ", with its %zu snapshot%s", nsnaps,
		    nsnaps == 1 ? "" : "s");
	if (nclones > 0 && o < sizeof(a->detail))
		snprintf(a->detail + o, sizeof(a->detail) - o, " and the clone%s %s", nclones == 1 ? "" : "s", clones);
	return 0;
}

static int
is_change(int kind)
{
	return kind == A_RELEASE || kind == A_DESTROY || kind == A_SHRINK || kind == A_CREATE_POOL || kind == A_CREATE_VOL ||
	    kind == A_GROW || kind == A_SET || kind == A_SCHED;
}

static void
describe_done(const action *a, char *out, size_t n)
{
	char b1[32], b2[32];
	switch (a->kind) {
	case A_DESTROY:
		snprintf(out, n, "destroy volume %s%s", a->name, (a->flags & CASK_DESTROY_CLONES) ? " with its snapshots "
		    "and their clones" : (a->flags & CASK_DESTROY_SNAPSHOTS) ? " with its snapshots" : "");
		break;
	case A_RELEASE: snprintf(out, n, "release hold %s on %s", a->tag, a->snap); break;
	case A_SHRINK: snprintf(out, n, "shrink volume %s %s -> %s", a->name, sz(a->from, b1, 32), sz(a->to, b2, 32)); break;
	case A_CREATE_POOL: snprintf(out, n, "create pool %s", a->name); break;
	case A_CREATE_VOL:
		snprintf(out, n, "create volume %s%s", a->name, a->vol->snapshots.valid ? " with its snapshot policy" : "");
		break;
	case A_SCHED: snprintf(out, n, "set the snapshot policy of %s", a->name); break;
	case A_GROW: snprintf(out, n, "grow volume %s %s -> %s", a->name, sz(a->from, b1, 32), sz(a->to, b2, 32)); break;
	case A_SET: {
		size_t o = (size_t)snprintf(out, n, "set");
		for (size_t k = 0; k < a->nprops && o < n; k++)
			o += (size_t)snprintf(out + o, n - o, " %s=%s", a->props[k], a->val[k]);
		if (o < n)
			snprintf(out + o, n - o, " on %s", a->name);
		break;
	}
	default: snprintf(out, n, "%s %s", verb[a->kind], a->name);
	}
}

static int
set_policy(cask_client *c, const char *name, const mf_policy *p)
{
	cask_sched s = { (uint32_t)p->every_min, p->keep, p->hourly, p->daily, p->weekly, p->monthly };
	return cask_sched_set(c, name, &s);
}

static int
run_action(cask_client *c, const action *a)
{
	switch (a->kind) {
	case A_RELEASE: {
		const char *names[1] = { a->snap };
		return cask_snap_release(c, a->tag, names, 1);
	}
	case A_DESTROY:
		return a->flags ? cask_vol_destroy_ex(c, a->name, a->flags) : cask_vol_destroy(c, a->name);
	case A_SHRINK:
		return cask_vol_resize(c, a->name, a->to, 1);
	case A_GROW:
		return cask_vol_resize(c, a->name, a->to, 0);
	case A_CREATE_POOL:
		return cask_pool_create(c, a->name, (const char *const *)a->pool->vdevs, (unsigned)a->pool->nvdevs,
		    a->pool->has_size ? a->pool->size : 0);
	case A_CREATE_VOL: {
		cask_vol_props pr = CASK_VOL_PROPS_INIT;
		pr.volblocksize = a->vol->volblocksize;
		pr.compression = a->vol->prop[MF_COMPRESSION];
		pr.checksum = a->vol->prop[MF_CHECKSUM];
		pr.sync = a->vol->prop[MF_SYNC];
		int rc = cask_vol_create(c, a->name, a->vol->size, &pr);
		if (rc == 0 && a->vol->snapshots.valid)
			rc = set_policy(c, a->name, &a->vol->snapshots); /* failing here, the next apply sets it */
		return rc;
	}
	case A_SET:
		return cask_vol_set_many(c, a->name, a->props, a->val, a->nprops);
	case A_SCHED:
		return set_policy(c, a->name, &a->vol->snapshots);
	}
	return 0;
}
/* ---- the result ---- */

static void
item_set(cask_apply_item *it, const action *a, const char *vrb, const char *detail, size_t step)
{
	snprintf(it->verb, sizeof(it->verb), "%s", vrb);
	snprintf(it->kind, sizeof(it->kind), "%s", a->is_pool ? "pool" : "volume");
	snprintf(it->name, sizeof(it->name), "%s", a->name);
	snprintf(it->detail, sizeof(it->detail), "%s", detail);
	it->step = step;
	if (step != 0)
		describe_done(a, it->action, sizeof(it->action));
	it->state = CASK_APPLY_PLANNED;
}

/* The plan p (sorted) as items; first[i]: the index of action i's first item. */
static void
fill_items(cask_apply_result *r, const plan *p, size_t *first)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->a[i].kind == A_SET ? p->a[i].nprops : 1;
	r->items = xcalloc(n ? n : 1, sizeof(*r->items));
	size_t k = 0, step = 0;
	for (size_t i = 0; i < p->n; i++) {
		const action *a = &p->a[i];
		size_t st = is_change(a->kind) ? ++step : 0;
		first[i] = k;
		if (a->kind == A_SET) {
			for (size_t j = 0; j < a->nprops; j++) {
				char d[200];
				snprintf(d, sizeof(d), "%s %s -> %s", a->props[j], a->old[j], a->val[j]);
				item_set(&r->items[k++], a, verb[a->kind], d, st);
			}
		} else {
			item_set(&r->items[k++], a, verb[a->kind], a->detail, st);
		}
		switch (a->kind) {
		case A_DESTROY: case A_SHRINK: r->ndestroy++; break;
		case A_CREATE_POOL: case A_CREATE_VOL: r->ncreate++; break;
		case A_RELEASE: case A_GROW: case A_SET: case A_SCHED: r->nchange++; break;
		case A_UNCHANGED: r->nunchanged++; break;
		case A_WOULD_DESTROY: case A_WOULD_SHRINK: r->nskipped++; break;
		}
	}
	r->nitems = k;
	r->nsteps = step;
}

/* Items first .. of action a's step become state (FAILED: with the thread's cask_error). */
static void
mark(cask_apply_result *r, size_t first, int st)
{
	const cask_error_info *e = cask_error();
	for (size_t k = first; k < r->nitems && r->items[k].step == r->items[first].step; k++) {
		r->items[k].state = st;
		if (st == CASK_APPLY_FAILED) {
			r->items[k].err = e->err;
			snprintf(r->items[k].code, sizeof(r->items[k].code), "%.31s", e->code);
			snprintf(r->items[k].message, sizeof(r->items[k].message), "%s",
			    e->message[0] ? e->message : strerror(e->err));
		}
	}
}

void
cask_apply_result_free(cask_apply_result *r)
{
	if (r == NULL)
		return;
	free(r->errors);
	free(r->items);
	free(r);
}

int
cask_apply(cask_client *c, const char *text, size_t len, const cask_apply_args *given, cask_apply_result **out)
{
	cask_apply_args args;
	if (out == NULL || (text == NULL && len > 0))
		return client_set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_apply needs the manifest's text and "
		    "somewhere to put the result");
	if (client_opts_take(given, sizeof(args), &args, "cask_apply_args") != 0)
		return -EINVAL;
	const char *shown = args.name != NULL ? args.name : "<manifest>";
	cask_apply_result *r = xcalloc(1, sizeof(*r));
	*out = r;
	manifest m;
	manifest_load_text(shown, text != NULL ? text : "", len, args.base_dir, &m);
	int rc = 0;
	state s = { 0 };
	plan p = { 0 };
	size_t *first = NULL;
	if (c == NULL || (m.nerrs > 0 && m.npools == 0 && m.nvols == 0))
		goto errors; /* the text alone; or nothing usable to check against caskd */
	/* step 2: the running state, and the text against it */
	if ((rc = cask_pool_list(c, &s.pools, &s.npools)) != 0)
		goto out;
	s.sp = xcalloc(s.npools ? s.npools : 1, sizeof(spool));
	for (size_t i = 0; i < s.npools; i++)
		s.sp[i].info = s.pools[i];
	for (size_t i = 0; i < m.npools; i++) {
		const mf_pool *mp = &m.pools[i];
		if (mp->name == NULL)
			continue;
		spool *sp = find_pool(&s, mp->name);
		if (sp == NULL) {
			plan_new_pool(&m, &p, mp);
			continue;
		}
		sp->managed = 1;
		if ((rc = check_pool(c, &m, mp, sp)) != 0)
			goto out;
		if (strcmp(sp->info.state, "ONLINE") == 0) {
			if ((rc = list_vols(c, sp)) != 0)
				goto out;
			add(&p, A_UNCHANGED, 1, mp->name);
		}
	}
	for (size_t i = 0; i < m.nvols; i++) {
		const mf_vol *mv = &m.vols[i];
		if (mv->name == NULL || (mv->size == 0 && !mv->absent))
			continue;
		spool *sp = find_pool(&s, mv->pool);
		if (mv->absent) {
			const cask_vol_info *cur = NULL;
			if (sp != NULL && strcmp(sp->info.state, "ONLINE") != 0) {
				manifest_err(&m, mv->pos, "volume %s: pool %s is %s; apply needs it ONLINE", mv->name,
				    mv->pool, sp->info.state);
				continue;
			}
			if (sp != NULL && (rc = list_vols(c, sp)) != 0)
				goto out;
			if (sp != NULL && (cur = find_vol(sp, mv->name)) != NULL) {
				if ((rc = plan_absent(c, &m, &p, sp, cur, mv)) != 0)
					goto out;
			} else {
				action *a = add(&p, A_UNCHANGED, 0, mv->name);
				snprintf(a->detail, sizeof(a->detail), "absent, as the file says");
			}
			continue;
		}
		if (sp == NULL) {
			if (mf_find_pool(&m, mv->pool) == NULL)
				manifest_err(&m, mv->pos, "volume %s: pool %s is neither declared under pools: nor exists",
				    mv->name, mv->pool);
			else
				plan_vol(&m, &p, mv, NULL, NULL, args.prune);
			continue;
		}
		if (strcmp(sp->info.state, "ONLINE") != 0) {
			if (!sp->managed)
				manifest_err(&m, mv->pos, "volume %s: pool %s is %s; apply needs it ONLINE", mv->name,
				    mv->pool, sp->info.state);
			continue;
		}
		if ((rc = list_vols(c, sp)) != 0 || (rc = list_scheds(c, sp)) != 0)
			goto out;
		plan_vol(&m, &p, mv, find_vol(sp, mv->name), find_sched(sp, mv->name), args.prune);
	}
	for (size_t i = 0; i < s.npools; i++) {
		spool *sp = &s.sp[i];
		if (!sp->managed || !sp->listed)
			continue;
		for (size_t k = 0; k < sp->nvols; k++) {
			int named = 0;
			for (size_t j = 0; j < m.nvols && !named; j++)
				named = m.vols[j].name && strcmp(m.vols[j].name, sp->vols[k].name) == 0;
			if (!named && (rc = plan_prune(c, &p, &sp->vols[k], args.prune)) != 0)
				goto out;
		}
	}
	if (m.nerrs > 0)
		goto errors;

	/* step 3: the plan */
	qsort(p.a, p.n, sizeof(*p.a), kind_cmp);
	first = xcalloc(p.n ? p.n : 1, sizeof(size_t));
	fill_items(r, &p, first);
	if (args.progress != NULL && args.progress(args.progress_arg, r, (size_t)-1) != 0) {
		rc = client_set_error(ECANCELED, CE_E_CANCELLED, "apply of %s stopped before any change", shown);
		goto out;
	}
	if (args.dry_run || r->nsteps == 0)
		goto out;
	/* step 4: make it so */
	for (size_t i = 0; i < p.n; i++) {
		const action *a = &p.a[i];
		if (!is_change(a->kind))
			continue;
		if (rc != 0) {
			mark(r, first[i], CASK_APPLY_NOT_DONE);
			continue;
		}
		if ((rc = run_action(c, a)) != 0) {
			mark(r, first[i], CASK_APPLY_FAILED);
			continue;
		}
		mark(r, first[i], CASK_APPLY_DONE);
		r->ndone++;
		if (args.progress != NULL && args.progress(args.progress_arg, r, first[i]) != 0)
			rc = client_set_error(ECANCELED, CE_E_CANCELLED, "apply of %s stopped after %zu of %zu changes",
			    shown, r->ndone, r->nsteps);
	}
	goto out;

errors:
	manifest_sort_errors(&m);
	r->errors = xcalloc(m.nerrs ? m.nerrs : 1, sizeof(*r->errors));
	for (size_t i = 0; i < m.nerrs; i++) {
		r->errors[i].line = m.errs[i].pos.line;
		r->errors[i].column = m.errs[i].pos.col;
		snprintf(r->errors[i].message, sizeof(r->errors[i].message), "%s", m.errs[i].msg);
	}
	r->nerrors = m.nerrs;
	if (m.nerrs == 1 && m.errs[0].pos.line > 0)
		rc = client_set_error(EINVAL, CE_E_INVALID_ARGUMENT, "%s:%d:%d: %s", shown, m.errs[0].pos.line,
		    m.errs[0].pos.col, m.errs[0].msg);
	else if (m.nerrs == 1)
		rc = client_set_error(EINVAL, CE_E_INVALID_ARGUMENT, "%s: %s", shown, m.errs[0].msg);
	else if (m.nerrs > 1)
		rc = client_set_error(EINVAL, CE_E_INVALID_ARGUMENT, "%zu errors in %s; nothing was changed", m.nerrs,
		    shown);
out:
	free(first);
	free(p.a);
	state_free(&s);
	manifest_free(&m);
	return rc;
}

/* ---- cask_manifest_get ---- */

/* A YAML double-quoted scalar. */
static void
yq(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static int
export_pool(cask_client *c, FILE *out, const cask_pool_info *pi, FILE *vols)
{
	cask_pool_info st;
	int rc = cask_pool_status(c, pi->name, &st);
	if (rc != 0)
		return rc;
	fprintf(out, "  - name: ");
	yq(out, pi->name);
	fprintf(out, "\n    vdevs:\n");
	uint64_t fsize = 0;
	int known = st.nvdevs_paths > 0;
	for (unsigned i = 0; i < st.nvdevs_paths; i++) {
		fprintf(out, "      - ");
		yq(out, st.vdevs[i]);
		fputc('\n', out);
		struct stat sb;
		if (stat(st.vdevs[i], &sb) != 0 || !S_ISREG(sb.st_mode) || (i > 0 && (uint64_t)sb.st_size != fsize))
			known = 0;
		else
			fsize = (uint64_t)sb.st_size;
	}
	char b[32];
	if (known)
		fprintf(out, "    size: %s\n", sz(fsize, b, sizeof(b)));
	cask_pool_info_clear(&st);
	cask_vol_info *v;
	size_t n;
	cask_sched_info *sc;
	size_t nsc;
	if ((rc = cask_sched_list(c, pi->name, &sc, &nsc)) != 0)
		return rc;
	if ((rc = cask_vol_list(c, pi->name, &v, &n)) != 0) {
		free(sc);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i].receive_resume_token[0] != '\0') {
			fprintf(vols, "  # %s: a partial receive, not exported\n", v[i].name);
			continue;
		}
		fprintf(vols, "  - name: ");
		yq(vols, v[i].name);
		fprintf(vols, "\n    size: %s\n", sz(v[i].size, b, sizeof(b)));
		fprintf(vols, "    properties:\n      compression: %s\n      checksum: %s\n      sync: %s\n"
		    "      volblocksize: %s\n", v[i].compression, v[i].checksum, v[i].sync,
		    sz(v[i].volblocksize, b, sizeof(b)));
		for (size_t k = 0; k < nsc; k++) {
			if (strcmp(sc[k].name, v[i].name) != 0)
				continue;
			const cask_sched *pol = &sc[k].policy;
			char e[32];
			fprintf(vols, "    snapshots:\n      every: %s\n", util_fmt_minutes(pol->every_min, e, sizeof(e)));
			if (pol->keep)
				fprintf(vols, "      keep: %u\n", pol->keep);
			if (pol->hourly | pol->daily | pol->weekly | pol->monthly) {
				fprintf(vols, "      retain:\n");
				const uint32_t rr[4] = { pol->hourly, pol->daily, pol->weekly, pol->monthly };
				static const char *const rn[4] = { "hourly", "daily", "weekly", "monthly" };
				for (int j = 0; j < 4; j++)
					if (rr[j])
						fprintf(vols, "        %s: %u\n", rn[j], rr[j]);
			}
		}
		if (v[i].origin[0] != '\0')
			fprintf(vols, "    # a clone of %s (exported as a plain volume)\n", v[i].origin);
	}
	free(v);
	free(sc);
	return 0;
}

int
cask_manifest_get(cask_client *c, const char *const *pools, size_t npools, char **text)
{
	if (text == NULL || (pools == NULL && npools > 0))
		return client_set_error(EINVAL, CE_E_INVALID_ARGUMENT, "cask_manifest_get needs somewhere to put the "
		    "manifest");
	cask_pool_info *pl;
	size_t np;
	int rc = cask_pool_list(c, &pl, &np);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < npools && rc == 0; i++) {
		size_t k = 0;
		while (k < np && strcmp(pl[k].name, pools[i]) != 0)
			k++;
		if (k == np)
			rc = client_set_error(ENOENT, CE_E_POOL_NOT_FOUND, "pool %s does not exist", pools[i]);
		else if (strcmp(pl[k].state, "ONLINE") != 0)
			rc = client_set_error(ENXIO, CE_E_POOL_UNAVAILABLE, "pool %s is %s", pools[i], pl[k].state);
	}
	char *pbuf = NULL, *vbuf = NULL, *all = NULL;
	size_t plen = 0, vlen = 0, alen = 0;
	FILE *pf = NULL, *vf = NULL, *af = NULL;
	if (rc == 0 && ((pf = open_memstream(&pbuf, &plen)) == NULL || (vf = open_memstream(&vbuf, &vlen)) == NULL))
		rc = client_set_error(errno, CE_E_INTERNAL, "cask_manifest_get: %s", strerror(errno));
	for (size_t k = 0; k < np && rc == 0; k++) {
		int wanted = npools == 0;
		for (size_t i = 0; i < npools; i++)
			wanted |= strcmp(pl[k].name, pools[i]) == 0;
		if (!wanted)
			continue;
		if (strcmp(pl[k].state, "ONLINE") != 0) {
			fprintf(pf, "  # pool %s is %s: not exported\n", pl[k].name, pl[k].state);
			continue;
		}
		rc = export_pool(c, pf, &pl[k], vf);
	}
	if (pf != NULL)
		fclose(pf);
	if (vf != NULL)
		fclose(vf);
	if (rc == 0) {
		if ((af = open_memstream(&all, &alen)) == NULL) {
			rc = client_set_error(errno, CE_E_INTERNAL, "cask_manifest_get: %s", strerror(errno));
		} else {
			fprintf(af, "# the running state of caskd, as printed by cask get manifest (docs/manifests.md)\n");
			fprintf(af, "apiVersion: cask/v1\n");
			fprintf(af, "pools:%s\n%s", plen ? "" : " []", pbuf ? pbuf : "");
			fprintf(af, "volumes:%s\n%s", vlen ? "" : " []", vbuf ? vbuf : "");
			fclose(af);
			*text = all;
		}
	}
	free(pbuf);
	free(vbuf);
	cask_pool_info_free(pl, np);
	return rc;
}
