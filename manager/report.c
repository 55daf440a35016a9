#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when s[0] starts none. */
static size_t json_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c == 0xe0)
		len = 3, lo = 0xa0; /* no overlong forms */
	else if (c == 0xed)
		len = 3, hi = 0x9f; /* no surrogates */
	else if (c >= 0xe1 && c <= 0xef)
		len = 3;
	else if (c == 0xf0)
		len = 4, lo = 0x90;
	else if (c >= 0xf1 && c <= 0xf3)
		len = 4;
	else if (c == 0xf4)
		len = 4, hi = 0x8f; /* nothing above U+10FFFF */
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

enum sm_err sm_json_string(struct sm_buf *b, const char *s, size_t len, bool *lossy)
{
	const unsigned char *p = (const unsigned char *)s;
	bool replaced = false;
	enum sm_err err = sm_buf_append(b, "\"", 1);
	size_t i = 0;
	while (err == SM_OK && i < len) {
		/* the longest run of bytes that go out as they are */
		size_t j = i;
		while (j < len && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' && p[j] != 0x7f) {
			size_t n = json_utf8_len(p + j, len - j);
			if (!n)
				break;
			j += n;
		}
		if (j > i) {
			err = sm_buf_append(b, s + i, j - i);
			i = j;
			continue;
		}
		char esc[8];
		const char *out = esc;
		size_t n = 2;
		switch (p[i]) {
		case '"': out = "\\\""; break;
		case '\\': out = "\\\\"; break;
		case '\n': out = "\\n"; break;
		case '\r': out = "\\r"; break;
		case '\t': out = "\\t"; break;
		case '\b': out = "\\b"; break;
		case '\f': out = "\\f"; break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
				n = 6;
			} else {
				out = "\xef\xbf\xbd"; /* U+FFFD */
				n = 3;
				replaced = true;
			}
		}
		err = sm_buf_append(b, out, n);
		i++;
	}
	if (err == SM_OK)
		err = sm_buf_append(b, "\"", 1);
	if (err == SM_OK && lossy)
		*lossy = replaced;
	return err;
}

/* ---- a small writer: keys and values in order, commas in between ---- */

struct jw {
	struct sm_buf *b;
	bool first; /* no comma before the next member */
	enum sm_err err;
};

static void jw_raw(struct jw *w, const char *s)
{
	if (w->err == SM_OK)
		w->err = sm_buf_appendz(w->b, s);
}

static void jw_open(struct jw *w, const char *brace)
{
	jw_raw(w, brace);
	w->first = true;
}

static void jw_close(struct jw *w, const char *brace)
{
	jw_raw(w, brace);
	w->first = false;
}

/* A member's key (NULL: an array element), after a comma when needed. */
static void jw_key(struct jw *w, const char *key)
{
	if (!w->first)
		jw_raw(w, ",");
	w->first = false;
	if (key) {
		jw_raw(w, "\"");
		jw_raw(w, key); /* our own names: nothing to escape */
		jw_raw(w, "\":");
	}
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	char num[32];
	snprintf(num, sizeof(num), "%" PRIu64, v);
	jw_key(w, key);
	jw_raw(w, num);
}

static void jw_int(struct jw *w, const char *key, int v)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", v);
	jw_key(w, key);
	jw_raw(w, num);
}

static void jw_double(struct jw *w, const char *key, double v)
{
	char num[64];
	/* JSON has no NaN or infinity */
	snprintf(num, sizeof(num), "%.3f", v >= 0 && v < 1e18 ? v : 0.0);
	jw_key(w, key);
	jw_raw(w, num);
}

static void jw_bool(struct jw *w, const char *key, bool v)
{
	jw_key(w, key);
	jw_raw(w, v ? "true" : "false");
}

/* A string value; NULL is null. *lossy as sm_json_string. */
static void jw_str(struct jw *w, const char *key, const char *s, size_t len, bool *lossy)
{
	jw_key(w, key);
	if (!s)
		jw_raw(w, "null");
	else if (w->err == SM_OK)
		w->err = sm_json_string(w->b, s, len, lossy);
}

static void jw_strz(struct jw *w, const char *key, const char *s)
{
	jw_str(w, key, s, s ? strlen(s) : 0, NULL);
}

static void jw_hex(struct jw *w, const char *key, const char *s, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	jw_key(w, key);
	jw_raw(w, "\"");
	for (size_t i = 0; i < len && w->err == SM_OK; i++) {
		char h[3] = { digits[(unsigned char)s[i] >> 4], digits[(unsigned char)s[i] & 15],
			      '\0' };
		jw_raw(w, h);
	}
	jw_raw(w, "\"");
}

static void jw_stats(struct jw *w, const struct sm_stats *s)
{
#define JW_STAT(f) jw_u64(w, #f, s->f);
	SM_STATS_FIELDS(JW_STAT)
#undef JW_STAT
}

/* ---- the report ---- */

size_t sm_report_participants(struct sm_dispatch *dp, struct sm_plan_stats *ps,
                              const struct sm_stats *extra, struct sm_dispatch_worker *out,
                              size_t max)
{
	size_t n = 1;
	if (dp) {
		n = sm_dispatch_workers(dp, out, max);
	} else if (max) {
		out[0] = (struct sm_dispatch_worker){ .name = "local" };
	}
	if (!max)
		return n;
	struct sm_stats *l = &out[0].stats;
	if (ps) {
		l->found += __atomic_load_n(&ps->found, __ATOMIC_RELAXED);
		l->found_bytes += __atomic_load_n(&ps->found_bytes, __ATOMIC_RELAXED);
		l->excluded += __atomic_load_n(&ps->excluded, __ATOMIC_RELAXED);
		l->excluded_bytes += __atomic_load_n(&ps->excluded_bytes, __ATOMIC_RELAXED);
		l->failed += __atomic_load_n(&ps->failed, __ATOMIC_RELAXED);
	}
	if (extra)
		sm_stats_add(l, extra);
	return n;
}

static void report_failures(struct jw *w, struct sm_dispatch *dp, uint64_t failed)
{
	const struct sm_dispatch_failure *f = NULL;
	size_t n = dp ? sm_dispatch_failures(dp, &f) : 0;
	jw_key(w, "failed_keys");
	jw_open(w, "[");
	for (size_t i = 0; i < n; i++) {
		jw_key(w, NULL);
		jw_open(w, "{");
		bool lossy = false;
		jw_str(w, "key", f[i].key, f[i].key_len, &lossy);
		if (lossy) /* not UTF-8: the exact bytes too */
			jw_hex(w, "key_hex", f[i].key, f[i].key_len);
		jw_strz(w, "error", f[i].msg);
		jw_strz(w, "worker", f[i].worker);
		jw_close(w, "}");
	}
	jw_close(w, "]");
	/* failures not listed: beyond the cap, or not about one key (a
	 * listing error, a task that failed as a whole) */
	jw_u64(w, "failed_keys_truncated", failed > n ? failed - n : 0);
}

static void report_workers(struct jw *w, const struct sm_report *r)
{
	size_t n = sm_report_participants(r->dp, r->ps, r->extra, NULL, 0);
	struct sm_dispatch_worker *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		w->err = SM_ENOMEM;
		return;
	}
	n = sm_report_participants(r->dp, r->ps, r->extra, v, n ? n : 1);
	jw_key(w, "workers");
	jw_open(w, "[");
	for (size_t i = 0; i < n; i++) {
		jw_key(w, NULL);
		jw_open(w, "{");
		jw_strz(w, "name", v[i].name);
		jw_u64(w, "tasks", v[i].tasks_done);
		jw_stats(w, &v[i].stats);
		jw_close(w, "}");
	}
	jw_close(w, "]");
	free(v);
}

enum sm_err sm_report_json(const struct sm_report *r, struct sm_buf *b)
{
	struct jw w = { .b = b };
	const struct sm_stats *t = &r->total;
	jw_open(&w, "{");
	jw_int(&w, "version", SM_REPORT_VERSION);
	jw_strz(&w, "status", r->interrupted ? "interrupted" : r->exit_code == 0 ? "ok" : "failed");
	jw_int(&w, "exit_code", r->exit_code);
	jw_bool(&w, "dry_run", r->dry);
	jw_strz(&w, "src", r->src);
	jw_strz(&w, "dst", r->dst);
	double el = r->elapsed_s > 0 ? r->elapsed_s : 0;
	jw_double(&w, "elapsed_seconds", el);
	jw_stats(&w, t);
	uint64_t handled = t->copied + t->skipped + t->failed + t->lost;
	jw_double(&w, "bytes_per_second", el > 0 ? (double)t->copied_bytes / el : 0);
	jw_double(&w, "objects_per_second", el > 0 ? (double)handled / el : 0);
	report_failures(&w, r->dp, t->failed);
	report_workers(&w, r);
	jw_close(&w, "}");
	return w.err;
}

bool sm_report_print(const struct sm_report *r, FILE *f)
{
	struct sm_buf b = { 0 };
	enum sm_err err = sm_report_json(r, &b);
	bool ok = err == SM_OK && fwrite(b.p, 1, b.len, f) == b.len && fputc('\n', f) != EOF;
	if (fflush(f) != 0)
		ok = false;
	if (err != SM_OK)
		errno = ENOMEM;
	sm_buf_release(&b);
	return ok;
}
