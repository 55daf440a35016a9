#include "dirtab.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../log.h"
#include "../spill.h"
#include "../util.h"

/* Bytes of records (and 8 per record) a table sorts in memory; past them it
 * spills. ~300k local names of ~15 bytes, ~100k SFTP names with their
 * attributes: SRC's listing and DST's listing cache together stay well
 * within the 64 MiB a run aims for. */
#define DIRTAB_MEM_MAX ((size_t)8 << 20)
#define DIRTAB_BLOCK 4096u            /* bytes of a merged file per index mark */
#define DIRTAB_WINDOW (16u << 10)     /* an iterator's read window */
#define DIRTAB_WRITE_BUF (256u << 10) /* writing the merged file */

enum dirtab_mode {
	DIRTAB_ADDING,
	DIRTAB_MEM,    /* sorted in memory: sm_spill_at() */
	DIRTAB_STREAM, /* one reader, straight from the merge: sm_spill_next() */
	DIRTAB_FILE,   /* merged into its own file, with a sparse index */
};

/* An index mark: the record at `off` in the merged file, its key at
 * mkeys[koff]. */
struct dirtab_mark {
	uint64_t off;
	uint32_t koff;
	uint32_t klen;
};

struct sm_dirtab {
	enum dirtab_mode mode;
	struct sm_spill *sp; /* NULL once merged into the file */
	size_t n;
	size_t every, since; /* SYNCMGR_TEST_DIR_SPILL: a run every `every` records */
	char *rbuf;          /* the record being added: key, NUL, payload */
	size_t rcap;
	uint64_t disk_peak;
	/* DIRTAB_FILE: records as [u32 len][key NUL payload] */
	int fd;
	uint64_t fsize;
	struct dirtab_mark *marks;
	size_t nmarks, mcap;
	char *mkeys;
	size_t mklen, mkcap;
};

/* key[0..klen) against s[0..slen): byte order, shorter first. */
static int dirtab_keycmp(const char *key, size_t klen, const char *s, size_t slen)
{
	int c = memcmp(key, s, klen < slen ? klen : slen);
	return c ? c : (klen > slen) - (klen < slen);
}

int sm_dirtab_name_cmp(const char *name, size_t len, bool dir, const char *s, size_t slen)
{
	size_t alen = len + dir;
	size_t n = alen < slen ? alen : slen;
	size_t common = n < len ? n : len;
	int c = memcmp(name, s, common);
	if (c)
		return c;
	if (common < n) /* the virtual '/' against s[common] */
		return (int)(unsigned char)'/' - (int)(unsigned char)s[common];
	return (alen > slen) - (alen < slen);
}

/* A stored record (key NUL payload) as a struct sm_dirtab_rec. */
static enum sm_err dirtab_parse(const char *rec, size_t len, struct sm_dirtab_rec *out,
                                struct sm_diag *d)
{
	const char *nul = memchr(rec, '\0', len);
	if (!nul || nul == rec)
		return sm_diag_set(d, SM_EIO, 0, "a sort file in '%s' is damaged",
		                   sm_spill_tmpdir());
	size_t klen = (size_t)(nul - rec);
	bool dir = rec[klen - 1] == '/';
	*out = (struct sm_dirtab_rec){ .key = rec,
		                       .klen = klen,
		                       .nlen = klen - dir,
		                       .dir = dir,
		                       .data = nul + 1,
		                       .dlen = len - klen - 1 };
	return SM_OK;
}

enum sm_err sm_dirtab_new(struct sm_dirtab **out, struct sm_diag *d)
{
	struct sm_dirtab *t = calloc(1, sizeof(*t));
	if (!t)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	t->fd = -1;
	enum sm_err err = sm_spill_new(DIRTAB_MEM_MAX, NULL, NULL, &t->sp, d);
	if (err != SM_OK) {
		free(t);
		return err;
	}
	/* tests make small directories spill (not in --help: no user knob) */
	const char *ev = getenv("SYNCMGR_TEST_DIR_SPILL");
	int64_t v = 0;
	if (ev && sm_parse_i64(ev, 1, INT64_MAX, &v))
		t->every = (size_t)v;
	*out = t;
	return SM_OK;
}

enum sm_err sm_dirtab_add(struct sm_dirtab *t, const char *name, size_t len, bool dir,
                          const void *data, size_t dlen, struct sm_diag *d)
{
	if (t->mode != DIRTAB_ADDING || !len || len > UINT16_MAX || dlen > SM_DIRTAB_DATA_MAX)
		return sm_diag_set(d, SM_EINVAL, 0, "directory table: record refused");
	size_t need = len + dir + 1 + dlen;
	if (need > t->rcap) {
		size_t cap = t->rcap ? t->rcap : 256;
		while (cap < need)
			cap *= 2;
		char *nb = realloc(t->rbuf, cap);
		if (!nb)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		t->rbuf = nb;
		t->rcap = cap;
	}
	memcpy(t->rbuf, name, len);
	if (dir)
		t->rbuf[len] = '/';
	t->rbuf[len + dir] = '\0';
	if (dlen)
		memcpy(t->rbuf + len + dir + 1, data, dlen);
	enum sm_err err = sm_spill_add(t->sp, t->rbuf, need, d);
	if (err != SM_OK)
		return err;
	t->n++;
	if (t->every && ++t->since >= t->every) {
		t->since = 0;
		return sm_spill_flush(t->sp, d);
	}
	return SM_OK;
}

/* Remember that the record at `off` (key `key`) starts a block. */
static enum sm_err dirtab_mark(struct sm_dirtab *t, uint64_t off, const char *key, size_t klen,
                               struct sm_diag *d)
{
	if (t->nmarks == t->mcap) {
		size_t cap = t->mcap ? t->mcap * 2 : 64;
		struct dirtab_mark *nm = realloc(t->marks, cap * sizeof(*nm));
		if (!nm)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		t->marks = nm;
		t->mcap = cap;
	}
	if (t->mklen + klen > t->mkcap) {
		size_t cap = t->mkcap ? t->mkcap : 4096;
		while (cap < t->mklen + klen)
			cap *= 2;
		char *nk = realloc(t->mkeys, cap);
		if (!nk)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		t->mkeys = nk;
		t->mkcap = cap;
	}
	memcpy(t->mkeys + t->mklen, key, klen);
	t->marks[t->nmarks++] = (struct dirtab_mark){ off, (uint32_t)t->mklen, (uint32_t)klen };
	t->mklen += klen;
	return SM_OK;
}

/* Write the merge into a file of the table's own, marking a record every
 * DIRTAB_BLOCK bytes; the runs go. */
static enum sm_err dirtab_merge(struct sm_dirtab *t, struct sm_diag *d)
{
	char *wbuf = malloc(DIRTAB_WRITE_BUF);
	if (!wbuf)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err = sm_spill_tmpfile(&t->fd, d);
	size_t wl = 0;
	uint64_t next_mark = 0;
	const void *rec;
	size_t len;
	while (err == SM_OK && (err = sm_spill_next(t->sp, &rec, &len, d)) == SM_OK) {
		uint64_t at = t->fsize + wl;
		if (at >= next_mark) {
			struct sm_dirtab_rec r = { 0 };
			err = dirtab_parse(rec, len, &r, d);
			if (err == SM_OK)
				err = dirtab_mark(t, at, r.key, r.klen, d);
			next_mark = at + DIRTAB_BLOCK;
		}
		uint32_t l = (uint32_t)len; /* below DIRTAB_WRITE_BUF: see sm_dirtab_add() */
		if (err == SM_OK && wl + sizeof(l) + len > DIRTAB_WRITE_BUF) {
			err = sm_spill_pwrite(t->fd, t->fsize, wbuf, wl, d);
			t->fsize += wl;
			wl = 0;
		}
		if (err != SM_OK)
			break;
		memcpy(wbuf + wl, &l, sizeof(l));
		memcpy(wbuf + wl + sizeof(l), rec, len);
		wl += sizeof(l) + len;
	}
	if (err == SM_EOF)
		err = wl ? sm_spill_pwrite(t->fd, t->fsize, wbuf, wl, d) : SM_OK;
	t->fsize += wl;
	free(wbuf);
	if (err != SM_OK)
		return err;
	t->disk_peak = sm_spill_disk_bytes(t->sp) + t->fsize;
	sm_spill_free(t->sp);
	t->sp = NULL;
	/* kept for the run maybe: give back what doubling left */
	struct dirtab_mark *nm = t->nmarks ? realloc(t->marks, t->nmarks * sizeof(*nm)) : NULL;
	char *nk = t->mklen ? realloc(t->mkeys, t->mklen) : NULL;
	if (nm) {
		t->marks = nm;
		t->mcap = t->nmarks;
	}
	if (nk) {
		t->mkeys = nk;
		t->mkcap = t->mklen;
	}
	return SM_OK;
}

enum sm_err sm_dirtab_finish(struct sm_dirtab *t, bool shared, struct sm_diag *d)
{
	if (t->mode != DIRTAB_ADDING)
		return sm_diag_set(d, SM_EINVAL, 0, "directory table: finished twice");
	free(t->rbuf);
	t->rbuf = NULL;
	t->rcap = 0;
	enum sm_err err = sm_spill_sort(t->sp, d);
	if (err != SM_OK)
		return err;
	if (!sm_spill_runs(t->sp)) {
		t->mode = DIRTAB_MEM;
		return SM_OK;
	}
	if (!shared) {
		t->mode = DIRTAB_STREAM;
		t->disk_peak = sm_spill_disk_bytes(t->sp);
		return SM_OK;
	}
	err = dirtab_merge(t, d);
	if (err == SM_OK)
		t->mode = DIRTAB_FILE;
	return err;
}

void sm_dirtab_free(struct sm_dirtab *t)
{
	if (!t)
		return;
	sm_spill_free(t->sp);
	if (t->fd >= 0)
		close(t->fd);
	free(t->rbuf);
	free(t->marks);
	free(t->mkeys);
	free(t);
}

size_t sm_dirtab_count(const struct sm_dirtab *t)
{
	return t->n;
}

uint64_t sm_dirtab_disk_bytes(const struct sm_dirtab *t)
{
	return t->disk_peak;
}

size_t sm_dirtab_mem_bytes(const struct sm_dirtab *t)
{
	return sizeof(*t) + (t->sp ? sm_spill_mem_bytes(t->sp) : 0) + t->rcap +
	       t->mcap * sizeof(*t->marks) + t->mkcap;
}

size_t sm_dirtab_cache_bytes(const struct sm_dirtab *t)
{
	return sm_dirtab_mem_bytes(t) + (size_t)(t->fsize / 8);
}

void sm_dirtab_log(const struct sm_dirtab *t, int level, const char *where)
{
	if (!t->disk_peak)
		return;
	char sz[32];
	sm_fmt_size(sz, sizeof(sz), t->disk_peak);
	sm_log(level, "'%s': %zu names sorted on disk (%s in '%s')", where, t->n, sz,
	       sm_spill_tmpdir());
}

/* ---- reading ---- */

void sm_dirtab_it_init(struct sm_dirtab_it *it, struct sm_dirtab *t)
{
	memset(it, 0, sizeof(*it));
	it->t = t;
}

void sm_dirtab_it_release(struct sm_dirtab_it *it)
{
	free(it->buf);
	memset(it, 0, sizeof(*it));
}

/* Make [off, off + need) of the file be in the window. */
static enum sm_err dirtab_window(struct sm_dirtab_it *it, uint64_t off, size_t need,
                                 struct sm_diag *d)
{
	if (off >= it->bstart && off + need <= it->bstart + it->blen)
		return SM_OK;
	const struct sm_dirtab *t = it->t;
	if (off > t->fsize || need > t->fsize - off)
		return sm_diag_set(d, SM_EIO, 0, "a sort file in '%s' is damaged",
		                   sm_spill_tmpdir());
	size_t want = need > DIRTAB_WINDOW ? need : DIRTAB_WINDOW;
	if (want > it->bcap) {
		char *nb = realloc(it->buf, want);
		if (!nb)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		it->buf = nb;
		it->bcap = want;
	}
	if (want > t->fsize - off)
		want = (size_t)(t->fsize - off);
	it->blen = 0; /* a failed read leaves no window */
	enum sm_err err = sm_spill_pread(t->fd, off, it->buf, want, d);
	if (err != SM_OK)
		return err;
	it->bstart = off;
	it->blen = want;
	return SM_OK;
}

enum sm_err sm_dirtab_it_peek(struct sm_dirtab_it *it, struct sm_dirtab_rec *out, struct sm_diag *d)
{
	if (it->plen) {
		*out = it->cur;
		return SM_OK;
	}
	struct sm_dirtab *t = it->t;
	const void *rec = NULL;
	size_t len = 0, plen = 1;
	enum sm_err err = SM_OK;
	switch (t->mode) {
	case DIRTAB_MEM:
		if (it->i >= t->n)
			return SM_EOF;
		sm_spill_at(t->sp, it->i, &rec, &len);
		break;
	case DIRTAB_STREAM: err = sm_spill_next(t->sp, &rec, &len, d); break;
	case DIRTAB_FILE: {
		if (it->off >= t->fsize)
			return SM_EOF;
		uint32_t l;
		err = dirtab_window(it, it->off, sizeof(l), d);
		if (err != SM_OK)
			return err;
		memcpy(&l, it->buf + (it->off - it->bstart), sizeof(l));
		err = dirtab_window(it, it->off, sizeof(l) + l, d);
		rec = it->buf + (it->off - it->bstart) + sizeof(l);
		len = l;
		plen = sizeof(l) + l;
		break;
	}
	default: return sm_diag_set(d, SM_EINVAL, 0, "directory table: read before finish");
	}
	if (err != SM_OK)
		return err;
	err = dirtab_parse(rec, len, &it->cur, d);
	if (err != SM_OK)
		return err;
	it->plen = plen;
	*out = it->cur;
	return SM_OK;
}

void sm_dirtab_it_advance(struct sm_dirtab_it *it)
{
	if (!it->plen)
		return;
	if (it->t->mode == DIRTAB_MEM)
		it->i++;
	else if (it->t->mode == DIRTAB_FILE)
		it->off += it->plen;
	it->plen = 0; /* DIRTAB_STREAM: the next peek asks the merge */
}

enum sm_err sm_dirtab_it_seek(struct sm_dirtab_it *it, const char *s, size_t slen,
                              struct sm_diag *d)
{
	struct sm_dirtab *t = it->t;
	if (t->mode == DIRTAB_MEM) {
		size_t lo = 0, hi = t->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const void *rec;
			size_t len;
			sm_spill_at(t->sp, mid, &rec, &len);
			if (dirtab_keycmp(rec, strlen(rec), s, slen) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		it->i = lo;
		it->plen = 0;
		return SM_OK;
	}
	if (t->mode == DIRTAB_FILE) {
		/* after the last mark below s: every record before it is below s,
		 * and the next mark is not */
		size_t lo = 0, hi = t->nmarks;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			const struct dirtab_mark *m = &t->marks[mid];
			if (dirtab_keycmp(t->mkeys + m->koff, m->klen, s, slen) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		it->off = lo ? t->marks[lo - 1].off : 0;
		it->plen = 0;
	}
	/* on to the first record not below s (one block at most in a file) */
	for (;;) {
		struct sm_dirtab_rec r;
		enum sm_err err = sm_dirtab_it_peek(it, &r, d);
		if (err == SM_EOF)
			return SM_OK;
		if (err != SM_OK)
			return err;
		if (dirtab_keycmp(r.key, r.klen, s, slen) >= 0)
			return SM_OK;
		sm_dirtab_it_advance(it);
	}
}
