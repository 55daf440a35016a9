/* Selection options: parsers and the path/attribute predicates. */
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

#include "../../common/select.h"
#include "../../common/store/store.h"

static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint64_t want;
	} ok[] = { { "0", 0 },          { "100", 100 },          { "10K", 10240 },
		   { "1.5M", 1572864 }, { "2G", 2147483648ull }, { "1T", 1099511627776ull },
		   { "4k", 4096 },      { "3KiB", 3072 },        { "7B", 7 } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 1;
		if (!sm_parse_size(ok[i].in, &v) || v != ok[i].want)
			fail_msg("size '%s': got %llu", ok[i].in, (unsigned long long)v);
	}
	static const char *const bad[] = {
		"", "K", "10Q", "-1", "1.5", "1e3", "0x10", "5 K", "inf"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v;
		if (sm_parse_size(bad[i], &v))
			fail_msg("size '%s' should be refused", bad[i]);
	}
}

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int64_t secs;
	} ok[] = { { "90", 90 },     { "1h30m", 5400 }, { "2d", 172800 },     { "1.5h", 5400 },
		   { "1w", 604800 }, { "10s", 10 },     { "1d2h3m4s", 93784 } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t ns = 0;
		if (!sm_parse_duration(ok[i].in, &ns) || ns != ok[i].secs * 1000000000)
			fail_msg("duration '%s': got %lld ns", ok[i].in, (long long)ns);
	}
	static const char *const bad[] = { "", "3x", "h", "1h30", "-5", "1 h" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ns;
		if (sm_parse_duration(bad[i], &ns))
			fail_msg("duration '%s' should be refused", bad[i]);
	}
}

static void test_times(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	int64_t ns = 0;
	assert_true(sm_parse_time("2006-01-02", &ns));
	assert_int_equal(ns, 1136160000LL * 1000000000);
	assert_true(sm_parse_time("2006-01-02 15:04:05", &ns));
	assert_int_equal(ns, 1136214245LL * 1000000000);
	assert_true(sm_parse_time("2006-01-02T15:04:05Z", &ns));
	assert_int_equal(ns, 1136214245LL * 1000000000);
	assert_true(sm_parse_time("2006-01-02T15:04:05+07:00", &ns));
	assert_int_equal(ns, (1136214245LL - 7 * 3600) * 1000000000);
	assert_true(sm_parse_time("2006-01-02T15:04:05.5-01:30", &ns));
	assert_int_equal(ns, (1136214245LL + 5400) * 1000000000 + 500000000);
	assert_true(sm_parse_time("1700-01-01T00:00:00Z", &ns));
	assert_int_equal(ns, -8520336000LL * 1000000000);
	static const char *const bad[] = {
		"", "2006-13-01", "2006-02-30", "2006-1-2", "yesterday", "2006-01-02 25:00:00",
		"2006-01-02T15:04", "2006-01-02Z",
		/* outside what int64 nanoseconds hold (found by fuzz_s3xml) */
		"1000-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "9999-12-31"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sm_parse_time(bad[i], &ns))
			fail_msg("time '%s' should be refused", bad[i]);
}

static void test_files_from(void **state)
{
	(void)state;
	char path[] = "/tmp/sm-filesfrom-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "a/x.c\n./c/\n/d/e/f\n\nb\nb\r\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct sm_select s = { 0 };
	struct sm_diag d;
	assert_int_equal(sm_fileset_load(path, &s.files, &d), SM_OK);
	unlink(path);
	assert_int_equal(s.files->n, 4); /* duplicates and empty lines dropped */
	static const struct {
		const char *key;
		bool in;
	} cases[] = { { "a/x.c", true }, { "a/", true },    { "a/y.c", false }, { "c/", true },
		      { "c/z", true },   { "c/z/w", true }, { "cc", false },    { "d/", true },
		      { "d/e/", true },  { "d/e/f", true }, { "d/e/g", false }, { "b", true },
		      { "b/", false },   { "x", false } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sm_select_path(&s, cases[i].key) != cases[i].in)
			fail_msg("files-from: '%s' should be %s", cases[i].key,
			         cases[i].in ? "in" : "out");
	sm_select_release(&s);
	assert_int_equal(sm_fileset_load("/nonexistent/list", &s.files, &d), SM_ENOENT);
	assert_non_null(strstr(d.msg, "/nonexistent/list"));
}

static void test_predicates(void **state)
{
	(void)state;
	struct sm_select s = { .start = "b",
		               .end = "d/",
		               .has_min_size = true,
		               .min_size = 10,
		               .has_max_size = true,
		               .max_size = 20 };
	assert_false(sm_select_path(&s, "a"));
	assert_true(sm_select_path(&s, "b"));
	assert_true(sm_select_path(&s, "d/"));
	assert_false(sm_select_path(&s, "d/x"));
	struct sm_entry e = { .key = "f", .size = 5, .mode = S_IFREG | 0644 };
	assert_false(sm_select_attr(&s, &e));
	e.size = 15;
	assert_true(sm_select_attr(&s, &e));
	e.size = 25;
	assert_false(sm_select_attr(&s, &e));
	e.mode = S_IFDIR | 0755; /* directories pass */
	assert_true(sm_select_attr(&s, &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),      cmocka_unit_test(test_durations),
		cmocka_unit_test(test_times),      cmocka_unit_test(test_files_from),
		cmocka_unit_test(test_predicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
