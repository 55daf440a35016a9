/*
 * Dispatch: the nng REP service that hands range tasks to whoever asks, with
 * leases renewed by progress reports; an expired lease puts the task back in
 * the queue. Each task's result is counted once. The queue is bounded: the
 * planner blocks in sm_dispatch_push() while it is full.
 *
 * Fencing (proto/syncmgr.proto): requests of another run get an Error; a
 * Progress, Deletes or Done counts only from the session holding that
 * attempt of the task now, anything else is answered "not yours" (a
 * Progress's reply lists the attempts that are no longer the sender's). A
 * request above the message cap or not a Request gets an Error, never
 * silence. Workers are known by their sessions, which begin with a Join
 * naming the protocol's version and the run's config hash; one that says
 * Bye or is silent for a lease is gone, and with none left the run stops.
 * Workers' log lines come in Log requests and are printed here.
 */
#ifndef SM_DISPATCH_H
#define SM_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "../common/stats.h"
#include "syncmgr.pb-c.h"

struct sm_dispatch;
struct sm_journal;

struct sm_dispatch_cfg {
	const char *url;            /* where to listen, e.g. "inproc://syncmgr-123" */
	uint64_t run_id;            /* 0: a random one */
	int max_queued;             /* tasks waiting before push() blocks */
	unsigned lease_ms;          /* a task without a report for this long is re-queued */
	uint64_t max_failure;       /* abort once this many keys failed (0 = never) */
	struct sm_journal *journal; /* where workers' deletes go; borrowed */
	/* The run's config hash (hex, borrowed for the run): a worker whose
	 * Join names another is refused. NULL: any. */
	const char *config_hash;
	/* Where workers' lines go (tests); NULL: printed like the manager's
	 * own (sm_log, sm_log_say, sm_log_key_error). Called from nng's
	 * threads, without the dispatch lock; strings borrowed for the call. */
	void (*log_fn)(void *arg, const char *worker, int level, const char *text, const char *key,
	               const char *say);
	void *log_arg;
};

enum sm_err sm_dispatch_start(const struct sm_dispatch_cfg *cfg, struct sm_dispatch **out,
                              struct sm_diag *d);
/* The run's id, which every request must carry. */
uint64_t sm_dispatch_run_id(const struct sm_dispatch *dp);
/* Queue a task (its id is assigned here and written to t->id). Blocks while
 * the queue is full; SM_EIO when the run was aborted. Borrows `t` for the
 * call only. */
enum sm_err sm_dispatch_push(struct sm_dispatch *dp, Syncmgr__Task *t, struct sm_diag *d);
/* True when a worker is waiting for work and the queue is empty. */
bool sm_dispatch_hungry(struct sm_dispatch *dp);
/* From now on, tasks handed out may not delete (a listing failed). */
void sm_dispatch_forbid_delete(struct sm_dispatch *dp);
/* No more tasks: workers are told to shut down once all tasks are done. */
void sm_dispatch_finish(struct sm_dispatch *dp);
/* Stop handing out work; workers are told to stop. */
void sm_dispatch_abort(struct sm_dispatch *dp);
/* Wait until every task has been done (or the run stopped) and every attempt
 * handed out has ended: reported Done, or its lease expired a margin ago
 * (its worker fenced itself before). Known from messages alone, so nothing
 * of the run writes once it returns. */
void sm_dispatch_wait(struct sm_dispatch *dp);

struct sm_dispatch_snapshot {
	struct sm_stats stats; /* finished tasks + cumulative of those in flight */
	uint64_t queued_keys;  /* SRC keys in tasks not yet handed out */
	bool aborted;
	bool no_workers;     /* stopped because every worker went */
	bool listing_failed; /* some worker's DST listing failed */
	/* Why a worker's writes to DST may not be durable ("" if none said
	 * so): no SRC key may be deleted then. */
	char unsynced[SM_DIAG_MAX];
};
void sm_dispatch_snapshot(struct sm_dispatch *dp, struct sm_dispatch_snapshot *s);

/* One participant of the run: the manager's own worker threads ("local",
 * always first) or a remote worker, by the name its requests carry. */
struct sm_dispatch_worker {
	const char *name;         /* valid until sm_dispatch_stop() */
	struct sm_stats stats;    /* its finished tasks + cumulative of those in flight */
	uint64_t tasks_done;      /* tasks whose result counted */
	uint64_t tasks_in_flight; /* handed out to it, not done */
	unsigned transfers;       /* copies in progress, from its last report */
};
/* Fill up to `max` participants' counters (the task counters only: the
 * planner's and the end's deletes are the caller's to add to "local").
 * Returns how many there are. */
size_t sm_dispatch_workers(struct sm_dispatch *dp, struct sm_dispatch_worker *out, size_t max);

/* The run's first failed keys, in the order their results were counted:
 * those the workers' task results carry (up to SM_TASK_FAILED_KEYS a task)
 * and those the manager adds. */
#define SM_DISPATCH_FAILED_KEYS 100
struct sm_dispatch_failure {
	char *key; /* NUL-terminated; key_len bytes (a key has no NUL) */
	size_t key_len;
	char *msg;
	const char *worker; /* who reported it */
};
/* A failure of the manager's own (an end-of-run delete), as "local". */
void sm_dispatch_add_failure(struct sm_dispatch *dp, const char *key, const char *msg);
/* The failures kept so far: *out points into dp (entries never change once
 * added; valid until sm_dispatch_stop()). */
size_t sm_dispatch_failures(struct sm_dispatch *dp, const struct sm_dispatch_failure **out);

void sm_dispatch_stop(struct sm_dispatch *dp); /* closes the socket, frees; accepts NULL */

#endif
