/*
 * S3 locations and credentials (SPEC.md §1 "Storage URLs"):
 *   s3://[AK:SK[:TOKEN]@]BUCKET.ENDPOINT[/PREFIX]   virtual-hosted
 *   s3://[AK:SK[:TOKEN]@]ENDPOINT/BUCKET[/PREFIX]   path style: automatic for
 *                                                  IP addresses, localhost and
 *                                                  explicit ports
 *   s3://BUCKET[/PREFIX]                             AWS
 * oss://, cos:// and minio:// are S3-compatible aliases with the endpoint in
 * the URL. Secrets may be percent-encoded. Credentials not in the URL come
 * from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then
 * $HOME/.aws/credentials (profile $AWS_PROFILE or "default"); the region
 * from the endpoint name, AWS_REGION, or us-east-1.
 */
#ifndef SM_S3URL_H
#define SM_S3URL_H

#include <stdbool.h>

#include "../err.h"

struct sm_s3_loc {
	char *scheme;   /* "s3", "oss", "cos", "minio" */
	char *endpoint; /* host[:port] */
	char *bucket;
	char *prefix; /* "" or ending as given (keys are relative to it) */
	bool path_style;
	bool https;
	char *region;
	char *access_key;
	char *secret_key;
	char *token;   /* NULL without a session token */
	char *display; /* secrets masked: s3://AKID:****@bucket.endpoint/prefix */
};

/* Parse an S3-style URL; `https` from --no-https. Credentials and region
 * are resolved too (see above); a missing secret is an error naming where
 * it was looked for. */
enum sm_err sm_s3_loc_parse(const char *url, bool https, struct sm_s3_loc *out, struct sm_diag *d);
void sm_s3_loc_release(struct sm_s3_loc *l);
/* True for the S3-compatible schemes. */
bool sm_s3_scheme(const char *url);

#endif
