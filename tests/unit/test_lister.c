/* Parallel listing yields exactly the stream of the plain cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../common/util.h"
#include "../../manager/lister.h"

static char root[64];

static void touch(const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	if (rel[strlen(rel) - 1] != '/') {
		FILE *f = fopen(p, "w");
		assert_non_null(f);
		fputs(rel, f);
		fclose(f);
	}
}

static char *collect(struct sm_store *st, int threads, int depth)
{
	struct sm_lister *l = NULL;
	struct sm_diag d;
	struct sm_range all = { 0 };
	assert_int_equal(sm_lister_open(st, &all, threads, depth, &l, &d), SM_OK);
	struct sm_buf b = { 0 };
	sm_buf_append(&b, "", 0);
	const struct sm_entry *e;
	enum sm_err err;
	while ((err = sm_lister_next(l, &e, &d)) == SM_OK) {
		sm_buf_appendz(&b, e->key);
		sm_buf_append(&b, "|", 1);
	}
	assert_int_equal(err, SM_EOF);
	sm_lister_close(l);
	return b.p;
}

static void test_same_stream(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/sm-lister-XXXXXX");
	assert_non_null(mkdtemp(root));
	static const char *const paths[] = { "top",       "a-b",     "a.b/x", "a/x",
		                             "a/y/z",     "a/y/w/v", "a/e/",  "a0",
		                             "b/c/d/e/f", "b/c/d2",  "c/",    "z" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		touch(paths[i]);
	for (int i = 0; i < 300; i++) { /* more than a shard ring's worth in total */
		char p[64];
		snprintf(p, sizeof(p), "m/%03d/f%d", i % 7, i);
		touch(p);
	}
	char url[96];
	snprintf(url, sizeof(url), "%s/", root);
	struct sm_url u;
	struct sm_diag d;
	assert_int_equal(sm_url_parse(url, &u, &d), SM_OK);
	struct sm_store_cfg cfg = { .must_exist = true };
	struct sm_store *st = NULL;
	assert_int_equal(sm_store_open(&u, &cfg, &st, &d), SM_OK);
	char *want = collect(st, 1, 1);
	assert_non_null(strstr(want, "a-b|a.b/|a.b/x|a/|"));
	for (int threads = 2; threads <= 5; threads += 3) {
		for (int depth = 1; depth <= 4; depth++) {
			char *got = collect(st, threads, depth);
			if (strcmp(got, want) != 0)
				fail_msg("threads %d depth %d:\n got %s\nwant %s", threads, depth,
				         got, want);
			free(got);
		}
	}
	free(want);
	sm_store_close(st);
	sm_url_release(&u);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
