/*
 * Dispatch as a worker sees it, through nng over inproc:// and over
 * tcp://127.0.0.1 alike: tasks go to whoever asks, a task whose lease
 * expires (its worker went silent) is handed out again as a new attempt, a
 * result counts once and only from the attempt holding the task (a stale or
 * a stranger's Progress, Deletes or Done is "not yours" and changes
 * nothing), a restarted manager refuses the old run's workers, malformed and
 * oversized requests get an Error each, and workers are shut down when
 * everything is done. Then the real worker against a manager played by the
 * test: a revoked task stops at once, one whose lease cannot be renewed
 * stops by itself, a stalled transfer is retried.
 *
 * TCP ports: DISPATCH_PORT (7830 unless set) to DISPATCH_PORT + 10.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/store/store.h"
#include "../../common/url.h"
#include "../../common/util.h"
#include "../../manager/dispatch.h"
#include "../../worker/task.h"
#include "../../worker/wire.h"

#define TEST_MSG_MAX 65536 /* SYNCMGR_TEST_MSG_MAX of this test */

static int port_base = 7830;
static int url_seq;

/* A fresh address on the transport of the test (state: "inproc" or
 * "tcp"). */
static const char *test_url(void **state, char *buf, size_t n)
{
	if (strcmp(*state, "tcp") == 0)
		snprintf(buf, n, "tcp://127.0.0.1:%d", port_base + (url_seq++ % 10));
	else
		snprintf(buf, n, "inproc://test-dispatch-%d", url_seq++);
	return buf;
}

/* A worker as the dispatch sees it: a socket, a session, a slot. */
struct cli {
	nng_socket s;
	uint64_t run;
	uint64_t session;
	uint32_t slot;
	const char *name;
};

static Syncmgr__Reply *call(struct cli *c, Syncmgr__Request *req);

/* A worker session that joined (any config hash: the dispatch of these
 * tests has none). */
static struct cli client(const char *url, uint64_t run)
{
	struct cli c = { .run = run, .session = sm_rand64() | 1, .slot = 1 };
	assert_int_equal(nng_req0_open(&c.s), 0);
	nng_socket_set_ms(c.s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(c.s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(c.s, NNG_OPT_RECONNMINT, 20);
	assert_int_equal(nng_dial(c.s, url, NULL, NNG_FLAG_NONBLOCK), 0);
	Syncmgr__Join j = SYNCMGR__JOIN__INIT;
	j.version = SM_WIRE_VERSION;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_JOIN;
	req.join = &j;
	Syncmgr__Reply *rep = call(&c, &req);
	assert_int_equal(rep->body_case, run == 0 ? rep->body_case : SYNCMGR__REPLY__BODY_ACK);
	syncmgr__reply__free_unpacked(rep, NULL);
	return c;
}

static Syncmgr__Reply *recv_reply(nng_socket s)
{
	nng_msg *m = NULL;
	assert_int_equal(nng_recvmsg(s, &m, 0), 0);
	Syncmgr__Reply *rep = syncmgr__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	assert_non_null(rep);
	return rep;
}

static void send_req(struct cli *c, Syncmgr__Request *req)
{
	req->run_id = c->run;
	req->session = c->session;
	req->slot = c->slot;
	req->worker = (char *)(c->name ? c->name : "");
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_request(req, &len);
	assert_non_null(buf);
	assert_int_equal(nng_send(c->s, buf, len, 0), 0);
	free(buf);
}

static Syncmgr__Reply *call(struct cli *c, Syncmgr__Request *req)
{
	send_req(c, req);
	return recv_reply(c->s);
}

/* A handed-out task as the worker keeps it. */
struct got {
	uint64_t id;
	uint64_t attempt;
	bool allow_delete;
};

/* Ask until something other than Wait comes back: a task (its id and
 * attempt), or 0 for Shutdown. */
static struct got get_task(struct cli *c)
{
	Syncmgr__GetTask get = SYNCMGR__GET_TASK__INIT;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_GET;
	req.get = &get;
	for (int i = 0; i < 200; i++) {
		Syncmgr__Reply *rep = call(c, &req);
		assert_int_equal(rep->run_id, c->run);
		struct got g = { 0 };
		if (rep->body_case == SYNCMGR__REPLY__BODY_TASK)
			g = (struct got){ rep->task->id, rep->attempt, rep->allow_delete };
		Syncmgr__Reply__BodyCase bc = rep->body_case;
		syncmgr__reply__free_unpacked(rep, NULL);
		if (bc == SYNCMGR__REPLY__BODY_TASK || bc == SYNCMGR__REPLY__BODY_SHUTDOWN)
			return g;
		assert_int_equal(bc, SYNCMGR__REPLY__BODY_WAIT);
	}
	fail_msg("no task after 200 waits");
	return (struct got){ 0 };
}

/* Done of attempt `g` with counters `st` and `nf` failed keys; returns the
 * reply (the caller frees it). */
static Syncmgr__Reply *done_full(struct cli *c, struct got g, const struct sm_stats *st, size_t nf,
                                 bool stopped)
{
	Syncmgr__Stats pb;
	sm_wire_stats_to_pb(st, &pb);
	Syncmgr__FailedKey *fk = calloc(nf ? nf : 1, sizeof(*fk));
	Syncmgr__FailedKey **fkp = calloc(nf ? nf : 1, sizeof(*fkp));
	char(*keys)[32] = calloc(nf ? nf : 1, sizeof(*keys));
	assert_true(fk && fkp && keys);
	for (size_t i = 0; i < nf; i++) {
		syncmgr__failed_key__init(&fk[i]);
		snprintf(keys[i], sizeof(keys[i]), "%s-f%zu", c->name ? c->name : "local", i);
		fk[i].key.data = (uint8_t *)keys[i];
		fk[i].key.len = strlen(keys[i]);
		fk[i].error.data = (uint8_t *)"boom";
		fk[i].error.len = 4;
		fkp[i] = &fk[i];
	}
	Syncmgr__Done dn = SYNCMGR__DONE__INIT;
	dn.task_id = g.id;
	dn.attempt = g.attempt;
	dn.stats = &pb;
	dn.n_failed_keys = nf;
	dn.failed_keys = fkp;
	dn.stopped = stopped;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DONE;
	req.done = &dn;
	Syncmgr__Reply *rep = call(c, &req);
	free(fk);
	free(fkp);
	free(keys);
	return rep;
}

/* Done with `copied` copies; returns whether it was "not yours". */
static bool done(struct cli *c, struct got g, uint64_t copied)
{
	struct sm_stats st = { .copied = copied };
	Syncmgr__Reply *rep = done_full(c, g, &st, 0, false);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ACK);
	bool revoked = rep->ack->revoked;
	syncmgr__reply__free_unpacked(rep, NULL);
	return revoked;
}

/* Progress of attempt `g` with `copied` copies and `transfers` in
 * progress; returns how many of the attempts it named were revoked. */
static size_t progress(struct cli *c, struct got g, uint64_t copied, unsigned transfers)
{
	Syncmgr__Stats pb;
	struct sm_stats st = { .copied = copied };
	sm_wire_stats_to_pb(&st, &pb);
	Syncmgr__TaskProgress tp = SYNCMGR__TASK_PROGRESS__INIT;
	tp.task_id = g.id;
	tp.attempt = g.attempt;
	tp.stats = &pb;
	Syncmgr__TaskProgress *tpp = &tp;
	Syncmgr__Progress pr = SYNCMGR__PROGRESS__INIT;
	pr.n_tasks = 1;
	pr.tasks = &tpp;
	pr.transfers = transfers;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_PROGRESS;
	req.progress = &pr;
	Syncmgr__Reply *rep = call(c, &req);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ACK);
	size_t n = rep->ack->n_revoked_attempts;
	if (n)
		assert_true(rep->ack->revoked_attempts[0] == g.attempt);
	syncmgr__reply__free_unpacked(rep, NULL);
	return n;
}

/* A Progress that must be refused: its Error's code. */
static Syncmgr__Error__Code progress_expect_error(struct cli *c, struct got g)
{
	Syncmgr__TaskProgress tp = SYNCMGR__TASK_PROGRESS__INIT;
	tp.task_id = g.id;
	tp.attempt = g.attempt;
	Syncmgr__TaskProgress *tpp = &tp;
	Syncmgr__Progress pr = SYNCMGR__PROGRESS__INIT;
	pr.n_tasks = 1;
	pr.tasks = &tpp;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_PROGRESS;
	req.progress = &pr;
	Syncmgr__Reply *rep = call(c, &req);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ERROR);
	Syncmgr__Error__Code code = rep->error->code;
	syncmgr__reply__free_unpacked(rep, NULL);
	return code;
}

static void push(struct sm_dispatch *dp, const char *last)
{
	Syncmgr__Task t = SYNCMGR__TASK__INIT;
	if (last) {
		t.last.data = (uint8_t *)last;
		t.last.len = strlen(last);
	} else {
		t.open_end = true;
	}
	struct sm_diag d;
	assert_int_equal(sm_dispatch_push(dp, &t, &d), SM_OK);
}

/* Temporary SRC and DST trees for a real worker. */
struct trees {
	char root[64];
	char src[96];
	char dst[96];
};

static void trees_init(struct trees *t)
{
	snprintf(t->root, sizeof(t->root), "/tmp/sm-test-dispatch-XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->src, sizeof(t->src), "%s/src/", t->root);
	snprintf(t->dst, sizeof(t->dst), "%s/dst/", t->root);
	assert_int_equal(mkdir(t->src, 0755), 0);
	assert_int_equal(mkdir(t->dst, 0755), 0);
}

static void trees_release(struct trees *t)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->root);
	assert_int_equal(system(cmd), 0);
}

/* A real worker of run `run` on `url` from its Hello (opts `o`); *hash gets
 * the config hash. */
static struct sm_worker *start_worker(const char *url, uint64_t run, unsigned threads,
                                      unsigned lease_ms, const struct sm_opts *o,
                                      const struct trees *t, char hash[SM_WIRE_HASH_HEX])
{
	struct sm_url su, du;
	struct sm_diag d;
	assert_int_equal(sm_url_parse(t->src, &su, &d), SM_OK);
	assert_int_equal(sm_url_parse(t->dst, &du, &d), SM_OK);
	struct sm_store_cfg sc = { .label = "SRC", .follow_links = true, .must_exist = true };
	struct sm_store_cfg dc = { .label = "DST" };
	struct sm_wire_hello h = { .run_id = run,
		                   .url = url,
		                   .worker = "local",
		                   .threads = threads,
		                   .lease_ms = lease_ms,
		                   .pool_budget = 16u << 20,
		                   .o = o,
		                   .src = { &su, &sc, NULL },
		                   .dst = { &du, &dc, NULL } };
	size_t len = 0;
	uint8_t *hello = sm_wire_hello_pack(&h, &len, hash, &d);
	assert_non_null(hello);
	struct sm_worker *wk = NULL;
	if (sm_worker_start(hello, len, NULL, &wk, &d) != SM_OK)
		fail_msg("%s", d.msg);
	free(hello);
	sm_url_release(&su);
	sm_url_release(&du);
	return wk;
}

static struct sm_dispatch *start(const char *url, unsigned lease_ms, uint64_t max_failure)
{
	struct sm_dispatch_cfg cfg = {
		.url = url, .max_queued = 8, .lease_ms = lease_ms, .max_failure = max_failure
	};
	struct sm_dispatch *dp = NULL;
	struct sm_diag d;
	if (sm_dispatch_start(&cfg, &dp, &d) != SM_OK)
		fail_msg("%s", d.msg);
	return dp;
}

static uint64_t copied_now(struct sm_dispatch *dp)
{
	struct sm_dispatch_snapshot snap;
	sm_dispatch_snapshot(dp, &snap);
	return snap.stats.copied;
}

static void test_lease_expiry_and_count_once(void **state)
{
	char url[64];
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 300, 0);
	uint64_t run = sm_dispatch_run_id(dp);
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);

	struct cli a = client(url, run), b = client(url, run);
	struct got ta = get_task(&a); /* a takes task 1 and goes silent */
	assert_true(ta.id && ta.attempt);
	assert_true(ta.allow_delete);
	struct got tb = get_task(&b);
	assert_int_not_equal(ta.id, tb.id);
	assert_false(done(&b, tb, 5));

	/* b asks again: once the lease of task 1 expired, it gets task 1 as
	 * a new attempt */
	struct got tb2 = get_task(&b);
	assert_int_equal(tb2.id, ta.id);
	assert_true(tb2.attempt != ta.attempt);
	/* a wakes up: its Progress is answered "no longer yours" */
	assert_int_equal(progress(&a, ta, 99, 0), 1);
	assert_false(done(&b, tb2, 7));
	assert_true(done(&a, ta, 7));   /* the silent worker's late Done: not yours */
	assert_false(done(&b, tb2, 7)); /* the same Done again counts once */
	assert_int_equal(copied_now(dp), 12);

	assert_int_equal(get_task(&b).id, 0); /* Shutdown */
	sm_dispatch_wait(dp);                 /* a's revoked attempt said Done */
	nng_close(a.s);
	nng_close(b.s);
	sm_dispatch_stop(dp);
}

static void test_progress_renews_lease(void **state)
{
	char url[64];
	const unsigned lease_ms = 2000;
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), lease_ms, 0);
	uint64_t run = sm_dispatch_run_id(dp);
	push(dp, NULL);
	sm_dispatch_finish(dp);
	struct cli a = client(url, run), b = client(url, run);
	struct got ta = get_task(&a);
	/* a keeps reporting for 3 leases while b keeps asking (a GetTask of
	 * b's is always outstanding: parked, answered Wait, asked again), so
	 * the moment the lease lapsed b would get the task: it must get
	 * nothing but Wait meanwhile */
	Syncmgr__GetTask get = SYNCMGR__GET_TASK__INIT;
	Syncmgr__Request greq = SYNCMGR__REQUEST__INIT;
	greq.body_case = SYNCMGR__REQUEST__BODY_GET;
	greq.get = &get;
	send_req(&b, &greq);
	int waits = 0;
	double t0 = sm_now_s();
	while (sm_now_s() - t0 < 3 * lease_ms / 1000.0) {
		assert_int_equal(progress(&a, ta, 1, 0), 0);
		sm_sleep_ms(lease_ms / 10);
		nng_msg *m = NULL;
		if (nng_recvmsg(b.s, &m, NNG_FLAG_NONBLOCK) != 0)
			continue;
		Syncmgr__Reply *rb = syncmgr__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		nng_msg_free(m);
		assert_non_null(rb);
		if (rb->body_case != SYNCMGR__REPLY__BODY_WAIT)
			fail_msg("b got reply %d (not Wait) while a renewed its lease",
			         (int)rb->body_case);
		syncmgr__reply__free_unpacked(rb, NULL);
		waits++;
		send_req(&b, &greq);
	}
	if (waits < 3)
		fail_msg("b was answered only %d times while a held the task", waits);
	assert_int_equal(copied_now(dp), 1); /* live counters of the task in flight */
	assert_false(done(&a, ta, 3));
	/* b's outstanding GetTask: everything is done now */
	Syncmgr__Reply *tb = recv_reply(b.s);
	bool shut = tb->body_case == SYNCMGR__REPLY__BODY_SHUTDOWN;
	syncmgr__reply__free_unpacked(tb, NULL);
	if (!shut)
		assert_int_equal(get_task(&b).id, 0);
	assert_int_equal(copied_now(dp), 3); /* counted once, from a's Done */
	nng_close(a.s);
	nng_close(b.s);
	sm_dispatch_stop(dp);
}

static void test_forbid_delete_and_abort(void **state)
{
	char url[64];
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 5000, 2);
	sm_dispatch_forbid_delete(dp);
	push(dp, "a");
	push(dp, "b");
	struct cli a = client(url, sm_dispatch_run_id(dp));
	struct got ta = get_task(&a);
	assert_false(ta.allow_delete); /* a listing failed before it was handed out */
	struct sm_stats st = { .failed = 2 };
	Syncmgr__Reply *rep = done_full(&a, ta, &st, 0, false);
	assert_true(rep->ack->abort); /* --max-failure reached: abort */
	syncmgr__reply__free_unpacked(rep, NULL);
	assert_int_equal(get_task(&a).id, 0); /* Shutdown */
	struct sm_diag d;
	assert_int_not_equal(sm_dispatch_push(dp, &(Syncmgr__Task)SYNCMGR__TASK__INIT, &d), SM_OK);
	sm_dispatch_wait(dp);
	nng_close(a.s);
	sm_dispatch_stop(dp);
}

/* Counters per participant ("local" always first, others by the name their
 * requests carry), copies in progress from progress reports, and the run's
 * first failed keys from the Done messages, capped. */
static void test_workers_and_failed_keys(void **state)
{
	char url[64];
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 30000, 0);
	uint64_t run = sm_dispatch_run_id(dp);
	struct sm_dispatch_worker w[4];
	assert_int_equal(sm_dispatch_workers(dp, w, 4), 1);
	assert_string_equal(w[0].name, "local");
	push(dp, "f");
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);

	struct cli l = client(url, run), r = client(url, run), r2 = client(url, run);
	r.name = r2.name = "host-b";
	r2.session = r.session; /* a second thread of host-b */
	r2.slot = 2;
	struct got t1 = get_task(&l);
	struct got t2 = get_task(&r);
	struct got t3 = get_task(&r2);

	/* host-b reports task 2 with 3 copies in progress */
	assert_int_equal(progress(&r, t2, 5, 3), 0);
	assert_int_equal(sm_dispatch_workers(dp, w, 4), 2);
	assert_string_equal(w[1].name, "host-b");
	assert_int_equal(w[0].tasks_in_flight, 1);
	assert_int_equal(w[1].tasks_in_flight, 2);
	assert_int_equal(w[1].transfers, 3);
	assert_int_equal(w[1].stats.copied, 5);
	assert_int_equal(w[1].tasks_done, 0);

	struct sm_stats st = { .copied = 2, .failed = 3 };
	syncmgr__reply__free_unpacked(done_full(&l, t1, &st, 3, false), NULL);
	st = (struct sm_stats){ .copied = 6, .failed = 2 };
	syncmgr__reply__free_unpacked(done_full(&r, t2, &st, 2, false), NULL);
	sm_dispatch_add_failure(dp, "gone/x", "cannot delete");
	st = (struct sm_stats){ .failed = 150 };
	syncmgr__reply__free_unpacked(done_full(&r2, t3, &st, 150, false), NULL);
	/* a second Done of it counts nothing */
	syncmgr__reply__free_unpacked(done_full(&r2, t3, &st, 150, false), NULL);

	assert_int_equal(sm_dispatch_workers(dp, w, 4), 2);
	assert_int_equal(w[0].tasks_done, 1);
	assert_int_equal(w[0].stats.copied, 2);
	assert_int_equal(w[0].stats.failed, 3);
	assert_int_equal(w[0].tasks_in_flight, 0);
	assert_int_equal(w[1].tasks_done, 2);
	assert_int_equal(w[1].stats.copied, 6);
	assert_int_equal(w[1].stats.failed, 152);
	assert_int_equal(w[1].transfers, 0); /* nothing in flight: nothing in progress */
	/* max smaller than the number of participants: the first ones */
	assert_int_equal(sm_dispatch_workers(dp, w, 1), 2);

	const struct sm_dispatch_failure *f = NULL;
	assert_int_equal(sm_dispatch_failures(dp, &f), SM_DISPATCH_FAILED_KEYS);
	assert_string_equal(f[0].key, "local-f0");
	assert_string_equal(f[0].msg, "boom");
	assert_string_equal(f[0].worker, "local");
	assert_string_equal(f[3].key, "host-b-f0");
	assert_string_equal(f[3].worker, "host-b");
	assert_string_equal(f[5].key, "gone/x");
	assert_string_equal(f[5].msg, "cannot delete");
	assert_string_equal(f[5].worker, "local");
	assert_string_equal(f[6].key, "host-b-f0");
	assert_int_equal(f[6].key_len, strlen("host-b-f0"));
	assert_string_equal(f[99].key, "host-b-f93");
	nng_close(l.s);
	nng_close(r.s);
	nng_close(r2.s);
	sm_dispatch_stop(dp);
}

/* (b) A stale or a stranger's Progress, Deletes and Done: answered "not
 * yours", and the holder's counters, lease and result untouched. */
static void test_stale_and_stranger(void **state)
{
	char url[64];
	const unsigned lease_ms = 30000;
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), lease_ms, 0);
	uint64_t run = sm_dispatch_run_id(dp);
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);
	struct cli h = client(url, run), x = client(url, run);
	struct got th = get_task(&h);
	assert_int_equal(progress(&h, th, 4, 1), 0);

	/* the stranger knows the task and the attempt, not the session */
	assert_int_equal(progress(&x, th, 1000, 0), 1);
	assert_int_equal(copied_now(dp), 4);
	assert_true(done(&x, th, 1000));
	assert_int_equal(copied_now(dp), 4);
	/* the holder's session with another attempt, or a task never handed out */
	struct got wrong = { th.id, th.attempt + 7, false };
	assert_int_equal(progress(&h, wrong, 500, 0), 1);
	assert_true(done(&h, wrong, 500));
	struct got never = { th.id + 1000, 1, false };
	assert_true(done(&h, never, 500));
	/* deletes of a stranger are refused too */
	Syncmgr__Deletes dl = SYNCMGR__DELETES__INIT;
	dl.task_id = th.id;
	dl.attempt = th.attempt;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DELETES;
	req.deletes = &dl;
	Syncmgr__Reply *rep = call(&x, &req);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ACK);
	assert_true(rep->ack->revoked);
	syncmgr__reply__free_unpacked(rep, NULL);
	/* a stranger's Done as "stopped" does not give the task away either */
	struct sm_stats none = { 0 };
	rep = done_full(&x, th, &none, 0, true);
	assert_true(rep->ack->revoked);
	syncmgr__reply__free_unpacked(rep, NULL);
	struct got tx = get_task(&x); /* the other task, not the holder's */
	assert_int_not_equal(tx.id, th.id);
	assert_int_equal(copied_now(dp), 4);

	/* the holder still holds it: its Progress renews, its Done counts */
	assert_int_equal(progress(&h, th, 5, 0), 0);
	assert_false(done(&h, th, 6));
	assert_false(done(&x, tx, 1));
	assert_int_equal(copied_now(dp), 7);
	assert_int_equal(get_task(&h).id, 0);
	sm_dispatch_wait(dp);
	nng_close(h.s);
	nng_close(x.s);
	sm_dispatch_stop(dp);
}

/* A worker that stopped its attempt (its lease lapsed on its side) says so
 * in its Done: nothing of it counts and the task goes out again at once. */
static void test_stopped_attempt(void **state)
{
	char url[64];
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 30000, 0);
	uint64_t run = sm_dispatch_run_id(dp);
	push(dp, NULL);
	sm_dispatch_finish(dp);
	struct cli a = client(url, run), b = client(url, run);
	struct got ta = get_task(&a);
	struct sm_stats st = { .copied = 9 };
	Syncmgr__Reply *rep = done_full(&a, ta, &st, 0, true);
	assert_false(rep->ack->revoked);
	syncmgr__reply__free_unpacked(rep, NULL);
	assert_int_equal(copied_now(dp), 0);
	struct got tb = get_task(&b);
	assert_int_equal(tb.id, ta.id);
	assert_true(tb.attempt != ta.attempt);
	assert_false(done(&b, tb, 2));
	assert_int_equal(copied_now(dp), 2);
	sm_dispatch_wait(dp);
	nng_close(a.s);
	nng_close(b.s);
	sm_dispatch_stop(dp);
}

/* A reply lost on the way (a dropped connection): the same slot asks again
 * and gets the same attempt, not a second task. */
static void test_get_again_same_attempt(void **state)
{
	char url[64];
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 30000, 0);
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);
	struct cli a = client(url, sm_dispatch_run_id(dp));
	struct got t1 = get_task(&a);
	struct got t2 = get_task(&a);
	assert_int_equal(t1.id, t2.id);
	assert_true(t1.attempt == t2.attempt);
	assert_false(done(&a, t1, 1));
	struct got t3 = get_task(&a);
	assert_int_not_equal(t3.id, t1.id);
	assert_false(done(&a, t3, 1));
	assert_int_equal(copied_now(dp), 2);
	nng_close(a.s);
	sm_dispatch_stop(dp);
}

/* (c) The manager restarted on the same address: an old worker that
 * reconnects is refused by run id, and the new run's task is untouched. */
static void test_restarted_manager(void **state)
{
	(void)state;
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port_base + 10);
	struct sm_dispatch *old = start(url, 30000, 0);
	uint64_t old_run = sm_dispatch_run_id(old);
	push(old, NULL);
	sm_dispatch_finish(old);
	struct cli a = client(url, old_run);
	struct got ta = get_task(&a);
	sm_dispatch_stop(old);

	struct sm_dispatch *dp = start(url, 30000, 0);
	assert_true(sm_dispatch_run_id(dp) != old_run);
	push(dp, NULL);
	sm_dispatch_finish(dp);
	/* a's socket dials the new manager by itself; its Done names the old run */
	struct sm_stats st = { .copied = 5 };
	Syncmgr__Reply *rep = done_full(&a, ta, &st, 0, false);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ERROR);
	assert_int_equal(rep->error->code, SYNCMGR__ERROR__CODE__WRONG_RUN);
	syncmgr__reply__free_unpacked(rep, NULL);
	assert_int_equal(progress_expect_error(&a, ta), SYNCMGR__ERROR__CODE__WRONG_RUN);
	assert_int_equal(copied_now(dp), 0);

	/* so is a real worker of the old run: its threads give up */
	struct sm_opts o;
	sm_opts_defaults(&o);
	struct trees tr;
	trees_init(&tr);
	char hash[SM_WIRE_HASH_HEX];
	struct sm_worker *wk = start_worker(url, old_run, 2, 2000, &o, &tr, hash);
	struct sm_diag d;
	assert_int_not_equal(sm_worker_join(wk, &d), SM_OK);
	assert_non_null(strstr(d.msg, "run"));
	assert_int_equal(copied_now(dp), 0);
	trees_release(&tr);

	/* the new run's task is still there for its own workers */
	struct cli b = client(url, sm_dispatch_run_id(dp));
	struct got tb = get_task(&b);
	assert_true(tb.id != 0);
	assert_false(done(&b, tb, 1));
	assert_int_equal(copied_now(dp), 1);
	sm_dispatch_wait(dp);
	nng_close(a.s);
	nng_close(b.s);
	sm_dispatch_stop(dp);
	sm_opts_release(&o);
}

/* (f) A malformed request and one above the message cap each get an Error,
 * many of them leave the manager's memory where it was, and the run goes
 * on. */
static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static Syncmgr__Error__Code raw_call_error(nng_socket s, const void *buf, size_t len)
{
	assert_int_equal(nng_send(s, (void *)buf, len, 0), 0);
	Syncmgr__Reply *rep = recv_reply(s);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ERROR);
	assert_non_null(rep->error->message);
	Syncmgr__Error__Code code = rep->error->code;
	syncmgr__reply__free_unpacked(rep, NULL);
	return code;
}

static void test_malformed_and_oversized(void **state)
{
	char url[64];
	assert_int_equal(sm_wire_max_msg(), TEST_MSG_MAX);
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 30000, 0);
	push(dp, NULL);
	sm_dispatch_finish(dp);
	struct cli a = client(url, sm_dispatch_run_id(dp));
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x42, 0x00, 0x13 };
	assert_int_equal(raw_call_error(a.s, junk, sizeof(junk)), SYNCMGR__ERROR__CODE__MALFORMED);
	size_t big = TEST_MSG_MAX + 1000;
	uint8_t *buf = calloc(1, big);
	assert_non_null(buf);
	assert_int_equal(raw_call_error(a.s, buf, big), SYNCMGR__ERROR__CODE__TOO_BIG);
	/* many more: memory stays put (nothing of them is kept) */
	long before = rss_kib();
	for (int i = 0; i < 300; i++) {
		assert_int_equal(raw_call_error(a.s, buf, big), SYNCMGR__ERROR__CODE__TOO_BIG);
		assert_int_equal(raw_call_error(a.s, junk, sizeof(junk)),
		                 SYNCMGR__ERROR__CODE__MALFORMED);
	}
	long after = rss_kib();
	free(buf);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* (a sanitizer's allocator keeps freed blocks in quarantine: RSS says
	 * nothing there; the plain build checks it) */
	if (after - before > 8192)
		fail_msg("RSS grew by %ld KiB over 600 refused requests", after - before);
#else
	(void)before;
	(void)after;
#endif
	/* the run is unharmed */
	struct got t = get_task(&a);
	assert_true(t.id != 0);
	assert_false(done(&a, t, 1));
	assert_int_equal(copied_now(dp), 1);
	nng_close(a.s);
	sm_dispatch_stop(dp);
}

/* A worker that cannot reach its manager gives up within its lease
 * instead of waiting forever, and says why. */
static void test_worker_without_manager_stops_run(void **state)
{
	char url[64];
	struct sm_opts o;
	sm_opts_defaults(&o);
	struct trees tr;
	trees_init(&tr);
	char hash[SM_WIRE_HASH_HEX];
	struct sm_worker *wk =
	        start_worker(test_url(state, url, sizeof(url)), 1, 2, 800, &o, &tr, hash);
	struct sm_diag d;
	assert_int_not_equal(sm_worker_join(wk, &d), SM_OK); /* every thread gave up */
	assert_non_null(strstr(d.msg, "no answer from the manager"));
	trees_release(&tr);
	sm_opts_release(&o);
}

/* A worker whose configuration is not the run's is refused at its Join. */
static void test_wrong_config_refused(void **state)
{
	char url[64];
	struct sm_dispatch_cfg cfg = { .url = test_url(state, url, sizeof(url)),
		                       .max_queued = 8,
		                       .lease_ms = 30000,
		                       .config_hash = "0123" };
	struct sm_dispatch *dp = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dispatch_start(&cfg, &dp, &d), SM_OK);
	push(dp, NULL);
	struct sm_opts o;
	sm_opts_defaults(&o);
	struct trees tr;
	trees_init(&tr);
	char hash[SM_WIRE_HASH_HEX];
	struct sm_worker *wk = start_worker(url, sm_dispatch_run_id(dp), 2, 2000, &o, &tr, hash);
	assert_int_not_equal(sm_worker_join(wk, &d), SM_OK);
	assert_non_null(strstr(d.msg, "configuration"));
	assert_int_equal(copied_now(dp), 0);
	trees_release(&tr);
	sm_opts_release(&o);
	sm_dispatch_stop(dp);
}

/* Workers that go away leave the run with no one to do its tasks: the
 * manager says so and ends the run instead of waiting forever. */
static void test_no_worker_left(void **state)
{
	char url[64];
	struct sm_dispatch *dp = start(test_url(state, url, sizeof(url)), 600, 0);
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);
	struct cli a = client(url, sm_dispatch_run_id(dp));
	struct got ta = get_task(&a);
	assert_true(ta.id != 0);
	nng_close(a.s); /* and never comes back */
	sm_dispatch_wait(dp);
	struct sm_dispatch_snapshot snap;
	sm_dispatch_snapshot(dp, &snap);
	assert_true(snap.aborted);
	assert_true(snap.no_workers);
	sm_dispatch_stop(dp);
}

int main(void)
{
	const char *pb = getenv("DISPATCH_PORT");
	if (pb && atoi(pb) > 0)
		port_base = atoi(pb);
	char cap[32];
	snprintf(cap, sizeof(cap), "%d", TEST_MSG_MAX);
	setenv("SYNCMGR_TEST_MSG_MAX", cap, 1);
	static const char inproc[] = "inproc", tcp[] = "tcp";
#define BOTH(fn) \
	cmocka_unit_test_prestate(fn, (void *)inproc), cmocka_unit_test_prestate(fn, (void *)tcp)
	const struct CMUnitTest tests[] = {
		BOTH(test_lease_expiry_and_count_once),
		BOTH(test_progress_renews_lease),
		BOTH(test_forbid_delete_and_abort),
		BOTH(test_workers_and_failed_keys),
		BOTH(test_stale_and_stranger),
		BOTH(test_stopped_attempt),
		BOTH(test_get_again_same_attempt),
		cmocka_unit_test(test_restarted_manager),
		BOTH(test_malformed_and_oversized),
		BOTH(test_worker_without_manager_stops_run),
		BOTH(test_no_worker_left),
		BOTH(test_wrong_config_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
