/* Progress: a status line on a TTY several times a second, a log line every
 * few seconds otherwise (SYNCMGR_PROGRESS_MS sets the period, for tests):
 * counts, bytes, rates averaged over the last seconds, elapsed time; the
 * percentage and the ETA once SRC's listing is complete. */
#ifndef SM_PROGRESS_H
#define SM_PROGRESS_H

#include <stdbool.h>

#include "../common/opts.h"
#include "../common/stats.h"
#include "dispatch.h"
#include "plan.h"

struct sm_progress;

/* Start the display thread; borrows dp and ps until sm_progress_stop(). */
struct sm_progress *sm_progress_start(const struct sm_opts *o, struct sm_dispatch *dp,
                                      struct sm_plan_stats *ps);
void sm_progress_stop(struct sm_progress *p); /* accepts NULL */
/* After the transfers: show `phase` ("deleting", ...; a static string, NULL
 * for none) instead of the transfer figures, and add the deleted and failed
 * counts of `acc` (updated with atomic adds; borrowed until the next call or
 * sm_progress_stop()). Accepts NULL `p`. */
void sm_progress_phase(struct sm_progress *p, const char *phase, const struct sm_stats *acc);

/* All counters of the run now: the planner's plus the tasks'. */
void sm_progress_totals(struct sm_dispatch *dp, struct sm_plan_stats *ps, struct sm_stats *out);

#endif
