/*
 * Filter rules (SPEC.md §3): rsync-compatible --include/--exclude patterns,
 * applied layer by layer (default, what rsync -r does) or to the full path
 * (--match-full-path, juicefs sync's mode).
 *
 * Matching is a bitset NFA over the compiled pattern, linear in the key
 * length times the pattern length: no pattern makes it blow up.
 */
#ifndef SM_FILTER_H
#define SM_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SM_PATTERN_MAX 1024 /* bytes of one pattern */

struct sm_rule;

struct sm_filter {
	struct sm_rule *rules;
	size_t n;
	size_t cap;
	bool full_path; /* --match-full-path */
	bool has_exclude;
};

/* Why a key was kept or excluded (for -v and --debug). */
struct sm_filter_why {
	int rule;         /* index of the deciding rule, -1 = none matched */
	bool include;     /* that rule's kind */
	size_t level_len; /* bytes of the key checked at the deciding level */
};

void sm_filter_init(struct sm_filter *f);
void sm_filter_release(struct sm_filter *f);
/* Compile and append a rule (rules apply in the order added). A malformed
 * pattern fails with a message naming it. */
enum sm_err sm_filter_add(struct sm_filter *f, const char *pattern, bool include,
                          struct sm_diag *d);
bool sm_filter_active(const struct sm_filter *f);
/* Keep or exclude `key` (directories end in '/'). `why` may be NULL. */
bool sm_filter_keep(const struct sm_filter *f, const char *key, struct sm_filter_why *why);
/* "--exclude '*.o' at 'a/b'" or "no rule matched", for -v and --debug. */
void sm_filter_explain(const struct sm_filter *f, const char *key, const struct sm_filter_why *why,
                       char *buf, size_t n);
/* The pattern and kind of rule i, for messages. */
const char *sm_filter_pattern(const struct sm_filter *f, int i);
/* Rule i (< f->n) as it was added: its pattern, and *include its kind. */
const char *sm_filter_rule(const struct sm_filter *f, size_t i, bool *include);

/* Does `pattern` (one rule, compiled as for sm_filter_add) match `path`
 * (no trailing '/'; is_dir says whether it names a directory)? For tests. */
bool sm_rule_matches(const struct sm_rule *r, const char *path, size_t len, bool is_dir);

#endif
