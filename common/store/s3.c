/*
 * S3-compatible object storage backend.
 *
 * Keys are object names below the URL's prefix. Listing is ListObjectsV2
 * (start-after, continuation tokens, encoding-type=url), which returns keys
 * in the same byte order every store uses. Reads are ranged GETs of
 * S3_CHUNK bytes pinned to the first reply's ETag (If-Match), so an object
 * replaced mid-read fails instead of mixing versions. Objects up to
 * S3_SINGLE_MAX are one PUT with a real payload SHA-256; larger ones are
 * multipart uploads, completed only when every part succeeded and aborted
 * otherwise. SRC mtimes travel in x-amz-meta-mtime. Every request is signed
 * anew (SigV4) for each attempt; 5xx, 429, SlowDown and transport errors are
 * retried with exponential backoff and jitter.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../log.h"
#include "../util.h"
#include "http.h"
#include "s3url.h"
#include "sigv4.h"
#include "store.h"
#include "xml.h"

#define S3_CHUNK (16u << 20)      /* bytes per ranged GET */
#define S3_SINGLE_MAX (32u << 20) /* larger objects go multipart */
#define S3_PART_MIN (16u << 20)
#define S3_MAX_PARTS 10000
#define S3_ATTEMPTS 6
#define S3_REPLY_MAX (16u << 20)        /* XML replies */
#define S3_COPY_SINGLE_MAX (5ull << 30) /* CopyObject's limit; UploadPartCopy above */
#define S3_COPY_PART (512ull << 20)

struct s3_store {
	struct sm_s3_loc loc;
	struct sm_http *http;
	char host[512];
	char base[600];       /* scheme://host */
	char bucket_uri[600]; /* "/bucket" (path style) or "" */
	const char *storage_class;
};

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
	struct sm_kv extra[6]; /* extra signed headers */
	size_t nx;
	const void *body;
	size_t body_len;
	const char *payload_hash; /* NULL: SHA-256 of body */
	struct sm_buf *resp;
	size_t (*sink)(void *arg, const void *data, size_t n);
	void *sink_arg;
	bool no_retry; /* e.g. a sink that already received bytes */
};

/* Map an S3 error reply to an sm_err with the message users need. */
static enum sm_err s3_reply_err(struct s3_store *s, long status, const struct sm_buf *body,
                                const char *what, const char *key, struct sm_diag *d)
{
	struct sm_s3_error e = { 0 };
	if (body && body->len)
		sm_s3_parse_error(body->p, body->len, &e);
	const char *code = e.code[0] ? e.code : NULL;
	const char *k = key ? key : "";
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
		return sm_diag_set(d, SM_ENOENT, (int)status, "s3: NoSuchBucket: bucket '%s' on %s",
		                   s->loc.bucket, s->loc.endpoint);
	if (status == 404 || (code && strcmp(code, "NoSuchKey") == 0))
		return sm_diag_set(d, SM_ENOENT, (int)status, "s3: %s '%s': no such key", what, k);
	if (status == 403)
		return sm_diag_set(d, SM_EACCES, (int)status, "s3: %s '%s': %s%s%s", what, k,
		                   code ? code : "403 Forbidden", e.message[0] ? ": " : "",
		                   e.message);
	if (status == 412)
		return sm_diag_set(d, SM_ECHANGED, (int)status,
		                   "s3: '%s' changed while it was read (ETag mismatch)", k);
	enum sm_err kind =
	        (status >= 500 || status == 429 || (code && strcmp(code, "SlowDown") == 0))
	                ? SM_EAGAIN
	                : SM_EIO;
	return sm_diag_set(d, kind, (int)status, "s3: %s '%s': HTTP %ld%s%s%s%s", what, k, status,
	                   code ? " " : "", code ? code : "", e.message[0] ? ": " : "", e.message);
}

static bool s3_retryable(enum sm_err e)
{
	return e == SM_EAGAIN;
}

/* Build, sign and send one call, retrying transient failures. *out gets
 * the reply of the last attempt (status 2xx on SM_OK). */
static enum sm_err s3_do(struct s3_store *s, struct s3_call *c, struct sm_http_req *out,
                         const char *what, struct sm_diag *d)
{
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
	for (int attempt = 1;; attempt++) {
		char date[17];
		sm_sigv4_date((int64_t)time(NULL), date);
		struct sm_kv hdrs[12];
		size_t nh = 0;
		hdrs[nh++] = (struct sm_kv){ "host", s->host };
		hdrs[nh++] = (struct sm_kv){ "x-amz-date", date };
		hdrs[nh++] = (struct sm_kv){ "x-amz-content-sha256", ph };
		if (s->loc.token)
			hdrs[nh++] = (struct sm_kv){ "x-amz-security-token", s->loc.token };
		for (size_t i = 0; i < c->nx; i++)
			hdrs[nh++] = c->extra[i];
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
			                     .resp = capture ? &errbody : c->resp,
			                     .sink = c->sink,
			                     .sink_arg = c->sink_arg };
		if (c->resp)
			c->resp->len = 0;
		err = sm_http_do(s->http, out, d);
		if (err == SM_OK && out->status / 100 != 2) {
			err = s3_reply_err(s, out->status, capture ? &errbody : c->resp, what,
			                   c->key, d);
		}
		sm_buf_release(&errbody);
		if (err == SM_OK || !s3_retryable(err) || c->no_retry || attempt >= S3_ATTEMPTS)
			break;
		unsigned ms = 100u << (attempt - 1);
		ms += (unsigned)(sm_rand64() % (ms / 2 + 1));
		sm_log(SM_LOG_INFO, "retrying %s (attempt %d): %s", what, attempt + 1, d->msg);
		sm_sleep_ms(ms);
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

static int64_t s3_meta_mtime(const char *v)
{
	if (!v || !*v)
		return 0;
	char *end = NULL;
	long long sec = strtoll(v, &end, 10);
	int64_t ns = 0;
	if (end && *end == '.') {
		int64_t scale = 100000000;
		for (const char *p = end + 1; *p >= '0' && *p <= '9' && scale; p++, scale /= 10)
			ns += (*p - '0') * scale;
	}
	return (int64_t)sec * 1000000000 + ns;
}

static int64_t s3_http_mtime(const char *v)
{
	struct tm tm = { 0 };
	if (!v || !*v || !strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm))
		return 0;
	return (int64_t)timegm(&tm) * 1000000000;
}

/* ---- open / close ---- */

static enum sm_err s3_open(struct sm_store *st, const struct sm_url *u,
                           const struct sm_store_cfg *cfg, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	enum sm_err err = sm_s3_loc_parse(u->path, !cfg->no_https, &s->loc, d);
	if (err != SM_OK)
		return err;
	s->storage_class = cfg->storage_class;
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
	return sm_http_new(&hc, &s->http, d);
}

static void s3_close(struct sm_store *st)
{
	struct s3_store *s = s3_priv(st);
	if (!s)
		return;
	sm_http_free(s->http);
	sm_s3_loc_release(&s->loc);
}

/* ---- listing ---- */

struct s3_cursor {
	struct s3_store *s;
	char *after;       /* store key: keys up to it are skipped here */
	char *start_after; /* full key sent to the server: valid UTF-8 */
	char *last;        /* store key, or NULL */
	char *token;
	struct sm_s3_list_page page;
	size_t idx;
	bool more;
	struct sm_entry ent;
	bool fetched;
};

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
		free(c->after);
		free(c->start_after);
		free(c->last);
		free(c);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	*out = c;
	return SM_OK;
}

static enum sm_err s3_list_page(struct s3_cursor *c, struct sm_diag *d)
{
	struct s3_store *s = c->s;
	struct sm_buf body = { .limit = S3_REPLY_MAX };
	struct s3_call call = { .method = "GET", .resp = &body };
	call.query[call.nq++] = (struct sm_kv){ "list-type", "2" };
	call.query[call.nq++] = (struct sm_kv){ "encoding-type", "url" };
	call.query[call.nq++] = (struct sm_kv){ "max-keys", "1000" };
	if (*s->loc.prefix)
		call.query[call.nq++] = (struct sm_kv){ "prefix", s->loc.prefix };
	if (c->token)
		call.query[call.nq++] = (struct sm_kv){ "continuation-token", c->token };
	else if (*c->start_after)
		call.query[call.nq++] = (struct sm_kv){ "start-after", c->start_after };
	struct sm_http_req rep;
	enum sm_err err = s3_do(s, &call, &rep, "list", d);
	sm_s3_list_page_release(&c->page);
	c->idx = 0;
	if (err == SM_OK)
		err = sm_s3_parse_list(body.p, body.len, &c->page, d);
	sm_buf_release(&body);
	if (err != SM_OK)
		return err;
	free(c->token);
	c->token = NULL;
	c->more = c->page.truncated;
	if (c->more && !(c->token = strdup(c->page.next_token)))
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	c->fetched = true;
	return SM_OK;
}

static enum sm_err s3_list_next(void *cur, const struct sm_entry **out, struct sm_diag *d)
{
	struct s3_cursor *c = cur;
	size_t plen = strlen(c->s->loc.prefix);
	for (;;) {
		if (c->idx == c->page.n) {
			if (!c->more)
				return SM_EOF;
			enum sm_err err = s3_list_page(c, d);
			if (err != SM_OK)
				return err;
			continue;
		}
		struct sm_s3_object *o = &c->page.objs[c->idx++];
		if (strncmp(o->key, c->s->loc.prefix, plen) != 0)
			continue; /* not below our prefix (servers that ignore it) */
		const char *key = o->key + plen;
		if (!*key || strcmp(key, c->after) <= 0)
			continue; /* the prefix's own marker, or before the range */
		if (c->last && strcmp(key, c->last) > 0) {
			c->more = false;
			c->idx = c->page.n;
			return SM_EOF;
		}
		bool dir = key[strlen(key) - 1] == '/';
		c->ent = (struct sm_entry){ .key = (char *)key,
			                    .size = dir ? 0 : o->size,
			                    .mtime_ns = o->mtime_ns,
			                    .mode = dir ? (S_IFDIR | 0755) : (S_IFREG | 0644) };
		*out = &c->ent;
		return SM_OK;
	}
}

static void s3_list_end(void *cur)
{
	struct s3_cursor *c = cur;
	if (!c)
		return;
	sm_s3_list_page_release(&c->page);
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
	bool dir = sm_key_is_dir(key);
	int64_t mt = s3_meta_mtime(rep.meta_mtime);
	*out = (struct sm_entry){ .size = dir ? 0 : rep.content_length,
		                  .mtime_ns = mt ? mt : s3_http_mtime(rep.last_modified),
		                  .mode = dir ? (S_IFDIR | 0755) : (S_IFREG | 0644) };
	return SM_OK;
}

/* ---- reading: ranged GETs ---- */

struct s3_reader {
	struct sm_reader base;
	struct s3_store *s;
	char *key;    /* full key */
	uint64_t pos; /* next byte to fetch */
	uint64_t end; /* object size */
	struct sm_buf buf;
	size_t bufpos;
	char etag[128];
};

static enum sm_err s3r_fetch(struct s3_reader *r, struct sm_diag *d)
{
	char range[64];
	uint64_t hi = r->pos + S3_CHUNK - 1;
	if (r->end != UINT64_MAX && hi >= r->end)
		hi = r->end - 1;
	snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, r->pos, hi);
	r->buf.len = 0;
	r->bufpos = 0;
	struct s3_call call = { .method = "GET", .key = r->key, .resp = &r->buf };
	call.extra[call.nx++] = (struct sm_kv){ "range", range };
	if (r->etag[0])
		call.extra[call.nx++] = (struct sm_kv){ "if-match", r->etag };
	struct sm_http_req rep;
	enum sm_err err = s3_do(r->s, &call, &rep, "read", d);
	if (err == SM_EIO && rep.status == 416 && r->pos == 0) {
		r->end = 0; /* an empty object */
		r->buf.len = 0;
		return SM_OK;
	}
	if (err != SM_OK)
		return err;
	if (!r->etag[0])
		sm_strlcpy(r->etag, rep.etag, sizeof(r->etag));
	if (r->end == UINT64_MAX) {
		if (rep.status == 206 && rep.has_range_total)
			r->end = rep.range_total;
		else
			r->end = r->pos + r->buf.len; /* 200: the whole object */
		r->base.size = r->end;
		int64_t mt = s3_meta_mtime(rep.meta_mtime);
		if (mt)
			r->base.mtime_ns = mt;
	}
	r->pos += r->buf.len;
	return SM_OK;
}

static enum sm_err s3r_read(struct sm_reader *rd, void *buf, size_t cap, size_t *got,
                            struct sm_diag *d)
{
	struct s3_reader *r = (struct s3_reader *)rd;
	if (r->bufpos == r->buf.len) {
		if (r->pos >= r->end) {
			*got = 0;
			return SM_OK;
		}
		enum sm_err err = s3r_fetch(r, d);
		if (err != SM_OK)
			return err;
		if (r->buf.len == 0) {
			*got = 0;
			return SM_OK;
		}
	}
	size_t n = r->buf.len - r->bufpos;
	if (n > cap)
		n = cap;
	memcpy(buf, r->buf.p + r->bufpos, n);
	r->bufpos += n;
	*got = n;
	return SM_OK;
}

static void s3r_close(struct sm_reader *rd)
{
	struct s3_reader *r = (struct s3_reader *)rd;
	sm_buf_release(&r->buf);
	free(r->key);
	free(r);
}

static const struct sm_reader_ops s3_reader_ops = { .read = s3r_read, .close = s3r_close };

static enum sm_err s3_open_read(struct sm_store *st, const char *key, uint64_t off,
                                struct sm_reader **out, struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st);
	struct s3_reader *r = calloc(1, sizeof(*r));
	if (!r || !(r->key = s3_full(s, key))) {
		free(r);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	r->base.ops = &s3_reader_ops;
	r->base.size = UINT64_MAX;
	r->s = s;
	r->pos = off;
	r->end = UINT64_MAX;
	r->buf.limit = S3_CHUNK + 1;
	/* the first range now: the size, ETag and mtime are known from here on */
	enum sm_err err = s3r_fetch(r, d);
	if (err != SM_OK) {
		s3r_close(&r->base);
		return err;
	}
	if (r->base.size != UINT64_MAX && r->base.size >= off)
		r->base.size -= off;
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

static enum sm_err s3_put_single(struct s3_store *s, const char *full, const char *key,
                                 const char *data, size_t len, const struct sm_put *p,
                                 struct sm_diag *d)
{
	char mt[48];
	s3_mtime_header(p, mt, sizeof(mt));
	struct s3_call call = { .method = "PUT", .key = full, .body = data, .body_len = len };
	if (p->flags & SM_PUT_MTIME)
		call.extra[call.nx++] = (struct sm_kv){ "x-amz-meta-mtime", mt };
	if (s->storage_class)
		call.extra[call.nx++] = (struct sm_kv){ "x-amz-storage-class", s->storage_class };
	struct sm_http_req rep;
	(void)key;
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

static enum sm_err s3_put_multipart(struct s3_store *s, const char *full, const char *key,
                                    struct sm_reader *r, uint64_t size, const struct sm_put *p,
                                    struct sm_diag *d)
{
	uint64_t part = S3_PART_MIN;
	while ((size + part - 1) / part > S3_MAX_PARTS)
		part *= 2;
	uint64_t nparts = (size + part - 1) / part;
	char mt[48];
	s3_mtime_header(p, mt, sizeof(mt));
	struct sm_buf body = { .limit = S3_REPLY_MAX };
	struct s3_call init = { .method = "POST", .key = full, .resp = &body };
	init.query[init.nq++] = (struct sm_kv){ "uploads", "" };
	if (p->flags & SM_PUT_MTIME)
		init.extra[init.nx++] = (struct sm_kv){ "x-amz-meta-mtime", mt };
	if (s->storage_class)
		init.extra[init.nx++] = (struct sm_kv){ "x-amz-storage-class", s->storage_class };
	struct sm_http_req rep;
	enum sm_err err = s3_do(s, &init, &rep, "start upload", d);
	char upload_id[512];
	if (err == SM_OK && (sm_buf_append(&body, "", 0) != SM_OK ||
	                     !s3_xml_tag(&body, "UploadId", upload_id, sizeof(upload_id))))
		err = sm_diag_set(d, SM_EIO, 0, "s3: no UploadId for '%s'", key);
	sm_buf_release(&body);
	if (err != SM_OK)
		return err;
	char *buf = malloc(part);
	struct sm_buf done = { 0 };
	if (!buf || sm_buf_appendz(&done, "<CompleteMultipartUpload>") != SM_OK) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	for (uint64_t i = 0; i < nparts; i++) {
		size_t n = (size_t)(i + 1 < nparts ? part : size - i * part);
		err = s3_fill(r, buf, n, key, d);
		if (err != SM_OK)
			goto fail;
		char num[24];
		snprintf(num, sizeof(num), "%" PRIu64, i + 1);
		struct s3_call pc = { .method = "PUT", .key = full, .body = buf, .body_len = n };
		pc.query[pc.nq++] = (struct sm_kv){ "partNumber", num };
		pc.query[pc.nq++] = (struct sm_kv){ "uploadId", upload_id };
		err = s3_do(s, &pc, &rep, "write part", d);
		if (err != SM_OK)
			goto fail;
		char part_xml[256];
		snprintf(part_xml, sizeof(part_xml),
		         "<Part><PartNumber>%s</PartNumber><ETag>%s</ETag></Part>", num, rep.etag);
		if (sm_buf_appendz(&done, part_xml) != SM_OK) {
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto fail;
		}
	}
	if (p->flags & SM_PUT_CHECK) {
		err = sm_reader_finish(r, d);
		if (err != SM_OK)
			goto fail;
	}
	if (sm_buf_appendz(&done, "</CompleteMultipartUpload>") != SM_OK) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	body = (struct sm_buf){ .limit = S3_REPLY_MAX };
	struct s3_call fin = {
		.method = "POST", .key = full, .body = done.p, .body_len = done.len, .resp = &body
	};
	fin.query[fin.nq++] = (struct sm_kv){ "uploadId", upload_id };
	err = s3_do(s, &fin, &rep, "complete upload", d);
	if (err == SM_OK) {
		/* S3 may answer 200 with an <Error> body */
		struct sm_s3_error e;
		if (body.len && sm_s3_parse_error(body.p, body.len, &e))
			err = sm_diag_set(d, SM_EIO, 0, "s3: completing '%s': %s %s", key, e.code,
			                  e.message);
	}
	sm_buf_release(&body);
	if (err != SM_OK)
		goto fail;
	free(buf);
	sm_buf_release(&done);
	return SM_OK;
fail:
	s3_abort_upload(s, full, upload_id);
	free(buf);
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
	/* small (or of unknown size): into memory, hashed, one PUT */
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
		err = s3_put_single(s, full, key, data.p ? data.p : "", data.len, p, d);
	sm_buf_release(&data);
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
	enum sm_err err = s3_put_single(s, full, key, "", 0, p, d);
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

static enum sm_err s3_copy(struct sm_store *st, const char *key, struct sm_store *srcst,
                           const char *src_key, const struct sm_entry *se, const struct sm_put *p,
                           struct sm_diag *d)
{
	struct s3_store *s = s3_priv(st), *o = s3_priv(srcst);
	if (!s3_same_service(s, o) || sm_key_is_dir(key) || !S_ISREG(se->mode))
		return SM_ENOTSUP;
	(void)p; /* the source's metadata (x-amz-meta-mtime) is copied as it is */
	char *full = s3_full(s, key), *sfull = s3_full(o, src_key);
	struct sm_buf srcref = { 0 }, body = { .limit = S3_REPLY_MAX };
	enum sm_err err = SM_ENOMEM;
	if (!full || !sfull || sm_buf_append(&srcref, "/", 1) ||
	    sm_sigv4_encode(&srcref, o->loc.bucket, false) || sm_buf_append(&srcref, "/", 1) ||
	    sm_sigv4_encode(&srcref, sfull, true) || sm_buf_append(&srcref, "", 0)) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	struct sm_http_req rep;
	if (se->size <= S3_COPY_SINGLE_MAX) {
		struct s3_call call = { .method = "PUT", .key = full, .resp = &body };
		call.extra[call.nx++] = (struct sm_kv){ "x-amz-copy-source", srcref.p };
		if (s->storage_class)
			call.extra[call.nx++] =
			        (struct sm_kv){ "x-amz-storage-class", s->storage_class };
		err = s3_do(s, &call, &rep, "copy", d);
		if (err == SM_OK)
			err = s3_body_error(&body, "copy", key, d);
		goto out;
	}
	/* beyond 5 GiB: a multipart upload of copied ranges */
	struct s3_call init = { .method = "POST", .key = full, .resp = &body };
	init.query[init.nq++] = (struct sm_kv){ "uploads", "" };
	err = s3_do(s, &init, &rep, "start copy", d);
	char upload_id[512];
	if (err == SM_OK && (sm_buf_append(&body, "", 0) != SM_OK ||
	                     !s3_xml_tag(&body, "UploadId", upload_id, sizeof(upload_id))))
		err = sm_diag_set(d, SM_EIO, 0, "s3: no UploadId for '%s'", key);
	if (err != SM_OK)
		goto out;
	struct sm_buf done = { 0 };
	sm_buf_appendz(&done, "<CompleteMultipartUpload>");
	uint64_t nparts = (se->size + S3_COPY_PART - 1) / S3_COPY_PART;
	for (uint64_t i = 0; i < nparts && err == SM_OK; i++) {
		char num[24], range[80], etag[256], part_xml[400];
		uint64_t a = i * S3_COPY_PART, b = a + S3_COPY_PART - 1;
		if (b >= se->size)
			b = se->size - 1;
		snprintf(num, sizeof(num), "%" PRIu64, i + 1);
		snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, a, b);
		body.len = 0;
		struct s3_call pc = { .method = "PUT", .key = full, .resp = &body };
		pc.query[pc.nq++] = (struct sm_kv){ "partNumber", num };
		pc.query[pc.nq++] = (struct sm_kv){ "uploadId", upload_id };
		pc.extra[pc.nx++] = (struct sm_kv){ "x-amz-copy-source", srcref.p };
		pc.extra[pc.nx++] = (struct sm_kv){ "x-amz-copy-source-range", range };
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
	free(full);
	free(sfull);
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
	.mkdir = s3_mkdir,
	.copy = s3_copy,
};
