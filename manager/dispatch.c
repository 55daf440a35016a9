#include "dispatch.h"

#include <inttypes.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../worker/wire.h"
#include "journal.h"

#define DISPATCH_NCTX 64     /* concurrent requests in service */
#define DISPATCH_PARK_MS 500 /* a GetTask waits this long for work, then Wait */
#define DISPATCH_TICK_MS 50
#define DISPATCH_MAX_WORKERS 1024  /* names beyond these count as the last one's */
#define DISPATCH_MAX_SESSIONS 4096 /* worker processes known at once */
#define DISPATCH_FAIL_KEY_MAX 4096 /* bytes of a failed key a worker reports (PATH_MAX) */
#define DISPATCH_FAIL_MSG_MAX 1024 /* and of its message (longer: cut) */
/* A timer tick this late means this process was stopped (SIGSTOP, a
 * suspended VM) or starved: no worker could renew meanwhile, so every lease
 * is extended by the gap instead of expiring (at most a quarter lease). */
#define DISPATCH_PAUSE_MS 1000
/* Workers' lines waiting to be printed at most, like a pipe's buffer: a
 * Log past it waits for room (its request parked, at most
 * DISPATCH_PRINT_PARK of them; more are answered Wait and sent again), so
 * a blocked stdout holds the workers back as a full pipe would, without
 * ever blocking nng's threads. */
#define DISPATCH_PRINT_MAX (16u << 10)
#define DISPATCH_PRINT_PARK 16
#define DISPATCH_PRINT_WAIT_MS 10
#define DISPATCH_MAX_SLOTS 65536 /* task threads of one worker, for Log's seq */

struct dtask {
	uint64_t id;
	uint64_t attempt; /* the current hand-out; 0 while pending */
	uint64_t session; /* who holds it, while in flight */
	uint32_t slot;
	uint32_t del_seq; /* the next Deletes batch expected of this attempt */
	bool allow_delete;
	uint8_t *reply; /* the packed Reply{task}, SM_WIRE_REPLY_ROOM spare bytes */
	size_t len;
	uint64_t keys;
	uint64_t lease_deadline;
	size_t worker;        /* who runs it (index in workers), while in flight */
	struct sm_stats live; /* cumulative, from progress reports */
	uint64_t moved;       /* bytes its transfers moved, from progress reports */
	struct dtask *next;
	struct dtask *prev;
};

struct dlist {
	struct dtask *head;
	struct dtask *tail;
	size_t n;
};

/* An attempt whose lease expired. Its worker stopped writing before that
 * (it fences itself a margin before its lease ends), but the run's end
 * waits until it said it stopped, or `until` passed. */
struct drevoked {
	uint64_t attempt;
	uint64_t session; /* the one that held it: only it can say it stopped */
	uint64_t until;
	struct drevoked *next;
};

/* A participant of the run: the manager's own threads ("local") or a
 * remote worker, known by the name its requests carry. */
struct dworker {
	char *name;
	struct sm_stats done; /* of its finished tasks */
	uint64_t tasks;       /* finished */
	unsigned transfers;   /* copies in progress, from its last progress report */
};

/* A worker process, by the session its requests carry. */
struct dsession {
	uint64_t id;
	size_t worker;
	uint64_t last_seen;
	bool gone;         /* said Bye, or silent for a lease */
	uint64_t *log_seq; /* by slot: the last Log printed */
	uint32_t nlog;
};

/* A worker's Log request waiting for the printer (the unpacked request,
 * owned). */
struct dprint {
	Syncmgr__Request *req;
	size_t bytes;
	struct dprint *next;
};

enum dctx_state { DCTX_RECV, DCTX_SEND, DCTX_PARKED };

struct dctx {
	struct sm_dispatch *dp;
	nng_ctx ctx;
	nng_aio *aio;
	enum dctx_state state;
	uint64_t park_deadline;
	size_t worker; /* who asks, while parked */
	uint64_t session;
	uint32_t slot;
	struct dctx *next_parked;
	Syncmgr__Request *log; /* a parked Log (owned) */
	size_t log_bytes;
	struct dctx *next_log;
};

struct sm_dispatch {
	struct sm_dispatch_cfg cfg;
	uint64_t run_id;
	uint64_t lease_ns;
	uint64_t margin_ns; /* a quarter lease: workers fence themselves this early */
	nng_socket sock;
	struct dctx ctxs[DISPATCH_NCTX];
	int nctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dlist pending;
	struct dlist inflight;
	struct drevoked *revoked;
	struct dctx *parked;
	uint64_t next_id;
	uint64_t next_attempt;
	uint8_t *done_bits; /* attempts whose Done counted */
	size_t done_nbits;  /* bytes of done_bits */
	uint64_t queued_keys;
	struct sm_stats done;
	struct dworker *workers; /* [0] is "local" */
	size_t nworkers;
	size_t capworkers;
	struct dsession *sessions;
	size_t nsessions;
	size_t capsessions;
	uint64_t started;
	struct sm_dispatch_failure *fails; /* the run's first failed keys */
	size_t nfails;
	bool finished;
	bool aborted;
	bool no_workers; /* every worker went: the run stopped */
	bool no_delete;
	bool listing_failed;
	bool closing;
	uint64_t drop_every; /* SYNCMGR_TEST_DISPATCH_DROP */
	uint64_t nreq;
	uint64_t nbad;              /* requests refused as malformed or too big */
	char unsynced[SM_DIAG_MAX]; /* a worker's DST writes may not be durable: why */
	pthread_t timer;
	bool timer_started;
	pthread_cond_t timer_cv;   /* wakes the timer at once when closing */
	struct dprint *print_head; /* workers' lines for the printer, in order */
	struct dprint **print_tail;
	size_t print_bytes;
	bool printing;           /* the printer has a batch out of the queue */
	struct dctx *log_parked; /* Logs waiting for room, oldest first */
	int nlog_parked;
	pthread_t printer;
	bool printer_started;
	pthread_cond_t print_cv; /* the printer has work, or closing */
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
#define DISPATCH_NAME_MAX 255 /* bytes of a worker's name kept */

static size_t dispatch_worker(struct sm_dispatch *dp, const char *name)
{
	if (!name || !*name)
		return 0;
	for (size_t i = 0; i < dp->nworkers; i++)
		if (strncmp(dp->workers[i].name, name, DISPATCH_NAME_MAX) == 0)
			return i; /* (names alike in their first 255 bytes are one) */
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
	w->name = sm_strndup(name, strnlen(name, DISPATCH_NAME_MAX)); /* a host name's worth */
	if (!w->name)
		return dp->nworkers - 1;
	return dp->nworkers++;
}

/* The session `id` (mu held), or NULL when it never joined. */
static struct dsession *dispatch_session(struct sm_dispatch *dp, uint64_t id)
{
	for (size_t i = 0; i < dp->nsessions; i++)
		if (dp->sessions[i].id == id)
			return &dp->sessions[i];
	return NULL;
}

/* A request of session `s` came in now (mu held): it is there. */
static void dispatch_seen(struct sm_dispatch *dp, struct dsession *s)
{
	if (s->gone)
		sm_log(SM_LOG_INFO, "worker '%s' is back", dp->workers[s->worker].name);
	s->last_seen = sm_now_ns();
	s->gone = false;
}

/* Add session `id` of worker `worker` (mu held); NULL past the cap or out
 * of memory. */
static struct dsession *dispatch_add_session(struct sm_dispatch *dp, uint64_t id, size_t worker)
{
	if (dp->nsessions == DISPATCH_MAX_SESSIONS)
		return NULL;
	if (dp->nsessions == dp->capsessions) {
		size_t cap = dp->capsessions ? dp->capsessions * 2 : 8;
		struct dsession *v = realloc(dp->sessions, cap * sizeof(*v));
		if (!v)
			return NULL;
		dp->sessions = v;
		dp->capsessions = cap;
	}
	struct dsession *s = &dp->sessions[dp->nsessions++];
	*s = (struct dsession){ .id = id, .worker = worker, .last_seen = sm_now_ns() };
	return s;
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

/* ---- attempts ---- */

static bool dispatch_attempt_counted(const struct sm_dispatch *dp, uint64_t attempt)
{
	return attempt / 8 < dp->done_nbits && (dp->done_bits[attempt / 8] >> (attempt % 8)) & 1;
}

/* Remember that `attempt`'s Done counted, so that the same Done sent again
 * counts nothing (mu held). One bit per hand-out: flat in the keys. */
static void dispatch_attempt_count(struct sm_dispatch *dp, uint64_t attempt)
{
	size_t byte = (size_t)(attempt / 8);
	if (byte >= dp->done_nbits) {
		size_t n = dp->done_nbits ? dp->done_nbits : 64;
		while (n <= byte)
			n *= 2;
		uint8_t *b = realloc(dp->done_bits, n);
		if (!b)
			return; /* a Done sent twice is then "not yours" the second time */
		memset(b + dp->done_nbits, 0, n - dp->done_nbits);
		dp->done_bits = b;
		dp->done_nbits = n;
	}
	dp->done_bits[byte] |= (uint8_t)(1u << (attempt % 8));
}

/* The worker of a revoked attempt said it stopped (mu held). */
static void dispatch_forget_revoked(struct sm_dispatch *dp, uint64_t attempt, uint64_t session)
{
	for (struct drevoked **pp = &dp->revoked; *pp; pp = &(*pp)->next) {
		if ((*pp)->attempt != attempt || (*pp)->session != session)
			continue;
		struct drevoked *r = *pp;
		*pp = r->next;
		free(r);
		pthread_cond_broadcast(&dp->cv);
		return;
	}
}

/* Take task `t` back from its attempt and queue it first (mu held). With
 * `revoke`, the attempt may still be running somewhere: the run's end waits
 * for it (see struct drevoked). */
static void dispatch_requeue(struct sm_dispatch *dp, struct dtask *t, bool revoke)
{
	if (revoke) {
		struct drevoked *r = malloc(sizeof(*r));
		if (r) { /* out of memory: the end does not wait for it */
			r->attempt = t->attempt;
			r->session = t->session;
			r->until = sm_now_ns() + dp->margin_ns;
			r->next = dp->revoked;
			dp->revoked = r;
		}
	}
	dlist_remove(&dp->inflight, t);
	t->attempt = 0;
	t->session = 0;
	memset(&t->live, 0, sizeof(t->live));
	t->moved = 0;
	dlist_push_front(&dp->pending, t);
	dp->queued_keys += t->keys;
	pthread_cond_broadcast(&dp->cv);
}

/* The task in flight of `id` when attempt `attempt` of `session` holds it
 * now, else NULL ("not yours"). */
static struct dtask *dispatch_holder(struct sm_dispatch *dp, uint64_t id, uint64_t attempt,
                                     uint64_t session)
{
	struct dtask *t = dlist_find(&dp->inflight, id);
	if (!t || !attempt || t->attempt != attempt || t->session != session)
		return NULL;
	return t;
}

/* ---- replies ---- */

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

static void dctx_send_reply(struct sm_dispatch *dp, struct dctx *c, Syncmgr__Reply *rep)
{
	rep->run_id = dp->run_id;
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

static void dispatch_send_error(struct sm_dispatch *dp, struct dctx *c, Syncmgr__Error__Code code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void dispatch_send_error(struct sm_dispatch *dp, struct dctx *c, Syncmgr__Error__Code code,
                                const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	Syncmgr__Error e = SYNCMGR__ERROR__INIT;
	e.code = code;
	e.message = msg;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_ERROR;
	rep.error = &e;
	dctx_send_reply(dp, c, &rep);
}

/* Ack; `revoked`: the attempt the request named is not the sender's. */
static void dispatch_send_ack_revoked(struct sm_dispatch *dp, struct dctx *c, bool revoked,
                                      uint64_t *rev, size_t nrev)
{
	Syncmgr__Ack ack = SYNCMGR__ACK__INIT;
	ack.abort = dp->aborted;
	ack.revoked = revoked;
	ack.revoked_attempts = rev;
	ack.n_revoked_attempts = nrev;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_ACK;
	rep.ack = &ack;
	dctx_send_reply(dp, c, &rep);
}

static void dispatch_send_ack(struct sm_dispatch *dp, struct dctx *c)
{
	dispatch_send_ack_revoked(dp, c, false, NULL, 0);
}

static void dispatch_send_shutdown(struct sm_dispatch *dp, struct dctx *c)
{
	Syncmgr__Shutdown sh = SYNCMGR__SHUTDOWN__INIT;
	sh.abort = dp->aborted;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_SHUTDOWN;
	rep.shutdown = &sh;
	dctx_send_reply(dp, c, &rep);
}

static void dispatch_send_wait(struct sm_dispatch *dp, struct dctx *c)
{
	Syncmgr__Wait w = SYNCMGR__WAIT__INIT;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_WAIT;
	rep.wait = &w;
	dctx_send_reply(dp, c, &rep);
}

/* Send the hand-out of `t` (in flight) on `c` (mu held). Protobuf merges
 * concatenated messages: allow_delete, attempt and run_id are appended
 * (varints) to the packed Reply instead of re-packing the whole task. */
static void dispatch_send_task(struct sm_dispatch *dp, struct dctx *c, struct dtask *t)
{
	size_t len = t->len;
	if (t->allow_delete)
		len = sm_wire_append_varint(t->reply, len, 10, 1);
	len = sm_wire_append_varint(t->reply, len, 11, t->attempt);
	len = sm_wire_append_varint(t->reply, len, 12, dp->run_id);
	dctx_send(c, t->reply, len);
}

/* How long a GetTask waits for work before Wait: well within the worker's
 * receive timeout (a quarter lease). */
static uint64_t dispatch_park_ns(const struct sm_dispatch *dp)
{
	uint64_t ns = (uint64_t)DISPATCH_PARK_MS * 1000000u;
	uint64_t cap = dp->lease_ns / 8;
	return ns < cap ? ns : cap;
}

/* Hand the first pending task to slot `slot` of `session` (worker
 * `worker`) on `c` (mu held, a task pending): a new attempt. */
static void dispatch_hand_out(struct sm_dispatch *dp, struct dctx *c, size_t worker,
                              uint64_t session, uint32_t slot)
{
	struct dtask *t = dp->pending.head;
	dlist_remove(&dp->pending, t);
	t->worker = worker;
	t->session = session;
	t->slot = slot;
	t->del_seq = 0;
	dp->queued_keys -= t->keys;
	t->lease_deadline = sm_now_ns() + dp->lease_ns;
	memset(&t->live, 0, sizeof(t->live));
	t->moved = 0;
	dlist_push_back(&dp->inflight, t);
	t->attempt = dp->next_attempt++;
	t->allow_delete = !dp->no_delete;
	dispatch_send_task(dp, c, t);
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
			dispatch_hand_out(dp, c, c->worker, c->session, c->slot);
		} else if (dispatch_all_done(dp)) {
			*pp = c->next_parked;
			dispatch_send_shutdown(dp, c);
		} else if (expire && now >= c->park_deadline) {
			*pp = c->next_parked;
			dispatch_send_wait(dp, c);
		} else {
			pp = &c->next_parked;
		}
	}
}

static void dispatch_stop_run(struct sm_dispatch *dp)
{
	dp->aborted = true;
	dispatch_serve_parked(dp, false);
	pthread_cond_broadcast(&dp->cv);
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
		dispatch_stop_run(dp);
	}
}

/* ---- requests ---- */

static void dispatch_get(struct sm_dispatch *dp, struct dctx *c, const Syncmgr__Request *req,
                         size_t worker)
{
	/* The same slot asks again while it holds a task: the reply that
	 * handed it out was lost (a dropped connection). The same attempt. */
	for (struct dtask *t = dp->inflight.head; t; t = t->next) {
		if (t->session == req->session && t->slot == req->slot) {
			/* its fence starts when it asked: so does the lease */
			t->lease_deadline = sm_now_ns() + dp->lease_ns;
			dispatch_send_task(dp, c, t);
			return;
		}
	}
	/* An earlier GetTask of the same slot still parked came on a
	 * connection that dropped (the worker asks again only then): it gets
	 * a Wait, which goes nowhere, so no task is handed to a dead pipe. */
	for (struct dctx **pp = &dp->parked; *pp;) {
		struct dctx *o = *pp;
		if (o->session == req->session && o->slot == req->slot) {
			*pp = o->next_parked;
			dispatch_send_wait(dp, o);
		} else {
			pp = &o->next_parked;
		}
	}
	if (dp->pending.n && !dp->aborted) {
		dispatch_hand_out(dp, c, worker, req->session, req->slot);
	} else if (dispatch_all_done(dp)) {
		dispatch_send_shutdown(dp, c);
	} else {
		c->state = DCTX_PARKED;
		c->worker = worker;
		c->session = req->session;
		c->slot = req->slot;
		c->park_deadline = sm_now_ns() + dispatch_park_ns(dp);
		c->next_parked = dp->parked;
		dp->parked = c;
	}
}

/* Renew the leases of the attempts the sender holds; list the others in
 * the reply: they are no longer its. */
static void dispatch_progress(struct sm_dispatch *dp, struct dctx *c, const Syncmgr__Request *req,
                              size_t worker)
{
	const Syncmgr__Progress *pr = req->progress;
	uint64_t lease = sm_now_ns() + dp->lease_ns;
	uint64_t *rev = pr->n_tasks ? malloc(pr->n_tasks * sizeof(*rev)) : NULL;
	size_t nrev = 0;
	for (size_t i = 0; i < pr->n_tasks; i++) {
		const Syncmgr__TaskProgress *tp = pr->tasks[i];
		struct dtask *t = dispatch_holder(dp, tp->task_id, tp->attempt, req->session);
		if (!t) {
			if (rev)
				rev[nrev++] = tp->attempt;
			continue;
		}
		t->lease_deadline = lease;
		sm_wire_stats_from_pb(tp->stats, &t->live);
		t->moved = tp->moved;
	}
	dp->workers[worker].transfers = pr->transfers;
	dispatch_check_failures(dp);
	dispatch_send_ack_revoked(dp, c, false, rev, nrev);
	free(rev);
}

static void dispatch_done(struct sm_dispatch *dp, struct dctx *c, const Syncmgr__Request *req,
                          size_t worker)
{
	const Syncmgr__Done *dn = req->done;
	struct dtask *t = dispatch_holder(dp, dn->task_id, dn->attempt, req->session);
	if (!t) {
		/* The same Done again (its Ack was lost): it counted once. Else
		 * not the holder's: nothing of it counts; if it was a revoked
		 * attempt, it has stopped now. */
		bool again = dispatch_attempt_counted(dp, dn->attempt);
		if (!again)
			dispatch_forget_revoked(dp, dn->attempt, req->session);
		dispatch_send_ack_revoked(dp, c, !again, NULL, 0);
		return;
	}
	if (dn->stopped) {
		/* its worker could not keep its lease: hand it out again now */
		sm_log(SM_LOG_WARN, "task %llu: its worker stopped it, handing it out again",
		       (unsigned long long)t->id);
		dispatch_requeue(dp, t, false);
		dispatch_send_ack(dp, c);
		dispatch_serve_parked(dp, false);
		return;
	}
	dlist_remove(&dp->inflight, t);
	dtask_free(t);
	dispatch_attempt_count(dp, dn->attempt);
	struct sm_stats st;
	sm_wire_stats_from_pb(dn->stats, &st);
	sm_stats_add(&dp->done, &st);
	sm_stats_add(&dp->workers[worker].done, &st);
	dp->workers[worker].tasks++;
	for (size_t i = 0; i < dn->n_failed_keys; i++)
		dispatch_note_failure(dp, worker, dn->failed_keys[i]->key.data,
		                      dn->failed_keys[i]->key.len, dn->failed_keys[i]->error.data,
		                      dn->failed_keys[i]->error.len);
	if (dn->listing_failed) {
		dp->listing_failed = true;
		dp->no_delete = true;
	}
	if (dn->abort && !dp->aborted)
		dispatch_stop_run(dp);
	if (dn->unsynced.len && !dp->unsynced[0]) {
		size_t n = dn->unsynced.len < sizeof(dp->unsynced) - 1 ? dn->unsynced.len
		                                                       : sizeof(dp->unsynced) - 1;
		memcpy(dp->unsynced, dn->unsynced.data, n);
		dp->unsynced[n] = '\0';
		if (!dp->unsynced[0]) /* a message of NULs: still unsynced */
			sm_strlcpy(dp->unsynced, "DST cannot be synced", sizeof(dp->unsynced));
	}
	/* this attempt's deletes are the task's */
	sm_journal_accept(dp->cfg.journal, dn->attempt);
	dispatch_check_failures(dp);
	pthread_cond_broadcast(&dp->cv);
	dispatch_send_ack(dp, c);
	dispatch_serve_parked(dp, false);
}

static void dispatch_deletes(struct sm_dispatch *dp, struct dctx *c, const Syncmgr__Request *req)
{
	const Syncmgr__Deletes *dl = req->deletes;
	struct dtask *t = dispatch_holder(dp, dl->task_id, dl->attempt, req->session);
	if (!t) {
		dispatch_send_ack_revoked(dp, c, true, NULL, 0);
		return;
	}
	if (dl->seq > t->del_seq) {
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__MALFORMED,
		                    "deletes batch %u of task %llu came before batch %u", dl->seq,
		                    (unsigned long long)t->id, t->del_seq);
		return;
	}
	if (dl->seq == t->del_seq) { /* else: the same batch again, kept once */
		sm_journal_add(dp->cfg.journal, dl->attempt, dl->keys, dl->n_keys);
		t->del_seq++;
	}
	dispatch_send_ack(dp, c);
}

/* A worker says who it is (mu held): the protocol's version, the run's
 * configuration. */
static void dispatch_join(struct sm_dispatch *dp, struct dctx *c, const Syncmgr__Request *req,
                          size_t worker, struct dsession *s)
{
	const Syncmgr__Join *j = req->join;
	if (j->version != SM_WIRE_VERSION) {
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__WRONG_VERSION,
		                    "protocol version %u: this manager speaks %u", j->version,
		                    SM_WIRE_VERSION);
		return;
	}
	const char *want = dp->cfg.config_hash;
	if (want && (j->config_hash.len != strlen(want) ||
	             memcmp(j->config_hash.data, want, j->config_hash.len) != 0)) {
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__WRONG_CONFIG,
		                    "the worker's configuration is not this run's");
		return;
	}
	if (!s && !dispatch_add_session(dp, req->session, worker)) {
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__UNKNOWN, "too many workers");
		return;
	}
	if (s)
		dispatch_seen(dp, s);
	dispatch_send_ack(dp, c);
}

/* The last Log seq printed of slot `slot` of `s` (mu held): a place to
 * update, or NULL (out of memory, or a slot past the cap: no dedup). */
static uint64_t *dispatch_log_seq(struct dsession *s, uint32_t slot)
{
	if (slot >= DISPATCH_MAX_SLOTS)
		return NULL;
	if (slot >= s->nlog) {
		uint32_t n = s->nlog ? s->nlog : 16;
		while (n <= slot)
			n *= 2;
		uint64_t *v = realloc(s->log_seq, n * sizeof(*v));
		if (!v)
			return NULL;
		memset(v + s->nlog, 0, (n - s->nlog) * sizeof(*v));
		s->log_seq = v;
		s->nlog = n;
	}
	return &s->log_seq[slot];
}

/* Queue `req`'s lines for the printer (mu held, the request taken over). */
static void dispatch_queue_log(struct sm_dispatch *dp, struct dctx *c, Syncmgr__Request *req,
                               size_t bytes)
{
	struct dprint *p = malloc(sizeof(*p));
	if (!p) {
		syncmgr__request__free_unpacked(req, NULL); /* out of memory: lost */
		dispatch_send_ack(dp, c);
		return;
	}
	*p = (struct dprint){ .req = req, .bytes = bytes };
	*dp->print_tail = p;
	dp->print_tail = &p->next;
	dp->print_bytes += bytes;
	pthread_cond_signal(&dp->print_cv);
	dispatch_send_ack(dp, c);
}

/* Lines of a worker (mu held): queued for the printer when they come from
 * no task or from the attempt holding its task, once; parked while the
 * printer is behind. True when it took the request over. */
static bool dispatch_log(struct sm_dispatch *dp, struct dctx *c, Syncmgr__Request *req,
                         struct dsession *s, size_t bytes)
{
	const Syncmgr__Log *lg = req->log;
	bool mine = !lg->attempt;
	for (struct dtask *t = dp->inflight.head; t && !mine; t = t->next)
		mine = t->attempt == lg->attempt && t->session == req->session;
	uint64_t *seq = dispatch_log_seq(s, req->slot);
	if (!mine || (seq && lg->seq && lg->seq <= *seq)) {
		/* not its lines any more, or these were taken already */
		dispatch_send_ack_revoked(dp, c, !mine, NULL, 0);
		return false;
	}
	if (seq && lg->seq)
		*seq = lg->seq; /* taken now: a copy sent again is not */
	if (!dp->log_parked && (!dp->print_head || dp->print_bytes + bytes <= DISPATCH_PRINT_MAX)) {
		dispatch_queue_log(dp, c, req, bytes);
		return true;
	}
	if (dp->nlog_parked == DISPATCH_PRINT_PARK) {
		if (seq && lg->seq)
			*seq = lg->seq - 1; /* not taken after all */
		Syncmgr__Wait w = SYNCMGR__WAIT__INIT;
		w.ms = DISPATCH_PRINT_WAIT_MS;
		Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
		rep.body_case = SYNCMGR__REPLY__BODY_WAIT;
		rep.wait = &w;
		dctx_send_reply(dp, c, &rep);
		return false;
	}
	c->state = DCTX_PARKED;
	c->log = req;
	c->log_bytes = bytes;
	c->next_log = NULL;
	struct dctx **pp = &dp->log_parked;
	while (*pp)
		pp = &(*pp)->next_log;
	*pp = c;
	dp->nlog_parked++;
	return true;
}

/* The printer made room: queue the parked Logs that fit (mu held). */
static void dispatch_serve_logs(struct sm_dispatch *dp)
{
	while (dp->log_parked && (!dp->print_head || dp->print_bytes + dp->log_parked->log_bytes <=
	                                                     DISPATCH_PRINT_MAX)) {
		struct dctx *c = dp->log_parked;
		dp->log_parked = c->next_log;
		dp->nlog_parked--;
		Syncmgr__Request *req = c->log;
		c->log = NULL;
		dispatch_queue_log(dp, c, req, c->log_bytes);
	}
}

/* Handle one request (mu held). Replies, or parks `c`. True when it took
 * the request over (a Log for the printer). */
static bool dispatch_handle(struct sm_dispatch *dp, struct dctx *c, Syncmgr__Request *req,
                            size_t bytes)
{
	if (req->run_id != dp->run_id) {
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__WRONG_RUN,
		                    "run %016" PRIx64 " is over (this is run %016" PRIx64 ")",
		                    req->run_id, dp->run_id);
		return false;
	}
	size_t worker = dispatch_worker(dp, req->worker);
	struct dsession *s = dispatch_session(dp, req->session);
	if (req->body_case == SYNCMGR__REQUEST__BODY_JOIN) {
		dispatch_join(dp, c, req, worker, s);
		return false;
	}
	if (!s) {
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__NOT_JOINED, "say Join first");
		return false;
	}
	dispatch_seen(dp, s);
	switch (req->body_case) {
	case SYNCMGR__REQUEST__BODY_GET: dispatch_get(dp, c, req, worker); return false;
	case SYNCMGR__REQUEST__BODY_PROGRESS: dispatch_progress(dp, c, req, worker); return false;
	case SYNCMGR__REQUEST__BODY_DONE: dispatch_done(dp, c, req, worker); return false;
	case SYNCMGR__REQUEST__BODY_DELETES: dispatch_deletes(dp, c, req); return false;
	case SYNCMGR__REQUEST__BODY_LOG: return dispatch_log(dp, c, req, s, bytes);
	case SYNCMGR__REQUEST__BODY_BYE:
		s->gone = true; /* all its threads ended */
		dispatch_send_ack(dp, c);
		return false;
	default:
		dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__MALFORMED,
		                    "request of an unknown kind");
		return false;
	}
}

/* Print a worker's lines as if they were the manager's own (or hand them
 * to cfg.log_fn). */
static void dispatch_print_log(struct sm_dispatch *dp, const Syncmgr__Request *req)
{
	const Syncmgr__Log *lg = req->log;
	const char *worker = req->worker && *req->worker ? req->worker : "local";
	for (size_t i = 0; i < lg->n_lines; i++) {
		const Syncmgr__LogLine *ln = lg->lines[i];
		char *text = sm_strndup((const char *)ln->text.data, ln->text.len);
		char *key =
		        ln->key.len ? sm_strndup((const char *)ln->key.data, ln->key.len) : NULL;
		const char *say = ln->say && *ln->say ? ln->say : NULL;
		int level = ln->level < SM_LOG_ERROR   ? SM_LOG_ERROR
		            : ln->level > SM_LOG_DEBUG ? SM_LOG_DEBUG
		                                       : ln->level;
		if (!text || (ln->key.len && !key)) {
			/* out of memory: the line is lost */
		} else if (dp->cfg.log_fn) {
			dp->cfg.log_fn(dp->cfg.log_arg, worker, level, text, key, say);
		} else if (say) {
			sm_log_say(say, text);
		} else if (key) {
			sm_log_key_error(key, text);
		} else {
			sm_log((enum sm_log_level)level, "%s", text);
		}
		free(text);
		free(key);
	}
}

static void dctx_cb(void *arg)
{
	struct dctx *c = arg;
	struct sm_dispatch *dp = c->dp;
	int rv = nng_aio_result(c->aio);
	if (c->state == DCTX_SEND || rv != 0) {
		pthread_mutex_lock(&dp->mu);
		if (c->state == DCTX_SEND && rv != 0)
			nng_msg_free(nng_aio_get_msg(c->aio));
		c->state = DCTX_RECV;
		if (!dp->closing && rv != NNG_ECLOSED)
			nng_ctx_recv(c->ctx, c->aio);
		pthread_mutex_unlock(&dp->mu);
		return;
	}
	/* A request: its size checked before it is read, read before the lock
	 * is taken (one callback of a context runs at a time). */
	nng_msg *m = nng_aio_get_msg(c->aio);
	size_t len = nng_msg_len(m);
	Syncmgr__Request *req = NULL;
	bool too_big = len > sm_wire_max_msg();
	if (!too_big)
		req = syncmgr__request__unpack(NULL, len, nng_msg_body(m));
	nng_pipe pipe = nng_msg_get_pipe(m);
	nng_msg_free(m);
	bool kept = false;
	pthread_mutex_lock(&dp->mu);
	if (dp->drop_every && ++dp->nreq % dp->drop_every == 0) {
		/* tests: this connection drops before an answer */
		sm_log(SM_LOG_DEBUG, "dispatch: dropping the connection of request %llu (test)",
		       (unsigned long long)dp->nreq);
		nng_pipe_close(pipe);
		nng_ctx_recv(c->ctx, c->aio);
	} else if (too_big || !req) {
		/* the first few said, the rest counted (no flood of lines) */
		enum sm_log_level lvl = ++dp->nbad <= 3 ? SM_LOG_WARN : SM_LOG_DEBUG;
		if (too_big) {
			sm_log(lvl, "a worker sent a request of %zu bytes (at most %zu): refused",
			       len, sm_wire_max_msg());
			dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__TOO_BIG,
			                    "request of %zu bytes: at most %zu", len,
			                    sm_wire_max_msg());
		} else {
			sm_log(lvl, "a worker sent a malformed request of %zu bytes: refused", len);
			dispatch_send_error(dp, c, SYNCMGR__ERROR__CODE__MALFORMED,
			                    "malformed request (%zu bytes)", len);
		}
	} else {
		kept = dispatch_handle(dp, c, req, len);
	}
	pthread_mutex_unlock(&dp->mu);
	if (!kept)
		syncmgr__request__free_unpacked(req, NULL);
}

/* Print workers' lines, in the order they came, outside every lock. */
static void *dispatch_printer(void *arg)
{
	struct sm_dispatch *dp = arg;
	pthread_mutex_lock(&dp->mu);
	for (;;) {
		while (!dp->print_head && !dp->closing)
			pthread_cond_wait(&dp->print_cv, &dp->mu);
		if (!dp->print_head)
			break; /* closing, and nothing left */
		struct dprint *p = dp->print_head;
		dp->print_head = p->next;
		if (!dp->print_head)
			dp->print_tail = &dp->print_head;
		dp->printing = true;
		pthread_mutex_unlock(&dp->mu);
		dispatch_print_log(dp, p->req);
		syncmgr__request__free_unpacked(p->req, NULL);
		pthread_mutex_lock(&dp->mu);
		dp->print_bytes -= p->bytes;
		dp->printing = false;
		free(p);
		if (!dp->closing) /* closing: parked Logs are dropped */
			dispatch_serve_logs(dp);
		pthread_cond_broadcast(&dp->cv);
	}
	pthread_mutex_unlock(&dp->mu);
	return NULL;
}

/* The manager itself was not running for `gap` ns (mu held): nobody could
 * renew a lease meanwhile, so every deadline moves by the gap. */
static void dispatch_paused(struct sm_dispatch *dp, uint64_t gap)
{
	sm_log(SM_LOG_DEBUG, "dispatch: this process did not run for %.1f s: leases extended",
	       (double)gap / 1e9);
	for (struct dtask *t = dp->inflight.head; t; t = t->next)
		t->lease_deadline += gap;
	for (struct drevoked *r = dp->revoked; r; r = r->next)
		r->until += gap;
	/* a session heard from since the pause keeps its time (a later one
	 * would make it look silent for ages) */
	uint64_t now = sm_now_ns();
	for (size_t i = 0; i < dp->nsessions; i++) {
		uint64_t *ls = &dp->sessions[i].last_seen;
		*ls = *ls + gap > now ? now : *ls + gap;
	}
}

/* Workers silent for a lease are gone; with none left, the run stops
 * (mu held). */
static void dispatch_check_workers(struct sm_dispatch *dp, uint64_t now)
{
	size_t live = 0;
	for (size_t i = 0; i < dp->nsessions; i++) {
		struct dsession *s = &dp->sessions[i];
		if (!s->gone && now > s->last_seen && now - s->last_seen > dp->lease_ns) {
			s->gone = true;
			sm_log(SM_LOG_WARN, "worker '%s' silent for %.1f s: gone",
			       dp->workers[s->worker].name, (double)dp->lease_ns / 1e9);
		}
		live += !s->gone;
	}
	if (live || dispatch_all_done(dp))
		return;
	if (!dp->nsessions && now - dp->started <= dp->lease_ns)
		return; /* the first ones are still coming */
	sm_log(SM_LOG_ERROR, "no worker left: stopping the run");
	dp->no_workers = true;
	dispatch_stop_run(dp);
}

/* Expire leases and parked requests. */
static void *dispatch_timer(void *arg)
{
	struct sm_dispatch *dp = arg;
	uint64_t pause_ns = (uint64_t)DISPATCH_PAUSE_MS * 1000000u;
	if (pause_ns > dp->lease_ns / 4)
		pause_ns = dp->lease_ns / 4;
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
				dispatch_requeue(dp, t, true);
			}
			t = next;
		}
		for (struct drevoked **pp = &dp->revoked; *pp;) {
			struct drevoked *r = *pp;
			if (now < r->until) {
				pp = &r->next;
				continue;
			}
			*pp = r->next;
			free(r);
			pthread_cond_broadcast(&dp->cv);
		}
		dispatch_check_workers(dp, now);
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
	for (size_t i = 0; i < dp->nsessions; i++)
		free(dp->sessions[i].log_seq);
	free(dp->sessions);
	free(dp->done_bits);
	for (struct dprint *p = dp->print_head; p;) {
		struct dprint *n = p->next;
		syncmgr__request__free_unpacked(p->req, NULL);
		free(p);
		p = n;
	}
	for (struct drevoked *r = dp->revoked; r;) {
		struct drevoked *n = r->next;
		free(r);
		r = n;
	}
}

enum sm_err sm_dispatch_start(const struct sm_dispatch_cfg *cfg, struct sm_dispatch **out,
                              struct sm_diag *d)
{
	struct sm_dispatch *dp = calloc(1, sizeof(*dp));
	if (!dp)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	dp->cfg = *cfg;
	dp->run_id = cfg->run_id ? cfg->run_id : sm_rand64() | 1;
	dp->lease_ns = (uint64_t)cfg->lease_ms * 1000000u;
	dp->margin_ns = dp->lease_ns / 4;
	dp->started = sm_now_ns();
	dp->next_id = 1;
	dp->next_attempt = 1;
	dp->capworkers = 4;
	int64_t drop = 0;
	const char *env = getenv("SYNCMGR_TEST_DISPATCH_DROP");
	if (env && sm_parse_i64(env, 2, INT64_MAX, &drop))
		dp->drop_every = (uint64_t)drop;
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
	pthread_cond_init(&dp->print_cv, NULL);
	dp->print_tail = &dp->print_head;
	enum sm_err err = SM_OK;
	int rv = nng_rep0_open(&dp->sock);
	if (rv != 0) {
		err = sm_diag_set(d, SM_EIO, rv, "cannot open the dispatch socket: %s",
		                  nng_strerror(rv));
		goto fail_nosock;
	}
	/* Up to twice the cap is read and answered with an Error; past that
	 * the transport drops the connection. */
	nng_socket_set_size(dp->sock, NNG_OPT_RECVMAXSZ, 2 * sm_wire_max_msg());
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
	if (pthread_create(&dp->printer, NULL, dispatch_printer, dp) != 0) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "cannot start the dispatch's printer");
		goto fail;
	}
	dp->printer_started = true;
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
	pthread_cond_destroy(&dp->print_cv);
	dispatch_free_lists(dp);
	free(dp);
	return err;
}

uint64_t sm_dispatch_run_id(const struct sm_dispatch *dp)
{
	return dp->run_id;
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
	dispatch_stop_run(dp);
	pthread_mutex_unlock(&dp->mu);
}

/* Every task done (or the run stopped), and every attempt handed out has
 * ended: reported Done, or its lease expired a margin ago. Known from
 * messages alone: nothing of the run writes any more. And the workers'
 * lines are printed (each attempt's came before its Done). */
static bool dispatch_quiet(const struct sm_dispatch *dp)
{
	return (dp->aborted || (dp->finished && dp->pending.n == 0)) && dp->inflight.n == 0 &&
	       !dp->revoked && !dp->print_head && !dp->printing && !dp->log_parked;
}

void sm_dispatch_wait(struct sm_dispatch *dp)
{
	pthread_mutex_lock(&dp->mu);
	while (!dispatch_quiet(dp))
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
	s->no_workers = dp->no_workers;
	s->listing_failed = dp->listing_failed;
	sm_strlcpy(s->unsynced, dp->unsynced, sizeof(s->unsynced));
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
	pthread_cond_signal(&dp->print_cv);
	pthread_mutex_unlock(&dp->mu);
	if (dp->timer_started)
		pthread_join(dp->timer, NULL);
	if (dp->printer_started) /* what is queued is printed first */
		pthread_join(dp->printer, NULL);
	for (int i = 0; i < dp->nctx; i++)
		nng_aio_stop(dp->ctxs[i].aio);
	for (int i = 0; i < dp->nctx; i++) {
		nng_ctx_close(dp->ctxs[i].ctx);
		nng_aio_free(dp->ctxs[i].aio);
		syncmgr__request__free_unpacked(dp->ctxs[i].log, NULL); /* a parked Log */
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
	pthread_cond_destroy(&dp->print_cv);
	dispatch_free_lists(dp);
	free(dp);
}
