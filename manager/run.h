/* One sync run: preflight checks, the manager's dispatch service, the
 * in-process workers, the planner, deferred directory deletes, the summary. */
#ifndef SM_RUN_H
#define SM_RUN_H

#include "../common/opts.h"
#include "../common/stats.h"

/* Exit statuses of SPEC.md §1. */
enum { SM_EXIT_OK = 0, SM_EXIT_FAIL = 1, SM_EXIT_USAGE = 2 };

/* Run the sync described by `o`; returns the exit status. `out` (may be
 * NULL) receives the final counters. Prints the summary line. */
int sm_run(const struct sm_opts *o, struct sm_stats *out);

#endif
