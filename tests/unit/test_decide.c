/* The decision table, row by row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../worker/decide.h"

enum { NONE, FILE_, DIR_, LINK_, FIFO_ };

struct row {
	const char *name;
	int src; /* NONE/FILE_/DIR_/LINK_ */
	uint64_t ssize;
	int64_t smtime; /* seconds */
	uint32_t smode;
	const char *slink;
	int dst;
	uint64_t dsize;
	int64_t dmtime;
	uint32_t dmode;
	const char *dlink;
	const char *flags; /* option letters, see apply() */
	enum sm_act want;
	int same; /* -1 = don't care */
};

/* u update, f force, E existing, I ignore-existing, C check-all, D dirs,
 * P perms, L links, X delete-dst */
static void apply(struct sm_opts *o, const char *flags)
{
	sm_opts_defaults(o);
	for (const char *f = flags; *f; f++) {
		switch (*f) {
		case 'u': o->update = true; break;
		case 'f': o->force_update = true; break;
		case 'E': o->existing = true; break;
		case 'I': o->ignore_existing = true; break;
		case 'C': o->check_all = true; break;
		case 'D': o->dirs = true; break;
		case 'P': o->perms = true; break;
		case 'L': o->links = true; break;
		case 'X': o->delete_dst = true; break;
		default: fail_msg("bad flag %c", *f);
		}
	}
}

static uint32_t type_bits(int t)
{
	return t == DIR_ ? S_IFDIR : t == LINK_ ? S_IFLNK : t == FIFO_ ? S_IFIFO : S_IFREG;
}

static const struct row rows[] = {
	{ "missing on DST", FILE_, 10, 100, 0644, NULL, NONE, 0, 0, 0, NULL, "", SM_ACT_COPY, 0 },
	{ "missing, --existing", FILE_, 10, 100, 0644, NULL, NONE, 0, 0, 0, NULL, "E", SM_ACT_SKIP,
	  0 },
	{ "same size", FILE_, 10, 100, 0644, NULL, FILE_, 10, 50, 0644, NULL, "", SM_ACT_SKIP, 1 },
	{ "size differs", FILE_, 10, 100, 0644, NULL, FILE_, 11, 100, 0644, NULL, "", SM_ACT_COPY,
	  0 },
	{ "size differs, --ignore-existing", FILE_, 10, 100, 0644, NULL, FILE_, 11, 100, 0644, NULL,
	  "I", SM_ACT_SKIP, 0 },
	{ "same, --force-update", FILE_, 10, 100, 0644, NULL, FILE_, 10, 100, 0644, NULL, "f",
	  SM_ACT_COPY, 0 },
	{ "newer on SRC, --update", FILE_, 10, 200, 0644, NULL, FILE_, 10, 100, 0644, NULL, "u",
	  SM_ACT_COPY, 0 },
	{ "older on SRC, --update, size differs", FILE_, 10, 100, 0644, NULL, FILE_, 99, 200, 0644,
	  NULL, "u", SM_ACT_SKIP, 0 },
	{ "same mtime, --update, size differs", FILE_, 10, 100, 0644, NULL, FILE_, 99, 100, 0644,
	  NULL, "u", SM_ACT_COPY, 0 },
	{ "same mtime and size, --update", FILE_, 10, 100, 0644, NULL, FILE_, 10, 100, 0644, NULL,
	  "u", SM_ACT_SKIP, 1 },
	{ "newer on SRC without --update", FILE_, 10, 200, 0644, NULL, FILE_, 10, 100, 0644, NULL,
	  "", SM_ACT_SKIP, 1 },
	{ "same size, --check-all", FILE_, 10, 100, 0644, NULL, FILE_, 10, 100, 0644, NULL, "C",
	  SM_ACT_CHECK, 1 },
	{ "size differs, --check-all", FILE_, 10, 100, 0644, NULL, FILE_, 12, 100, 0644, NULL, "C",
	  SM_ACT_COPY, 0 },
	{ "mode differs, no --perms", FILE_, 10, 100, 0600, NULL, FILE_, 10, 100, 0644, NULL, "",
	  SM_ACT_SKIP, 1 },
	{ "mode differs, --perms", FILE_, 10, 100, 0600, NULL, FILE_, 10, 100, 0644, NULL, "P",
	  SM_ACT_ATTR, 1 },
	{ "DST only", NONE, 0, 0, 0, NULL, FILE_, 5, 100, 0644, NULL, "", SM_ACT_EXTRA, 0 },
	{ "DST only, --delete-dst", NONE, 0, 0, 0, NULL, FILE_, 5, 100, 0644, NULL, "X",
	  SM_ACT_DELETE, 0 },
	{ "dir without --dirs", DIR_, 0, 100, 0755, NULL, NONE, 0, 0, 0, NULL, "", SM_ACT_IGNORE,
	  -1 },
	{ "DST dir without --dirs, --delete-dst", NONE, 0, 0, 0, NULL, DIR_, 0, 0, 0755, NULL, "X",
	  SM_ACT_IGNORE, -1 },
	{ "dir missing, --dirs", DIR_, 0, 100, 0755, NULL, NONE, 0, 0, 0, NULL, "D", SM_ACT_COPY,
	  0 },
	{ "dir exists, --dirs", DIR_, 0, 100, 0755, NULL, DIR_, 0, 50, 0755, NULL, "D", SM_ACT_SKIP,
	  1 },
	/* a directory's attributes are set at the end (test_dir_fix) */
	{ "dir mode differs, --dirs --perms", DIR_, 0, 100, 0700, NULL, DIR_, 0, 50, 0755, NULL,
	  "DP", SM_ACT_SKIP, 1 },
	{ "DST dir, --dirs --delete-dst", NONE, 0, 0, 0, NULL, DIR_, 0, 0, 0755, NULL, "DX",
	  SM_ACT_DELETE, 0 },
	/* a FIFO, socket or device on DST is a DST key (issue 24 item 10) */
	{ "DST FIFO, --delete-dst", NONE, 0, 0, 0, NULL, FIFO_, 0, 0, 0644, NULL, "X",
	  SM_ACT_DELETE, 0 },
	{ "DST FIFO", NONE, 0, 0, 0, NULL, FIFO_, 0, 0, 0644, NULL, "", SM_ACT_EXTRA, 0 },
	{ "SRC file, DST FIFO", FILE_, 0, 100, 0644, NULL, FIFO_, 0, 100, 0644, NULL, "",
	  SM_ACT_COPY, 0 },
	{ "same symlink", LINK_, 3, 100, 0777, "abc", LINK_, 3, 100, 0777, "abc", "L", SM_ACT_SKIP,
	  1 },
	{ "symlink target differs", LINK_, 3, 100, 0777, "abc", LINK_, 3, 100, 0777, "abd", "L",
	  SM_ACT_COPY, 0 },
	{ "file replaced by symlink", LINK_, 3, 100, 0777, "abc", FILE_, 3, 100, 0644, NULL, "L",
	  SM_ACT_COPY, 0 },
	{ "DST symlink where SRC has a file", FILE_, 3, 100, 0644, NULL, LINK_, 3, 100, 0777, "abc",
	  "", SM_ACT_COPY, 0 },
	{ "symlink with --perms is not chmodded", LINK_, 3, 100, 0777, "abc", LINK_, 3, 100, 0755,
	  "abc", "LP", SM_ACT_SKIP, 1 },
};

/* A DST time at its store's limit (SFTP keeps 2106 for later times, 1970
 * for earlier ones): -u copies the key once, not on every run. */
static void test_mtime_clamp(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		int64_t smtime, dmtime;
		int8_t clamp;
		const char *flags;
		enum sm_act want;
	} rows[] = {
		{ "later than the DST limit, -u", 7258118400, 4294967295, 1, "u", SM_ACT_SKIP },
		{ "earlier than the DST limit, -u", -315619200, 0, -1, "u", SM_ACT_SKIP },
		{ "older than a top-limit DST, -u", 100, 4294967295, 1, "u", SM_ACT_SKIP },
		{ "newer than a bottom-limit DST, -u", 100, 0, -1, "u", SM_ACT_COPY },
		{ "not at a limit: newer, -u", 7258118400, 4294967295, 0, "u", SM_ACT_COPY },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sm_opts o;
		apply(&o, rows[i].flags);
		struct sm_entry s = { .key = "k",
			              .size = 1,
			              .mtime_ns = rows[i].smtime * 1000000000,
			              .mode = S_IFREG | 0644 };
		struct sm_entry d = s;
		d.mtime_ns = rows[i].dmtime * 1000000000;
		d.mtime_clamp = rows[i].clamp;
		struct sm_decision dec = sm_decide(&s, &d, &o);
		if (dec.act != rows[i].want)
			fail_msg("'%s': got %s, want %s", rows[i].name, sm_act_name(dec.act),
			         sm_act_name(rows[i].want));
	}
	/* --delete-src wants the same mtime: a clamped one is the same */
	struct sm_opts o;
	apply(&o, "");
	o.delete_src = true;
	struct sm_entry s = {
		.key = "k", .size = 1, .mtime_ns = 7258118400LL * 1000000000, .mode = S_IFREG | 0644
	};
	struct sm_entry d = s;
	d.mtime_ns = 4294967295LL * 1000000000;
	d.mtime_clamp = 1;
	assert_int_equal(sm_decide(&s, &d, &o).act, SM_ACT_SKIP);
	d.mtime_clamp = 0;
	assert_int_equal(sm_decide(&s, &d, &o).act, SM_ACT_COPY);
}

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct sm_opts o;
		apply(&o, r->flags);
		struct sm_entry s = { .key = "k",
			              .size = r->ssize,
			              .mtime_ns = r->smtime * 1000000000,
			              .mode = type_bits(r->src) | r->smode,
			              .link = (char *)r->slink };
		struct sm_entry d = { .key = "k",
			              .size = r->dsize,
			              .mtime_ns = r->dmtime * 1000000000,
			              .mode = type_bits(r->dst) | r->dmode,
			              .link = (char *)r->dlink };
		struct sm_decision dec = sm_decide(r->src ? &s : NULL, r->dst ? &d : NULL, &o);
		if (dec.act != r->want)
			fail_msg("row '%s': got %s, want %s", r->name, sm_act_name(dec.act),
			         sm_act_name(r->want));
		if (r->same >= 0 && dec.same != (bool)r->same)
			fail_msg("row '%s': same=%d, want %d", r->name, dec.same, r->same);
		assert_non_null(dec.why);
	}
}

/* A directory on both sides: its attributes are set at the end of the run
 * when its mtime (--dirs) or mode (--perms) differ; a DST time in whole
 * seconds is compared in seconds. */
static void test_dir_fix(void **state)
{
	(void)state;
	struct {
		const char *flags;
		unsigned smode, dmode;
		int64_t sns, dns;
		bool fix;
	} rows[] = {
		{ "D", 0755, 0755, 100000000000, 100000000000, false },
		{ "D", 0755, 0755, 100000000001, 100000000000, false }, /* DST whole seconds */
		{ "D", 0755, 0755, 100000000001, 100000000002, true },
		{ "D", 0755, 0755, 101000000000, 100000000000, true },
		{ "D", 0700, 0755, 100000000000, 100000000000, false }, /* mode: --perms only */
		{ "DP", 0700, 0755, 100000000000, 100000000000, true },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sm_opts o;
		apply(&o, rows[i].flags);
		struct sm_entry s = { .key = "d/",
			              .mode = S_IFDIR | rows[i].smode,
			              .mtime_ns = rows[i].sns };
		struct sm_entry d = { .key = "d/",
			              .mode = S_IFDIR | rows[i].dmode,
			              .mtime_ns = rows[i].dns };
		struct sm_decision dec = sm_decide(&s, &d, &o);
		assert_int_equal(dec.act, SM_ACT_SKIP);
		if (dec.fix_dir != rows[i].fix)
			fail_msg("row %zu: fix_dir %d, want %d", i, dec.fix_dir, rows[i].fix);
	}
}

/* --update compares whole seconds: sub-second differences do not copy. */
static void test_update_seconds(void **state)
{
	(void)state;
	struct sm_opts o;
	apply(&o, "u");
	struct sm_entry s = {
		.key = "k", .size = 1, .mtime_ns = 100 * 1000000000LL + 900, .mode = S_IFREG | 0644
	};
	struct sm_entry d = {
		.key = "k", .size = 1, .mtime_ns = 100 * 1000000000LL, .mode = S_IFREG | 0644
	};
	assert_int_equal(sm_decide(&s, &d, &o).act, SM_ACT_SKIP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_dir_fix),
		cmocka_unit_test(test_mtime_clamp),
		cmocka_unit_test(test_update_seconds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
