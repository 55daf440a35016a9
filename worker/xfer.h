/* Transfers of single keys: copy (file, directory, symlink), verify, delete,
 * each with retries of transient errors. */
#ifndef SM_XFER_H
#define SM_XFER_H

#include <stdatomic.h>
#include <stdint.h>

#include "../common/opts.h"
#include "../common/retry.h"
#include "../common/store/store.h"

/* What every worker thread of one process shares. */
struct sm_wctx {
	const struct sm_opts *o;
	struct sm_store *src;
	struct sm_store *dst;
	atomic_bool abort;           /* stop taking keys (--max-failure reached, or shutdown) */
	atomic_uint_fast64_t failed; /* keys failed in this process, for --max-failure */
	bool owners;                 /* --perms as root between local trees: owners are kept too */
	int max_attempts;            /* tries per operation for retryable errors, at least */
	unsigned backoff_ms;
	struct sm_retry_health health; /* the last successful operation of any key */
	const char *name;              /* this worker in reports to the manager ("local") */
	atomic_uint transfers;         /* copies in progress now, for --metrics */
	/* Called (from any worker thread) when a worker cannot reach the manager
	 * any more: the manager stops the run instead of waiting for it. */
	void (*on_fatal)(void *arg);
	void *fatal_arg;
};

void sm_wctx_init(struct sm_wctx *w, const struct sm_opts *o, struct sm_store *src,
                  struct sm_store *dst);
/* Count a failed key; stops this process's workers at --max-failure at once
 * (the manager also stops the whole run when the sum reaches it). */
void sm_wctx_count_failure(struct sm_wctx *w);

/* A failure that ends the run: a store that cannot go on (SM_EFATAL: an
 * SSH host key changed, authentication refused). The first one stops this
 * process's workers (the manager then stops the run) and is logged here,
 * once; true for every such failure, and the caller logs nothing more. */
bool sm_wctx_stop_on(struct sm_wctx *w, const struct sm_diag *d);

/* Copy `src` (an entry of the SRC store) to `dst_key` on DST. `live` (may be
 * NULL) is advanced atomically by the bytes written so far, for progress; on
 * failure the caller subtracts what it added. */
enum sm_err sm_xfer_copy(struct sm_wctx *w, const struct sm_entry *src, const char *dst_key,
                         uint64_t *live, struct sm_diag *d);
/* Byte-compare SRC `key` with DST `dst_key`: SM_OK when equal, SM_EDIFFER not. */
enum sm_err sm_xfer_compare(struct sm_wctx *w, const char *key, const char *dst_key,
                            struct sm_diag *d);
/* Apply SRC's mode/owner to an existing DST key. */
enum sm_err sm_xfer_setattr(struct sm_wctx *w, const struct sm_entry *src, const char *dst_key,
                            struct sm_diag *d);
/* Delete `key` from `st` (absent = success). */
enum sm_err sm_xfer_delete(struct sm_wctx *w, struct sm_store *st, const char *key,
                           struct sm_diag *d);

#endif
