/*
 * test_vdev_check -- pool create refuses what another program may own
 * (vdev_check.c), as zpool create does, and never follows a link another
 * user could have planted. Regression tests for issue 17 item 4: create
 * destroyed an ext4 image, a partition table and a 32 MiB random file
 * (rc 0, signature gone), silently ignored --size for an existing file,
 * and followed another user's symlink (and a dangling one into a 0700
 * directory).
 *
 * Each refused create must leave the file's bytes unchanged; CE_POOL_FORCE
 * then uses what holds data or a signature, but never a file whose size
 * differs from the one asked for.
 */
#include <fcntl.h>

#include "t.h"
#include "util.h"

static int
create(const char *path, uint64_t size, unsigned flags)
{
	ce_pool_opts o = { .vdev_size = size, .flags = flags };
	ce_pool *p = NULL;
	int err = ce_pool_create("tank", &path, 1, &o, &p);
	if (err == 0)
		OK(ce_pool_export(p));
	return err;
}

/* create must fail with err, a message naming msg, and the file untouched (when it exists). */
static void
refused(const char *path, uint64_t size, unsigned flags, int err, const char *msg)
{
	uint8_t before[32], after[32];
	struct stat st;
	int exists = stat(path, &st) == 0;
	if (exists)
		t_file_digest(path, before);
	int r = create(path, size, flags);
	if (r != err || strstr(ce_errmsg(), msg) == NULL) {
		fprintf(stderr, "create on %s: got %d '%s', want %d '...%s...'\n", path, r, ce_errmsg(), err, msg);
		CHECK(0);
	}
	printf("refused %-28s %s\n", strrchr(path, '/') + 1, ce_errmsg());
	/* what -f overrides has its own code; another pool's label stays CASK_1.0's EEXIST (POOL_EXISTS) */
	if (err == -EEXIST)
		CHECK(ce_errcode() == (strstr(msg, "already a vdev") ? CE_E_EXISTS : CE_E_VDEV_IN_USE));
	if (exists) {
		t_file_digest(path, after);
		CHECK(memcmp(before, after, 32) == 0);
	}
}

static void
write_file(const char *path, uint64_t size, int random_bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	static uint8_t buf[1 << 20];
	memset(buf, 0, sizeof(buf));
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		if (random_bytes)
			for (size_t i = 0; i < sizeof(buf); i += 8) {
				uint64_t r = util_random64();
				memcpy(buf + i, &r, 8);
			}
		CHECK(pwrite(fd, buf, sizeof(buf), (off_t)off) == (ssize_t)sizeof(buf));
	}
	close(fd);
}

int
main(void)
{
	const char *dir = t_tmpdir();
	(void)dir;

	/* 1. random bytes: refused; -f uses them */
	const char *rnd = t_path("random");
	write_file(rnd, 32ull << 20, 1);
	refused(rnd, 0, 0, -EEXIST, "holds data (a non-zero byte at offset 0)");
	OK(create(rnd, 0, CE_POOL_FORCE));

	/* 2. one non-zero byte deep inside an otherwise sparse file */
	const char *late = t_path("late-byte");
	int fd = open(late, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 64ll << 20) == 0);
	CHECK(pwrite(fd, "x", 1, (40ll << 20) + 5) == 1);
	close(fd);
	refused(late, 0, 0, -EEXIST, "non-zero byte at offset 41943045");

	/* 3. an MBR partition table, found by libblkid */
	const char *mbr = t_path("mbr");
	fd = open(mbr, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 64ll << 20) == 0);
	uint8_t sec[512] = { 0 };
	uint8_t *pe = sec + 446;            /* the first partition entry */
	pe[4] = 0x83;                       /* Linux */
	uint32_t lba = 2048, count = 65536;
	memcpy(pe + 8, &lba, 4);
	memcpy(pe + 12, &count, 4);
	sec[510] = 0x55;
	sec[511] = 0xaa;
	CHECK(pwrite(fd, sec, sizeof(sec), 0) == (ssize_t)sizeof(sec));
	close(fd);
	refused(mbr, 0, 0, -EEXIST, "holds a partition table (dos)");

	/* 4. an ext4 filesystem, when mkfs.ext4 is there */
	const char *ext4 = t_path("ext4");
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "truncate -s 64M '%s' && mkfs.ext4 -q -F '%s' >/dev/null 2>&1", ext4, ext4);
	if (system(cmd) == 0)
		refused(ext4, 0, 0, -EEXIST, "(ext4)");
	else
		printf("mkfs.ext4 not available: the ext4 case is not run\n");

	/* 5. a sparse file and a non-sparse zero file are free to use */
	const char *sparse = t_path("sparse");
	fd = open(sparse, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 64ll << 20) == 0);
	close(fd);
	OK(create(sparse, 0, 0));
	const char *zeros = t_path("zeros");
	write_file(zeros, 32ull << 20, 0);
	OK(create(zeros, 0, 0));

	/* 6. another pool's label, without -f */
	refused(sparse, 0, 0, -EEXIST, "already a vdev of pool 'tank'");

	/* 7. an existing file's size must match the size asked for, also with -f */
	const char *sized = t_path("sized");
	fd = open(sized, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 64ll << 20) == 0);
	close(fd);
	refused(sized, 128ull << 20, 0, -EINVAL, "exists with size 64.0M (67108864 bytes), not the 128M");
	refused(sized, 128ull << 20, CE_POOL_FORCE, -EINVAL, "not the 128M");
	OK(create(sized, 64ull << 20, 0));

	/* 8. symbolic links */
	const char *target = t_path("target");
	const char *own = t_path("own-link");
	CHECK(symlink(target, own) == 0);   /* ours, dangling: the file is made where it points */
	OK(create(own, 64ull << 20, 0));
	struct stat st;
	CHECK(lstat(target, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 64ll << 20);
	CHECK(lstat(own, &st) == 0 && S_ISLNK(st.st_mode));

	if (geteuid() == 0) {
		/* another user's link, also a dangling one into a private directory */
		const char *priv = t_path("private");
		CHECK(mkdir(priv, 0700) == 0);
		char ptarget[600];
		snprintf(ptarget, sizeof(ptarget), "%s/planted", priv);
		const char *theirs = t_path("their-link");
		CHECK(symlink(ptarget, theirs) == 0 && lchown(theirs, 65534, 65534) == 0);
		refused(theirs, 64ull << 20, 0, -EPERM, "a symbolic link owned by another user (uid 65534)");
		CHECK(lstat(ptarget, &st) != 0 && errno == ENOENT);   /* nothing was created */
		refused(theirs, 64ull << 20, CE_POOL_FORCE, -EPERM, "owned by another user");
	} else {
		printf("not root: the other user's link case is not run\n");
	}
	/* a link of our own, but in a sticky world-writable directory such as /tmp */
	const char *pub = t_path("public");
	CHECK(mkdir(pub, 0700) == 0 && chmod(pub, 01777) == 0);
	char plink[600], ptarget2[600];
	snprintf(plink, sizeof(plink), "%s/link", pub);
	snprintf(ptarget2, sizeof(ptarget2), "%s/elsewhere", t_dir);
	CHECK(symlink(ptarget2, plink) == 0);
	refused(plink, 64ull << 20, 0, -EPERM, "in the world-writable sticky directory");
	CHECK(lstat(ptarget2, &st) != 0 && errno == ENOENT);
	/* the same directory given as a path component through a link of ours is fine */
	char via[600];
	snprintf(via, sizeof(via), "%s/dirlink", t_dir);
	CHECK(symlink(pub, via) == 0);
	char inpub[700];
	snprintf(inpub, sizeof(inpub), "%s/new.vdev", via);
	OK(create(inpub, 64ull << 20, 0));
	char real[700];
	snprintf(real, sizeof(real), "%s/new.vdev", pub);
	CHECK(stat(real, &st) == 0 && S_ISREG(st.st_mode));
	printf("ok\n");
	return 0;
}
