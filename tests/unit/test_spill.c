/* The external sort (common/spill.c): what comes out is what went in, in
 * order, whatever the budget, the record sizes and the comparator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/spill.h"

struct rec {
	char *p;
	size_t n;
};

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static int desc_cmp(const void *a, size_t alen, const void *b, size_t blen, void *arg)
{
	(void)arg;
	return bytes_cmp(b, blen, a, alen);
}

static int rec_cmp_asc(const void *pa, const void *pb)
{
	const struct rec *a = pa, *b = pb;
	return bytes_cmp(a->p, a->n, b->p, b->n);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* n records of 0..maxlen random bytes from a small alphabet (many ties and
 * common prefixes), some of them huge when huge_every > 0. */
static struct rec *make(size_t n, size_t maxlen, size_t huge_every)
{
	struct rec *v = calloc(n ? n : 1, sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++) {
		size_t len = (size_t)(next_rand() % (maxlen + 1));
		if (huge_every && i % huge_every == 0)
			len = 200000 + (size_t)(next_rand() % 1000); /* above a read buffer */
		v[i].p = malloc(len ? len : 1);
		assert_non_null(v[i].p);
		for (size_t j = 0; j < len; j++)
			v[i].p[j] = (char)("ab/-.\xff"[next_rand() % 6]);
		v[i].n = len;
	}
	return v;
}

static void check(size_t n, size_t maxlen, size_t huge_every, size_t budget, bool desc,
                  bool want_runs)
{
	struct rec *v = make(n, maxlen, huge_every);
	struct sm_spill *s = NULL;
	struct sm_diag d;
	assert_int_equal(sm_spill_new(budget, desc ? desc_cmp : NULL, NULL, &s, &d), SM_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sm_spill_add(s, v[i].p, v[i].n, &d), SM_OK);
	assert_int_equal(sm_spill_sort(s, &d), SM_OK);
	assert_int_equal(sm_spill_count(s), n);
	if (want_runs) {
		assert_true(sm_spill_runs(s) > 1);
		assert_true(sm_spill_disk_bytes(s) > 0);
	}
	qsort(v, n, sizeof(*v), rec_cmp_asc);
	for (size_t k = 0; k < n; k++) {
		size_t i = desc ? n - 1 - k : k;
		const void *rec;
		size_t len;
		assert_int_equal(sm_spill_next(s, &rec, &len, &d), SM_OK);
		assert_int_equal(len, v[i].n);
		assert_memory_equal(rec, v[i].p, len ? len : 0);
	}
	const void *rec;
	size_t len;
	assert_int_equal(sm_spill_next(s, &rec, &len, &d), SM_EOF);
	assert_int_equal(sm_spill_next(s, &rec, &len, &d), SM_EOF);
	sm_spill_free(s);
	for (size_t i = 0; i < n; i++)
		free(v[i].p);
	free(v);
}

static void test_empty(void **state)
{
	(void)state;
	check(0, 10, 0, 4096, false, false);
}

static void test_in_memory(void **state)
{
	(void)state;
	check(1000, 20, 0, 1 << 20, false, false);
}

static void test_many_runs(void **state)
{
	(void)state;
	check(100000, 24, 0, 8192, false, true);
}

static void test_many_runs_descending(void **state)
{
	(void)state;
	check(50000, 24, 0, 8192, true, true);
}

static void test_huge_records(void **state)
{
	(void)state;
	check(40, 100, 7, 4096, false, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),        cmocka_unit_test(test_in_memory),
		cmocka_unit_test(test_many_runs),    cmocka_unit_test(test_many_runs_descending),
		cmocka_unit_test(test_huge_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
