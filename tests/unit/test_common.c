/* Options, keys, sizes and the summary line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/opts.h"
#include "../../common/stats.h"
#include "../../common/url.h"
#include "../../common/util.h"

static enum sm_opts_result parse(struct sm_opts *o, const char *line)
{
	static char buf[512];  /* the parsed options point into it */
	static char *argv[32]; /* match_keys too */
	int argc = 0;
	snprintf(buf, sizeof(buf), "syncmgr %s", line);
	char *save = NULL;
	for (char *t = strtok_r(buf, " ", &save); t && argc < 31; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	sm_opts_defaults(o);
	FILE *devnull = fopen("/dev/null", "w");
	enum sm_opts_result r = sm_opts_parse(o, argc, argv, devnull);
	fclose(devnull);
	return r;
}

static void test_opts_positions_and_forms(void **state)
{
	(void)state;
	struct sm_opts o;
	assert_int_equal(parse(&o, "-u a/ --dirs b/ -p 4 --threads=6 -l --max-failure 3"),
	                 SM_OPTS_RUN);
	assert_true(o.update);
	assert_true(o.dirs);
	assert_true(o.links);
	assert_int_equal(o.threads, 6);
	assert_int_equal(o.max_failure, 3);
	assert_string_equal(o.src, "a/");
	assert_string_equal(o.dst, "b/");
	assert_int_equal(parse(&o, "--limit -1 a b"), SM_OPTS_RUN);
	assert_int_equal(o.limit, -1);
	assert_int_equal(parse(&o, "a/ -p10 b/ -uvl"), SM_OPTS_RUN);
	assert_int_equal(o.threads, 10);
	assert_true(o.update && o.verbose && o.links);
	assert_string_equal(o.dst, "b/");
	assert_int_equal(parse(&o, "-up7 --include=x --exclude * -- -a/ -b/"), SM_OPTS_RUN);
	assert_int_equal(o.threads, 7);
	assert_string_equal(o.src, "-a/");
	assert_string_equal(o.dst, "-b/");
	sm_opts_release(&o);
	assert_int_equal(parse(&o, "--exclude *.h match a.h -- -v -"), SM_OPTS_USAGE);
	sm_opts_release(&o);
	assert_int_equal(parse(&o, "--exclude *.h match a.h -- -v"), SM_OPTS_RUN);
	assert_true(o.match_mode);
	assert_int_equal(o.n_match_keys, 2);
	assert_string_equal(o.match_keys[0], "a.h");
	assert_string_equal(o.match_keys[1], "-v");
	assert_int_equal(o.verbose, 0);
	sm_opts_release(&o);
	assert_int_equal(parse(&o, "match -v -"), SM_OPTS_RUN);
	assert_true(o.match_stdin);
	sm_opts_release(&o);
	assert_int_equal(parse(&o, "a/ --json b/ --metrics :9100"), SM_OPTS_RUN);
	assert_true(o.json);
	assert_string_equal(o.metrics_addr, ":9100");
}

static void test_opts_errors(void **state)
{
	(void)state;
	struct sm_opts o;
	static const char *const bad[] = {
		"--nope a/ b/",
		"-p 0 a/ b/",
		"-p x a/ b/",
		"--limit -2 a/ b/",
		"--worker h a/ b/",

		"--watch a/ b/",
		"--bwlimit 10 a/ b/",
		"a/",
		"",
		"a/ b/ c/",
		"--existing --ignore-existing a/ b/",
		"--threads",
		"a/ b/ --metrics",
		"match",
		"--thr 4 a/ b/",     /* no abbreviations */
		"--manager x a/ b/", /* not --manager-addr */
		"--dirs=yes a/ b/",
		"-p=10 a/ b/",
		"--delete a/ b/",
		"-n a/ b/",
		"--version x",
		"--help x",
		"-vh",
		"match --min-size 1 k",
		"match --files-from /dev/null k",
		"--limit 3 match k",
		"match -p 4 k",
		"match - k",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(&o, bad[i]) != SM_OPTS_USAGE)
			fail_msg("'%s' should be a usage error", bad[i]);
	assert_int_equal(parse(&o, "--help"), SM_OPTS_EXIT_OK);
	assert_int_equal(parse(&o, "--version"), SM_OPTS_EXIT_OK);
}

static void test_key_check(void **state)
{
	(void)state;
	static const char *const ok[] = { "a",   "a/b", "a b/c d",    ".hidden",
		                          "..x", "x..", "caf\xc3\xa9" };
	static const char *const bad[] = { "",     "/abs", "..",  "../x", "a/../b",
		                           "a/..", "a//b", "./a", "a/./b" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(sm_key_check(ok[i], NULL), SM_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sm_key_check(bad[i], NULL) != SM_EUNSAFE)
			fail_msg("key '%s' should be refused", bad[i]);
}

static void test_sizes_and_summary(void **state)
{
	(void)state;
	char b[32];
	sm_fmt_size(b, sizeof(b), 0);
	assert_string_equal(b, "0 B");
	sm_fmt_size(b, sizeof(b), 1023);
	assert_string_equal(b, "1023 B");
	sm_fmt_size(b, sizeof(b), 1536);
	assert_string_equal(b, "1.5 KiB");
	sm_fmt_size(b, sizeof(b), 300ull << 20);
	assert_string_equal(b, "300 MiB");
	struct sm_stats s = {
		.found = 3, .copied = 2, .copied_bytes = 2048, .skipped = 1, .skipped_bytes = 1
	};
	char line[256];
	sm_stats_summary(&s, line, sizeof(line));
	assert_string_equal(line, "Found: 3, excluded: 0 (0 B), skipped: 1 (1 B), copied: 2 (2.0 "
	                          "KiB), extra: 0 (0 B)");
	s.deleted = 4;
	s.failed = 1;
	s.lost = 2;
	s.checked = 1;
	s.checked_bytes = 5;
	sm_stats_summary(&s, line, sizeof(line));
	assert_string_equal(line,
	                    "Found: 3, excluded: 0 (0 B), skipped: 1 (1 B), copied: 2 (2.0 KiB), "
	                    "extra: 0 (0 B), checked: 1 (5 B), deleted: 4, failed: 1, lost: 2");
}

/* The second summary line, table-driven. */
static void test_summary_rates(void **state)
{
	(void)state;
	static const struct {
		double secs;
		const char *elapsed;
	} el[] = { { 0, "0ms" },       { 0.213, "213ms" },  { 0.9996, "1.00s" }, { 9.99, "9.99s" },
		   { 9.996, "10.0s" }, { 12.34, "12.3s" },  { 59.94, "59.9s" },  { 59.96, "1m00s" },
		   { 62.4, "1m02s" },  { 3723, "1h02m03s" } };
	char b[32];
	for (size_t i = 0; i < sizeof(el) / sizeof(el[0]); i++) {
		sm_fmt_elapsed(b, sizeof(b), el[i].secs);
		assert_string_equal(b, el[i].elapsed);
	}
	static const struct {
		struct sm_stats s;
		double secs;
		bool dry;
		const char *want;
	} tc[] = {
		{ { .found = 50000, .copied = 50000, .copied_bytes = 100u << 20 },
		  12.5,
		  false,
		  "Elapsed: 12.5s, 4000 keys/s, 8.0 MiB/s copied" },
		{ { .found = 3, .skipped = 1 },
		  62,
		  false,
		  "Elapsed: 1m02s, 0.0 keys/s, 0 B/s copied" },
		/* a run shorter than a millisecond: rates over a millisecond */
		{ { .found = 1, .copied = 1, .copied_bytes = 1024 },
		  0,
		  false,
		  "Elapsed: 0ms, 1000 keys/s, 1000 KiB/s copied" },
		{ { .found = 6, .copied = 4, .copied_bytes = 7100 },
		  0.2,
		  true,
		  "Elapsed: 200ms, 20 keys/s; dry run, nothing was changed: would copy 4 "
		  "(6.9 KiB)" },
		{ { .found = 6, .copied = 4, .copied_bytes = 7100, .deleted = 3 },
		  0.2,
		  true,
		  "Elapsed: 200ms, 20 keys/s; dry run, nothing was changed: would copy 4 "
		  "(6.9 KiB), delete 3" },
	};
	char line[256];
	for (size_t i = 0; i < sizeof(tc) / sizeof(tc[0]); i++) {
		sm_stats_summary_rates(&tc[i].s, tc[i].secs, tc[i].dry, line, sizeof(line));
		assert_string_equal(line, tc[i].want);
	}
}

static void test_urls(void **state)
{
	(void)state;
	struct sm_url u;
	struct sm_diag d;
	assert_int_equal(sm_url_parse("/tmp/x/", &u, &d), SM_OK);
	assert_string_equal(u.scheme, "file");
	assert_true(u.trailing);
	sm_url_release(&u);
	assert_int_equal(sm_url_parse("file:///tmp/x", &u, &d), SM_OK);
	assert_string_equal(u.path, "/tmp/x");
	assert_false(u.trailing);
	sm_url_release(&u);
	assert_int_equal(sm_url_parse("./a:b/", &u, &d), SM_OK); /* ':' after '/': local */
	sm_url_release(&u);
	assert_int_equal(sm_url_parse("s3://AK:SK@b.example.com/p/", &u, &d), SM_OK);
	assert_string_equal(u.scheme, "s3");
	assert_string_equal(u.display, "s3://AK:****@b.example.com/p/");
	sm_url_release(&u);
	assert_int_equal(sm_url_parse("dav://h/p/", &u, &d), SM_ENOTSUP);
	assert_non_null(strstr(d.msg, "not supported yet"));
	assert_int_equal(sm_url_parse("host:/p/", &u, &d), SM_OK);
	assert_string_equal(u.scheme, "sftp");
	sm_url_release(&u);
	assert_int_equal(sm_url_parse("gopher://x/", &u, &d), SM_EINVAL);
}

/* Strings that are no URL we parse still have their passwords masked. */
static void test_url_mask(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "s4://AK:SECRET@h/b/", "s4://AK:****@h/b/" },
		{ "http://u:pw@h/x@y/", "http://u:****@h/x@y/" },
		{ "me:p@ss@host:/x/", "me:****@host:/x/" },
		{ "sftp://me:p@ss@h:22/x", "sftp://me:****@h:22/x" },
		{ "me@host:/x/", "me@host:/x/" },
		{ "/local/a@b:c", "/local/a@b:c" },
		{ "plain", "plain" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[128];
		assert_string_equal(sm_url_mask(cases[i][0], buf, sizeof(buf)), cases[i][1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts_positions_and_forms),
		cmocka_unit_test(test_opts_errors),
		cmocka_unit_test(test_key_check),
		cmocka_unit_test(test_url_mask),
		cmocka_unit_test(test_sizes_and_summary),
		cmocka_unit_test(test_summary_rates),
		cmocka_unit_test(test_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
