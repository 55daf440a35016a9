#include "plan.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/log.h"
#include "../worker/wire.h"
#include "dispatch.h"
#include "lister.h"
#include <limits.h>
#include <stdio.h>

#define PLAN_HUNGRY_EVERY 16 /* entries between checks for idle workers */
#define PLAN_REMOTE_KEYS 128 /* keys per task when a side is remote */

void sm_cut_cfg_default(struct sm_cut_cfg *c)
{
	c->max_keys = 1000;
	c->max_bytes = 32u << 20;
	c->max_key_bytes = 1u << 20;
	/* The task's message within the cap (lowered by tests): its names in a
	 * quarter, their attributes (at most 64 bytes a key) in another. */
	size_t cap = sm_wire_max_msg();
	if (c->max_key_bytes > cap / 4)
		c->max_key_bytes = cap / 4;
	if (c->max_keys > cap / 4 / 64)
		c->max_keys = cap / 4 / 64;
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
	if (!S_ISDIR(e->mode) && !e->excluded)
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

enum plan_verdict {
	PLAN_NEXT,  /* go on */
	PLAN_PRUNE, /* an excluded directory: do not descend */
	PLAN_STOP   /* --limit reached, or a fatal error */
};

struct plan {
	const struct sm_opts *o;
	struct sm_store *src;
	struct sm_dispatch *dp;
	struct sm_cutter cut;
	struct sm_plan_stats *ps;
	struct sm_plan_result *res;
	int64_t taken;
	unsigned since_check;
	struct sm_buf pruned; /* a pruned directory: drop what comes below it */
	struct sm_buf last;   /* the last key offered, for the order of --files-from */
	bool limited;
	enum sm_err err;
	struct sm_diag *d;
	/* --limit with --delete-dst: DST listed alongside, its DST-only keys
	 * count against the limit in key order, as juicefs sync counts them */
	struct sm_cursor *dcur;
	const struct sm_entry *dnext; /* the DST key not yet passed, or NULL */
	bool ddone;
	struct sm_buf dpruned;
};

static void plan_debug(const struct plan *pl, const char *key, const char *fmt, const char *arg)
{
	if (!pl->o->debug)
		return;
	char reason[600];
	snprintf(reason, sizeof(reason), fmt, arg);
	sm_log(SM_LOG_DEBUG, "exclude '%s': %s", key, reason);
}

/* --debug: which rule excluded `key`. */
static void plan_explain(const struct plan *pl, const char *key)
{
	if (!pl->o->debug)
		return;
	struct sm_filter_why why;
	sm_filter_keep(&pl->o->filter, key, &why);
	char reason[512];
	sm_filter_explain(&pl->o->filter, key, &why, reason, sizeof(reason));
	plan_debug(pl, key, "%s", reason);
}

/* A SRC time outside what an int64 of nanoseconds holds (1677-2262) is
 * kept as the nearest limit: said for each key, never silently. */
static void plan_warn_time(const struct sm_entry *e)
{
	time_t sec = (time_t)(e->mtime_ns / 1000000000);
	struct tm tm;
	char when[64] = "?";
	if (gmtime_r(&sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	sm_log(SM_LOG_WARN,
	       "SRC: '%s': mtime is %s what syncmgr keeps (1677-09-21 to 2262-04-11): DST gets %s",
	       e->key, e->mtime_clamp < 0 ? "before" : "after", when);
}

/* Would a worker delete this DST-only key (--delete-dst)? The same
 * selection as worker/task.c's, pruning excluded directories. */
static bool plan_dst_deleted(struct plan *pl, const struct sm_entry *t)
{
	const struct sm_opts *o = pl->o;
	if (pl->dpruned.len && strncmp(t->key, pl->dpruned.p, pl->dpruned.len) == 0)
		return false;
	pl->dpruned.len = 0;
	bool by_rules, prune;
	if (!sm_select_key(&o->filter, &o->sel, t->key, &by_rules, &prune)) {
		if (prune && sm_buf_appendz(&pl->dpruned, t->key) == SM_OK)
			sm_store_list_skip(pl->dcur);
		return false;
	}
	return !t->debris && (!S_ISDIR(t->mode) || o->dirs);
}

/*
 * --limit with --delete-dst: pass the DST keys before `key` (NULL: all that
 * are left), each DST-only one taking one of the limit. When the limit is
 * reached at one, the last task ends there: true (pl->limited set, or
 * pl->err on a failure). A DST listing error stops the counting: the
 * workers' own listings report it.
 */
static bool plan_limit_dst(struct plan *pl, const char *key)
{
	while (pl->dcur && !pl->ddone) {
		if (!pl->dnext) {
			struct sm_diag ld;
			enum sm_err le = sm_store_list_next(pl->dcur, &pl->dnext, &ld);
			if (le != SM_OK) {
				pl->ddone = true;
				pl->dnext = NULL;
				break;
			}
		}
		int c = key ? strcmp(pl->dnext->key, key) : -1;
		if (c >= 0) {
			if (c == 0)
				pl->dnext = NULL; /* on SRC too: no delete */
			break;
		}
		bool del = plan_dst_deleted(pl, pl->dnext);
		if (del && ++pl->taken >= pl->o->limit) {
			pl->limited = true;
			pl->err = sm_cutter_cut(&pl->cut, pl->dnext->key, pl->d);
			return true;
		}
		pl->dnext = NULL;
	}
	return false;
}

static enum plan_verdict plan_offer(struct plan *pl, const struct sm_entry *e)
{
	const struct sm_opts *o = pl->o;
	bool dir = S_ISDIR(e->mode);
	if (e->debris) {
		/* counted: found, and excluded as no key of the user's */
		sm_log(SM_LOG_WARN, "SRC: '%s' is a temp file an interrupted run left: not copied",
		       e->key);
		__atomic_fetch_add(&pl->ps->found, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&pl->ps->found_bytes, e->size, __ATOMIC_RELAXED);
		__atomic_fetch_add(&pl->ps->excluded, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&pl->ps->excluded_bytes, e->size, __ATOMIC_RELAXED);
		return PLAN_NEXT;
	}
	if (pl->pruned.len && strncmp(e->key, pl->pruned.p, pl->pruned.len) == 0)
		return PLAN_NEXT; /* below a pruned directory */
	pl->pruned.len = 0;
	if (pl->last.len && strcmp(e->key, pl->last.p) <= 0)
		return PLAN_NEXT; /* --files-from: already offered */
	pl->last.len = 0;
	if (sm_buf_appendz(&pl->last, e->key) != SM_OK)
		goto nomem;
	bool by_rules, prune;
	if (!sm_select_key(&o->filter, &o->sel, e->key, &by_rules, &prune)) {
		if (by_rules)
			plan_explain(pl, e->key);
		if (by_rules && plan_wanted(e, o)) {
			__atomic_fetch_add(&pl->ps->found, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&pl->ps->excluded, 1, __ATOMIC_RELAXED);
			if (!dir) {
				__atomic_fetch_add(&pl->ps->found_bytes, e->size, __ATOMIC_RELAXED);
				__atomic_fetch_add(&pl->ps->excluded_bytes, e->size,
				                   __ATOMIC_RELAXED);
			}
		}
		if (prune) {
			pl->pruned.len = 0;
			if (sm_buf_appendz(&pl->pruned, e->key) != SM_OK)
				goto nomem;
			return PLAN_PRUNE;
		}
		return PLAN_NEXT;
	}
	/* A fifo, socket or device is not synced, but travels marked excluded
	 * so a DST file of the same name is not taken for DST-only. */
	bool special = !dir && !S_ISREG(e->mode) && !S_ISLNK(e->mode);
	if (!plan_wanted(e, o) && !special)
		return PLAN_NEXT;
	if (e->mtime_clamp)
		plan_warn_time(e);
	struct sm_entry te = *e;
	if (special) {
		sm_log(SM_LOG_INFO, "skipping non-regular file '%s'", e->key);
		te.excluded = true;
	} else {
		__atomic_fetch_add(&pl->ps->found, 1, __ATOMIC_RELAXED);
		if (!dir)
			__atomic_fetch_add(&pl->ps->found_bytes, e->size, __ATOMIC_RELAXED);
		te.excluded = !sm_select_attr(&o->sel, e);
	}
	if (te.excluded && !special) {
		/* listed in the task so its DST copy is left alone */
		__atomic_fetch_add(&pl->ps->excluded, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&pl->ps->excluded_bytes, e->size, __ATOMIC_RELAXED);
		plan_debug(pl, e->key, "%s", "outside --min/--max-size or the mtime bounds");
	}
	if (plan_limit_dst(pl, e->key))
		return PLAN_STOP;
	pl->err = sm_cutter_add(&pl->cut, &te, pl->d);
	if (pl->err != SM_OK)
		return PLAN_STOP;
	if (!te.excluded && o->limit >= 0 && ++pl->taken >= o->limit) {
		pl->limited = true;
		pl->err = sm_cutter_cut(&pl->cut, e->key, pl->d);
		return PLAN_STOP;
	}
	bool hungry = false;
	uint64_t now = 0;
	if (++pl->since_check >= PLAN_HUNGRY_EVERY) {
		pl->since_check = 0;
		hungry = sm_dispatch_hungry(pl->dp);
		now = hungry ? sm_now_ns() : 0;
	}
	if (sm_cutter_full(&pl->cut, hungry, now)) {
		pl->err = sm_cutter_cut(&pl->cut, e->key, pl->d);
		if (pl->err != SM_OK)
			return PLAN_STOP;
	}
	return PLAN_NEXT;
nomem:
	pl->err = sm_diag_set(pl->d, SM_ENOMEM, 0, "out of memory");
	return PLAN_STOP;
}

/* A listing error on SRC: report it, delete nothing from now on, go on
 * unless the listing itself is broken. False to stop. */
static bool plan_list_error(struct plan *pl, enum sm_err le, const struct sm_diag *ld)
{
	sm_log(SM_LOG_ERROR, "%s", ld->msg); /* labelled "SRC: " by the store */
	pl->res->listing_failed = true;
	sm_dispatch_forbid_delete(pl->dp);
	__atomic_fetch_add(&pl->ps->found, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pl->ps->failed, 1, __ATOMIC_RELAXED);
	if (le == SM_EORDER || le == SM_ENOMEM) {
		pl->res->fatal = true;
		return false;
	}
	return true;
}

/* Offer every key of `r` (stopping at the first key outside `prefix` when
 * given). */
static enum plan_verdict plan_walk(struct plan *pl, const struct sm_range *r, const char *prefix,
                                   int threads)
{
	struct sm_lister *cur = NULL;
	struct sm_diag ld;
	enum sm_err le = sm_lister_open(pl->src, r, threads, pl->o->list_depth, &cur, &ld);
	if (le != SM_OK) {
		if (!prefix) {
			pl->res->fatal = true;
			pl->err = sm_diag_set(pl->d, le, ld.native, "%s", ld.msg);
			return PLAN_STOP;
		}
		return plan_list_error(pl, le, &ld) ? PLAN_NEXT : PLAN_STOP;
	}
	size_t plen = prefix ? strlen(prefix) : 0;
	bool inside = false;
	enum plan_verdict v = PLAN_NEXT;
	for (;;) {
		const struct sm_entry *e = NULL;
		le = sm_lister_next(cur, &e, &ld);
		if (le == SM_EOF)
			break;
		if (le != SM_OK) {
			if (!plan_list_error(pl, le, &ld)) {
				v = PLAN_STOP;
				break;
			}
			continue;
		}
		if (prefix && strncmp(e->key, prefix, plen) != 0) {
			if (inside)
				break; /* past the prefix's subtree */
			continue;      /* "p-x" and "p.x" sort between "p" and "p/" */
		}
		inside = true;
		v = plan_offer(pl, e);
		if (v == PLAN_STOP)
			break;
		if (v == PLAN_PRUNE)
			sm_lister_skip(cur);
		v = PLAN_NEXT;
	}
	sm_lister_close(cur);
	return v;
}

/* --files-from: stat each listed key, list each listed prefix; with --dirs
 * also the directories leading to them. */
static enum plan_verdict plan_files_from(struct plan *pl)
{
	const struct sm_fileset *fs = pl->o->sel.files;
	uint64_t missing = 0;
	const char *first_missing = NULL;
	for (size_t i = 0; i < fs->n; i++) {
		const char *k = fs->keys[i];
		size_t n = strlen(k);
		if (pl->o->dirs) {
			for (size_t j = 0; j + 1 < n; j++) {
				if (k[j] != '/')
					continue;
				char anc[PATH_MAX];
				if (j + 2 > sizeof(anc))
					break;
				memcpy(anc, k, j + 1);
				anc[j + 1] = '\0';
				if (pl->last.len && strcmp(anc, pl->last.p) <= 0)
					continue;
				struct sm_entry e = { 0 };
				struct sm_diag sd;
				if (sm_store_stat(pl->src, anc, &e, &sd) == SM_OK &&
				    S_ISDIR(e.mode)) {
					e.key = anc;
					enum plan_verdict v = plan_offer(pl, &e);
					e.key = NULL;
					sm_entry_release(&e);
					if (v == PLAN_STOP)
						return v;
				}
			}
		}
		if (n && k[n - 1] == '/') {
			char after[PATH_MAX];
			sm_strlcpy(after, k, sizeof(after));
			after[n - 1] = '\0';
			struct sm_range r = { .after = after, .last = pl->o->sel.end };
			if (plan_walk(pl, &r, k, 1) == PLAN_STOP)
				return PLAN_STOP;
			continue;
		}
		struct sm_entry e = { 0 };
		struct sm_diag sd;
		enum sm_err err = sm_store_stat(pl->src, k, &e, &sd);
		if (err == SM_ENOENT) {
			if (!missing++)
				first_missing = k;
			sm_log(SM_LOG_DEBUG, "--files-from: '%s' is not on SRC", k);
			continue;
		}
		if (err != SM_OK) {
			if (!plan_list_error(pl, err, &sd))
				return PLAN_STOP;
			continue;
		}
		if (S_ISDIR(e.mode)) {
			/* a listed directory stands for its whole subtree */
			sm_entry_release(&e);
			char pre[PATH_MAX + 1];
			snprintf(pre, sizeof(pre), "%s/", k);
			struct sm_range r = { .after = k, .last = pl->o->sel.end };
			if (plan_walk(pl, &r, pre, 1) == PLAN_STOP)
				return PLAN_STOP;
			continue;
		}
		e.key = (char *)k;
		enum plan_verdict v = plan_offer(pl, &e);
		e.key = NULL;
		sm_entry_release(&e);
		if (v == PLAN_STOP)
			return v;
	}
	if (missing)
		sm_log(SM_LOG_WARN, "%llu key%s from --files-from %s not on SRC (first: '%s')",
		       (unsigned long long)missing, missing == 1 ? "" : "s",
		       missing == 1 ? "is" : "are", first_missing);
	return PLAN_NEXT;
}

/* A key just below `start` in byte order, to list from (keys in between are
 * dropped by the --start predicate). */
static void plan_before(const char *start, char *buf, size_t n)
{
	size_t len = sm_strlcpy(buf, start, n);
	if (len >= n || len == 0) {
		buf[0] = '\0';
		return;
	}
	unsigned char c = (unsigned char)buf[len - 1];
	if (c > 1)
		buf[len - 1] = (char)(c - 1);
	else
		buf[len - 1] = '\0';
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
	__atomic_store_n(&ps->listed, true, __ATOMIC_RELEASE);
	err = sm_dispatch_push(dp, &t, d);
	e.key = NULL;
	sm_entry_release(&e);
	if (err != SM_OK)
		res->fatal = true;
	return err;
}

enum sm_err sm_plan_run(const struct sm_opts *o, struct sm_store *src, struct sm_store *dst,
                        struct sm_dispatch *dp, bool remote, const char *single_key,
                        const char *single_dst_key, struct sm_plan_stats *ps,
                        struct sm_plan_result *res, struct sm_diag *d)
{
	memset(res, 0, sizeof(*res));
	if (single_key)
		return plan_single(o, src, dp, single_key, single_dst_key, ps, res, d);

	struct plan pl = { .o = o, .src = src, .dp = dp, .ps = ps, .res = res, .d = d };
	struct sm_cut_cfg cfg;
	sm_cut_cfg_default(&cfg);
	if (remote)
		cfg.max_keys = cfg.min_keys = PLAN_REMOTE_KEYS;
	if (sm_cutter_init(&pl.cut, &cfg, plan_emit, dp) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	if (o->limit == 0) {
		__atomic_store_n(&ps->listed, true, __ATOMIC_RELEASE);
		goto out; /* --limit 0: nothing to process */
	}
	enum plan_verdict v;
	char after[PATH_MAX] = "";
	if (o->sel.start)
		plan_before(o->sel.start, after, sizeof(after));
	struct sm_range r = { .after = after, .last = o->sel.end };
	if (o->limit > 0 && o->delete_dst && dst) {
		struct sm_diag ld;
		if (sm_store_list_begin(dst, &r, &pl.dcur, &ld) != SM_OK)
			pl.dcur = NULL; /* the workers' listings report it */
	}
	if (o->sel.files)
		v = plan_files_from(&pl);
	else
		v = plan_walk(&pl, &r, NULL, o->list_threads);
	/* DST-only keys after the last SRC key count too */
	if (v != PLAN_STOP && !pl.limited && pl.err == SM_OK && !res->fatal)
		plan_limit_dst(&pl, NULL);
	if (pl.limited || pl.err != SM_OK) {
		if (pl.err != SM_OK)
			res->fatal = true;
		else
			__atomic_store_n(&ps->listed, true, __ATOMIC_RELEASE); /* --limit */
		goto out;
	}
	if (v == PLAN_STOP || res->fatal) {
		/* Do not let the open-ended task delete what was never listed. */
		res->fatal = true;
		pl.err = sm_diag_set(d, SM_EIO, 0, "SRC listing stopped early");
		goto out;
	}
	/* Every key is counted: the totals are known (the last cut may still
	 * wait for room in the queue). */
	__atomic_store_n(&ps->listed, true, __ATOMIC_RELEASE);
	/* The last task reaches the end of the selected range. */
	pl.err = sm_cutter_cut(&pl.cut, o->sel.end, d);
	if (pl.err != SM_OK)
		res->fatal = true;
out:
	sm_store_list_end(pl.dcur);
	sm_buf_release(&pl.dpruned);
	sm_cutter_release(&pl.cut);
	sm_buf_release(&pl.pruned);
	sm_buf_release(&pl.last);
	return pl.err;
}
