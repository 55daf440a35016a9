#include "s3url.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "xml.h" /* sm_url_decode */

static const char *const s3_schemes[] = { "s3://", "oss://", "cos://", "minio://" };

bool sm_s3_scheme(const char *url)
{
	for (size_t i = 0; i < sizeof(s3_schemes) / sizeof(s3_schemes[0]); i++)
		if (strncmp(url, s3_schemes[i], strlen(s3_schemes[i])) == 0)
			return true;
	return false;
}

void sm_s3_loc_release(struct sm_s3_loc *l)
{
	if (!l)
		return;
	free(l->scheme);
	free(l->endpoint);
	free(l->bucket);
	free(l->prefix);
	free(l->region);
	free(l->access_key);
	free(l->secret_key);
	free(l->token);
	free(l->display);
	memset(l, 0, sizeof(*l));
}

static bool s3_is_ipv4(const char *h, size_t n)
{
	int dots = 0;
	for (size_t i = 0; i < n; i++) {
		if (h[i] == '.')
			dots++;
		else if (!isdigit((unsigned char)h[i]))
			return false;
	}
	return dots == 3;
}

/* The region an endpoint name carries, or NULL. */
static char *s3_endpoint_region(const char *ep)
{
	char host[256];
	sm_strlcpy(host, ep, sizeof(host));
	char *colon = strchr(host, ':');
	if (colon)
		*colon = '\0';
	const char *r = NULL;
	size_t n = 0;
	const char *aws = strstr(host, ".amazonaws.com");
	if (aws) {
		/* s3.REGION.amazonaws.com, s3-REGION.amazonaws.com,
		 * s3.dualstack.REGION.amazonaws.com */
		const char *s = strncmp(host, "s3.dualstack.", 13) == 0 ? host + 13
		                : strncmp(host, "s3.", 3) == 0          ? host + 3
		                : strncmp(host, "s3-", 3) == 0          ? host + 3
		                                                        : NULL;
		if (s && s < aws) {
			r = s;
			n = (size_t)(aws - s);
		}
	} else if (strncmp(host, "oss-", 4) == 0 && strstr(host, ".aliyuncs.com")) {
		r = host + 4;
		n = strcspn(r, ".");
	} else if (strncmp(host, "cos.", 4) == 0 && strstr(host, ".myqcloud.com")) {
		r = host + 4;
		n = strcspn(r, ".");
	}
	if (!r || n == 0 || (n == 10 && strncmp(r, "amazonaws", 9) == 0))
		return NULL;
	return sm_strndup(r, n);
}

/* Credentials from $HOME/.aws/credentials, profile $AWS_PROFILE or default. */
static void s3_creds_file(struct sm_s3_loc *l)
{
	const char *home = getenv("HOME");
	if (!home)
		return;
	char path[4096];
	snprintf(path, sizeof(path), "%s/.aws/credentials", home);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	const char *profile = getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	char line[1024];
	bool in = false;
	while (fgets(line, sizeof(line), f)) {
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		size_t n = strlen(s);
		while (n && isspace((unsigned char)s[n - 1]))
			s[--n] = '\0';
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']');
			if (e)
				*e = '\0';
			in = strcmp(s + 1, profile) == 0;
			continue;
		}
		char *eq = strchr(s, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		char *k = s, *v = eq + 1;
		for (size_t m = strlen(k); m && isspace((unsigned char)k[m - 1]);)
			k[--m] = '\0';
		while (isspace((unsigned char)*v))
			v++;
		char **slot = strcmp(k, "aws_access_key_id") == 0       ? &l->access_key
		              : strcmp(k, "aws_secret_access_key") == 0 ? &l->secret_key
		              : strcmp(k, "aws_session_token") == 0     ? &l->token
		                                                        : NULL;
		if (slot && !*slot)
			*slot = strdup(v);
	}
	fclose(f);
}

static char *s3_decoded(const char *s, size_t n)
{
	char *p = sm_strndup(s, n);
	if (p && !sm_url_decode(p)) {
		free(p);
		return NULL;
	}
	return p;
}

enum sm_err sm_s3_loc_parse(const char *url, bool https, struct sm_s3_loc *out, struct sm_diag *d)
{
	struct sm_s3_loc l = { 0 };
	enum sm_err err = SM_OK;
	const char *sep = strstr(url, "://");
	if (!sep || !sm_s3_scheme(url))
		return sm_diag_set(d, SM_EINVAL, 0, "not an S3 URL");
	l.scheme = sm_strndup(url, (size_t)(sep - url));
	l.https = https;
	const char *rest = sep + 3;
	/* userinfo: AK:SK[:TOKEN]@ (an access key never holds '/') */
	const char *at = strchr(rest, '@');
	const char *colon = strchr(rest, ':');
	const char *auth_end = NULL;
	if (at && colon && colon < at && !memchr(rest, '/', (size_t)(colon - rest))) {
		auth_end = at;
		const char *c2 = memchr(colon + 1, ':', (size_t)(at - colon - 1));
		l.access_key = s3_decoded(rest, (size_t)(colon - rest));
		l.secret_key = s3_decoded(colon + 1, (size_t)((c2 ? c2 : at) - colon - 1));
		if (c2)
			l.token = s3_decoded(c2 + 1, (size_t)(at - c2 - 1));
		if (!l.access_key || !l.secret_key || (c2 && !l.token)) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "%s://...: bad percent-encoding in the credentials",
			                  l.scheme);
			goto fail;
		}
		rest = at + 1;
	}
	const char *slash = strchr(rest, '/');
	size_t hlen = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *path = slash ? slash + 1 : "";
	if (hlen == 0) {
		err = sm_diag_set(d, SM_EINVAL, 0, "%s://: missing the bucket", l.scheme);
		goto fail;
	}
	bool port = memchr(rest, ':', hlen) != NULL || rest[0] == '[';
	bool local = (hlen == 9 && strncmp(rest, "localhost", 9) == 0) || s3_is_ipv4(rest, hlen);
	const char *dot = memchr(rest, '.', hlen);
	if (port || local || strcmp(l.scheme, "minio") == 0) {
		l.path_style = true;
		l.endpoint = sm_strndup(rest, hlen);
		const char *bs = strchr(path, '/');
		size_t blen = bs ? (size_t)(bs - path) : strlen(path);
		if (blen == 0) {
			err = sm_diag_set(
			        d, SM_EINVAL, 0,
			        "%s://%.*s/: missing the bucket (path style: ENDPOINT/BUCKET)",
			        l.scheme, (int)hlen, rest);
			goto fail;
		}
		l.bucket = sm_strndup(path, blen);
		l.prefix = strdup(bs ? bs + 1 : "");
	} else if (dot) {
		l.bucket = sm_strndup(rest, (size_t)(dot - rest));
		l.endpoint = sm_strndup(dot + 1, hlen - (size_t)(dot - rest) - 1);
		l.prefix = strdup(path);
	} else {
		if (strcmp(l.scheme, "s3") != 0) {
			err = sm_diag_set(d, SM_EINVAL, 0, "%s://%.*s: the endpoint is missing",
			                  l.scheme, (int)hlen, rest);
			goto fail;
		}
		l.bucket = sm_strndup(rest, hlen);
		l.prefix = strdup(path);
	}
	if (!l.scheme || !l.bucket || !l.prefix || (l.endpoint == NULL && dot)) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	/* region: from the endpoint, AWS_REGION, or us-east-1 */
	if (l.endpoint)
		l.region = s3_endpoint_region(l.endpoint);
	if (!l.region) {
		const char *env = getenv("AWS_REGION");
		if (!env || !*env)
			env = getenv("AWS_DEFAULT_REGION");
		l.region = strdup(env && *env ? env : "us-east-1");
	}
	if (!l.endpoint) {
		char ep[128];
		if (strcmp(l.region, "us-east-1") == 0)
			snprintf(ep, sizeof(ep), "s3.amazonaws.com");
		else
			snprintf(ep, sizeof(ep), "s3.%s.amazonaws.com", l.region);
		l.endpoint = strdup(ep);
	}
	/* credentials not in the URL */
	if (!l.access_key) {
		const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
		if (ak && *ak && sk && *sk) {
			l.access_key = strdup(ak);
			l.secret_key = strdup(sk);
			const char *tok = getenv("AWS_SESSION_TOKEN");
			if (tok && *tok)
				l.token = strdup(tok);
		} else {
			s3_creds_file(&l);
		}
	}
	if (l.access_key && !l.secret_key) {
		err = sm_diag_set(
		        d, SM_EINVAL, 0,
		        "%s://: access key %s has no secret (URL, AWS_SECRET_ACCESS_KEY or "
		        "~/.aws/credentials)",
		        l.scheme, l.access_key);
		goto fail;
	}
	/* the printable form: secrets masked, the bucket where the user put it */
	char who[300] = "", where[1024], disp[2048];
	if (l.access_key && auth_end)
		snprintf(who, sizeof(who), "%s:****@", l.access_key);
	if (l.path_style)
		snprintf(where, sizeof(where), "%s/%s", l.endpoint, l.bucket);
	else if (dot)
		snprintf(where, sizeof(where), "%s.%s", l.bucket, l.endpoint);
	else
		snprintf(where, sizeof(where), "%s", l.bucket);
	snprintf(disp, sizeof(disp), "%s://%s%s%s%s", l.scheme, who, where, *l.prefix ? "/" : "",
	         l.prefix);
	if (!(l.display = strdup(disp)) || !l.region || !l.endpoint) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	*out = l;
	return SM_OK;
fail:
	sm_s3_loc_release(&l);
	return err;
}
