/*
 * S3 locations and credentials (SPEC.md §1 "Storage URLs"):
 *   s3://[AK:SK[:TOKEN]@]BUCKET.ENDPOINT[/PREFIX]   virtual-hosted
 *   s3://[AK:SK[:TOKEN]@]ENDPOINT/BUCKET[/PREFIX]   path style: automatic for
 *                                                  IP addresses, localhost and
 *                                                  explicit ports
 *   s3://BUCKET[/PREFIX]                             AWS
 * oss://, cos:// and minio:// are S3-compatible aliases with the endpoint in
 * the URL. Secrets may be percent-encoded (only %XX: a '+' is a '+'); a
 * secret key holding '/', '+' or '@' also works unencoded, the credentials
 * ending at the last '@' before the host (one holding both '@' and then
 * '/' needs %40 or %2F). An '@' after the bucket belongs to the prefix.
 * An explicit port is 1-65535.
 *
 * Credentials not in the URL come from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then $HOME/.aws/credentials
 * (profile $AWS_PROFILE or "default"). There is no anonymous mode: none
 * found, half the environment's pair, a profile that is not in the file, a
 * profile without a key or a file that cannot be read is an error naming
 * what was looked for. The region comes from the endpoint name,
 * AWS_REGION, or us-east-1.
 *
 * Messages quote the URL with the secrets masked, never as given.
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
 * are resolved too (see above). Errors: SM_EINVAL for a malformed URL (a
 * usage error), SM_EACCES when no credentials can be had (not a usage
 * error: the run's exit 1), SM_ENOMEM. */
enum sm_err sm_s3_loc_parse(const char *url, bool https, struct sm_s3_loc *out, struct sm_diag *d);
void sm_s3_loc_release(struct sm_s3_loc *l);
/* True for the S3-compatible schemes. */
bool sm_s3_scheme(const char *url);

#endif
