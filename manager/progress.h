/* Progress: a status line on a TTY several times a second, a log line every
 * few seconds otherwise; and the final summary line. */
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

/* All counters of the run now: the planner's plus the tasks'. */
void sm_progress_totals(struct sm_dispatch *dp, struct sm_plan_stats *ps, struct sm_stats *out);

#endif
