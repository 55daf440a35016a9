/* Protobuf round trips of the manager/worker messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../worker/wire.h"

static void test_task_round_trip(void **state)
{
	(void)state;
	static const char *const keys[] = { "a b/c", "caf\xc3\xa9", "line\nbreak", "\xff\xfe raw" };
	struct sm_entry ents[4];
	Syncmgr__Entry pe[4];
	Syncmgr__Entry *pp[4];
	for (int i = 0; i < 4; i++) {
		ents[i] = (struct sm_entry){ .key = (char *)keys[i],
			                     .size = (uint64_t)i << 40,
			                     .mtime_ns = -1000 + i,
			                     .mode = S_IFREG | 0640,
			                     .uid = 1000,
			                     .gid = 100,
			                     .link = i == 2 ? "../target" : NULL };
		sm_wire_entry_to_pb(&ents[i], &pe[i]);
		pp[i] = &pe[i];
	}
	Syncmgr__Task t = SYNCMGR__TASK__INIT;
	t.id = 42;
	t.after.data = (uint8_t *)"after";
	t.after.len = 5;
	t.open_end = true;
	t.n_src = 4;
	t.src = pp;
	Syncmgr__Reply rep = SYNCMGR__REPLY__INIT;
	rep.body_case = SYNCMGR__REPLY__BODY_TASK;
	rep.task = &t;
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_reply(&rep, &len);
	assert_non_null(buf);
	/* the dispatch appends allow_delete to the packed reply */
	len = sm_wire_append_varint(buf, len, 10, 1);
	len = sm_wire_append_varint(buf, len, 11, UINT64_MAX); /* the attempt */
	Syncmgr__Reply *got = syncmgr__reply__unpack(NULL, len, buf);
	assert_non_null(got);
	assert_int_equal(got->body_case, SYNCMGR__REPLY__BODY_TASK);
	assert_true(got->allow_delete);
	assert_true(got->attempt == UINT64_MAX);
	assert_int_equal(got->task->id, 42);
	assert_true(got->task->open_end);
	assert_int_equal(got->task->n_src, 4);
	for (int i = 0; i < 4; i++) {
		const Syncmgr__Entry *e = got->task->src[i];
		assert_int_equal(e->key.len, strlen(keys[i]));
		assert_memory_equal(e->key.data, keys[i], e->key.len);
		assert_int_equal(e->size, (uint64_t)i << 40);
		assert_int_equal(e->mtime_ns, -1000 + i);
		assert_int_equal(e->mode, S_IFREG | 0640);
		assert_int_equal(e->uid, 1000);
		assert_int_equal(e->link.len, i == 2 ? 9 : 0);
	}
	syncmgr__reply__free_unpacked(got, NULL);
	free(buf);
}

static void test_stats_round_trip(void **state)
{
	(void)state;
	struct sm_stats s = { 0 };
	uint64_t v = 1;
#define SET(f) s.f = v++;
	SM_STATS_FIELDS(SET)
#undef SET
	Syncmgr__Stats pb;
	sm_wire_stats_to_pb(&s, &pb);
	Syncmgr__Done done = SYNCMGR__DONE__INIT;
	done.task_id = 7;
	done.stats = &pb;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DONE;
	req.done = &done;
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_request(&req, &len);
	assert_non_null(buf);
	Syncmgr__Request *got = syncmgr__request__unpack(NULL, len, buf);
	assert_non_null(got);
	struct sm_stats back;
	sm_wire_stats_from_pb(got->done->stats, &back);
	assert_memory_equal(&s, &back, sizeof(s));
	syncmgr__request__free_unpacked(got, NULL);
	free(buf);
}

static void test_garbage_is_rejected(void **state)
{
	(void)state;
	uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01 };
	assert_null(syncmgr__reply__unpack(NULL, sizeof(junk), junk));
	assert_null(syncmgr__request__unpack(NULL, sizeof(junk), junk));
}

/* The largest Deletes a worker sends (keys of PATH_MAX bytes until the
 * batch is full) fits half the message cap: no message grows with a run. */
static void test_deletes_bounded(void **state)
{
	(void)state;
	static uint8_t key[4096];
	memset(key, 'k', sizeof(key));
	Syncmgr__DelKey *k = calloc(SM_DEL_MSG_KEYS, sizeof(*k));
	Syncmgr__DelKey **kp = calloc(SM_DEL_MSG_KEYS, sizeof(*kp));
	assert_non_null(k);
	assert_non_null(kp);
	size_t n = 0;
	while (!sm_wire_del_batch_full(n, n * sizeof(key)))
		n++;
	assert_true(n > 100 && n <= SM_DEL_MSG_KEYS);
	for (size_t i = 0; i < n; i++) {
		syncmgr__del_key__init(&k[i]);
		k[i].key.data = key;
		k[i].key.len = sizeof(key);
		k[i].src = true;
		k[i].dir = i % 2;
		k[i].size = UINT64_MAX;
		k[i].mtime_ns = INT64_MIN;
		k[i].mtime_bound = true;
		k[i].debris = true;
		kp[i] = &k[i];
	}
	Syncmgr__Deletes dl = SYNCMGR__DELETES__INIT;
	dl.task_id = UINT64_MAX;
	dl.attempt = UINT64_MAX;
	dl.n_keys = n;
	dl.keys = kp;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DELETES;
	req.deletes = &dl;
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_request(&req, &len);
	assert_non_null(buf);
	assert_true(len <= sm_wire_max_msg() / 2);
	Syncmgr__Request *got = syncmgr__request__unpack(NULL, len, buf);
	assert_non_null(got);
	assert_int_equal(got->body_case, SYNCMGR__REQUEST__BODY_DELETES);
	assert_int_equal(got->deletes->n_keys, n);
	assert_true(got->deletes->keys[1]->dir && got->deletes->keys[0]->debris);
	syncmgr__request__free_unpacked(got, NULL);
	free(buf);
	free(kp);
	free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_task_round_trip),
		cmocka_unit_test(test_stats_round_trip),
		cmocka_unit_test(test_garbage_is_rejected),
		cmocka_unit_test(test_deletes_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
