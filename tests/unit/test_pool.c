/* The transfer pool: every job runs once, waiting runs a job nobody took,
 * the budget never goes negative, a NULL pool runs jobs in the caller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/pool.h"
#include "../../common/util.h"

struct tjob {
	struct sm_job job; /* first */
	int runs;
	unsigned sleep_ms;
};

static int active, max_active;

static void tjob_run(struct sm_job *j)
{
	struct tjob *t = (struct tjob *)j;
	int now = __atomic_add_fetch(&active, 1, __ATOMIC_RELAXED);
	int m = __atomic_load_n(&max_active, __ATOMIC_RELAXED);
	while (now > m && !__atomic_compare_exchange_n(&max_active, &m, now, false,
	                                               __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (t->sleep_ms)
		sm_sleep_ms(t->sleep_ms);
	__atomic_fetch_add(&t->runs, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
}

static void run_jobs(struct sm_pool *p, int n, unsigned sleep_ms)
{
	struct tjob jobs[64] = { 0 };
	assert_true(n <= 64);
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct tjob){ .job = { .fn = tjob_run }, .sleep_ms = sleep_ms };
		sm_pool_submit(p, &jobs[i].job);
	}
	/* wait out of order: the last ones first */
	for (int i = n - 1; i >= 0; i--)
		sm_pool_wait(p, &jobs[i].job);
	for (int i = 0; i < n; i++)
		assert_int_equal(jobs[i].runs, 1);
}

static void test_pool_runs_each_job_once(void **state)
{
	(void)state;
	struct sm_pool *p = NULL;
	struct sm_diag d;
	assert_int_equal(sm_pool_new(4, 0, &p, &d), SM_OK);
	for (int round = 0; round < 50; round++)
		run_jobs(p, 64, round % 10 == 0 ? 1 : 0);
	sm_pool_free(p);
}

static void test_pool_without_threads_runs_in_waiter(void **state)
{
	(void)state;
	struct sm_pool *p = NULL;
	struct sm_diag d;
	assert_int_equal(sm_pool_new(0, 0, &p, &d), SM_OK);
	run_jobs(p, 16, 0);
	sm_pool_free(p);
	run_jobs(NULL, 16, 0); /* no pool: each runs as it is submitted */
}

static void test_pool_jobs_overlap(void **state)
{
	(void)state;
	struct sm_pool *p = NULL;
	struct sm_diag d;
	assert_int_equal(sm_pool_new(8, 0, &p, &d), SM_OK);
	/* jobs that sleep: pool threads run them side by side */
	max_active = 0;
	run_jobs(p, 8, 50);
	assert_true(max_active > 1);
	sm_pool_free(p);
}

static void test_pool_budget(void **state)
{
	(void)state;
	struct sm_pool *p = NULL;
	struct sm_diag d;
	assert_false(sm_pool_reserve(NULL, 1));
	assert_int_equal(sm_pool_new(2, 100, &p, &d), SM_OK);
	assert_true(sm_pool_reserve(p, 60));
	assert_false(sm_pool_reserve(p, 60));
	assert_true(sm_pool_reserve(p, 40));
	assert_false(sm_pool_reserve(p, 1));
	sm_pool_unreserve(p, 60);
	assert_true(sm_pool_reserve(p, 60));
	sm_pool_unreserve(p, 100);
	sm_pool_free(p);
	sm_pool_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_runs_each_job_once),
		cmocka_unit_test(test_pool_without_threads_runs_in_waiter),
		cmocka_unit_test(test_pool_jobs_overlap),
		cmocka_unit_test(test_pool_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
