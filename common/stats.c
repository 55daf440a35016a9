#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void sm_stats_add(struct sm_stats *acc, const struct sm_stats *d)
{
#define SM_STATS_ADD(f) acc->f += d->f;
	SM_STATS_FIELDS(SM_STATS_ADD)
#undef SM_STATS_ADD
}

void sm_stats_summary(const struct sm_stats *s, char *buf, size_t n)
{
	char ex[32], sk[32], co[32], xt[32], ch[32];
	sm_fmt_size(ex, sizeof(ex), s->excluded_bytes);
	sm_fmt_size(sk, sizeof(sk), s->skipped_bytes);
	sm_fmt_size(co, sizeof(co), s->copied_bytes);
	sm_fmt_size(xt, sizeof(xt), s->extra_bytes);
	sm_fmt_size(ch, sizeof(ch), s->checked_bytes);
	int len = snprintf(buf, n,
	                   "Found: %" PRIu64 ", excluded: %" PRIu64 " (%s), skipped: %" PRIu64
	                   " (%s), copied: %" PRIu64 " (%s), extra: %" PRIu64 " (%s)",
	                   s->found, s->excluded, ex, s->skipped, sk, s->copied, co, s->extra, xt);
	size_t off = len < 0 ? 0 : (size_t)len;
	if (off < n && s->checked)
		off += (size_t)snprintf(buf + off, n - off, ", checked: %" PRIu64 " (%s)",
		                        s->checked, ch);
	if (off < n && s->deleted)
		off += (size_t)snprintf(buf + off, n - off, ", deleted: %" PRIu64, s->deleted);
	if (off < n && s->failed)
		off += (size_t)snprintf(buf + off, n - off, ", failed: %" PRIu64, s->failed);
	if (off < n && s->lost)
		off += (size_t)snprintf(buf + off, n - off, ", lost: %" PRIu64, s->lost);
	/* Every key found ends as one of these; those a stopped run (out of
	 * space, --max-failure, a signal) never reached are said too. */
	uint64_t done = s->excluded + s->skipped + s->copied + s->failed + s->lost;
	if (off < n && s->found > done)
		snprintf(buf + off, n - off, ", not done: %" PRIu64, s->found - done);
}

void sm_fmt_elapsed(char *buf, size_t n, double seconds)
{
	if (seconds < 0)
		seconds = 0;
	if (seconds < 0.9995)
		snprintf(buf, n, "%.0fms", seconds * 1000);
	else if (seconds < 9.995)
		snprintf(buf, n, "%.2fs", seconds);
	else if (seconds < 59.95)
		snprintf(buf, n, "%.1fs", seconds);
	else
		sm_fmt_duration(buf, n, seconds);
}

/* A count per second: one decimal below 10. */
static void stats_fmt_rate(char *buf, size_t n, double per_s)
{
	snprintf(buf, n, per_s < 9.95 ? "%.1f" : "%.0f", per_s);
}

void sm_stats_summary_rates(const struct sm_stats *s, double elapsed_s, bool dry, char *buf,
                            size_t n)
{
	char el[32], keys[32], bytes[32];
	sm_fmt_elapsed(el, sizeof(el), elapsed_s);
	/* a run shorter than a millisecond: rates over a millisecond */
	double t = elapsed_s > 1e-3 ? elapsed_s : 1e-3;
	/* keys copied, skipped, failed or lost: those the run decided */
	uint64_t handled = s->copied + s->skipped + s->failed + s->lost;
	stats_fmt_rate(keys, sizeof(keys), (double)handled / t);
	if (!dry) {
		sm_fmt_size(bytes, sizeof(bytes), (uint64_t)((double)s->copied_bytes / t));
		snprintf(buf, n, "Elapsed: %s, %s keys/s, %s/s copied", el, keys, bytes);
		return;
	}
	sm_fmt_size(bytes, sizeof(bytes), s->copied_bytes);
	int len = snprintf(buf, n,
	                   "Elapsed: %s, %s keys/s; dry run, nothing was changed: "
	                   "would copy %" PRIu64 " (%s)",
	                   el, keys, s->copied, bytes);
	size_t off = len < 0 ? 0 : (size_t)len;
	if (off < n && s->deleted)
		snprintf(buf + off, n - off, ", delete %" PRIu64, s->deleted);
}
