#include "spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define SPILL_READ_BUF (64u << 10) /* per run while merging */
#define SPILL_WRITE_BUF (256u << 10)
#define SPILL_BUDGET_MAX ((size_t)2 << 30)

/* A record in memory: its bytes at arena[off], len of them (the arena stays
 * below 4 GiB: the budget is capped at 2 GiB, one record at 4 GiB - 1). */
struct spill_ref {
	uint32_t off;
	uint32_t len;
};

/* A sorted run on disk, read back through its own buffer: [u32 len][bytes]... */
struct spill_run {
	uint64_t pos; /* next unread byte in the file */
	uint64_t end;
	char *buf;
	size_t blen; /* bytes in buf */
	size_t boff; /* next unread byte in buf */
	char *rec;   /* the current record (in buf, or in big for one larger than buf) */
	uint32_t rlen;
	char *big;
};

struct sm_spill {
	size_t budget;
	sm_spill_cmp_fn cmp;
	void *arg;
	char *arena;
	size_t alen, acap;
	struct spill_ref *refs;
	size_t n, ncap;
	uint64_t count;
	int fd; /* the temp file, -1 until the first run */
	uint64_t fsize;
	struct spill_run *runs;
	unsigned nruns;
	/* merging */
	bool sorted;
	size_t mem_pos; /* next in-memory record */
	unsigned *heap; /* run indexes ordered by their current record; nruns + 1 for memory */
	unsigned nheap;
	bool handed; /* the heap's top was handed out: move it on first */
};

static int spill_bytes_cmp(const void *a, size_t alen, const void *b, size_t blen, void *arg)
{
	(void)arg;
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

enum sm_err sm_spill_new(size_t budget, sm_spill_cmp_fn cmp, void *arg, struct sm_spill **out,
                         struct sm_diag *d)
{
	struct sm_spill *s = calloc(1, sizeof(*s));
	if (!s)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	s->budget = budget < 4096 ? 4096 : budget > SPILL_BUDGET_MAX ? SPILL_BUDGET_MAX : budget;
	s->cmp = cmp ? cmp : spill_bytes_cmp;
	s->arg = arg;
	s->fd = -1;
	*out = s;
	return SM_OK;
}

const char *sm_spill_tmpdir(void)
{
	const char *dir = getenv("TMPDIR");
	return dir && *dir ? dir : "/tmp";
}

enum sm_err sm_spill_tmpfile(int *out, struct sm_diag *d)
{
	const char *dir = sm_spill_tmpdir();
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/.syncmgr-spill-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0)
		return sm_diag_errno(d, errno, "cannot create a sort file in '%s'", dir);
	*out = fd;
	return SM_OK;
}

enum sm_err sm_spill_pwrite(int fd, uint64_t off, const void *buf, size_t n, struct sm_diag *d)
{
	const char *p = buf;
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return sm_diag_errno(d, errno, "cannot write a sort file in '%s'",
			                     sm_spill_tmpdir());
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return SM_OK;
}

enum sm_err sm_spill_pread(int fd, uint64_t off, void *buf, size_t n, struct sm_diag *d)
{
	char *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? sm_diag_errno(d, errno, "cannot read a sort file")
			             : sm_diag_set(d, SM_EIO, 0, "a sort file ended early");
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return SM_OK;
}

/* qsort_r's comparator over the in-memory refs. */
static int spill_ref_cmp(const void *pa, const void *pb, void *arg)
{
	const struct sm_spill *s = arg;
	const struct spill_ref *a = pa, *b = pb;
	return s->cmp(s->arena + a->off, a->len, s->arena + b->off, b->len, s->arg);
}

/* Sort the records in memory and append them to the file as one run. */
static enum sm_err spill_flush(struct sm_spill *s, struct sm_diag *d)
{
	if (s->fd < 0) {
		enum sm_err err = sm_spill_tmpfile(&s->fd, d);
		if (err != SM_OK)
			return err;
	}
	struct spill_run *nr = realloc(s->runs, (s->nruns + 1) * sizeof(*nr));
	char *wbuf = malloc(SPILL_WRITE_BUF);
	if (!nr || !wbuf) {
		if (nr)
			s->runs = nr;
		free(wbuf);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	s->runs = nr;
	if (s->n)
		qsort_r(s->refs, s->n, sizeof(*s->refs), spill_ref_cmp, s);
	uint64_t start = s->fsize;
	size_t wl = 0;
	enum sm_err err = SM_OK;
	for (size_t i = 0; i < s->n && err == SM_OK; i++) {
		const struct spill_ref *r = &s->refs[i];
		uint32_t len = r->len;
		if (wl + sizeof(len) + len > SPILL_WRITE_BUF && wl) {
			err = sm_spill_pwrite(s->fd, s->fsize, wbuf, wl, d);
			s->fsize += wl;
			wl = 0;
		}
		if (err != SM_OK)
			break;
		if (sizeof(len) + len > SPILL_WRITE_BUF) { /* a huge record: straight out */
			err = sm_spill_pwrite(s->fd, s->fsize, (const char *)&len, sizeof(len), d);
			if (err == SM_OK)
				err = sm_spill_pwrite(s->fd, s->fsize + sizeof(len),
				                      s->arena + r->off, len, d);
			s->fsize += sizeof(len) + len;
			continue;
		}
		memcpy(wbuf + wl, &len, sizeof(len));
		memcpy(wbuf + wl + sizeof(len), s->arena + r->off, len);
		wl += sizeof(len) + len;
	}
	if (err == SM_OK && wl) {
		err = sm_spill_pwrite(s->fd, s->fsize, wbuf, wl, d);
		s->fsize += wl;
	}
	free(wbuf);
	if (err != SM_OK)
		return err;
	s->runs[s->nruns++] = (struct spill_run){ .pos = start, .end = s->fsize };
	s->n = 0;
	s->alen = 0;
	return SM_OK;
}

enum sm_err sm_spill_add(struct sm_spill *s, const void *rec, size_t len, struct sm_diag *d)
{
	if (s->sorted || len > UINT32_MAX)
		return sm_diag_set(d, SM_EINVAL, 0, "spill: record refused");
	if (s->n && s->alen + len + (s->n + 1) * sizeof(*s->refs) > s->budget) {
		enum sm_err err = spill_flush(s, d);
		if (err != SM_OK)
			return err;
	}
	if (s->alen + len > s->acap) {
		size_t cap = s->acap ? s->acap : 4096;
		while (cap < s->alen + len)
			cap *= 2;
		char *na = realloc(s->arena, cap);
		if (!na)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		s->arena = na;
		s->acap = cap;
	}
	if (s->n == s->ncap) {
		size_t cap = s->ncap ? s->ncap * 2 : 256;
		struct spill_ref *nr = realloc(s->refs, cap * sizeof(*nr));
		if (!nr)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		s->refs = nr;
		s->ncap = cap;
	}
	memcpy(s->arena + s->alen, rec, len);
	s->refs[s->n++] = (struct spill_ref){ (uint32_t)s->alen, (uint32_t)len };
	s->alen += len;
	s->count++;
	return SM_OK;
}

/* Make the run's next record current; SM_EOF when it has none. */
static enum sm_err spill_run_advance(struct sm_spill *s, struct spill_run *r, struct sm_diag *d)
{
	uint32_t len = 0;
	size_t have = r->blen - r->boff;
	bool whole = have >= sizeof(len);
	if (whole) {
		memcpy(&len, r->buf + r->boff, sizeof(len));
		whole = have >= sizeof(len) + len;
	}
	if (!whole) {
		/* refill: move the partial record to the front, read more */
		size_t keep = r->blen - r->boff;
		memmove(r->buf, r->buf + r->boff, keep);
		r->blen = keep;
		r->boff = 0;
		uint64_t want = SPILL_READ_BUF - keep;
		if (want > r->end - r->pos)
			want = r->end - r->pos;
		if (want) {
			enum sm_err err =
			        sm_spill_pread(s->fd, r->pos, r->buf + keep, (size_t)want, d);
			if (err != SM_OK)
				return err;
			r->pos += want;
			r->blen += (size_t)want;
		}
		if (r->blen == 0)
			return SM_EOF;
		if (r->blen < sizeof(len))
			return sm_diag_set(d, SM_EIO, 0, "a sort file is damaged");
		memcpy(&len, r->buf, sizeof(len));
		if (r->blen < sizeof(len) + len) {
			/* larger than the buffer: read it whole into its own */
			char *big = realloc(r->big, len ? len : 1);
			if (!big)
				return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			r->big = big;
			have = r->blen - sizeof(len);
			memcpy(big, r->buf + sizeof(len), have);
			if (len - have > r->end - r->pos)
				return sm_diag_set(d, SM_EIO, 0, "a sort file is damaged");
			enum sm_err err = sm_spill_pread(s->fd, r->pos, big + have, len - have, d);
			if (err != SM_OK)
				return err;
			r->pos += len - have;
			r->blen = r->boff = 0;
			r->rec = big;
			r->rlen = len;
			return SM_OK;
		}
	}
	r->rec = r->buf + r->boff + sizeof(len);
	r->rlen = len;
	r->boff += sizeof(len) + len;
	return SM_OK;
}

/* The current record of heap source i (a run, or memory when i == nruns). */
static void spill_cur(const struct sm_spill *s, unsigned i, const void **rec, size_t *len)
{
	if (i == s->nruns) {
		const struct spill_ref *r = &s->refs[s->mem_pos];
		*rec = s->arena + r->off;
		*len = r->len;
	} else {
		*rec = s->runs[i].rec;
		*len = s->runs[i].rlen;
	}
}

static bool spill_less(const struct sm_spill *s, unsigned a, unsigned b)
{
	const void *ra, *rb;
	size_t la, lb;
	spill_cur(s, a, &ra, &la);
	spill_cur(s, b, &rb, &lb);
	return s->cmp(ra, la, rb, lb, s->arg) < 0;
}

static void spill_sift_down(struct sm_spill *s, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && spill_less(s, s->heap[l], s->heap[m]))
			m = l;
		if (r < s->nheap && spill_less(s, s->heap[r], s->heap[m]))
			m = r;
		if (m == i)
			return;
		unsigned t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
}

enum sm_err sm_spill_flush(struct sm_spill *s, struct sm_diag *d)
{
	if (s->sorted)
		return sm_diag_set(d, SM_EINVAL, 0, "spill: flush after sort");
	return s->n ? spill_flush(s, d) : SM_OK;
}

enum sm_err sm_spill_sort(struct sm_spill *s, struct sm_diag *d)
{
	if (s->sorted)
		return SM_OK;
	if (s->nruns) {
		/* on disk already: the rest goes too, and the merge needs no more
		 * memory than a read buffer per run */
		enum sm_err err = sm_spill_flush(s, d);
		if (err != SM_OK)
			return err;
		free(s->arena);
		free(s->refs);
		s->arena = NULL;
		s->refs = NULL;
		s->acap = s->ncap = 0;
	} else {
		if (s->n) /* qsort_r(NULL, 0) is undefined */
			qsort_r(s->refs, s->n, sizeof(*s->refs), spill_ref_cmp, s);
		/* kept for reading, maybe for long: give back what doubling left */
		char *na = s->alen < s->acap ? realloc(s->arena, s->alen ? s->alen : 1) : NULL;
		struct spill_ref *nr =
		        s->n < s->ncap ? realloc(s->refs, (s->n ? s->n : 1) * sizeof(*nr)) : NULL;
		if (na) {
			s->arena = na;
			s->acap = s->alen ? s->alen : 1;
		}
		if (nr) {
			s->refs = nr;
			s->ncap = s->n ? s->n : 1;
		}
	}
	s->sorted = true;
	s->heap = malloc((s->nruns + 1) * sizeof(*s->heap));
	if (!s->heap)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	for (unsigned i = 0; i < s->nruns; i++) {
		struct spill_run *r = &s->runs[i];
		if (!(r->buf = malloc(SPILL_READ_BUF)))
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		enum sm_err err = spill_run_advance(s, r, d);
		if (err == SM_EOF)
			continue;
		if (err != SM_OK)
			return err;
		s->heap[s->nheap++] = i;
	}
	if (s->n)
		s->heap[s->nheap++] = s->nruns; /* the records still in memory */
	for (unsigned i = s->nheap / 2; i-- > 0;)
		spill_sift_down(s, i);
	return SM_OK;
}

/* The heap's top was handed out last time: move its source on. */
static enum sm_err spill_pop(struct sm_spill *s, struct sm_diag *d)
{
	unsigned top = s->heap[0];
	enum sm_err err;
	if (top == s->nruns)
		err = ++s->mem_pos < s->n ? SM_OK : SM_EOF;
	else
		err = spill_run_advance(s, &s->runs[top], d);
	if (err == SM_EOF)
		s->heap[0] = s->heap[--s->nheap];
	else if (err != SM_OK)
		return err;
	if (s->nheap)
		spill_sift_down(s, 0);
	return SM_OK;
}

enum sm_err sm_spill_next(struct sm_spill *s, const void **rec, size_t *len, struct sm_diag *d)
{
	if (!s->sorted)
		return sm_diag_set(d, SM_EINVAL, 0, "spill: next before sort");
	if (s->handed) {
		s->handed = false;
		enum sm_err err = spill_pop(s, d);
		if (err != SM_OK)
			return err;
	}
	if (!s->nheap)
		return SM_EOF;
	spill_cur(s, s->heap[0], rec, len);
	s->handed = true;
	return SM_OK;
}

void sm_spill_at(const struct sm_spill *s, size_t i, const void **rec, size_t *len)
{
	const struct spill_ref *r = &s->refs[i];
	*rec = s->arena + r->off;
	*len = r->len;
}

size_t sm_spill_mem_bytes(const struct sm_spill *s)
{
	return sizeof(*s) + s->acap + s->ncap * sizeof(*s->refs) +
	       s->nruns * (sizeof(*s->runs) + SPILL_READ_BUF + sizeof(*s->heap));
}

uint64_t sm_spill_count(const struct sm_spill *s)
{
	return s->count;
}

unsigned sm_spill_runs(const struct sm_spill *s)
{
	return s->nruns;
}

uint64_t sm_spill_disk_bytes(const struct sm_spill *s)
{
	return s->fsize;
}

void sm_spill_free(struct sm_spill *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->nruns; i++) {
		free(s->runs[i].buf);
		free(s->runs[i].big);
	}
	free(s->runs);
	free(s->heap);
	free(s->arena);
	free(s->refs);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
