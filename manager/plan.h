/*
 * Planning: list SRC in global order and cut the stream into range tasks
 * (after, last] bounded in keys and bytes, pushed to dispatch (which blocks
 * when its queue is full, so memory does not grow with the number of keys).
 */
#ifndef SM_PLAN_H
#define SM_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/opts.h"
#include "../common/stats.h"
#include "../common/store/store.h"
#include "../common/util.h"
#include "syncmgr.pb-c.h"

struct sm_cut_cfg {
	size_t max_keys;      /* entries per task */
	uint64_t max_bytes;   /* file bytes per task (large files get a task each) */
	size_t max_key_bytes; /* key text per task: bounds the message size */
	size_t min_keys;      /* cut early at this many when a worker is idle... */
	uint64_t min_age_ns;  /* ...or when the task is this old (slow listings) */
};
void sm_cut_cfg_default(struct sm_cut_cfg *c);

/* Emits a finished task; returns non-SM_OK to stop the planner. */
typedef enum sm_err (*sm_emit_fn)(void *arg, Syncmgr__Task *t, struct sm_diag *d);

/* The range cutter: collects entries and emits tasks whose ranges tile the
 * whole key space: the first starts at "", each next starts at the previous
 * one's `last`, the final one is open-ended. */
struct sm_cutter {
	struct sm_cut_cfg cfg;
	sm_emit_fn emit;
	void *arg;
	struct sm_buf arena; /* keys and links of the current task */
	size_t *key_off;     /* per entry: offsets into arena */
	size_t *link_off;    /* SIZE_MAX = no link */
	Syncmgr__Entry *ents;
	Syncmgr__Entry **ptrs;
	size_t n;
	uint64_t bytes;
	uint64_t started_ns; /* when the current task got its first entry */
	struct sm_buf after; /* the range's lower bound (exclusive) */
	uint64_t tasks;      /* emitted so far */
};

enum sm_err sm_cutter_init(struct sm_cutter *c, const struct sm_cut_cfg *cfg, sm_emit_fn emit,
                           void *arg);
void sm_cutter_release(struct sm_cutter *c);
/* Add an entry of the task (copied). */
enum sm_err sm_cutter_add(struct sm_cutter *c, const struct sm_entry *e, struct sm_diag *d);
/* Whether the current task should be cut now; `hungry`: a worker is idle. A
 * small task is cut early only when it is old enough, so a fast listing still
 * makes big tasks (each task re-lists its DST range) and a slow one keeps the
 * workers busy. */
bool sm_cutter_full(const struct sm_cutter *c, bool hungry, uint64_t now_ns);
/* Emit the current task with upper bound `last` (NULL = open end). */
enum sm_err sm_cutter_cut(struct sm_cutter *c, const char *last, struct sm_diag *d);

struct sm_dispatch;

struct sm_plan_result {
	bool listing_failed; /* some SRC listing error: no deletes */
	bool fatal;          /* could not list SRC at all, or aborted */
};

/* Live counters the planner keeps, read by progress (atomic access). */
struct sm_plan_stats {
	uint64_t found;
	uint64_t found_bytes; /* of every file found, excluded ones too */
	uint64_t excluded;
	uint64_t excluded_bytes;
	uint64_t failed; /* SRC entries that could not be listed */
	/* Set once SRC's listing is complete: the counters above are the run's
	 * totals from then on (progress shows a percentage and an ETA only
	 * then). Never set when the listing stopped early. */
	bool listed;
};

/* List SRC (or, with `single_key`, stat that one key and sync it as
 * `single_dst_key`) and push tasks to `dp`. `remote`: a side is an object or
 * network store, where each key costs a round trip, so tasks are kept small
 * enough to spread over every worker thread. */
/* `dst` (borrowed, may be NULL) is listed too with --limit and
 * --delete-dst: its DST-only keys count against the limit, in key order, as
 * juicefs sync counts them. */
enum sm_err sm_plan_run(const struct sm_opts *o, struct sm_store *src, struct sm_store *dst,
                        struct sm_dispatch *dp, bool remote, const char *single_key,
                        const char *single_dst_key, struct sm_plan_stats *ps,
                        struct sm_plan_result *res, struct sm_diag *d);

#endif
