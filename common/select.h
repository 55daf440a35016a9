/*
 * Selection options (SPEC.md §1 "Selection"): --files-from, --start/--end,
 * --min-size/--max-size, --min-age/--max-age, --start-time/--end-time.
 *
 * Path predicates (files-from, start/end) apply to both sides, so a DST key
 * outside the selection is never deleted; attribute predicates (size, mtime)
 * apply to SRC files, whose excluded keys still travel in tasks marked
 * excluded so their DST counterparts are left alone too.
 */
#ifndef SM_SELECT_H
#define SM_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct sm_entry;

/* The keys of --files-from, sorted; entries ending in '/' are prefixes. */
struct sm_fileset {
	char **keys;
	size_t n;
};

struct sm_select {
	char *start; /* inclusive, NULL = none */
	char *end;   /* inclusive, NULL = none */
	bool has_min_size;
	bool has_max_size;
	uint64_t min_size;
	uint64_t max_size;
	bool has_min_mtime;
	bool has_max_mtime;
	int64_t min_mtime_ns;
	int64_t max_mtime_ns;
	struct sm_fileset *files;
};

void sm_select_release(struct sm_select *s);
bool sm_select_active(const struct sm_select *s);

/* Path predicate: inside [start, end] and, with --files-from, a listed key,
 * under a listed prefix, or (a directory) an ancestor of one. */
bool sm_select_path(const struct sm_select *s, const char *key);
/* Attribute predicate for SRC files (directories and symlinks pass). */
bool sm_select_attr(const struct sm_select *s, const struct sm_entry *e);

struct sm_filter;

/*
 * The whole path-based verdict on a key, the same for SRC and DST: kept by
 * the rules and inside the selection. On exclusion, *by_rules says whether
 * the rules did it (such keys count as excluded), and *prune whether nothing
 * below the directory can be selected either (layer-mode rules, or
 * --files-from), so its listing can be skipped.
 */
bool sm_select_key(const struct sm_filter *f, const struct sm_select *s, const char *key,
                   bool *by_rules, bool *prune);

/* Parsers; false on bad input. */
bool sm_parse_size(const char *s, uint64_t *out);       /* 100, 10K, 1.5M, 2G, 1T (x1024) */
bool sm_parse_duration(const char *s, int64_t *out_ns); /* 90, 1h30m, 2d, 1.5h */
bool sm_parse_time(const char *s, int64_t *out_ns);     /* 2006-01-02[ 15:04:05], RFC 3339 */

/* Load --files-from (a key per line; "./" and leading '/' dropped). */
enum sm_err sm_fileset_load(const char *path, struct sm_fileset **out, struct sm_diag *d);
void sm_fileset_free(struct sm_fileset *fs);
/* Whether `key` is listed exactly (not through a prefix). */
bool sm_fileset_has(const struct sm_fileset *fs, const char *key);

#endif
