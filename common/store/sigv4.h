/*
 * AWS Signature Version 4 (header-based), as S3 wants it: the canonical URI
 * is the key encoded once (S3 does not normalize paths), the query is sorted
 * and encoded, every header given is signed, the payload hash is the hex
 * SHA-256 of the body or "UNSIGNED-PAYLOAD". OpenSSL does the hashing.
 */
#ifndef SM_SIGV4_H
#define SM_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../util.h"

#define SM_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sm_kv {
	const char *name;
	const char *value;
};

struct sm_sigv4_cred {
	const char *access_key;
	const char *secret_key;
	const char *region;
	const char *service; /* "s3" */
};

struct sm_sigv4_req {
	const char *method;
	const char *uri;           /* canonical URI, already encoded: sm_sigv4_encode(key, true) */
	const struct sm_kv *query; /* raw name/value pairs (value NULL or "" = no value) */
	size_t n_query;
	const struct sm_kv *headers; /* every header to sign, any case; host included */
	size_t n_headers;
	const char *payload_hash; /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
	const char *amz_date;     /* "YYYYMMDDTHHMMSSZ", also sent as x-amz-date */
};

/* Append `s` encoded the AWS way (unreserved A-Za-z0-9-_.~ kept, every other
 * byte %XX upper-case; '/' kept when keep_slash). */
enum sm_err sm_sigv4_encode(struct sm_buf *out, const char *s, bool keep_slash);

/* The Authorization header value into `auth` (NUL-terminated). `creq_hash`
 * (65 bytes, may be NULL) receives the hex SHA-256 of the canonical request,
 * which AWS prints in its error replies and test suites. */
enum sm_err sm_sigv4_sign(const struct sm_sigv4_cred *c, const struct sm_sigv4_req *r,
                          struct sm_buf *auth, char *creq_hash, struct sm_diag *d);

/* "YYYYMMDDTHHMMSSZ" for a time in seconds since the epoch. */
void sm_sigv4_date(int64_t t, char out[17]);
/* Hex SHA-256 of data[0..n) into out (65 bytes). */
void sm_sha256_hex(const void *data, size_t n, char out[65]);

#endif
