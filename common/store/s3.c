/*
 * S3-compatible object storage backend.
 *
 * Keys are object names below the URL's prefix. Listing is ListObjectsV2
 * (start-after, continuation tokens, encoding-type=url), which returns keys
 * in the same byte order every store uses; a store that lists in directory
 * order instead is noticed and listed level by level, each level sorted
 * here (see "listing" below). A listing's LastModified is only an
 * upper bound of a key's mtime (stat() reads x-amz-meta-mtime). A small
 * listed object is read with one GET; larger ones in ranged GETs of
 * S3_CHUNK bytes, up to S3_WINDOW at once on the transfer pool, pinned to
 * the first reply's ETag (If-Match), so an object replaced mid-read fails
 * instead of mixing versions. Objects up to S3_SINGLE_MAX are one PUT (a
 * real payload SHA-256 over HTTP; unsigned and streamed over HTTPS); larger
 * ones are multipart uploads with parts sent in parallel, completed only
 * when every part succeeded and aborted otherwise. Deletes go 1000 keys a
 * DeleteObjects request. SRC mtimes travel in x-amz-meta-mtime; an S3
 * source's Content-Type & co. and user metadata (meta.h) travel with its
 * copies, from the reply of its first GET or, for CopyObject, its HEAD;
 * other new objects get a Content-Type from their name. Every
 * request is signed anew (SigV4) for each attempt; 5xx, 429, SlowDown and
 * transport errors are retried with exponential backoff and jitter.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../log.h"
#include "../pool.h"
#include "../retry.h"
#include "../util.h"
#include "dircache.h"
#include "dirtab.h"
#include "http.h"
#include "meta.h"
#include "mime.h"
#include "s3url.h"
#include "sigv4.h"
#include "store.h"
#include "xml.h"

#define S3_CHUNK (8u << 20)      /* bytes per ranged GET */
#define S3_WINDOW 4              /* pieces of one object in flight */
#define S3_SINGLE_MAX (8u << 20) /* larger objects go multipart (as aws s3 cp) */
#define S3_PART_MIN (8u << 20)
#define S3_MAX_PARTS 10000
#define S3_ATTEMPTS 6
/* The requests of open(): a store that does not answer fails the run fast. */
#define S3_PROBE_ATTEMPTS 2
/* A request goes on retrying a transient failure this long (past
 * S3_ATTEMPTS) while the endpoint answered lately (common/retry.h). */
#define S3_RETRY_BUDGET_MS 12000u
#define S3_REPLY_MAX (16u << 20)        /* XML replies */
#define S3_COPY_SINGLE_MAX (5ull << 30) /* CopyObject's limit; UploadPartCopy above */
#define S3_COPY_PART (512ull << 20)
/* extra headers of one call; with the 4 of every request and the metadata
 * (SM_META_FIELDS) within the 64 headers sigv4.c signs */
#define S3_EXTRA 8

struct s3_store {
	struct sm_s3_loc loc;
	struct sm_http *http;
	struct sm_retry_health health; /* the endpoint's last answer */
	char host[512];
	char base[600];       /* scheme://host */
	char bucket_uri[600]; /* "/bucket" (path style) or "" */
	const char *storage_class;
	struct sm_pool *pool;     /* the run's transfer pool (borrowed), or NULL */
	uint64_t copy_single_max; /* CopyObject up to this size, UploadPartCopy above */
	uint64_t copy_part;
	const char *label; /* cfg.label ("SRC", "DST") or NULL */
	atomic_int order;  /* S3_ORDER_*: what listings have shown of its order */
	/* full prefixes that hold more keys than one listing page (sorted):
	 * a level-by-level walk lists them by directory at once */
	pthread_mutex_t big_mu;
	char **big;
	size_t nbig, capbig;
	struct sm_dircache *dcache; /* levels kept for the run (cfg.list_cache), or NULL */
};

static void s3_lvdata_free(void *val);

static struct s3_store *s3_priv(struct sm_store *st)
{
	return st->priv;
}

/* ---- requests ---- */

struct s3_call {
	const char *method;
	const char *key; /* full object key; NULL for the bucket */
	struct sm_kv query[6];
	size_t nq;
	struct sm_kv extra[S3_EXTRA]; /* extra signed headers */
	size_t nx;
	const struct sm_meta *meta; /* more: an object's metadata, or NULL */
	struct sm_meta *meta_out;   /* the reply's metadata (sm_http_req.meta), or NULL */
	const void *body;
	size_t body_len;
	struct sm_reader *reader; /* or a body streamed from a reader (one attempt) */
	uint64_t reader_len;
	bool reader_finish;
	const char *payload_hash; /* NULL: SHA-256 of body */
	struct sm_buf *resp;
	size_t (*sink)(void *arg, const void *data, size_t n);
	void *sink_arg;
	bool no_retry; /* e.g. a sink that already received bytes */
	int attempts;  /* 0: S3_ATTEMPTS */
};

/* Map an S3 error reply to an sm_err with the message users need. */
static enum sm_err s3_reply_err(struct s3_store *s, long status, const struct sm_buf *body,
                                const char *method, const char *what, const char *key,
                                struct sm_diag *d)
{
	struct sm_s3_error e = { 0 };
	if (body && body->len)
		sm_s3_parse_error(body->p, body->len, &e);
	const char *code = e.code[0] ? e.code : NULL;
	/* what the request was about: a key, else the bucket and prefix */
	char kb[700];
	if (key)
		snprintf(kb, sizeof(kb), "'%s'", key);
	else if (*s->loc.prefix)
		snprintf(kb, sizeof(kb), "in bucket '%s' under '%s'", s->loc.bucket, s->loc.prefix);
	else
		snprintf(kb, sizeof(kb), "in bucket '%s'", s->loc.bucket);
	const char *k = kb;
	if (code && strcmp(code, "SignatureDoesNotMatch") == 0)
		return sm_diag_set(d, SM_EACCES, (int)status,
		                   "s3: SignatureDoesNotMatch: check the secret key for %s",
		                   s->loc.access_key ? s->loc.access_key : "(anonymous)");
	if (code && strcmp(code, "InvalidAccessKeyId") == 0)
		return sm_diag_set(d, SM_EACCES, (int)status,
		                   "s3: InvalidAccessKeyId: access key %s is unknown to %s",
		                   s->loc.access_key ? s->loc.access_key : "(anonymous)",
		                   s->loc.endpoint);
	if (code && strcmp(code, "NoSuchBucket") == 0)
		return sm_diag_set(d, SM_ENOENT, (int)status,
		                   "bucket '%s' does not exist on %s (NoSuchBucket)", s->loc.bucket,
		                   s->loc.endpoint);
	if (s->storage_class && code &&
	    (strcmp(code, "InvalidStorageClass") == 0 ||
	     (status == 400 && strcmp(code, "InvalidArgument") == 0 &&
	      (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0))))
		return sm_diag_set(d, SM_EINVAL, (int)status,
		                   "s3: %s %s: --storage-class '%s' refused by %s (%s)", what, k,
		                   s->storage_class, s->loc.endpoint, code);
	if (status == 404 && !code && !key && strcmp(method, "HEAD") != 0)
		return sm_diag_set(d, SM_EIO, (int)status,
		                   "%s answered 404 to a request for bucket '%s' without an S3 "
		                   "error: not an S3 endpoint (check the URL)",
		                   s->loc.endpoint, s->loc.bucket);
	if (status == 404 || (code && strcmp(code, "NoSuchKey") == 0))
		return sm_diag_set(d, SM_ENOENT, (int)status, "s3: %s %s: no such key", what, k);
	if (status == 403)
		return sm_diag_set(d, SM_EACCES, (int)status, "s3: %s %s: %s%s%s", what, k,
		                   code ? code : "403 Forbidden", e.message[0] ? ": " : "",
		                   e.message);
	if (status == 412)
		return sm_diag_set(d, SM_ECHANGED, (int)status,
		                   "s3: %s changed while it was read (ETag mismatch)", k);
	/* 501 (NotImplemented: an operation this server lacks) and 505 are
	 * answers, not outages: asking again gets the same one */
	enum sm_err kind = ((status >= 500 && status != 501 && status != 505) || status == 429 ||
	                    (code && strcmp(code, "SlowDown") == 0))
	                           ? SM_EAGAIN
	                           : SM_EIO;
	return sm_diag_set(d, kind, (int)status, "s3: %s %s: HTTP %ld%s%s%s%s", what, k, status,
	                   code ? " " : "", code ? code : "", e.message[0] ? ": " : "", e.message);
}

/* Build, sign and send one call, retrying transient failures. *out gets
 * the reply of the last attempt (status 2xx on SM_OK). */
static enum sm_err s3_do(struct s3_store *s, struct s3_call *c, struct sm_http_req *out,
                         const char *what, struct sm_diag *d)
{
	struct sm_diag own;
	if (!d)
		d = &own; /* callers may not want the message; the retry log does */
	struct sm_buf uri = { 0 }, url = { 0 }, qs = { 0 }, auth = { 0 };
	enum sm_err err = SM_ENOMEM;
	if (sm_buf_appendz(&uri, s->bucket_uri) != SM_OK)
		goto out;
	if (c->key) {
		if (sm_buf_append(&uri, "/", 1) || sm_sigv4_encode(&uri, c->key, true))
			goto out;
	} else if (!*s->bucket_uri && sm_buf_append(&uri, "/", 1)) {
		goto out;
	}
	/* the query string, encoded and sorted exactly as it is signed */
	struct sm_kv sorted[6];
	memcpy(sorted, c->query, c->nq * sizeof(sorted[0]));
	for (size_t i = 1; i < c->nq; i++)
		for (size_t j = i; j > 0 && strcmp(sorted[j - 1].name, sorted[j].name) > 0; j--) {
			struct sm_kv t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (size_t i = 0; i < c->nq; i++) {
		if ((i && sm_buf_append(&qs, "&", 1)) ||
		    sm_sigv4_encode(&qs, sorted[i].name, false) || sm_buf_append(&qs, "=", 1) ||
		    sm_sigv4_encode(&qs, sorted[i].value ? sorted[i].value : "", false))
			goto out;
	}
	if (sm_buf_appendz(&url, s->base) || sm_buf_append(&url, uri.p, uri.len) ||
	    (qs.len && (sm_buf_append(&url, "?", 1) || sm_buf_append(&url, qs.p, qs.len))))
		goto out;
	char hash[65];
	const char *ph = c->payload_hash;
	if (!ph) {
		sm_sha256_hex(c->body ? c->body : "", c->body_len, hash);
		ph = hash;
	}
	uint64_t t0 = sm_now_ns();
	for (int attempt = 1;; attempt++) {
		char date[17];
		sm_sigv4_date((int64_t)time(NULL), date);
		struct sm_kv hdrs[5 + S3_EXTRA + SM_META_FIELDS];
		size_t nh = 0;
		hdrs[nh++] = (struct sm_kv){ "host", s->host };
		hdrs[nh++] = (struct sm_kv){ "x-amz-date", date };
		hdrs[nh++] = (struct sm_kv){ "x-amz-content-sha256", ph };
		if (s->loc.token)
			hdrs[nh++] = (struct sm_kv){ "x-amz-security-token", s->loc.token };
		for (size_t i = 0; i < c->nx; i++)
			hdrs[nh++] = c->extra[i];
		for (size_t i = 0; c->meta && i < c->meta->n; i++)
			hdrs[nh++] = (struct sm_kv){ sm_meta_name(c->meta, i),
				                     sm_meta_value(c->meta, i) };
		size_t nsend = nh;
		if (s->loc.access_key) {
			struct sm_sigv4_cred cred = { s->loc.access_key, s->loc.secret_key,
				                      s->loc.region, "s3" };
			struct sm_sigv4_req sr = { .method = c->method,
				                   .uri = uri.p,
				                   .query = c->query,
				                   .n_query = c->nq,
				                   .headers = hdrs,
				                   .n_headers = nh,
				                   .payload_hash = ph,
				                   .amz_date = date };
			err = sm_sigv4_sign(&cred, &sr, &auth, NULL, d);
			if (err != SM_OK)
				goto out;
			hdrs[nsend++] = (struct sm_kv){ "Authorization", auth.p };
		}
		struct sm_buf errbody = { .limit = 1u << 20 };
		bool capture = !c->resp;
		*out = (struct sm_http_req){ .method = c->method,
			                     .url = url.p,
			                     .headers = hdrs + 1,
			                     .n_headers = nsend - 1,
			                     .body = c->body,
			                     .body_len = c->body_len,
			                     .reader = c->reader,
			                     .reader_len = c->reader_len,
			                     .reader_finish = c->reader_finish,
			                     .resp = capture ? &errbody : c->resp,
			                     .sink = c->sink,
			                     .sink_arg = c->sink_arg,
			                     .meta = c->meta_out };
		if (c->resp)
			c->resp->len = 0;
		err = sm_http_do(s->http, out, d);
		if (err == SM_OK && out->status / 100 != 2) {
			err = s3_reply_err(s, out->status, capture ? &errbody : c->resp, c->method,
			                   what, c->key, d);
		} else if (err == SM_OK && c->resp && out->has_content_length &&
		           strcmp(c->method, "HEAD") != 0 && c->resp->len != out->content_length) {
			/* a body cut short must never pass for the whole object */
			err = sm_diag_set(
			        d, SM_EAGAIN, 0,
			        "s3: %s '%s': a reply of %zu bytes, %" PRIu64 " announced", what,
			        c->key ? c->key : "", c->resp->len, out->content_length);
		}
		sm_buf_release(&errbody);
		if (out->status && out->status < 500)
			sm_retry_ok(&s->health); /* the endpoint answers */
		/* the requests of open() fail fast; the others ride out a short
		 * outage (common/retry.h) */
		struct sm_retry pol = { .min_attempts =
			                        c->attempts ? (unsigned)c->attempts : S3_ATTEMPTS,
			                .budget_ms = S3_RETRY_BUDGET_MS,
			                .base_ms = 100,
			                .cap_ms = 2000,
			                .health = c->attempts ? NULL : &s->health };
		if (err == SM_OK || c->no_retry || c->reader ||
		    !sm_retry_should(&pol, err, attempt, t0))
			break;
		sm_log(SM_LOG_INFO, "retrying %s (attempt %d): %s", what, attempt + 1, d->msg);
		sm_retry_backoff(&pol, attempt);
	}
out:
	if (err == SM_ENOMEM && d && d->err != SM_ENOMEM)
		sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	sm_buf_release(&uri);
	sm_buf_release(&url);
	sm_buf_release(&qs);
	sm_buf_release(&auth);
	return err;
}

/* The object key of a store key. */
static char *s3_full(struct s3_store *s, const char *key)
{
	return sm_strcat2(s->loc.prefix, key);
}

/* x-amz-meta-mtime ("SECONDS[.FRACTION]", as rclone writes it) into *out;
 * false when the object has none. 0 (the epoch) is a time like any other. */
static bool s3_meta_mtime(const char *v, int64_t *out)
{
	if (!v || !*v)
		return false;
	char *end = NULL;
	long long sec = strtoll(v, &end, 10);
	if (end == v)
		return false;
	int64_t ns = 0;
	if (end && *end == '.') {
		int64_t scale = 100000000;
		for (const char *p = end + 1; *p >= '0' && *p <= '9' && scale; p++, scale /= 10)
			ns += (*p - '0') * scale;
	}
	*out = sm_time_ns(sec, sec < 0 ? -ns : ns, NULL);
	return true;
}

static int64_t s3_http_mtime(const char *v)
{
	struct tm tm = { 0 };
	if (!v || !*v || !strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm))
		return 0;
	return (int64_t)timegm(&tm) * 1000000000;
}

/* ---- open / close ---- */

static enum sm_err s3_open_probe(struct sm_store *st, struct s3_store *s, const struct sm_url *u,
                                 int one, struct sm_diag *d);

static enum sm_err s3_open(struct sm_store *st, const struct sm_url *u,
                           const struct sm_store_cfg *cfg, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	pthread_mutex_init(&s->big_mu, NULL);
	enum sm_err err = sm_s3_loc_parse(u->path, !cfg->no_https, &s->loc, d);
	if (err != SM_OK)
		return err;
	/* The store is a directory: ".../bucket/data" holds "data/x", never
	 * "data-old/x" nor "datax" (a raw string prefix would list, write and
	 * delete beside it). */
	size_t plen = strlen(s->loc.prefix);
	if (plen && s->loc.prefix[plen - 1] != '/') {
		char *dir = sm_strcat2(s->loc.prefix, "/");
		if (!dir)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		free(s->loc.prefix);
		s->loc.prefix = dir;
	}
	sm_retry_health_init(&s->health);
	if (cfg->list_cache &&
	    sm_dircache_new(cfg->list_cache, s3_lvdata_free, &s->dcache) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	s->storage_class = cfg->storage_class;
	s->pool = cfg->pool;
	s->label = cfg->label;
	s->copy_single_max = S3_COPY_SINGLE_MAX;
	s->copy_part = S3_COPY_PART;
	/* Tests only: multipart copies of small objects (5 MiB parts), which the
	 * test servers can hold, instead of 5 GiB ones. */
	const char *tmax = getenv("SYNCMGR_TEST_S3_COPY_MAX");
	int64_t v = 0;
	if (tmax && sm_parse_i64(tmax, 1, INT64_MAX, &v)) {
		s->copy_single_max = (uint64_t)v;
		s->copy_part = 5ull << 20;
	}
	if (s->loc.path_style) {
		snprintf(s->host, sizeof(s->host), "%s", s->loc.endpoint);
		struct sm_buf b = { 0 };
		if (sm_buf_append(&b, "/", 1) || sm_sigv4_encode(&b, s->loc.bucket, false)) {
			sm_buf_release(&b);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		snprintf(s->bucket_uri, sizeof(s->bucket_uri), "%.*s", (int)b.len, b.p);
		sm_buf_release(&b);
	} else {
		snprintf(s->host, sizeof(s->host), "%s.%s", s->loc.bucket, s->loc.endpoint);
		s->bucket_uri[0] = '\0';
	}
	snprintf(s->base, sizeof(s->base), "%s://%s", s->loc.https ? "https" : "http", s->host);
	struct sm_http_cfg hc = { 0 };
	const char *ca = getenv("AWS_CA_BUNDLE");
	if (ca && *ca && s->loc.https) {
		if (access(ca, R_OK) != 0)
			return sm_diag_errno(d, errno, "AWS_CA_BUNDLE: cannot read '%s'", ca);
		hc.ca_file = ca;
	}
	err = sm_http_new(&hc, &s->http, d);
	if (err == SM_OK)
		err = s3_open_probe(st, s, u, cfg->one, d);
	return err;
}

/* One ListObjectsV2 request: what it asks (NULL: not asked). */
struct s3_list_q {
	const char *prefix; /* full key prefix; "" or NULL: the bucket */
	const char *delimiter;
	const char *start_after;
	const char *token; /* a continuation token: start_after is not sent */
	const char *max_keys;
	bool no_encoding; /* no encoding-type=url */
	int attempts;     /* 0: the default */
};

/* Send one listing request and parse its page into *page (released and
 * reset first; the caller releases it, on an error too). */
static enum sm_err s3_list_get(struct s3_store *s, const struct s3_list_q *q,
                               struct sm_s3_list_page *page, struct sm_diag *d)
{
	sm_s3_list_page_release(page);
	*page = (struct sm_s3_list_page){ 0 };
	struct sm_buf body = { .limit = S3_REPLY_MAX };
	struct s3_call call = { .method = "GET", .resp = &body, .attempts = q->attempts };
	call.query[call.nq++] = (struct sm_kv){ "list-type", "2" };
	if (!q->no_encoding)
		call.query[call.nq++] = (struct sm_kv){ "encoding-type", "url" };
	call.query[call.nq++] = (struct sm_kv){ "max-keys", q->max_keys ? q->max_keys : "1000" };
	if (q->delimiter)
		call.query[call.nq++] = (struct sm_kv){ "delimiter", q->delimiter };
	if (q->prefix && *q->prefix)
		call.query[call.nq++] = (struct sm_kv){ "prefix", q->prefix };
	if (q->token)
		call.query[call.nq++] = (struct sm_kv){ "continuation-token", q->token };
	else if (q->start_after && *q->start_after)
		call.query[call.nq++] = (struct sm_kv){ "start-after", q->start_after };
	struct sm_http_req rep;
	enum sm_err err = s3_do(s, &call, &rep, "list", d);
	if (err == SM_OK)
		err = sm_s3_parse_list(body.p, body.len, page, d);
	sm_buf_release(&body);
	return err;
}

/* One key under `prefix` into *any: the bucket, the credentials and the
 * endpoint answer once, at open, with few attempts (a silent endpoint fails
 * in seconds, not after every retry of every task). */
static enum sm_err s3_probe_list(struct s3_store *s, const char *prefix, bool *any,
                                 struct sm_diag *d)
{
	struct sm_s3_list_page page = { 0 };
	struct s3_list_q q = { .prefix = prefix,
		               .max_keys = "1",
		               .no_encoding = true,
		               .attempts = S3_PROBE_ATTEMPTS };
	enum sm_err err = s3_list_get(s, &q, &page, d);
	if (err == SM_OK)
		*any = page.n > 0;
	sm_s3_list_page_release(&page);
	return err;
}

/* cfg.one (store.h), the probe, and the root's place. */
static enum sm_err s3_open_probe(struct sm_store *st, struct s3_store *s, const struct sm_url *u,
                                 int one, struct sm_diag *d)
{
	bool any = false;
	enum sm_err err = s3_probe_list(s, s->loc.prefix, &any, d);
	if (err != SM_OK)
		return sm_diag_prefix(d, "'%s'", u->display);
	if (one != SM_ONE_NO && *s->loc.prefix && !u->trailing && !any) {
		bool reroot = one == SM_ONE_DST;
		if (one == SM_ONE_SRC) {
			char *obj = sm_strndup(s->loc.prefix, strlen(s->loc.prefix) - 1);
			if (!obj)
				return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			struct s3_call call = { .method = "HEAD",
				                .key = obj,
				                .attempts = S3_PROBE_ATTEMPTS };
			struct sm_http_req rep;
			err = s3_do(s, &call, &rep, "stat", d);
			free(obj);
			if (err == SM_ENOENT)
				return sm_diag_set(d, SM_ENOENT, 0,
				                   "'%s': no such object or prefix", u->display);
			if (err != SM_OK)
				return sm_diag_prefix(d, "'%s'", u->display);
			reroot = true;
		}
		if (reroot) {
			char *parent = NULL, *name = NULL;
			err = sm_store_split_last(s->loc.prefix, &parent, &name, d);
			if (err != SM_OK)
				return err;
			char *prefix = *parent ? sm_strcat2(parent, "/") : sm_strdup("");
			free(parent);
			if (!prefix) {
				free(name);
				return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			}
			free(s->loc.prefix);
			s->loc.prefix = prefix;
			st->one = name;
		}
	}
	char space[600];
	int n = snprintf(space, sizeof(space), "s3://%s/%s", s->loc.endpoint, s->loc.bucket);
	for (int i = 5; i < n && space[i] != '/'; i++)
		space[i] = (char)tolower((unsigned char)space[i]);
	char *where = sm_strcat2("/", s->loc.prefix);
	err = where ? sm_store_set_where(st, space, where, d)
	            : sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	free(where);
	return err;
}

static void s3_close(struct sm_store *st)
{
	struct s3_store *s = s3_priv(st);
	if (!s)
		return;
	sm_http_free(s->http);
	sm_s3_loc_release(&s->loc);
	if (s->dcache) {
		struct sm_dircache_stats ds;
		sm_dircache_stats(s->dcache, &ds);
		if (ds.loads)
			sm_log(SM_LOG_DEBUG,
			       "%s%ss3: listing cache: %lu levels read, %lu served again, %lu "
			       "evicted",
			       s->label ? s->label : "", s->label ? ": " : "", ds.loads, ds.hits,
			       ds.evictions);
	}
	sm_dircache_free(s->dcache);
	for (size_t i = 0; i < s->nbig; i++)
		free(s->big[i]);
	free(s->big);
	pthread_mutex_destroy(&s->big_mu);
}

/* ---- listing ----
 *
 * A listing starts flat: ListObjectsV2 over the whole prefix, which a
 * store that lists in byte order (nearly all) returns in the global order.
 * Each page is checked whole before any of its keys is given out: its keys
 * must ascend, after the last key given. Some stores list in directory
 * order instead ("a/x" before "a-b": hierarchical-namespace buckets, some
 * gateways). The first page that shows it switches the cursor, and every
 * later cursor of the store at once, to a listing level by level
 * (delimiter '/'): each level is read whole, sorted here with its prefixes
 * ("a/") among its objects, and each prefix is listed at its place; the
 * walk resumes after the last key already given.
 *
 * Directory order can also hide at a page boundary: on such a store a page
 * that ends inside "a/" is followed by "a-b", which sorts before keys
 * already given. So until a listing of the store has shown byte order
 * (a key like "a-b" right before one under "a/"), a cursor asks at each
 * page boundary, before giving the page out, whether the directories the
 * boundary is in have such siblings it has not seen (s3_siblings). If keys
 * were given before a switch, a recount of that span makes sure none was
 * passed over; if some were, the listing says so with an error (a listing
 * with an error never allows deletes), never silently.
 */

enum { S3_ORDER_UNKNOWN, S3_ORDER_BYTES, S3_ORDER_DIRS };

#define S3_KEY_MAX 4096    /* bytes of a key (S3: 1024) */
#define S3_SIBLING_PAGES 8 /* pages one sibling check may read */
#define S3_EMPTY_PAGES 64  /* empty pages in a row that a level may have */

/* Length of the longest prefix of s that is whole UTF-8 sequences. */
static size_t s3_utf8_prefix(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, ok = 0;
	while (p[i]) {
		unsigned char c = p[i];
		size_t n = c < 0x80             ? 1
		           : (c & 0xe0) == 0xc0 ? 2
		           : (c & 0xf0) == 0xe0 ? 3
		           : (c & 0xf8) == 0xf0 ? 4
		                                : 0;
		if (!n || (n > 1 && c < 0xc2) || c > 0xf4)
			break;
		size_t j = 1;
		while (j < n && (p[i + j] & 0xc0) == 0x80)
			j++;
		if (j < n)
			break;
		i += n;
		ok = i;
	}
	return ok;
}

/* One entry of a level as a walk gives it: an object, or a common prefix
 * ("a/") whose keys are listed at its place. `key` is the full key,
 * borrowed until the level's next call. */
struct s3_item {
	const char *key;
	bool prefix;
	uint64_t size;
	int64_t mtime_ns;
};

/* An object's attributes, as a level's table holds them (its payload). */
struct s3_objattr {
	uint64_t size;
	int64_t mtime_ns;
};

/* A key of a subtree listed in one page: relative to the level's prefix. */
struct s3_flatent {
	char *rel;
	struct s3_objattr a;
};

/* A level's listing, read whole: shared read-only through the store's
 * listing cache (DST's: a level is read once per run, however many range
 * tasks go through it), or one walk's own. Either
 *  - the level by directory: the names right below the prefix, a common
 *    prefix as a directory, in a dirtab (sorted in memory, or on disk past
 *    its budget: dirtab.c), each name behind one tag byte (S3_NAME_TAG),
 *    so that the empty name of "p/" itself and of "p//" fits a table
 *    whose names are never empty; one byte before every name keeps the
 *    order;
 *  - or the whole subtree, when it fit in one page: its keys, sorted. */
struct s3_lvdata {
	struct sm_dirtab *tab;
	struct s3_flatent *flat;
	size_t nflat;
};

#define S3_NAME_TAG '>'

/* One level of a walk: the listing, and where the walk is in it. */
struct s3_level {
	char *prefix; /* full key prefix: the store's, one ending in '/', or (at the
	               * top of a range's own walk) the start all its keys have */
	size_t plen;
	struct s3_lvdata *data;
	struct sm_dircache_ent *ent; /* data's entry in the cache, or NULL: data is ours */
	struct sm_dirtab_it it;
	size_t fi;          /* flat: the next entry */
	struct sm_buf key;  /* the full key of the last item given */
	struct sm_buf prev; /* the last record's key, to drop repeats */
	bool has_prev;
	struct s3_item cur;
};

/* A level-by-level walk over the store keys in (resume, last]. */
struct s3_walk {
	struct s3_store *s;
	char *resume;     /* store key: keys up to it are not given ("" = none) */
	const char *last; /* store key, or NULL (borrowed from the cursor) */
	char *top;        /* full key: every key in the range starts with it */
	struct s3_level *lv;
	size_t depth, cap;
	bool started, done;
};

struct s3_cursor {
	struct s3_store *s;
	char *after;       /* store key: the range starts after it ("" = start) */
	char *start_after; /* full key sent to the server: valid UTF-8 */
	char *last;        /* store key, or NULL */
	bool levels;       /* listing level by level (else flat) */
	/* flat */
	char *token;
	struct sm_s3_list_page page;
	size_t idx, end; /* page.objs[idx..end) are checked and still to give */
	bool more;
	struct sm_buf prev; /* the last key given (store key) */
	bool have_prev;
	uint64_t given;
	struct sm_buf checked; /* the last page boundary whose directories were checked */
	/* level by level */
	struct s3_walk walk;
	struct sm_diag pending; /* an error to report before going on */
	bool has_pending;
	struct sm_entry ent;
};

static void s3_lvdata_free(void *val)
{
	struct s3_lvdata *v = val;
	if (!v)
		return;
	sm_dirtab_free(v->tab);
	for (size_t i = 0; i < v->nflat; i++)
		free(v->flat[i].rel);
	free(v->flat);
	free(v);
}

static void s3_level_release(struct s3_store *s, struct s3_level *lv)
{
	sm_dirtab_it_release(&lv->it);
	if (lv->ent)
		sm_dircache_release(s->dcache, lv->ent);
	else
		s3_lvdata_free(lv->data);
	free(lv->prefix);
	sm_buf_release(&lv->key);
	sm_buf_release(&lv->prev);
	memset(lv, 0, sizeof(*lv));
}

/* A key or prefix `k` of a delimiter listing of the level below `prefix`:
 * an object right below it (or the level's own marker), or else the
 * prefix of the child it is in ("a/" for "a/" and "a/x" alike: a server
 * that ignores the delimiter, or a directory marker, lists it again one
 * level down). */
static enum sm_err s3_level_take(struct s3_lvdata *v, const char *prefix, size_t plen,
                                 const char *k, bool isprefix, const struct s3_objattr *a,
                                 struct sm_diag *d)
{
	if (strncmp(k, prefix, plen) != 0)
		return SM_OK; /* not below the level (a server that ignores the prefix) */
	const char *rest = k + plen;
	const char *slash = strchr(rest, '/');
	if (!slash && isprefix)
		return SM_OK; /* a prefix without the delimiter: not ours */
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
	char name[S3_KEY_MAX + 2];
	if (len + 1 >= sizeof(name))
		return sm_diag_set(d, SM_EIO, 0, "s3: listing '%s' gave a key of %zu bytes", prefix,
		                   plen + len);
	name[0] = S3_NAME_TAG;
	memcpy(name + 1, rest, len);
	return sm_dirtab_add(v->tab, name, len + 1, slash != NULL, slash ? NULL : a,
	                     slash ? 0 : sizeof(*a), d);
}

/* A store in directory order that continues a listing after the value of
 * the page's last object `last` (s3rver does) never lists what it walks
 * later but sorts before it: an object whose name is a proper prefix of
 * last's, cut where last has a byte below '/' ("f1" after "f1-x", when its
 * names sort as if they went on: "f1.object" > "f1-x.object"). Ask for
 * those names one by one. */
static enum sm_err s3_level_probe(struct s3_store *s, struct s3_lvdata *v, const char *prefix,
                                  const char *last, struct sm_diag *d)
{
	size_t plen = strlen(prefix);
	if (strncmp(last, prefix, plen) != 0 || strchr(last + plen, '/'))
		return SM_OK;
	for (size_t j = plen + 1; last[j]; j++) {
		if ((unsigned char)last[j] >= '/')
			continue;
		char *k = sm_strndup(last, j);
		if (!k)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		struct s3_call call = { .method = "HEAD", .key = k };
		struct sm_http_req rep;
		enum sm_err err = s3_do(s, &call, &rep, "stat", d);
		/* a repeat of a listed one goes when the level is read;
		 * Last-Modified has whole seconds: the bound is the second's end */
		if (err == SM_OK) {
			int64_t up = s3_http_mtime(rep.last_modified);
			struct s3_objattr a = { rep.content_length, up ? up + 999999999 : 0 };
			err = s3_level_take(v, prefix, plen, k, false, &a, d);
		}
		free(k);
		if (err != SM_OK && err != SM_ENOENT)
			return err;
	}
	return SM_OK;
}

#define S3_BIG_MAX 65536 /* prefixes remembered as larger than a page */

static int s3_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether full prefix p is known to hold more keys than one page. */
static bool s3_big_has(struct s3_store *s, const char *p)
{
	pthread_mutex_lock(&s->big_mu);
	bool has = s->nbig && bsearch(&p, s->big, s->nbig, sizeof(*s->big), s3_str_cmp);
	pthread_mutex_unlock(&s->big_mu);
	return has;
}

/* Remember that full prefix p holds more keys than one page (best effort:
 * forgetting costs one request more). */
static void s3_big_add(struct s3_store *s, const char *p)
{
	pthread_mutex_lock(&s->big_mu);
	size_t lo = 0, hi = s->nbig;
	bool found = false;
	while (lo < hi && !found) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->big[mid], p);
		if (c == 0)
			found = true;
		else if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!found && s->nbig < S3_BIG_MAX) {
		if (s->nbig == s->capbig) {
			size_t cap = s->capbig ? s->capbig * 2 : 64;
			char **nb = realloc(s->big, cap * sizeof(*nb));
			if (nb) {
				s->big = nb;
				s->capbig = cap;
			}
		}
		char *dup = s->nbig < s->capbig ? strdup(p) : NULL;
		if (dup) {
			memmove(&s->big[lo + 1], &s->big[lo], (s->nbig - lo) * sizeof(*s->big));
			s->big[lo] = dup;
			s->nbig++;
		}
	}
	pthread_mutex_unlock(&s->big_mu);
}

static int s3_flat_cmp(const void *a, const void *b)
{
	return strcmp(((const struct s3_flatent *)a)->rel, ((const struct s3_flatent *)b)->rel);
}

/* Try to read the whole subtree below `prefix` in one flat page (no
 * delimiter, no start): a subtree of at most one page's keys then costs
 * one request instead of one per directory. A page that says there is
 * more is dropped (a store in directory order continues a flat listing
 * after the value of the page's last key and so may pass over keys: one
 * page is all it can be trusted with), and the prefix remembered as too
 * large for it. *whole tells whether v holds the subtree. */
static enum sm_err s3_level_flat(struct s3_store *s, struct s3_lvdata *v, const char *prefix,
                                 bool *whole, struct sm_diag *d)
{
	*whole = false;
	if (s3_big_has(s, prefix))
		return SM_OK;
	struct sm_s3_list_page page = { 0 };
	enum sm_err err = s3_list_get(s, &(struct s3_list_q){ .prefix = prefix }, &page, d);
	size_t plen = strlen(prefix);
	if (err == SM_OK && page.truncated)
		s3_big_add(s, prefix);
	if (err == SM_OK && !page.truncated && page.n) {
		v->flat = calloc(page.n, sizeof(*v->flat));
		if (!v->flat)
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	if (err == SM_OK && !page.truncated) {
		*whole = true;
		for (size_t i = 0; err == SM_OK && i < page.n; i++) {
			const struct sm_s3_object *o = &page.objs[i];
			if (strncmp(o->key, prefix, plen) != 0)
				continue; /* a server ignoring the prefix */
			struct s3_flatent *f = &v->flat[v->nflat];
			if (!(f->rel = strdup(o->key + plen)))
				err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			f->a = (struct s3_objattr){ o->size, o->mtime_ns };
			v->nflat += err == SM_OK;
		}
		if (v->nflat)
			qsort(v->flat, v->nflat, sizeof(*v->flat), s3_flat_cmp);
	}
	sm_s3_list_page_release(&page);
	return err;
}

/* Read every page of the level below `prefix` by directory into a new
 * table: pages of a store in directory order come in its order, and may
 * repeat a prefix. */
static enum sm_err s3_level_fill(struct s3_store *s, struct s3_lvdata *v, const char *prefix,
                                 bool shared, struct sm_diag *d)
{
	enum sm_err err = sm_dirtab_new(&v->tab, d);
	if (err != SM_OK)
		return err;
	char *token = NULL;
	size_t plen = strlen(prefix);
	unsigned empty = 0; /* truncated pages without an entry, in a row */
	for (;;) {
		struct sm_s3_list_page page = { 0 };
		struct s3_list_q q = { .prefix = prefix, .delimiter = "/", .token = token };
		err = s3_list_get(s, &q, &page, d);
		for (size_t i = 0; err == SM_OK && i < page.n; i++) {
			struct s3_objattr a = { page.objs[i].size, page.objs[i].mtime_ns };
			err = s3_level_take(v, prefix, plen, page.objs[i].key, false, &a, d);
		}
		for (size_t i = 0; err == SM_OK && i < page.n_prefixes; i++)
			err = s3_level_take(v, prefix, plen, page.prefixes[i], true, NULL, d);
		if (err == SM_OK && page.truncated && page.n)
			err = s3_level_probe(s, v, prefix, page.objs[page.n - 1].key, d);
		empty = page.n || page.n_prefixes ? 0 : empty + 1;
		if (err == SM_OK && page.truncated && token && strcmp(token, page.next_token) == 0)
			err = sm_diag_set(d, SM_EIO, 0,
			                  "s3: listing '%s' returned the same continuation token "
			                  "again",
			                  prefix);
		else if (err == SM_OK && page.truncated && empty >= S3_EMPTY_PAGES)
			err = sm_diag_set(d, SM_EIO, 0,
			                  "s3: listing '%s' returned %u empty pages in a row, each "
			                  "saying there is more",
			                  prefix, empty);
		bool more = err == SM_OK && page.truncated;
		free(token);
		token = NULL;
		if (more && !(token = strdup(page.next_token)))
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		sm_s3_list_page_release(&page);
		if (err != SM_OK || !more)
			break;
	}
	free(token);
	if (err == SM_OK)
		err = sm_dirtab_finish(v->tab, shared, d);
	if (err == SM_OK && sm_dirtab_disk_bytes(v->tab)) {
		char where[S3_KEY_MAX + 700];
		snprintf(where, sizeof(where), "s3://%s/%s/%s", s->loc.endpoint, s->loc.bucket,
		         prefix);
		sm_dirtab_log(v->tab, SM_LOG_INFO, where);
	}
	return err;
}

/* Read the level below full prefix `prefix`: its subtree in one page when
 * it fits, else by directory. */
static enum sm_err s3_level_load(struct s3_store *s, const char *prefix, bool shared,
                                 struct s3_lvdata **out, size_t *bytes, struct sm_diag *d)
{
	struct s3_lvdata *v = calloc(1, sizeof(*v));
	if (!v)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	bool whole = false;
	enum sm_err err = s3_level_flat(s, v, prefix, &whole, d);
	if (err == SM_OK && !whole)
		err = s3_level_fill(s, v, prefix, shared, d);
	if (err != SM_OK) {
		s3_lvdata_free(v);
		return err;
	}
	*bytes = sizeof(*v) + (v->tab ? sm_dirtab_cache_bytes(v->tab) : 0);
	for (size_t i = 0; i < v->nflat; i++)
		*bytes += sizeof(v->flat[i]) + strlen(v->flat[i].rel) + 1;
	*out = v;
	return SM_OK;
}

/* The level's next item, *out NULL at its end. Repeats (a prefix listed
 * on two pages, a probed name listed too) are given once. */
static enum sm_err s3_level_next(struct s3_level *lv, const struct s3_item **out, struct sm_diag *d)
{
	*out = NULL;
	struct s3_lvdata *v = lv->data;
	const char *rel;
	size_t rlen;
	if (!v->tab) {
		if (lv->fi >= v->nflat)
			return SM_OK;
		struct s3_flatent *f = &v->flat[lv->fi++];
		rel = f->rel;
		rlen = strlen(rel);
		lv->cur = (struct s3_item){ .size = f->a.size, .mtime_ns = f->a.mtime_ns };
	} else {
		struct sm_dirtab_rec r;
		for (;;) {
			enum sm_err err = sm_dirtab_it_peek(&lv->it, &r, d);
			if (err == SM_EOF)
				return SM_OK;
			if (err != SM_OK)
				return err;
			sm_dirtab_it_advance(&lv->it);
			if (lv->has_prev && lv->prev.len == r.klen &&
			    memcmp(lv->prev.p, r.key, r.klen) == 0)
				continue;
			lv->prev.len = 0;
			if (sm_buf_append(&lv->prev, r.key, r.klen) != SM_OK)
				return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			lv->has_prev = true;
			break;
		}
		rel = r.key + 1; /* past the tag; '/' ends a directory's */
		rlen = r.klen - 1;
		struct s3_objattr a = { 0, 0 };
		if (!r.dir && r.dlen == sizeof(a))
			memcpy(&a, r.data, sizeof(a));
		lv->cur =
		        (struct s3_item){ .prefix = r.dir, .size = a.size, .mtime_ns = a.mtime_ns };
	}
	lv->key.len = 0;
	if (sm_buf_append(&lv->key, lv->prefix, lv->plen) != SM_OK ||
	    sm_buf_append(&lv->key, rel, rlen) != SM_OK || sm_buf_append(&lv->key, "", 1) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	lv->cur.key = lv->key.p;
	*out = &lv->cur;
	return SM_OK;
}

/* Move a level read by directory to the child that full key `full` is in
 * (or after it): a range task in a large level does not read its way
 * there. */
static enum sm_err s3_level_seek(struct s3_level *lv, const char *full, struct sm_diag *d)
{
	if (!lv->data->tab || strncmp(full, lv->prefix, lv->plen) != 0 || !full[lv->plen])
		return SM_OK;
	const char *rest = full + lv->plen;
	size_t clen = strcspn(rest, "/");
	char name[S3_KEY_MAX + 2];
	if (clen + 1 >= sizeof(name))
		return SM_OK;
	name[0] = S3_NAME_TAG;
	memcpy(name + 1, rest, clen);
	/* the child itself: its name, with '/' when resume is below it */
	size_t n = clen + 1;
	if (rest[clen] == '/')
		name[n++] = '/';
	enum sm_err err = sm_dirtab_it_seek(&lv->it, name, n, d);
	return err == SM_EOF ? SM_OK : err;
}

static void s3_walk_release(struct s3_walk *w)
{
	for (size_t i = 0; i < w->depth; i++)
		s3_level_release(w->s, &w->lv[i]);
	free(w->lv);
	free(w->resume);
	free(w->top);
	memset(w, 0, sizeof(*w));
}

/* Takes over nothing; `resume` is copied, `last` borrowed for the walk.
 * The walk starts at the longest start that resume and last have in
 * common: each key between them has it too ("f000" for "f000123" and
 * "f000456"), so a range task reads only its own part of a large level.
 * With a listing cache it starts at the directory that holds that start
 * ("" for "f000"), a level other tasks read too. */
static enum sm_err s3_walk_init(struct s3_walk *w, struct s3_store *s, const char *resume,
                                const char *last, struct sm_diag *d)
{
	size_t common = 0;
	while (last && resume[common] && resume[common] == last[common])
		common++;
	if (s->dcache)
		while (common && resume[common - 1] != '/')
			common--;
	char *top = sm_strndup(resume, common);
	if (top) /* a prefix goes to the server: whole UTF-8 sequences only */
		top[s3_utf8_prefix(top)] = '\0';
	*w = (struct s3_walk){
		.s = s, .last = last, .resume = strdup(resume), .top = top ? s3_full(s, top) : NULL
	};
	free(top);
	if (!w->resume || !w->top)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	return SM_OK;
}

/* Put the level below full prefix `prefix` on the stack: from the
 * store's listing cache (read by whichever cursor asked first), or read
 * for this walk alone. A level that cannot be read is left out: the walk
 * goes on after it. */
static enum sm_err s3_walk_push(struct s3_walk *w, const char *prefix, struct sm_diag *d)
{
	struct s3_store *s = w->s;
	if (w->depth == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		struct s3_level *nl = realloc(w->lv, cap * sizeof(*nl));
		if (!nl)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		w->lv = nl;
		w->cap = cap;
	}
	struct s3_level lv = { .prefix = strdup(prefix), .plen = strlen(prefix) };
	if (!lv.prefix)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err = SM_OK;
	size_t bytes = 0;
	if (s->dcache) {
		bool load = false;
		lv.ent = sm_dircache_get(s->dcache, prefix, lv.plen, &load);
		if (!lv.ent)
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		else if (!load)
			lv.data = sm_dircache_val(lv.ent);
		else if ((err = s3_level_load(s, prefix, true, &lv.data, &bytes, d)) == SM_OK)
			sm_dircache_fill(s->dcache, lv.ent, lv.data, bytes);
		else {
			sm_dircache_abandon(s->dcache, lv.ent); /* an error is never cached */
			lv.ent = NULL;
		}
	} else {
		err = s3_level_load(s, prefix, false, &lv.data, &bytes, d);
	}
	if (err == SM_OK && lv.data->tab) {
		sm_dirtab_it_init(&lv.it, lv.data->tab);
		if (*w->resume) {
			char *full = s3_full(s, w->resume);
			err = full ? s3_level_seek(&lv, full, d)
			           : sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			free(full);
		}
	}
	if (err != SM_OK) {
		s3_level_release(s, &lv);
		return err;
	}
	w->lv[w->depth++] = lv;
	return SM_OK;
}

/* The next object in (resume, last], in byte order. After an error the
 * walk has moved past the level that failed (or ended, at the root). */
static enum sm_err s3_walk_next(struct s3_walk *w, const struct s3_item **out, struct sm_diag *d)
{
	size_t plen = strlen(w->s->loc.prefix);
	for (;;) {
		if (w->done)
			return SM_EOF;
		if (!w->started) {
			w->started = true;
			enum sm_err err = s3_walk_push(w, w->top, d);
			if (err != SM_OK) {
				w->done = true;
				return err;
			}
			continue;
		}
		if (!w->depth) {
			w->done = true;
			return SM_EOF;
		}
		const struct s3_item *it;
		enum sm_err lerr = s3_level_next(&w->lv[w->depth - 1], &it, d);
		if (lerr != SM_OK || !it) {
			s3_level_release(w->s, &w->lv[--w->depth]);
			if (lerr != SM_OK)
				return lerr; /* the walk goes on after the level */
			continue;
		}
		const char *key = it->key + plen;
		if (w->last && strcmp(key, w->last) > 0) {
			w->done = true; /* a prefix's keys all sort after it, too */
			return SM_EOF;
		}
		if (it->prefix) {
			/* wholly before resume: "a/" is passed when resume is "a0",
			 * entered when it is "a-b" or "a/x" */
			if (strcmp(w->resume, key) > 0 && strncmp(w->resume, key, strlen(key)) != 0)
				continue;
			enum sm_err err = s3_walk_push(w, it->key, d);
			if (err != SM_OK)
				return err;
			continue;
		}
		if (!*key || strcmp(key, w->resume) <= 0)
			continue; /* the root's own marker, or given already */
		*out = it;
		return SM_OK;
	}
}

static void s3_list_end(void *cur);

static enum sm_err s3_list_begin(struct sm_store *st, const struct sm_range *r, void **out,
                                 struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	struct s3_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	c->s = s;
	c->more = true;
	c->start_after = s3_full(s, r->after ? r->after : "");
	c->after = strdup(r->after ? r->after : "");
	c->last = r->last ? strdup(r->last) : NULL;
	if (c->start_after) /* keys are UTF-8: S3 may refuse, or echo unparsably, anything else */
		c->start_after[s3_utf8_prefix(c->start_after)] = '\0';
	if (!c->start_after || !c->after || (r->last && !c->last)) {
		s3_list_end(c);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	if (atomic_load(&s->order) == S3_ORDER_DIRS) {
		enum sm_err err = s3_walk_init(&c->walk, s, c->after, c->last, d);
		if (err != SM_OK) {
			s3_list_end(c);
			return err;
		}
		c->levels = true;
	}
	*out = c;
	return SM_OK;
}

static enum sm_err s3_list_page(struct s3_cursor *c, struct sm_diag *d)
{
	struct s3_store *s = c->s;
	struct s3_list_q q = { .prefix = s->loc.prefix,
		               .start_after = c->start_after,
		               .token = c->token };
	enum sm_err err = s3_list_get(s, &q, &c->page, d);
	c->idx = c->end = 0;
	if (err != SM_OK)
		return err;
	free(c->token);
	c->token = NULL;
	c->more = c->page.truncated;
	if (c->more && !(c->token = strdup(c->page.next_token)))
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	return SM_OK;
}

/* Two keys given one right after the other that only byte order puts so:
 * "a-b" (or "a") and then a key under "a/". A store in directory order
 * lists "a/" first. */
static bool s3_byte_order_evidence(const char *p, const char *k)
{
	size_t i = 0;
	while (p[i] && p[i] == k[i])
		i++;
	return k[i] == '/' && (unsigned char)p[i] < '/';
}

/* Ask the store for the siblings [A/d, A/d/) of directory `dir` ("A/d/",
 * a store key; `fname` is "A/d", `qname` its full key) within
 * (after, bound]: *found when there is one (*sib: a copy of it), or when
 * the replies do not tell (*sib NULL). */
static enum sm_err s3_sibling_query(struct s3_cursor *c, const char *dir, const char *fname,
                                    const char *qname, const char *bound, bool *found, char **sib,
                                    struct sm_diag *d)
{
	struct s3_store *s = c->s;
	size_t plen = strlen(s->loc.prefix), nlen = strlen(fname);
	char *token = NULL;
	bool decided = false;
	enum sm_err err = SM_OK;
	for (int pg = 0; pg < S3_SIBLING_PAGES && !decided && err == SM_OK; pg++) {
		struct sm_s3_list_page page = { 0 };
		struct s3_list_q q = { .prefix = qname,
			               .delimiter = "/",
			               .max_keys = "3",
			               .token = token,
			               .start_after = strcmp(c->start_after, qname) > 0
			                                      ? c->start_after
			                                      : NULL };
		err = s3_list_get(s, &q, &page, d);
		bool beyond = false;
		size_t n = err == SM_OK ? page.n + page.n_prefixes : 0;
		for (size_t i = 0; i < n && !*found; i++) {
			const char *x = i < page.n ? page.objs[i].key : page.prefixes[i - page.n];
			if (strncmp(x, s->loc.prefix, plen) != 0)
				continue;
			x += plen;
			if (strcmp(x, c->after) <= 0)
				continue;
			int cd = strcmp(x, dir);
			if (cd < 0 && strncmp(x, fname, nlen) == 0 &&
			    (!bound || strcmp(x, bound) <= 0)) {
				*found = true;
				*sib = strdup(x);
			} else if (cd > 0) {
				beyond = true; /* past the siblings in byte order */
			}
		}
		decided = *found || beyond || !page.truncated;
		free(token);
		token = NULL;
		if (err == SM_OK && !decided && !(token = sm_strdup(page.next_token)))
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		sm_s3_list_page_release(&page);
	}
	free(token);
	if (err == SM_OK && !decided)
		*found = true; /* the store did not tell: list it level by level */
	return err;
}

/* Is there a key that a store in directory order would list after the
 * page boundary `b` (a store key) although it sorts before it, and that
 * this cursor has not seen? Such keys are the siblings [A/d, A/d/) of each
 * directory "A/d/" that b is in, within (after, bound] (bound: the range's
 * last key, or NULL); a store in byte order listed them before A/d/, and a
 * cursor that had seen one would know the store's order. Directories the
 * previous boundary was in were checked then. */
static enum sm_err s3_siblings(struct s3_cursor *c, const char *b, const char *bound, bool *found,
                               char **sib, struct sm_diag *d)
{
	enum sm_err err = SM_OK;
	*found = false;
	*sib = NULL;
	for (const char *sl = strchr(b, '/'); sl && !*found && err == SM_OK;
	     sl = strchr(sl + 1, '/')) {
		size_t dl = (size_t)(sl + 1 - b);
		if (c->checked.len >= dl && strncmp(c->checked.p, b, dl) == 0)
			continue;                    /* the previous boundary was in it too */
		char *dir = sm_strndup(b, dl);       /* "A/d/" */
		char *fname = sm_strndup(b, dl - 1); /* "A/d" */
		char *qname = fname ? s3_full(c->s, fname) : NULL;
		if (!dir || !fname || !qname)
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		else if (strcmp(c->after, dir) < 0 && (!bound || strcmp(fname, bound) <= 0))
			err = s3_sibling_query(c, dir, fname, qname, bound, found, sib, d);
		/* else every sibling is outside the range */
		free(dir);
		free(fname);
		free(qname);
	}
	if (err != SM_OK)
		return err;
	c->checked.len = 0;
	if (sm_buf_appendz(&c->checked, b) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	return SM_OK;
}

/* Switch the cursor to the level-by-level walk, resuming after the last
 * key given (`why`: for --debug); tell once per store that it lists out
 * of order. If keys were given, recount that span level by level: a key
 * the flat listing passed over can no longer be given in order, and must
 * not pass unnoticed. */
static enum sm_err s3_switch(struct s3_cursor *c, const char *why, struct sm_diag *d)
{
	struct s3_store *s = c->s;
	if (atomic_exchange(&s->order, S3_ORDER_DIRS) != S3_ORDER_DIRS)
		sm_log(SM_LOG_WARN,
		       "%s%ss3: %s/%s lists keys out of byte order: listing it level by level",
		       s->label ? s->label : "", s->label ? ": " : "", s->loc.endpoint,
		       s->loc.bucket);
	const char *resume = c->have_prev ? c->prev.p : c->after;
	sm_log(SM_LOG_DEBUG,
	       "%s%ss3: listing after '%s'%s%s%s switches to level by level after %" PRIu64
	       " keys (%s), resuming after '%s'",
	       s->label ? s->label : "", s->label ? ": " : "", c->after,
	       c->last ? " up to '" : " to the end", c->last ? c->last : "", c->last ? "'" : "",
	       c->given, why, resume);
	sm_s3_list_page_release(&c->page);
	c->idx = c->end = 0;
	c->more = false;
	c->levels = true;
	enum sm_err err = s3_walk_init(&c->walk, s, resume, c->last, d);
	if (err != SM_OK || !c->given)
		return err;
	struct s3_walk w;
	err = s3_walk_init(&w, s, c->after, resume, d);
	uint64_t n = 0;
	const struct s3_item *it;
	while (err == SM_OK && (err = s3_walk_next(&w, &it, d)) == SM_OK)
		n++;
	s3_walk_release(&w);
	if (err == SM_EOF && n > c->given)
		err = sm_diag_set(d, SM_EIO, 0,
		                  "s3: %s/%s lists keys out of byte order, which showed only after "
		                  "'%s': keys before it were left out (%" PRIu64
		                  "), they are not synced by this run",
		                  s->loc.endpoint, s->loc.bucket, resume, n - c->given);
	else if (err == SM_EOF)
		err = SM_OK;
	else
		sm_diag_prefix(d, "s3: cannot check the keys listed up to '%s'", resume);
	if (err != SM_OK) {
		c->pending = *d;
		c->has_pending = true;
	}
	return SM_OK;
}

/* Fetch the next flat page and check it; on disorder switch the cursor
 * (nothing of this page was given). */
static enum sm_err s3_flat_next_page(struct s3_cursor *c, struct sm_diag *d)
{
	struct s3_store *s = c->s;
	size_t plen = strlen(s->loc.prefix);
	if (atomic_load(&s->order) == S3_ORDER_DIRS) /* another listing showed it */
		return s3_switch(c, "the store lists out of order", d);
	enum sm_err err = s3_list_page(c, d);
	if (err != SM_OK)
		return err;
	/* keep the keys below our prefix that are in the range so far */
	struct sm_s3_list_page *pg = &c->page;
	const char *prev = c->have_prev ? c->prev.p : NULL;
	const char *bad = NULL, *bad_after = NULL; /* the first key out of order */
	bool evidence = false;
	size_t w = 0;
	for (size_t i = 0; i < pg->n; i++) {
		struct sm_s3_object o = pg->objs[i];
		const char *k = o.key + plen;
		if (strncmp(o.key, s->loc.prefix, plen) != 0 || !*k ||
		    (!prev && strcmp(k, c->after) <= 0)) {
			free(o.key); /* not ours, the root's marker, or before the range */
			continue;
		}
		pg->objs[w++] = o;
		if (!bad && prev && strcmp(k, prev) <= 0) {
			bad = k;
			bad_after = prev;
		} else if (prev && s3_byte_order_evidence(prev, k)) {
			evidence = true;
		}
		prev = k;
	}
	pg->n = w;
	if (bad) {
		char why[2 * SM_DIAG_MAX / 3];
		snprintf(why, sizeof(why), "'%s' came after '%s'", bad, bad_after);
		return s3_switch(c, why, d);
	}
	if (evidence) {
		int unknown = S3_ORDER_UNKNOWN;
		atomic_compare_exchange_strong(&s->order, &unknown, S3_ORDER_BYTES);
	}
	size_t end = 0;
	while (end < pg->n && (!c->last || strcmp(pg->objs[end].key + plen, c->last) <= 0))
		end++;
	/* Only a directory that runs on past this page can have siblings the
	 * store lists later: of one that ends in the page they would follow
	 * in the page, out of order (seen above). Past the range, only
	 * siblings up to its last key matter. */
	const char *boundary = c->more && pg->n ? pg->objs[pg->n - 1].key + plen : NULL;
	int order = boundary ? atomic_load(&s->order) : S3_ORDER_BYTES;
	if (order == S3_ORDER_DIRS)
		return s3_switch(c, "the store lists out of order", d);
	if (order == S3_ORDER_UNKNOWN) {
		bool found;
		char *sib = NULL;
		err = s3_siblings(c, boundary, c->last, &found, &sib, d);
		if (err == SM_OK && found) {
			char why[2 * SM_DIAG_MAX / 3];
			if (sib)
				snprintf(why, sizeof(why),
				         "'%s' sorts before '%s' but was not listed before it", sib,
				         boundary);
			else
				snprintf(why, sizeof(why),
				         "no answer whether keys before '%s' were left out",
				         boundary);
			err = s3_switch(c, why, d);
		}
		free(sib);
		if (err != SM_OK || c->levels)
			return err;
	}
	c->idx = 0;
	c->end = end;
	if (end < pg->n)
		c->more = false; /* past the range */
	return SM_OK;
}

static enum sm_err s3_list_next(void *cur, const struct sm_entry **out, struct sm_diag *d)
{
	struct s3_cursor *c = cur;
	size_t plen = strlen(c->s->loc.prefix);
	const char *full;
	const struct sm_s3_object *o = NULL;
	const struct s3_item *it = NULL;
	for (;;) {
		if (c->has_pending) {
			c->has_pending = false;
			*d = c->pending;
			return d->err;
		}
		if (c->levels) {
			enum sm_err err = s3_walk_next(&c->walk, &it, d);
			if (err != SM_OK)
				return err;
			full = it->key;
			break;
		}
		if (c->idx < c->end) {
			o = &c->page.objs[c->idx++];
			full = o->key;
			break;
		}
		if (!c->more)
			return SM_EOF;
		enum sm_err err = s3_flat_next_page(c, d);
		if (err != SM_OK) {
			/* s3_do retried what is worth retrying: a page that still
			 * fails cannot be got past, so the listing ends here
			 * with this error (asking again would loop forever). */
			c->more = false;
			c->idx = c->end = 0;
			return err;
		}
	}
	const char *key = full + plen;
	if (!c->levels) {
		c->prev.len = 0;
		if (sm_buf_appendz(&c->prev, key) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		c->have_prev = true;
		c->given++;
	}
	uint64_t size = o ? o->size : it->size;
	/* a key ending in '/' is a directory marker, unless it holds bytes:
	 * then it is an object like any other (issue 21) */
	bool dir = key[strlen(key) - 1] == '/' && size == 0;
	c->ent = (struct sm_entry){ .key = (char *)key,
		                    .size = dir ? 0 : size,
		                    .mtime_ns = o ? o->mtime_ns : it->mtime_ns,
		                    .mtime_bound = true, /* x-amz-meta-mtime: stat() */
		                    .mode = dir ? (S_IFDIR | 0755) : (S_IFREG | 0644) };
	*out = &c->ent;
	return SM_OK;
}

static void s3_list_end(void *cur)
{
	struct s3_cursor *c = cur;
	if (!c)
		return;
	sm_s3_list_page_release(&c->page);
	s3_walk_release(&c->walk);
	sm_buf_release(&c->prev);
	sm_buf_release(&c->checked);
	free(c->after);
	free(c->start_after);
	free(c->last);
	free(c->token);
	free(c);
}

/* ---- stat ---- */

static enum sm_err s3_stat(struct sm_store *st, const char *key, struct sm_entry *out,
                           struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	char *full = s3_full(s, key);
	if (!full)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	struct s3_call call = { .method = "HEAD", .key = full };
	struct sm_http_req rep;
	enum sm_err err = s3_do(s, &call, &rep, "stat", d);
	free(full);
	if (err != SM_OK)
		return err;
	bool dir = sm_key_is_dir(key) && rep.content_length == 0;
	int64_t mt = 0;
	bool has_mt = s3_meta_mtime(rep.meta_mtime, &mt);
	int64_t up = s3_http_mtime(rep.last_modified);
	*out = (struct sm_entry){ .size = dir ? 0 : rep.content_length,
		                  .mtime_ns = has_mt ? mt : up,
		                  .upload_ns = up,
		                  .mode = dir ? (S_IFDIR | 0755) : (S_IFREG | 0644) };
	return SM_OK;
}

/* ---- reading: ranged GETs, several in flight ---- */

/* One range of an object, fetched on the transfer pool. */
struct s3_piece {
	struct sm_job job; /* first: the job is the piece */
	struct s3_reader *r;
	uint64_t off;
	uint64_t len;
	struct sm_buf buf;
	bool busy;     /* submitted, not yet waited for */
	bool reserved; /* its buffer counts against the pool's budget */
	enum sm_err err;
	struct sm_diag d;
};

struct s3_reader {
	struct sm_reader base;
	struct s3_store *s;
	char *key;     /* full key */
	uint64_t next; /* next byte to request */
	uint64_t end;  /* object size */
	char etag[128];
	struct s3_piece pieces[S3_WINDOW];
	int npieces;
	int head;            /* the piece being handed out */
	size_t bufpos;       /* in pieces[head].buf */
	size_t first_held;   /* bytes of the pool's budget the first range holds */
	struct sm_meta meta; /* of the first reply: base.meta points here */
};

/* GET one range (off, len) into buf, pinned to the reader's ETag; the
 * reply's metadata into `meta` unless NULL. */
static enum sm_err s3_get_range(struct s3_reader *r, uint64_t off, uint64_t len, struct sm_buf *buf,
                                struct sm_http_req *rep, struct sm_meta *meta, struct sm_diag *d)
{
	char range[64];
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
	buf->len = 0;
	struct s3_call call = { .method = "GET", .key = r->key, .resp = buf, .meta_out = meta };
	call.extra[call.nx++] = (struct sm_kv){ "range", range };
	if (r->etag[0])
		call.extra[call.nx++] = (struct sm_kv){ "if-match", r->etag };
	return s3_do(r->s, &call, rep, "read", d);
}

static void s3_piece_run(struct sm_job *j)
{
	struct s3_piece *p = (struct s3_piece *)j;
	struct sm_http_req rep;
	p->err = s3_get_range(p->r, p->off, p->len, &p->buf, &rep, NULL, &p->d);
	if (p->err == SM_OK && p->buf.len != p->len)
		p->err = sm_diag_set(&p->d, SM_ECHANGED, 0,
		                     "s3: '%s' changed while it was read (short range)", p->r->key);
}

/* Put piece p to work on the next range, if any is left. */
static void s3r_submit(struct s3_reader *r, struct s3_piece *p)
{
	if (r->next >= r->end)
		return;
	p->off = r->next;
	p->len = r->end - r->next < S3_CHUNK ? r->end - r->next : S3_CHUNK;
	r->next += p->len;
	p->busy = true;
	p->job.fn = s3_piece_run;
	sm_pool_submit(r->s->pool, &p->job);
}

/* The first request, in the caller: it tells the size, ETag, mtime and
 * metadata. A small listed object comes whole in one unranged GET. */
static enum sm_err s3r_first(struct s3_reader *r, uint64_t off, uint64_t size_hint,
                             struct sm_diag *d)
{
	struct s3_piece *p = &r->pieces[0];
	struct sm_http_req rep;
	enum sm_err err;
	bool whole = off == 0 && size_hint <= S3_CHUNK;
	if (whole) {
		p->buf.len = 0;
		struct s3_call call = {
			.method = "GET", .key = r->key, .resp = &p->buf, .meta_out = &r->meta
		};
		err = s3_do(r->s, &call, &rep, "read", d);
		if (err == SM_EIO && rep.status / 100 == 2 && rep.content_length > S3_CHUNK)
			err = sm_diag_set(d, SM_ECHANGED, 0,
			                  "s3: '%s' changed since it was listed (now %" PRIu64
			                  " bytes)",
			                  r->key, rep.content_length);
	} else {
		err = s3_get_range(r, off, S3_CHUNK, &p->buf, &rep, &r->meta, d);
		if (err == SM_EIO && rep.status == 416 &&
		    (off == 0 || (rep.has_range_total && off >= rep.range_total))) {
			r->end = r->next = off; /* nothing from `off` on (empty, or its end) */
			p->buf.len = 0;
			return SM_OK;
		}
		if (err == SM_OK && off > 0 && rep.status != 206)
			return sm_diag_set(d, SM_EIO, 0,
			                   "s3: '%s': the server ignored the Range of a read from "
			                   "byte %" PRIu64,
			                   r->key, off);
	}
	if (err != SM_OK)
		return err;
	sm_strlcpy(r->etag, rep.etag, sizeof(r->etag));
	if (rep.status == 206 && rep.has_range_total)
		r->end = rep.range_total;
	else
		r->end = off + p->buf.len; /* 200: the whole object */
	if (r->end < off + p->buf.len)
		return sm_diag_set(d, SM_EIO, 0, "s3: '%s': a range reply past the object's end",
		                   r->key);
	r->next = off + p->buf.len;
	int64_t mt = 0;
	if (s3_meta_mtime(rep.meta_mtime, &mt)) {
		r->base.mtime_ns = mt;
		r->base.has_mtime = true;
	}
	r->base.meta = &r->meta;
	return SM_OK;
}

static enum sm_err s3r_read(struct sm_reader *rd, void *buf, size_t cap, size_t *got,
                            struct sm_diag *d)
{
	struct s3_reader *r = (struct s3_reader *)rd;
	struct s3_piece *p = &r->pieces[r->head];
	/* The head piece is never busy; the others hold the next ranges in
	 * turn, so a piece with nothing in flight means the end. */
	while (r->bufpos == p->buf.len) {
		s3r_submit(r, p); /* spent: refill it with a later range, if any */
		r->head = (r->head + 1) % r->npieces;
		p = &r->pieces[r->head];
		r->bufpos = 0;
		if (!p->busy) {
			p->buf.len = 0;
			*got = 0;
			return SM_OK;
		}
		sm_pool_wait(r->s->pool, &p->job);
		p->busy = false;
		if (p->err != SM_OK) {
			p->buf.len = 0;
			if (d)
				*d = p->d;
			return p->err;
		}
	}
	size_t n = p->buf.len - r->bufpos;
	if (n > cap)
		n = cap;
	memcpy(buf, p->buf.p + r->bufpos, n);
	r->bufpos += n;
	*got = n;
	return SM_OK;
}

static void s3r_close(struct sm_reader *rd)
{
	struct s3_reader *r = (struct s3_reader *)rd;
	for (int i = 0; i < r->npieces; i++) {
		struct s3_piece *p = &r->pieces[i];
		if (p->busy)
			sm_pool_wait(r->s->pool, &p->job);
		if (p->reserved)
			sm_pool_unreserve(r->s->pool, S3_CHUNK);
		sm_buf_release(&p->buf);
	}
	if (r->s->pool)
		sm_pool_unreserve(r->s->pool, r->first_held);
	free(r->key);
	free(r);
}

static const struct sm_reader_ops s3_reader_ops = { .read = s3r_read, .close = s3r_close };

static enum sm_err s3_open_read(struct sm_store *st, const char *key, uint64_t off,
                                uint64_t size_hint, struct sm_reader **out, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	struct s3_reader *r = calloc(1, sizeof(*r));
	if (!r || !(r->key = s3_full(s, key))) {
		free(r);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	r->base.ops = &s3_reader_ops;
	r->s = s;
	r->npieces = 1;
	/* the first range's buffer comes out of the pool's budget too */
	r->first_held = size_hint < S3_CHUNK ? (size_t)size_hint : S3_CHUNK;
	sm_pool_reserve_wait(s->pool, r->first_held, false);
	r->base.pool_held = s->pool != NULL;
	for (int i = 0; i < S3_WINDOW; i++)
		r->pieces[i] = (struct s3_piece){ .r = r, .buf = { .limit = S3_CHUNK + 1 } };
	enum sm_err err = s3r_first(r, off, size_hint, d);
	if (err != SM_OK) {
		s3r_close(&r->base);
		return err;
	}
	r->base.size = r->end >= off ? r->end - off : 0;
	/* the rest in parallel ranges, as far as the budget allows */
	while (r->npieces < S3_WINDOW && r->next < r->end && sm_pool_reserve(s->pool, S3_CHUNK)) {
		struct s3_piece *p = &r->pieces[r->npieces++];
		p->reserved = true;
		s3r_submit(r, p);
	}
	*out = &r->base;
	return SM_OK;
}

/* ---- writing ---- */

static void s3_mtime_header(const struct sm_put *p, char *buf, size_t n)
{
	int64_t sec = p->mtime_ns / 1000000000, ns = p->mtime_ns % 1000000000;
	if (ns < 0) {
		ns += 1000000000;
		sec--;
	}
	snprintf(buf, n, "%" PRId64 ".%09" PRId64, sec, ns);
}

/* Read exactly n bytes of r into buf; SM_ECHANGED when it ends early. */
static enum sm_err s3_fill(struct sm_reader *r, char *buf, size_t n, const char *key,
                           struct sm_diag *d)
{
	size_t got = 0;
	enum sm_err err = sm_reader_read_full(r, buf, n, &got, d);
	if (err == SM_OK && got < n)
		err = sm_diag_set(d, SM_ECHANGED, 0, "'%s' ended after %zu of %zu bytes", key, got,
		                  n);
	return err;
}

/* The headers every new object gets: its SRC mtime and the storage class,
 * and the metadata of the source object (`meta`, borrowed for the call's
 * lifetime, or NULL), else a Content-Type from the name. `mt` (48 bytes)
 * holds the mtime's text for the call's lifetime. */
static void s3_new_object_headers(const struct s3_store *s, struct s3_call *c,
                                  const struct sm_put *p, const struct sm_meta *meta, char *mt,
                                  size_t mtlen)
{
	s3_mtime_header(p, mt, mtlen);
	if (meta && meta->lost)
		sm_log(SM_LOG_WARN,
		       "the metadata of '%s' exceeds %u fields or %u bytes: %u field(s) not copied",
		       c->key, SM_META_FIELDS, SM_META_TEXT, meta->lost);
	c->meta = meta;
	bool typed = meta && sm_meta_get(meta, "content-type");
	if (!typed && c->key && !sm_key_is_dir(c->key)) /* from the name, as aws s3 cp */
		c->extra[c->nx++] = (struct sm_kv){ "content-type", sm_mime_type(c->key) };
	if (p->flags & SM_PUT_MTIME)
		c->extra[c->nx++] = (struct sm_kv){ "x-amz-meta-mtime", mt };
	if (s->storage_class)
		c->extra[c->nx++] = (struct sm_kv){ "x-amz-storage-class", s->storage_class };
}

/* The payload hash of an object body: over HTTPS AWS lets the body go
 * unsigned (TLS protects it), which saves hashing it and lets it stream. */
static const char *s3_body_hash(const struct s3_store *s)
{
	return s->loc.https ? "UNSIGNED-PAYLOAD" : NULL;
}

static enum sm_err s3_put_single(struct s3_store *s, const char *full, const char *data, size_t len,
                                 const struct sm_put *p, const struct sm_meta *meta,
                                 struct sm_diag *d)
{
	char mt[48];
	struct s3_call call = { .method = "PUT",
		                .key = full,
		                .body = data,
		                .body_len = len,
		                .payload_hash = s3_body_hash(s) };
	s3_new_object_headers(s, &call, p, meta, mt, sizeof(mt));
	struct sm_http_req rep;
	return s3_do(s, &call, &rep, "write", d);
}

/* Pull a tag's text out of a small XML reply. */
static bool s3_xml_tag(const struct sm_buf *b, const char *tag, char *out, size_t n)
{
	char open[64], close[64];
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (!b->p)
		return false;
	const char *a = strstr(b->p, open);
	const char *e = a ? strstr(a, close) : NULL;
	if (!a || !e)
		return false;
	a += strlen(open);
	size_t len = (size_t)(e - a);
	if (len >= n)
		return false;
	memcpy(out, a, len);
	out[len] = '\0';
	return true;
}

static void s3_abort_upload(struct s3_store *s, const char *full, const char *upload_id)
{
	struct s3_call call = { .method = "DELETE", .key = full };
	call.query[call.nq++] = (struct sm_kv){ "uploadId", upload_id };
	struct sm_http_req rep;
	struct sm_diag d;
	if (s3_do(s, &call, &rep, "abort upload", &d) != SM_OK)
		sm_log(SM_LOG_WARN, "multipart upload of '%s' left open: %s", full, d.msg);
}

/* Check a 2xx reply that may still carry an <Error> (CopyObject, Complete). */
static enum sm_err s3_body_error(const struct sm_buf *body, const char *what, const char *key,
                                 struct sm_diag *d)
{
	struct sm_s3_error e;
	if (body->len && sm_s3_parse_error(body->p, body->len, &e))
		return sm_diag_set(d, SM_EIO, 0, "s3: %s '%s': %s %s", what, key, e.code,
		                   e.message);
	return SM_OK;
}

/* One part of a multipart upload, sent on the transfer pool. */
struct s3_part {
	struct sm_job job; /* first: the job is the part */
	struct s3_store *s;
	const char *full;
	const char *upload_id;
	char *buf;
	size_t len;
	uint64_t num; /* 1-based part number */
	bool busy;
	enum sm_err err;
	struct sm_diag d;
	char etag[128];
};

static void s3_part_run(struct sm_job *j)
{
	struct s3_part *pt = (struct s3_part *)j;
	char num[24];
	snprintf(num, sizeof(num), "%" PRIu64, pt->num);
	struct s3_call pc = { .method = "PUT",
		              .key = pt->full,
		              .body = pt->buf,
		              .body_len = pt->len,
		              .payload_hash = s3_body_hash(pt->s) };
	pc.query[pc.nq++] = (struct sm_kv){ "partNumber", num };
	pc.query[pc.nq++] = (struct sm_kv){ "uploadId", pt->upload_id };
	struct sm_http_req rep = { 0 };
	pt->err = s3_do(pt->s, &pc, &rep, "write part", &pt->d);
	if (pt->err == SM_OK && !rep.etag[0])
		pt->err = sm_diag_set(&pt->d, SM_EIO, 0, "s3: no ETag for part %s of '%s'", num,
		                      pt->full);
	if (pt->err == SM_OK)
		sm_strlcpy(pt->etag, rep.etag, sizeof(pt->etag));
}

/* Wait for a part in flight; its ETag goes to etags[num - 1], and the first
 * failure of the upload into *err / d. */
static void s3_part_collect(struct s3_store *s, struct s3_part *pt, char (*etags)[128],
                            enum sm_err *err, struct sm_diag *d)
{
	if (!pt->busy)
		return;
	sm_pool_wait(s->pool, &pt->job);
	pt->busy = false;
	if (pt->err != SM_OK && *err == SM_OK) {
		*err = pt->err;
		if (d)
			*d = pt->d;
	}
	if (pt->err == SM_OK)
		memcpy(etags[pt->num - 1], pt->etag, sizeof(pt->etag));
}

/* Parts are read from `r` in order, each into a buffer of its own, and sent
 * while the next ones are read: up to S3_WINDOW at once, the first buffer
 * always, the others as the pool's budget allows. The upload is completed
 * only when every part succeeded, and aborted otherwise. */
static enum sm_err s3_put_multipart(struct s3_store *s, const char *full, const char *key,
                                    struct sm_reader *r, uint64_t size, const struct sm_put *p,
                                    struct sm_diag *d)
{
	uint64_t part = S3_PART_MIN;
	while ((size + part - 1) / part > S3_MAX_PARTS)
		part *= 2;
	uint64_t nparts = (size + part - 1) / part;
	char mt[48];
	struct sm_buf body = { .limit = S3_REPLY_MAX };
	struct s3_call init = { .method = "POST", .key = full, .resp = &body };
	init.query[init.nq++] = (struct sm_kv){ "uploads", "" };
	s3_new_object_headers(s, &init, p, r->meta, mt, sizeof(mt));
	struct sm_http_req rep;
	enum sm_err err = s3_do(s, &init, &rep, "start upload", d);
	char upload_id[512];
	if (err == SM_OK && (sm_buf_append(&body, "", 0) != SM_OK ||
	                     !s3_xml_tag(&body, "UploadId", upload_id, sizeof(upload_id))))
		err = sm_diag_set(d, SM_EIO, 0, "s3: no UploadId for '%s'", key);
	sm_buf_release(&body);
	if (err != SM_OK)
		return err;

	struct s3_part parts[S3_WINDOW] = { 0 };
	int nwin = 1, reserved = 1;
	sm_pool_reserve_wait(s->pool, part, r->pool_held); /* the first part's buffer */
	while (nwin < S3_WINDOW && (uint64_t)nwin < nparts && sm_pool_reserve(s->pool, part)) {
		nwin++;
		reserved++;
	}
	char(*etags)[128] = calloc(nparts, sizeof(*etags));
	bool nomem = !etags;
	struct sm_buf done = { 0 };
	for (int i = 0; i < nwin; i++) {
		parts[i] = (struct s3_part){ .s = s, .full = full, .upload_id = upload_id };
		if (!(parts[i].buf = malloc(part)))
			nomem = true;
	}
	if (nomem) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	for (uint64_t i = 0; i < nparts && err == SM_OK; i++) {
		struct s3_part *pt = &parts[i % (uint64_t)nwin];
		s3_part_collect(s, pt, etags, &err, d); /* its buffer's last part */
		if (err != SM_OK)
			break;
		pt->len = (size_t)(i + 1 < nparts ? part : size - i * part);
		pt->num = i + 1;
		err = s3_fill(r, pt->buf, pt->len, key, d);
		if (err != SM_OK)
			break;
		pt->busy = true;
		pt->job.fn = s3_part_run;
		sm_pool_submit(s->pool, &pt->job);
	}
	for (int i = 0; i < nwin; i++)
		s3_part_collect(s, &parts[i], etags, &err, d);
	if (err == SM_OK) {
		/* a source that grew would be committed cut short */
		char probe;
		size_t more = 0;
		err = sm_reader_read(r, &probe, 1, &more, d);
		if (err == SM_OK && more)
			err = sm_diag_set(d, SM_ECHANGED, 0,
			                  "'%s' grew past the %" PRIu64 " bytes listed", key, size);
	}
	if (err != SM_OK)
		goto fail;
	if (p->flags & SM_PUT_CHECK) {
		err = sm_reader_finish(r, d);
		if (err != SM_OK)
			goto fail;
	}
	err = sm_buf_appendz(&done, "<CompleteMultipartUpload>");
	for (uint64_t i = 0; i < nparts && err == SM_OK; i++) {
		char part_xml[256];
		snprintf(part_xml, sizeof(part_xml),
		         "<Part><PartNumber>%" PRIu64 "</PartNumber><ETag>%s</ETag></Part>", i + 1,
		         etags[i]);
		err = sm_buf_appendz(&done, part_xml);
	}
	if (err == SM_OK)
		err = sm_buf_appendz(&done, "</CompleteMultipartUpload>");
	if (err != SM_OK) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	body = (struct sm_buf){ .limit = S3_REPLY_MAX };
	struct s3_call fin = {
		.method = "POST", .key = full, .body = done.p, .body_len = done.len, .resp = &body
	};
	fin.query[fin.nq++] = (struct sm_kv){ "uploadId", upload_id };
	err = s3_do(s, &fin, &rep, "complete upload", d);
	if (err == SM_OK)
		err = s3_body_error(&body, "completing", key, d); /* a 200 may carry an <Error> */
	if (err == SM_ENOENT) {
		/* NoSuchUpload on a retry: the attempt that timed out may have
		 * completed it; the object of the right size and parts says so */
		struct s3_call head = { .method = "HEAD", .key = full };
		struct sm_diag hd;
		char suffix[32];
		snprintf(suffix, sizeof(suffix), "-%" PRIu64 "\"", nparts);
		if (s3_do(s, &head, &rep, "stat", &hd) == SM_OK && rep.content_length == size &&
		    strlen(rep.etag) > strlen(suffix) &&
		    strcmp(rep.etag + strlen(rep.etag) - strlen(suffix), suffix) == 0) {
			sm_buf_release(&body);
			goto out;
		}
	}
	sm_buf_release(&body);
	if (err != SM_OK)
		goto fail;
	goto out;
fail:
	s3_abort_upload(s, full, upload_id);
out:
	for (int i = 0; i < nwin; i++)
		free(parts[i].buf);
	if (s->pool)
		sm_pool_unreserve(s->pool, (size_t)reserved * part);
	free(etags);
	sm_buf_release(&done);
	return err;
}

static enum sm_err s3_put(struct sm_store *st, const char *key, struct sm_reader *r,
                          const struct sm_put *p, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	char *full = s3_full(s, key);
	if (!full)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err;
	uint64_t size = r->size;
	if (size != UINT64_MAX && size > S3_SINGLE_MAX) {
		err = s3_put_multipart(s, full, key, r, size, p, d);
		goto out;
	}
	if (s->loc.https && size != UINT64_MAX && size > 0) {
		/* one unsigned PUT streamed from the reader; a failed attempt is
		 * retried by the caller, which opens the source again */
		char mt[48];
		struct s3_call call = { .method = "PUT",
			                .key = full,
			                .reader = r,
			                .reader_len = size,
			                .reader_finish = (p->flags & SM_PUT_CHECK) != 0,
			                .payload_hash = s3_body_hash(s) };
		s3_new_object_headers(s, &call, p, r->meta, mt, sizeof(mt));
		struct sm_http_req rep;
		err = s3_do(s, &call, &rep, "write", d);
		goto out;
	}
	/* small (or of unknown size): into memory, hashed, one PUT; its
	 * bytes come out of the pool's budget (waiting for them) */
	size_t held = size == UINT64_MAX ? S3_SINGLE_MAX : (size_t)size;
	sm_pool_reserve_wait(s->pool, held, r->pool_held);
	struct sm_buf data = { .limit = S3_SINGLE_MAX + 1 };
	char tmp[64 << 10];
	err = SM_OK;
	for (;;) {
		size_t got = 0;
		err = sm_reader_read(r, tmp, sizeof(tmp), &got, d);
		if (err != SM_OK || got == 0)
			break;
		if (sm_buf_append(&data, tmp, got) != SM_OK) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "'%s' grew past %u bytes while its size was unknown", key,
			                  S3_SINGLE_MAX);
			break;
		}
	}
	if (err == SM_OK && size != UINT64_MAX && data.len != size)
		err = sm_diag_set(d, SM_ECHANGED, 0, "'%s' has %zu bytes, %" PRIu64 " were listed",
		                  key, data.len, size);
	if (err == SM_OK && (p->flags & SM_PUT_CHECK))
		err = sm_reader_finish(r, d);
	if (err == SM_OK)
		err = s3_put_single(s, full, data.p ? data.p : "", data.len, p, r->meta, d);
	sm_buf_release(&data);
	if (s->pool)
		sm_pool_unreserve(s->pool, held);
out:
	free(full);
	return err;
}

static enum sm_err s3_del(struct sm_store *st, const char *key, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	char *full = s3_full(s, key);
	if (!full)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	struct s3_call call = { .method = "DELETE", .key = full };
	struct sm_http_req rep;
	enum sm_err err = s3_do(s, &call, &rep, "delete", d);
	free(full);
	return err == SM_ENOENT ? SM_OK : err; /* absent = deleted */
}

/* ---- DeleteObjects ---- */

struct s3_del_ctx {
	char **full;         /* the batch's object keys */
	bool *seen;          /* named in the reply already */
	struct sm_diag *why; /* n, made at the first failure: why each was not deleted */
	size_t n;
	bool nomem;
};

/* A key the reply says was not deleted. */
static bool s3_del_failed(void *arg, const char *key, const struct sm_s3_error *e)
{
	struct s3_del_ctx *c = arg;
	size_t i = 0;
	while (i < c->n && (c->seen[i] || strcmp(c->full[i], key) != 0))
		i++;
	if (i == c->n)
		return false; /* not asked for */
	c->seen[i] = true;
	if (strcmp(e->code, "NoSuchKey") == 0)
		return true; /* absent = deleted */
	if (!c->why && !(c->why = calloc(c->n, sizeof(*c->why)))) {
		c->nomem = true;
		return false;
	}
	bool transient = strcmp(e->code, "InternalError") == 0 ||
	                 strcmp(e->code, "SlowDown") == 0 ||
	                 strcmp(e->code, "ServiceUnavailable") == 0;
	sm_diag_set(&c->why[i],
	            transient                              ? SM_EAGAIN
	            : strcmp(e->code, "AccessDenied") == 0 ? SM_EACCES
	                                                   : SM_EIO,
	            0, "s3: delete '%s': %s%s%s", key, e->code[0] ? e->code : "refused",
	            e->message[0] ? ": " : "", e->message);
	return true;
}

/* Up to 1000 keys in one POST ?delete (Quiet: the reply lists failures). */
static enum sm_err s3_del_many(struct sm_store *st, const char *const *keys, size_t n,
                               sm_del_done_fn done, void *arg, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	struct s3_del_ctx c = { .n = n };
	struct sm_buf body = { 0 }, reply = { .limit = S3_REPLY_MAX };
	enum sm_err err = SM_ENOMEM;
	c.full = calloc(n, sizeof(*c.full));
	c.seen = calloc(n, sizeof(*c.seen));
	bool *alone = calloc(n, sizeof(*alone)); /* keys XML cannot carry */
	size_t in_body = 0;
	if (!c.full || !c.seen || !alone || sm_buf_appendz(&body, "<Delete><Quiet>true</Quiet>"))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!(c.full[i] = s3_full(s, keys[i])))
			goto out;
		size_t mark = body.len;
		if (sm_buf_appendz(&body, "<Object><Key>"))
			goto out;
		enum sm_err e = sm_xml_escape(&body, c.full[i]);
		if (e == SM_EINVAL) {
			body.len = mark;
			alone[i] = c.seen[i] = true;
			continue;
		}
		if (e != SM_OK || sm_buf_appendz(&body, "</Key></Object>"))
			goto out;
		in_body++;
	}
	if (sm_buf_appendz(&body, "</Delete>"))
		goto out;
	if (in_body) {
		/* DeleteObjects wants a Content-MD5 of the body */
		unsigned char md5[EVP_MAX_MD_SIZE];
		unsigned int mlen = 0;
		char md5b64[32];
		if (!EVP_Digest(body.p, body.len, md5, &mlen, EVP_md5(), NULL))
			goto out;
		EVP_EncodeBlock((unsigned char *)md5b64, md5, (int)mlen);
		struct s3_call call = {
			.method = "POST", .body = body.p, .body_len = body.len, .resp = &reply
		};
		call.query[call.nq++] = (struct sm_kv){ "delete", "" };
		call.extra[call.nx++] = (struct sm_kv){ "content-md5", md5b64 };
		struct sm_http_req rep;
		err = s3_do(s, &call, &rep, "delete", d);
		if (err == SM_OK)
			err = sm_s3_parse_delete(reply.p, reply.len, s3_del_failed, &c, d);
		if (c.nomem)
			err = SM_ENOMEM;
		if (err != SM_OK)
			goto out;
	}
	err = SM_OK;
	for (size_t i = 0; i < n; i++) {
		if (alone[i]) { /* a DELETE of its own */
			struct sm_diag kd;
			enum sm_err e = s3_del(st, keys[i], &kd);
			done(arg, i, e, e == SM_OK ? NULL : &kd);
		} else if (c.why && c.why[i].err != SM_OK) {
			done(arg, i, c.why[i].err, &c.why[i]);
		} else {
			done(arg, i, SM_OK, NULL);
		}
	}
out:
	if (err == SM_ENOMEM)
		sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	for (size_t i = 0; c.full && i < n; i++)
		free(c.full[i]);
	free(c.full);
	free(c.seen);
	free(c.why);
	free(alone);
	sm_buf_release(&body);
	sm_buf_release(&reply);
	return err;
}

/* --dirs: a zero-byte "dir/" marker object. */
static enum sm_err s3_mkdir(struct sm_store *st, const char *key, const struct sm_put *p,
                            struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	if (!sm_key_is_dir(key) || !strcmp(key, "/"))
		return SM_OK;
	char *full = s3_full(s, key);
	if (!full)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err = s3_put_single(s, full, "", 0, p, NULL, d);
	free(full);
	return err;
}

static bool s3_same_service(const struct s3_store *a, const struct s3_store *b)
{
	if (strcmp(a->loc.endpoint, b->loc.endpoint) != 0 || a->loc.https != b->loc.https)
		return false;
	if (!a->loc.access_key || !b->loc.access_key)
		return !a->loc.access_key && !b->loc.access_key;
	return strcmp(a->loc.access_key, b->loc.access_key) == 0 &&
	       strcmp(a->loc.secret_key, b->loc.secret_key) == 0;
}

static enum sm_err s3_copy(struct sm_store *st, const char *key, struct sm_store *srcst,
                           const char *src_key, const struct sm_entry *se, const struct sm_put *p,
                           struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st), *o = s3_priv(srcst);
	if (!s3_same_service(s, o) || sm_key_is_dir(key) || !S_ISREG(se->mode))
		return SM_ENOTSUP;
	char *full = s3_full(s, key), *sfull = s3_full(o, src_key);
	struct sm_buf srcref = { 0 }, body = { .limit = S3_REPLY_MAX };
	struct sm_meta *meta = malloc(sizeof(*meta));
	enum sm_err err = SM_ENOMEM;
	if (!full || !sfull || !meta || sm_buf_append(&srcref, "/", 1) ||
	    sm_sigv4_encode(&srcref, o->loc.bucket, false) || sm_buf_append(&srcref, "/", 1) ||
	    sm_sigv4_encode(&srcref, sfull, true) || sm_buf_append(&srcref, "", 0)) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	/* The source's ETag, mtime and metadata (issue 21): the copy is pinned
	 * to the ETag (a source replaced meanwhile fails with 412 instead of
	 * mixing two versions) and keeps the source's x-amz-meta-mtime, or
	 * gets the source's upload time (Last-Modified) where it has none,
	 * not the time of the copy. */
	struct sm_http_req rep;
	struct s3_call head = { .method = "HEAD", .key = sfull, .meta_out = meta };
	err = s3_do(o, &head, &rep, "stat copy source", d);
	if (err != SM_OK)
		goto out;
	char src_etag[128];
	sm_strlcpy(src_etag, rep.etag, sizeof(src_etag));
	if (!src_etag[0] || rep.content_length != se->size) {
		err = sm_diag_set(d, SM_ECHANGED, 0, "'%s' changed before it was copied (%s)",
		                  src_key, src_etag[0] ? "other size" : "no ETag");
		goto out;
	}
	int64_t src_mt = 0, up = s3_http_mtime(rep.last_modified);
	bool has_src_mt = s3_meta_mtime(rep.meta_mtime, &src_mt);
	struct sm_put np = *p;
	np.mtime_ns = has_src_mt ? src_mt : up ? up : se->mtime_ns;
	np.flags |= SM_PUT_MTIME;
	char mt[48];
	if (se->size <= s->copy_single_max) {
		/* CopyObject keeps the source's metadata, its mtime with it; to
		 * give the copy another mtime it replaces all of it: the
		 * source's headers and user metadata are sent again */
		struct s3_call call = { .method = "PUT", .key = full, .resp = &body };
		call.extra[call.nx++] = (struct sm_kv){ "x-amz-copy-source", srcref.p };
		call.extra[call.nx++] = (struct sm_kv){ "x-amz-copy-source-if-match", src_etag };
		if (!has_src_mt) {
			call.extra[call.nx++] =
			        (struct sm_kv){ "x-amz-metadata-directive", "REPLACE" };
			s3_new_object_headers(s, &call, &np, meta, mt, sizeof(mt));
		} else if (s->storage_class) {
			call.extra[call.nx++] =
			        (struct sm_kv){ "x-amz-storage-class", s->storage_class };
		}
		err = s3_do(s, &call, &rep, "copy", d);
		if (err == SM_OK)
			err = s3_body_error(&body, "copy", key, d);
		goto out;
	}
	/* Beyond 5 GiB: a multipart upload of copied ranges, each pinned to
	 * the ETag; the upload is begun with the source's metadata. */
	struct s3_call init = { .method = "POST", .key = full, .resp = &body };
	init.query[init.nq++] = (struct sm_kv){ "uploads", "" };
	s3_new_object_headers(s, &init, &np, meta, mt, sizeof(mt));
	err = s3_do(s, &init, &rep, "start copy", d);
	char upload_id[512];
	if (err == SM_OK && (sm_buf_append(&body, "", 0) != SM_OK ||
	                     !s3_xml_tag(&body, "UploadId", upload_id, sizeof(upload_id))))
		err = sm_diag_set(d, SM_EIO, 0, "s3: no UploadId for '%s'", key);
	if (err != SM_OK)
		goto out;
	struct sm_buf done = { 0 };
	sm_buf_appendz(&done, "<CompleteMultipartUpload>");
	uint64_t nparts = (se->size + s->copy_part - 1) / s->copy_part;
	for (uint64_t i = 0; i < nparts && err == SM_OK; i++) {
		char num[24], range[80], etag[256], part_xml[400];
		uint64_t a = i * s->copy_part, b = a + s->copy_part - 1;
		if (b >= se->size)
			b = se->size - 1;
		snprintf(num, sizeof(num), "%" PRIu64, i + 1);
		snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, a, b);
		if (p->stop && atomic_load(p->stop)) {
			err = sm_diag_set(d, SM_ECANCELED, 0, "'%s': stopped midway", key);
			break;
		}
		body.len = 0;
		struct s3_call pc = { .method = "PUT", .key = full, .resp = &body };
		pc.query[pc.nq++] = (struct sm_kv){ "partNumber", num };
		pc.query[pc.nq++] = (struct sm_kv){ "uploadId", upload_id };
		pc.extra[pc.nx++] = (struct sm_kv){ "x-amz-copy-source", srcref.p };
		pc.extra[pc.nx++] = (struct sm_kv){ "x-amz-copy-source-range", range };
		pc.extra[pc.nx++] = (struct sm_kv){ "x-amz-copy-source-if-match", src_etag };
		err = s3_do(s, &pc, &rep, "copy part", d);
		if (err == SM_OK && (sm_buf_append(&body, "", 0) != SM_OK ||
		                     !s3_xml_tag(&body, "ETag", etag, sizeof(etag))))
			err = sm_diag_set(d, SM_EIO, 0, "s3: no ETag for part %s of '%s'", num,
			                  key);
		if (err == SM_OK) {
			snprintf(part_xml, sizeof(part_xml),
			         "<Part><PartNumber>%s</PartNumber><ETag>%s</ETag></Part>", num,
			         etag);
			if (sm_buf_appendz(&done, part_xml) != SM_OK)
				err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		if (err == SM_OK && p->progress)
			__atomic_fetch_add(p->progress, b - a + 1, __ATOMIC_RELAXED);
	}
	if (err == SM_OK && sm_buf_appendz(&done, "</CompleteMultipartUpload>") != SM_OK)
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	if (err == SM_OK) {
		body.len = 0;
		struct s3_call fin = { .method = "POST",
			               .key = full,
			               .body = done.p,
			               .body_len = done.len,
			               .resp = &body };
		fin.query[fin.nq++] = (struct sm_kv){ "uploadId", upload_id };
		err = s3_do(s, &fin, &rep, "complete copy", d);
		if (err == SM_OK)
			err = s3_body_error(&body, "complete copy", key, d);
	}
	if (err != SM_OK)
		s3_abort_upload(s, full, upload_id);
	sm_buf_release(&done);
out:
	sm_buf_release(&srcref);
	sm_buf_release(&body);
	free(meta);
	free(full);
	free(sfull);
	return err;
}

/* ---- what interrupted runs left ---- */

struct s3_stale {
	int64_t before;
	char **keys; /* full keys and upload ids, in pairs */
	size_t n;
	size_t cap;
	bool nomem;
};

static bool s3_stale_add(void *arg, const char *key, const char *id, int64_t initiated)
{
	struct s3_stale *st = arg;
	if (!initiated || initiated >= st->before)
		return true; /* begun after this run started, or no time: not ours to judge */
	if (st->n + 2 > st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 32;
		char **k = realloc(st->keys, cap * sizeof(*k));
		if (!k) {
			st->nomem = true;
			return false;
		}
		st->keys = k;
		st->cap = cap;
	}
	st->keys[st->n] = strdup(key);
	st->keys[st->n + 1] = strdup(id);
	if (!st->keys[st->n] || !st->keys[st->n + 1]) {
		free(st->keys[st->n]);
		free(st->keys[st->n + 1]);
		st->nomem = true;
		return false;
	}
	st->n += 2;
	return true;
}

/* Multipart uploads under the prefix begun before `before_ns` (by a run that
 * was killed): counted, and aborted when `remove`. */
static enum sm_err s3_sweep(struct sm_store *st, int64_t before_ns, bool remove, uint64_t *found,
                            struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	/* the bucket's root holds other writers' uploads too: only old ones */
	if (!*s->loc.prefix)
		before_ns -= 24 * 3600 * INT64_C(1000000000);
	struct s3_stale stale = { .before = before_ns };
	struct sm_s3_uploads_page pg = { 0 };
	enum sm_err err = SM_OK;
	for (int pages = 0; pages < 1000; pages++) {
		struct sm_buf body = { .limit = S3_REPLY_MAX };
		struct s3_call call = { .method = "GET", .resp = &body };
		call.query[call.nq++] = (struct sm_kv){ "uploads", "" };
		if (*s->loc.prefix)
			call.query[call.nq++] = (struct sm_kv){ "prefix", s->loc.prefix };
		char km[sizeof(pg.next_key)], um[sizeof(pg.next_upload)];
		if (pages > 0) {
			sm_strlcpy(km, pg.next_key, sizeof(km));
			sm_strlcpy(um, pg.next_upload, sizeof(um));
			call.query[call.nq++] = (struct sm_kv){ "key-marker", km };
			call.query[call.nq++] = (struct sm_kv){ "upload-id-marker", um };
		}
		struct sm_http_req rep;
		err = s3_do(s, &call, &rep, "list uploads", d);
		if (err == SM_OK)
			err = sm_s3_parse_uploads(body.p, body.len, s3_stale_add, &stale, &pg, d);
		sm_buf_release(&body);
		if (err == SM_OK && stale.nomem)
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		if (err != SM_OK || !pg.truncated || !pg.next_key[0] ||
		    (pages > 0 && strcmp(pg.next_key, km) == 0 && strcmp(pg.next_upload, um) == 0))
			break; /* the end, or markers that do not advance */
	}
	for (size_t i = 0; i + 1 < stale.n; i += 2) {
		if (remove && err == SM_OK)
			s3_abort_upload(s, stale.keys[i], stale.keys[i + 1]);
		free(stale.keys[i]);
		free(stale.keys[i + 1]);
	}
	free(stale.keys);
	if (err == SM_OK)
		*found = stale.n / 2;
	return err;
}

const struct sm_store_ops sm_s3_ops = {
	.scheme = "s3",
	.caps = 0,
	.priv_size = sizeof(struct s3_store),
	.open = s3_open,
	.close = s3_close,
	.list_begin = s3_list_begin,
	.list_next = s3_list_next,
	.list_end = s3_list_end,
	.stat = s3_stat,
	.open_read = s3_open_read,
	.put = s3_put,
	.del = s3_del,
	.del_many = s3_del_many,
	.mkdir = s3_mkdir,
	.copy = s3_copy,
	.sweep = s3_sweep,
};
