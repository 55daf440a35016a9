/*
 * The delete journal: every delete a run decides (--delete-dst, --delete-src,
 * --delete-src-after, directories, debris of interrupted runs) is kept here,
 * in a spool file, until the run is over, and done only then — and only when
 * every listing of the run was complete. A listing that failed anywhere means
 * "not on SRC" is not known anywhere, so nothing at all is deleted (rsync:
 * "IO error encountered -- skipping file deletion"). Before SRC keys are
 * deleted, DST is made durable and each SRC key is checked again: one that
 * changed since it was copied is kept (rsync: "skipping sender remove for
 * changed file").
 *
 * Workers send their deletes in batches tagged with the attempt (hand-out) of
 * their task; only the attempt whose Done the manager accepted counts, so a
 * task run twice deletes once. Memory does not grow with the number of keys:
 * records go to an unlinked temporary file (directories are sorted in memory
 * at the end).
 */
#ifndef SM_JOURNAL_H
#define SM_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/err.h"
#include "../common/stats.h"
#include "../worker/xfer.h"
#include "syncmgr.pb-c.h"

struct sm_journal;

enum sm_err sm_journal_new(struct sm_journal **out, struct sm_diag *d);
void sm_journal_free(struct sm_journal *j); /* accepts NULL */

/* Keep a batch of deletes of one attempt; borrows `keys` for the call.
 * Thread-safe. A journal that cannot write stays broken: apply() then
 * deletes nothing. */
void sm_journal_add(struct sm_journal *j, uint64_t attempt, Syncmgr__DelKey *const *keys, size_t n);
/* The attempt whose result counts (its task's Done was accepted). */
void sm_journal_accept(struct sm_journal *j, uint64_t attempt);

/* A worker said its writes to DST may not be durable (`why`, copied):
 * apply() then deletes no SRC key, as when syncing DST fails. */
void sm_journal_set_unsynced(struct sm_journal *j, const char *why);

/* Where apply() tells each key it could not delete, with the message (for
 * --json's failed keys); `arg` borrowed until apply() returns. */
void sm_journal_set_fail_hook(struct sm_journal *j,
                              void (*fn)(void *arg, const char *key, const char *msg), void *arg);

/* At the end of the run, once every worker is joined (it reads the journal
 * without its lock): do the deletes of accepted attempts when `allowed`,
 * else keep every key, count DST keys as extra and say once why (`why`).
 * Counts deleted, failed and extra into *acc with atomic adds (the progress
 * display reads them meanwhile); -v logs each key deleted. --dry prints
 * instead. */
void sm_journal_apply(struct sm_journal *j, struct sm_wctx *w, bool allowed, const char *why,
                      struct sm_stats *acc);

#endif
