/* Run counters: workers count per task, the manager adds them up once. */
#ifndef SM_STATS_H
#define SM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X-macro list so packing, adding and printing never miss a field. */
/* clang-format off */
#define SM_STATS_FIELDS(X) \
	X(found) X(found_bytes) X(excluded) X(excluded_bytes) X(skipped) X(skipped_bytes) \
	X(copied) X(copied_bytes) X(extra) X(extra_bytes) X(checked) X(checked_bytes) \
	X(deleted) X(failed) X(lost)
/* clang-format on */

struct sm_stats {
#define SM_STATS_DECL(f) uint64_t f;
	SM_STATS_FIELDS(SM_STATS_DECL)
#undef SM_STATS_DECL
};

void sm_stats_add(struct sm_stats *acc, const struct sm_stats *d);
/* The summary line of SPEC.md §1 (without a trailing newline), with
 * ", not done: N" last for the keys found that a stopped run never reached. */
void sm_stats_summary(const struct sm_stats *s, char *buf, size_t n);
/* The second summary line: elapsed time and average rates (keys copied,
 * skipped, failed or lost per second; bytes copied per second), e.g.
 *   Elapsed: 1m02s, 806 keys/s, 56.7 MiB/s copied
 * A `dry` run says that nothing was changed and what it would have done. */
void sm_stats_summary_rates(const struct sm_stats *s, double elapsed_s, bool dry, char *buf,
                            size_t n);
/* A duration for people: "210ms", "2.13s", "12.3s", "1m02s", "1h02m03s". */
void sm_fmt_elapsed(char *buf, size_t n, double seconds);

#endif
