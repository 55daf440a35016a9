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
	mode_t umask;                  /* the process's, read once (directories' modes) */
	atomic_uint transfers;         /* copies in progress now, for --metrics */
};

void sm_wctx_init(struct sm_wctx *w, const struct sm_opts *o, struct sm_store *src,
                  struct sm_store *dst);

/*
 * Where a task hears of DST directories whose attributes are to be set at
 * the end of the run, once nothing more is written into them (manager/
 * journal.c): `created` when the run made one, `mode` (or 0) its mode
 * before the run opened it for writing. Called from the transfer's thread.
 */
struct sm_xfer_dirs {
	void (*note)(void *arg, const char *dkey, bool created, uint32_t mode);
	void *arg;
};

/*
 * One task's hold on its work, shared by the thread that runs it and the
 * reporter (worker/task.c). The reporter stops the task when the manager
 * revoked it, when its lease could not be renewed for `fence_ns` (self
 * fencing: another worker may have it by then), or when the run stops; it
 * cancels a transfer that moved nothing for the stall timeout. Transfers
 * watch `cancel` between chunks (their readers' stop flag) and wait at each
 * chunk while the lease is not known to be theirs (sm_xfer_ctl_go()).
 */
struct sm_xfer_ctl {
	atomic_bool stop;                /* the task must stop: nothing more of it counts */
	atomic_bool cancel;              /* what transfers watch: stop, or a stall */
	atomic_bool stalled;             /* the transfer under way moved nothing for too long */
	atomic_uint xfers;               /* transfers started (the reporter tells them apart) */
	atomic_bool busy;                /* a transfer is moving bytes through us */
	atomic_uint_fast64_t moved;      /* bytes its transfers moved (never goes down) */
	atomic_uint_fast64_t renewed_ns; /* when its lease was last known to be its own */
	uint64_t fence_ns;               /* no write once renewed_ns is this old; 0 = never */
	unsigned stall_ms;               /* for the message of a stalled transfer */
	struct sm_xfer_dirs dirs;        /* set by the task (note NULL: nobody asks) */
};
/* Ready for a new task whose lease was known to be its own at `now_ns`. */
void sm_xfer_ctl_reset(struct sm_xfer_ctl *c, uint64_t now_ns, uint64_t fence_ns,
                       unsigned stall_ms);
/* May the task go on writing? False once it must stop. While its lease is
 * older than the fence, waits (at most a fence) for the reporter to renew
 * it or to stop the task. NULL: true. */
bool sm_xfer_ctl_go(struct sm_xfer_ctl *c);
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
 * failure the caller subtracts what it added. `ctl` (may be NULL: the run's
 * abort flag alone) stops or cancels it between chunks; a stalled one is
 * retried. Directories the copy makes, and those it opens for writing (a
 * non-root run finding a DST directory without write permission for its
 * owner), go to ctl->dirs. */
enum sm_err sm_xfer_copy(struct sm_wctx *w, struct sm_xfer_ctl *ctl, const struct sm_entry *src,
                         const char *dst_key, uint64_t *live, struct sm_diag *d);
/* Byte-compare SRC `key` with DST `dst_key`: SM_OK when equal, SM_EDIFFER
 * not. `ctl` as for sm_xfer_copy(). */
enum sm_err sm_xfer_compare(struct sm_wctx *w, struct sm_xfer_ctl *ctl, const char *key,
                            const char *dst_key, struct sm_diag *d);
/* Apply SRC's mode/owner to an existing DST key. */
enum sm_err sm_xfer_setattr(struct sm_wctx *w, const struct sm_entry *src, const char *dst_key,
                            struct sm_diag *d);
/* Set attributes `p` of the DST directory `dkey`, with retries. */
enum sm_err sm_xfer_setattr_dir(struct sm_wctx *w, const char *dkey, const struct sm_put *p,
                                struct sm_diag *d);
/* Delete `key` from `st` (absent = success). */
enum sm_err sm_xfer_delete(struct sm_wctx *w, struct sm_store *st, const char *key,
                           struct sm_diag *d);

#endif
