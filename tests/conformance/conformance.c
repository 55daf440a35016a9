/*
 * The store conformance suite: one set of tests run unchanged against every
 * backend. The backend is chosen by the base URL in $SM_STORE_URL (a local
 * directory, later s3://..., host:/path, dav://...); each test works under a
 * fresh prefix below it and removes what it wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "../../common/pool.h"
#include "../../common/store/store.h"
#include "../../deploy/ssh.h"
#include "../../common/util.h"

static const char *base_url;

struct fixture {
	struct sm_store *st;
	struct sm_url url;
	struct sm_pool *pool;
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char url[1024];
	snprintf(url, sizeof(url), "%s%st%016llx/", base_url,
	         base_url[strlen(base_url) - 1] == '/' ? "" : "/", (unsigned long long)sm_rand64());
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

/* Delete everything under the test's prefix: files first, then directories
 * deepest first. */
static int fx_teardown(void **state)
{
	struct fixture *fx = *state;
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

/* Keys chosen to stress the global order: '-' (0x2d) and '.' (0x2e) sort
 * before '/' (0x2f), so "a-b" and "a.b/" come before "a/". */
static const char *const order_keys[] = {
	"a b", "a-b", "a.b/x",       "a/x",         "a/y/z",
	"a0",  "ab",  "caf\xc3\xa9", "line\nbreak", "z/\xe6\x97\xa5\xe6\x9c\xac",
	"z~",
};
#define N_ORDER (sizeof(order_keys) / sizeof(order_keys[0]))

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

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
	if (sm_store_has(fx->st, SM_CAP_DIRS)) {
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
	bool dirs = sm_store_has(fx->st, SM_CAP_DIRS);
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

/* A reader that produces `size` bytes of a pattern and can fail midway. */
struct pattern_reader {
	struct sm_reader base;
	uint64_t pos;
	uint64_t size;
	uint64_t fail_at; /* UINT64_MAX: never */
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

static void pr_close(struct sm_reader *r)
{
	(void)r;
}

static const struct sm_reader_ops pattern_ops = { .read = pr_read, .close = pr_close };

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

/* A put whose reader fails leaves no key behind, and an older version of
 * the key intact; no temporary name shows in a listing. */
static void test_atomic_put(void **state)
{
	struct fixture *fx = *state;
	struct sm_diag d;
	struct sm_entry e;
	struct pattern_reader p = { .base = { .ops = &pattern_ops, .size = 4 << 20 },
		                    .size = 4 << 20,
		                    .fail_at = 1 << 20 };
	struct sm_put put = { .mode = 0644 };
	assert_int_not_equal(sm_store_put(fx->st, "dir/new", &p.base, &put, &d), SM_OK);
	assert_int_equal(sm_store_stat(fx->st, "dir/new", &e, &d), SM_ENOENT);
	put_str(fx->st, "dir/old", "old contents");
	p.pos = 0;
	assert_int_not_equal(sm_store_put(fx->st, "dir/old", &p.base, &put, &d), SM_OK);
	char *got = get_str(fx->st, "dir/old", 0);
	assert_string_equal(got, "old contents");
	free(got);
	got = list_join(fx->st, NULL, NULL, false);
	assert_string_equal(got, "dir/old");
	free(got);
}

static void test_unsafe_keys_refused(void **state)
{
	struct fixture *fx = *state;
	static const char *const bad[] = { "../escape", "a/../../b", "/abs", "a//b", "." };
	struct sm_diag d;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_mem_reader m;
		sm_mem_reader_init(&m, "x", 1);
		struct sm_put p = { .mode = 0644 };
		if (sm_store_put(fx->st, bad[i], &m.base, &p, &d) != SM_EUNSAFE)
			fail_msg("put '%s' was not refused", bad[i]);
		if (sm_store_del(fx->st, bad[i], &d) != SM_EUNSAFE)
			fail_msg("delete '%s' was not refused", bad[i]);
	}
}

static void test_dirs_and_links(void **state)
{
	struct fixture *fx = *state;
	struct sm_diag d;
	struct sm_entry e = { 0 };
	struct sm_put p = { .mode = 0750, .flags = SM_PUT_MODE };
	if (sm_store_has(fx->st, SM_CAP_DIRS)) {
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
	if (sm_store_has(fx->st, SM_CAP_LINKS)) {
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
	}
}

int main(void)
{
	base_url = getenv("SM_STORE_URL");
	if (!base_url || !*base_url) {
		fprintf(stderr, "conformance: set SM_STORE_URL to the base URL of the store\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_range_bounds, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_empty, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_missing_key, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_put_stat_read, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_huge_object, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_atomic_put, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_keys_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dirs_and_links, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests_name(base_url, tests, NULL, NULL);
}
