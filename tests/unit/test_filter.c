/* Filter rules, table-driven: every example of SPEC.md §3 and of the juicefs
 * sync guide (seeds/000_*), in both modes, plus the wildcard primitives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/filter.h"
#include "../../common/util.h"

struct fcase {
	const char *rules; /* "+pat|-pat|..." in order */
	bool full;         /* --match-full-path */
	const char *key;   /* directories end in '/' */
	bool keep;
};

static const struct fcase cases[] = {
	/* SPEC §3 */
	{ "+*/|+*.c|-*", false, "a/", true },
	{ "+*/|+*.c|-*", false, "a/x.c", true },
	{ "+*/|+*.c|-*", false, "a/x.h", false },
	{ "+*/|+*.c|-*", false, "a/b/c/d.c", true },
	{ "+*/|+*.c|-*", true, "a/x.c", true },
	{ "+*/|+*.c|-*", true, "a/x.h", false },
	{ "+foo/bar.c|-*", true, "foo/bar.c", true },
	{ "+foo/bar.c|-*", true, "foo/baz.c", false },
	{ "+foo/bar.c|-*", true, "x", false },
	{ "-/foo/**/bar", false, "foo/x/bar", false },
	{ "-/foo/**/bar", false, "foo/a/b/bar", false },
	{ "-/foo/**/bar", false, "foo/bar", true }, /* "**" does not match the '/' it needs */
	{ "-/foo/**/bar", false, "x/foo/y/bar", true },
	{ "+/some/path/file|-*", false, "some/path/file", false }, /* some/ excluded first */
	{ "+*/|+/some/path/file|-*", false, "some/path/file", true },
	{ "+*/|+/some/path/file|-*", false, "some/path/other", false },
	/* seed: matching rules */
	{ "-*.o|+*", false, "a.o", false },
	{ "-*.o|+*", false, "x/b.o", false },
	{ "-*.o|+*", false, "a.c", true },
	{ "-/foo/*/bar|+*", false, "foo/x/bar", false },
	{ "-/foo/*/bar|+*", false, "foo/x/y/bar", true },
	{ "-/foo/**/bar|+*", false, "foo/x/y/bar", false },
	/* seed: full-path mode */
	{ "+a*.txt|+c1.txt|-c*.txt", true, "a1/b1/c1.txt", true },
	{ "-/foo**|+*", true, "foo", false },
	{ "-/foo**|+*", true, "foo1", false },
	{ "-/foo**|+*", true, "foo/x", false },
	{ "-/foo**|+*", true, "x/foo", true },
	{ "-**foo/**|+*", true, "xfoo/a", false },
	{ "-**foo/**|+*", true, "a/barfoo/b", false },
	{ "-**foo/**|+*", true, "foo", true },
	{ "+**.gz|-*", true, "a/b/c.gz", true },
	{ "+**.gz|-*", true, "a/b/c.txt", false },
	{ "-**.gz|+*", true, "x.gz", false },
	{ "+*|-**/tmpdir/**", true, "a/tmpdir/x", true }, /* first match wins */
	{ "-**/tmpdir/**|+*", true, "a/tmpdir/x", false },
	/* seed: layer mode */
	{ "+a*.txt|+c1.txt|-c*.txt", false, "a1/b1/c1.txt", true },
	{ "-/foo|+*", false, "foo", false },
	{ "-/foo|+*", false, "foo/", false },
	{ "-/foo|+*", false, "foo/x", false },
	{ "-/foo|+*", false, "x/foo", true },
	{ "-foo/|+*", false, "foo/", false },
	{ "-foo/|+*", false, "a/foo/x", false },
	{ "-foo/|+*", false, "foo", true },
	{ "-foo/|+*", false, "a/foo", true },
	{ "+/some/|+/some/path/|+/some/path/this-file-will-be-synced|-*", false,
	  "some/path/this-file-will-be-synced", true },
	{ "+/some/|+/some/path/|+/some/path/this-file-will-be-synced|-*", false, "some/other",
	  false },
	/* whole-component literals */
	{ "-foo", false, "foo", false },
	{ "-foo", false, "x/foo", false },
	{ "-foo", false, "foo1", true },
	{ "-foo", false, "2foo", true },
	{ "-foo", true, "foo/x", true },   /* full path: "foo" is not the last component */
	{ "-foo", false, "foo/x", false }, /* layer: foo/ was excluded first */
	/* wildcards */
	{ "-a?c", false, "abc", false },
	{ "-a?c", true, "a/c", true },
	{ "-[a-c]x", false, "bx", false },
	{ "-[a-c]x", false, "dx", true },
	{ "-[^abc]x", false, "dx", false },
	{ "-[^abc]x", false, "ax", true },
	{ "-[!abc]x", false, "dx", false },
	{ "-[]a]", false, "]", false },
	{ "-[[:digit:]]*", false, "7up", false },
	{ "-[[:digit:]]*", false, "up7", true },
	{ "-a\\*b", false, "a*b", false },
	{ "-a\\*b", false, "axb", true },
	{ "-a\\b", false, "a\\b", false }, /* no wildcard: the backslash is literal */
	{ "-dir/***", false, "dir/", false },
	{ "-dir/***", false, "dir/x/y", false },
	{ "-dir/***", true, "dir/", false },
	{ "-dir/***", true, "dirx/", true },
	{ "-a/*", true, "x/a/b", false }, /* last two components */
	{ "-a/*", true, "a/b/c", true },
	{ "-a/*", true, "a", true }, /* fewer components than the pattern */
	{ "-a/**/c", true, "x/a/b/c", false },
	{ "-a/**/c", true, "a/c", true },
	{ "-*", true, "a/b", false }, /* '*' alone: the last component */
	{ "-/*", true, "a/b", true }, /* anchored '*' cannot cross '/' */
	{ "-/**", true, "a/b", false },
	{ "-*.c", false, "a.c/", false }, /* a directory matches a pattern without '/' too */
	{ "-*.c/", false, "a.c", true },  /* dir-only pattern, file key */
	{ "-caf\xc3\xa9", false, "x/caf\xc3\xa9", false },
	{ "-a b", false, "x/a b", false },
	{ "", false, "anything", true }, /* no rules */
};

static void load(struct sm_filter *f, const char *rules, bool full)
{
	sm_filter_init(f);
	f->full_path = full;
	char buf[512];
	sm_strlcpy(buf, rules, sizeof(buf));
	char *save = NULL;
	for (char *r = strtok_r(buf, "|", &save); r; r = strtok_r(NULL, "|", &save)) {
		struct sm_diag d;
		if (sm_filter_add(f, r + 1, r[0] == '+', &d) != SM_OK)
			fail_msg("rule '%s': %s", r, d.msg);
	}
}

static void test_cases(void **state)
{
	(void)state;
	int bad = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fcase *c = &cases[i];
		struct sm_filter f;
		load(&f, c->rules, c->full);
		struct sm_filter_why why;
		bool keep = sm_filter_keep(&f, c->key, &why);
		if (keep != c->keep) {
			char reason[256];
			sm_filter_explain(&f, c->key, &why, reason, sizeof(reason));
			print_error("case %zu: rules [%s]%s key '%s': got %s (%s), want %s\n", i,
			            c->rules, c->full ? " full-path" : "", c->key,
			            keep ? "keep" : "exclude", reason,
			            c->keep ? "keep" : "exclude");
			bad++;
		}
		sm_filter_release(&f);
	}
	assert_int_equal(bad, 0);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = { "[a-", "[", "*x\\", "[[:nope:]]", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_filter f;
		sm_filter_init(&f);
		struct sm_diag d;
		if (sm_filter_add(&f, bad[i], false, &d) != SM_EINVAL)
			fail_msg("pattern '%s' should be refused", bad[i]);
		assert_non_null(strstr(d.msg, "--exclude"));
		sm_filter_release(&f);
	}
}

/* No exponential blow-up: the NFA is linear in key x pattern. */
static void test_no_blowup(void **state)
{
	(void)state;
	struct sm_filter f;
	load(&f, "-**a**a**a**a**b|-*a*a*a*a*a*a*a*a*a*b", true);
	char key[256];
	memset(key, 'a', 255);
	key[255] = '\0';
	assert_true(sm_filter_keep(&f, key, NULL));
	sm_filter_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_no_blowup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
