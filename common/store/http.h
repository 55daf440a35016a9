/*
 * HTTP transport for the S3 and WebDAV backends (libcurl): a pool of easy
 * handles so connections stay open (keep-alive) across requests, connect and
 * stall timeouts, request bodies from memory or a reader, response bodies
 * into a capped buffer or a sink. One attempt per call: callers that sign
 * requests retry themselves (a new signature per attempt).
 */
#ifndef SM_HTTP_H
#define SM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../util.h"
#include "meta.h"
#include "sigv4.h" /* struct sm_kv */
#include "store.h" /* struct sm_reader */

struct sm_http_cfg {
	long connect_timeout_ms; /* 0: 10 s */
	long stall_seconds;      /* abort when under 1 KiB/s for this long; 0: 30 s */
	/* abort when no reply has begun this long after the request was
	 * sent (its body included); 0: 10 s */
	long answer_seconds;
	bool insecure;       /* do not verify TLS certificates (tests) */
	const char *ca_file; /* CA certificates to trust (AWS_CA_BUNDLE), or NULL: the system's */
	int max_handles;     /* idle handles kept; 0: 64 */
};

struct sm_http;

enum sm_err sm_http_new(const struct sm_http_cfg *cfg, struct sm_http **out, struct sm_diag *d);
void sm_http_free(struct sm_http *h); /* accepts NULL */

struct sm_http_req {
	const char *method;
	const char *url;
	const struct sm_kv *headers; /* sent as given ("name;" for an empty value) */
	size_t n_headers;
	const void *body; /* request body in memory... */
	size_t body_len;
	struct sm_reader *reader; /* ...or from a reader, reader_len bytes (borrowed) */
	uint64_t reader_len;
	bool reader_finish;  /* call the reader's finish() after its last byte; its
	                     * failure aborts the request before the body is complete */
	struct sm_buf *resp; /* response body (its limit caps it), or NULL */
	size_t (*sink)(void *arg, const void *data, size_t n); /* or a sink (2xx only) */
	void *sink_arg;
	/* out */
	long status;
	char etag[128];
	uint64_t content_length;
	bool has_content_length;
	char meta_mtime[32]; /* x-amz-meta-mtime */
	char last_modified[64];
	char content_type[64];
	uint64_t range_total; /* from Content-Range: bytes a-b/TOTAL */
	bool has_range_total;
	/* in, optional: the reply's metadata headers go here (common/store/
	 * meta.h; those of the last reply only, after a 100 or a redirect) */
	struct sm_meta *meta;
};

/* One attempt. SM_OK means an HTTP reply came (any status: see r->status);
 * transport failures map to SM_EAGAIN (timeouts, resets) or SM_EIO
 * (refused, unresolvable: the message names host and port). */
enum sm_err sm_http_do(struct sm_http *h, struct sm_http_req *r, struct sm_diag *d);

#endif
