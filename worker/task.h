/*
 * The worker: threads that ask the manager for range tasks over nng
 * request/reply, run them (list DST over the range, merge-join with the SRC
 * entries, decide, transfer) and report. The same code runs as the manager's
 * own threads (inproc://) and, later, in remote worker processes.
 */
#ifndef SM_TASK_H
#define SM_TASK_H

#include "../common/stats.h"
#include "xfer.h"
#include "syncmgr.pb-c.h"

struct sm_worker;

/* Start `nthreads` task threads and one reporter thread that dial `url`.
 * Borrows `w` until sm_worker_join() returns. */
enum sm_err sm_worker_start(struct sm_wctx *w, const char *url, int nthreads,
                            struct sm_worker **out, struct sm_diag *d);
/* Wait until the manager has shut the workers down, then free them. */
void sm_worker_join(struct sm_worker *wk);

/* The result of running one task (for tests and the in-process path). */
struct sm_task_result {
	struct sm_stats stats;
	bool listing_failed;
	char **dst_dirs; /* DST-only directories to delete at the end */
	size_t n_dst_dirs;
	char **src_dirs; /* SRC directories to delete at the end */
	size_t n_src_dirs;
};
void sm_task_result_release(struct sm_task_result *r);

/* Run one task. `live` is the task's counters, updated atomically while it
 * runs (the reporter reads them); on return they are final and copied into
 * res->stats. */
enum sm_err sm_task_run(struct sm_wctx *w, const Syncmgr__Task *t, bool allow_delete,
                        struct sm_stats *live, struct sm_task_result *res, struct sm_diag *d);

#endif
