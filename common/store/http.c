#include "http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sm_http {
	struct sm_http_cfg cfg;
	pthread_mutex_t mu;
	CURL **idle;
	int n_idle;
	char *ca_file;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;

static void http_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum sm_err sm_http_new(const struct sm_http_cfg *cfg, struct sm_http **out, struct sm_diag *d)
{
	pthread_once(&http_once, http_global_init);
	struct sm_http *h = calloc(1, sizeof(*h));
	if (!h)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	h->cfg = *cfg;
	h->cfg.ca_file = NULL;
	if (cfg->ca_file && !(h->ca_file = strdup(cfg->ca_file))) {
		free(h);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	h->cfg.ca_file = h->ca_file;
	if (!h->cfg.connect_timeout_ms)
		h->cfg.connect_timeout_ms = 10000;
	if (!h->cfg.stall_seconds)
		h->cfg.stall_seconds = 30;
	if (!h->cfg.answer_seconds)
		h->cfg.answer_seconds = 10;
	if (!h->cfg.max_handles)
		h->cfg.max_handles = 64;
	h->idle = calloc((size_t)h->cfg.max_handles, sizeof(*h->idle));
	if (!h->idle) {
		free(h->ca_file);
		free(h);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	pthread_mutex_init(&h->mu, NULL);
	*out = h;
	return SM_OK;
}

void sm_http_free(struct sm_http *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n_idle; i++)
		curl_easy_cleanup(h->idle[i]);
	free(h->idle);
	free(h->ca_file);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* A handle with its connection still open when one is idle. */
static CURL *http_get(struct sm_http *h)
{
	CURL *c = NULL;
	pthread_mutex_lock(&h->mu);
	if (h->n_idle)
		c = h->idle[--h->n_idle];
	pthread_mutex_unlock(&h->mu);
	if (c)
		curl_easy_reset(c); /* keeps the connection cache */
	else
		c = curl_easy_init();
	return c;
}

static void http_put(struct sm_http *h, CURL *c)
{
	pthread_mutex_lock(&h->mu);
	if (h->n_idle < h->cfg.max_handles) {
		h->idle[h->n_idle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->mu);
	if (c)
		curl_easy_cleanup(c);
}

struct http_io {
	struct sm_http_req *r;
	size_t body_off;
	uint64_t sent;
	enum sm_err rerr; /* the reader's failure, if any */
	struct sm_diag rdiag;
	bool body_full; /* the response cap was hit */
	/* the first-byte timeout (answer_seconds) */
	bool answered;   /* a status line came */
	bool timed_out;  /* no answer in time: the transfer was aborted */
	double waited_s; /* since the request (or its last body byte) was sent */
	double t_sent;
	curl_off_t ul_seen;
	long answer_s;
};

static size_t http_read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct http_io *io = arg;
	struct sm_http_req *r = io->r;
	size_t cap = size * nitems;
	if (r->reader) {
		uint64_t left = r->reader_len - io->sent;
		if (left < cap)
			cap = (size_t)left;
		if (!cap)
			return 0;
		size_t got = 0;
		io->rerr = sm_reader_read_full(r->reader, buf, cap, &got, &io->rdiag);
		if (io->rerr != SM_OK)
			return CURL_READFUNC_ABORT;
		if (got < cap) { /* the source ended early: do not send a short body */
			io->rerr = sm_diag_set(&io->rdiag, SM_ECHANGED, 0,
			                       "the source ended after %llu of %llu bytes",
			                       (unsigned long long)(io->sent + got),
			                       (unsigned long long)r->reader_len);
			return CURL_READFUNC_ABORT;
		}
		io->sent += got;
		if (io->sent == r->reader_len) {
			/* a source that grew would be sent cut short: refuse it */
			char probe;
			size_t more = 0;
			io->rerr = sm_reader_read(r->reader, &probe, 1, &more, &io->rdiag);
			if (io->rerr == SM_OK && more)
				io->rerr = sm_diag_set(&io->rdiag, SM_ECHANGED, 0,
				                       "the source grew past the %llu bytes listed",
				                       (unsigned long long)r->reader_len);
			if (io->rerr != SM_OK)
				return CURL_READFUNC_ABORT;
		}
		if (io->sent == r->reader_len && r->reader_finish) {
			/* the source must still be what was read before the body ends */
			io->rerr = sm_reader_finish(r->reader, &io->rdiag);
			if (io->rerr != SM_OK)
				return CURL_READFUNC_ABORT;
		}
		return got;
	}
	size_t left = r->body_len - io->body_off;
	size_t n = left < cap ? left : cap;
	memcpy(buf, (const char *)r->body + io->body_off, n);
	io->body_off += n;
	return n;
}

/* curl rewinds the body to resend it on a fresh connection when a kept-alive
 * one turns out dead: fine for memory bodies; a reader cannot go back. */
static int http_seek_cb(void *arg, curl_off_t offset, int origin)
{
	struct http_io *io = arg;
	if (origin != SEEK_SET || io->r->reader)
		return CURL_SEEKFUNC_CANTSEEK;
	if (offset < 0 || (size_t)offset > io->r->body_len)
		return CURL_SEEKFUNC_FAIL;
	io->body_off = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_io *io = arg;
	struct sm_http_req *r = io->r;
	size_t n = size * nmemb;
	if (r->sink && r->status / 100 == 2)
		return r->sink(r->sink_arg, data, n);
	if (r->resp && sm_buf_append(r->resp, data, n) != SM_OK) {
		io->body_full = true;
		return 0;
	}
	return n;
}

static void http_header_value(const char *line, size_t n, size_t namelen, char *out, size_t cap)
{
	const char *v = line + namelen;
	size_t vn = n - namelen;
	while (vn && (*v == ' ' || *v == '\t')) {
		v++;
		vn--;
	}
	while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
		vn--;
	if (vn >= cap)
		vn = cap - 1;
	memcpy(out, v, vn);
	out[vn] = '\0';
}

/* No reply this long after the request went out (the body included: a
 * slow upload is the stall timeout's business): give up on this attempt. */
static int http_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	struct http_io *io = arg;
	if (io->answered)
		return 0;
	double now = sm_now_s();
	if (ulnow != io->ul_seen) {
		io->ul_seen = ulnow;
		io->t_sent = now;
	}
	io->waited_s = now - io->t_sent;
	if (io->waited_s < (double)io->answer_s)
		return 0;
	io->timed_out = true;
	return 1;
}

static size_t http_header_cb(char *line, size_t size, size_t nitems, void *arg)
{
	struct http_io *io = arg;
	struct sm_http_req *r = io->r;
	size_t n = size * nitems;
	io->answered = true;
	if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* a new status line (after 100 Continue or a redirect) */
		r->etag[0] = r->meta_mtime[0] = r->last_modified[0] = r->content_type[0] = '\0';
		r->has_content_length = false;
		r->has_range_total = false;
		if (r->meta)
			sm_meta_clear(r->meta);
		const char *sp = memchr(line, ' ', n);
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return n;
	}
	char tmp[64];
	if (n > 5 && strncasecmp(line, "etag:", 5) == 0) {
		http_header_value(line, n, 5, r->etag, sizeof(r->etag));
	} else if (n > 17 && strncasecmp(line, "x-amz-meta-mtime:", 17) == 0) {
		http_header_value(line, n, 17, r->meta_mtime, sizeof(r->meta_mtime));
	} else if (n > 14 && strncasecmp(line, "last-modified:", 14) == 0) {
		http_header_value(line, n, 14, r->last_modified, sizeof(r->last_modified));
	} else if (n > 13 && strncasecmp(line, "content-type:", 13) == 0) {
		http_header_value(line, n, 13, r->content_type, sizeof(r->content_type));
	} else if (n > 14 && strncasecmp(line, "content-range:", 14) == 0) {
		char cr[128];
		http_header_value(line, n, 14, cr, sizeof(cr));
		const char *slash = strrchr(cr, '/');
		int64_t v;
		if (slash && sm_parse_i64(slash + 1, 0, INT64_MAX, &v)) {
			r->range_total = (uint64_t)v;
			r->has_range_total = true;
		}
	} else if (n > 15 && strncasecmp(line, "content-length:", 15) == 0) {
		http_header_value(line, n, 15, tmp, sizeof(tmp));
		int64_t v;
		if (sm_parse_i64(tmp, 0, INT64_MAX, &v)) {
			r->content_length = (uint64_t)v;
			r->has_content_length = true;
		}
	}
	const char *colon = r->meta ? memchr(line, ':', n) : NULL;
	if (colon)
		sm_meta_header(r->meta, line, (size_t)(colon - line), colon + 1,
		               n - (size_t)(colon + 1 - line));
	return n;
}

/* "host:port" of a URL, for messages. */
static void http_hostport(const char *url, char *out, size_t n)
{
	const char *s = strstr(url, "://");
	s = s ? s + 3 : url;
	size_t len = strcspn(s, "/?");
	if (len >= n)
		len = n - 1;
	memcpy(out, s, len);
	out[len] = '\0';
}

enum sm_err sm_http_do(struct sm_http *h, struct sm_http_req *r, struct sm_diag *d)
{
	CURL *c = http_get(h);
	if (!c)
		return sm_diag_set(d, SM_ENOMEM, 0, "cannot create an HTTP handle");
	struct curl_slist *hdrs = NULL;
	enum sm_err err = SM_OK;
	for (size_t i = 0; i < r->n_headers; i++) {
		char line[8192];
		/* curl drops a header written "name:" with nothing after it */
		const char *v = r->headers[i].value;
		int len = *v ? snprintf(line, sizeof(line), "%s: %s", r->headers[i].name, v)
		             : snprintf(line, sizeof(line), "%s;", r->headers[i].name);
		struct curl_slist *nh = len > 0 && (size_t)len < sizeof(line)
		                                ? curl_slist_append(hdrs, line)
		                                : NULL;
		if (!nh) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "HTTP header '%s' too long or out of memory",
			                  r->headers[i].name);
			goto out;
		}
		hdrs = nh;
	}
	/* curl adds these unless told not to; they are not signed (a POST's
	 * form Content-Type would become the type of a multipart object) */
	bool has_ctype = false;
	for (size_t i = 0; i < r->n_headers; i++)
		has_ctype = has_ctype || strcasecmp(r->headers[i].name, "content-type") == 0;
	if (!has_ctype) {
		struct curl_slist *ct = curl_slist_append(hdrs, "Content-Type:");
		if (ct)
			hdrs = ct;
	}
	struct curl_slist *nh = curl_slist_append(hdrs, "Expect:");
	if (nh)
		hdrs = nh;
	nh = curl_slist_append(hdrs, "Accept:");
	if (nh)
		hdrs = nh;

	struct http_io io = { .r = r, .t_sent = sm_now_s(), .answer_s = h->cfg.answer_seconds };
	r->status = 0;
	if (r->meta)
		sm_meta_clear(r->meta);
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* object keys may hold "..": never let curl squash them (the request
	 * is signed for the path as sent) */
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->cfg.connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->cfg.stall_seconds);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &io);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "syncmgr/" SM_VERSION);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &io);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &io);
	curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, http_seek_cb);
	curl_easy_setopt(c, CURLOPT_SEEKDATA, &io);
	if (h->cfg.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->cfg.ca_file);
	if (h->cfg.insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	bool has_body = r->reader || r->body;
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, http_read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, &io);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
		                 (curl_off_t)(r->reader ? r->reader_len : r->body_len));
	} else if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, http_read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, &io);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(r->reader ? r->reader_len : r->body_len));
	} else if (strcmp(r->method, "GET") != 0 || has_body) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
	}
	CURLcode rc = curl_easy_perform(c);
	char hp[256];
	http_hostport(r->url, hp, sizeof(hp));
	if (io.rerr != SM_OK) {
		err = io.rerr;
		if (d)
			*d = io.rdiag;
	} else if (io.body_full) {
		err = sm_diag_set(d, SM_EIO, 0, "reply from %s larger than %zu bytes", hp,
		                  r->resp && r->resp->limit ? r->resp->limit
		                                            : (size_t)SM_BUF_DEFAULT_LIMIT);
	} else if (rc == CURLE_OK) {
		err = SM_OK;
	} else if (rc == CURLE_ABORTED_BY_CALLBACK && io.timed_out) {
		err = sm_diag_set(d, SM_EAGAIN, (int)rc, "%s: no answer within %ld s", hp,
		                  h->cfg.answer_seconds);
	} else if (rc == CURLE_COULDNT_CONNECT) {
		/* refused or unreachable: an endpoint restarting is back soon */
		err = sm_diag_set(d, SM_EAGAIN, (int)rc, "cannot reach %s: %s", hp,
		                  curl_easy_strerror(rc));
	} else if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY) {
		err = sm_diag_set(d, SM_EIO, (int)rc, "cannot reach %s: %s", hp,
		                  curl_easy_strerror(rc));
	} else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
		err = sm_diag_set(
		        d, SM_EIO, (int)rc,
		        "cannot verify the TLS certificate of %s: %s (AWS_CA_BUNDLE names "
		        "the CA file to trust)",
		        hp, curl_easy_strerror(rc));
	} else if (rc == CURLE_SSL_CONNECT_ERROR) {
		/* a reset mid-handshake looks the same: worth another attempt */
		err = sm_diag_set(d, SM_EAGAIN, (int)rc,
		                  "TLS handshake with %s failed: %s (a plain-HTTP endpoint? then "
		                  "use --no-https)",
		                  hp, curl_easy_strerror(rc));
	} else if (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SEND_ERROR ||
	           rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
	           rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM || rc == CURLE_SEND_FAIL_REWIND) {
		err = sm_diag_set(d, SM_EAGAIN, (int)rc, "%s: %s", hp, curl_easy_strerror(rc));
	} else if (rc == CURLE_WRITE_ERROR && r->sink) {
		err = sm_diag_set(d, SM_EIO, (int)rc, "%s: the download could not be written", hp);
	} else {
		err = sm_diag_set(d, SM_EIO, (int)rc, "%s: %s", hp, curl_easy_strerror(rc));
	}
out:
	curl_slist_free_all(hdrs);
	if (err == SM_OK || err == SM_EIO)
		http_put(h, c); /* the connection is sound: keep it */
	else
		curl_easy_cleanup(c);
	return err;
}
