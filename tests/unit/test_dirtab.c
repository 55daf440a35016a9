/* The sorted directory table (common/store/dirtab.c): sorted in memory,
 * spilled and read by one reader, spilled and shared through an index, it
 * gives the same records in the same order (keys with '/' for directories,
 * byte order) and the same seek results, for names that stress the order. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/store/dirtab.h"

struct name {
	char *p;
	size_t n;
	bool dir;
	char *key; /* p, '/' when dir, NUL */
	size_t klen;
};

static int key_cmp(const void *pa, const void *pb)
{
	const struct name *a = pa, *b = pb;
	int c = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);
	return c ? c : (a->klen > b->klen) - (a->klen < b->klen);
}

static void name_set(struct name *nm, const char *p, size_t n, bool dir)
{
	nm->p = malloc(n);
	assert_non_null(nm->p);
	memcpy(nm->p, p, n);
	nm->n = n;
	nm->dir = dir;
	nm->klen = n + dir;
	nm->key = malloc(nm->klen + 1);
	assert_non_null(nm->key);
	memcpy(nm->key, p, n);
	if (dir)
		nm->key[n] = '/';
	nm->key[nm->klen] = '\0';
}

/* The payload of a name: its bytes backwards; larger than a read window
 * for the long names of 'L's. */
#define PAYLOAD_MAX 20000
static size_t payload(const struct name *nm, char *buf)
{
	size_t n = nm->p[0] == 'L' ? PAYLOAD_MAX : nm->n % 3;
	for (size_t i = 0; i < n; i++)
		buf[i] = nm->p[(nm->n - 1 - i % nm->n)] ^ (char)i;
	return n;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Names around the '/' a directory gets ('-' and '.' sort before it, '0'
 * after), odd bytes, long names; then `extra` random ones. */
static const struct {
	const char *p;
	bool dir;
} fixed[] = {
	{ "a", false },           { "a-b", false }, { "a.b", true },          { "a", true },
	{ "a0", false },          { "ab", false },  { "\x01", false },        { "\xff", false },
	{ "\xff\xff", true },     { "a b", false }, { "a!", true },           { "a\x7f", false },
	{ "caf\xc3\xa9", false }, { "z~", false },  { "line\nbreak", false }, { "A", true },
};

static struct name *make(size_t extra, size_t *n_out)
{
	size_t cap = sizeof(fixed) / sizeof(fixed[0]) + extra + 4;
	struct name *v = calloc(cap, sizeof(*v));
	assert_non_null(v);
	size_t n = 0;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		name_set(&v[n++], fixed[i].p, strlen(fixed[i].p), fixed[i].dir);
	char longname[255];
	memset(longname, 'L', sizeof(longname));
	name_set(&v[n++], longname, sizeof(longname), false);
	name_set(&v[n++], longname, sizeof(longname) - 1, true);
	for (size_t i = 0; i < extra; i++) {
		char b[320];
		size_t len = 1 + (size_t)(next_rand() % (i % 50 == 0 ? 299 : 12));
		for (size_t j = 0; j < len; j++)
			b[j] = "ab-.0\x01\xff"[next_rand() % 7];
		/* unique: a suffix from the index ('_' is in no other name) */
		int k = snprintf(b + len, sizeof(b) - len, "_%zu", i);
		name_set(&v[n++], b, len + (size_t)k, next_rand() % 5 == 0);
	}
	qsort(v, n, sizeof(*v), key_cmp);
	*n_out = n;
	return v;
}

static void names_free(struct name *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].p);
		free(v[i].key);
	}
	free(v);
}

enum kind { IN_MEMORY, SPILLED_ONE_READER, SPILLED_SHARED };

/* The names in a shuffled order into a table of kind k. */
static struct sm_dirtab *build(const struct name *v, size_t n, enum kind k)
{
	if (k == IN_MEMORY)
		unsetenv("SYNCMGR_TEST_DIR_SPILL");
	else
		setenv("SYNCMGR_TEST_DIR_SPILL", "3", 1);
	size_t *order = malloc((n ? n : 1) * sizeof(*order));
	assert_non_null(order);
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(next_rand() % i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	struct sm_dirtab *t = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dirtab_new(&t, &d), SM_OK);
	char buf[PAYLOAD_MAX];
	for (size_t i = 0; i < n; i++) {
		const struct name *nm = &v[order[i]];
		size_t pl = payload(nm, buf);
		assert_int_equal(sm_dirtab_add(t, nm->p, nm->n, nm->dir, buf, pl, &d), SM_OK);
	}
	assert_int_equal(sm_dirtab_finish(t, k == SPILLED_SHARED, &d), SM_OK);
	unsetenv("SYNCMGR_TEST_DIR_SPILL");
	free(order);
	assert_int_equal(sm_dirtab_count(t), n);
	if (k == IN_MEMORY)
		assert_int_equal(sm_dirtab_disk_bytes(t), 0);
	else if (n > 3)
		assert_true(sm_dirtab_disk_bytes(t) > 0);
	return t;
}

static void expect_rec(const struct name *nm, const struct sm_dirtab_rec *r)
{
	char buf[PAYLOAD_MAX];
	size_t pl = payload(nm, buf);
	assert_int_equal(r->klen, nm->klen);
	assert_memory_equal(r->key, nm->key, nm->klen + 1); /* NUL included */
	assert_int_equal(r->nlen, nm->n);
	assert_int_equal(r->dir, nm->dir);
	assert_int_equal(r->dlen, pl);
	if (pl)
		assert_memory_equal(r->data, buf, pl);
}

/* Every record, in order, then EOF (twice). */
static void expect_all(struct sm_dirtab *t, const struct name *v, size_t n)
{
	struct sm_dirtab_it it;
	struct sm_dirtab_rec r, again;
	struct sm_diag d;
	sm_dirtab_it_init(&it, t);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sm_dirtab_it_peek(&it, &r, &d), SM_OK);
		assert_int_equal(sm_dirtab_it_peek(&it, &again, &d), SM_OK); /* does not move */
		assert_ptr_equal(r.key, again.key);
		expect_rec(&v[i], &r);
		sm_dirtab_it_advance(&it);
	}
	assert_int_equal(sm_dirtab_it_peek(&it, &r, &d), SM_EOF);
	assert_int_equal(sm_dirtab_it_peek(&it, &r, &d), SM_EOF);
	sm_dirtab_it_release(&it);
}

/* Probes: every key, each cut short and with a byte added, and a few more;
 * sorted (a reader of its own seeks forward only). */
static struct name *probes(const struct name *v, size_t n, size_t *np)
{
	struct name *p = calloc(3 * n + 8, sizeof(*p));
	assert_non_null(p);
	size_t k = 0;
	static const char *const more[] = { "", "\x01", "a/", "a.b/x", "a/\xff", "\xff\xff\xff" };
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		name_set(&p[k++], more[i], strlen(more[i]), false);
	for (size_t i = 0; i < n; i++) {
		name_set(&p[k++], v[i].key, v[i].klen, false);
		name_set(&p[k++], v[i].key, v[i].klen - 1, false);
		char b[320];
		memcpy(b, v[i].key, v[i].klen);
		b[v[i].klen] = i % 2 ? '!' : '0';
		name_set(&p[k++], b, v[i].klen + 1, false);
	}
	qsort(p, k, sizeof(*p), key_cmp);
	*np = k;
	return p;
}

/* Index of the first name whose key is not below the probe. */
static size_t lower_bound(const struct name *v, size_t n, const struct name *probe)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(&v[mid], probe) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void expect_seek(struct sm_dirtab_it *it, const struct name *v, size_t n,
                        const struct name *probe)
{
	struct sm_diag d;
	struct sm_dirtab_rec r;
	size_t want = lower_bound(v, n, probe);
	assert_int_equal(sm_dirtab_it_seek(it, probe->key, probe->klen, &d), SM_OK);
	enum sm_err err = sm_dirtab_it_peek(it, &r, &d);
	if (want == n) {
		assert_int_equal(err, SM_EOF);
		return;
	}
	assert_int_equal(err, SM_OK);
	expect_rec(&v[want], &r);
}

static void check_kind(size_t extra, enum kind k)
{
	size_t n, np;
	struct name *v = make(extra, &n);
	struct name *p = probes(v, n, &np);
	struct sm_dirtab *t = build(v, n, k);
	if (k != SPILLED_ONE_READER) {
		expect_all(t, v, n);
		expect_all(t, v, n); /* again: reading does not use it up */
		/* each probe from a fresh iterator, then all on one, backwards */
		for (size_t i = 0; i < np; i++) {
			struct sm_dirtab_it it;
			sm_dirtab_it_init(&it, t);
			expect_seek(&it, v, n, &p[i]);
			sm_dirtab_it_release(&it);
		}
		struct sm_dirtab_it it;
		sm_dirtab_it_init(&it, t);
		for (size_t i = np; i-- > 0;)
			expect_seek(&it, v, n, &p[i]);
		sm_dirtab_it_release(&it);
	} else {
		/* one reader: forward seeks (every 3rd probe), reading on between */
		struct sm_dirtab_it it;
		sm_dirtab_it_init(&it, t);
		for (size_t i = 0; i < np; i += 3)
			expect_seek(&it, v, n, &p[i]);
		sm_dirtab_it_release(&it);
		sm_dirtab_free(t);
		t = build(v, n, k);
		expect_all(t, v, n);
	}
	sm_dirtab_free(t);
	names_free(p, np);
	names_free(v, n);
}

static void test_in_memory(void **state)
{
	(void)state;
	check_kind(0, IN_MEMORY);
	check_kind(3000, IN_MEMORY);
}

static void test_spilled_one_reader(void **state)
{
	(void)state;
	check_kind(0, SPILLED_ONE_READER);
	check_kind(3000, SPILLED_ONE_READER);
}

static void test_spilled_shared(void **state)
{
	(void)state;
	check_kind(0, SPILLED_SHARED);
	check_kind(3000, SPILLED_SHARED);
}

static void test_empty(void **state)
{
	(void)state;
	for (enum kind k = IN_MEMORY; k <= SPILLED_SHARED; k++) {
		struct sm_dirtab *t = build(NULL, 0, k);
		struct sm_dirtab_it it;
		struct sm_dirtab_rec r;
		struct sm_diag d;
		sm_dirtab_it_init(&it, t);
		assert_int_equal(sm_dirtab_it_peek(&it, &r, &d), SM_EOF);
		assert_int_equal(sm_dirtab_it_seek(&it, "a", 1, &d), SM_OK);
		assert_int_equal(sm_dirtab_it_peek(&it, &r, &d), SM_EOF);
		sm_dirtab_it_release(&it);
		sm_dirtab_free(t);
	}
}

static void test_refused(void **state)
{
	(void)state;
	struct sm_dirtab *t = NULL;
	struct sm_diag d;
	assert_int_equal(sm_dirtab_new(&t, &d), SM_OK);
	assert_int_equal(sm_dirtab_add(t, "", 0, false, NULL, 0, &d), SM_EINVAL);
	static char big[SM_DIRTAB_DATA_MAX + 1];
	assert_int_equal(sm_dirtab_add(t, "a", 1, false, big, sizeof(big), &d), SM_EINVAL);
	assert_int_equal(sm_dirtab_finish(t, true, &d), SM_OK);
	assert_int_equal(sm_dirtab_add(t, "a", 1, false, NULL, 0, &d), SM_EINVAL);
	sm_dirtab_free(t);
}

/* A shared spilled table holds its index only, a small part of the
 * in-memory table's bytes. */
static void test_spilled_memory(void **state)
{
	(void)state;
	size_t n;
	struct name *v = make(50000, &n);
	struct sm_dirtab *mem = build(v, n, IN_MEMORY);
	struct sm_dirtab *file = build(v, n, SPILLED_SHARED);
	assert_true(sm_dirtab_mem_bytes(file) * 8 < sm_dirtab_mem_bytes(mem));
	assert_true(sm_dirtab_cache_bytes(file) > sm_dirtab_mem_bytes(file));
	sm_dirtab_free(file);
	sm_dirtab_free(mem);
	names_free(v, n);
}

/* Many readers of one shared spilled table at once, each seeking. */
struct reader_arg {
	struct sm_dirtab *t;
	const struct name *v, *p;
	size_t n, np;
	unsigned seed;
};

static void *reader(void *arg)
{
	struct reader_arg *a = arg;
	struct sm_dirtab_it it;
	struct sm_diag d;
	sm_dirtab_it_init(&it, a->t);
	for (size_t k = 0; k < 200; k++) {
		size_t i = (a->seed * 7919u + k * 104729u) % a->np;
		size_t want = lower_bound(a->v, a->n, &a->p[i]);
		if (sm_dirtab_it_seek(&it, a->p[i].key, a->p[i].klen, &d) != SM_OK)
			return "seek failed";
		for (size_t j = want; j < a->n && j < want + 50; j++) {
			struct sm_dirtab_rec r;
			if (sm_dirtab_it_peek(&it, &r, &d) != SM_OK || r.klen != a->v[j].klen ||
			    memcmp(r.key, a->v[j].key, r.klen) != 0)
				return "wrong record";
			sm_dirtab_it_advance(&it);
		}
	}
	sm_dirtab_it_release(&it);
	return NULL;
}

static void test_shared_readers(void **state)
{
	(void)state;
	size_t n, np;
	struct name *v = make(20000, &n);
	struct name *p = probes(v, n, &np);
	struct sm_dirtab *t = build(v, n, SPILLED_SHARED);
	pthread_t th[4];
	struct reader_arg a[4];
	for (unsigned i = 0; i < 4; i++) {
		a[i] = (struct reader_arg){ t, v, p, n, np, i + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, reader, &a[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		void *res;
		pthread_join(th[i], &res);
		if (res)
			fail_msg("reader %u: %s", i, (const char *)res);
	}
	sm_dirtab_free(t);
	names_free(p, np);
	names_free(v, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_memory),      cmocka_unit_test(test_spilled_one_reader),
		cmocka_unit_test(test_spilled_shared), cmocka_unit_test(test_empty),
		cmocka_unit_test(test_refused),        cmocka_unit_test(test_spilled_memory),
		cmocka_unit_test(test_shared_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
