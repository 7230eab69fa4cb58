/*
 * test_fault -- fault injection through the backend wrap hook: an IO
 * error during a txg sync (a write, or the flush before the uberblock)
 * suspends the pool without committing anything of that txg; later
 * writes, syncs and management calls fail with the error; the pool
 * re-imports at the last committed txg with every block intact. A failed
 * read fails that read only and is counted.
 */
#include <stdatomic.h>

#include "t.h"

typedef struct fault_be {
	ce_backend be;
	ce_backend *inner;
} fault_be;

static _Atomic int fail_writes, fail_flushes, fail_reads; /* 1 = every call fails until reset */
static _Atomic int fail_next_read;                         /* fail the next read only */

static int
f_pread(ce_backend *be, void *buf, size_t len, uint64_t off)
{
	fault_be *f = (fault_be *)be;
	if (fail_reads || atomic_exchange(&fail_next_read, 0))
		return -EIO;
	return f->inner->pread(f->inner, buf, len, off);
}

static int
f_pwritev(ce_backend *be, const struct iovec *iov, int n, uint64_t off)
{
	fault_be *f = (fault_be *)be;
	if (fail_writes)
		return -EIO;
	return f->inner->pwritev(f->inner, iov, n, off);
}

static int
f_flush(ce_backend *be)
{
	fault_be *f = (fault_be *)be;
	if (fail_flushes)
		return -EIO;
	return f->inner->flush(f->inner);
}

static void
f_close(ce_backend *be)
{
	fault_be *f = (fault_be *)be;
	f->inner->close(f->inner);
	free(f);
}

static ce_backend *
wrap(ce_backend *inner, unsigned idx, void *arg)
{
	(void)idx;
	(void)arg;
	fault_be *f = calloc(1, sizeof(*f));
	f->inner = inner;
	f->be = (ce_backend){ f_pread, f_pwritev, f_flush, f_close, inner->size };
	return &f->be;
}

static void
expect_content(const char *path, const uint8_t *model, uint64_t size)
{
	ce_pool_opts o = { 0 };
	ce_pool *p;
	ce_vol *v;
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	uint8_t *buf = malloc(size);
	OK(ce_vol_read(v, buf, size, 0));
	CHECK(memcmp(buf, model, size) == 0);
	free(buf);
	ce_vol_close(v);
	OK(ce_pool_export(p));
}

static void
suspend_case(const char *path, _Atomic int *knob, const char *what)
{
	const uint64_t size = 4 << 20;
	ce_pool_opts o = { 0 };
	o.wrap = wrap;
	o.txg_timeout_ms = 60000;
	ce_pool *p;
	ce_vol *v;
	OK(ce_pool_import(&path, 1, &o, &p));
	OK(ce_vol_open(p, "v", &v));
	uint8_t *committed = malloc(size), *buf = malloc(size);
	OK(ce_vol_read(v, committed, size, 0));
	t_fill(buf, size, 77);
	OK(ce_vol_write(v, buf, size, 0)); /* in memory only */
	*knob = 1;
	int r = ce_pool_sync(p);
	CHECK_ERR(r, -EIO);
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.suspended == -EIO);
	CHECK(st.io_errors >= 1);
	printf("%s failure: sync -> %s; suspended\n", what, ce_errmsg());
	CHECK_ERR(ce_vol_write(v, buf, 4096, 0), -EIO);
	CHECK(strstr(ce_errmsg(), "suspended") != NULL);
	CHECK_ERR(ce_vol_create(p, "w", 1 << 20, NULL), -EIO);
	CHECK_ERR(ce_pool_sync(p), -EIO);
	*knob = 0;
	ce_vol_close(v);
	CHECK_ERR(ce_pool_export(p), -EIO); /* closes, reporting that it could not commit */
	/* Nothing of the failed txg is on disk. */
	expect_content(path, committed, size);
	free(committed);
	free(buf);
}

int
main(int argc, char **argv)
{
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool");
	const uint64_t size = 4 << 20;
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	o.wrap = wrap;
	ce_pool *p;
	OK(ce_pool_create("fault", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", size, &pr));
	ce_vol *v;
	OK(ce_vol_open(p, "v", &v));
	uint8_t *model = malloc(size), *buf = malloc(size);
	t_fill(model, size, 1);
	OK(ce_vol_write(v, model, size, 0));
	OK(ce_pool_sync(p));
	/* A failed read fails that read, is counted, and the next one works. */
	ce_vol_close(v);
	OK(ce_pool_export(p));
	OK(ce_pool_import(&path, 1, &o, &p)); /* cold cache */
	OK(ce_vol_open(p, "v", &v));
	fail_next_read = 1;
	CHECK_ERR(ce_vol_read(v, buf, 4096, 8192), -EIO);
	ce_pool_stat st;
	OK(ce_pool_stat_get(p, &st));
	CHECK(st.io_errors == 1 && st.suspended == 0);
	OK(ce_vol_read(v, buf, size, 0));
	CHECK(memcmp(buf, model, size) == 0);
	ce_vol_close(v);
	OK(ce_pool_export(p));

	suspend_case(path, &fail_writes, "write");
	suspend_case(path, &fail_flushes, "flush");
	expect_content(path, model, size);

	/* and the pool is still consistent */
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	free(model);
	free(buf);
	printf("ok\n");
	return 0;
}
