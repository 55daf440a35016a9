/*
 * Parallel listing (--list-threads, --list-depth): the main cursor walks the
 * top `depth` levels only; each directory at that depth is a shard listed by
 * one of `threads` lister threads into a bounded buffer, and the shards are
 * spliced back into the stream in global order. With one thread, or a store
 * that cannot skip subtrees, it is the plain listing cursor.
 */
#ifndef SM_LISTER_H
#define SM_LISTER_H

#include "../common/store/store.h"

struct sm_lister;

/* List `r` (borrowed until close) of `st`. */
enum sm_err sm_lister_open(struct sm_store *st, const struct sm_range *r, int threads, int depth,
                           struct sm_lister **out, struct sm_diag *d);
/* Do not descend into the directory entry just returned, where the listing
 * can still avoid it (a shard, or any directory with one thread). Callers
 * must drop its descendants themselves should any still come. */
void sm_lister_skip(struct sm_lister *l);
/* Like sm_store_list_next(): the entry is borrowed until the next call;
 * SM_EOF at the end; a per-entry error (the entry is skipped) may be
 * followed by further calls; SM_EORDER and SM_ENOMEM end the listing. */
enum sm_err sm_lister_next(struct sm_lister *l, const struct sm_entry **e, struct sm_diag *d);
void sm_lister_close(struct sm_lister *l); /* accepts NULL */

#endif
