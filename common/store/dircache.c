/*
 * A store's cache of directory listings: see dircache.h. One mutex guards
 * the hash table, the reference counts and the list of unreferenced entries
 * (least recently released at the tail); a condition variable wakes cursors
 * that wait for another cursor's load. Lookups happen once per directory a
 * cursor enters, so one lock is no bottleneck.
 */
#include "dircache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DC_BUCKETS_MIN 64

struct sm_dircache_ent {
	char *path;
	size_t len;
	uint64_t hash;
	void *val;
	size_t bytes; /* counted in the cache's total once ready */
	int refs;
	bool ready;  /* val is loaded (else a cursor is loading it) */
	bool linked; /* in the hash table (else stale or abandoned) */
	struct sm_dircache_ent *hnext;
	struct sm_dircache_ent *prev, *next; /* unreferenced entries, newest first */
};

struct sm_dircache {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a load finished or was abandoned */
	struct sm_dircache_ent **tab;
	size_t nb;
	size_t count;
	struct sm_dircache_ent *idle_head; /* released last: never evicted */
	struct sm_dircache_ent *idle_tail;
	size_t bytes;
	size_t budget;
	void (*free_val)(void *val);
	struct sm_dircache_stats st;
};

static uint64_t dc_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

enum sm_err sm_dircache_new(size_t budget, void (*free_val)(void *val), struct sm_dircache **out)
{
	struct sm_dircache *dc = calloc(1, sizeof(*dc));
	if (!dc)
		return SM_ENOMEM;
	dc->tab = calloc(DC_BUCKETS_MIN, sizeof(*dc->tab));
	if (!dc->tab) {
		free(dc);
		return SM_ENOMEM;
	}
	dc->nb = DC_BUCKETS_MIN;
	dc->budget = budget;
	dc->free_val = free_val;
	pthread_mutex_init(&dc->mu, NULL);
	pthread_cond_init(&dc->cv, NULL);
	*out = dc;
	return SM_OK;
}

static void dc_destroy(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	if (e->ready) {
		dc->bytes -= e->bytes;
		dc->free_val(e->val);
	}
	free(e->path);
	free(e);
}

void sm_dircache_free(struct sm_dircache *dc)
{
	if (!dc)
		return;
	for (size_t i = 0; i < dc->nb; i++) {
		struct sm_dircache_ent *e = dc->tab[i];
		while (e) {
			struct sm_dircache_ent *n = e->hnext;
			dc_destroy(dc, e);
			e = n;
		}
	}
	free(dc->tab);
	pthread_cond_destroy(&dc->cv);
	pthread_mutex_destroy(&dc->mu);
	free(dc);
}

static struct sm_dircache_ent *dc_find(struct sm_dircache *dc, const char *path, size_t len,
                                       uint64_t h)
{
	for (struct sm_dircache_ent *e = dc->tab[h % dc->nb]; e; e = e->hnext)
		if (e->hash == h && e->len == len && memcmp(e->path, path, len) == 0)
			return e;
	return NULL;
}

/* Double the table when it is full; stays as it is when memory is short. */
static void dc_grow(struct sm_dircache *dc)
{
	if (dc->count < dc->nb)
		return;
	size_t nb = dc->nb * 2;
	struct sm_dircache_ent **tab = calloc(nb, sizeof(*tab));
	if (!tab)
		return;
	for (size_t i = 0; i < dc->nb; i++) {
		struct sm_dircache_ent *e = dc->tab[i];
		while (e) {
			struct sm_dircache_ent *n = e->hnext;
			e->hnext = tab[e->hash % nb];
			tab[e->hash % nb] = e;
			e = n;
		}
	}
	free(dc->tab);
	dc->tab = tab;
	dc->nb = nb;
}

static void dc_unlink(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	struct sm_dircache_ent **pp = &dc->tab[e->hash % dc->nb];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	e->linked = false;
	dc->count--;
}

static void dc_idle_remove(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		dc->idle_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		dc->idle_tail = e->prev;
	e->prev = e->next = NULL;
}

static void dc_idle_push(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	e->prev = NULL;
	e->next = dc->idle_head;
	if (dc->idle_head)
		dc->idle_head->prev = e;
	else
		dc->idle_tail = e;
	dc->idle_head = e;
}

/* Evict unreferenced entries, oldest first, down to the budget; never the
 * one released last. */
static void dc_evict(struct sm_dircache *dc)
{
	while (dc->bytes > dc->budget && dc->idle_tail && dc->idle_tail != dc->idle_head) {
		struct sm_dircache_ent *e = dc->idle_tail;
		dc_idle_remove(dc, e);
		dc_unlink(dc, e);
		dc->st.evictions++;
		dc_destroy(dc, e);
	}
}

struct sm_dircache_ent *sm_dircache_get(struct sm_dircache *dc, const char *path, size_t len,
                                        bool *load)
{
	uint64_t h = dc_hash(path, len);
	struct sm_dircache_ent *e;
	pthread_mutex_lock(&dc->mu);
	for (;;) {
		e = dc_find(dc, path, len, h);
		if (!e || e->ready)
			break;
		/* another cursor is reading it: wait for its load (or its
		 * failure, after which the entry is gone and we read it) */
		pthread_cond_wait(&dc->cv, &dc->mu);
	}
	if (e) {
		if (e->refs == 0)
			dc_idle_remove(dc, e);
		e->refs++;
		dc->st.hits++;
		*load = false;
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (e)
		e->path = malloc(len + 1);
	if (!e || !e->path) {
		free(e);
		e = NULL;
		goto out;
	}
	memcpy(e->path, path, len);
	e->path[len] = '\0';
	e->len = len;
	e->hash = h;
	e->refs = 1;
	dc_grow(dc);
	e->hnext = dc->tab[h % dc->nb];
	dc->tab[h % dc->nb] = e;
	e->linked = true;
	dc->count++;
	dc->st.loads++;
	*load = true;
out:
	pthread_mutex_unlock(&dc->mu);
	return e;
}

void *sm_dircache_val(const struct sm_dircache_ent *e)
{
	return e->val;
}

void sm_dircache_fill(struct sm_dircache *dc, struct sm_dircache_ent *e, void *val, size_t bytes)
{
	pthread_mutex_lock(&dc->mu);
	e->val = val;
	e->bytes = bytes + sizeof(*e) + e->len + 1;
	e->ready = true;
	dc->bytes += e->bytes;
	pthread_cond_broadcast(&dc->cv);
	dc_evict(dc);
	pthread_mutex_unlock(&dc->mu);
}

void sm_dircache_abandon(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	pthread_mutex_lock(&dc->mu);
	if (e->linked)
		dc_unlink(dc, e);
	pthread_cond_broadcast(&dc->cv);
	dc_destroy(dc, e); /* waiters hold no reference: it was the only one */
	pthread_mutex_unlock(&dc->mu);
}

void sm_dircache_stale(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	pthread_mutex_lock(&dc->mu);
	if (e->linked)
		dc_unlink(dc, e);
	if (--e->refs == 0)
		dc_destroy(dc, e);
	pthread_mutex_unlock(&dc->mu);
}

void sm_dircache_release(struct sm_dircache *dc, struct sm_dircache_ent *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&dc->mu);
	if (--e->refs == 0) {
		if (!e->linked) {
			dc_destroy(dc, e); /* stale: the holders are done with it */
		} else {
			dc_idle_push(dc, e);
			dc_evict(dc);
		}
	}
	pthread_mutex_unlock(&dc->mu);
}

void sm_dircache_stats(struct sm_dircache *dc, struct sm_dircache_stats *out)
{
	pthread_mutex_lock(&dc->mu);
	*out = dc->st;
	out->bytes = dc->bytes;
	pthread_mutex_unlock(&dc->mu);
}
