/* Range cutting: the tasks tile the key space, stay inside their bounds
 * and respect the key/byte limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../manager/plan.h"

struct seen {
	char after[64][64];
	char last[64][64];
	bool open_end[64];
	size_t keys[64];
	char first_key[64][64];
	int n;
	uint64_t bytes[64];
};

static enum sm_err record(void *arg, Syncmgr__Task *t, struct sm_diag *d)
{
	(void)d;
	struct seen *s = arg;
	assert_true(s->n < 64);
	snprintf(s->after[s->n], 64, "%.*s", (int)t->after.len, t->after.data);
	snprintf(s->last[s->n], 64, "%.*s", (int)t->last.len, t->last.data);
	s->open_end[s->n] = t->open_end;
	s->keys[s->n] = t->n_src;
	s->first_key[s->n][0] = '\0';
	uint64_t b = 0;
	for (size_t i = 0; i < t->n_src; i++) {
		char k[64];
		snprintf(k, sizeof(k), "%.*s", (int)t->src[i]->key.len, t->src[i]->key.data);
		if (i == 0)
			strcpy(s->first_key[s->n], k);
		/* every key inside (after, last] */
		if (s->after[s->n][0])
			assert_true(strcmp(k, s->after[s->n]) > 0);
		if (!t->open_end)
			assert_true(strcmp(k, s->last[s->n]) <= 0);
		b += t->src[i]->size;
	}
	s->bytes[s->n] = b;
	s->n++;
	return SM_OK;
}

static void feed(struct sm_cutter *c, int n, uint64_t size)
{
	struct sm_diag d;
	for (int i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%05d", i);
		struct sm_entry e = { .key = key, .size = size, .mode = S_IFREG | 0644 };
		assert_int_equal(sm_cutter_add(c, &e, &d), SM_OK);
		if (sm_cutter_full(c, false, 0))
			assert_int_equal(sm_cutter_cut(c, key, &d), SM_OK);
	}
	assert_int_equal(sm_cutter_cut(c, NULL, &d), SM_OK);
}

static void test_tiles_by_keys(void **state)
{
	(void)state;
	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	cfg.max_keys = 10;
	struct seen s = { 0 };
	struct sm_cutter c;
	assert_int_equal(sm_cutter_init(&c, &cfg, record, &s), SM_OK);
	feed(&c, 25, 1);
	sm_cutter_release(&c);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.after[0], "");
	assert_string_equal(s.last[0], "k00009");
	assert_string_equal(s.after[1], "k00009");
	assert_string_equal(s.last[1], "k00019");
	assert_string_equal(s.after[2], "k00019");
	assert_true(s.open_end[2]);
	assert_int_equal(s.keys[0], 10);
	assert_int_equal(s.keys[2], 5);
}

static void test_exact_multiple_ends_with_empty_open_task(void **state)
{
	(void)state;
	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	cfg.max_keys = 5;
	struct seen s = { 0 };
	struct sm_cutter c;
	assert_int_equal(sm_cutter_init(&c, &cfg, record, &s), SM_OK);
	feed(&c, 10, 1);
	sm_cutter_release(&c);
	/* the open-ended tail covers DST keys after the last SRC key */
	assert_int_equal(s.n, 3);
	assert_int_equal(s.keys[2], 0);
	assert_true(s.open_end[2]);
	assert_string_equal(s.after[2], "k00009");
}

static void test_bytes_bound(void **state)
{
	(void)state;
	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	cfg.max_bytes = 100;
	struct seen s = { 0 };
	struct sm_cutter c;
	assert_int_equal(sm_cutter_init(&c, &cfg, record, &s), SM_OK);
	feed(&c, 4, 150); /* each large entry gets a task of its own */
	sm_cutter_release(&c);
	assert_int_equal(s.n, 5);
	for (int i = 0; i < 4; i++)
		assert_int_equal(s.keys[i], 1);
}

static void test_empty_source(void **state)
{
	(void)state;
	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	struct seen s = { 0 };
	struct sm_cutter c;
	assert_int_equal(sm_cutter_init(&c, &cfg, record, &s), SM_OK);
	feed(&c, 0, 0);
	sm_cutter_release(&c);
	/* one open task over the whole space: DST-only keys are still seen */
	assert_int_equal(s.n, 1);
	assert_string_equal(s.after[0], "");
	assert_true(s.open_end[0]);
}

static void test_hungry_cut_needs_keys_or_age(void **state)
{
	(void)state;
	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	cfg.min_keys = 4;
	cfg.min_age_ns = 1000;
	struct seen s = { 0 };
	struct sm_cutter c;
	struct sm_diag d;
	assert_int_equal(sm_cutter_init(&c, &cfg, record, &s), SM_OK);
	assert_false(sm_cutter_full(&c, true, sm_now_ns())); /* empty: never */
	struct sm_entry e = { .key = "a", .size = 1, .mode = S_IFREG | 0644 };
	assert_int_equal(sm_cutter_add(&c, &e, &d), SM_OK);
	assert_false(sm_cutter_full(&c, false, c.started_ns + 5000)); /* nobody waits */
	assert_false(sm_cutter_full(&c, true, c.started_ns));         /* young and small */
	assert_true(sm_cutter_full(&c, true, c.started_ns + 5000));   /* old enough */
	sm_cutter_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiles_by_keys),
		cmocka_unit_test(test_exact_multiple_ends_with_empty_open_task),
		cmocka_unit_test(test_bytes_bound),
		cmocka_unit_test(test_empty_source),
		cmocka_unit_test(test_hungry_cut_needs_keys_or_age),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
