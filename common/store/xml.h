/*
 * Streaming XML for S3 and WebDAV replies (expat): each element's text is
 * handed to a callback with its path of local names ("ListBucketResult/
 * Contents/Key"), namespace prefixes dropped, so replies parse the same with
 * or without xmlns. Depth, text per element and total bytes are capped.
 */
#ifndef SM_XML_H
#define SM_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../util.h"

#define SM_XML_MAX_DEPTH 16
#define SM_XML_MAX_TEXT (64u << 10)

/* Called at each element's end; `path` and `text` are borrowed for the call.
 * `start` is true for the call made at an element's start (text empty), so
 * callers can open records (e.g. a new <Contents>). Return false to stop. */
typedef bool (*sm_xml_fn)(void *arg, const char *path, bool start, const char *text, size_t len);

struct sm_xml;

/* max_bytes: the most this reply may hold (0 = 64 MiB). */
enum sm_err sm_xml_new(sm_xml_fn fn, void *arg, size_t max_bytes, struct sm_xml **out,
                       struct sm_diag *d);
/* Feed a chunk; `final` on the last one. Fails on malformed XML, a cap, or
 * when the callback stopped. */
enum sm_err sm_xml_feed(struct sm_xml *x, const void *data, size_t len, bool final,
                        struct sm_diag *d);
void sm_xml_free(struct sm_xml *x); /* accepts NULL */

/* One page of ListObjectsV2: the objects, and with a delimiter the common
 * prefixes ("dir/"). Keys and prefixes are decoded when the reply says
 * EncodingType=url (a server that ignores encoding-type sends them as they
 * are, without it). */
struct sm_s3_object {
	char *key;
	uint64_t size;
	int64_t mtime_ns; /* LastModified */
	char etag[72];
};
struct sm_s3_list_page {
	struct sm_s3_object *objs;
	size_t n;
	size_t cap;
	char **prefixes; /* CommonPrefixes (delimiter listings), as listed */
	size_t n_prefixes;
	size_t cap_prefixes;
	bool truncated;
	char *next_token;
	bool url_encoded;
};
enum sm_err sm_s3_parse_list(const void *body, size_t len, struct sm_s3_list_page *page,
                             struct sm_diag *d);
void sm_s3_list_page_release(struct sm_s3_list_page *page);

/* An S3 <Error> reply: Code and Message (either may be empty). */
struct sm_s3_error {
	char code[128];
	char message[512];
};
bool sm_s3_parse_error(const void *body, size_t len, struct sm_s3_error *e);

/* A DeleteObjects reply: fn(arg, key, error) for each key that was not
 * deleted (Quiet mode lists only those). fn returns false to stop (a key
 * not asked for); that fails the parse. */
typedef bool (*sm_s3_delete_fn)(void *arg, const char *key, const struct sm_s3_error *e);
enum sm_err sm_s3_parse_delete(const void *body, size_t len, sm_s3_delete_fn fn, void *arg,
                               struct sm_diag *d);

/* A ListMultipartUploads reply: fn(arg, key, upload_id, initiated_ns) for
 * each open upload (keys as the server sent them); fn returns false to stop
 * (the parse then fails). The markers for the next page go to *page. */
typedef bool (*sm_s3_upload_fn)(void *arg, const char *key, const char *upload_id,
                                int64_t initiated_ns);
struct sm_s3_uploads_page {
	bool truncated;
	char next_key[1100];
	char next_upload[512];
};
enum sm_err sm_s3_parse_uploads(const void *body, size_t len, sm_s3_upload_fn fn, void *arg,
                                struct sm_s3_uploads_page *page, struct sm_diag *d);

/* Append s with XML's special characters escaped; SM_EINVAL for a control
 * character XML 1.0 cannot carry. */
enum sm_err sm_xml_escape(struct sm_buf *out, const char *s);

/* Percent-decode in place (S3 EncodingType=url); false on a bad escape. */
bool sm_url_decode(char *s);

#endif
