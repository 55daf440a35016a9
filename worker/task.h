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

struct sm_ssh_ops;

/* Start a worker from its Hello (proto/syncmgr.proto; `len` bytes,
 * borrowed for the call): it opens its own stores and transfer pool, builds
 * its own options, and runs the Hello's threads, each of which joins the
 * manager, asks for tasks, runs them and reports, plus one reporter.
 * Nothing of the manager's reaches it but those bytes: the same for the
 * manager's own threads (inproc://) and for remote processes. `ssh` is
 * SFTP's SSH layer (code, not data; NULL: no SFTP). */
enum sm_err sm_worker_start(const void *hello, size_t len, const struct sm_ssh_ops *ssh,
                            struct sm_worker **out, struct sm_diag *d);
/* Wait until the manager has shut the workers down, or every thread gave
 * up, then free them. SM_OK, or why the threads gave up (d filled; may be
 * NULL). Accepts NULL. */
enum sm_err sm_worker_join(struct sm_worker *wk, struct sm_diag *d);

/* The first failed keys of a task with their messages (each malloc'd),
 * sent with its Done; stats.failed counts every failure. As many as the
 * manager keeps for the run (SM_DISPATCH_FAILED_KEYS): at most ~460 KiB. */
#define SM_TASK_FAILED_KEYS 100
struct sm_task_fails {
	size_t n;
	char *key[SM_TASK_FAILED_KEYS];
	char *msg[SM_TASK_FAILED_KEYS];
};
/* Free the strings and empty the list; accepts NULL. */
void sm_task_fails_reset(struct sm_task_fails *f);

/* The result of running one task (for tests and the in-process path). */
struct sm_task_result {
	struct sm_stats stats;
	bool listing_failed;
	bool stopped; /* the attempt stopped before its end: revoked or fenced */
	/* In: where to note the task's first failed keys (NULL: nowhere). Owned
	 * by the caller, who resets it. */
	struct sm_task_fails *fails;
};

/* Where a task's deletes go: to the manager's journal (manager/journal.h),
 * which does them when the run is over and every listing is known complete.
 * emit() sends one batch (borrowed for the call); *revoked is set when the
 * task is no longer this attempt's. An error stops the run. */
struct sm_del_sink {
	enum sm_err (*emit)(void *arg, uint64_t task_id, uint64_t attempt, uint32_t seq,
	                    Syncmgr__DelKey **keys, size_t n, bool *revoked, struct sm_diag *d);
	/* Optional: called between keys (the worker sends its log lines). */
	void (*tick)(void *arg);
	void *arg;
};

/* Run one task (this `attempt` of it). `live` is the task's counters, updated
 * atomically while it runs (the reporter reads them); on return they are
 * final and copied into res->stats. Deletes go to `sink` (NULL: none).
 * `ctl` (may be NULL) is the task's hold on its work (worker/xfer.h): the
 * task stops between keys and its transfers between chunks once it is set
 * to stop, and res->stopped says so. */
enum sm_err sm_task_run(struct sm_wctx *w, const Syncmgr__Task *t, uint64_t attempt,
                        bool allow_delete, const struct sm_del_sink *sink, struct sm_stats *live,
                        struct sm_xfer_ctl *ctl, struct sm_task_result *res, struct sm_diag *d);

#endif
