/*
 * The store conformance suite: one set of tests run unchanged against every
 * backend. The backend is chosen by the base URL in $SM_STORE_URL (a local
 * directory, later s3://..., host:/path, dav://...); each test works under a
 * fresh prefix below it and removes what it wrote.
 *
 * The runner states what it expects and how to look past the store, and a
 * missing statement fails the run (a check that cannot see fails, it never
 * passes by skipping):
 *   SM_EXPECT_CAPS   the capabilities the backend must advertise, ','-joined
 *                    from dirs, links, mode, local ("" = none of them)
 *   SM_STORE_RAW_DIR the directory on this machine that the base URL names
 *                    (file and SFTP stores), or
 *   SM_STORE_RAW_S3_ENDPOINT, SM_STORE_RAW_S3_BUCKET, SM_STORE_RAW_S3_PREFIX
 *                    where the base URL's objects are (S3), read with
 *                    /usr/bin/aws (credentials from the AWS_* environment)
 *   SM_STORE_RAW_S3_NO_UPLOADS=1
 *                    the S3 server cannot list multipart uploads (s3rver):
 *                    the raw view then checks the objects only
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/pool.h"
#include "../../common/store/store.h"
#include "../../deploy/ssh.h"
#include "../../common/util.h"

static const char *base_url;
static unsigned expect_caps; /* from $SM_EXPECT_CAPS */
static const char *raw_dir;  /* $SM_STORE_RAW_DIR, or NULL */
static const char *raw_s3_endpoint, *raw_s3_bucket, *raw_s3_prefix;
static bool raw_s3_no_uploads; /* $SM_STORE_RAW_S3_NO_UPLOADS: the server cannot list them */

struct fixture {
	struct sm_store *st;
	struct sm_url url;
	struct sm_pool *pool;
	char tag[24]; /* the test's prefix below the base: "t" + 16 hex digits */
	char *raw_rm; /* a directory the test made past the store: removed first */
	char *tmpdir; /* the test's TMPDIR (removed), and the one it replaced */
	char *old_tmpdir;
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char url[1024];
	snprintf(fx->tag, sizeof(fx->tag), "t%016llx", (unsigned long long)sm_rand64());
	snprintf(url, sizeof(url), "%s%s%s/", base_url,
	         base_url[strlen(base_url) - 1] == '/' ? "" : "/", fx->tag);
	struct sm_diag d;
	if (sm_url_parse(url, &fx->url, &d) != SM_OK)
		fail_msg("%s", d.msg);
	/* a transfer pool as in a run: large objects move in parallel pieces */
	if (sm_pool_new(4, 64u << 20, &fx->pool, &d) != SM_OK)
		fail_msg("%s", d.msg);
	struct sm_store_cfg cfg = { .read_links = true,
		                    .no_https = getenv("SM_STORE_NO_HTTPS") != NULL,
		                    .pool = fx->pool,
		                    .ssh = &sm_ssh_ops };
	if (sm_store_open(&fx->url, &cfg, &fx->st, &d) != SM_OK)
		fail_msg("open %s: %s", url, d.msg);
	*state = fx;
	return 0;
}

static int huge_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw);

/* Delete everything under the test's prefix: files first, then directories
 * deepest first. */
static int fx_teardown(void **state)
{
	struct fixture *fx = *state;
	if (fx->raw_rm) {
		nftw(fx->raw_rm, huge_rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(fx->raw_rm);
	}
	if (fx->tmpdir) {
		unsetenv("SYNCMGR_TEST_DIR_SPILL");
		if (fx->old_tmpdir)
			setenv("TMPDIR", fx->old_tmpdir, 1);
		else
			unsetenv("TMPDIR");
		nftw(fx->tmpdir, huge_rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(fx->tmpdir);
		free(fx->old_tmpdir);
	}
	struct sm_cursor *c = NULL;
	struct sm_diag d;
	struct sm_range all = { 0 };
	char **dirs = NULL;
	size_t nd = 0;
	if (sm_store_list_begin(fx->st, &all, &c, &d) == SM_OK) {
		const struct sm_entry *e;
		while (sm_store_list_next(c, &e, &d) == SM_OK) {
			if (sm_key_is_dir(e->key)) {
				dirs = realloc(dirs, (nd + 1) * sizeof(*dirs));
				dirs[nd++] = strdup(e->key);
			} else {
				sm_store_del(fx->st, e->key, &d);
			}
		}
		sm_store_list_end(c);
	}
	for (size_t i = nd; i-- > 0;) {
		sm_store_del(fx->st, dirs[i], &d);
		free(dirs[i]);
	}
	free(dirs);
	sm_store_close(fx->st);
	sm_pool_free(fx->pool);
	sm_url_release(&fx->url);
	free(fx);
	return 0;
}

static void put_str(struct sm_store *st, const char *key, const char *data)
{
	struct sm_mem_reader m;
	sm_mem_reader_init(&m, data, strlen(data));
	struct sm_put p = { .mode = 0644,
		            .mtime_ns = 1500000000LL * 1000000000LL,
		            .flags = SM_PUT_MTIME };
	struct sm_diag d;
	if (sm_store_put(st, key, &m.base, &p, &d) != SM_OK)
		fail_msg("put '%s': %s", key, d.msg);
}

static char *get_str(struct sm_store *st, const char *key, uint64_t off)
{
	struct sm_reader *r = NULL;
	struct sm_diag d;
	if (sm_store_open_read(st, key, off, &r, &d) != SM_OK)
		fail_msg("open_read '%s': %s", key, d.msg);
	struct sm_buf b = { 0 };
	char buf[4096];
	for (;;) {
		size_t got = 0;
		if (sm_reader_read(r, buf, sizeof(buf), &got, &d) != SM_OK)
			fail_msg("read '%s': %s", key, d.msg);
		if (!got)
			break;
		sm_buf_append(&b, buf, got);
	}
	sm_reader_close(r);
	sm_buf_append(&b, "", 0);
	return b.p;
}

/* All keys of a range, as one '|'-joined string; files only unless `dirs`. */
static char *list_join(struct sm_store *st, const char *after, const char *last, bool dirs)
{
	struct sm_range r = { .after = after, .last = last };
	struct sm_cursor *c = NULL;
	struct sm_diag d;
	if (sm_store_list_begin(st, &r, &c, &d) != SM_OK)
		fail_msg("list_begin: %s", d.msg);
	struct sm_buf b = { 0 };
	sm_buf_append(&b, "", 0);
	const struct sm_entry *e;
	enum sm_err err;
	while ((err = sm_store_list_next(c, &e, &d)) == SM_OK) {
		if (!dirs && sm_key_is_dir(e->key))
			continue;
		if (b.len)
			sm_buf_append(&b, "|", 1);
		sm_buf_appendz(&b, e->key);
	}
	if (err != SM_EOF)
		fail_msg("list_next: %s", d.msg);
	sm_store_list_end(c);
	return b.p;
}

/* ---- the store as it really is, seen past the backend ---- */

struct strv {
	char **v;
	size_t n, cap;
};

static void strv_add(struct strv *sv, const char *s, size_t n)
{
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? 2 * sv->cap : 16;
		sv->v = realloc(sv->v, sv->cap * sizeof(*sv->v));
		assert_non_null(sv->v);
	}
	sv->v[sv->n] = sm_strndup(s, n);
	assert_non_null(sv->v[sv->n]);
	sv->n++;
}

static void strv_free(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The strings sorted and '|'-joined (caller frees). */
static char *strv_join(struct strv *sv)
{
	if (sv->n) /* qsort(NULL, 0) is undefined */
		qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
	struct sm_buf b = { 0 };
	sm_buf_append(&b, "", 0);
	for (size_t i = 0; i < sv->n; i++) {
		if (i)
			sm_buf_append(&b, "|", 1);
		sm_buf_appendz(&b, sv->v[i]);
	}
	return b.p;
}

/* Every name below raw_dir/rel that is not a directory (temporary files
 * included, whatever their name), as a path relative to `top`. */
static void raw_walk(const char *top, const char *rel, struct strv *out)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", top, rel);
	DIR *dh = opendir(path);
	if (!dh) {
		if (errno == ENOENT && !*rel)
			return; /* nothing was ever written below the prefix */
		fail_msg("raw view: cannot open '%s': %s", path, strerror(errno));
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(dh);
		if (!de) {
			if (errno)
				fail_msg("raw view: cannot read '%s': %s", path, strerror(errno));
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat sb;
		if (fstatat(dirfd(dh), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			fail_msg("raw view: cannot stat '%s/%s': %s", path, de->d_name,
			         strerror(errno));
		char sub[PATH_MAX];
		int n = snprintf(sub, sizeof(sub), "%s%s%s", rel, de->d_name,
		                 S_ISDIR(sb.st_mode) ? "/" : "");
		assert_true(n > 0 && (size_t)n < sizeof(sub));
		if (S_ISDIR(sb.st_mode))
			raw_walk(top, sub, out);
		else
			strv_add(out, sub, (size_t)n);
	}
	closedir(dh);
}

/* Run /usr/bin/aws against the S3 endpoint with `args`; its standard
 * output (caller frees). A failing aws fails the test. */
static char *raw_aws(const char *const *args, size_t nargs)
{
	const char *argv[24] = { "/usr/bin/aws", "--endpoint-url", raw_s3_endpoint, "--output",
		                 "text" };
	size_t n = 5;
	assert_true(n + nargs < sizeof(argv) / sizeof(argv[0]));
	for (size_t i = 0; i < nargs; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	struct sm_buf b = { 0 };
	char buf[4096];
	for (;;) {
		ssize_t k = read(pfd[0], buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		sm_buf_append(&b, buf, (size_t)k);
	}
	close(pfd[0]);
	sm_buf_append(&b, "", 0);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("raw view: aws %s failed (status %d): %s", args[0], status, b.p);
	return b.p;
}

/* The keys below the test's prefix that `aws s3api <op>` lists in the
 * text lines of `query`, relative to the prefix. */
static void raw_s3_keys(const struct fixture *fx, const char *op, const char *query,
                        struct strv *out)
{
	char prefix[1024];
	snprintf(prefix, sizeof(prefix), "%s%s/", raw_s3_prefix, fx->tag);
	const char *args[] = { "s3api",    op,     "--bucket", raw_s3_bucket,
		               "--prefix", prefix, "--query",  query };
	char *text = raw_aws(args, sizeof(args) / sizeof(args[0]));
	size_t plen = strlen(prefix);
	for (char *p = text; *p;) {
		char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n) {
			if (n < plen || memcmp(p, prefix, plen) != 0)
				fail_msg("raw view: aws s3api %s: '%.*s' is not below '%s'", op,
				         (int)n, p, prefix);
			strv_add(out, p + plen, n - plen);
		}
		p += n + (e != NULL);
	}
	free(text);
}

/* What the store really holds below the test's prefix must be exactly the
 * files `want` ('|'-joined, sorted): no temporary file of an unfinished
 * put, and (S3) no multipart upload left open. Directories do not count:
 * a put may create parents. */
static void raw_check(const struct fixture *fx, const char *what, const char *want)
{
	struct strv files = { 0 }, uploads = { 0 };
	if (raw_dir) {
		char top[PATH_MAX];
		snprintf(top, sizeof(top), "%s/%s", raw_dir, fx->tag);
		raw_walk(top, "", &files);
	} else {
		raw_s3_keys(fx, "list-objects-v2", "Contents[].[Key] || `[]`", &files);
		if (!raw_s3_no_uploads)
			raw_s3_keys(fx, "list-multipart-uploads", "Uploads[].[Key] || `[]`",
			            &uploads);
	}
	char *got = strv_join(&files);
	char *open_uploads = strv_join(&uploads);
	if (strcmp(got, want) != 0)
		fail_msg("%s: the store holds [%s], want [%s]", what, got, want);
	if (*open_uploads)
		fail_msg("%s: multipart uploads left open: [%s]", what, open_uploads);
	free(got);
	free(open_uploads);
	strv_free(&files);
	strv_free(&uploads);
}

/* Keys chosen to stress the global order: '-' (0x2d) and '.' (0x2e) sort
 * before '/' (0x2f), so "a-b" and "a.b/" come before "a/". */
static const char *const order_keys[] = {
	"a b", "a-b", "a.b/x",       "a/x",         "a/y/z",
	"a0",  "ab",  "caf\xc3\xa9", "line\nbreak", "z/\xe6\x97\xa5\xe6\x9c\xac",
	"z~",
};
#define N_ORDER (sizeof(order_keys) / sizeof(order_keys[0]))

static void put_order_keys(struct sm_store *st)
{
	for (size_t i = 0; i < N_ORDER; i++)
		put_str(st, order_keys[i], order_keys[i]);
}

static void test_order(void **state)
{
	struct fixture *fx = *state;
	put_order_keys(fx->st);
	const char *sorted[N_ORDER];
	memcpy(sorted, order_keys, sizeof(sorted));
	qsort(sorted, N_ORDER, sizeof(sorted[0]), cmp_str);
	struct sm_buf want = { 0 };
	sm_buf_append(&want, "", 0);
	for (size_t i = 0; i < N_ORDER; i++) {
		if (i)
			sm_buf_append(&want, "|", 1);
		sm_buf_appendz(&want, sorted[i]);
	}
	char *got = list_join(fx->st, NULL, NULL, false);
	assert_string_equal(got, want.p);
	free(got);
	sm_buf_release(&want);
	if (expect_caps & SM_CAP_DIRS) {
		got = list_join(fx->st, NULL, NULL, true);
		assert_non_null(strstr(got, "a-b|a.b/|a.b/x|a/|a/x|a/y/|a/y/z|a0"));
		free(got);
	}
}

/* Every range (after, last] lists exactly the keys of the full listing that
 * fall inside it, for bounds on, between and around the keys. */
static void test_range_bounds(void **state)
{
	struct fixture *fx = *state;
	put_order_keys(fx->st);
	bool dirs = expect_caps & SM_CAP_DIRS;
	char *full = list_join(fx->st, NULL, NULL, dirs);
	char *keys[64];
	size_t nk = 0;
	for (char *p = full, *e; p && *p && nk < 64; p = e ? e + 1 : NULL) {
		e = strchr(p, '|');
		keys[nk++] = e ? sm_strndup(p, (size_t)(e - p)) : strdup(p);
	}
	static const char *const extra[] = { "",    "a",   "a.", "a/", "a/xx",
		                             "a/y", "a0a", "b",  "zz", "\xff" };
	const char *bounds[80];
	size_t nb = 0;
	for (size_t i = 0; i < nk; i++)
		bounds[nb++] = keys[i];
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		bounds[nb++] = extra[i];
	for (size_t i = 0; i < nb; i++) {
		for (size_t j = 0; j <= nb; j++) {
			const char *after = bounds[i];
			const char *last = j == nb ? NULL : bounds[j];
			struct sm_buf want = { 0 };
			sm_buf_append(&want, "", 0);
			struct sm_range r = { .after = after, .last = last };
			for (size_t k = 0; k < nk; k++) {
				if (!sm_range_contains(&r, keys[k]))
					continue;
				if (want.len)
					sm_buf_append(&want, "|", 1);
				sm_buf_appendz(&want, keys[k]);
			}
			char *got = list_join(fx->st, after, last, dirs);
			if (strcmp(got, want.p) != 0)
				fail_msg("range ('%s', '%s']: got [%s], want [%s]", after,
				         last ? last : "(end)", got, want.p);
			free(got);
			sm_buf_release(&want);
		}
	}
	for (size_t i = 0; i < nk; i++)
		free(keys[i]);
	free(full);
}

/* The range semantics written out by hand, not computed with
 * sm_range_contains() (the store's own check): (after, last] with
 * NULL or "" `after` = from the start and NULL `last` = to the end; a ""
 * `last` is a bound below every key, so its range is empty. `files` is
 * what a listing of order_keys shows without directory keys, `all` with
 * them (stores with real directories). */
#define CAFE "caf\xc3\xa9"
#define NIHON "z/\xe6\x97\xa5\xe6\x9c\xac"
#define ALL_FILES "a b|a-b|a.b/x|a/x|a/y/z|a0|ab|" CAFE "|line\nbreak|" NIHON "|z~"
#define ALL_KEYS "a b|a-b|a.b/|a.b/x|a/|a/x|a/y/|a/y/z|a0|ab|" CAFE "|line\nbreak|z/|" NIHON "|z~"
struct range_case {
	const char *after, *last;
	const char *files, *all;
};
static const struct range_case range_cases[] = {
	{ NULL, NULL, ALL_FILES, ALL_KEYS },
	{ "", NULL, ALL_FILES, ALL_KEYS },
	{ NULL, "a-b", "a b|a-b", "a b|a-b" },
	{ "a b", "a-b", "a-b", "a-b" },
	{ "a-b", "a-b", "", "" },
	{ "0", "a b", "a b", "a b" },
	{ "a", "a0", "a b|a-b|a.b/x|a/x|a/y/z|a0", "a b|a-b|a.b/|a.b/x|a/|a/x|a/y/|a/y/z|a0" },
	{ "a.", "a.b/", "", "a.b/" },
	{ "a.b/", "a/", "a.b/x", "a.b/x|a/" },
	{ "a/", "a/y/", "a/x", "a/x|a/y/" },
	{ "a/y", "a0a", "a/y/z|a0", "a/y/|a/y/z|a0" },
	{ "a/y/", "a/y/z", "a/y/z", "a/y/z" },
	{ "a/y/z", "ab", "a0|ab", "a0|ab" },
	{ "ab", "z", CAFE "|line\nbreak", CAFE "|line\nbreak" },
	{ "line\nbreak", "z/", "", "z/" },
	{ "z", NULL, NIHON "|z~", "z/|" NIHON "|z~" },
	{ "z~", NULL, "", "" },
	{ "\xff", NULL, "", "" },
	{ NULL, "", "", "" },
	{ "a b", "\xff", "a-b|a.b/x|a/x|a/y/z|a0|ab|" CAFE "|line\nbreak|" NIHON "|z~",
	  "a-b|a.b/|a.b/x|a/|a/x|a/y/|a/y/z|a0|ab|" CAFE "|line\nbreak|z/|" NIHON "|z~" },
};
/* Adjacent ranges (tile[i].after = tile[i-1].last) from the start to the
 * end: every key in exactly one of them. */
static const struct range_case range_tiles[] = {
	{ "", "a-b", "a b|a-b", "a b|a-b" },
	{ "a-b", "a.b/", "", "a.b/" },
	{ "a.b/", "a/x", "a.b/x|a/x", "a.b/x|a/|a/x" },
	{ "a/x", "a/y/", "", "a/y/" },
	{ "a/y/", "ab", "a/y/z|a0|ab", "a/y/z|a0|ab" },
	{ "ab", "line\nbreak", CAFE "|line\nbreak", CAFE "|line\nbreak" },
	{ "line\nbreak", "z", "", "" },
	{ "z", NULL, NIHON "|z~", "z/|" NIHON "|z~" },
};

static void range_expect(struct sm_store *st, const struct range_case *c, bool dirs)
{
	const char *want = dirs ? c->all : c->files;
	char *got = list_join(st, c->after, c->last, dirs);
	if (strcmp(got, want) != 0)
		fail_msg("range ('%s', '%s'] with%s directories: got [%s], want [%s]",
		         c->after ? c->after : "(start)", c->last ? c->last : "(end)",
		         dirs ? "" : "out", got, want);
	free(got);
}

static void test_range_table(void **state)
{
	struct fixture *fx = *state;
	put_order_keys(fx->st);
	bool dirs = expect_caps & SM_CAP_DIRS;
	for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
		range_expect(fx->st, &range_cases[i], false);
		if (dirs)
			range_expect(fx->st, &range_cases[i], true);
	}
	/* the tiles cover the whole listing, each key once, in order */
	for (int with_dirs = 0; with_dirs <= (int)dirs; with_dirs++) {
		struct sm_buf cat = { 0 };
		sm_buf_append(&cat, "", 0);
		for (size_t i = 0; i < sizeof(range_tiles) / sizeof(range_tiles[0]); i++) {
			const struct range_case *c = &range_tiles[i];
			assert_true(i == 0 || strcmp(c->after, range_tiles[i - 1].last) == 0);
			range_expect(fx->st, c, with_dirs);
			char *got = list_join(fx->st, c->after, c->last, with_dirs);
			if (*got && cat.len)
				sm_buf_append(&cat, "|", 1);
			sm_buf_appendz(&cat, got);
			free(got);
		}
		assert_null(range_tiles[sizeof(range_tiles) / sizeof(range_tiles[0]) - 1].last);
		assert_string_equal(cat.p, with_dirs ? ALL_KEYS : ALL_FILES);
		sm_buf_release(&cat);
	}
}

/* The capabilities the backend advertises are the ones the runner
 * expects, so that no capability-gated case is skipped unnoticed. */
static const struct {
	const char *name;
	unsigned bit;
} cap_names[] = {
	{ "dirs", SM_CAP_DIRS },
	{ "links", SM_CAP_LINKS },
	{ "mode", SM_CAP_MODE },
	{ "local", SM_CAP_LOCAL },
};
#define N_CAPS (sizeof(cap_names) / sizeof(cap_names[0]))

/* "dirs,links" into bits; false on an unknown name. */
static bool caps_parse(const char *s, unsigned *out)
{
	unsigned caps = 0;
	while (*s) {
		size_t n = strcspn(s, ",");
		size_t i = 0;
		while (i < N_CAPS &&
		       (strlen(cap_names[i].name) != n || memcmp(cap_names[i].name, s, n) != 0))
			i++;
		if (n && i == N_CAPS)
			return false;
		if (n)
			caps |= cap_names[i].bit;
		s += n + (s[n] == ',');
	}
	*out = caps;
	return true;
}

static void test_capabilities(void **state)
{
	struct fixture *fx = *state;
	char msg[SM_DIAG_MAX + 512] = "";
	size_t o = 0;
	for (size_t i = 0; i < N_CAPS; i++) {
		bool has = sm_store_has(fx->st, cap_names[i].bit);
		bool want = expect_caps & cap_names[i].bit;
		if (has != want && o < sizeof(msg))
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s '%s' %s", o ? ";" : "",
			                      cap_names[i].name,
			                      has ? "advertised, not expected"
			                          : "expected, not advertised");
	}
	if (*msg)
		fail_msg("capabilities differ from SM_EXPECT_CAPS:%s", msg);
}

static void test_empty(void **state)
{
	struct fixture *fx = *state;
	char *got = list_join(fx->st, NULL, NULL, true);
	assert_string_equal(got, "");
	free(got);
	got = list_join(fx->st, "a", "z", true);
	assert_string_equal(got, "");
	free(got);
}

static void test_missing_key(void **state)
{
	struct fixture *fx = *state;
	struct sm_entry e;
	struct sm_diag d;
	struct sm_reader *r = NULL;
	assert_int_equal(sm_store_stat(fx->st, "nope", &e, &d), SM_ENOENT);
	put_str(fx->st, "here", "x");
	assert_int_equal(sm_store_stat(fx->st, "nope", &e, &d), SM_ENOENT);
	assert_int_equal(sm_store_stat(fx->st, "here/nope", &e, &d) == SM_OK, 0);
	assert_int_equal(sm_store_open_read(fx->st, "nope", 0, &r, &d), SM_ENOENT);
	assert_null(r);
}

static void test_idempotent_delete(void **state)
{
	struct fixture *fx = *state;
	struct sm_diag d;
	struct sm_entry e;
	put_str(fx->st, "d/k", "v");
	assert_int_equal(sm_store_del(fx->st, "d/k", &d), SM_OK);
	assert_int_equal(sm_store_del(fx->st, "d/k", &d), SM_OK);
	assert_int_equal(sm_store_del(fx->st, "never", &d), SM_OK);
	assert_int_equal(sm_store_stat(fx->st, "d/k", &e, &d), SM_ENOENT);
}

static void test_put_stat_read(void **state)
{
	struct fixture *fx = *state;
	struct sm_diag d;
	for (size_t i = 0; i < N_ORDER; i++) {
		put_str(fx->st, order_keys[i], order_keys[i]);
		struct sm_entry e = { 0 };
		assert_int_equal(sm_store_stat(fx->st, order_keys[i], &e, &d), SM_OK);
		assert_int_equal(e.size, strlen(order_keys[i]));
		assert_int_equal(e.mtime_ns / 1000000000, 1500000000LL);
		sm_entry_release(&e);
		char *got = get_str(fx->st, order_keys[i], 0);
		assert_string_equal(got, order_keys[i]);
		free(got);
	}
	/* overwrite, and a ranged read */
	put_str(fx->st, "a b", "0123456789");
	char *got = get_str(fx->st, "a b", 0);
	assert_string_equal(got, "0123456789");
	free(got);
	got = get_str(fx->st, "a b", 7);
	assert_string_equal(got, "789");
	free(got);
}

/* A reader that produces `size` bytes of a pattern and can fail midway, or
 * say at the end that its source changed (finish). */
struct pattern_reader {
	struct sm_reader base;
	uint64_t pos;
	uint64_t size;
	uint64_t fail_at; /* UINT64_MAX: never */
	bool fail_finish;
};

static uint8_t pattern_byte(uint64_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static enum sm_err pr_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                           struct sm_diag *d)
{
	struct pattern_reader *p = (struct pattern_reader *)r;
	if (p->pos >= p->fail_at)
		return sm_diag_set(d, SM_EIO, 0, "reader failed on purpose");
	uint64_t left = p->size - p->pos;
	size_t n = left < cap ? (size_t)left : cap;
	if (p->fail_at != UINT64_MAX && p->pos + n > p->fail_at)
		n = (size_t)(p->fail_at - p->pos);
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = pattern_byte(p->pos + i);
	p->pos += n;
	*got = n;
	return SM_OK;
}

static enum sm_err pr_finish(struct sm_reader *r, struct sm_diag *d)
{
	struct pattern_reader *p = (struct pattern_reader *)r;
	if (p->fail_finish)
		return sm_diag_set(d, SM_ECHANGED, 0, "source changed on purpose");
	return SM_OK;
}

static void pr_close(struct sm_reader *r)
{
	(void)r;
}

static const struct sm_reader_ops pattern_ops = { .read = pr_read,
	                                          .finish = pr_finish,
	                                          .close = pr_close };

static void test_huge_object(void **state)
{
	struct fixture *fx = *state;
	const uint64_t size = 96ull << 20;
	struct pattern_reader p = { .base = { .ops = &pattern_ops, .size = size },
		                    .size = size,
		                    .fail_at = UINT64_MAX };
	struct sm_put put = { .mode = 0644, .flags = 0 };
	struct sm_diag d;
	assert_int_equal(sm_store_put(fx->st, "big/object", &p.base, &put, &d), SM_OK);
	struct sm_entry e = { 0 };
	assert_int_equal(sm_store_stat(fx->st, "big/object", &e, &d), SM_OK);
	assert_int_equal(e.size, size);
	struct sm_reader *r = NULL;
	assert_int_equal(sm_store_open_read(fx->st, "big/object", 0, &r, &d), SM_OK);
	uint8_t *buf = malloc(1 << 20);
	uint64_t pos = 0;
	for (;;) {
		size_t got = 0;
		assert_int_equal(sm_reader_read(r, buf, 1 << 20, &got, &d), SM_OK);
		if (!got)
			break;
		for (size_t i = 0; i < got; i++)
			if (buf[i] != pattern_byte(pos + i))
				fail_msg("byte %llu differs", (unsigned long long)(pos + i));
		pos += got;
	}
	assert_int_equal(pos, size);
	free(buf);
	sm_reader_close(r);
}

/* Puts that fail at each stage a backend goes through: while reading a
 * small put into memory, midway through a streamed one, after parts of a
 * multipart upload (S3 goes multipart above 32 MiB), and at the very end
 * when the source says it changed (SM_PUT_CHECK). */
struct atomic_case {
	const char *name;
	uint64_t size;
	uint64_t fail_at; /* UINT64_MAX: the reader does not fail */
	bool fail_finish;
};
static const struct atomic_case atomic_cases[] = {
	{ "reader fails midway", 4u << 20, 1u << 20, false },
	{ "small put, reader fails", 200u << 10, 100u << 10, false },
	{ "multipart, reader fails after two parts", 40u << 20, 20u << 20, false },
	{ "source changed at the end", 4u << 20, UINT64_MAX, true },
	{ "multipart, source changed at the end", 40u << 20, UINT64_MAX, true },
};

static void atomic_fail_put(struct fixture *fx, const struct atomic_case *c, const char *key)
{
	struct pattern_reader p = { .base = { .ops = &pattern_ops, .size = c->size },
		                    .size = c->size,
		                    .fail_at = c->fail_at,
		                    .fail_finish = c->fail_finish };
	struct sm_put put = { .mode = 0644, .flags = c->fail_finish ? SM_PUT_CHECK : 0 };
	struct sm_diag d;
	if (sm_store_put(fx->st, key, &p.base, &put, &d) == SM_OK)
		fail_msg("%s: put '%s' succeeded", c->name, key);
}

/* A failed put leaves no key behind and an older version of the key
 * intact, and nothing of itself: the store is looked at directly (the
 * directory on disk, the SFTP server's directory, the S3 bucket and its
 * multipart uploads), since listings skip temporary names by design. */
static void test_atomic_put(void **state)
{
	struct fixture *fx = *state;
	struct sm_diag d;
	struct sm_entry e;
	char what[256];
	atomic_fail_put(fx, &atomic_cases[0], "dir/new");
	assert_int_equal(sm_store_stat(fx->st, "dir/new", &e, &d), SM_ENOENT);
	raw_check(fx, "a failed put into an empty store", "");
	put_str(fx->st, "dir/old", "old contents");
	raw_check(fx, "a put", "dir/old");
	for (size_t i = 0; i < sizeof(atomic_cases) / sizeof(atomic_cases[0]); i++) {
		const struct atomic_case *c = &atomic_cases[i];
		atomic_fail_put(fx, c, "dir/new");
		assert_int_equal(sm_store_stat(fx->st, "dir/new", &e, &d), SM_ENOENT);
		atomic_fail_put(fx, c, "dir/old");
		char *got = get_str(fx->st, "dir/old", 0);
		if (strcmp(got, "old contents") != 0)
			fail_msg("%s: 'dir/old' now holds %zu bytes", c->name, strlen(got));
		free(got);
		snprintf(what, sizeof(what), "%s: failed puts of a new and an existing key",
		         c->name);
		raw_check(fx, what, "dir/old");
	}
	char *got = list_join(fx->st, NULL, NULL, false);
	assert_string_equal(got, "dir/old");
	free(got);
}

/* A file-like store refuses a key that would leave its root or alias
 * another; an object store's keys are opaque: the same keys are written,
 * read and deleted verbatim (issue 21). */
static void test_unsafe_keys_refused(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = { "../escape", "a/../../b", "/abs", "a//b", "." };
	bool files = sm_store_has(fx->st, SM_CAP_DIRS);
	struct sm_diag d;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_mem_reader m;
		sm_mem_reader_init(&m, "x", 1);
		struct sm_put p = { .mode = 0644 };
		enum sm_err err = sm_store_put(fx->st, bad[i], &m.base, &p, &d);
		if (files ? err != SM_EUNSAFE : err != SM_OK)
			fail_msg("put '%s': %s", bad[i], err == SM_OK ? "not refused" : d.msg);
		if (!files) {
			struct sm_entry e = { 0 };
			if (sm_store_stat(fx->st, bad[i], &e, &d) != SM_OK || e.size != 1)
				fail_msg("stat of the object '%s' after its put", bad[i]);
			sm_entry_release(&e);
		}
		err = sm_store_del(fx->st, bad[i], &d);
		if (files ? err != SM_EUNSAFE : err != SM_OK)
			fail_msg("delete '%s': %s", bad[i], err == SM_OK ? "not refused" : d.msg);
	}
}

/* The optional slots the runner says the store has (SM_EXPECT_CAPS;
 * test_capabilities checks that the store advertises the same). */
static void test_dirs_and_links(void **state)
{
	struct fixture *fx = *state;
	struct sm_diag d;
	struct sm_entry e = { 0 };
	struct sm_put p = { .mode = 0750, .flags = SM_PUT_MODE };
	if (expect_caps & SM_CAP_DIRS) {
		assert_int_equal(sm_store_mkdir(fx->st, "empty/sub/", &p, &d), SM_OK);
		assert_int_equal(sm_store_mkdir(fx->st, "empty/sub/", &p, &d), SM_OK);
		assert_int_equal(sm_store_stat(fx->st, "empty/sub/", &e, &d), SM_OK);
		assert_true(S_ISDIR(e.mode));
		assert_int_equal(e.mode & 07777, 0750);
		char *got = list_join(fx->st, NULL, NULL, true);
		assert_string_equal(got, "empty/|empty/sub/");
		free(got);
		/* a non-empty directory is not deleted */
		put_str(fx->st, "empty/sub/f", "x");
		assert_int_equal(sm_store_del(fx->st, "empty/sub/", &d), SM_ENOTEMPTY);
	}
	if (expect_caps & SM_CAP_LINKS) {
		struct sm_put lp = { .mtime_ns = 1400000000LL * 1000000000LL,
			             .flags = SM_PUT_MTIME };
		assert_int_equal(sm_store_symlink(fx->st, "ln", "../some target", &lp, &d), SM_OK);
		assert_int_equal(sm_store_stat(fx->st, "ln", &e, &d), SM_OK);
		assert_true(S_ISLNK(e.mode));
		assert_string_equal(e.link, "../some target");
		sm_entry_release(&e);
		assert_int_equal(sm_store_symlink(fx->st, "ln", "other", &lp, &d), SM_OK);
		assert_int_equal(sm_store_stat(fx->st, "ln", &e, &d), SM_OK);
		assert_string_equal(e.link, "other");
		sm_entry_release(&e);
	} else {
		/* no links: said so, not faked */
		struct sm_put lp = { 0 };
		assert_int_equal(sm_store_symlink(fx->st, "ln", "other", &lp, &d), SM_ENOTSUP);
		assert_int_equal(sm_store_stat(fx->st, "ln", &e, &d), SM_ENOENT);
	}
}

/* ---- a big directory through many range cursors ---- */

/*
 * One directory of many names (with subdirectories and names that sort
 * around the '/' a directory gets: "-" and "." before it, "0" after),
 * listed by many range cursors at once, as a run's tasks list one huge DST
 * directory: each range's keys must be exactly the slice of the expected
 * order that falls in it. The expected order is worked out here, from the
 * keys written (directory keys with their '/', sorted with strcmp), not
 * asked of the store. The cursors come from stores opened with a listing
 * cache (cfg.list_cache: a run's DST), one large enough to keep the
 * directory and one so small that every release evicts, and from the
 * fixture's store without one.
 */
#define BIG_LOCAL 20000 /* names on a local store; fewer where each put is a request */
#define BIG_REMOTE 2000
#define BIG_THREADS 4

struct big {
	struct sm_store *st;
	char **keys; /* every key, sorted */
	size_t nk;
	const char **bounds; /* range ends, sorted; bounds[0] = "", then (after, last] pairs */
	size_t nb;
	size_t nranges; /* tiles (bounds[i], bounds[i + 1]], then ranges over a few tiles */
	size_t (*pairs)[2];
	atomic_size_t next;
	pthread_mutex_t mu;
	char *fail; /* the first mismatch */
};

static void big_add(struct strv *sv, const char *fmt, unsigned i)
{
	char k[64];
	int n = snprintf(k, sizeof(k), fmt, i);
	strv_add(sv, k, (size_t)n);
}

/* The keys of range r: a binary search for its start, then on to its end. */
static void big_want(const struct big *b, const char *after, const char *last, struct sm_buf *out)
{
	size_t lo = 0, hi = b->nk;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(b->keys[mid], after) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	sm_buf_append(out, "", 0);
	for (size_t i = lo; i < b->nk && (!last || strcmp(b->keys[i], last) <= 0); i++) {
		if (out->len)
			sm_buf_append(out, "|", 1);
		sm_buf_appendz(out, b->keys[i]);
	}
}

/* List range i with its own cursor; false (and b->fail set) on a mismatch. */
static bool big_check(struct big *b, size_t i)
{
	const char *after = b->bounds[b->pairs[i][0]];
	const char *last = b->pairs[i][1] < b->nb ? b->bounds[b->pairs[i][1]] : NULL;
	struct sm_range r = { .after = after, .last = last };
	struct sm_cursor *c = NULL;
	struct sm_diag d;
	struct sm_buf got = { 0 }, want = { 0 };
	char msg[SM_DIAG_MAX + 512] = "";
	sm_buf_append(&got, "", 0);
	if (sm_store_list_begin(b->st, &r, &c, &d) != SM_OK) {
		snprintf(msg, sizeof(msg), "list_begin ('%s', '%s']: %s", after,
		         last ? last : "(end)", d.msg);
	} else {
		const struct sm_entry *e;
		enum sm_err err;
		while ((err = sm_store_list_next(c, &e, &d)) == SM_OK) {
			if (got.len)
				sm_buf_append(&got, "|", 1);
			sm_buf_appendz(&got, e->key);
		}
		if (err != SM_EOF)
			snprintf(msg, sizeof(msg), "list_next ('%s', '%s']: %s", after,
			         last ? last : "(end)", d.msg);
		sm_store_list_end(c);
	}
	big_want(b, after, last, &want);
	if (!*msg && strcmp(got.p, want.p) != 0) {
		/* where they part, not two lists of thousands of keys */
		size_t k = 0;
		while (got.p[k] && got.p[k] == want.p[k])
			k++;
		size_t from = k > 40 ? k - 40 : 0;
		snprintf(msg, sizeof(msg), "range ('%s', '%s']: got [...%.80s], want [...%.80s]",
		         after, last ? last : "(end)", got.p + from, want.p + from);
	}
	sm_buf_release(&got);
	sm_buf_release(&want);
	if (!*msg)
		return true;
	pthread_mutex_lock(&b->mu);
	if (!b->fail)
		b->fail = strdup(msg);
	pthread_mutex_unlock(&b->mu);
	return false;
}

static void *big_thread(void *arg)
{
	struct big *b = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&b->next, 1);
		if (i >= b->nranges || !big_check(b, i))
			break;
	}
	return NULL;
}

/* All ranges through store st from BIG_THREADS threads at once. */
static void big_run(struct big *b, struct sm_store *st, const char *what)
{
	b->st = st;
	atomic_store(&b->next, 0);
	pthread_t th[BIG_THREADS];
	for (int i = 0; i < BIG_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, big_thread, b), 0);
	for (int i = 0; i < BIG_THREADS; i++)
		pthread_join(th[i], NULL);
	if (b->fail)
		fail_msg("%s: %s", what, b->fail);
}

/* Names of a big directory under `dir` ("big"): f000000..., with names
 * that sort around a directory's '/' and, every 1000th, a directory with
 * one below it; and the keys they make (directories with their '/'). */
static void big_names(const char *dir, unsigned n, bool dirs, struct strv *files, struct strv *keys)
{
	char f[64];
	for (unsigned i = 0; i < n; i++) {
		snprintf(f, sizeof(f), "%s/f%%06u", dir);
		big_add(files, f, i);
		if (i % 7 == 3) {
			snprintf(f, sizeof(f), "%s/f%%06u-x", dir);
			big_add(files, f, i);
		}
		if (i % 11 == 5) {
			snprintf(f, sizeof(f), "%s/f%%06u.x", dir);
			big_add(files, f, i);
		}
		if (i % 1000 == 500) { /* a directory among them, with one below it */
			static const char *const around[] = { "/g%06u/in", "/g%06u/sub/in",
				                              "/g%06u-", "/g%06u.", "/g%06u0" };
			for (size_t k = 0; k < sizeof(around) / sizeof(around[0]); k++) {
				snprintf(f, sizeof(f), "%s%s", dir, around[k]);
				big_add(files, f, i);
			}
			if (dirs) {
				snprintf(f, sizeof(f), "%s/g%%06u/", dir);
				big_add(keys, f, i);
				snprintf(f, sizeof(f), "%s/g%%06u/sub/", dir);
				big_add(keys, f, i);
			}
		}
	}
	static const char *const near[] = { "-", ".", "0" }; /* beside the directory */
	for (size_t k = 0; k < sizeof(near) / sizeof(near[0]); k++) {
		snprintf(f, sizeof(f), "%s%s", dir, near[k]);
		strv_add(files, f, strlen(f));
	}
	if (dirs) {
		snprintf(f, sizeof(f), "%s/", dir);
		strv_add(keys, f, strlen(f));
	}
	for (size_t i = 0; i < files->n; i++)
		strv_add(keys, files->v[i], strlen(files->v[i]));
	qsort(keys->v, keys->n, sizeof(*keys->v), cmp_str);
}

/*
 * Every range of a set around `keys` (all the keys below the fixture's
 * prefix, sorted) listed through stores with a listing cache that keeps
 * the directory, with one of 1 byte (`tiny` ranges: each reads the
 * directory anew) and through the fixture's store without one (`none`
 * ranges). `during(arg)` is called while the cached store still holds its
 * listings.
 */
static void big_ranges(struct fixture *fx, struct strv *keys, size_t tiny, size_t none,
                       void (*during)(void *arg), void *arg)
{
	/* Bounds: ~200 keys and as many points between keys (a key with a byte
	 * added, one cut short), sorted; tiles between neighbours, then as
	 * many ranges over a few neighbouring tiles. */
	struct big b = { .keys = keys->v, .nk = keys->n };
	pthread_mutex_init(&b.mu, NULL);
	struct strv between = { 0 };
	size_t want_b = 400;
	b.bounds = calloc(want_b + 1, sizeof(*b.bounds));
	b.bounds[b.nb++] = "";
	for (size_t i = 0; i < want_b / 2; i++) {
		const char *k = keys->v[sm_rand64() % keys->n];
		b.bounds[b.nb++] = k;
		size_t kl = strlen(k);
		if (i % 2)
			strv_add(&between, k, kl > 1 ? kl - 1 : kl);
		else {
			char tmp[80];
			snprintf(tmp, sizeof(tmp), "%s%c", k, i % 4 ? '0' : '!');
			strv_add(&between, tmp, strlen(tmp));
		}
	}
	for (size_t i = 0; i < between.n; i++)
		b.bounds[b.nb++] = between.v[i];
	qsort(b.bounds + 1, b.nb - 1, sizeof(*b.bounds), cmp_str);
	b.pairs = calloc(2 * b.nb + 1, sizeof(*b.pairs));
	for (size_t i = 0; i < b.nb; i++) { /* the last tile runs to the end (nb) */
		b.pairs[b.nranges][0] = i;
		b.pairs[b.nranges++][1] = i + 1;
	}
	for (size_t i = 0; i < b.nb; i++) { /* spanning up to 8 tiles: every key is stat'ed */
		size_t x = sm_rand64() % b.nb, y = x + sm_rand64() % 9;
		b.pairs[b.nranges][0] = x;
		b.pairs[b.nranges++][1] = y < b.nb ? y : b.nb;
	}

	/* through a cache that keeps the directory, one that keeps nothing
	 * unused, and none (the fixture's store: a few tiles only) */
	struct sm_store_cfg cfg = { .read_links = true,
		                    .no_https = getenv("SM_STORE_NO_HTTPS") != NULL,
		                    .pool = fx->pool,
		                    .ssh = &sm_ssh_ops,
		                    .list_cache = 64u << 20 };
	struct sm_diag d;
	struct sm_store *cached = NULL, *tiny_st = NULL;
	if (sm_store_open(&fx->url, &cfg, &cached, &d) != SM_OK)
		fail_msg("open with a listing cache: %s", d.msg);
	cfg.list_cache = 1;
	if (sm_store_open(&fx->url, &cfg, &tiny_st, &d) != SM_OK)
		fail_msg("open with a tiny listing cache: %s", d.msg);
	big_run(&b, cached, "listing cache");
	big_run(&b, cached, "listing cache, again");
	if (during)
		during(arg);
	/* these two read the directory for (almost) every range: fewer */
	size_t all = b.nranges;
	b.nranges = tiny;
	big_run(&b, tiny_st, "listing cache of 1 byte");
	b.nranges = none;
	big_run(&b, fx->st, "no listing cache");
	b.nranges = all;

	/* the tiles together are the whole listing, each key once */
	struct sm_buf cat = { 0 }, full = { 0 };
	sm_buf_append(&cat, "", 0);
	for (size_t i = 0; i < b.nb; i++) {
		const char *last = i + 1 < b.nb ? b.bounds[i + 1] : NULL;
		char *got = list_join(cached, b.bounds[i], last, true);
		if (*got && cat.len)
			sm_buf_append(&cat, "|", 1);
		sm_buf_appendz(&cat, got);
		free(got);
	}
	big_want(&b, "", NULL, &full);
	assert_true(strcmp(cat.p, full.p) == 0);
	sm_buf_release(&cat);
	sm_buf_release(&full);

	sm_store_close(tiny_st);
	sm_store_close(cached);
	free(b.fail);
	free(b.pairs);
	free(b.bounds);
	pthread_mutex_destroy(&b.mu);
	strv_free(&between);
}

static void test_big_dir(void **state)
{
	struct fixture *fx = *state;
	bool dirs = expect_caps & SM_CAP_DIRS;
	unsigned n = (expect_caps & SM_CAP_LOCAL) ? BIG_LOCAL : BIG_REMOTE;
	struct strv files = { 0 }, keys = { 0 };
	big_names("big", n, dirs, &files, &keys);
	for (size_t i = 0; i < files.n; i++)
		put_str(fx->st, files.v[i], "");
	big_ranges(fx, &keys, 40, 20, NULL, NULL);
	strv_free(&keys);
	strv_free(&files);
}

/* ---- a huge directory, sorted on disk ---- */

/*
 * A directory of ~300k names (a directory store's: S3 lists in order by
 * itself) listed through range cursors as in test_big_dir, with the
 * threshold past which a directory's names are sorted on disk lowered
 * (SYNCMGR_TEST_DIR_SPILL) so far that this one is, in ~30 runs: what
 * cursors read is the merge (a cursor's own listing) or the merged file
 * through its index (the listing cache's). The names are made straight in
 * the store's directory on this machine (SM_STORE_RAW_DIR; the SFTP server
 * runs here too): 300k puts over SFTP would take minutes. TMPDIR is a
 * directory of the test's own, which must show no name while the cached
 * store holds its sorted files open (unnamed: O_TMPFILE) nor after.
 */
#define HUGE_NAMES 255000 /* and the names around them: ~310k */
#define HUGE_SPILL "10000"

struct huge_tmp {
	const char *dir;
	int open_files; /* sort files the process held open */
};

/* Names in dir (not . and ..). */
static int dir_names(const char *dir)
{
	DIR *dh = opendir(dir);
	if (!dh)
		fail_msg("cannot open '%s': %s", dir, strerror(errno));
	int n = 0;
	for (struct dirent *de; (de = readdir(dh));)
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(dh);
	return n;
}

/* While the cached store holds its listings: sort files open in TMPDIR
 * (/proc/self/fd links "TMPDIR/#INODE (deleted)"), no name there. */
static void huge_during(void *arg)
{
	struct huge_tmp *ht = arg;
	DIR *dh = opendir("/proc/self/fd");
	assert_non_null(dh);
	size_t dl = strlen(ht->dir);
	for (struct dirent *de; (de = readdir(dh));) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd(dh), de->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, ht->dir, dl) == 0 && target[dl] == '/' &&
		    strstr(target, "(deleted)"))
			ht->open_files++;
	}
	closedir(dh);
	if (!ht->open_files)
		fail_msg("no sort file open in '%s': the huge directory was not sorted on disk",
		         ht->dir);
	if (dir_names(ht->dir))
		fail_msg("'%s' shows names while sort files are open", ht->dir);
}

static int huge_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_huge_dir(void **state)
{
	struct fixture *fx = *state;
	if (!(expect_caps & SM_CAP_DIRS) || !raw_dir)
		return; /* an object store lists sorted by itself: nothing to spill */
	struct strv files = { 0 }, keys = { 0 };
	/* tests/run.sh's ThreadSanitizer stage lists fewer (still ~10 runs) */
	size_t n = HUGE_NAMES;
	const char *env = getenv("SM_CONFORMANCE_HUGE_NAMES");
	if (env && *env)
		n = (size_t)strtoul(env, NULL, 10);
	big_names("huge", n, true, &files, &keys);
	put_str(fx->st, "huge-", ""); /* the store makes its root */
	char top[PATH_MAX];
	snprintf(top, sizeof(top), "%s/%s", raw_dir, fx->tag);
	fx->raw_rm = strdup(top);
	char base[PATH_MAX + 64];
	for (size_t i = 0; i < files.n; i++) {
		char path[PATH_MAX + 64];
		int pl = snprintf(path, sizeof(path), "%s/%s", top, files.v[i]);
		assert_true(pl > 0 && (size_t)pl < sizeof(path));
		for (char *sl = strchr(path + strlen(top) + 1, '/'); sl; sl = strchr(sl + 1, '/')) {
			*sl = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST)
				fail_msg("cannot create '%s': %s", path, strerror(errno));
			*sl = '/';
		}
		/* links to a few files: making an inode each takes minutes on a
		 * busy disk (ext4 allows 65000 links a file) */
		if (i % 50000) {
			if (link(base, path) != 0 && errno != EEXIST)
				fail_msg("cannot link '%s': %s", path, strerror(errno));
			continue;
		}
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			fail_msg("cannot create '%s': %s", path, strerror(errno));
		close(fd);
		memcpy(base, path, sizeof(path));
	}
	char tmpl[] = "/tmp/sm-conformance-tmp-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	fx->tmpdir = strdup(tmpl);
	const char *old = getenv("TMPDIR");
	fx->old_tmpdir = old ? strdup(old) : NULL;
	setenv("TMPDIR", fx->tmpdir, 1);
	setenv("SYNCMGR_TEST_DIR_SPILL", HUGE_SPILL, 1);
	struct huge_tmp ht = { .dir = fx->tmpdir };
	/* every range through the cache; a few read the directory anew */
	bool local = expect_caps & SM_CAP_LOCAL;
	big_ranges(fx, &keys, local ? 6 : 3, local ? 3 : 2, huge_during, &ht);
	int left = dir_names(fx->tmpdir);
	if (left)
		fail_msg("%d names left in TMPDIR '%s'", left, fx->tmpdir);
	strv_free(&keys);
	strv_free(&files);
}

int main(void)
{
	base_url = getenv("SM_STORE_URL");
	if (!base_url || !*base_url) {
		fprintf(stderr, "conformance: set SM_STORE_URL to the base URL of the store\n");
		return 1;
	}
	const char *caps = getenv("SM_EXPECT_CAPS");
	if (!caps || !caps_parse(caps, &expect_caps)) {
		fprintf(stderr, "conformance: set SM_EXPECT_CAPS to the capabilities the store "
		                "must advertise (','-joined: dirs, links, mode, local; \"\" for "
		                "none)\n");
		return 1;
	}
	raw_dir = getenv("SM_STORE_RAW_DIR");
	raw_s3_endpoint = getenv("SM_STORE_RAW_S3_ENDPOINT");
	raw_s3_bucket = getenv("SM_STORE_RAW_S3_BUCKET");
	raw_s3_prefix = getenv("SM_STORE_RAW_S3_PREFIX");
	const char *nu = getenv("SM_STORE_RAW_S3_NO_UPLOADS");
	raw_s3_no_uploads = nu && strcmp(nu, "1") == 0;
	bool s3 = raw_s3_endpoint && *raw_s3_endpoint && raw_s3_bucket && *raw_s3_bucket &&
	          raw_s3_prefix;
	if ((raw_dir && !*raw_dir) || !raw_dir == !s3) {
		fprintf(stderr, "conformance: say where the store's bytes really are: "
		                "SM_STORE_RAW_DIR, or SM_STORE_RAW_S3_ENDPOINT, "
		                "SM_STORE_RAW_S3_BUCKET and SM_STORE_RAW_S3_PREFIX\n");
		return 1;
	}
	setenv("AWS_PAGER", "", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capabilities, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_range_bounds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_range_table, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_empty, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_missing_key, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_put_stat_read, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_huge_object, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_put, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_keys_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dirs_and_links, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_big_dir, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_huge_dir, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests_name(base_url, tests, NULL, NULL);
}
