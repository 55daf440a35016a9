/*
 * The whole engine in one process (planner, dispatch, worker threads) on
 * temporary trees, with the fault-injecting store wrapper failing the Nth
 * call: failed keys are counted, transient errors retried, the run goes on,
 * and nothing is deleted after a listing error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/log.h"
#include "../../manager/run.h"

struct trees {
	char root[64];
	char src[96];
	char dst[96];
};

static void write_file(const char *path, size_t size)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < size; i++)
		fputc('a' + (int)(i % 26), f);
	fclose(f);
}

static void mkpath(const char *dir, const char *rel, size_t size)
{
	char p[256];
	snprintf(p, sizeof(p), "%s%s", dir, rel);
	for (char *s = p + strlen(dir); (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	write_file(p, size);
}

static bool exists(const char *dir, const char *rel)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s%s", dir, rel);
	return lstat(p, &st) == 0;
}

static int setup(void **state)
{
	struct trees *t = calloc(1, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/sm-engine-XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->src, sizeof(t->src), "%s/src/", t->root);
	snprintf(t->dst, sizeof(t->dst), "%s/dst/", t->root);
	mkdir(t->src, 0755);
	for (int i = 0; i < 20; i++) {
		char rel[32];
		snprintf(rel, sizeof(rel), "d%d/f%02d", i % 4, i);
		mkpath(t->src, rel, 100 + (size_t)i);
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct trees *t = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	assert_int_equal(system(cmd), 0);
	free(t);
	return 0;
}

static int run_opts(struct trees *t, const char *fault, struct sm_opts *o, struct sm_stats *st)
{
	o->src = t->src;
	o->dst = t->dst;
	o->fault_spec = fault;
	o->log_level = SM_LOG_QUIET;
	sm_log_threshold = SM_LOG_QUIET;
	return sm_run(o, st);
}

static int run(struct trees *t, const char *fault, bool delete_dst, int threads,
               int64_t max_failure, struct sm_stats *st)
{
	struct sm_opts o;
	sm_opts_defaults(&o);
	o.src = t->src;
	o.dst = t->dst;
	o.threads = threads;
	o.delete_dst = delete_dst;
	o.dirs = delete_dst;
	o.max_failure = max_failure;
	o.fault_spec = fault;
	o.log_level = SM_LOG_QUIET;
	sm_log_threshold = SM_LOG_QUIET;
	return sm_run(&o, st);
}

static void test_clean_run(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	assert_int_equal(run(t, NULL, false, 4, 0, &st), 0);
	assert_int_equal(st.found, 20);
	assert_int_equal(st.copied, 20);
	assert_int_equal(st.failed, 0);
	assert_int_equal(run(t, NULL, false, 4, 0, &st), 0);
	assert_int_equal(st.copied, 0);
	assert_int_equal(st.skipped, 20);
}

static void test_transient_put_is_retried(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	assert_int_equal(run(t, "dst=put:3:transient,put:7:transient", false, 2, 0, &st), 0);
	assert_int_equal(st.copied, 20);
	assert_int_equal(st.failed, 0);
}

static void test_permanent_put_fails_one_key(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	assert_int_equal(run(t, "dst=put:5", false, 3, 0, &st), 1);
	assert_int_equal(st.copied, 19);
	assert_int_equal(st.failed, 1);
	/* the next run copies just the missing key */
	assert_int_equal(run(t, NULL, false, 3, 0, &st), 0);
	assert_int_equal(st.copied, 1);
}

static void test_read_failures_and_max_failure(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	/* every read from the 2nd on fails for good: stop after 3 failures */
	assert_int_equal(run(t, "src=read:2:sticky", false, 1, 3, &st), 1);
	assert_true(st.failed >= 3);
	assert_true(st.copied + st.failed < 20);
}

static void test_no_delete_after_listing_error(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	assert_int_equal(run(t, NULL, true, 2, 0, &st), 0);
	mkpath(t->dst, "extra/x", 3);
	mkpath(t->dst, "d0/zz", 3);
	/* the 4th SRC listing step fails: nothing may be deleted */
	assert_int_equal(run(t, "src=list:4", true, 2, 0, &st), 1);
	assert_int_equal(st.deleted, 0);
	assert_true(exists(t->dst, "extra/x"));
	assert_true(exists(t->dst, "d0/zz"));
	/* a clean run deletes them, directories after their contents */
	assert_int_equal(run(t, NULL, true, 2, 0, &st), 0);
	assert_int_equal(st.deleted, 3); /* d0/zz, extra/x, extra/ */
	assert_false(exists(t->dst, "extra"));
	assert_false(exists(t->dst, "d0/zz"));
}

static void test_dst_listing_error(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	assert_int_equal(run(t, NULL, true, 2, 0, &st), 0);
	mkpath(t->dst, "extra/x", 3);
	assert_int_equal(run(t, "dst=list:2:sticky", true, 2, 0, &st), 1);
	assert_int_equal(st.deleted, 0);
	assert_true(exists(t->dst, "extra/x"));
}

static void path_of(char *buf, size_t n, const char *dir, const char *rel)
{
	snprintf(buf, n, "%s%s", dir, rel);
}

/* chown clears setuid: it must come before chmod, or --perms loses it. */
static void test_perms_keep_setuid(void **state)
{
	struct trees *t = *state;
	char p[256];
	path_of(p, sizeof(p), t->src, "d1/f01");
	assert_int_equal(chmod(p, 04755), 0);
	struct sm_opts o;
	sm_opts_defaults(&o);
	o.perms = true;
	struct sm_stats st;
	assert_int_equal(run_opts(t, NULL, &o, &st), 0);
	struct stat sb;
	path_of(p, sizeof(p), t->dst, "d1/f01");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 04755);
	assert_int_equal(run_opts(t, NULL, &o, &st), 0);
	assert_int_equal(st.copied, 0); /* and the next run sees nothing to fix */
}

/* A fifo on SRC is not synced, and protects its DST namesake from deletion. */
static void test_special_file_keeps_dst(void **state)
{
	struct trees *t = *state;
	char p[256];
	path_of(p, sizeof(p), t->src, "d0/pipe");
	assert_int_equal(mkfifo(p, 0644), 0);
	mkdir(t->dst, 0755);
	mkpath(t->dst, "d0/pipe", 5);
	struct sm_opts o;
	sm_opts_defaults(&o);
	o.delete_dst = true;
	struct sm_stats st;
	assert_int_equal(run_opts(t, NULL, &o, &st), 0);
	assert_int_equal(st.deleted, 0);
	assert_true(exists(t->dst, "d0/pipe"));
}

/* A DST listing that lost an entry must not make existing keys look new. */
static void test_partial_dst_listing_no_overwrite(void **state)
{
	struct trees *t = *state;
	struct sm_stats st;
	assert_int_equal(run(t, NULL, false, 2, 0, &st), 0);
	for (int i = 0; i < 20; i++) { /* DST now differs everywhere */
		char rel[32];
		snprintf(rel, sizeof(rel), "d%d/f%02d", i % 4, i);
		mkpath(t->dst, rel, 7);
	}
	struct sm_opts o;
	sm_opts_defaults(&o);
	o.ignore_existing = true;
	o.threads = 1;
	assert_int_equal(run_opts(t, "dst=list:3", &o, &st), 1); /* one DST entry lost */
	assert_int_equal(st.copied, 0);
	char p[256];
	struct stat sb;
	for (int i = 0; i < 20; i++) {
		char rel[32];
		snprintf(rel, sizeof(rel), "d%d/f%02d", i % 4, i);
		path_of(p, sizeof(p), t->dst, rel);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_size, 7);
	}
}

/* mtimes before 1970 with a fraction of a second copy exactly. */
static void test_pre_epoch_mtime(void **state)
{
	struct trees *t = *state;
	char p[256];
	path_of(p, sizeof(p), t->src, "d2/f02");
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
		                  { .tv_sec = -2, .tv_nsec = 500000000 } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	struct sm_stats st;
	assert_int_equal(run(t, NULL, false, 2, 0, &st), 0);
	struct stat sb;
	path_of(p, sizeof(p), t->dst, "d2/f02");
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mtim.tv_sec, -2);
	assert_int_equal(sb.st_mtim.tv_nsec, 500000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transient_put_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permanent_put_fails_one_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_failures_and_max_failure, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_no_delete_after_listing_error, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_dst_listing_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_perms_keep_setuid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_file_keeps_dst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_dst_listing_no_overwrite, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_pre_epoch_mtime, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
