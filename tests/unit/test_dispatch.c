/*
 * Dispatch as a worker sees it: tasks go to whoever asks, a task whose lease
 * expires (its worker went silent) is handed out again, its result is
 * counted once even when the silent worker reports late, progress renews
 * leases, and workers are shut down when everything is done.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/util.h"
#include "../../manager/dispatch.h"
#include "../../worker/task.h"
#include "../../worker/wire.h"

static nng_socket client(const char *url)
{
	nng_socket s;
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	return s;
}

static Syncmgr__Reply *call(nng_socket s, const Syncmgr__Request *req)
{
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_request(req, &len);
	assert_non_null(buf);
	assert_int_equal(nng_send(s, buf, len, 0), 0);
	free(buf);
	nng_msg *m = NULL;
	assert_int_equal(nng_recvmsg(s, &m, 0), 0);
	Syncmgr__Reply *rep = syncmgr__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	assert_non_null(rep);
	return rep;
}

/* Ask until something other than Wait comes back. */
static Syncmgr__Reply *get_task(nng_socket s)
{
	Syncmgr__GetTask get = SYNCMGR__GET_TASK__INIT;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_GET;
	req.get = &get;
	for (int i = 0; i < 50; i++) {
		Syncmgr__Reply *rep = call(s, &req);
		if (rep->body_case != SYNCMGR__REPLY__BODY_WAIT)
			return rep;
		syncmgr__reply__free_unpacked(rep, NULL);
	}
	fail_msg("no task after 50 waits");
	return NULL;
}

/* Report task `id` done with counters `st`; returns the Ack's abort flag. */
static bool done_stats(nng_socket s, uint64_t id, const struct sm_stats *st)
{
	Syncmgr__Stats pb;
	sm_wire_stats_to_pb(st, &pb);
	Syncmgr__Done dn = SYNCMGR__DONE__INIT;
	dn.task_id = id;
	dn.stats = &pb;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DONE;
	req.done = &dn;
	Syncmgr__Reply *rep = call(s, &req);
	assert_int_equal(rep->body_case, SYNCMGR__REPLY__BODY_ACK);
	bool abort = rep->ack->abort;
	syncmgr__reply__free_unpacked(rep, NULL);
	return abort;
}

static void done(nng_socket s, uint64_t id, uint64_t copied)
{
	struct sm_stats st = { .copied = copied };
	done_stats(s, id, &st);
}

static void progress(nng_socket s, uint64_t id)
{
	Syncmgr__Stats pb;
	struct sm_stats st = { .copied = 1 };
	sm_wire_stats_to_pb(&st, &pb);
	Syncmgr__TaskProgress tp = SYNCMGR__TASK_PROGRESS__INIT;
	tp.task_id = id;
	tp.stats = &pb;
	Syncmgr__TaskProgress *tpp = &tp;
	Syncmgr__Progress pr = SYNCMGR__PROGRESS__INIT;
	pr.n_tasks = 1;
	pr.tasks = &tpp;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_PROGRESS;
	req.progress = &pr;
	syncmgr__reply__free_unpacked(call(s, &req), NULL);
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

static void test_lease_expiry_and_count_once(void **state)
{
	(void)state;
	const char *url = "inproc://test-dispatch-lease";
	struct sm_dispatch_cfg cfg = { .url = url, .max_queued = 8, .lease_ms = 300 };
	struct sm_dispatch *dp = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dispatch_start(&cfg, &dp, &d), SM_OK);
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);

	nng_socket a = client(url), b = client(url);
	Syncmgr__Reply *ta = get_task(a); /* a takes task 1 and goes silent */
	assert_int_equal(ta->body_case, SYNCMGR__REPLY__BODY_TASK);
	uint64_t id1 = ta->task->id;
	assert_true(ta->allow_delete);
	syncmgr__reply__free_unpacked(ta, NULL);

	Syncmgr__Reply *tb = get_task(b);
	uint64_t id2 = tb->task->id;
	assert_int_not_equal(id1, id2);
	syncmgr__reply__free_unpacked(tb, NULL);
	done(b, id2, 5);

	/* b asks again: after the lease of task 1 expires, it gets task 1 */
	double t0 = sm_now_s();
	tb = get_task(b);
	assert_int_equal(tb->body_case, SYNCMGR__REPLY__BODY_TASK);
	assert_int_equal(tb->task->id, id1);
	assert_true(sm_now_s() - t0 > 0.1);
	syncmgr__reply__free_unpacked(tb, NULL);
	done(b, id1, 7);
	done(a, id1, 7); /* the silent worker reports late: ignored */

	struct sm_dispatch_snapshot snap;
	sm_dispatch_snapshot(dp, &snap);
	assert_int_equal(snap.stats.copied, 12);

	tb = get_task(b);
	assert_int_equal(tb->body_case, SYNCMGR__REPLY__BODY_SHUTDOWN);
	syncmgr__reply__free_unpacked(tb, NULL);
	sm_dispatch_wait(dp);
	nng_close(a);
	nng_close(b);
	sm_dispatch_stop(dp);
}

/* Send a GetTask on `s` without waiting for the reply. */
static void send_get(nng_socket s)
{
	Syncmgr__GetTask get = SYNCMGR__GET_TASK__INIT;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_GET;
	req.get = &get;
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_request(&req, &len);
	assert_non_null(buf);
	assert_int_equal(nng_send(s, buf, len, 0), 0);
	free(buf);
}

/* The reply to the request outstanding on `s`: NULL while there is none
 * yet (nonblocking), else waits up to the socket's receive timeout. */
static Syncmgr__Reply *recv_reply(nng_socket s, bool block)
{
	nng_msg *m = NULL;
	int rv = nng_recvmsg(s, &m, block ? 0 : NNG_FLAG_NONBLOCK);
	if (!block && rv == NNG_EAGAIN)
		return NULL;
	assert_int_equal(rv, 0);
	Syncmgr__Reply *rep = syncmgr__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	assert_non_null(rep);
	return rep;
}

static void test_progress_renews_lease(void **state)
{
	(void)state;
	const char *url = "inproc://test-dispatch-renew";
	const unsigned lease_ms = 400;
	struct sm_dispatch_cfg cfg = { .url = url, .max_queued = 8, .lease_ms = lease_ms };
	struct sm_dispatch *dp = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dispatch_start(&cfg, &dp, &d), SM_OK);
	push(dp, NULL);
	sm_dispatch_finish(dp);
	nng_socket a = client(url), b = client(url);
	Syncmgr__Reply *ta = get_task(a);
	assert_int_equal(ta->body_case, SYNCMGR__REPLY__BODY_TASK);
	uint64_t id = ta->task->id;
	syncmgr__reply__free_unpacked(ta, NULL);
	/* a keeps reporting for 6 leases while b keeps asking (a GetTask of
	 * b's is always outstanding: parked, answered Wait, asked again), so
	 * the moment the lease lapsed b would get the task: it must get
	 * nothing but Wait meanwhile */
	send_get(b);
	int waits = 0;
	double t0 = sm_now_s();
	while (sm_now_s() - t0 < 6 * lease_ms / 1000.0) {
		progress(a, id);
		sm_sleep_ms(lease_ms / 4);
		Syncmgr__Reply *rb = recv_reply(b, false);
		if (!rb)
			continue;
		if (rb->body_case != SYNCMGR__REPLY__BODY_WAIT)
			fail_msg("b got reply %d (not Wait) %.2f s into a's renewed lease",
			         (int)rb->body_case, sm_now_s() - t0);
		syncmgr__reply__free_unpacked(rb, NULL);
		waits++;
		send_get(b);
	}
	/* b was answered (a GetTask is parked for 0.5 s, then Wait) */
	if (waits < 3)
		fail_msg("b was answered only %d times while a held the task", waits);
	struct sm_dispatch_snapshot snap;
	sm_dispatch_snapshot(dp, &snap);
	assert_int_equal(snap.stats.copied, 1); /* live counters of the task in flight */
	done(a, id, 3);
	/* b's outstanding GetTask: everything is done now */
	Syncmgr__Reply *tb = recv_reply(b, true);
	if (tb->body_case == SYNCMGR__REPLY__BODY_WAIT) {
		syncmgr__reply__free_unpacked(tb, NULL);
		tb = get_task(b);
	}
	assert_int_equal(tb->body_case, SYNCMGR__REPLY__BODY_SHUTDOWN);
	syncmgr__reply__free_unpacked(tb, NULL);
	sm_dispatch_snapshot(dp, &snap);
	assert_int_equal(snap.stats.copied, 3); /* counted once, from a's Done */
	nng_close(a);
	nng_close(b);
	sm_dispatch_stop(dp);
}

static void test_forbid_delete_and_abort(void **state)
{
	(void)state;
	const char *url = "inproc://test-dispatch-abort";
	struct sm_dispatch_cfg cfg = {
		.url = url, .max_queued = 8, .lease_ms = 5000, .max_failure = 2
	};
	struct sm_dispatch *dp = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dispatch_start(&cfg, &dp, &d), SM_OK);
	sm_dispatch_forbid_delete(dp);
	push(dp, "a");
	push(dp, "b");
	nng_socket a = client(url);
	Syncmgr__Reply *ta = get_task(a);
	assert_false(ta->allow_delete); /* a listing failed before it was handed out */
	uint64_t id = ta->task->id;
	syncmgr__reply__free_unpacked(ta, NULL);
	struct sm_stats st = { .failed = 2 };
	assert_true(done_stats(a, id, &st)); /* --max-failure reached: abort */
	ta = get_task(a);
	assert_int_equal(ta->body_case, SYNCMGR__REPLY__BODY_SHUTDOWN);
	assert_true(ta->shutdown->abort);
	syncmgr__reply__free_unpacked(ta, NULL);
	assert_int_not_equal(sm_dispatch_push(dp, &(Syncmgr__Task)SYNCMGR__TASK__INIT, &d), SM_OK);
	nng_close(a);
	sm_dispatch_stop(dp);
}

static void count_fatal(void *arg)
{
	__atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* A request of worker `name` (NULL: unnamed, i.e. "local"). */
static Syncmgr__Reply *call_as(nng_socket s, const char *name, Syncmgr__Request *req)
{
	req->worker = (char *)(name ? name : "");
	return call(s, req);
}

static uint64_t get_as(nng_socket s, const char *name)
{
	Syncmgr__GetTask get = SYNCMGR__GET_TASK__INIT;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_GET;
	req.get = &get;
	for (int i = 0; i < 50; i++) {
		Syncmgr__Reply *rep = call_as(s, name, &req);
		uint64_t id = rep->body_case == SYNCMGR__REPLY__BODY_TASK ? rep->task->id : 0;
		syncmgr__reply__free_unpacked(rep, NULL);
		if (id)
			return id;
	}
	fail_msg("no task after 50 waits");
	return 0;
}

/* Done of task `id` by `name` with `nf` failed keys "NAME-fI". */
static void done_as(nng_socket s, const char *name, uint64_t id, uint64_t copied, size_t nf)
{
	struct sm_stats st = { .copied = copied, .failed = nf };
	Syncmgr__Stats pb;
	sm_wire_stats_to_pb(&st, &pb);
	Syncmgr__FailedKey *fk = calloc(nf ? nf : 1, sizeof(*fk));
	Syncmgr__FailedKey **fkp = calloc(nf ? nf : 1, sizeof(*fkp));
	char(*keys)[32] = calloc(nf ? nf : 1, sizeof(*keys));
	assert_true(fk && fkp && keys);
	for (size_t i = 0; i < nf; i++) {
		syncmgr__failed_key__init(&fk[i]);
		snprintf(keys[i], sizeof(keys[i]), "%s-f%zu", name ? name : "local", i);
		fk[i].key.data = (uint8_t *)keys[i];
		fk[i].key.len = strlen(keys[i]);
		fk[i].error.data = (uint8_t *)"boom";
		fk[i].error.len = 4;
		fkp[i] = &fk[i];
	}
	Syncmgr__Done dn = SYNCMGR__DONE__INIT;
	dn.task_id = id;
	dn.stats = &pb;
	dn.n_failed_keys = nf;
	dn.failed_keys = fkp;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DONE;
	req.done = &dn;
	syncmgr__reply__free_unpacked(call_as(s, name, &req), NULL);
	free(fk);
	free(fkp);
	free(keys);
}

/* Counters per participant ("local" always first, others by the name their
 * requests carry), copies in progress from progress reports, and the run's
 * first failed keys from the Done messages, capped. */
static void test_workers_and_failed_keys(void **state)
{
	(void)state;
	const char *url = "inproc://test-dispatch-workers";
	struct sm_dispatch_cfg cfg = { .url = url, .max_queued = 8, .lease_ms = 30000 };
	struct sm_dispatch *dp = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dispatch_start(&cfg, &dp, &d), SM_OK);
	struct sm_dispatch_worker w[4];
	assert_int_equal(sm_dispatch_workers(dp, w, 4), 1);
	assert_string_equal(w[0].name, "local");
	push(dp, "f");
	push(dp, "m");
	push(dp, NULL);
	sm_dispatch_finish(dp);

	nng_socket l = client(url), r = client(url);
	uint64_t id1 = get_as(l, NULL);
	uint64_t id2 = get_as(r, "host-b");
	uint64_t id3 = get_as(r, "host-b");

	/* host-b reports task 2 with 3 copies in progress */
	Syncmgr__Stats pb;
	struct sm_stats live = { .copied = 5 };
	sm_wire_stats_to_pb(&live, &pb);
	Syncmgr__TaskProgress tp = SYNCMGR__TASK_PROGRESS__INIT;
	tp.task_id = id2;
	tp.stats = &pb;
	Syncmgr__TaskProgress *tpp = &tp;
	Syncmgr__Progress pr = SYNCMGR__PROGRESS__INIT;
	pr.n_tasks = 1;
	pr.tasks = &tpp;
	pr.transfers = 3;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_PROGRESS;
	req.progress = &pr;
	syncmgr__reply__free_unpacked(call_as(r, "host-b", &req), NULL);
	assert_int_equal(sm_dispatch_workers(dp, w, 4), 2);
	assert_string_equal(w[1].name, "host-b");
	assert_int_equal(w[0].tasks_in_flight, 1);
	assert_int_equal(w[1].tasks_in_flight, 2);
	assert_int_equal(w[1].transfers, 3);
	assert_int_equal(w[1].stats.copied, 5);
	assert_int_equal(w[1].tasks_done, 0);

	done_as(l, NULL, id1, 2, 3);
	done_as(r, "host-b", id2, 6, 2);
	sm_dispatch_add_failure(dp, "gone/x", "cannot delete");
	done_as(r, "host-b", id3, 0, 150); /* more than the run keeps */
	done_as(r, "host-b", id3, 0, 150); /* a second Done of it counts nothing */

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
	nng_close(l);
	nng_close(r);
	sm_dispatch_stop(dp);
}

/* A worker that cannot reach its manager stops the run (on_fatal, abort)
 * instead of leaving it to wait for a lease that no one holds. */
static void test_worker_without_manager_stops_run(void **state)
{
	(void)state;
	struct sm_opts o;
	sm_opts_defaults(&o);
	struct sm_wctx w;
	sm_wctx_init(&w, &o, NULL, NULL);
	int fatal = 0;
	w.on_fatal = count_fatal;
	w.fatal_arg = &fatal;
	struct sm_worker *wk = NULL;
	struct sm_diag d;
	struct sm_worker_cfg wcf = { .url = "inproc://test-dispatch-no-manager",
		                     .threads = 2,
		                     .lease_ms = 30000 };
	assert_int_equal(sm_worker_start(&w, &wcf, &wk, &d), SM_OK);
	sm_worker_join(wk); /* returns: every thread gave up */
	assert_true(__atomic_load_n(&fatal, __ATOMIC_SEQ_CST) >= 1);
	assert_true(atomic_load(&w.abort));
	sm_opts_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease_expiry_and_count_once),
		cmocka_unit_test(test_progress_renews_lease),
		cmocka_unit_test(test_forbid_delete_and_abort),
		cmocka_unit_test(test_worker_without_manager_stops_run),
		cmocka_unit_test(test_workers_and_failed_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
