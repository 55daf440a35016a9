/*
 * --metrics ADDR: the run's counters in the Prometheus text exposition
 * format at http://ADDR/metrics (nng's HTTP server), served from preflight
 * to the end of the run, with a `worker` label per participant ("local":
 * the manager and its own worker threads). Counters never go down: a value
 * that would (the bytes of a copy that failed midway, the live counts of a
 * task handed out again) is held at the highest value served.
 */
#ifndef SM_METRICS_H
#define SM_METRICS_H

#include <stddef.h>

#include "../common/err.h"
#include "../common/stats.h"
#include "dispatch.h"
#include "plan.h"

struct sm_metrics;

/* The URL nng listens on for ADDR: "HOST:PORT", "[IPv6]:PORT", or ":PORT"
 * (127.0.0.1: to listen on every address, say 0.0.0.0:PORT). SM_EINVAL
 * with a message naming ADDR when it is none of these. */
enum sm_err sm_metrics_url(const char *addr, char *url, size_t n, struct sm_diag *d);

/* Listen on ADDR and serve GET /metrics (zeros until attached). SM_EINVAL
 * for an ADDR sm_metrics_url() refuses, SM_EIO when it cannot listen (port
 * in use, unknown host). */
enum sm_err sm_metrics_start(const char *addr, struct sm_metrics **out, struct sm_diag *d);

/* Serve the counters of `dp` and `ps` from now on; both borrowed until
 * sm_metrics_stop(). */
void sm_metrics_attach(struct sm_metrics *m, struct sm_dispatch *dp, struct sm_plan_stats *ps);

/* Counts the manager adds at the end (the journal's deletes), as "local". */
void sm_metrics_add_local(struct sm_metrics *m, const struct sm_stats *s);

/* Stop serving and free; accepts NULL. */
void sm_metrics_stop(struct sm_metrics *m);

/* The exposition text of these participants and `pending`, counters held
 * up by `m` (NULL: as they are). For the handler and tests. */
enum sm_err sm_metrics_render(struct sm_metrics *m, const struct sm_dispatch_worker *w, size_t n,
                              uint64_t pending, struct sm_buf *out);

#endif
