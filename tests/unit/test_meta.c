/* Object metadata (common/store/meta.c): which reply headers are kept, in
 * what form, and the bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/store/meta.h"

struct hcase {
	const char *line; /* "Name: value\r\n", as a reply has it */
	bool is_meta;     /* sm_meta_header's answer */
	const char *name; /* kept as, or NULL when not kept */
	const char *value;
};

static const struct hcase hcases[] = {
	{ "Content-Type: text/html; charset=utf-8\r\n", true, "content-type",
	  "text/html; charset=utf-8" },
	{ "cache-control:max-age=60, public\r\n", true, "cache-control", "max-age=60, public" },
	{ "Content-Encoding: \tgzip \r\n", true, "content-encoding", "gzip" },
	{ "Content-Disposition: attachment; filename=\"a b.txt\"\r\n", true, "content-disposition",
	  "attachment; filename=\"a b.txt\"" },
	{ "Content-Language: de\r\n", true, "content-language", "de" },
	{ "Expires: Thu, 01 Dec 2094 16:00:00 GMT\r\n", true, "expires",
	  "Thu, 01 Dec 2094 16:00:00 GMT" },
	{ "X-Amz-Meta-Color: Blue Sky\r\n", true, "x-amz-meta-color", "Blue Sky" },
	{ "x-amz-meta-empty:\r\n", true, "x-amz-meta-empty", "" },
	/* every copy writes its own mtime */
	{ "x-amz-meta-mtime: 1234.5\r\n", false, NULL, NULL },
	{ "x-amz-meta-mtimes: 1\r\n", true, "x-amz-meta-mtimes", "1" },
	{ "x-amz-meta-: 1\r\n", false, NULL, NULL },
	{ "Content-Length: 12\r\n", false, NULL, NULL },
	{ "ETag: \"abc\"\r\n", false, NULL, NULL },
	{ "Last-Modified: Thu, 01 Dec 2094 16:00:00 GMT\r\n", false, NULL, NULL },
	{ "x-amz-request-id: tx1\r\n", false, NULL, NULL },
	{ "Content-Range: bytes 0-1/2\r\n", false, NULL, NULL },
	{ "Content-Typed: x\r\n", false, NULL, NULL },
};

static bool feed(struct sm_meta *m, const char *line)
{
	const char *colon = strchr(line, ':');
	assert_non_null(colon);
	return sm_meta_header(m, line, (size_t)(colon - line), colon + 1, strlen(colon + 1));
}

static void test_headers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++) {
		const struct hcase *c = &hcases[i];
		struct sm_meta m;
		sm_meta_clear(&m);
		bool got = feed(&m, c->line);
		if (got != c->is_meta)
			fail_msg("'%s': metadata %d, want %d", c->line, got, c->is_meta);
		if (!c->name) {
			assert_int_equal(m.n, 0);
			continue;
		}
		assert_int_equal(m.n, 1);
		assert_int_equal(m.lost, 0);
		assert_string_equal(sm_meta_name(&m, 0), c->name);
		assert_string_equal(sm_meta_value(&m, 0), c->value);
		assert_string_equal(sm_meta_get(&m, c->name), c->value);
	}
}

static void test_repeated_and_get(void **state)
{
	(void)state;
	struct sm_meta m;
	sm_meta_clear(&m);
	feed(&m, "Content-Type: a/b\r\n");
	feed(&m, "x-amz-meta-k: one\r\n");
	feed(&m, "X-AMZ-META-K: two\r\n"); /* the first of repeated headers */
	assert_int_equal(m.n, 2);
	assert_string_equal(sm_meta_get(&m, "x-amz-meta-k"), "one");
	assert_string_equal(sm_meta_get(&m, "content-type"), "a/b");
	assert_null(sm_meta_get(&m, "cache-control"));
	sm_meta_clear(&m);
	assert_int_equal(m.n, 0);
	assert_null(sm_meta_get(&m, "content-type"));
}

/* What does not fit is left out and counted, never cut short. */
static void test_bounds(void **state)
{
	(void)state;
	struct sm_meta m;
	sm_meta_clear(&m);
	char line[64];
	for (int i = 0; i < SM_META_FIELDS + 3; i++) {
		snprintf(line, sizeof(line), "x-amz-meta-k%d: v%d\r\n", i, i);
		assert_true(feed(&m, line));
	}
	assert_int_equal(m.n, SM_META_FIELDS);
	assert_int_equal(m.lost, 3);
	assert_string_equal(sm_meta_get(&m, "x-amz-meta-k0"), "v0");

	sm_meta_clear(&m);
	size_t big = SM_META_TEXT / 2;
	char *v = malloc(big + 1);
	assert_non_null(v);
	memset(v, 'x', big);
	v[big] = '\0';
	assert_true(sm_meta_header(&m, "x-amz-meta-a", 12, v, big));
	assert_true(sm_meta_header(&m, "x-amz-meta-b", 12, v, big)); /* does not fit */
	assert_true(sm_meta_header(&m, "x-amz-meta-c", 12, "small", 5));
	assert_int_equal(m.n, 2);
	assert_int_equal(m.lost, 1);
	assert_int_equal(strlen(sm_meta_get(&m, "x-amz-meta-a")), big);
	assert_null(sm_meta_get(&m, "x-amz-meta-b"));
	assert_string_equal(sm_meta_get(&m, "x-amz-meta-c"), "small");
	assert_true(m.used <= SM_META_TEXT);
	free(v);

	/* a value that could not be sent again: left out */
	sm_meta_clear(&m);
	assert_true(sm_meta_header(&m, "x-amz-meta-z", 12, "a\0b", 3));
	assert_true(sm_meta_header(&m, "x-amz-meta-y", 12, "a\nb", 3));
	assert_int_equal(m.n, 0);
	assert_int_equal(m.lost, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_repeated_and_get),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
