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
		snprintf(buf + off, n - off, ", lost: %" PRIu64, s->lost);
}
