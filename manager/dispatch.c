#include "dispatch.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../worker/wire.h"
#include "journal.h"

#define DISPATCH_NCTX 64     /* concurrent requests in service */
#define DISPATCH_PARK_MS 500 /* a GetTask waits this long for work, then Wait */
#define DISPATCH_TICK_MS 50
#define DISPATCH_MAX_WORKERS 1024  /* names beyond these count as the last one's */
#define DISPATCH_FAIL_KEY_MAX 4096 /* bytes of a failed key a worker reports (PATH_MAX) */
#define DISPATCH_FAIL_MSG_MAX 1024 /* and of its message (longer: cut) */
/* A timer tick this late means this process was stopped (SIGSTOP, a
 * suspended VM) or starved: no worker could renew meanwhile, so every lease
 * is extended by the gap instead of expiring (at most a quarter lease). */
#define DISPATCH_PAUSE_MS 1000

struct dtask {
	uint64_t id;
	uint64_t attempt; /* of the latest hand-out */
	uint8_t *reply;   /* the packed Reply{task}, SM_WIRE_REPLY_ROOM spare bytes */
	size_t len;
	uint64_t keys;
	uint64_t lease_deadline;
	size_t worker;        /* who runs it (index in workers), while in flight */
	struct sm_stats live; /* cumulative, from progress reports */
	struct dtask *next;
	struct dtask *prev;
};

struct dlist {
	struct dtask *head;
	struct dtask *tail;
	size_t n;
};

/* A participant of the run: the manager's own threads ("local") or a
 * remote worker, known by the name its requests carry. */
struct dworker {
	char *name;
	struct sm_stats done; /* of its finished tasks */
	uint64_t tasks;       /* finished */
	unsigned transfers;   /* copies in progress, from its last progress report */
};

enum dctx_state { DCTX_RECV, DCTX_SEND, DCTX_PARKED };

struct dctx {
	struct sm_dispatch *dp;
	nng_ctx ctx;
	nng_aio *aio;
	enum dctx_state state;
	uint64_t park_deadline;
	size_t worker; /* who asks, while parked */
	struct dctx *next_parked;
};

struct sm_dispatch {
	struct sm_dispatch_cfg cfg;
	nng_socket sock;
	struct dctx ctxs[DISPATCH_NCTX];
	int nctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dlist pending;
	struct dlist inflight;
	struct dctx *parked;
	uint64_t next_id;
	uint64_t next_attempt;
	uint64_t queued_keys;
	struct sm_stats done;
	struct dworker *workers; /* [0] is "local" */
	size_t nworkers;
	size_t capworkers;
	struct sm_dispatch_failure *fails; /* the run's first failed keys */
	size_t nfails;
	bool finished;
	bool aborted;
	bool no_delete;
	bool listing_failed;
	bool closing;
	pthread_t timer;
	bool timer_started;
	pthread_cond_t timer_cv; /* wakes the timer at once when closing */
};

static void dlist_push_back(struct dlist *l, struct dtask *t)
{
	t->next = NULL;
	t->prev = l->tail;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

static void dlist_push_front(struct dlist *l, struct dtask *t)
{
	t->prev = NULL;
	t->next = l->head;
	if (l->head)
		l->head->prev = t;
	else
		l->tail = t;
	l->head = t;
	l->n++;
}

static void dlist_remove(struct dlist *l, struct dtask *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		l->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		l->tail = t->prev;
	t->next = t->prev = NULL;
	l->n--;
}

static struct dtask *dlist_find(struct dlist *l, uint64_t id)
{
	for (struct dtask *t = l->head; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static void dtask_free(struct dtask *t)
{
	if (!t)
		return;
	free(t->reply);
	free(t);
}

static char *dispatch_strdup_len(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The index of the worker called `name` ("" or NULL: "local"), added when
 * new (mu held). Out of memory or past the cap: the last one known. */
static size_t dispatch_worker(struct sm_dispatch *dp, const char *name)
{
	if (!name || !*name)
		return 0;
	for (size_t i = 0; i < dp->nworkers; i++)
		if (strcmp(dp->workers[i].name, name) == 0)
			return i;
	if (dp->nworkers == DISPATCH_MAX_WORKERS)
		return dp->nworkers - 1;
	if (dp->nworkers == dp->capworkers) {
		size_t cap = dp->capworkers * 2;
		struct dworker *v = realloc(dp->workers, cap * sizeof(*v));
		if (!v)
			return dp->nworkers - 1;
		dp->workers = v;
		dp->capworkers = cap;
	}
	struct dworker *w = &dp->workers[dp->nworkers];
	memset(w, 0, sizeof(*w));
	w->name = strdup(name);
	if (!w->name)
		return dp->nworkers - 1;
	return dp->nworkers++;
}

/* Keep a failed key among the run's first SM_DISPATCH_FAILED_KEYS (mu held). */
static void dispatch_note_failure(struct sm_dispatch *dp, size_t worker, const void *key,
                                  size_t key_len, const void *msg, size_t msg_len)
{
	if (dp->nfails == SM_DISPATCH_FAILED_KEYS || key_len > DISPATCH_FAIL_KEY_MAX)
		return; /* a longer key is no key: counted, not listed */
	if (msg_len > DISPATCH_FAIL_MSG_MAX)
		msg_len = DISPATCH_FAIL_MSG_MAX;
	struct sm_dispatch_failure *f = &dp->fails[dp->nfails];
	f->key = dispatch_strdup_len(key, key_len);
	f->msg = dispatch_strdup_len(msg, msg_len);
	if (!f->key || !f->msg) {
		free(f->key);
		free(f->msg);
		return;
	}
	f->key_len = key_len;
	f->worker = dp->workers[worker].name;
	dp->nfails++;
}

/* Send `buf` as the reply on `c` (mu held). */
static void dctx_send(struct dctx *c, const uint8_t *buf, size_t len)
{
	nng_msg *m = NULL;
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, buf, len) != 0) {
		nng_msg_free(m);
		c->state = DCTX_RECV; /* the requester times out and asks again */
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	nng_aio_set_msg(c->aio, m);
	c->state = DCTX_SEND;
	nng_ctx_send(c->ctx, c->aio);
}

static void dctx_send_reply(struct dctx *c, const Syncmgr__Reply *rep)
{
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_reply(rep, &len);
	if (!buf) {
		c->state = DCTX_RECV;
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	dctx_send(c, buf, len);
	free(buf);
}

/* Ack; `revoked`: the task the request named is no longer the sender's. */
static void dispatch_send_ack_revoked(struct sm_dispatch *dp, struct dctx *c, bool revoked)
{
	Syncmgr__Ack ack = SYNCMGR__ACK__INIT;
	ack.abort = dp->aborted;
	ack.revoked = revoked;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_ACK;
	rep.ack = &ack;
	dctx_send_reply(c, &rep);
}

static void dispatch_send_ack(struct sm_dispatch *dp, struct dctx *c)
{
	dispatch_send_ack_revoked(dp, c, false);
}

static void dispatch_send_shutdown(struct sm_dispatch *dp, struct dctx *c)
{
	Syncmgr__Shutdown sh = SYNCMGR__SHUTDOWN__INIT;
	sh.abort = dp->aborted;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_SHUTDOWN;
	rep.shutdown = &sh;
	dctx_send_reply(c, &rep);
}

static void dispatch_send_wait(struct dctx *c)
{
	Syncmgr__Wait w = SYNCMGR__WAIT__INIT;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_WAIT;
	rep.wait = &w;
	dctx_send_reply(c, &rep);
}

/* How long a GetTask waits for work before Wait: well within the worker's
 * receive timeout (a quarter lease). */
static uint64_t dispatch_park_ns(const struct sm_dispatch *dp)
{
	uint64_t ns = (uint64_t)DISPATCH_PARK_MS * 1000000u;
	uint64_t cap = (uint64_t)dp->cfg.lease_ms * 125000u; /* lease / 8 */
	return ns < cap ? ns : cap;
}

/* Hand the first pending task to `c`, for `worker` (mu held, a task
 * pending). */
static void dispatch_hand_out(struct sm_dispatch *dp, struct dctx *c, size_t worker)
{
	struct dtask *t = dp->pending.head;
	dlist_remove(&dp->pending, t);
	t->worker = worker;
	dp->queued_keys -= t->keys;
	t->lease_deadline = sm_now_ns() + (uint64_t)dp->cfg.lease_ms * 1000000u;
	memset(&t->live, 0, sizeof(t->live));
	dlist_push_back(&dp->inflight, t);
	t->attempt = dp->next_attempt++;
	/* Protobuf merges concatenated messages: append allow_delete and attempt
	 * (varints) to the packed Reply instead of re-packing the whole task. */
	size_t len = t->len;
	if (!dp->no_delete)
		len = sm_wire_append_varint(t->reply, len, 10, 1);
	len = sm_wire_append_varint(t->reply, len, 11, t->attempt);
	dctx_send(c, t->reply, len);
	pthread_cond_broadcast(&dp->cv); /* room in the queue */
}

static bool dispatch_all_done(const struct sm_dispatch *dp)
{
	return (dp->finished && dp->pending.n == 0 && dp->inflight.n == 0) || dp->aborted;
}

/* Answer parked GetTask requests that can be answered now (mu held). */
static void dispatch_serve_parked(struct sm_dispatch *dp, bool expire)
{
	uint64_t now = sm_now_ns();
	struct dctx **pp = &dp->parked;
	while (*pp) {
		struct dctx *c = *pp;
		if (dp->pending.n && !dp->aborted) {
			*pp = c->next_parked;
			dispatch_hand_out(dp, c, c->worker);
		} else if (dispatch_all_done(dp)) {
			*pp = c->next_parked;
			dispatch_send_shutdown(dp, c);
		} else if (expire && now >= c->park_deadline) {
			*pp = c->next_parked;
			dispatch_send_wait(c);
		} else {
			pp = &c->next_parked;
		}
	}
}

static void dispatch_check_failures(struct sm_dispatch *dp)
{
	if (!dp->cfg.max_failure || dp->aborted)
		return;
	uint64_t failed = dp->done.failed;
	for (struct dtask *t = dp->inflight.head; t; t = t->next)
		failed += t->live.failed;
	if (failed >= dp->cfg.max_failure) {
		sm_log(SM_LOG_ERROR, "%llu keys failed (--max-failure %llu): stopping",
		       (unsigned long long)failed, (unsigned long long)dp->cfg.max_failure);
		dp->aborted = true;
		pthread_cond_broadcast(&dp->cv);
	}
}

/* Handle one request (mu held). Replies, or parks `c`. */
static void dispatch_handle(struct sm_dispatch *dp, struct dctx *c, const Syncmgr__Request *req)
{
	size_t worker = dispatch_worker(dp, req->worker);
	switch (req->body_case) {
	case SYNCMGR__REQUEST__BODY_GET:
		if (dp->pending.n && !dp->aborted) {
			dispatch_hand_out(dp, c, worker);
		} else if (dispatch_all_done(dp)) {
			dispatch_send_shutdown(dp, c);
		} else {
			c->state = DCTX_PARKED;
			c->worker = worker;
			c->park_deadline = sm_now_ns() + dispatch_park_ns(dp);
			c->next_parked = dp->parked;
			dp->parked = c;
		}
		return;
	case SYNCMGR__REQUEST__BODY_PROGRESS: {
		uint64_t lease = sm_now_ns() + (uint64_t)dp->cfg.lease_ms * 1000000u;
		for (size_t i = 0; i < req->progress->n_tasks; i++) {
			const Syncmgr__TaskProgress *tp = req->progress->tasks[i];
			struct dtask *t = dlist_find(&dp->inflight, tp->task_id);
			if (!t)
				continue; /* done already, or re-queued */
			t->lease_deadline = lease;
			sm_wire_stats_from_pb(tp->stats, &t->live);
		}
		dp->workers[worker].transfers = req->progress->transfers;
		dispatch_check_failures(dp);
		dispatch_send_ack(dp, c);
		return;
	}
	case SYNCMGR__REQUEST__BODY_DONE: {
		const Syncmgr__Done *dn = req->done;
		struct dtask *t = dlist_find(&dp->inflight, dn->task_id);
		struct dlist *from = &dp->inflight;
		if (!t && (t = dlist_find(&dp->pending, dn->task_id))) {
			from = &dp->pending; /* re-queued, but its first runner finished */
			dp->queued_keys -= t->keys;
		}
		if (t) {
			dlist_remove(from, t);
			dtask_free(t);
			struct sm_stats st;
			sm_wire_stats_from_pb(dn->stats, &st);
			sm_stats_add(&dp->done, &st);
			sm_stats_add(&dp->workers[worker].done, &st);
			dp->workers[worker].tasks++;
			for (size_t i = 0; i < dn->n_failed_keys; i++)
				dispatch_note_failure(dp, worker, dn->failed_keys[i]->key.data,
				                      dn->failed_keys[i]->key.len,
				                      dn->failed_keys[i]->error.data,
				                      dn->failed_keys[i]->error.len);
			if (dn->listing_failed) {
				dp->listing_failed = true;
				dp->no_delete = true;
			}
			if (dn->abort && !dp->aborted) {
				dp->aborted = true;
				pthread_cond_broadcast(&dp->cv);
			}
			/* this attempt's deletes are the task's */
			sm_journal_accept(dp->cfg.journal, dn->attempt);
			dispatch_check_failures(dp);
			pthread_cond_broadcast(&dp->cv);
		}
		dispatch_send_ack(dp, c);
		dispatch_serve_parked(dp, false);
		return;
	}
	case SYNCMGR__REQUEST__BODY_DELETES: {
		const Syncmgr__Deletes *dl = req->deletes;
		bool live = dlist_find(&dp->inflight, dl->task_id) ||
		            dlist_find(&dp->pending, dl->task_id);
		if (live && dl->attempt)
			sm_journal_add(dp->cfg.journal, dl->attempt, dl->keys, dl->n_keys);
		dispatch_send_ack_revoked(dp, c, !live);
		return;
	}
	default: dispatch_send_ack(dp, c); return;
	}
}

static void dctx_cb(void *arg)
{
	struct dctx *c = arg;
	struct sm_dispatch *dp = c->dp;
	int rv = nng_aio_result(c->aio);
	pthread_mutex_lock(&dp->mu);
	if (c->state == DCTX_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		c->state = DCTX_RECV;
		if (!dp->closing)
			nng_ctx_recv(c->ctx, c->aio);
		pthread_mutex_unlock(&dp->mu);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && !dp->closing)
			nng_ctx_recv(c->ctx, c->aio);
		pthread_mutex_unlock(&dp->mu);
		return;
	}
	nng_msg *m = nng_aio_get_msg(c->aio);
	Syncmgr__Request *req = NULL;
	if (nng_msg_len(m) <= SM_WIRE_MAX_MSG)
		req = syncmgr__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	if (!req) {
		sm_log(SM_LOG_WARN, "dropped a malformed request from a worker");
		nng_ctx_recv(c->ctx, c->aio);
	} else {
		dispatch_handle(dp, c, req);
		syncmgr__request__free_unpacked(req, NULL);
	}
	pthread_mutex_unlock(&dp->mu);
}

/* The manager itself was not running for `gap` ns (mu held): nobody could
 * renew a lease meanwhile, so every deadline moves by the gap. */
static void dispatch_paused(struct sm_dispatch *dp, uint64_t gap)
{
	sm_log(SM_LOG_DEBUG, "dispatch: this process did not run for %.1f s: leases extended",
	       (double)gap / 1e9);
	for (struct dtask *t = dp->inflight.head; t; t = t->next)
		t->lease_deadline += gap;
}

/* Expire leases and parked requests. */
static void *dispatch_timer(void *arg)
{
	struct sm_dispatch *dp = arg;
	uint64_t pause_ns = (uint64_t)DISPATCH_PAUSE_MS * 1000000u;
	if (pause_ns > (uint64_t)dp->cfg.lease_ms * 250000u)
		pause_ns = (uint64_t)dp->cfg.lease_ms * 250000u;
	pthread_mutex_lock(&dp->mu);
	uint64_t last = sm_now_ns();
	while (!dp->closing) {
		sm_cond_wait_ms(&dp->timer_cv, &dp->mu, DISPATCH_TICK_MS);
		if (dp->closing)
			break;
		uint64_t now = sm_now_ns();
		uint64_t expected = last + (uint64_t)DISPATCH_TICK_MS * 1000000u;
		if (now > expected && now - expected > pause_ns)
			dispatch_paused(dp, now - last);
		last = now;
		for (struct dtask *t = dp->inflight.head; t;) {
			struct dtask *next = t->next;
			if (now > t->lease_deadline) {
				sm_log(SM_LOG_WARN,
				       "task %llu: lease expired, handing it out again",
				       (unsigned long long)t->id);
				dlist_remove(&dp->inflight, t);
				dlist_push_front(&dp->pending, t);
				dp->queued_keys += t->keys;
			}
			t = next;
		}
		dispatch_serve_parked(dp, true);
	}
	pthread_mutex_unlock(&dp->mu);
	return NULL;
}

static void dispatch_free_lists(struct sm_dispatch *dp)
{
	for (size_t i = 0; i < dp->nworkers; i++)
		free(dp->workers[i].name);
	free(dp->workers);
	for (size_t i = 0; i < dp->nfails; i++) {
		free(dp->fails[i].key);
		free(dp->fails[i].msg);
	}
	free(dp->fails);
}

enum sm_err sm_dispatch_start(const struct sm_dispatch_cfg *cfg, struct sm_dispatch **out,
                              struct sm_diag *d)
{
	struct sm_dispatch *dp = calloc(1, sizeof(*dp));
	if (!dp)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	dp->cfg = *cfg;
	dp->next_id = 1;
	dp->next_attempt = 1;
	dp->capworkers = 4;
	dp->workers = calloc(dp->capworkers, sizeof(*dp->workers));
	dp->fails = calloc(SM_DISPATCH_FAILED_KEYS, sizeof(*dp->fails));
	if (!dp->workers || !dp->fails || !(dp->workers[0].name = strdup("local"))) {
		if (dp->workers)
			free(dp->workers[0].name);
		free(dp->workers);
		free(dp->fails);
		free(dp);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	dp->nworkers = 1;
	/* Recursive: nng runs a completion inline when an aio is being stopped,
	 * which may happen while a callback holds the lock during shutdown. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&dp->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&dp->cv, NULL);
	sm_cond_init_mono(&dp->timer_cv);
	enum sm_err err = SM_OK;
	int rv = nng_rep0_open(&dp->sock);
	if (rv != 0) {
		err = sm_diag_set(d, SM_EIO, rv, "cannot open the dispatch socket: %s",
		                  nng_strerror(rv));
		goto fail_nosock;
	}
	nng_socket_set_size(dp->sock, NNG_OPT_RECVMAXSZ, SM_WIRE_MAX_MSG);
	rv = nng_listen(dp->sock, cfg->url, NULL, 0);
	if (rv != 0) {
		err = sm_diag_set(d, SM_EIO, rv, "cannot listen on %s: %s", cfg->url,
		                  nng_strerror(rv));
		goto fail;
	}
	for (int i = 0; i < DISPATCH_NCTX; i++) {
		struct dctx *c = &dp->ctxs[i];
		c->dp = dp;
		if ((rv = nng_aio_alloc(&c->aio, dctx_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->ctx, dp->sock)) != 0) {
			if (c->aio)
				nng_aio_free(c->aio);
			c->aio = NULL;
			err = sm_diag_set(d, SM_EIO, rv, "cannot set up dispatch: %s",
			                  nng_strerror(rv));
			goto fail;
		}
		dp->nctx++;
	}
	if (pthread_create(&dp->timer, NULL, dispatch_timer, dp) != 0) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "cannot start the dispatch timer");
		goto fail;
	}
	dp->timer_started = true;
	pthread_mutex_lock(&dp->mu);
	for (int i = 0; i < dp->nctx; i++) {
		dp->ctxs[i].state = DCTX_RECV;
		nng_ctx_recv(dp->ctxs[i].ctx, dp->ctxs[i].aio);
	}
	pthread_mutex_unlock(&dp->mu);
	*out = dp;
	return SM_OK;
fail:
	sm_dispatch_stop(dp);
	return err;
fail_nosock:
	pthread_mutex_destroy(&dp->mu);
	pthread_cond_destroy(&dp->cv);
	pthread_cond_destroy(&dp->timer_cv);
	dispatch_free_lists(dp);
	free(dp);
	return err;
}

enum sm_err sm_dispatch_push(struct sm_dispatch *dp, Syncmgr__Task *t, struct sm_diag *d)
{
	struct dtask *dt = calloc(1, sizeof(*dt));
	if (!dt)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	pthread_mutex_lock(&dp->mu);
	while ((int)dp->pending.n >= dp->cfg.max_queued && !dp->aborted)
		pthread_cond_wait(&dp->cv, &dp->mu);
	if (dp->aborted) {
		pthread_mutex_unlock(&dp->mu);
		free(dt);
		return sm_diag_set(d, SM_EIO, 0, "run aborted");
	}
	dt->id = t->id = dp->next_id++;
	pthread_mutex_unlock(&dp->mu);

	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_TASK;
	rep.task = t;
	dt->reply = sm_wire_pack_reply(&rep, &dt->len);
	if (!dt->reply) {
		free(dt);
		return sm_diag_set(d, SM_ENOMEM, 0, "task %llu is too large to send",
		                   (unsigned long long)t->id);
	}
	dt->keys = t->n_src;

	pthread_mutex_lock(&dp->mu);
	dlist_push_back(&dp->pending, dt);
	dp->queued_keys += dt->keys;
	dispatch_serve_parked(dp, false);
	pthread_mutex_unlock(&dp->mu);
	return SM_OK;
}

bool sm_dispatch_hungry(struct sm_dispatch *dp)
{
	pthread_mutex_lock(&dp->mu);
	bool h = dp->parked && dp->pending.n == 0;
	pthread_mutex_unlock(&dp->mu);
	return h;
}

void sm_dispatch_forbid_delete(struct sm_dispatch *dp)
{
	pthread_mutex_lock(&dp->mu);
	dp->no_delete = true;
	pthread_mutex_unlock(&dp->mu);
}

void sm_dispatch_finish(struct sm_dispatch *dp)
{
	pthread_mutex_lock(&dp->mu);
	dp->finished = true;
	dispatch_serve_parked(dp, false);
	pthread_cond_broadcast(&dp->cv);
	pthread_mutex_unlock(&dp->mu);
}

void sm_dispatch_abort(struct sm_dispatch *dp)
{
	pthread_mutex_lock(&dp->mu);
	dp->aborted = true;
	dispatch_serve_parked(dp, false);
	pthread_cond_broadcast(&dp->cv);
	pthread_mutex_unlock(&dp->mu);
}

void sm_dispatch_wait(struct sm_dispatch *dp)
{
	pthread_mutex_lock(&dp->mu);
	while (!(dp->finished && dp->pending.n == 0 && dp->inflight.n == 0) && !dp->aborted)
		pthread_cond_wait(&dp->cv, &dp->mu);
	pthread_mutex_unlock(&dp->mu);
}

void sm_dispatch_snapshot(struct sm_dispatch *dp, struct sm_dispatch_snapshot *s)
{
	pthread_mutex_lock(&dp->mu);
	s->stats = dp->done;
	for (struct dtask *t = dp->inflight.head; t; t = t->next)
		sm_stats_add(&s->stats, &t->live);
	s->queued_keys = dp->queued_keys;
	s->aborted = dp->aborted;
	s->listing_failed = dp->listing_failed;
	pthread_mutex_unlock(&dp->mu);
}

size_t sm_dispatch_workers(struct sm_dispatch *dp, struct sm_dispatch_worker *out, size_t max)
{
	pthread_mutex_lock(&dp->mu);
	size_t n = dp->nworkers;
	for (size_t i = 0; i < n && i < max; i++) {
		const struct dworker *w = &dp->workers[i];
		out[i] = (struct sm_dispatch_worker){ .name = w->name,
			                              .stats = w->done,
			                              .tasks_done = w->tasks };
	}
	for (struct dtask *t = dp->inflight.head; t; t = t->next) {
		if (t->worker >= max)
			continue;
		sm_stats_add(&out[t->worker].stats, &t->live);
		out[t->worker].tasks_in_flight++;
	}
	/* a worker without a task in flight transfers nothing, whatever it
	 * said last */
	for (size_t i = 0; i < n && i < max; i++)
		if (out[i].tasks_in_flight)
			out[i].transfers = dp->workers[i].transfers;
	pthread_mutex_unlock(&dp->mu);
	return n;
}

void sm_dispatch_add_failure(struct sm_dispatch *dp, const char *key, const char *msg)
{
	pthread_mutex_lock(&dp->mu);
	dispatch_note_failure(dp, 0, key, strlen(key), msg, strlen(msg));
	pthread_mutex_unlock(&dp->mu);
}

size_t sm_dispatch_failures(struct sm_dispatch *dp, const struct sm_dispatch_failure **out)
{
	pthread_mutex_lock(&dp->mu);
	size_t n = dp->nfails;
	pthread_mutex_unlock(&dp->mu);
	*out = dp->fails;
	return n;
}

void sm_dispatch_stop(struct sm_dispatch *dp)
{
	if (!dp)
		return;
	pthread_mutex_lock(&dp->mu);
	dp->closing = true;
	pthread_cond_signal(&dp->timer_cv);
	pthread_mutex_unlock(&dp->mu);
	if (dp->timer_started)
		pthread_join(dp->timer, NULL);
	for (int i = 0; i < dp->nctx; i++)
		nng_aio_stop(dp->ctxs[i].aio);
	for (int i = 0; i < dp->nctx; i++) {
		nng_ctx_close(dp->ctxs[i].ctx);
		nng_aio_free(dp->ctxs[i].aio);
	}
	nng_close(dp->sock);
	for (struct dtask *t = dp->pending.head; t;) {
		struct dtask *n = t->next;
		dtask_free(t);
		t = n;
	}
	for (struct dtask *t = dp->inflight.head; t;) {
		struct dtask *n = t->next;
		dtask_free(t);
		t = n;
	}
	pthread_mutex_destroy(&dp->mu);
	pthread_cond_destroy(&dp->cv);
	pthread_cond_destroy(&dp->timer_cv);
	dispatch_free_lists(dp);
	free(dp);
}
