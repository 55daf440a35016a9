/*
 * A store's cache of directory listings (file-like stores: file.c, later
 * sftp.c and dav.c), so that a directory is read and sorted once per run,
 * however many range cursors go into it.
 *
 * Entries are keyed by the directory's key ("" for the root, "a/b/" below
 * it); the value is the backend's sorted listing, opaque here, shared
 * read-only by every cursor that holds a reference. While one cursor loads a
 * directory, others asking for it wait for that load instead of reading the
 * directory too. A failed load is never cached: the loader abandons the
 * entry, and the next cursor that asks reads the directory itself (and sees
 * its own error).
 *
 * Memory: entries nobody references are kept, least recently released first
 * out, while all entries together stay within the byte budget. Entries in
 * use are never evicted, and neither is the one released last, so one
 * directory larger than the budget is read once, not once per cursor, while
 * cursors take turns on it. A huge directory's listing is sorted on disk
 * (dirtab.c): what it holds in memory is an index, and what it is charged
 * here counts its disk too (sm_dirtab_cache_bytes()).
 *
 * All functions are thread-safe.
 */
#ifndef SM_DIRCACHE_H
#define SM_DIRCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "../err.h"

struct sm_dircache;
struct sm_dircache_ent;

/* free_val(val) frees a value the cache holds when its entry goes. *out is
 * written only on success. */
enum sm_err sm_dircache_new(size_t budget, void (*free_val)(void *val), struct sm_dircache **out);
/* Frees every entry; no reference may be held any more. Accepts NULL. */
void sm_dircache_free(struct sm_dircache *dc);

/*
 * A reference to the entry of directory key `path` (copied). Either the
 * entry is loaded (*load == false: sm_dircache_val() gives the listing), or
 * the caller is to load it (*load == true) and then calls exactly one of
 * sm_dircache_fill() or sm_dircache_abandon() on it. NULL when out of
 * memory. The reference is the caller's until sm_dircache_release().
 */
struct sm_dircache_ent *sm_dircache_get(struct sm_dircache *dc, const char *path, size_t len,
                                        bool *load);
/* The loaded listing; borrowed while the reference is held. */
void *sm_dircache_val(const struct sm_dircache_ent *e);
/* Publish a loaded listing (taken over) of `bytes` bytes; wakes the waiters. */
void sm_dircache_fill(struct sm_dircache *dc, struct sm_dircache_ent *e, void *val, size_t bytes);
/* The load failed: the entry goes (with the caller's reference), nothing is
 * cached; waiters try the load themselves. */
void sm_dircache_abandon(struct sm_dircache *dc, struct sm_dircache_ent *e);
/* The loaded listing is not the directory's any more (the backend saw a
 * different directory at the path): detach the entry so the next get()
 * reloads, and drop the caller's reference. */
void sm_dircache_stale(struct sm_dircache *dc, struct sm_dircache_ent *e);
/* Drop a reference. Accepts NULL. */
void sm_dircache_release(struct sm_dircache *dc, struct sm_dircache_ent *e);

/* Counters for tests and -v: loads (directories read), hits, evictions. */
struct sm_dircache_stats {
	unsigned long loads;
	unsigned long hits;
	unsigned long evictions;
	size_t bytes; /* held now */
};
void sm_dircache_stats(struct sm_dircache *dc, struct sm_dircache_stats *out);

#endif
