/* The listing cache (common/store/dircache.c): a directory loads once and is
 * then served; failed loads are not kept; unreferenced entries go oldest
 * first beyond the budget, never one in use nor the one released last; a
 * stale entry is reloaded and freed when its last holder lets go; a cursor
 * asking for a directory another one is loading waits for that load. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/store/dircache.h"
#include "../../common/util.h"

static int freed; /* values the cache freed */

static void val_free(void *v)
{
	freed++;
	free(v);
}

static int *val_new(int tag)
{
	int *v = malloc(sizeof(*v));
	assert_non_null(v);
	*v = tag;
	return v;
}

/* One step of a script: op on handle slot `slot` for directory `path`. */
enum op {
	END,      /* the script's end (the zeroed rest of steps[]) */
	GET_LOAD, /* get: the caller is to load it */
	GET_HIT,  /* get: served, value `arg` */
	FILL,     /* fill with value `arg`, `bytes` bytes */
	RELEASE,
	ABANDON,
	STALE,
	FREED,   /* `arg` values freed so far */
	EVICTED, /* `arg` evictions so far */
};
struct step {
	enum op op;
	int slot;
	const char *path;
	int arg;
	size_t bytes;
};
#define LOAD(s, p)                   \
	{                            \
		GET_LOAD, s, p, 0, 0 \
	}
#define HIT(s, p, v)                \
	{                           \
		GET_HIT, s, p, v, 0 \
	}
#define PUT(s, v, b)                \
	{                           \
		FILL, s, NULL, v, b \
	}
#define REL(s)                         \
	{                              \
		RELEASE, s, NULL, 0, 0 \
	}
#define DROP(s)                        \
	{                              \
		ABANDON, s, NULL, 0, 0 \
	}
#define STL(s)                       \
	{                            \
		STALE, s, NULL, 0, 0 \
	}
#define NFREED(n)                    \
	{                            \
		FREED, 0, NULL, n, 0 \
	}
#define NEVICTED(n)                    \
	{                              \
		EVICTED, 0, NULL, n, 0 \
	}
struct script {
	const char *name;
	size_t budget;
	struct step steps[16];
};

static const struct script scripts[] = {
	{ "load once, then served",
	  1 << 20,
	  { LOAD(0, "a/"), PUT(0, 1, 100), HIT(1, "a/", 1), REL(0), REL(1), HIT(0, "a/", 1), REL(0),
	    LOAD(1, ""), PUT(1, 2, 10), REL(1), HIT(1, "", 2), REL(1), NFREED(0) } },
	{ "oldest unused goes beyond the budget",
	  1000,
	  { LOAD(0, "a/"), PUT(0, 1, 600), REL(0), LOAD(1, "b/"), PUT(1, 2, 600), NEVICTED(0),
	    REL(1), NEVICTED(1), NFREED(1), HIT(1, "b/", 2), LOAD(0, "a/"), DROP(0), REL(1) } },
	{ "in use or released last: kept over the budget",
	  100,
	  { LOAD(0, "big/"), PUT(0, 1, 5000), LOAD(1, "big2/"), PUT(1, 2, 5000), NEVICTED(0),
	    REL(0), NEVICTED(0), REL(1), NEVICTED(1), HIT(0, "big2/", 2), REL(0), LOAD(0, "big/"),
	    DROP(0), NFREED(1) } },
	{ "a failed load is not kept",
	  1 << 20,
	  { LOAD(0, "x/"), DROP(0), LOAD(0, "x/"), PUT(0, 7, 10), REL(0), HIT(0, "x/", 7), REL(0),
	    NFREED(0) } },
	{ "stale: reloaded, the old value freed after its last holder",
	  1 << 20,
	  { LOAD(0, "y/"), PUT(0, 1, 10), HIT(1, "y/", 1), STL(0), NFREED(0), LOAD(2, "y/"),
	    PUT(2, 2, 10), REL(1), NFREED(1), REL(2), HIT(0, "y/", 2), REL(0) } },
};

static void test_scripts(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(scripts) / sizeof(scripts[0]); k++) {
		const struct script *sc = &scripts[k];
		struct sm_dircache *dc = NULL;
		assert_int_equal(sm_dircache_new(sc->budget, val_free, &dc), SM_OK);
		struct sm_dircache_ent *h[4] = { 0 };
		freed = 0;
		for (int i = 0; sc->steps[i].op != END; i++) {
			const struct step *s = &sc->steps[i];
			struct sm_dircache_stats st;
			bool load = false;
			switch (s->op) {
			case END: break;
			case GET_LOAD:
			case GET_HIT:
				h[s->slot] = sm_dircache_get(dc, s->path, strlen(s->path), &load);
				assert_non_null(h[s->slot]);
				if (load != (s->op == GET_LOAD))
					fail_msg("%s, step %d: '%s' %s", sc->name, i, s->path,
					         load ? "to load" : "served");
				if (s->op == GET_HIT &&
				    *(int *)sm_dircache_val(h[s->slot]) != s->arg)
					fail_msg("%s, step %d: wrong value", sc->name, i);
				break;
			case FILL:
				sm_dircache_fill(dc, h[s->slot], val_new(s->arg), s->bytes);
				break;
			case RELEASE: sm_dircache_release(dc, h[s->slot]); break;
			case ABANDON: sm_dircache_abandon(dc, h[s->slot]); break;
			case STALE: sm_dircache_stale(dc, h[s->slot]); break;
			case FREED:
				if (freed != s->arg)
					fail_msg("%s, step %d: %d freed, want %d", sc->name, i,
					         freed, s->arg);
				break;
			case EVICTED:
				sm_dircache_stats(dc, &st);
				if (st.evictions != (unsigned long)s->arg)
					fail_msg("%s, step %d: %lu evicted, want %d", sc->name, i,
					         st.evictions, s->arg);
				break;
			}
		}
		sm_dircache_free(dc);
	}
}

struct waiter {
	struct sm_dircache *dc;
	bool load;
	int val;
};

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;
	struct sm_dircache_ent *e = sm_dircache_get(w->dc, "d/", 2, &w->load);
	if (!w->load)
		w->val = *(int *)sm_dircache_val(e);
	else
		sm_dircache_abandon(w->dc, e);
	if (!w->load)
		sm_dircache_release(w->dc, e);
	return NULL;
}

/* A second cursor waits for the first one's load and is served by it; after
 * a failed load it loads itself. */
static void test_waits_for_load(void **state)
{
	(void)state;
	for (int fail = 0; fail <= 1; fail++) {
		struct sm_dircache *dc = NULL;
		assert_int_equal(sm_dircache_new(1 << 20, val_free, &dc), SM_OK);
		bool load = false;
		struct sm_dircache_ent *e = sm_dircache_get(dc, "d/", 2, &load);
		assert_true(load);
		struct waiter w = { .dc = dc };
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, waiter_run, &w), 0);
		sm_sleep_ms(50); /* the waiter is blocked in get() meanwhile */
		if (fail)
			sm_dircache_abandon(dc, e);
		else
			sm_dircache_fill(dc, e, val_new(42), 10);
		pthread_join(th, NULL);
		if (fail) {
			assert_true(w.load);
		} else {
			assert_false(w.load);
			assert_int_equal(w.val, 42);
			sm_dircache_release(dc, e);
		}
		struct sm_dircache_stats st;
		sm_dircache_stats(dc, &st);
		assert_int_equal(st.loads, fail ? 2 : 1);
		sm_dircache_free(dc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_waits_for_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
