/*
 * test_crash_kill9 -- pull the power cord: a child process writes as fast
 * as it can (with periodic syncs that it reports through a pipe) and is
 * killed with SIGKILL at a random moment; the parent then imports the
 * pool and checks, against a replay of the child's deterministic write
 * sequence:
 *   - the import is clean and `cask-debug check` passes;
 *   - every block holds a value some write put there, never garbage;
 *   - the volume is exactly the state after some prefix P of the writes
 *     (a txg commits whole or not at all), and P covers every write the
 *     child saw synced.
 * Iterations: CASK_KILL_ITERS (default 24). Seed: CASK_SEED or time.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "t.h"

#define VOLSIZE (16ull << 20)
#define BS 4096u
#define NBLK (VOLSIZE / BS)

/* Block contents encode (iteration, write index, block) and a checksum. */
static void
make_block(uint8_t *b, uint32_t iter, uint64_t i, uint64_t blk)
{
	t_fill(b, BS, ((uint64_t)iter << 40) ^ (i << 20) ^ blk);
	memcpy(b, &iter, 4);
	memcpy(b + 8, &i, 8);
	memcpy(b + 16, &blk, 8);
}

static int
decode_block(const uint8_t *b, uint32_t *iter, uint64_t *i, uint64_t blk)
{
	static const uint8_t zero[BS];
	if (memcmp(b, zero, BS) == 0)
		return 0;
	uint8_t want[BS];
	memcpy(iter, b, 4);
	memcpy(i, b + 8, 8);
	make_block(want, *iter, *i, blk);
	return memcmp(want, b, BS) == 0 ? 1 : -1;
}

/* Write i of iteration `iter`: which block, and how many blocks (1 or 16). */
static void
write_target(uint32_t iter, uint64_t i, uint64_t *blk, unsigned *count)
{
	uint64_t s = ((uint64_t)iter << 32) ^ (i * 0x9E3779B97F4A7C15ull) ^ 0x1234567;
	t_rand(&s);
	*count = (t_rand(&s) % 8 == 0) ? 16 : 1;
	*blk = t_rand(&s) % (NBLK - 16);
}

static void
child(const char *path, uint32_t iter, int wfd)
{
	ce_pool_opts o = { 0 };
	o.txg_timeout_ms = 20;
	o.dirty_max = 8ull << 20;
	ce_pool *p;
	ce_vol *v;
	if (ce_pool_import(&path, 1, &o, &p) != 0 || ce_vol_open(p, "v", &v) != 0) {
		fprintf(stderr, "child: %s\n", ce_errmsg());
		_exit(3);
	}
	uint8_t *buf = malloc(16 * BS);
	for (uint64_t i = 0;; i++) {
		uint64_t blk;
		unsigned count;
		write_target(iter, i, &blk, &count);
		for (unsigned k = 0; k < count; k++)
			make_block(buf + k * BS, iter, i, blk + k);
		if (ce_vol_write(v, buf, count * BS, blk * BS) != 0) {
			fprintf(stderr, "child write: %s\n", ce_errmsg());
			_exit(4);
		}
		if (i % 97 == 96) {
			if (ce_pool_sync(p) != 0)
				_exit(5);
			if (write(wfd, &i, sizeof(i)) != sizeof(i))
				_exit(6);
		}
	}
}

int
main(int argc, char **argv)
{
	int iters = getenv("CASK_KILL_ITERS") ? atoi(getenv("CASK_KILL_ITERS")) : 24;
	uint64_t seed = getenv("CASK_SEED") ? strtoull(getenv("CASK_SEED"), NULL, 0) : (uint64_t)time(NULL);
	printf("seed %" PRIu64 " (CASK_SEED to reproduce)\n", seed);
	(void)argc;
	t_tmpdir();
	const char *path = t_path("pool");
	ce_pool_opts o = { 0 };
	o.vdev_size = 96ull << 20;
	ce_pool *p;
	OK(ce_pool_create("crash", &path, 1, &o, &p));
	ce_vol_props pr = CE_VOL_PROPS_DEFAULT;
	pr.compress = CE_COMPRESS_OFF;
	OK(ce_vol_create(p, "v", VOLSIZE, &pr));
	OK(ce_pool_export(p));

	/* model[b]: (iteration, index) of the write the block must hold; iter 0 = zeros */
	uint32_t *m_iter = calloc(NBLK, 4);
	uint64_t *m_idx = calloc(NBLK, 8);
	uint8_t *blk = malloc(BS);
	uint64_t rs = seed | 1;

	for (uint32_t iter = 1; iter <= (uint32_t)iters; iter++) {
		int pfd[2];
		CHECK(pipe(pfd) == 0);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failing parent leaves no writer behind */
			close(pfd[0]);
			child(path, iter, pfd[1]);
		}
		close(pfd[1]);
		struct timespec ts = { 0, (long)(30 + t_rand(&rs) % 300) * 1000000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
			fprintf(stderr, "child ended on its own (status %d) before the kill\n", status);
			CHECK(0);
		}
		int64_t synced = -1;
		uint64_t x;
		while (read(pfd[0], &x, sizeof(x)) == sizeof(x))
			synced = (int64_t)x;
		close(pfd[0]);

		CHECK(t_debug_check(argv[0], path, NULL) == 0);
		OK(ce_pool_import(&path, 1, &o, &p));
		ce_vol *v;
		OK(ce_vol_open(p, "v", &v));
		/* Read everything; find the prefix point P of this iteration. */
		uint32_t *g_iter = calloc(NBLK, 4);
		uint64_t *g_idx = calloc(NBLK, 8);
		int64_t P = -1;
		for (uint64_t b = 0; b < NBLK; b++) {
			OK(ce_vol_read(v, blk, BS, b * BS));
			int r = decode_block(blk, &g_iter[b], &g_idx[b], b);
			if (r < 0) {
				fprintf(stderr, "iteration %u: block %" PRIu64 " holds data never written\n", iter, b);
				CHECK(0);
			}
			if (r == 0)
				g_iter[b] = 0, g_idx[b] = 0;
			if (g_iter[b] == iter && (int64_t)g_idx[b] > P)
				P = (int64_t)g_idx[b];
		}
		if (P < synced) {
			fprintf(stderr, "iteration %u: write %" PRId64 " was synced but the pool ends at %" PRId64 "\n",
			    iter, synced, P);
			CHECK(0);
		}
		/* Replay writes 0..P onto the model; the volume must match exactly. */
		for (int64_t i = 0; i <= P; i++) {
			uint64_t b0;
			unsigned count;
			write_target(iter, (uint64_t)i, &b0, &count);
			for (unsigned k = 0; k < count; k++) {
				m_iter[b0 + k] = iter;
				m_idx[b0 + k] = (uint64_t)i;
			}
		}
		for (uint64_t b = 0; b < NBLK; b++) {
			if (g_iter[b] != m_iter[b] || g_idx[b] != m_idx[b]) {
				fprintf(stderr, "iteration %u: block %" PRIu64 " holds (%u,%" PRIu64 "), the prefix "
				    "through write %" PRId64 " says (%u,%" PRIu64 ")\n", iter, b, g_iter[b], g_idx[b],
				    P, m_iter[b], m_idx[b]);
				CHECK(0);
			}
		}
		printf("iteration %2u: killed after sync of write %" PRId64 ", pool holds writes 0..%" PRId64
		    ", import clean, check clean\n", iter, synced, P);
		free(g_iter);
		free(g_idx);
		ce_vol_close(v);
		OK(ce_pool_export(p));
	}
	CHECK(t_debug_check(argv[0], path, NULL) == 0);
	free(m_iter);
	free(m_idx);
	free(blk);
	return 0;
}
