/* The sm_store_*() wrappers: scheme registry, key and order checks, faults. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../log.h"
#include "../util.h"

/* The one registry of backends. */
static const struct sm_store_ops *const store_registry[] = {
	&sm_file_ops,
	&sm_s3_ops,
	&sm_sftp_ops,
};

enum fault_op { F_LIST, F_STAT, F_READ, F_PUT, F_DEL, F_MKDIR, F_SYMLINK, F_SETATTR, F_ANY, F_N };
static const char *const fault_names[F_N] = { "list",  "stat",    "read",    "put", "del",
	                                      "mkdir", "symlink", "setattr", "any" };
#define FAULT_MAX 8
struct fault_rule {
	enum fault_op op;
	long nth;
	enum sm_err err;
	bool sticky;
	bool corrupt; /* put only: write flipped data, report success */
	bool slow;    /* put only: this one and every later one, slowly (fault_slow) */
	bool crawl;   /* put only: the same, each step FAULT_CRAWL_MS more */
	bool stall;   /* put only: this one moves nothing until its reader is stopped */
};
#define FAULT_CRAWL_MS 20
#define FAULT_STALL_MAX_MS 600000 /* a stalled put gives up by itself after this */
struct sm_fault {
	int n;
	struct fault_rule rule[FAULT_MAX];
	atomic_long calls[F_N];
};

struct sm_cursor {
	struct sm_store *st;
	void *priv;
	struct sm_range range;
	char *after; /* owned copies of the range bounds */
	char *last;
	struct sm_buf prev; /* previous key, for the order check */
	bool have_prev;
	unsigned errors_in_row; /* errors since the last entry */
	bool ended;             /* given up: SM_EOF from now on */
};

/* A backend's cursor moves past a failed part of its listing or ends; this
 * bound makes sure no cursor can fail forever in place. */
#define STORE_LIST_ERRORS_MAX 10000

bool sm_entry_is_dir(const struct sm_entry *e)
{
	return S_ISDIR(e->mode);
}

bool sm_entry_is_link(const struct sm_entry *e)
{
	return S_ISLNK(e->mode);
}

enum sm_err sm_entry_copy(struct sm_entry *dst, const struct sm_entry *src)
{
	struct sm_entry e = *src;
	e.key = NULL;
	e.link = NULL;
	if (src->key && !(e.key = strdup(src->key)))
		return SM_ENOMEM;
	if (src->link && !(e.link = strdup(src->link))) {
		free(e.key);
		return SM_ENOMEM;
	}
	*dst = e;
	return SM_OK;
}

void sm_entry_release(struct sm_entry *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->link);
	e->key = NULL;
	e->link = NULL;
}

bool sm_range_contains(const struct sm_range *r, const char *key)
{
	if (r->after && *r->after && strcmp(key, r->after) <= 0)
		return false;
	if (r->last && strcmp(key, r->last) > 0)
		return false;
	return true;
}

/* ---- readers ---- */

enum sm_err sm_reader_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                           struct sm_diag *d)
{
	return sm_diag_label(d, r->ops->read(r, buf, cap, got, d), r->label);
}

enum sm_err sm_reader_read_full(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                                struct sm_diag *d)
{
	size_t total = 0;
	while (total < cap) {
		size_t n = 0;
		enum sm_err e = r->ops->read(r, (char *)buf + total, cap - total, &n, d);
		if (e != SM_OK)
			return sm_diag_label(d, e, r->label);
		if (n == 0)
			break;
		total += n;
	}
	*got = total;
	return SM_OK;
}

int sm_reader_fd(struct sm_reader *r, uint64_t *off)
{
	return r->ops->fd ? r->ops->fd(r, off) : -1;
}

enum sm_err sm_reader_check_stop(const struct sm_reader *r, const char *key, struct sm_diag *d)
{
	if (r->stop && atomic_load(r->stop))
		return sm_diag_set(d, SM_ECANCELED, 0, "'%s': stopped midway", key);
	return SM_OK;
}

void sm_reader_consumed(struct sm_reader *r, uint64_t n)
{
	if (r->ops->consumed)
		r->ops->consumed(r, n);
}

enum sm_err sm_reader_finish(struct sm_reader *r, struct sm_diag *d)
{
	return r->ops->finish ? sm_diag_label(d, r->ops->finish(r, d), r->label) : SM_OK;
}

void sm_reader_close(struct sm_reader *r)
{
	if (r)
		r->ops->close(r);
}

static enum sm_err mem_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                            struct sm_diag *d)
{
	(void)d;
	struct sm_mem_reader *m = (struct sm_mem_reader *)r;
	size_t n = m->len - m->pos < cap ? m->len - m->pos : cap;
	if (n)
		memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	*got = n;
	return SM_OK;
}

static void mem_close(struct sm_reader *r)
{
	(void)r; /* borrowed memory: nothing to free */
}

static const struct sm_reader_ops mem_reader_ops = { .read = mem_read, .close = mem_close };

void sm_mem_reader_init(struct sm_mem_reader *m, const void *data, size_t len)
{
	m->base = (struct sm_reader){ .ops = &mem_reader_ops, .size = len };
	m->data = data;
	m->len = len;
	m->pos = 0;
}

/* ---- faults ---- */

enum sm_err sm_store_set_fault(struct sm_store *st, const char *spec, struct sm_diag *d)
{
	struct sm_fault *f = calloc(1, sizeof(*f));
	if (!f)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	char *copy = strdup(spec);
	if (!copy) {
		free(f);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	enum sm_err err = SM_OK;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *op = tok, *nth = strchr(tok, ':');
		if (!nth || f->n == FAULT_MAX) {
			err = sm_diag_set(d, SM_EINVAL, 0, "fault spec '%s': expected OP:N", tok);
			goto out;
		}
		*nth++ = '\0';
		char *mode = strchr(nth, ':');
		if (mode)
			*mode++ = '\0';
		int i = 0;
		while (i < F_N && strcmp(fault_names[i], op) != 0)
			i++;
		int64_t n = 0;
		if (i == F_N || !sm_parse_i64(nth, 1, INT64_MAX, &n)) {
			err = sm_diag_set(d, SM_EINVAL, 0, "fault spec '%s': bad op or count", tok);
			goto out;
		}
		struct fault_rule *rule = &f->rule[f->n];
		rule->op = (enum fault_op)i;
		rule->nth = (long)n;
		rule->err = SM_EIO;
		if (mode && strcmp(mode, "transient") == 0) {
			rule->err = SM_EAGAIN;
		} else if (mode && strcmp(mode, "sticky") == 0) {
			rule->sticky = true;
		} else if (mode && strcmp(mode, "corrupt") == 0) {
			if (rule->op != F_PUT) {
				err = sm_diag_set(d, SM_EINVAL, 0,
				                  "fault spec: mode 'corrupt' is for put only");
				goto out;
			}
			rule->corrupt = true;
		} else if (mode && strcmp(mode, "slow") == 0) {
			if (rule->op != F_PUT) {
				err = sm_diag_set(d, SM_EINVAL, 0,
				                  "fault spec: mode 'slow' is for put only");
				goto out;
			}
			rule->slow = rule->sticky = true;
		} else if (mode && (strcmp(mode, "crawl") == 0 || strcmp(mode, "stall") == 0)) {
			if (rule->op != F_PUT) {
				err = sm_diag_set(d, SM_EINVAL, 0,
				                  "fault spec: mode '%s' is for put only", mode);
				goto out;
			}
			if (mode[1] == 'r')
				rule->slow = rule->crawl = rule->sticky = true;
			else
				rule->stall = true;
		} else if (mode) {
			err = sm_diag_set(d, SM_EINVAL, 0, "fault spec: unknown mode '%s'", mode);
			goto out;
		}
		f->n++;
	}
	free(st->fault);
	st->fault = f;
	f = NULL;
out:
	free(copy);
	free(f);
	return err;
}

/* Count a call of `op`; returns the first rule it hits, or NULL. */
static const struct fault_rule *fault_next(struct sm_store *st, enum fault_op op)
{
	struct sm_fault *f = st->fault;
	if (!f)
		return NULL;
	long n = atomic_fetch_add(&f->calls[op], 1) + 1;
	long any = atomic_fetch_add(&f->calls[F_ANY], 1) + 1;
	for (int i = 0; i < f->n; i++) {
		long c = f->rule[i].op == F_ANY ? any : f->rule[i].op == op ? n : -1;
		if (c < 0)
			continue;
		if (c == f->rule[i].nth || (f->rule[i].sticky && c > f->rule[i].nth))
			return &f->rule[i];
	}
	return NULL;
}

static enum sm_err fault_fail(const struct fault_rule *rule, enum fault_op op, const char *key,
                              struct sm_diag *d)
{
	return sm_diag_set(d, rule->err, 0, "injected %s fault on %s '%s'",
	                   rule->err == SM_EAGAIN ? "transient" : "permanent", fault_names[op],
	                   key ? key : "");
}

/* Count a call of `op`; returns the injected error, or SM_OK. */
static enum sm_err fault_hit(struct sm_store *st, enum fault_op op, const char *key,
                             struct sm_diag *d)
{
	const struct fault_rule *rule = fault_next(st, op);
	return rule ? fault_fail(rule, op, key, d) : SM_OK;
}

/*
 * A reader that forwards to another and flips the lowest bit of the first
 * byte it passes on: a put through it stores corrupted data of the right
 * size and reports success. No fd(), so a local destination reads (and
 * cannot copy_file_range() around the flip).
 */
struct fault_reader {
	struct sm_reader base;
	struct sm_reader *in; /* borrowed */
	bool flipped;
};

static enum sm_err fault_reader_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                                     struct sm_diag *d)
{
	struct fault_reader *fr = (struct fault_reader *)r;
	enum sm_err err = sm_reader_read(fr->in, buf, cap, got, d);
	if (err == SM_OK && *got && !fr->flipped) {
		((unsigned char *)buf)[0] ^= 1;
		fr->flipped = true;
	}
	return err;
}

static enum sm_err fault_reader_finish(struct sm_reader *r, struct sm_diag *d)
{
	return sm_reader_finish(((struct fault_reader *)r)->in, d);
}

static void fault_reader_close(struct sm_reader *r)
{
	(void)r; /* the inner reader belongs to the caller */
}

static const struct sm_reader_ops fault_reader_ops = {
	.read = fault_reader_read,
	.finish = fault_reader_finish,
	.close = fault_reader_close,
};

/* A slow put's pause after a step of `n` bytes: 0.25 ms, plus the bytes at
 * 512 MiB/s. */
static void fault_slow(uint64_t n)
{
	uint64_t ns = 250000 + n * 1000000000 / (512u << 20);
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000),
		               .tv_nsec = (long)(ns % 1000000000) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * A reader that forwards to another, its fd() included, and pauses after
 * each step of data (fault_slow): a read, or a step a local destination
 * copied from the fd (reported by consumed()). A crawling one pauses
 * FAULT_CRAWL_MS more a step.
 */
struct slow_reader {
	struct sm_reader base;
	struct sm_reader *in; /* borrowed */
	bool crawl;
};

static void slow_step(const struct slow_reader *sr, uint64_t n)
{
	fault_slow(n);
	if (sr->crawl)
		sm_sleep_ms(FAULT_CRAWL_MS);
}

static enum sm_err slow_reader_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                                    struct sm_diag *d)
{
	struct slow_reader *sr = (struct slow_reader *)r;
	enum sm_err err = sm_reader_read(sr->in, buf, cap, got, d);
	if (err == SM_OK)
		slow_step(sr, *got);
	return err;
}

static int slow_reader_fd(struct sm_reader *r, uint64_t *off)
{
	return sm_reader_fd(((struct slow_reader *)r)->in, off);
}

static void slow_reader_consumed(struct sm_reader *r, uint64_t n)
{
	struct slow_reader *sr = (struct slow_reader *)r;
	sm_reader_consumed(sr->in, n);
	slow_step(sr, n);
}

static enum sm_err slow_reader_finish(struct sm_reader *r, struct sm_diag *d)
{
	return sm_reader_finish(((struct slow_reader *)r)->in, d);
}

static void slow_reader_close(struct sm_reader *r)
{
	(void)r; /* the inner reader belongs to the caller */
}

static const struct sm_reader_ops slow_reader_ops = {
	.read = slow_reader_read,
	.fd = slow_reader_fd,
	.consumed = slow_reader_consumed,
	.finish = slow_reader_finish,
	.close = slow_reader_close,
};

/* ---- stores ---- */

enum sm_err sm_store_open(const struct sm_url *u, const struct sm_store_cfg *cfg,
                          struct sm_store **out, struct sm_diag *d)
{
	const struct sm_store_ops *ops = NULL;
	for (size_t i = 0; i < sizeof(store_registry) / sizeof(store_registry[0]); i++)
		if (strcmp(store_registry[i]->scheme, u->scheme) == 0)
			ops = store_registry[i];
	if (!ops)
		return sm_diag_set(d, SM_ENOTSUP, 0, "'%s': %s storage not supported", u->display,
		                   u->scheme);
	struct sm_store *st = calloc(1, sizeof(*st));
	if (!st)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	st->ops = ops;
	st->cfg = *cfg;
	st->display = strdup(u->display);
	st->priv = calloc(1, ops->priv_size ? ops->priv_size : 1);
	if (!st->display || !st->priv) {
		free(st->display);
		free(st->priv);
		free(st);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	enum sm_err err = ops->open(st, u, cfg, d);
	if (err != SM_OK) {
		sm_store_close(st);
		return err;
	}
	*out = st;
	return SM_OK;
}

void sm_store_close(struct sm_store *st)
{
	if (!st)
		return;
	st->ops->close(st);
	free(st->priv);
	free(st->display);
	free(st->space);
	free(st->where);
	free(st->one);
	free(st->fault);
	free(st);
}

enum sm_err sm_store_set_where(struct sm_store *st, const char *space, const char *where,
                               struct sm_diag *d)
{
	size_t n = strlen(where);
	char *sp = strdup(space);
	char *wh = malloc(n + 2);
	if (!sp || !wh) {
		free(sp);
		free(wh);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	memcpy(wh, where, n + 1);
	if (!n || wh[n - 1] != '/')
		memcpy(wh + n, "/", 2);
	free(st->space);
	free(st->where);
	st->space = sp;
	st->where = wh;
	return SM_OK;
}

enum sm_err sm_store_split_last(const char *path, char **parent, char **name, struct sm_diag *d)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t b = n;
	while (b > 0 && path[b - 1] != '/')
		b--;
	if (b == n || (n - b == 1 && path[b] == '.') ||
	    (n - b == 2 && path[b] == '.' && path[b + 1] == '.'))
		return sm_diag_set(d, SM_EINVAL, 0, "'%.*s' names no object", (int)n, path);
	size_t pl = b;
	while (pl > 1 && path[pl - 1] == '/')
		pl--; /* "a//b" → "a"; "/b" keeps "/" */
	char *p = sm_strndup(path, pl);
	char *nm = sm_strndup(path + b, n - b);
	if (!p || !nm) {
		free(p);
		free(nm);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	*parent = p;
	*name = nm;
	return SM_OK;
}

static bool store_within(const char *inner, const char *outer)
{
	return strncmp(inner, outer, strlen(outer)) == 0;
}

/* Is directory `inner` (or its nearest existing ancestor) `outer` itself or
 * below it, by device and inode of each ancestor: a bind mount or a second
 * name of `outer` is seen too. */
static bool store_path_below(const char *inner, const char *outer)
{
	struct stat o, st;
	if (stat(outer, &o) != 0 || !S_ISDIR(o.st_mode))
		return false;
	char p[PATH_MAX];
	if (sm_strlcpy(p, inner, sizeof(p)) >= sizeof(p))
		return false;
	for (;;) {
		if (stat(p, &st) == 0 && st.st_dev == o.st_dev && st.st_ino == o.st_ino)
			return true;
		char *slash = strrchr(p, '/');
		if (!slash || slash == p)
			return stat("/", &st) == 0 && st.st_dev == o.st_dev &&
			       st.st_ino == o.st_ino;
		*slash = '\0';
	}
}

int sm_path_overlap(const char *a, const char *b)
{
	if (store_path_below(b, a))
		return 1;
	if (store_path_below(a, b))
		return 2;
	return 0;
}

int sm_store_overlap(const struct sm_store *a, const struct sm_store *b)
{
	if (!a->space || !b->space || !a->where || !b->where || strcmp(a->space, b->space) != 0)
		return 0;
	if (store_within(b->where, a->where))
		return 1;
	if (store_within(a->where, b->where))
		return 2;
	if (strcmp(a->space, "file") == 0)
		return sm_path_overlap(a->where, b->where);
	return 0;
}

static enum sm_err store_writable_raw(struct sm_store *st, struct sm_diag *d)
{
	return st->ops->writable ? st->ops->writable(st, d) : SM_OK;
}

enum sm_err sm_store_writable(struct sm_store *st, struct sm_diag *d)
{
	return sm_diag_label(d, store_writable_raw(st, d), st->cfg.label);
}

bool sm_store_has(const struct sm_store *st, unsigned cap)
{
	return (st->ops->caps & cap) == cap;
}

static enum sm_err store_list_begin_raw(struct sm_store *st, const struct sm_range *r,
                                        struct sm_cursor **out, struct sm_diag *d)
{
	enum sm_err err = fault_hit(st, F_LIST, r->after, d);
	if (err != SM_OK)
		return err;
	struct sm_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	c->st = st;
	c->after = r->after && *r->after ? strdup(r->after) : NULL;
	c->last = r->last ? strdup(r->last) : NULL;
	if ((r->after && *r->after && !c->after) || (r->last && !c->last)) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	c->range.after = c->after;
	c->range.last = c->last;
	err = st->ops->list_begin(st, &c->range, &c->priv, d);
	if (err != SM_OK)
		goto fail;
	*out = c;
	return SM_OK;
fail:
	free(c->after);
	free(c->last);
	free(c);
	return err;
}

enum sm_err sm_store_list_begin(struct sm_store *st, const struct sm_range *r,
                                struct sm_cursor **out, struct sm_diag *d)
{
	return sm_diag_label(d, store_list_begin_raw(st, r, out, d), st->cfg.label);
}

static enum sm_err store_list_next_raw(struct sm_cursor *c, const struct sm_entry **e,
                                       struct sm_diag *d)
{
	const struct sm_entry *ent = NULL;
	if (c->ended)
		return SM_EOF;
	enum sm_err err = c->st->ops->list_next(c->priv, &ent, d);
	if (err == SM_EOF)
		return err;
	if (err != SM_OK) {
		if (++c->errors_in_row >= STORE_LIST_ERRORS_MAX) {
			char last[sizeof(d->msg)];
			snprintf(last, sizeof(last), "%s", d->msg);
			c->ended = true;
			return sm_diag_set(
			        d, SM_EIO, 0,
			        "%s: listing gave up after %u errors in a row (last: %s)",
			        c->st->display, c->errors_in_row, last);
		}
		return err;
	}
	c->errors_in_row = 0;
	/* A temp file of an interrupted run, which file-like stores (the ones
	 * that write through temp names) pass on: marked here for all of them.
	 * The entry is the backend's, rebuilt on every call. */
	const char *slash = strrchr(ent->key, '/');
	const char *base = slash && slash[1] ? slash + 1 : ent->key;
	((struct sm_entry *)ent)->debris = sm_store_has(c->st, SM_CAP_DIRS) &&
	                                   !S_ISDIR(ent->mode) &&
	                                   sm_store_is_tmp_name(base, strlen(base));
	if (!sm_range_contains(&c->range, ent->key))
		return sm_diag_set(d, SM_EORDER, 0, "%s: listing returned '%s' outside its range",
		                   c->st->display, ent->key);
	if (c->have_prev && strcmp(c->prev.p, ent->key) >= 0)
		return sm_diag_set(d, SM_EORDER, 0, "%s: listing out of order: '%s' after '%s'",
		                   c->st->display, ent->key, c->prev.p);
	c->prev.len = 0;
	if (sm_buf_appendz(&c->prev, ent->key) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	c->have_prev = true;
	err = fault_hit(c->st, F_LIST, ent->key, d);
	if (err != SM_OK)
		return err;
	*e = ent;
	return SM_OK;
}

enum sm_err sm_store_list_next(struct sm_cursor *c, const struct sm_entry **e, struct sm_diag *d)
{
	return sm_diag_label(d, store_list_next_raw(c, e, d), c->st->cfg.label);
}

void sm_store_list_end(struct sm_cursor *c)
{
	if (!c)
		return;
	c->st->ops->list_end(c->priv);
	sm_buf_release(&c->prev);
	free(c->after);
	free(c->last);
	free(c);
}

bool sm_store_can_skip(const struct sm_store *st)
{
	return st->ops->list_skip != NULL;
}

void sm_store_list_skip(struct sm_cursor *c)
{
	if (c->st->ops->list_skip)
		c->st->ops->list_skip(c->priv);
}

static enum sm_err store_stat_raw(struct sm_store *st, const char *key, struct sm_entry *out,
                                  struct sm_diag *d)
{
	enum sm_err err = fault_hit(st, F_STAT, key, d);
	if (err != SM_OK)
		return err;
	return st->ops->stat(st, key, out, d);
}

enum sm_err sm_store_stat(struct sm_store *st, const char *key, struct sm_entry *out,
                          struct sm_diag *d)
{
	return sm_diag_label(d, store_stat_raw(st, key, out, d), st->cfg.label);
}

enum sm_err sm_store_open_read(struct sm_store *st, const char *key, uint64_t off,
                               struct sm_reader **out, struct sm_diag *d)
{
	enum sm_err err = fault_hit(st, F_READ, key, d);
	if (err == SM_OK)
		err = st->ops->open_read(st, key, off, UINT64_MAX, out, d);
	if (err == SM_OK) {
		(*out)->label = st->cfg.label;
		(*out)->name = key;
	}
	return sm_diag_label(d, err, st->cfg.label);
}

enum sm_err sm_store_open_entry(struct sm_store *st, const struct sm_entry *e,
                                struct sm_reader **out, struct sm_diag *d)
{
	enum sm_err err = fault_hit(st, F_READ, e->key, d);
	if (err == SM_OK)
		err = st->ops->open_read(st, e->key, 0, e->size, out, d);
	if (err == SM_OK) {
		(*out)->label = st->cfg.label;
		(*out)->name = e->key;
	}
	return sm_diag_label(d, err, st->cfg.label);
}

#define STORE_TMP_PREFIX ".~sm"
#define STORE_TMP_PREFIX_LEN 4
#define STORE_TMP_NAME_MAX 200 /* bytes of the original name kept in a temp name */

/* The check digits of a temp name: FNV-1a (32 bits) of "syncmgr-tmp:" and
 * its first 8 hex digits. A name of that shape made by anyone else has a
 * chance of 2^-32 of matching. */
static uint32_t store_tmp_check(const char *hex8)
{
	static const char salt[] = "syncmgr-tmp:";
	uint32_t h = 2166136261u;
	for (const char *p = salt; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (int i = 0; i < 8; i++)
		h = (h ^ (uint8_t)hex8[i]) * 16777619u;
	return h;
}

static bool store_is_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

bool sm_store_is_tmp_name(const char *name, size_t len)
{
	if (len < SM_STORE_TMP_MIN || memcmp(name, STORE_TMP_PREFIX, STORE_TMP_PREFIX_LEN) != 0 ||
	    name[SM_STORE_TMP_MIN - 1] != '.' || !store_is_hex(name + STORE_TMP_PREFIX_LEN, 16))
		return false;
	char check[9];
	memcpy(check, name + STORE_TMP_PREFIX_LEN + 8, 8);
	check[8] = '\0';
	return strtoul(check, NULL, 16) == store_tmp_check(name + STORE_TMP_PREFIX_LEN);
}

/* The first 4 of a temp name's 8 hex digits are this run's tag, the rest
 * random: a listing tells this run's files in flight (hidden) from those an
 * interrupted run left (debris). 0 until the first temp name. */
static _Atomic uint32_t store_tmp_tag;

static uint32_t store_tag(void)
{
	uint32_t t = atomic_load(&store_tmp_tag);
	while (!t) {
		uint32_t want = 1 + (uint32_t)(sm_rand64() % 0xffff);
		if (atomic_compare_exchange_strong(&store_tmp_tag, &t, want))
			t = want;
	}
	return t;
}

void sm_store_tmp_name(const char *base, char *out, size_t n)
{
	size_t blen = strlen(base);
	if (blen > STORE_TMP_NAME_MAX)
		blen = STORE_TMP_NAME_MAX;
	char hex[9];
	snprintf(hex, sizeof(hex), "%04" PRIx32 "%04" PRIx32, store_tag() & 0xffff,
	         (uint32_t)(sm_rand64() & 0xffff));
	snprintf(out, n, STORE_TMP_PREFIX "%s%08" PRIx32 ".%.*s", hex, store_tmp_check(hex),
	         (int)blen, base);
}

bool sm_store_is_debris_name(const char *name, size_t len)
{
	if (!sm_store_is_tmp_name(name, len))
		return false;
	char tag[5];
	memcpy(tag, name + STORE_TMP_PREFIX_LEN, 4);
	tag[4] = '\0';
	return strtoul(tag, NULL, 16) != store_tag();
}

enum sm_err sm_store_key_check(const struct sm_store *st, const char *key, struct sm_diag *d)
{
	size_t n = strlen(key);
	if (!sm_store_has(st, SM_CAP_DIRS)) {
		/* an object store's keys are opaque: "/lead", "e//f", "c/./d" are
		 * names like any other, copied and deleted verbatim */
		return n ? SM_OK : sm_diag_set(d, SM_EUNSAFE, 0, "empty key refused");
	}
	enum sm_err err;
	if (n > 1 && key[n - 1] == '/') {
		char *k = sm_strndup(key, n - 1);
		if (!k)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		err = sm_key_check(k, d);
		free(k);
	} else {
		err = sm_key_check(key, d);
	}
	return err;
}

/* Every write goes through here first: a key never escapes the root. */
static enum sm_err store_write_check(struct sm_store *st, enum fault_op op, const char *key,
                                     struct sm_diag *d)
{
	/* "" is the root of a file-like store: its attributes may be set */
	bool root = !*key && (op == F_SETATTR || op == F_MKDIR) && sm_store_has(st, SM_CAP_DIRS);
	enum sm_err err = root ? SM_OK : sm_store_key_check(st, key, d);
	if (err != SM_OK)
		return err;
	return fault_hit(st, op, key, d);
}

static enum sm_err store_put_raw(struct sm_store *st, const char *key, struct sm_reader *r,
                                 const struct sm_put *p, struct sm_diag *d)
{
	enum sm_err err = sm_store_key_check(st, key, d);
	if (err != SM_OK)
		return err;
	size_t n = strlen(key);
	if (sm_store_has(st, SM_CAP_DIRS) && key[n - 1] == '/') {
		/* an object store's "x/" with bytes in it (issue 21) */
		if (r->size == UINT64_MAX)
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "'%s' holds bytes; a directory cannot: not copied", key);
		return sm_diag_set(d, SM_EINVAL, 0,
		                   "'%s' holds %" PRIu64 " bytes; a directory cannot: not copied",
		                   key, r->size);
	}
	const struct fault_rule *rule = fault_next(st, F_PUT);
	if (!rule)
		return st->ops->put(st, key, r, p, d);
	if (rule->stall) {
		/* a hung transfer: nothing moves until whoever runs it gives up */
		sm_log(SM_LOG_INFO, "injected stall of put '%s'", key);
		for (unsigned ms = 0; ms < FAULT_STALL_MAX_MS; ms += 10) {
			enum sm_err serr = sm_reader_check_stop(r, key, d);
			if (serr != SM_OK)
				return serr;
			sm_sleep_ms(10);
		}
		return fault_fail(rule, F_PUT, key, d);
	}
	if (rule->slow) {
		struct slow_reader sr = { .base = { .ops = &slow_reader_ops,
			                            .size = r->size,
			                            .mtime_ns = r->mtime_ns,
			                            .has_mtime = r->has_mtime,
			                            .pool_held = r->pool_held,
			                            .meta = r->meta,
			                            .label = r->label,
			                            .name = r->name,
			                            .stop = r->stop },
			                  .in = r,
			                  .crawl = rule->crawl };
		return st->ops->put(st, key, &sr.base, p, d);
	}
	if (!rule->corrupt)
		return fault_fail(rule, F_PUT, key, d);
	sm_log(SM_LOG_INFO, "injected corruption of put '%s' (its first byte flipped)", key);
	struct fault_reader fr = { .base = { .ops = &fault_reader_ops,
		                             .size = r->size,
		                             .mtime_ns = r->mtime_ns,
		                             .has_mtime = r->has_mtime,
		                             .pool_held = r->pool_held,
		                             .meta = r->meta,
		                             .label = r->label,
		                             .name = r->name,
		                             .stop = r->stop },
		                   .in = r };
	return st->ops->put(st, key, &fr.base, p, d);
}

enum sm_err sm_store_put(struct sm_store *st, const char *key, struct sm_reader *r,
                         const struct sm_put *p, struct sm_diag *d)
{
	return sm_diag_label(d, store_put_raw(st, key, r, p, d), st->cfg.label);
}

static enum sm_err store_del_raw(struct sm_store *st, const char *key, struct sm_diag *d)
{
	enum sm_err err = store_write_check(st, F_DEL, key, d);
	if (err != SM_OK)
		return err;
	return st->ops->del(st, key, d);
}

enum sm_err sm_store_del(struct sm_store *st, const char *key, struct sm_diag *d)
{
	return sm_diag_label(d, store_del_raw(st, key, d), st->cfg.label);
}

bool sm_store_can_del_many(const struct sm_store *st)
{
	return st->ops->del_many != NULL;
}

struct del_many_ctx {
	const size_t *idx; /* the backend's i -> the caller's */
	sm_del_done_fn done;
	void *arg;
	const char *label;
};

static void del_many_done(void *arg, size_t i, enum sm_err err, const struct sm_diag *d)
{
	struct del_many_ctx *c = arg;
	struct sm_diag ld;
	if (err != SM_OK && d && c->label) {
		ld = *d;
		sm_diag_label(&ld, err, c->label);
		d = &ld;
	}
	c->done(c->arg, c->idx[i], err, d);
}

void sm_store_del_many(struct sm_store *st, const char *const *keys, size_t n, sm_del_done_fn done,
                       void *arg)
{
	struct sm_diag d;
	const char **ok = st->ops->del_many ? malloc(n * sizeof(*ok)) : NULL;
	size_t *idx = ok ? malloc(n * sizeof(*idx)) : NULL;
	if (!idx) { /* one by one */
		for (size_t i = 0; i < n; i++) {
			enum sm_err err = sm_store_del(st, keys[i], &d);
			done(arg, i, err, err == SM_OK ? NULL : &d);
		}
		goto out;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		enum sm_err err = store_write_check(st, F_DEL, keys[i], &d);
		if (err != SM_OK) {
			sm_diag_label(&d, err, st->cfg.label);
			done(arg, i, err, &d);
			continue;
		}
		ok[m] = keys[i];
		idx[m++] = i;
	}
	struct del_many_ctx c = { .idx = idx, .done = done, .arg = arg, .label = st->cfg.label };
	enum sm_err err = m ? st->ops->del_many(st, ok, m, del_many_done, &c, &d) : SM_OK;
	sm_diag_label(&d, err, st->cfg.label);
	for (size_t j = 0; err != SM_OK && j < m; j++)
		done(arg, idx[j], err, &d);
out:
	free(ok);
	free(idx);
}

static enum sm_err store_mkdir_raw(struct sm_store *st, const char *key, const struct sm_put *p,
                                   struct sm_diag *d)
{
	if (!st->ops->mkdir)
		return SM_OK; /* no real directories: nothing to create */
	enum sm_err err = store_write_check(st, F_MKDIR, key, d);
	if (err != SM_OK)
		return err;
	return st->ops->mkdir(st, key, p, d);
}

enum sm_err sm_store_mkdir(struct sm_store *st, const char *key, const struct sm_put *p,
                           struct sm_diag *d)
{
	return sm_diag_label(d, store_mkdir_raw(st, key, p, d), st->cfg.label);
}

static enum sm_err store_symlink_raw(struct sm_store *st, const char *key, const char *target,
                                     const struct sm_put *p, struct sm_diag *d)
{
	if (!st->ops->symlink)
		return sm_diag_set(d, SM_ENOTSUP, 0, "%s: symlinks not supported for '%s'",
		                   st->display, key);
	enum sm_err err = store_write_check(st, F_SYMLINK, key, d);
	if (err != SM_OK)
		return err;
	return st->ops->symlink(st, key, target, p, d);
}

enum sm_err sm_store_symlink(struct sm_store *st, const char *key, const char *target,
                             const struct sm_put *p, struct sm_diag *d)
{
	return sm_diag_label(d, store_symlink_raw(st, key, target, p, d), st->cfg.label);
}

static enum sm_err store_copy_raw(struct sm_store *st, const char *key, struct sm_store *src,
                                  const char *src_key, const struct sm_entry *se,
                                  const struct sm_put *p, struct sm_diag *d)
{
	if (!st->ops->copy || st->ops != src->ops || st->fault || src->fault)
		return SM_ENOTSUP;
	enum sm_err err = store_write_check(st, F_PUT, key, d);
	if (err != SM_OK)
		return err;
	return st->ops->copy(st, key, src, src_key, se, p, d);
}

enum sm_err sm_store_copy(struct sm_store *st, const char *key, struct sm_store *src,
                          const char *src_key, const struct sm_entry *se, const struct sm_put *p,
                          struct sm_diag *d)
{
	return sm_diag_label(d, store_copy_raw(st, key, src, src_key, se, p, d), st->cfg.label);
}

static enum sm_err store_sync_raw(struct sm_store *st, struct sm_diag *d)
{
	return st->ops->sync ? st->ops->sync(st, d) : SM_OK;
}

enum sm_err sm_store_sync(struct sm_store *st, struct sm_diag *d)
{
	return sm_diag_label(d, store_sync_raw(st, d), st->cfg.label);
}

static enum sm_err store_sweep_raw(struct sm_store *st, int64_t before_ns, bool remove,
                                   uint64_t *found, struct sm_diag *d)
{
	*found = 0;
	return st->ops->sweep ? st->ops->sweep(st, before_ns, remove, found, d) : SM_OK;
}

enum sm_err sm_store_sweep(struct sm_store *st, int64_t before_ns, bool remove, uint64_t *found,
                           struct sm_diag *d)
{
	return sm_diag_label(d, store_sweep_raw(st, before_ns, remove, found, d), st->cfg.label);
}

static enum sm_err store_setattr_raw(struct sm_store *st, const char *key, const struct sm_put *p,
                                     struct sm_diag *d)
{
	if (!st->ops->setattr)
		return SM_OK;
	enum sm_err err = store_write_check(st, F_SETATTR, key, d);
	if (err != SM_OK)
		return err;
	return st->ops->setattr(st, key, p, d);
}

enum sm_err sm_store_setattr(struct sm_store *st, const char *key, const struct sm_put *p,
                             struct sm_diag *d)
{
	return sm_diag_label(d, store_setattr_raw(st, key, p, d), st->cfg.label);
}
