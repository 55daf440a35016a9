#include "plan.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../worker/wire.h"
#include "dispatch.h"
#include "lister.h"

#define PLAN_HUNGRY_EVERY 16 /* entries between checks for idle workers */

void sm_cut_cfg_default(struct sm_cut_cfg *c)
{
	c->max_keys = 1000;
	c->max_bytes = 32u << 20;
	c->max_key_bytes = 1u << 20;
	/* Early cuts for idle workers come from the task's age: a fast listing
	 * still fills tasks (each task re-lists the DST directories it starts
	 * in), a slow one hands out what it has after 20 ms. */
	c->min_keys = c->max_keys;
	c->min_age_ns = 20u * 1000000u;
}

enum sm_err sm_cutter_init(struct sm_cutter *c, const struct sm_cut_cfg *cfg, sm_emit_fn emit,
                           void *arg)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	c->emit = emit;
	c->arg = arg;
	c->key_off = calloc(cfg->max_keys, sizeof(*c->key_off));
	c->link_off = calloc(cfg->max_keys, sizeof(*c->link_off));
	c->ents = calloc(cfg->max_keys, sizeof(*c->ents));
	c->ptrs = calloc(cfg->max_keys, sizeof(*c->ptrs));
	if (!c->key_off || !c->link_off || !c->ents || !c->ptrs ||
	    sm_buf_append(&c->after, "", 0) != SM_OK) {
		sm_cutter_release(c);
		return SM_ENOMEM;
	}
	return SM_OK;
}

void sm_cutter_release(struct sm_cutter *c)
{
	free(c->key_off);
	free(c->link_off);
	free(c->ents);
	free(c->ptrs);
	sm_buf_release(&c->arena);
	sm_buf_release(&c->after);
	memset(c, 0, sizeof(*c));
}

enum sm_err sm_cutter_add(struct sm_cutter *c, const struct sm_entry *e, struct sm_diag *d)
{
	if (c->n == c->cfg.max_keys)
		return sm_diag_set(d, SM_EINVAL, 0, "task full: cut before adding");
	size_t koff = c->arena.len;
	if (sm_buf_append(&c->arena, e->key, strlen(e->key) + 1) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	size_t loff = SIZE_MAX;
	if (e->link) {
		loff = c->arena.len;
		if (sm_buf_append(&c->arena, e->link, strlen(e->link) + 1) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	if (c->n == 0)
		c->started_ns = sm_now_ns();
	c->key_off[c->n] = koff;
	c->link_off[c->n] = loff;
	struct sm_entry tmp = *e;
	tmp.key = "";
	tmp.link = NULL;
	sm_wire_entry_to_pb(&tmp, &c->ents[c->n]); /* key/link pointers set at cut time */
	c->n++;
	if (!S_ISDIR(e->mode))
		c->bytes += e->size;
	return SM_OK;
}

bool sm_cutter_full(const struct sm_cutter *c, bool hungry, uint64_t now_ns)
{
	if (c->n >= c->cfg.max_keys || c->bytes >= c->cfg.max_bytes ||
	    c->arena.len >= c->cfg.max_key_bytes)
		return true;
	return hungry && c->n > 0 &&
	       (c->n >= c->cfg.min_keys || now_ns - c->started_ns >= c->cfg.min_age_ns);
}

enum sm_err sm_cutter_cut(struct sm_cutter *c, const char *last, struct sm_diag *d)
{
	for (size_t i = 0; i < c->n; i++) {
		const char *k = c->arena.p + c->key_off[i];
		c->ents[i].key.data = (uint8_t *)k;
		c->ents[i].key.len = strlen(k);
		if (c->link_off[i] != SIZE_MAX) {
			const char *l = c->arena.p + c->link_off[i];
			c->ents[i].link.data = (uint8_t *)l;
			c->ents[i].link.len = strlen(l);
		}
		c->ptrs[i] = &c->ents[i];
	}
	Syncmgr__Task t = SYNCMGR__TASK__INIT;
	t.after.data = (uint8_t *)c->after.p;
	t.after.len = c->after.len;
	if (last) {
		t.last.data = (uint8_t *)last;
		t.last.len = strlen(last);
	} else {
		t.open_end = true;
	}
	t.n_src = c->n;
	t.src = c->ptrs;
	enum sm_err err = c->emit(c->arg, &t, d);
	c->tasks++;
	c->n = 0;
	c->bytes = 0;
	c->arena.len = 0;
	if (err == SM_OK && last) {
		c->after.len = 0;
		if (sm_buf_appendz(&c->after, last) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	return err;
}

static enum sm_err plan_emit(void *arg, Syncmgr__Task *t, struct sm_diag *d)
{
	return sm_dispatch_push(arg, t, d);
}

/* Is this a key of the run (counted as found)? */
static bool plan_wanted(const struct sm_entry *e, const struct sm_opts *o)
{
	if (S_ISDIR(e->mode))
		return o->dirs;
	return S_ISREG(e->mode) || S_ISLNK(e->mode);
}

static enum sm_err plan_single(const struct sm_opts *o, struct sm_store *src,
                               struct sm_dispatch *dp, const char *key, const char *dst_key,
                               struct sm_plan_stats *ps, struct sm_plan_result *res,
                               struct sm_diag *d)
{
	(void)o;
	struct sm_entry e = { 0 };
	enum sm_err err = sm_store_stat(src, key, &e, d);
	if (err != SM_OK) {
		res->fatal = true;
		return err;
	}
	e.key = (char *)key;
	Syncmgr__Entry pe;
	sm_wire_entry_to_pb(&e, &pe);
	Syncmgr__Entry *pp = &pe;
	Syncmgr__Task t = SYNCMGR__TASK__INIT;
	t.n_src = 1;
	t.src = &pp;
	t.single = true;
	t.dst_key.data = (uint8_t *)dst_key;
	t.dst_key.len = strlen(dst_key);
	__atomic_fetch_add(&ps->found, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ps->found_bytes, e.size, __ATOMIC_RELAXED);
	err = sm_dispatch_push(dp, &t, d);
	e.key = NULL;
	sm_entry_release(&e);
	if (err != SM_OK)
		res->fatal = true;
	return err;
}

enum sm_err sm_plan_run(const struct sm_opts *o, struct sm_store *src, struct sm_dispatch *dp,
                        const char *single_key, const char *single_dst_key,
                        struct sm_plan_stats *ps, struct sm_plan_result *res, struct sm_diag *d)
{
	memset(res, 0, sizeof(*res));
	if (single_key)
		return plan_single(o, src, dp, single_key, single_dst_key, ps, res, d);

	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	struct sm_cutter cut;
	if (sm_cutter_init(&cut, &cfg, plan_emit, dp) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	struct sm_lister *cur = NULL;
	enum sm_err err = SM_OK;
	if (o->limit == 0)
		goto out; /* --limit 0: nothing to process */
	err = sm_lister_open(src, o->list_threads, o->list_depth, &cur, d);
	if (err != SM_OK) {
		res->fatal = true;
		goto out;
	}
	int64_t taken = 0;
	unsigned since_check = 0;
	bool limited = false;
	for (;;) {
		const struct sm_entry *e = NULL;
		struct sm_diag ld;
		enum sm_err le = sm_lister_next(cur, &e, &ld);
		if (le == SM_EOF)
			break;
		if (le != SM_OK) {
			/* A failed entry: report it, delete nothing from now on, go on
			 * unless the listing itself is broken. */
			sm_log(SM_LOG_ERROR, "SRC: %s", ld.msg);
			res->listing_failed = true;
			sm_dispatch_forbid_delete(dp);
			__atomic_fetch_add(&ps->found, 1, __ATOMIC_RELAXED);
			if (le == SM_EORDER || le == SM_ENOMEM) {
				res->fatal = true;
				break;
			}
			continue;
		}
		if (!plan_wanted(e, o))
			continue;
		__atomic_fetch_add(&ps->found, 1, __ATOMIC_RELAXED);
		if (!S_ISDIR(e->mode))
			__atomic_fetch_add(&ps->found_bytes, e->size, __ATOMIC_RELAXED);
		err = sm_cutter_add(&cut, e, d);
		if (err != SM_OK) {
			res->fatal = true;
			goto out;
		}
		taken++;
		if (o->limit >= 0 && taken >= o->limit) {
			limited = true;
			err = sm_cutter_cut(&cut, e->key, d);
			goto out;
		}
		bool hungry = false;
		uint64_t now = 0;
		if (++since_check >= PLAN_HUNGRY_EVERY) {
			since_check = 0;
			hungry = sm_dispatch_hungry(dp);
			now = hungry ? sm_now_ns() : 0;
		}
		if (sm_cutter_full(&cut, hungry, now)) {
			err = sm_cutter_cut(&cut, e->key, d);
			if (err != SM_OK) {
				res->fatal = true;
				goto out;
			}
		}
	}
	if (res->fatal && !limited) {
		/* Do not let the open-ended task delete what was never listed. */
		err = sm_diag_set(d, SM_EIO, 0, "SRC listing stopped early");
		goto out;
	}
	err = sm_cutter_cut(&cut, NULL, d);
	if (err != SM_OK)
		res->fatal = true;
out:
	sm_lister_close(cur);
	sm_cutter_release(&cut);
	return err;
}
