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

struct dtask {
	uint64_t id;
	uint64_t attempt; /* of the latest hand-out */
	uint8_t *reply;   /* the packed Reply{task}, SM_WIRE_REPLY_ROOM spare bytes */
	size_t len;
	uint64_t keys;
	uint64_t lease_deadline;
	struct sm_stats live; /* cumulative, from progress reports */
	struct dtask *next;
	struct dtask *prev;
};

struct dlist {
	struct dtask *head;
	struct dtask *tail;
	size_t n;
};

enum dctx_state { DCTX_RECV, DCTX_SEND, DCTX_PARKED };

struct dctx {
	struct sm_dispatch *dp;
	nng_ctx ctx;
	nng_aio *aio;
	enum dctx_state state;
	uint64_t park_deadline;
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

/* Hand the first pending task to `c` (mu held, a task pending). */
static void dispatch_hand_out(struct sm_dispatch *dp, struct dctx *c)
{
	struct dtask *t = dp->pending.head;
	dlist_remove(&dp->pending, t);
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
			dispatch_hand_out(dp, c);
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
	switch (req->body_case) {
	case SYNCMGR__REQUEST__BODY_GET:
		if (dp->pending.n && !dp->aborted) {
			dispatch_hand_out(dp, c);
		} else if (dispatch_all_done(dp)) {
			dispatch_send_shutdown(dp, c);
		} else {
			c->state = DCTX_PARKED;
			c->park_deadline = sm_now_ns() + (uint64_t)DISPATCH_PARK_MS * 1000000u;
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

/* Expire leases and parked requests. */
static void *dispatch_timer(void *arg)
{
	struct sm_dispatch *dp = arg;
	pthread_mutex_lock(&dp->mu);
	while (!dp->closing) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += DISPATCH_TICK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&dp->timer_cv, &dp->mu, &ts);
		if (dp->closing)
			break;
		uint64_t now = sm_now_ns();
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

enum sm_err sm_dispatch_start(const struct sm_dispatch_cfg *cfg, struct sm_dispatch **out,
                              struct sm_diag *d)
{
	struct sm_dispatch *dp = calloc(1, sizeof(*dp));
	if (!dp)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	dp->cfg = *cfg;
	dp->next_id = 1;
	dp->next_attempt = 1;
	/* Recursive: nng runs a completion inline when an aio is being stopped,
	 * which may happen while a callback holds the lock during shutdown. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&dp->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&dp->cv, NULL);
	pthread_cond_init(&dp->timer_cv, NULL);
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
	free(dp);
}
