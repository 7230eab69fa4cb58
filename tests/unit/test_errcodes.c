/*
 * test_errcodes -- the stable error codes (cask/errcodes.h): the table is
 * well formed (each code a distinct number and symbol, every errno has a
 * code), err_set/err_setc/err_code keep a failure's code beside its
 * message, and the engine names the conditions that share an errno
 * (CE_E_HAS_SNAPSHOTS, CE_E_HELD, CE_E_HAS_CLONES, CE_E_VOLUME_OPEN,
 * CE_E_NOT_A_CLONE, CE_E_VOLUME_EXISTS) while others get their errno's.
 *
 * With --dump it prints the table (wire name, errno name, symbol; one a
 * line) for tests/integration/errcodes.sh, which compares it with
 * docs/control-protocol.md and the Python binding.
 */
#include "t.h"
#include "util.h"

#define ROW(n, s, w, e, m) { n, #s, w, e, #e, m },
static const struct row {
	int num;
	const char *sym, *wire;
	int err;
	const char *errname, *meaning;
} rows[] = { CE_ERRCODES(ROW) };
#undef ROW

#define CODE_IS(want)                                                                   \
	do {                                                                            \
		int c_ = ce_errcode();                                                  \
		if (c_ != (want)) {                                                     \
			fprintf(stderr, "FAIL %s:%d: code %s, want %s (%s)\n", __FILE__,     \
			    __LINE__, ce_errcode_symbol(c_), ce_errcode_symbol(want),   \
			    ce_errmsg());                                               \
			exit(1);                                                        \
		}                                                                       \
	} while (0)

static void
table(void)
{
	size_t n = sizeof(rows) / sizeof(rows[0]);
	CHECK(n > 30);
	for (size_t i = 0; i < n; i++) {
		CHECK(rows[i].num == (int)i); /* dense, in order: append only */
		CHECK(strcmp(ce_errcode_symbol(rows[i].num), rows[i].sym) == 0);
		CHECK(ce_errcode_wire(rows[i].num) == rows[i].wire);
		CHECK(rows[i].meaning[0] != '\0');
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(rows[i].sym, rows[j].sym) != 0);
		/* a wire name is shared only by codes that mean the same to a client */
		for (size_t j = 0; j < i && rows[i].wire; j++)
			CHECK(rows[j].wire == NULL || strcmp(rows[i].wire, rows[j].wire) != 0 ||
			    (rows[i].num == CE_E_VOLUME_OPEN && rows[j].num == CE_E_BUSY));
	}
	CHECK(ce_errcode_wire(n) == NULL && ce_errcode_symbol(-1) == NULL);
	/* every errno has a code; the generic ones only for what the daemon names in context */
	CHECK(ce_errcode_of_errno(0) == CE_E_NONE);
	for (int e = 1; e < 134; e++) {
		ce_errcode_t c = ce_errcode_of_errno(-e);
		CHECK(c == ce_errcode_of_errno(e));
		CHECK(c != CE_E_NONE);
		CHECK(ce_errcode_wire(c) != NULL || c == CE_E_NOT_FOUND || c == CE_E_EXISTS);
	}
	CHECK(ce_errcode_of_errno(-ENOENT) == CE_E_NOT_FOUND);
	CHECK(ce_errcode_of_errno(-EBUSY) == CE_E_BUSY);
	CHECK(ce_errcode_of_errno(-EXDEV) == CE_E_INTERNAL); /* a wrong base is named, not guessed */
	CHECK(ce_errcode_of_errno(-ENOTSUP) == CE_E_INTERNAL);
}

static void
detail(void)
{
	err_clear();
	CODE_IS(CE_E_NONE);
	CHECK(err_set(-EBUSY, "busy") == -EBUSY);
	CODE_IS(CE_E_BUSY);
	CHECK(err_setc(CE_E_HELD, -EBUSY, "held %d", 1) == -EBUSY);
	CODE_IS(CE_E_HELD);
	CHECK(strcmp(ce_errmsg(), "held 1") == 0);
	CHECK(ce_errcode_of(-EBUSY) == CE_E_HELD);
	/* a -errno returned without a message of its own: what the errno says */
	CHECK(ce_errcode_of(-ENOSPC) == CE_E_NO_SPACE);
	CHECK(ce_errcode_of(0) == CE_E_NONE);
	/* a plain err_set after it is a new failure: the specific code goes */
	err_set(-EBUSY, "again");
	CHECK(ce_errcode_of(-EBUSY) == CE_E_BUSY);
	err_clear();
	CODE_IS(CE_E_NONE);
}

static void
engine(void)
{
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 64ull << 20;
	ce_pool *p;
	OK(ce_pool_create("codes", &path, 1, &o, &p));
	OK(ce_vol_create(p, "v", 4 << 20, NULL));
	CHECK_ERR(ce_vol_create(p, "v", 4 << 20, NULL), -EEXIST);
	CODE_IS(CE_E_VOLUME_EXISTS);
	CHECK_ERR(ce_vol_create(p, "bad name", 4 << 20, NULL), -EINVAL);
	CODE_IS(CE_E_INVALID_ARGUMENT);
	CHECK_ERR(ce_vol_destroy(p, "none"), -ENOENT);
	CODE_IS(CE_E_NOT_FOUND);
	const char *s = "v@a";
	int e;
	OK(ce_snap_create(p, &s, 1, &e));
	CHECK_ERR(ce_vol_destroy_ex(p, "v", 0), -EBUSY);
	CODE_IS(CE_E_HAS_SNAPSHOTS);
	const char *tag = "keep";
	OK(ce_snap_hold(p, tag, &s, 1, &e));
	CHECK_ERR(ce_vol_destroy_ex(p, "v", CE_DESTROY_SNAPSHOTS), -EBUSY);
	CODE_IS(CE_E_HELD);
	OK(ce_snap_release(p, tag, &s, 1, &e));
	OK(ce_vol_clone(p, "v@a", "c"));
	CHECK_ERR(ce_vol_destroy_ex(p, "v", CE_DESTROY_SNAPSHOTS), -EBUSY);
	CODE_IS(CE_E_HAS_CLONES);
	CHECK_ERR(ce_vol_promote(p, "v"), -EINVAL);
	CODE_IS(CE_E_NOT_A_CLONE);
	ce_vol *h;
	OK(ce_vol_open(p, "c", &h));
	CHECK_ERR(ce_vol_destroy_ex(p, "c", 0), -EBUSY);
	CODE_IS(CE_E_VOLUME_OPEN);
	ce_vol_close(h);
	OK(ce_vol_destroy_ex(p, "v", CE_DESTROY_CLONES));
	OK(ce_pool_export(p));
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--dump") == 0) {
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
			printf("%s\t%s\t%s\n", rows[i].wire ? rows[i].wire : "-", rows[i].err ? rows[i].errname : "-",
			    rows[i].sym);
		return 0;
	}
	t_tmpdir();
	table();
	detail();
	engine();
	printf("ok\n");
	return 0;
}
