/*
 * test_attr -- dataset attributes in the pool (attr.c, on-disk-format.md
 * section 4.9): replace and get per volume and namespace, in the order
 * given; refused: namespace 0, oversized values, too many records, no
 * volume, a snapshot; they survive export/import and a rename (keyed by
 * guid), many of them (more than one leaf of the object); a destroyed
 * volume's records are gone; an empty replace removes them; cask-debug
 * check is clean after every stage.
 */
#include "t.h"

static const char *argv0, *path;
static ce_pool_opts o;

static ce_pool *
recheck(ce_pool *p)
{
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	OK(ce_pool_import(&path, 1, &o, &p));
	return p;
}

static void
mk(ce_attr *a, uint16_t key, const char *val)
{
	memset(a, 0, sizeof(*a));
	a->key = key;
	a->len = (uint16_t)strlen(val);
	memcpy(a->val, val, a->len);
}

/* the records of vol/ns as "key:val key:val" */
static char *
show(ce_pool *p, const char *vol, uint16_t ns)
{
	static char buf[4096];
	ce_attr *a;
	size_t n, k = 0;
	OK(ce_attr_get(p, vol, ns, &a, &n));
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%u:%.*s", i ? " " : "", a[i].key, a[i].len,
		    (const char *)a[i].val);
	free(a);
	return buf;
}

int
main(int argc, char **argv)
{
	(void)argc;
	argv0 = argv[0];
	t_tmpdir();
	path = t_path("pool");
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("at", &path, 1, &o, &p));
	OK(ce_vol_create(p, "db", 1 << 20, NULL));
	OK(ce_vol_create(p, "web", 1 << 20, NULL));
	CHECK(strcmp(show(p, "db", 1), "") == 0);

	ce_attr a[3], big;
	mk(&a[0], 1, "state");
	mk(&a[1], 2, "reg-one");
	mk(&a[2], 2, "reg-two");
	memset(&big, 0, sizeof(big));
	big.key = 2;
	big.len = CE_ATTR_VALUE_MAX + 1;
	CHECK_ERR(ce_attr_replace(p, "db", 0, a, 1), -EINVAL);
	CHECK_ERR(ce_attr_replace(p, "db", 1, &big, 1), -EINVAL);
	CHECK_ERR(ce_attr_replace(p, "db", 1, a, CE_ATTR_MAX + 1), -EINVAL);
	CHECK_ERR(ce_attr_replace(p, "nope", 1, a, 1), -ENOENT);
	const char *sn = "db@s1";
	int e;
	OK(ce_snap_create(p, &sn, 1, &e));
	CHECK_ERR(ce_attr_replace(p, "db@s1", 1, a, 1), -ENOENT);
	CHECK_ERR(ce_attr_get(p, "nope", 1, &(ce_attr *){ NULL }, &(size_t){ 0 }), -ENOENT);

	OK(ce_attr_replace(p, "db", 1, a, 3));
	OK(ce_attr_replace(p, "db", 7, &a[1], 1));   /* another namespace of the same volume */
	OK(ce_attr_replace(p, "web", 1, &a[2], 1));
	CHECK(strcmp(show(p, "db", 1), "1:state 2:reg-one 2:reg-two") == 0);
	p = recheck(p);
	CHECK(strcmp(show(p, "db", 1), "1:state 2:reg-one 2:reg-two") == 0);
	CHECK(strcmp(show(p, "db", 7), "2:reg-one") == 0);
	CHECK(strcmp(show(p, "web", 1), "2:reg-two") == 0);

	/* a replace changes only its (volume, namespace); a rename keeps them */
	OK(ce_attr_replace(p, "db", 1, &a[2], 1));
	OK(ce_vol_rename(p, "db", "db2"));
	p = recheck(p);
	CHECK(strcmp(show(p, "db2", 1), "2:reg-two") == 0);
	CHECK(strcmp(show(p, "db2", 7), "2:reg-one") == 0);

	/* more than one leaf (32 records each): 200 records of one volume, then fewer again */
	static ce_attr many[200];
	for (int i = 0; i < 200; i++) {
		char v[32];
		snprintf(v, sizeof(v), "r%03d", i);
		mk(&many[i], (uint16_t)(i + 1), v);
	}
	OK(ce_attr_replace(p, "web", 1, many, 200));
	p = recheck(p);
	ce_attr *got;
	size_t n;
	OK(ce_attr_get(p, "web", 1, &got, &n));
	CHECK(n == 200);
	for (size_t i = 0; i < n; i++)
		CHECK(got[i].key == i + 1 && got[i].len == 4 && memcmp(got[i].val, many[i].val, 4) == 0);
	free(got);
	OK(ce_attr_replace(p, "web", 1, many, 3)); /* the leaves past them are freed (check) */
	p = recheck(p);
	CHECK(strcmp(show(p, "web", 1), "1:r000 2:r001 3:r002") == 0);

	/* a destroyed volume's records go with it; an empty replace removes them */
	OK(ce_snap_destroy(p, "db2@s1"));
	OK(ce_vol_destroy(p, "db2"));
	OK(ce_vol_create(p, "db2", 1 << 20, NULL)); /* a new volume of the old name has none */
	CHECK(strcmp(show(p, "db2", 1), "") == 0 && strcmp(show(p, "db2", 7), "") == 0);
	OK(ce_attr_replace(p, "web", 1, NULL, 0));
	p = recheck(p);
	CHECK(strcmp(show(p, "web", 1), "") == 0 && strcmp(show(p, "db2", 7), "") == 0);
	OK(ce_pool_export(p));
	CHECK(t_debug_check(argv0, path, NULL) == 0);
	printf("ok\n");
	return 0;
}
