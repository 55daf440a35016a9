/* The decision table of SPEC.md §1 "What counts as changed": a pure function. */
#ifndef SM_DECIDE_H
#define SM_DECIDE_H

#include "../common/opts.h"
#include "../common/store/store.h"

enum sm_act {
	SM_ACT_SKIP,   /* nothing to do */
	SM_ACT_COPY,   /* copy SRC to DST (file, directory or symlink) */
	SM_ACT_CHECK,  /* looks unchanged: compare contents, copy if different */
	SM_ACT_ATTR,   /* contents equal, only the mode differs (--perms) */
	SM_ACT_DELETE, /* DST-only key to delete (--delete-dst) */
	SM_ACT_EXTRA,  /* DST-only key to keep */
	SM_ACT_IGNORE  /* not a key of this run (a directory without --dirs, a special file) */
};

struct sm_decision {
	enum sm_act act;
	const char *why; /* static text for --debug */
	bool same;       /* SRC and DST are identical (for --delete-src) */
	/* A directory on both sides whose attributes differ (mtime with
	 * --dirs, mode with --perms): they are set at the end of the run, once
	 * nothing more is written into it. */
	bool fix_dir;
};

/* Do two mtimes differ, as a store keeps them? A DST time in whole seconds
 * (SFTP, or a whole second) is compared in seconds; else to the
 * nanosecond. A DST time at the limit of its store (mtime_clamp) stands for
 * every time past it. */
bool sm_mtime_differs(int64_t src_ns, const struct sm_entry *dst);

/* Decide for one key present on SRC, DST or both (either may be NULL). */
struct sm_decision sm_decide(const struct sm_entry *src, const struct sm_entry *dst,
                             const struct sm_opts *o);
const char *sm_act_name(enum sm_act a);

#endif
