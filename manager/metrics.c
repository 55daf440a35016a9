#include "metrics.h"

#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "report.h"

#define METRICS_ADDR_MAX 256

struct metrics_counter {
	const char *name;
	const char *help;
	size_t off; /* in struct sm_stats */
};

#define METRICS_COUNTER(n, f, h)                              \
	{                                                     \
		"syncmgr_" n, h, offsetof(struct sm_stats, f) \
	}
static const struct metrics_counter metrics_counters[] = {
	METRICS_COUNTER("scanned_objects_total", found,
	                "Objects found on SRC (listed), excluded ones included."),
	METRICS_COUNTER("excluded_objects_total", excluded,
	                "Objects left out by the selection (--exclude, --min-size...)."),
	METRICS_COUNTER("skipped_objects_total", skipped, "Objects already current on DST."),
	METRICS_COUNTER("copied_objects_total", copied,
	                "Objects copied (under --dry: that would be copied)."),
	METRICS_COUNTER("copied_bytes_total", copied_bytes,
	                "Bytes copied, counted as they are written."),
	METRICS_COUNTER("checked_objects_total", checked,
	                "Objects byte-compared (--check-all, --check-new)."),
	METRICS_COUNTER("extra_objects_total", extra, "Objects only on DST, kept."),
	METRICS_COUNTER("deleted_objects_total", deleted,
	                "Objects deleted (--delete-dst, --delete-src, --delete-src-after)."),
	METRICS_COUNTER("failed_objects_total", failed, "Objects that failed."),
	METRICS_COUNTER("lost_objects_total", lost,
	                "Objects that disappeared from SRC before they were copied."),
};
#define METRICS_NCOUNTERS (sizeof(metrics_counters) / sizeof(metrics_counters[0]))

/* The highest values served for one participant: counters never go down. */
struct metrics_served {
	char *name;
	uint64_t v[METRICS_NCOUNTERS];
};

struct sm_metrics {
	char addr[METRICS_ADDR_MAX];
	nng_http_server *srv;
	pthread_mutex_t mu; /* everything below */
	struct sm_dispatch *dp;
	struct sm_plan_stats *ps;
	struct sm_stats extra;
	struct metrics_served *served;
	size_t nserved;
};

static bool metrics_port(const char *s, unsigned *port)
{
	int64_t v;
	if (!sm_parse_i64(s, 1, 65535, &v) || s[0] == '+' || s[0] == '-')
		return false;
	*port = (unsigned)v;
	return true;
}

enum sm_err sm_metrics_url(const char *addr, char *url, size_t n, struct sm_diag *d)
{
	const char *colon = strrchr(addr, ':');
	unsigned port = 0;
	bool ok = colon && strlen(addr) < METRICS_ADDR_MAX && metrics_port(colon + 1, &port);
	size_t hlen = ok ? (size_t)(colon - addr) : 0;
	char host[METRICS_ADDR_MAX] = "127.0.0.1"; /* ":PORT": loopback only */
	if (ok && hlen) {
		memcpy(host, addr, hlen);
		host[hlen] = '\0';
		bool v6 = host[0] == '[';
		if (v6 && (hlen < 3 || host[hlen - 1] != ']'))
			ok = false;
		for (size_t i = v6; ok && i < hlen - v6; i++) {
			char c = host[i];
			bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			           (c >= 'A' && c <= 'F');
			bool name = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			            (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
			ok = v6 ? hex || c == ':' || c == '.' : name;
		}
	}
	if (!ok)
		return sm_diag_set(d, SM_EINVAL, 0,
		                   "--metrics '%s': expected HOST:PORT, [IPv6]:PORT or :PORT "
		                   "(a port from 1 to 65535)",
		                   addr);
	if ((size_t)snprintf(url, n, "http://%s:%u", host, port) >= n)
		return sm_diag_set(d, SM_EINVAL, 0, "--metrics '%s': too long", addr);
	return SM_OK;
}

/* A label value: backslash, double quote and newline escaped. */
static enum sm_err metrics_label(struct sm_buf *b, const char *v)
{
	enum sm_err err = SM_OK;
	for (const char *p = v; *p && err == SM_OK; p++) {
		if (*p == '\\')
			err = sm_buf_appendz(b, "\\\\");
		else if (*p == '"')
			err = sm_buf_appendz(b, "\\\"");
		else if (*p == '\n')
			err = sm_buf_appendz(b, "\\n");
		else
			err = sm_buf_append(b, p, 1);
	}
	return err;
}

static enum sm_err metrics_printf(struct sm_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static enum sm_err metrics_printf(struct sm_buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return SM_EINVAL;
	return sm_buf_append(b, line, (size_t)n);
}

/* One sample `name{worker="W"} v`. */
static enum sm_err metrics_sample(struct sm_buf *b, const char *name, const char *worker,
                                  uint64_t v)
{
	enum sm_err err = metrics_printf(b, "%s{worker=\"", name);
	if (err == SM_OK)
		err = metrics_label(b, worker);
	if (err == SM_OK)
		err = metrics_printf(b, "\"} %" PRIu64 "\n", v);
	return err;
}

/* The served values of participant `name` (added when new; NULL when out of
 * memory: then served as they are). mu held. */
static struct metrics_served *metrics_served_of(struct sm_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nserved; i++)
		if (strcmp(m->served[i].name, name) == 0)
			return &m->served[i];
	struct metrics_served *v = realloc(m->served, (m->nserved + 1) * sizeof(*v));
	if (!v)
		return NULL;
	m->served = v;
	struct metrics_served *s = &v[m->nserved];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	if (!s->name)
		return NULL;
	m->nserved++;
	return s;
}

enum sm_err sm_metrics_render(struct sm_metrics *m, const struct sm_dispatch_worker *w, size_t n,
                              uint64_t pending, struct sm_buf *out)
{
	enum sm_err err = SM_OK;
	/* the values to serve: held at the highest served so far */
	uint64_t(*val)[METRICS_NCOUNTERS] = calloc(n ? n : 1, sizeof(*val));
	if (!val)
		return SM_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct metrics_served *s = m ? metrics_served_of(m, w[i].name) : NULL;
		for (size_t k = 0; k < METRICS_NCOUNTERS; k++) {
			uint64_t v;
			memcpy(&v, (const char *)&w[i].stats + metrics_counters[k].off, sizeof(v));
			if (s && s->v[k] > v)
				v = s->v[k];
			if (s)
				s->v[k] = v;
			val[i][k] = v;
		}
	}
	for (size_t k = 0; k < METRICS_NCOUNTERS && err == SM_OK; k++) {
		const struct metrics_counter *c = &metrics_counters[k];
		err = metrics_printf(out, "# HELP %s %s\n# TYPE %s counter\n", c->name, c->help,
		                     c->name);
		for (size_t i = 0; i < n && err == SM_OK; i++)
			err = metrics_sample(out, c->name, w[i].name, val[i][k]);
	}
	if (err == SM_OK)
		err = metrics_printf(out,
		                     "# HELP syncmgr_pending_objects Objects found and not yet "
		                     "copied, skipped, excluded, failed or lost (the whole run).\n"
		                     "# TYPE syncmgr_pending_objects gauge\n"
		                     "syncmgr_pending_objects %" PRIu64 "\n"
		                     "# HELP syncmgr_transfers_in_flight Copies in progress.\n"
		                     "# TYPE syncmgr_transfers_in_flight gauge\n",
		                     pending);
	for (size_t i = 0; i < n && err == SM_OK; i++)
		err = metrics_sample(out, "syncmgr_transfers_in_flight", w[i].name, w[i].transfers);
	if (err == SM_OK)
		err = metrics_printf(out, "# HELP syncmgr_tasks_in_flight Range tasks handed out "
		                          "and not done.\n"
		                          "# TYPE syncmgr_tasks_in_flight gauge\n");
	for (size_t i = 0; i < n && err == SM_OK; i++)
		err = metrics_sample(out, "syncmgr_tasks_in_flight", w[i].name,
		                     w[i].tasks_in_flight);
	free(val);
	return err;
}

/* Build the page now (mu held). */
static enum sm_err metrics_page(struct sm_metrics *m, struct sm_buf *b)
{
	size_t n = sm_report_participants(m->dp, m->ps, &m->extra, NULL, 0);
	struct sm_dispatch_worker *w = calloc(n ? n : 1, sizeof(*w));
	if (!w)
		return SM_ENOMEM;
	n = sm_report_participants(m->dp, m->ps, &m->extra, w, n ? n : 1);
	struct sm_stats t = { 0 };
	for (size_t i = 0; i < n; i++)
		sm_stats_add(&t, &w[i].stats);
	uint64_t handled = t.copied + t.skipped + t.failed + t.lost + t.excluded;
	enum sm_err err = sm_metrics_render(m, w, n, t.found > handled ? t.found - handled : 0, b);
	free(w);
	return err;
}

static void metrics_handle(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	struct sm_metrics *m = nng_http_handler_get_data(h);
	struct sm_buf b = { 0 };
	pthread_mutex_lock(&m->mu);
	enum sm_err err = metrics_page(m, &b);
	pthread_mutex_unlock(&m->mu);
	nng_http_res *res = NULL;
	int rv = err == SM_OK ? nng_http_res_alloc(&res) : NNG_ENOMEM;
	if (rv == 0)
		rv = nng_http_res_set_header(res, "Content-Type",
		                             "text/plain; version=0.0.4; charset=utf-8");
	if (rv == 0)
		rv = nng_http_res_copy_data(res, b.p ? b.p : "", b.len);
	sm_buf_release(&b);
	if (rv != 0) {
		if (res)
			nng_http_res_free(res);
		nng_aio_finish(aio, rv); /* nng answers 500 */
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

enum sm_err sm_metrics_start(const char *addr, struct sm_metrics **out, struct sm_diag *d)
{
	char url[METRICS_ADDR_MAX + 16];
	enum sm_err err = sm_metrics_url(addr, url, sizeof(url), d);
	if (err != SM_OK)
		return err;
	struct sm_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	sm_strlcpy(m->addr, addr, sizeof(m->addr));
	pthread_mutex_init(&m->mu, NULL);
	nng_url *u = NULL;
	nng_http_handler *h = NULL;
	int rv = nng_url_parse(&u, url);
	if (rv != 0) {
		err = sm_diag_set(d, SM_EINVAL, rv, "--metrics '%s': %s", addr, nng_strerror(rv));
		goto fail;
	}
	rv = nng_http_server_hold(&m->srv, u);
	if (rv == 0)
		rv = nng_http_handler_alloc(&h, "/metrics", metrics_handle);
	if (rv == 0)
		rv = nng_http_handler_set_data(h, m, NULL);
	if (rv == 0)
		rv = nng_http_server_add_handler(m->srv, h);
	if (rv != 0) {
		if (h)
			nng_http_handler_free(h); /* not the server's yet */
		err = sm_diag_set(d, SM_EIO, rv, "--metrics '%s': cannot listen: %s", addr,
		                  nng_strerror(rv));
		goto fail;
	}
	rv = nng_http_server_start(m->srv);
	if (rv != 0) {
		err = sm_diag_set(d, SM_EIO, rv, "--metrics '%s': cannot listen: %s", addr,
		                  nng_strerror(rv));
		goto fail;
	}
	nng_url_free(u);
	*out = m;
	return SM_OK;
fail:
	if (u)
		nng_url_free(u);
	if (m->srv)
		nng_http_server_release(m->srv);
	pthread_mutex_destroy(&m->mu);
	free(m);
	return err;
}

void sm_metrics_attach(struct sm_metrics *m, struct sm_dispatch *dp, struct sm_plan_stats *ps)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->dp = dp;
	m->ps = ps;
	pthread_mutex_unlock(&m->mu);
}

void sm_metrics_add_local(struct sm_metrics *m, const struct sm_stats *s)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	sm_stats_add(&m->extra, s);
	pthread_mutex_unlock(&m->mu);
}

void sm_metrics_stop(struct sm_metrics *m)
{
	if (!m)
		return;
	nng_http_server_stop(m->srv);
	nng_http_server_release(m->srv);
	for (size_t i = 0; i < m->nserved; i++)
		free(m->served[i].name);
	free(m->served);
	pthread_mutex_destroy(&m->mu);
	free(m);
}
