/*
 * manifest.c -- read a `cask/v1` manifest (docs/manifests.md) with libyaml;
 * part of libcask (cask_apply, apply.c).
 *
 * The text is loaded as one YAML document (libyaml's node tree keeps each
 * node's position) and walked field by field. The walk never stops at a
 * problem: each one is recorded with the position of the node it is
 * about, the field is left unset, and the walk goes on, so the caller
 * reports every error of the file in one run. Only a file that is not
 * YAML stops early (libyaml cannot resume after a syntax error).
 *
 * Values are checked by the rules caskd applies (names: lib/engine/pool.c
 * pool_name_valid and vol.c name_valid; properties: parsed by the engine's
 * own ce_vol_props_parse (prop.c); volume sizes: vol_create_ex), so a file
 * that loads without errors is refused by caskd only for reasons of the
 * running state.
 */
#include "cask/engine.h"
#include "manifest.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

const char *const mf_prop_names[MF_NPROPS] = { "compression", "checksum", "sync", "volblocksize" };

#define MF_MIN_VDEV_SIZE (16ull << 20)   /* the engine's CE_MIN_VDEV_SIZE */
#define MF_BS_MIN 4096u                   /* CE_VOLBLOCKSIZE_MIN, _MAX */
#define MF_BS_MAX 131072u
#define MF_MAX_BLOCKS (1ull << 48)        /* cowtree_capacity(7): blocks in the largest volume */
#define MF_MAX_VDEVS 64u
#define MF_COUNT_MAX 100000u

typedef struct ld {
	manifest *m;
	yaml_document_t *doc;
	char dir[PATH_MAX]; /* where relative vdev paths start */
} ld;

void
manifest_err(manifest *m, mf_pos pos, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	m->errs = xrealloc(m->errs, (m->nerrs + 1) * sizeof(*m->errs));
	m->errs[m->nerrs].pos = pos;
	m->errs[m->nerrs].msg = xstrdup(buf);
	m->nerrs++;
}

static int
err_cmp(const void *a, const void *b)
{
	const mf_error *x = a, *y = b;
	if (x->pos.line != y->pos.line)
		return x->pos.line < y->pos.line ? -1 : 1;
	if (x->pos.col != y->pos.col)
		return x->pos.col < y->pos.col ? -1 : 1;
	return 0;
}

/* The errors in file order (equal positions keep the order they were found in). */
void
manifest_sort_errors(manifest *m)
{
	for (size_t i = 1; i < m->nerrs; i++) /* insertion sort: stable, and files have few errors */
		for (size_t j = i; j > 0 && err_cmp(&m->errs[j - 1], &m->errs[j]) > 0; j--) {
			mf_error t = m->errs[j];
			m->errs[j] = m->errs[j - 1];
			m->errs[j - 1] = t;
		}
}

void
manifest_free(manifest *m)
{
	for (size_t i = 0; i < m->npools; i++) {
		free(m->pools[i].name);
		for (size_t j = 0; j < m->pools[i].nvdevs; j++)
			free(m->pools[i].vdevs[j]);
		free(m->pools[i].vdevs);
		free(m->pools[i].vdev_pos);
	}
	free(m->pools);
	for (size_t i = 0; i < m->nvols; i++)
		free(m->vols[i].name);
	free(m->vols);
	for (size_t i = 0; i < m->nerrs; i++)
		free(m->errs[i].msg);
	free(m->errs);
	free(m->file);
	memset(m, 0, sizeof(*m));
}

/* ---- scalars ---- */

int
mf_parse_size(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	unsigned __int128 whole = 0, frac = 0, fdiv = 1;
	if (*p == '-') {
		*why = "a size cannot be negative";
		return -1;
	}
	if (!isdigit((unsigned char)*p)) {
		*why = "a size is a number of bytes, or a number with K, M, G, T, P or E";
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (unsigned)(*p - '0');
		if (whole > UINT64_MAX)
			goto toolarge;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p)) {
			*why = "a digit must follow the decimal point";
			return -1;
		}
		/* at most 19 decimals, so that frac << 60 fits in 128 bits */
		for (; isdigit((unsigned char)*p); p++) {
			if (fdiv <= 1000000000000000000ull) {
				frac = frac * 10 + (unsigned)(*p - '0');
				fdiv *= 10;
			} else if (*p != '0') {
				*why = "too many decimal places (at most 19)";
				return -1;
			}
		}
	}
	unsigned shift = 0;
	static const char units[] = "KMGTPE";
	const char *u = *p ? strchr(units, toupper((unsigned char)*p)) : NULL;
	if (*p != '\0' && u != NULL) {
		shift = 10u * (unsigned)(u - units + 1);
		p++;
		if (*p == 'i' && (p[1] == 'B' || p[1] == 'b'))
			p += 2;
		else if (*p == 'B' || *p == 'b')
			p++;
	} else if (*p == 'B' || *p == 'b') {
		p++;
	}
	if (*p != '\0') {
		*why = "unknown unit (sizes are bytes, or a number with K, M, G, T, P or E, powers of 1024)";
		return -1;
	}
	unsigned __int128 v = whole << shift;
	if ((v >> shift) != whole || v > UINT64_MAX)
		goto toolarge;
	unsigned __int128 fb = frac << shift;
	if (fb % fdiv != 0) {
		*why = "not a whole number of bytes";
		return -1;
	}
	v += fb / fdiv;
	if (v > UINT64_MAX)
		goto toolarge;
	if (v == 0) {
		*why = "a size must be greater than zero";
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
toolarge:
	*why = "too large (at most 16E minus one byte)";
	return -1;
}

const char *
mf_fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	for (int u = 5; u >= 0; u--) {
		unsigned shift = 10u * (unsigned)(u + 1);
		if (v != 0 && (v & ((1ull << shift) - 1)) == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v >> shift), units[u]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

int
mf_pool_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

static int
vol_part_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.' && s[i] != ':')
			return 0;
	return 1;
}

/* ---- nodes ---- */

static mf_pos
pos_of(const yaml_node_t *n)
{
	return (mf_pos){ (int)n->start_mark.line + 1, (int)n->start_mark.column + 1 };
}

static const char *
sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static int
is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	const char *v = sval(n);
	return !strcmp(v, "") || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static const char *
what_is(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_null(n))
		return "nothing (null)";
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return "a quoted string";
	return "a scalar";
}

static yaml_node_t *
node(ld *l, int idx)
{
	return yaml_document_get_node(l->doc, idx);
}

/* A string value (any non-null scalar), or NULL with the error recorded. */
static const char *
want_string(ld *l, const yaml_node_t *n, const char *field)
{
	if (n->type != YAML_SCALAR_NODE || is_null(n)) {
		manifest_err(l->m, pos_of(n), "%s: expected a string, got %s", field, what_is(n));
		return NULL;
	}
	if (strlen(sval(n)) != n->data.scalar.length) {
		manifest_err(l->m, pos_of(n), "%s: contains a NUL character", field);
		return NULL;
	}
	return sval(n);
}

/* A boolean: the plain scalars true and false only (YAML 1.1's yes/no/on/off are refused as ambiguous). */
static int
want_bool(ld *l, const yaml_node_t *n, const char *field, int *out)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    (strcmp(sval(n), "true") != 0 && strcmp(sval(n), "false") != 0)) {
		manifest_err(l->m, pos_of(n), "%s: expected true or false, got %s%s%s%s", field, what_is(n),
		    n->type == YAML_SCALAR_NODE ? " '" : "", n->type == YAML_SCALAR_NODE ? sval(n) : "",
		    n->type == YAML_SCALAR_NODE ? "'" : "");
		return -1;
	}
	*out = strcmp(sval(n), "true") == 0;
	return 0;
}

static int
want_count(ld *l, const yaml_node_t *n, const char *field, unsigned *out)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || is_null(n)) {
		manifest_err(l->m, pos_of(n), "%s: expected an integer, got %s", field, what_is(n));
		return -1;
	}
	const char *s = sval(n);
	unsigned long v = 0;
	size_t i = 0;
	for (; isdigit((unsigned char)s[i]) && v <= MF_COUNT_MAX; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (s[0] == '-' || (s[i] != '\0' && !isdigit((unsigned char)s[i]))) {
		manifest_err(l->m, pos_of(n), "%s: '%s' is not an integer from 0 to %u", field, s, MF_COUNT_MAX);
		return -1;
	}
	if (v > MF_COUNT_MAX) {
		manifest_err(l->m, pos_of(n), "%s: %s is too large (at most %u)", field, s, MF_COUNT_MAX);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int
want_size(ld *l, const yaml_node_t *n, const char *field, uint64_t *out)
{
	if (n->type != YAML_SCALAR_NODE || is_null(n)) {
		manifest_err(l->m, pos_of(n), "%s: expected a size (bytes, or a number with K, M, G, T, P or E), got %s",
		    field, what_is(n));
		return -1;
	}
	const char *why;
	if (mf_parse_size(sval(n), out, &why) != 0) {
		manifest_err(l->m, pos_of(n), "%s: bad size '%s': %s", field, sval(n), why);
		return -1;
	}
	return 0;
}

/*
 * The fields of mapping n: vals[i] gets the value of allowed[i] (NULL when
 * absent). Unknown and repeated keys are errors. Returns -1 when n is not a
 * mapping (recorded).
 */
static int
fields_of(ld *l, const yaml_node_t *n, const char *what, const char *noun, const char *const *allowed,
    size_t nallowed, size_t nlisted, yaml_node_t **vals, mf_pos *keypos)
{
	for (size_t i = 0; i < nallowed; i++)
		vals[i] = NULL;
	if (n->type != YAML_MAPPING_NODE) {
		manifest_err(l->m, pos_of(n), "%s: expected a mapping, got %s", what, what_is(n));
		return -1;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(l, p->key), *v = node(l, p->value);
		if (k->type != YAML_SCALAR_NODE) {
			manifest_err(l->m, pos_of(k), "%s: a %s name must be a string, got %s", what, noun, what_is(k));
			continue;
		}
		size_t i = 0;
		while (i < nallowed && strcmp(allowed[i], sval(k)) != 0)
			i++;
		if (i == nallowed) {
			char list[256] = "";
			for (size_t j = 0; j < nlisted; j++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", j ? ", " : "", allowed[j]);
			manifest_err(l->m, pos_of(k), "%s: unknown %s '%s' (one of: %s)", what, noun, sval(k), list);
			continue;
		}
		if (vals[i] != NULL) {
			manifest_err(l->m, pos_of(k), "%s: %s '%s' given twice (first at line %d)", what, noun, sval(k),
			    keypos[i].line);
			continue;
		}
		vals[i] = v;
		keypos[i] = pos_of(k);
	}
	return 0;
}

static int
fields(ld *l, const yaml_node_t *n, const char *what, const char *const *allowed, size_t nallowed,
    yaml_node_t **vals, mf_pos *keypos)
{
	return fields_of(l, n, what, "field", allowed, nallowed, nallowed, vals, keypos);
}

/* The items of a list field (NULL and 0 for null: an empty list). -1 when not a list. */
static int
items(ld *l, const yaml_node_t *n, const char *what, yaml_node_item_t **start, size_t *count)
{
	*start = NULL;
	*count = 0;
	if (is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE) {
		manifest_err(l->m, pos_of(n), "%s: expected a list, got %s", what, what_is(n));
		return -1;
	}
	*start = n->data.sequence.items.start;
	*count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	return 0;
}

/* The name: of mapping n when it is a plain string, so that messages about n can say whose they are. */
static const char *
peek_name(ld *l, const yaml_node_t *n)
{
	if (n->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(l, p->key), *v = node(l, p->value);
		if (k->type == YAML_SCALAR_NODE && strcmp(sval(k), "name") == 0 && v->type == YAML_SCALAR_NODE &&
		    !is_null(v) && strlen(sval(v)) < 320)
			return sval(v);
	}
	return NULL;
}

/* ---- pools ---- */

static void
load_pool(ld *l, const yaml_node_t *n, size_t idx)
{
	static const char *const F[] = { "name", "vdevs", "size" };
	yaml_node_t *v[3];
	mf_pos kp[3];
	char what[96];
	const char *pn = peek_name(l, n);
	if (pn != NULL && mf_pool_name_valid(pn))
		snprintf(what, sizeof(what), "pool %s", pn);
	else
		snprintf(what, sizeof(what), "pools[%zu]", idx);
	if (fields(l, n, what, F, 3, v, kp) != 0)
		return;
	manifest *m = l->m;
	m->pools = xrealloc(m->pools, (m->npools + 1) * sizeof(*m->pools));
	mf_pool *p = &m->pools[m->npools++];
	memset(p, 0, sizeof(*p));
	p->pos = pos_of(n);
	if (v[0] == NULL) {
		manifest_err(m, pos_of(n), "%s: name is required", what);
	} else {
		const char *s = want_string(l, v[0], "pool name");
		if (s != NULL && !mf_pool_name_valid(s))
			manifest_err(m, pos_of(v[0]), "bad pool name '%s' (1-63 characters: letters, digits, '_', '-', '.'; "
			    "starting with a letter or digit)", s);
		else if (s != NULL) {
			p->name = xstrdup(s);
			snprintf(what, sizeof(what), "pool %s", s);
		}
	}
	if (v[1] == NULL) {
		manifest_err(m, pos_of(n), "%s: vdevs is required (a list of files or devices)", what);
	} else {
		yaml_node_item_t *it;
		size_t cnt;
		p->vdevs_pos = pos_of(v[1]);
		char w2[128];
		snprintf(w2, sizeof(w2), "%s: vdevs", what);
		if (items(l, v[1], w2, &it, &cnt) == 0) {
			if (cnt == 0 || cnt > MF_MAX_VDEVS)
				manifest_err(m, pos_of(v[1]), "%s: a pool needs 1 to %u vdevs, got %zu", w2, MF_MAX_VDEVS, cnt);
			p->vdevs = xcalloc(cnt ? cnt : 1, sizeof(char *));
			p->vdev_pos = xcalloc(cnt ? cnt : 1, sizeof(mf_pos));
			for (size_t i = 0; i < cnt; i++) {
				yaml_node_t *e = node(l, it[i]);
				const char *s = want_string(l, e, "vdev");
				if (s == NULL)
					continue;
				if (s[0] == '\0') {
					manifest_err(m, pos_of(e), "vdev: empty path");
					continue;
				}
				char path[PATH_MAX];
				int w = s[0] == '/' ? snprintf(path, sizeof(path), "%s", s) :
				    snprintf(path, sizeof(path), "%s/%s", l->dir, s);
				if (w < 0 || (size_t)w >= sizeof(path)) {
					manifest_err(m, pos_of(e), "vdev: path too long");
					continue;
				}
				p->vdev_pos[p->nvdevs] = pos_of(e);
				p->vdevs[p->nvdevs++] = xstrdup(path);
			}
		}
	}
	if (v[2] != NULL) {
		p->size_pos = pos_of(v[2]);
		char w2[128];
		snprintf(w2, sizeof(w2), "%s: size", what);
		if (want_size(l, v[2], w2, &p->size) == 0) {
			if (p->size < MF_MIN_VDEV_SIZE)
				manifest_err(m, pos_of(v[2]), "%s: %s is too small (a vdev is at least 16M)", w2, sval(v[2]));
			else if (p->size > (uint64_t)INT64_MAX)
				manifest_err(m, pos_of(v[2]), "%s: %s is larger than a file can be", w2, sval(v[2]));
			else
				p->has_size = 1;
		}
	}
}

/* ---- volumes ---- */

/* The engine's canonical name of a property value (prop.c: one parser for caskd and the CLI), or NULL. */
static const char *
canon_prop(int which, const char *s)
{
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	if (ce_vol_props_parse(&pr, mf_prop_names[which], s) != 0)
		return NULL;
	return which == MF_COMPRESSION ? ce_compress_name(pr.compress) :
	    which == MF_CHECKSUM ? ce_checksum_name(pr.checksum) : ce_sync_name(pr.sync);
}

static void
load_props(ld *l, const yaml_node_t *n, mf_vol *vol, const char *what)
{
	/* "compress" is caskd's alias of compression */
	static const char *const F[] = { "compression", "checksum", "sync", "volblocksize", "compress" };
	static const char *const allowed_vals[] = { "off, lz4, zstd", "xxh128, sha256", "standard, always, disabled" };
	yaml_node_t *v[5];
	mf_pos kp[5];
	char w[440];
	snprintf(w, sizeof(w), "%s: properties", what);
	if (fields_of(l, n, w, "property", F, 5, 4, v, kp) != 0)
		return;
	if (v[4] != NULL) {
		if (v[0] != NULL)
			manifest_err(l->m, kp[4], "%s: compress and compression are the same property, given twice", w);
		else {
			v[0] = v[4];
			kp[0] = kp[4];
		}
	}
	for (int i = 0; i < MF_VOLBLOCKSIZE; i++) {
		if (v[i] == NULL)
			continue;
		char f[440];
		snprintf(f, sizeof(f), "%s: property %s", what, mf_prop_names[i]);
		const char *s = want_string(l, v[i], f);
		if (s == NULL)
			continue;
		const char *c = canon_prop(i, s);
		if (c == NULL)
			manifest_err(l->m, pos_of(v[i]), "%s: bad %s '%s' (%s)", what, mf_prop_names[i], s, allowed_vals[i]);
		vol->prop[i] = c;
		vol->prop_pos[i] = pos_of(v[i]);
	}
	if (v[MF_VOLBLOCKSIZE] != NULL) {
		uint64_t bs;
		yaml_node_t *e = v[MF_VOLBLOCKSIZE];
		vol->prop_pos[MF_VOLBLOCKSIZE] = pos_of(e);
		char f[440];
		snprintf(f, sizeof(f), "%s: property volblocksize", what);
		if (want_size(l, e, f, &bs) == 0) {
			if (!IS_P2(bs) || bs < MF_BS_MIN || bs > MF_BS_MAX)
				manifest_err(l->m, pos_of(e), "%s: bad volblocksize '%s' (a power of two from 4K to 128K)", what, sval(e));
			else {
				static char names[6][8] = { "4K", "8K", "16K", "32K", "64K", "128K" };
				vol->volblocksize = (uint32_t)bs;
				vol->prop[MF_VOLBLOCKSIZE] = names[__builtin_ctzll(bs) - 12];
			}
		}
	}
}

/* "15m", "1h30m", "1d": whole minutes from 1m to 366d. */
void
mf_fmt_policy(const mf_policy *p, char *buf, size_t len)
{
	char e[32];
	size_t o = (size_t)snprintf(buf, len, "every %s", util_fmt_minutes(p->every_min, e, sizeof(e)));
	if (p->keep && o < len)
		o += (size_t)snprintf(buf + o, len - o, ", keep %u", p->keep);
	const unsigned r[4] = { p->hourly, p->daily, p->weekly, p->monthly };
	static const char *const rn[4] = { "hourly", "daily", "weekly", "monthly" };
	int any = 0;
	for (int i = 0; i < 4 && o < len; i++)
		if (r[i]) {
			o += (size_t)snprintf(buf + o, len - o, "%s%s %u", any ? ", " : ", retain ", rn[i], r[i]);
			any = 1;
		}
}

static void
load_policy(ld *l, const yaml_node_t *n, mf_vol *vol, const char *what)
{
	static const char *const F[] = { "every", "keep", "retain" };
	static const char *const R[] = { "hourly", "daily", "weekly", "monthly" };
	yaml_node_t *v[3], *r[4];
	mf_pos kp[3], rp[4];
	char w[440];
	snprintf(w, sizeof(w), "%s: snapshots", what);
	mf_policy *p = &vol->snapshots;
	p->pos = pos_of(n);
	if (fields(l, n, w, F, 3, v, kp) != 0)
		return;
	p->present = 1;
	size_t before = l->m->nerrs;
	if (v[0] == NULL) {
		manifest_err(l->m, pos_of(n), "%s: every is required (how often: 15m, 1h, 1d, ...)", w);
	} else {
		char f[480];
		snprintf(f, sizeof(f), "%s: every", w);
		const char *s = want_string(l, v[0], f);
		if (s != NULL && util_parse_minutes(s, &p->every_min) != 0)
			manifest_err(l->m, pos_of(v[0]), "%s: bad duration '%s' (whole minutes from 1m to "
			    "366d, as numbers with m, h, d or w: 15m, 1h30m, 1d)", f, s);
	}
	char f[480];
	snprintf(f, sizeof(f), "%s: keep", w);
	if (v[1] != NULL)
		want_count(l, v[1], f, &p->keep);
	snprintf(f, sizeof(f), "%s: retain", w);
	if (v[2] != NULL && fields(l, v[2], f, R, 4, r, rp) == 0) {
		unsigned *dst[4] = { &p->hourly, &p->daily, &p->weekly, &p->monthly };
		for (int i = 0; i < 4; i++) {
			snprintf(f, sizeof(f), "%s: retain: %s", w, R[i]);
			if (r[i] != NULL)
				want_count(l, r[i], f, dst[i]);
		}
	}
	if (l->m->nerrs == before && p->keep == 0 && p->hourly == 0 && p->daily == 0 && p->weekly == 0 &&
	    p->monthly == 0)
		manifest_err(l->m, pos_of(n), "%s: the policy keeps nothing (set keep, or a retain count above 0)", w);
	p->valid = l->m->nerrs == before;
}

static void
load_vol(ld *l, const yaml_node_t *n, size_t idx)
{
	static const char *const F[] = { "name", "size", "properties", "snapshots", "replicas", "consistency",
		"absent", "destroy", "allowShrink", "releaseHolds" };
	yaml_node_t *v[10];
	mf_pos kp[10];
	char what[400];
	const char *vn = peek_name(l, n);
	if (vn != NULL)
		snprintf(what, sizeof(what), "volume %s", vn);
	else
		snprintf(what, sizeof(what), "volumes[%zu]", idx);
	if (fields(l, n, what, F, 10, v, kp) != 0)
		return;
	manifest *m = l->m;
	m->vols = xrealloc(m->vols, (m->nvols + 1) * sizeof(*m->vols));
	mf_vol *vol = &m->vols[m->nvols++];
	memset(vol, 0, sizeof(*vol));
	vol->pos = pos_of(n);
	if (v[0] == NULL) {
		manifest_err(m, pos_of(n), "%s: name is required (POOL/VOL)", what);
	} else {
		const char *s = want_string(l, v[0], "volume name");
		const char *slash = s ? strchr(s, '/') : NULL;
		if (s == NULL) {
			/* recorded */
		} else if (slash == NULL) {
			manifest_err(m, pos_of(v[0]), "volume name '%s' is not of the form POOL/VOL", s);
		} else {
			char pool[64];
			size_t pl = (size_t)(slash - s);
			snprintf(pool, sizeof(pool), "%.*s", (int)(pl < 63 ? pl : 63), s);
			if (pl > 63 || !mf_pool_name_valid(pool))
				manifest_err(m, pos_of(v[0]), "volume name '%s': bad pool name (1-63 characters: letters, "
				    "digits, '_', '-', '.'; starting with a letter or digit)", s);
			else if (!vol_part_valid(slash + 1))
				manifest_err(m, pos_of(v[0]), "bad volume name '%s' (POOL/VOL; VOL is 1-255 characters: "
				    "letters, digits, '_', '-', '.', ':'; starting with a letter or digit)", s);
			else {
				vol->name = xstrdup(s);
				snprintf(vol->pool, sizeof(vol->pool), "%s", pool);
				snprintf(what, sizeof(what), "volume %s", s);
			}
		}
	}
	if (v[6] != NULL) {
		vol->absent_pos = kp[6];
		if (want_bool(l, v[6], "absent", &vol->absent) == 0 && vol->absent) {
			/* a volume that must not exist has nothing else to say but what goes with it */
			static const int other[] = { 1, 2, 3, 8 };
			for (size_t k = 0; k < 4; k++)
				if (v[other[k]] != NULL)
					manifest_err(m, kp[other[k]], "%s: absent: true takes no %s: (the volume is to be "
					    "destroyed)", what, F[other[k]]);
		}
	}
	if (v[7] != NULL) {
		const char *s = want_string(l, v[7], "destroy");
		if (s != NULL && !vol->absent)
			manifest_err(m, kp[7], "%s: destroy: goes with absent: true (what else goes when the volume is "
			    "destroyed)", what);
		else if (s != NULL && strcmp(s, "snapshots") == 0)
			vol->destroy = MF_DESTROY_SNAPSHOTS;
		else if (s != NULL && strcmp(s, "clones") == 0)
			vol->destroy = MF_DESTROY_CLONES;
		else if (s != NULL)
			manifest_err(m, pos_of(v[7]), "%s: destroy: '%s' is neither snapshots (its snapshots too) nor "
			    "clones (its snapshots, their clones and theirs too)", what, s);
	}
	if (v[8] != NULL && !vol->absent)
		want_bool(l, v[8], "allowShrink", &vol->allow_shrink);
	if (v[9] != NULL && want_bool(l, v[9], "releaseHolds", &vol->release_holds) == 0 && vol->release_holds &&
	    (!vol->absent || vol->destroy == MF_DESTROY_NONE))
		manifest_err(m, kp[9], "%s: releaseHolds: true goes with absent: true and destroy: snapshots or "
		    "clones (it releases the holds on the snapshots that are destroyed)", what);
	if (vol->absent) {
		/* no size, properties or policy: nothing more to load */
	} else if (v[1] == NULL) {
		manifest_err(m, pos_of(n), "%s: size is required", what);
	} else {
		char w[420];
		snprintf(w, sizeof(w), "%s: size", what);
		vol->size_pos = pos_of(v[1]);
		if (want_size(l, v[1], w, &vol->size) != 0)
			vol->size = 0;
	}
	if (v[2] != NULL && !is_null(v[2]) && !vol->absent)
		load_props(l, v[2], vol, what);
	if (v[3] != NULL && !is_null(v[3]) && !vol->absent) {
		load_policy(l, v[3], vol, what);
		vol->snapshots.pos = kp[3]; /* where apply's refusal points: the snapshots: key */
	}
	if (v[4] != NULL)
		manifest_err(m, kp[4], "%s: replicas: not supported yet (synchronous replication is not "
		    "implemented; the field is reserved for it)", what);
	if (v[5] != NULL)
		manifest_err(m, kp[5], "%s: consistency: not supported yet (synchronous replication is not "
		    "implemented; the field is reserved for it)", what);
	if (vol->size != 0) {
		uint64_t bs = vol->volblocksize ? vol->volblocksize : MF_BS_MIN;
		if (vol->size % bs != 0)
			manifest_err(m, vol->size_pos, "%s: size %s is not a multiple of the block size (%llu)", what,
			    sval(v[1]), (unsigned long long)bs);
		else if (vol->size / bs > MF_MAX_BLOCKS)
			manifest_err(m, vol->size_pos, "%s: size %s is too large (at most %lluE with volblocksize %lluK)",
			    what, sval(v[1]), (unsigned long long)(bs * MF_MAX_BLOCKS >> 60), (unsigned long long)(bs >> 10));
	}
}

/* ---- the document ---- */

static void
load_root(ld *l, yaml_node_t *root)
{
	static const char *const F[] = { "apiVersion", "pools", "volumes" };
	yaml_node_t *v[3];
	mf_pos kp[3];
	manifest *m = l->m;
	if (fields(l, root, "manifest", F, 3, v, kp) != 0)
		return;
	if (v[0] == NULL) {
		manifest_err(m, pos_of(root), "apiVersion is missing (this cask reads apiVersion: cask/v1)");
	} else {
		const char *s = want_string(l, v[0], "apiVersion");
		if (s != NULL && strcmp(s, "cask/v1") != 0)
			manifest_err(m, pos_of(v[0]), "unsupported apiVersion '%s' (this cask reads cask/v1)", s);
	}
	yaml_node_item_t *it;
	size_t cnt;
	if (v[1] != NULL && items(l, v[1], "pools", &it, &cnt) == 0)
		for (size_t i = 0; i < cnt; i++)
			load_pool(l, node(l, it[i]), i);
	if (v[2] != NULL && items(l, v[2], "volumes", &it, &cnt) == 0)
		for (size_t i = 0; i < cnt; i++)
			load_vol(l, node(l, it[i]), i);
	/* duplicates */
	for (size_t i = 0; i < m->npools; i++) {
		mf_pool *p = &m->pools[i];
		for (size_t j = 0; j < i && p->name; j++)
			if (m->pools[j].name && strcmp(m->pools[j].name, p->name) == 0) {
				manifest_err(m, p->pos, "pool %s is declared twice (first at line %d)", p->name, m->pools[j].pos.line);
				break;
			}
		for (size_t k = 0; k < p->nvdevs; k++) {
			int dup = 0;
			for (size_t j = 0; j <= i && !dup; j++)
				for (size_t q = 0; q < (j == i ? k : m->pools[j].nvdevs) && !dup; q++)
					if (strcmp(m->pools[j].vdevs[q], p->vdevs[k]) == 0) {
						manifest_err(m, p->vdev_pos[k], "vdev %s is named twice (first at line %d)",
						    p->vdevs[k], m->pools[j].vdev_pos[q].line);
						dup = 1;
					}
		}
	}
	for (size_t i = 0; i < m->nvols; i++)
		for (size_t j = 0; j < i && m->vols[i].name; j++)
			if (m->vols[j].name && strcmp(m->vols[j].name, m->vols[i].name) == 0) {
				manifest_err(m, m->vols[i].pos, "volume %s is declared twice (first at line %d)",
				    m->vols[i].name, m->vols[j].pos.line);
				break;
			}
}

size_t
manifest_load_text(const char *name, const char *text, size_t len, const char *base_dir, manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->file = xstrdup(name);
	ld l = { .m = m };
	if (base_dir == NULL || realpath(base_dir, l.dir) == NULL) {
		if (base_dir != NULL)
			snprintf(l.dir, sizeof(l.dir), "%s", base_dir);
		else if (getcwd(l.dir, sizeof(l.dir)) == NULL)
			snprintf(l.dir, sizeof(l.dir), ".");
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		mf_pos pos = { (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1 };
		if (parser.context != NULL)
			manifest_err(m, pos, "not valid YAML: %s %s (line %zu)", parser.problem ? parser.problem : "error",
			    parser.context, parser.context_mark.line + 1);
		else
			manifest_err(m, pos, "not valid YAML: %s", parser.problem ? parser.problem : "error");
		goto out;
	}
	l.doc = &doc;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		manifest_err(m, (mf_pos){ 1, 1 }, "empty manifest (expected apiVersion: cask/v1, pools:, volumes:)");
		yaml_document_delete(&doc);
		goto out;
	}
	load_root(&l, root);
	yaml_document_delete(&doc);
	/* one document per file */
	if (!yaml_parser_load(&parser, &doc)) {
		mf_pos pos = { (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1 };
		manifest_err(m, pos, "not valid YAML: %s", parser.problem ? parser.problem : "error");
	} else {
		yaml_node_t *second = yaml_document_get_root_node(&doc);
		if (second != NULL)
			manifest_err(m, pos_of(second), "a second YAML document (a manifest is one document)");
		yaml_document_delete(&doc);
	}
out:
	yaml_parser_delete(&parser);
	return m->nerrs;
}
