#include "lister.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../common/util.h"

#define LISTER_RING 4096      /* entries buffered per shard */
#define LISTER_LOOKAHEAD 1024 /* items the main cursor runs ahead */

/* One item of the ordered stream: an entry, or a per-entry listing error. */
struct litem {
	struct sm_entry e; /* deep copy; e.key NULL for an error */
	enum sm_err err;
	char *msg;
	struct shard *shard; /* splice this shard's entries right after e */
};

struct shard {
	char *prefix; /* "dir/" */
	struct litem *ring;
	size_t head;
	size_t n;
	bool done;
	bool cancel; /* the consumer skipped it: stop listing */
	struct shard *next_job;
};

struct sm_lister {
	struct sm_store *st;
	int depth;
	int nthreads;
	struct sm_cursor *main;
	bool main_done;
	struct litem *la; /* lookahead ring of main items */
	size_t la_head;
	size_t la_n;
	int shards_open;
	struct shard *cur; /* shard being spliced */
	struct shard *jobs_head;
	struct shard *jobs_tail;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* any change: job queued, data, space, stop */
	pthread_t *th;
	int started;
	bool stop;
	struct litem out; /* the item last returned (owned) */
	struct sm_buf prev;
	bool have_prev;
};

static void litem_release(struct litem *it)
{
	sm_entry_release(&it->e);
	free(it->msg);
	memset(it, 0, sizeof(*it));
}

static enum sm_err litem_error(struct litem *it, enum sm_err err, const char *msg)
{
	memset(it, 0, sizeof(*it));
	it->err = err;
	it->msg = strdup(msg);
	return it->msg ? SM_OK : SM_ENOMEM;
}

static void shard_free(struct shard *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		litem_release(&s->ring[(s->head + i) % LISTER_RING]);
	free(s->ring);
	free(s->prefix);
	free(s);
}

/* Append to a shard's ring, waiting for room (mu held). False when stopping. */
static bool shard_put(struct sm_lister *l, struct shard *s, struct litem *it)
{
	while (s->n == LISTER_RING && !l->stop && !s->cancel)
		pthread_cond_wait(&l->cv, &l->mu);
	if (l->stop || s->cancel)
		return false;
	s->ring[(s->head + s->n) % LISTER_RING] = *it;
	s->n++;
	pthread_cond_broadcast(&l->cv);
	return true;
}

static void lister_run_shard(struct sm_lister *l, struct shard *s)
{
	struct sm_range r = { .after = s->prefix };
	struct sm_cursor *c = NULL;
	struct sm_diag d;
	size_t plen = strlen(s->prefix);
	struct litem it;
	enum sm_err err = sm_store_list_begin(l->st, &r, &c, &d);
	if (err != SM_OK) {
		litem_error(&it, err, d.msg);
		pthread_mutex_lock(&l->mu);
		if (!shard_put(l, s, &it))
			litem_release(&it);
		goto done;
	}
	for (;;) {
		const struct sm_entry *e = NULL;
		err = sm_store_list_next(c, &e, &d);
		if (err == SM_EOF)
			break;
		if (err == SM_OK && strncmp(e->key, s->prefix, plen) != 0)
			break; /* past the subtree */
		if (err == SM_OK) {
			memset(&it, 0, sizeof(it));
			if (sm_entry_copy(&it.e, e) != SM_OK)
				err = SM_ENOMEM;
		}
		if (err != SM_OK)
			litem_error(&it, err, err == SM_ENOMEM ? "out of memory" : d.msg);
		pthread_mutex_lock(&l->mu);
		bool ok = shard_put(l, s, &it);
		pthread_mutex_unlock(&l->mu);
		if (!ok) {
			litem_release(&it);
			break;
		}
		if (err == SM_EORDER || err == SM_ENOMEM)
			break;
	}
	pthread_mutex_lock(&l->mu);
done:
	s->done = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	sm_store_list_end(c);
}

static void *lister_thread(void *arg)
{
	struct sm_lister *l = arg;
	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (!l->jobs_head && !l->stop)
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->stop)
			break;
		struct shard *s = l->jobs_head;
		l->jobs_head = s->next_job;
		if (!l->jobs_head)
			l->jobs_tail = NULL;
		pthread_mutex_unlock(&l->mu);
		lister_run_shard(l, s);
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

enum sm_err sm_lister_open(struct sm_store *st, const struct sm_range *r, int threads, int depth,
                           struct sm_lister **out, struct sm_diag *d)
{
	struct sm_lister *l = calloc(1, sizeof(*l));
	if (!l)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	l->st = st;
	l->depth = depth;
	l->nthreads = sm_store_can_skip(st) ? threads : 1;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	enum sm_err err = sm_store_list_begin(st, r, &l->main, d);
	if (err != SM_OK)
		goto fail;
	if (l->nthreads > 1) {
		l->la = calloc(LISTER_LOOKAHEAD, sizeof(*l->la));
		l->th = calloc((size_t)l->nthreads, sizeof(*l->th));
		if (!l->la || !l->th) {
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto fail;
		}
		for (int i = 0; i < l->nthreads; i++) {
			if (pthread_create(&l->th[i], NULL, lister_thread, l) != 0) {
				err = sm_diag_set(d, SM_ENOMEM, 0, "cannot start lister threads");
				goto fail;
			}
			l->started++;
		}
	}
	*out = l;
	return SM_OK;
fail:
	sm_lister_close(l);
	return err;
}

/* Pull main-cursor items into the lookahead, creating shards as they come. */
static enum sm_err lister_fill(struct sm_lister *l)
{
	while (!l->main_done && l->la_n < LISTER_LOOKAHEAD && l->shards_open < 2 * l->nthreads) {
		const struct sm_entry *e = NULL;
		struct sm_diag d;
		struct litem it = { 0 };
		enum sm_err err = sm_store_list_next(l->main, &e, &d);
		if (err == SM_EOF) {
			l->main_done = true;
			break;
		}
		if (err != SM_OK) {
			if (litem_error(&it, err, d.msg) != SM_OK)
				return SM_ENOMEM;
			if (err == SM_EORDER || err == SM_ENOMEM)
				l->main_done = true;
		} else {
			if (sm_entry_copy(&it.e, e) != SM_OK)
				return SM_ENOMEM;
			if (S_ISDIR(e->mode) && sm_key_depth(e->key) == l->depth) {
				struct shard *s = calloc(1, sizeof(*s));
				if (!s || !(s->ring = calloc(LISTER_RING, sizeof(*s->ring))) ||
				    !(s->prefix = strdup(e->key))) {
					shard_free(s);
					litem_release(&it);
					return SM_ENOMEM;
				}
				sm_store_list_skip(l->main);
				it.shard = s;
				pthread_mutex_lock(&l->mu);
				if (l->jobs_tail)
					l->jobs_tail->next_job = s;
				else
					l->jobs_head = s;
				l->jobs_tail = s;
				l->shards_open++;
				pthread_cond_broadcast(&l->cv);
				pthread_mutex_unlock(&l->mu);
			}
		}
		l->la[(l->la_head + l->la_n) % LISTER_LOOKAHEAD] = it;
		l->la_n++;
	}
	return SM_OK;
}

/* The next item in global order, moved into l->out. SM_EOF at the end. */
static enum sm_err lister_take(struct sm_lister *l)
{
	for (;;) {
		if (l->cur) {
			struct shard *s = l->cur;
			pthread_mutex_lock(&l->mu);
			while (s->n == 0 && !s->done)
				pthread_cond_wait(&l->cv, &l->mu);
			if (s->n) {
				l->out = s->ring[s->head];
				memset(&s->ring[s->head], 0, sizeof(s->ring[0]));
				s->head = (s->head + 1) % LISTER_RING;
				s->n--;
				pthread_cond_broadcast(&l->cv);
				pthread_mutex_unlock(&l->mu);
				return SM_OK;
			}
			l->shards_open--;
			pthread_mutex_unlock(&l->mu);
			shard_free(s);
			l->cur = NULL;
		}
		if (lister_fill(l) != SM_OK)
			return SM_ENOMEM;
		if (l->la_n == 0)
			return SM_EOF;
		l->out = l->la[l->la_head];
		memset(&l->la[l->la_head], 0, sizeof(l->la[0]));
		l->la_head = (l->la_head + 1) % LISTER_LOOKAHEAD;
		l->la_n--;
		l->cur = l->out.shard;
		l->out.shard = NULL;
		return SM_OK;
	}
}

enum sm_err sm_lister_next(struct sm_lister *l, const struct sm_entry **e, struct sm_diag *d)
{
	if (l->nthreads <= 1)
		return sm_store_list_next(l->main, e, d);
	litem_release(&l->out);
	enum sm_err err = lister_take(l);
	if (err == SM_ENOMEM)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	if (err != SM_OK)
		return err;
	if (l->out.err != SM_OK)
		return sm_diag_set(d, l->out.err, 0, "%s",
		                   l->out.msg ? l->out.msg : "listing failed");
	/* The splice must keep the global order: check it like the cursors do. */
	if (l->have_prev && strcmp(l->prev.p, l->out.e.key) >= 0)
		return sm_diag_set(d, SM_EORDER, 0,
		                   "parallel listing out of order: '%s' after '%s'", l->out.e.key,
		                   l->prev.p);
	l->prev.len = 0;
	if (sm_buf_appendz(&l->prev, l->out.e.key) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	l->have_prev = true;
	*e = &l->out.e;
	return SM_OK;
}

void sm_lister_skip(struct sm_lister *l)
{
	if (l->nthreads <= 1) {
		sm_store_list_skip(l->main);
		return;
	}
	struct shard *s = l->cur;
	if (!s || !l->out.e.key || strcmp(s->prefix, l->out.e.key) != 0)
		return; /* above the shard depth: already being listed */
	pthread_mutex_lock(&l->mu);
	s->cancel = true;
	/* Not picked up yet: unlink it so no lister thread ever does. */
	for (struct shard **pp = &l->jobs_head, *prev = NULL; *pp;
	     prev = *pp, pp = &(*pp)->next_job) {
		if (*pp != s)
			continue;
		*pp = s->next_job;
		if (l->jobs_tail == s)
			l->jobs_tail = prev;
		s->done = true;
		break;
	}
	pthread_cond_broadcast(&l->cv);
	while (!s->done)
		pthread_cond_wait(&l->cv, &l->mu);
	l->shards_open--;
	pthread_mutex_unlock(&l->mu);
	shard_free(s);
	l->cur = NULL;
}

void sm_lister_close(struct sm_lister *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	for (int i = 0; i < l->started; i++)
		pthread_join(l->th[i], NULL);
	/* Shards are owned by the lookahead items (and l->cur); the job queue
	 * only links them. */
	shard_free(l->cur);
	for (size_t i = 0; l->la && i < l->la_n; i++) {
		struct litem *it = &l->la[(l->la_head + i) % LISTER_LOOKAHEAD];
		shard_free(it->shard);
		litem_release(it);
	}
	litem_release(&l->out);
	sm_store_list_end(l->main);
	sm_buf_release(&l->prev);
	free(l->la);
	free(l->th);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}
