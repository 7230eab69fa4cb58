/*
 * crashsim.c -- see crashsim.h.
 *
 * The media of each vdev is the backing file as it was when the pool was
 * opened, plus a map of 4 KiB sectors written and flushed since ("media").
 * Unflushed writes sit in a list in issue order ("pend"). A crash image
 * layers an overlay on top: the pending writes the crash mode keeps.
 */
#include "crashsim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "util.h"

#define SECTOR 4096u

typedef struct pwrite_rec {
	uint64_t off;
	uint32_t len;
	uint8_t *data;
} pwrite_rec;

typedef struct cs_dev {
	ce_backend be;
	ce_backend *base;
	htab media;        /* sector -> SECTOR bytes */
	pwrite_rec *pend;
	size_t npend, cap;
	crashsim *cs;
} cs_dev;

struct crashsim {
	cs_dev *devs[16];
	unsigned ndevs;
	long writes;
	long crash_at;
	long flushes;
	long crash_at_flush;
	int crashed;
};

const char *crashsim_mode_names[CS_NMODES + 1] = { "drop-all", "keep-all", "random-subset", "torn", "lying" };

crashsim *
crashsim_new(long crash_at)
{
	crashsim *cs = xcalloc(1, sizeof(*cs));
	cs->crash_at = crash_at;
	cs->crash_at_flush = -1;
	return cs;
}

crashsim *
crashsim_new_at_flush(long crash_at_flush)
{
	crashsim *cs = crashsim_new(-1);
	cs->crash_at_flush = crash_at_flush;
	return cs;
}

long crashsim_flushes(const crashsim *cs) { return cs->flushes; }

static void
free_media(htab *h)
{
	size_t it = 0;
	uint64_t k;
	void *v;
	while (htab_next(h, &it, &k, &v))
		free(v);
	htab_fini(h);
}

void
crashsim_free(crashsim *cs)
{
	for (unsigned i = 0; i < cs->ndevs; i++) {
		cs_dev *d = cs->devs[i];
		free_media(&d->media);
		for (size_t k = 0; k < d->npend; k++)
			free(d->pend[k].data);
		free(d->pend);
		d->base->close(d->base);
		free(d);
	}
	free(cs);
}

long crashsim_writes(const crashsim *cs) { return cs->writes; }
int crashsim_crashed(const crashsim *cs) { return cs->crashed; }
unsigned crashsim_pending(const crashsim *cs, unsigned idx) { return (unsigned)cs->devs[idx]->npend; }

/* One sector of the durable media (media map, else the base file). */
static int
media_sector_ex(cs_dev *d, uint64_t sec, uint8_t *out, int lying)
{
	uint8_t *m = lying ? NULL : htab_get(&d->media, sec);
	if (m != NULL) {
		memcpy(out, m, SECTOR);
		return 0;
	}
	/* the base file may be open with O_DIRECT: read through an aligned buffer */
	static __thread uint8_t *bounce;
	if (bounce == NULL)
		bounce = xmalloc_aligned(SECTOR);
	int err = d->base->pread(d->base, bounce, SECTOR, sec * SECTOR);
	if (err == 0)
		memcpy(out, bounce, SECTOR);
	return err;
}

static int
media_sector(cs_dev *d, uint64_t sec, uint8_t *out)
{
	return media_sector_ex(d, sec, out, 0);
}

static void
media_put(htab *h, uint64_t sec, const uint8_t *data)
{
	uint8_t *m = htab_get(h, sec);
	if (m == NULL) {
		m = xmalloc(SECTOR);
		htab_put(h, sec, m);
	}
	memcpy(m, data, SECTOR);
}

static int
live_pread(ce_backend *be, void *buf, size_t len, uint64_t off)
{
	cs_dev *d = (cs_dev *)be;
	if (d->cs->crashed)
		return -EIO;
	uint8_t *out = buf;
	for (uint64_t o = 0; o < len; o += SECTOR) {
		uint64_t pos = off + o;
		int found = 0;
		/* the newest pending write covering this sector wins */
		for (size_t k = d->npend; k-- > 0 && !found;) {
			pwrite_rec *w = &d->pend[k];
			if (pos >= w->off && pos < w->off + w->len) {
				memcpy(out + o, w->data + (pos - w->off), SECTOR);
				found = 1;
			}
		}
		if (!found) {
			int err = media_sector(d, pos / SECTOR, out + o);
			if (err != 0)
				return err;
		}
	}
	return 0;
}

static int
live_pwritev(ce_backend *be, const struct iovec *iov, int n, uint64_t off)
{
	cs_dev *d = (cs_dev *)be;
	crashsim *cs = d->cs;
	if (cs->crashed)
		return -EIO;
	if (cs->writes == cs->crash_at) {
		cs->crashed = 1;
		return -EIO;
	}
	cs->writes++;
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	VERIFY(len % SECTOR == 0 && off % SECTOR == 0);
	pwrite_rec w = { off, (uint32_t)len, xmalloc(len) };
	size_t pos = 0;
	for (int i = 0; i < n; i++) {
		memcpy(w.data + pos, iov[i].iov_base, iov[i].iov_len);
		pos += iov[i].iov_len;
	}
	if (d->npend == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->pend = xrealloc(d->pend, d->cap * sizeof(pwrite_rec));
	}
	d->pend[d->npend++] = w;
	return 0;
}

static int
live_flush(ce_backend *be)
{
	cs_dev *d = (cs_dev *)be;
	if (d->cs->crashed)
		return -EIO;
	if (d->cs->flushes == d->cs->crash_at_flush) {
		/* power fails during this flush: what it was flushing is still volatile */
		d->cs->crashed = 1;
		return -EIO;
	}
	d->cs->flushes++;
	for (size_t k = 0; k < d->npend; k++) {
		pwrite_rec *w = &d->pend[k];
		for (uint32_t o = 0; o < w->len; o += SECTOR)
			media_put(&d->media, (w->off + o) / SECTOR, w->data + o);
		free(w->data);
	}
	d->npend = 0;
	return 0;
}

static void
live_close(ce_backend *be)
{
	(void)be; /* owned by the crashsim: crash images still need it */
}

ce_backend *
crashsim_wrap(ce_backend *inner, unsigned idx, void *arg)
{
	crashsim *cs = arg;
	VERIFY(idx < 16);
	cs_dev *d = xcalloc(1, sizeof(*d));
	d->base = inner;
	d->cs = cs;
	htab_init(&d->media);
	d->be = (ce_backend){ live_pread, live_pwritev, live_flush, live_close, inner->size };
	cs->devs[idx] = d;
	if (idx + 1 > cs->ndevs)
		cs->ndevs = idx + 1;
	return &d->be;
}

/* ---- crash images ---- */

typedef struct img {
	ce_backend be;
	int lying;         /* CS_LYING: the flushed media is lost */
	ce_backend *file;  /* the vdev file opened for this import (closed with the image) */
	cs_dev *dev;       /* frozen media and base */
	htab overlay;      /* sector -> data kept from the pending writes */
} img;

static int
img_pread(ce_backend *be, void *buf, size_t len, uint64_t off)
{
	img *m = (img *)be;
	uint8_t *out = buf;
	for (uint64_t o = 0; o < len; o += SECTOR) {
		uint64_t sec = (off + o) / SECTOR;
		uint8_t *v = htab_get(&m->overlay, sec);
		if (v != NULL) {
			memcpy(out + o, v, SECTOR);
		} else {
			int err = media_sector_ex(m->dev, sec, out + o, m->lying);
			if (err != 0)
				return err;
		}
	}
	return 0;
}

static int
img_pwritev(ce_backend *be, const struct iovec *iov, int n, uint64_t off)
{
	img *m = (img *)be;
	uint8_t sec[SECTOR];
	size_t fill = 0;
	for (int i = 0; i < n; i++) {
		for (size_t p = 0; p < iov[i].iov_len; p += SECTOR) {
			memcpy(sec, (uint8_t *)iov[i].iov_base + p, SECTOR);
			media_put(&m->overlay, (off + fill) / SECTOR, sec);
			fill += SECTOR;
		}
	}
	return 0;
}

static int
img_flush(ce_backend *be)
{
	(void)be;
	return 0;
}

static void
img_close(ce_backend *be)
{
	img *m = (img *)be;
	free_media(&m->overlay);
	m->file->close(m->file);
	free(m);
}

static uint64_t
rnd(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	uint64_t z = *s;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

ce_backend *
crashsim_image_wrap(ce_backend *inner, unsigned idx, void *arg)
{
	crash_state *st = arg;
	cs_dev *d = st->cs->devs[idx];
	VERIFY(d != NULL);
	img *m = xcalloc(1, sizeof(*m));
	m->file = inner;
	m->dev = d;
	htab_init(&m->overlay);
	m->be = (ce_backend){ img_pread, img_pwritev, img_flush, img_close, inner->size };
	m->lying = st->mode == CS_LYING;
	if (m->lying)
		return &m->be;
	uint64_t s = st->seed ^ ((uint64_t)idx << 40);
	long torn = st->mode == CS_TORN && d->npend > 0 ? (long)(rnd(&s) % d->npend) : -1;
	uint8_t sec[SECTOR];
	/*
	 * The device may have written the unflushed writes in any order: the
	 * random and torn modes apply their subset in a random permutation,
	 * so of two writes to one sector the older may land last.
	 */
	size_t *ord = xmalloc((d->npend ? d->npend : 1) * sizeof(size_t));
	for (size_t k = 0; k < d->npend; k++)
		ord[k] = k;
	if (st->mode == CS_RANDOM || st->mode == CS_TORN) {
		for (size_t k = d->npend; k > 1; k--) {
			size_t j = (size_t)(rnd(&s) % k);
			size_t t = ord[k - 1];
			ord[k - 1] = ord[j];
			ord[j] = t;
		}
	}
	for (size_t kk = 0; kk < d->npend; kk++) {
		size_t k = ord[kk];
		pwrite_rec *w = &d->pend[k];
		int keep = st->mode == CS_KEEP_ALL || (long)k == torn ||
		    ((st->mode == CS_RANDOM || st->mode == CS_TORN) && (rnd(&s) & 1));
		if (!keep)
			continue;
		for (uint32_t o = 0; o < w->len; o += SECTOR) {
			uint64_t secno = (w->off + o) / SECTOR;
			if ((long)k == torn && o == (w->len / SECTOR / 2) * SECTOR) {
				/* the torn sector: a prefix of its 512-byte pieces is new, the rest old */
				uint8_t *cur = htab_get(&m->overlay, secno);
				if (cur != NULL)
					memcpy(sec, cur, SECTOR);
				else
					VERIFY0(media_sector(d, secno, sec));
				unsigned pieces = 1 + (unsigned)(rnd(&s) % 7);
				memcpy(sec, w->data + o, pieces * 512u);
				media_put(&m->overlay, secno, sec);
				if (o + SECTOR < w->len)
					break; /* power failed mid-write: the rest never landed */
				continue;
			}
			media_put(&m->overlay, secno, w->data + o);
		}
	}
	free(ord);
	return &m->be;
}
