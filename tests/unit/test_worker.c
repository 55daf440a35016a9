/*
 * The real worker (worker/task.c) against a manager played by the test, over
 * inproc:// and tcp://127.0.0.1: a task the manager revokes in a Progress
 * reply stops at once and says so in its Done; a task whose lease cannot be
 * renewed (the manager stops answering) stops by itself; a transfer that
 * stalls (a store fault) is canceled after the stall timeout and retried;
 * every request names the run and the session, and the worker refuses a
 * reply of another run.
 *
 * TCP ports: DISPATCH_PORT + 12 (7842 unless set) and the next four.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
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

#include "../../common/log.h"
#include "../../common/store/store.h"
#include "../../common/url.h"
#include "../../common/util.h"
#include "../../worker/task.h"
#include "../../worker/wire.h"

#define NFILES 200
#define RUN 0x5eed

static int port_base = 7842;
static int url_seq;

static const char *test_url(void **state, char *buf, size_t n)
{
	if (strcmp(*state, "tcp") == 0)
		snprintf(buf, n, "tcp://127.0.0.1:%d", port_base + (url_seq++ % 5));
	else
		snprintf(buf, n, "inproc://test-worker-%d", url_seq++);
	return buf;
}

struct fixture {
	char root[64];
	char src[96];
	char dst[96];
	const char *fault;
	struct sm_opts o;
};

static void fixture_init(struct fixture *f, const char *fault)
{
	snprintf(f->root, sizeof(f->root), "/tmp/sm-test-worker-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->src, sizeof(f->src), "%s/src/", f->root);
	snprintf(f->dst, sizeof(f->dst), "%s/dst/", f->root);
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(mkdir(f->dst, 0755), 0);
	for (int i = 0; i < NFILES; i++) {
		char p[160];
		snprintf(p, sizeof(p), "%sf%03d", f->src, i);
		FILE *fp = fopen(p, "w");
		assert_non_null(fp);
		fprintf(fp, "file %d\n", i);
		fclose(fp);
	}
	f->fault = fault;
	sm_opts_defaults(&f->o);
}

/* The worker's whole configuration: the one message it starts from. */
static uint8_t *fixture_hello(struct fixture *f, const char *url, unsigned lease_ms,
                              unsigned stall_ms, size_t *len)
{
	struct sm_url su, du;
	struct sm_diag d;
	assert_int_equal(sm_url_parse(f->src, &su, &d), SM_OK);
	assert_int_equal(sm_url_parse(f->dst, &du, &d), SM_OK);
	struct sm_store_cfg sc = { .label = "SRC", .follow_links = true, .must_exist = true };
	struct sm_store_cfg dc = { .label = "DST" };
	struct sm_wire_hello h = { .run_id = RUN,
		                   .url = url,
		                   .worker = "test",
		                   .threads = 1,
		                   .lease_ms = lease_ms,
		                   .stall_ms = stall_ms,
		                   .pool_budget = 16u << 20,
		                   .o = &f->o,
		                   .src = { &su, &sc, NULL },
		                   .dst = { &du, &dc, f->fault } };
	char hash[SM_WIRE_HASH_HEX];
	uint8_t *buf = sm_wire_hello_pack(&h, len, hash, &d);
	assert_non_null(buf);
	assert_int_equal(strlen(hash), 64);
	sm_url_release(&su);
	sm_url_release(&du);
	return buf;
}

static int count_dst(const struct fixture *f)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls %s | wc -l", f->dst);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	int n = -1;
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void fixture_release(struct fixture *f)
{
	sm_opts_release(&f->o);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->root);
	assert_int_equal(system(cmd), 0);
}

/* The task: every SRC file, (after "", open end]. */
static uint8_t *pack_task(const struct fixture *f, size_t *len)
{
	static char keys[NFILES][8];
	Syncmgr__Entry *e = calloc(NFILES, sizeof(*e));
	Syncmgr__Entry **ep = calloc(NFILES, sizeof(*ep));
	assert_true(e && ep);
	for (int i = 0; i < NFILES; i++) {
		snprintf(keys[i], sizeof(keys[i]), "f%03d", i);
		char p[160];
		snprintf(p, sizeof(p), "%sf%03d", f->src, i);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		struct sm_entry se = { .key = keys[i],
			               .size = (uint64_t)st.st_size,
			               .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
			                           st.st_mtim.tv_nsec,
			               .mode = st.st_mode };
		sm_wire_entry_to_pb(&se, &e[i]);
		ep[i] = &e[i];
	}
	Syncmgr__Task t = SYNCMGR__TASK__INIT;
	t.id = 1;
	t.open_end = true;
	t.n_src = NFILES;
	t.src = ep;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_TASK;
	rep.task = &t;
	rep.attempt = 5;
	rep.run_id = RUN;
	uint8_t *buf = sm_wire_pack_reply(&rep, len);
	assert_non_null(buf);
	free(e);
	free(ep);
	return buf;
}

static void reply(nng_socket s, Syncmgr__Reply *rep)
{
	if (!rep->run_id)
		rep->run_id = RUN;
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_reply(rep, &len);
	assert_non_null(buf);
	assert_int_equal(nng_send(s, buf, len, 0), 0);
	free(buf);
}

static void reply_ack(nng_socket s, uint64_t *rev, size_t nrev)
{
	Syncmgr__Ack ack = SYNCMGR__ACK__INIT;
	ack.revoked_attempts = rev;
	ack.n_revoked_attempts = nrev;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_ACK;
	rep.ack = &ack;
	reply(s, &rep);
}

enum scenario { REVOKE, SILENT, NORMAL };

struct outcome {
	bool done;
	bool stopped;
	uint64_t copied;
	uint64_t failed;
	int progress_with_task;
	int joins;
	int says;           /* --dry lines "copy KEY" */
	int copied_lines;   /* -v lines "copied 'KEY' (...)" */
	bool stray_attempt; /* lines of an attempt that is not the task's */
};

/* Play the manager on `url` for one worker thread and its reporter until
 * the worker is done; `sc` says what to do once the task has copied a few
 * keys. */
static struct outcome play_manager(struct fixture *f, const char *url, enum scenario sc,
                                   unsigned lease_ms, unsigned stall_ms)
{
	nng_socket s;
	assert_int_equal(nng_rep0_open(&s), 0);
	assert_int_equal(nng_listen(s, url, NULL, 0), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 30000);
	struct sm_worker *wk = NULL;
	struct sm_diag d;
	size_t hlen = 0;
	uint8_t *hello = fixture_hello(f, url, lease_ms, stall_ms, &hlen);
	assert_int_equal(sm_worker_start(hello, hlen, NULL, &wk, &d), SM_OK);
	free(hello);
	size_t tlen = 0;
	uint8_t *task = pack_task(f, &tlen);
	struct outcome out = { 0 };
	bool handed = false;
	uint64_t session = 0;
	for (;;) {
		nng_msg *m = NULL;
		int rv = nng_recvmsg(s, &m, 0);
		if (rv != 0)
			fail_msg("the worker went silent: %s", nng_strerror(rv));
		Syncmgr__Request *req =
		        syncmgr__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		nng_msg_free(m);
		assert_non_null(req);
		assert_true(req->run_id == RUN);
		assert_true(req->session != 0);
		if (!session)
			session = req->session;
		assert_true(req->session == session);
		if (req->body_case == SYNCMGR__REQUEST__BODY_BYE) {
			reply_ack(s, NULL, 0); /* every thread ended */
			syncmgr__request__free_unpacked(req, NULL);
			break;
		} else if (req->body_case == SYNCMGR__REQUEST__BODY_JOIN) {
			assert_int_equal(req->join->version, SM_WIRE_VERSION);
			assert_int_equal(req->join->config_hash.len, 64);
			out.joins++;
			reply_ack(s, NULL, 0);
		} else if (req->body_case == SYNCMGR__REQUEST__BODY_LOG) {
			const Syncmgr__Log *lg = req->log;
			if (lg->attempt && lg->attempt != 5)
				out.stray_attempt = true;
			for (size_t i = 0; i < lg->n_lines; i++) {
				const Syncmgr__LogLine *ln = lg->lines[i];
				if (ln->say && strcmp(ln->say, "copy") == 0)
					out.says++;
				if (!*ln->say && ln->text.len > 8 &&
				    memcmp(ln->text.data, "copied '", 8) == 0)
					out.copied_lines++;
			}
			reply_ack(s, NULL, 0);
		} else if (req->body_case == SYNCMGR__REQUEST__BODY_GET) {
			if (!handed) {
				handed = true;
				assert_int_equal(nng_send(s, task, tlen, 0), 0);
			} else {
				Syncmgr__Shutdown sh = SYNCMGR__SHUTDOWN__INIT;
				Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
				rep.body_case = SYNCMGR__REPLY__BODY_SHUTDOWN;
				rep.shutdown = &sh;
				reply(s, &rep);
			}
		} else if (req->body_case == SYNCMGR__REQUEST__BODY_PROGRESS) {
			const Syncmgr__Progress *pr = req->progress;
			bool late = false;
			for (size_t i = 0; i < pr->n_tasks; i++) {
				assert_true(pr->tasks[i]->attempt == 5);
				late = late || pr->tasks[i]->stats->copied >= 3;
				out.progress_with_task++;
			}
			if (late && sc == REVOKE) {
				uint64_t rev = 5;
				reply_ack(s, &rev, 1);
			} else if (late && sc == SILENT) {
				/* no answer: the worker's lease cannot be renewed */
			} else {
				reply_ack(s, NULL, 0);
			}
		} else if (req->body_case == SYNCMGR__REQUEST__BODY_DONE) {
			const Syncmgr__Done *dn = req->done;
			assert_true(dn->task_id == 1 && dn->attempt == 5);
			out.done = true;
			out.stopped = dn->stopped;
			out.copied = dn->stats->copied;
			out.failed = dn->stats->failed;
			reply_ack(s, NULL, 0);
		} else {
			reply_ack(s, NULL, 0);
		}
		syncmgr__request__free_unpacked(req, NULL);
	}
	assert_int_equal(sm_worker_join(wk, &d), SM_OK);
	assert_true(out.joins >= 1); /* the task thread (a session joins once) */
	free(task);
	nng_close(s);
	return out;
}

/* The manager handed the task to someone else: the worker stops it at
 * once, mid-run, and its Done says it stopped. */
static void test_revoked_task_stops(void **state)
{
	char url[64];
	struct fixture f;
	fixture_init(&f, "put:1:crawl");
	struct outcome out = play_manager(&f, test_url(state, url, sizeof(url)), REVOKE, 30000, 0);
	assert_true(out.done);
	assert_true(out.stopped);
	int n = count_dst(&f);
	if (n >= NFILES)
		fail_msg("all %d keys were copied after the task was revoked", n);
	fixture_release(&f);
}

/* The manager stops answering: the task stops writing by itself once its
 * lease could have ended (self fencing). */
static void test_unrenewed_task_fences_itself(void **state)
{
	char url[64];
	struct fixture f;
	fixture_init(&f, "put:1:crawl");
	struct outcome out = play_manager(&f, test_url(state, url, sizeof(url)), SILENT, 1200, 0);
	assert_true(out.done);
	assert_true(out.stopped);
	int n = count_dst(&f);
	if (n >= NFILES)
		fail_msg("all %d keys were copied without a lease", n);
	fixture_release(&f);
}

/* A transfer that moves nothing (put:2:stall) is canceled after the stall
 * timeout and retried: every key arrives, none failed. */
static void test_stalled_transfer_retried(void **state)
{
	char url[64];
	struct fixture f;
	fixture_init(&f, "put:2:stall");
	struct outcome out =
	        play_manager(&f, test_url(state, url, sizeof(url)), NORMAL, 30000, 300);
	assert_true(out.done);
	assert_false(out.stopped);
	assert_int_equal(out.failed, 0);
	assert_int_equal(out.copied, NFILES);
	assert_int_equal(count_dst(&f), NFILES);
	fixture_release(&f);
}

/* (h) --dry's lines and -v's lines of the worker travel to the manager
 * (here the test), which prints them: the worker prints nothing itself. */
static void test_lines_go_to_the_manager(void **state)
{
	char url[64];
	struct fixture f;
	fixture_init(&f, NULL);
	f.o.dry = true;
	struct outcome out = play_manager(&f, test_url(state, url, sizeof(url)), NORMAL, 30000, 0);
	assert_true(out.done);
	assert_int_equal(out.says, NFILES);
	assert_int_equal(count_dst(&f), 0);
	assert_false(out.stray_attempt);
	fixture_release(&f);

	fixture_init(&f, NULL);
	int was = sm_log_threshold;
	sm_log_threshold = SM_LOG_INFO; /* -v */
	out = play_manager(&f, test_url(state, url, sizeof(url)), NORMAL, 30000, 0);
	sm_log_threshold = was;
	assert_int_equal(out.copied, NFILES);
	assert_int_equal(out.copied_lines, NFILES);
	assert_false(out.stray_attempt);
	fixture_release(&f);
}

int main(void)
{
	const char *pb = getenv("DISPATCH_PORT");
	if (pb && atoi(pb) > 0)
		port_base = atoi(pb) + 12;
	static const char inproc[] = "inproc", tcp[] = "tcp";
#define BOTH(fn) \
	cmocka_unit_test_prestate(fn, (void *)inproc), cmocka_unit_test_prestate(fn, (void *)tcp)
	const struct CMUnitTest tests[] = {
		BOTH(test_revoked_task_stops),
		BOTH(test_unrenewed_task_fences_itself),
		BOTH(test_stalled_transfer_retried),
		BOTH(test_lines_go_to_the_manager),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
