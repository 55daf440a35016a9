/*
 * The transfer pool: threads that run the pieces of large transfers (the
 * parts of a multipart upload, the ranges of a large read), so one object
 * moves over several connections at once. Stores get the run's pool in
 * their configuration and never own it.
 *
 * A caller submits jobs and waits for each of them. A job that no pool
 * thread has started yet is run by its waiter, so waiting never deadlocks,
 * however busy the pool is. Threads start on demand, up to the pool's size.
 *
 * A byte budget bounds the memory that transfers hold: a transfer waits for
 * its first buffer's bytes (sm_pool_reserve_wait, holding nothing else),
 * and takes more for parallel pieces only while the budget lasts
 * (sm_pool_reserve never blocks). So whatever the thread count and the
 * object sizes, buffers stay within the budget (issue 21: ten 32 MiB
 * uploads held 330 MiB).
 */
#ifndef SM_POOL_H
#define SM_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct sm_pool;

struct sm_job {
	void (*fn)(struct sm_job *j); /* runs once, on a pool thread or the waiter */
	/* private to the pool */
	struct sm_job *next;
	int state;
};

/* A pool of at most `nthreads` threads and `budget` bytes. */
enum sm_err sm_pool_new(int nthreads, size_t budget, struct sm_pool **out, struct sm_diag *d);
/* Every submitted job must have been waited for. Accepts NULL. */
void sm_pool_free(struct sm_pool *p);

/* Queue `j` (borrowed until sm_pool_wait returns). With a NULL pool, j
 * runs now, in the caller. */
void sm_pool_submit(struct sm_pool *p, struct sm_job *j);
/* Return once `j` has run, running it here if no thread has taken it. */
void sm_pool_wait(struct sm_pool *p, struct sm_job *j);

/* Take `n` bytes of the budget if that many are left (a NULL pool has
 * none); give them back with sm_pool_unreserve. */
bool sm_pool_reserve(struct sm_pool *p, size_t n);
/* Take `n` bytes, waiting until that many are left, or until nothing is
 * reserved (a piece larger than the whole budget then goes alone). For a
 * transfer's first buffer. A caller that holds no reservation waits as long
 * as it takes: every holder makes progress. One that does (`holding`: an
 * S3 -> S3 copy's writer, whose reader has buffers) could wait for another
 * that waits for it, so it waits a moment at most, then goes over the
 * budget. A NULL pool returns at once. */
void sm_pool_reserve_wait(struct sm_pool *p, size_t n, bool holding);
void sm_pool_unreserve(struct sm_pool *p, size_t n);

#endif
