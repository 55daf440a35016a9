/*
 * The run's report for --json: one JSON object on stdout at the end of the
 * run (the summary line's counters, bytes, elapsed time, rates, the exit
 * status, the first failed keys with their errors, and the counters of each
 * participant). The field names are stable (README "JSON report"); a new
 * version of the object only adds fields, a changed meaning bumps "version".
 */
#ifndef SM_REPORT_H
#define SM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../common/stats.h"
#include "../common/util.h"
#include "dispatch.h"
#include "plan.h"

#define SM_REPORT_VERSION 1

/* Append `s` (`len` bytes, NULs included) to `b` as a JSON string, quotes
 * included: '"', '\\' and the control characters escaped (\n, \r, \t, \b,
 * \f, others and DEL as \u00XX); each byte that is not part of a valid UTF-8
 * sequence (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF) becomes U+FFFD. *lossy (may be NULL) is set when a byte was
 * replaced. SM_ENOMEM when `b` is full. */
enum sm_err sm_json_string(struct sm_buf *b, const char *s, size_t len, bool *lossy);

/* The counters of each participant of the run: those of its tasks (from
 * dispatch), and for "local" (the manager and its own worker threads, always
 * first) also the planner's `ps` and `extra` (the end's deletes; may be
 * NULL). Fills at most `max`; returns how many there are. Together they add
 * up to the run's totals. */
size_t sm_report_participants(struct sm_dispatch *dp, struct sm_plan_stats *ps,
                              const struct sm_stats *extra, struct sm_dispatch_worker *out,
                              size_t max);

/* What the report says; everything borrowed for sm_report_print(). */
struct sm_report {
	const char *src; /* display forms, secrets masked; NULL: not known */
	const char *dst;
	bool dry;
	int exit_code;
	bool interrupted;
	double elapsed_s;
	struct sm_stats total;
	struct sm_dispatch *dp;       /* NULL: the run stopped before it had one */
	struct sm_plan_stats *ps;     /* may be NULL */
	const struct sm_stats *extra; /* the manager's own counts at the end; may be NULL */
};

/* Build the report as one line of JSON (no newline) in `b`. */
enum sm_err sm_report_json(const struct sm_report *r, struct sm_buf *b);
/* Write it to `f`, one line, and flush; false (errno set) when it could not
 * be written. */
bool sm_report_print(const struct sm_report *r, FILE *f);

#endif
