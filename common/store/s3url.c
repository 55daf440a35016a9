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

/* An unreadable credentials file: always SM_EACCES (the run's exit 1). */
static enum sm_err s3_creds_errno(struct sm_diag *d, int e, const char *shown, const char *path)
{
	sm_diag_errno(d, e, "'%s': cannot read the credentials in %s", shown, path);
	if (d)
		d->err = SM_EACCES;
	return SM_EACCES;
}

/*
 * Credentials from $HOME/.aws/credentials, profile $AWS_PROFILE or
 * "default". A missing file, profile or key is an error naming what was
 * looked for (never a silent fall back to unsigned requests); `shown` is
 * the URL for messages.
 */
static enum sm_err s3_creds_file(struct sm_s3_loc *l, const char *shown, struct sm_diag *d)
{
	const char *profile = getenv("AWS_PROFILE");
	bool chosen = profile && *profile; /* the user named the profile */
	if (!chosen)
		profile = "default";
	const char *home = getenv("HOME");
	if (!home || !*home)
		return sm_diag_set(d, SM_EACCES, 0,
		                   "'%s': no credentials found (not in the URL, "
		                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, and no HOME "
		                   "for ~/.aws/credentials)",
		                   shown);
	char path[4096];
	snprintf(path, sizeof(path), "%s/.aws/credentials", home);
	FILE *f = fopen(path, "r");
	if (!f && errno == ENOENT) {
		if (chosen)
			return sm_diag_set(d, SM_EACCES, ENOENT,
			                   "'%s': AWS_PROFILE '%s': no such profile (no %s)", shown,
			                   profile, path);
		return sm_diag_set(d, SM_EACCES, ENOENT,
		                   "'%s': no credentials found (not in the URL, "
		                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, no %s)",
		                   shown, path);
	}
	if (!f)
		return s3_creds_errno(d, errno, shown, path);
	char line[1024];
	bool in = false, found = false;
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
			found = found || in;
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
		if (slot && !*slot && *v && !(*slot = strdup(v))) {
			fclose(f);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
	}
	int rerr = ferror(f) ? errno : 0;
	fclose(f);
	if (rerr)
		return s3_creds_errno(d, rerr, shown, path);
	if (!found && chosen)
		return sm_diag_set(d, SM_EACCES, 0, "'%s': AWS_PROFILE '%s': no such profile in %s",
		                   shown, profile, path);
	if (!found)
		return sm_diag_set(d, SM_EACCES, 0,
		                   "'%s': no credentials found (not in the URL, "
		                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, no profile "
		                   "'default' in %s)",
		                   shown, path);
	if (!l->access_key || !l->secret_key)
		return sm_diag_set(d, SM_EACCES, 0, "'%s': profile '%s' in %s has no %s", shown,
		                   profile, path,
		                   l->access_key ? "aws_secret_access_key" : "aws_access_key_id");
	return SM_OK;
}

/* Percent-decoded copy of s[0..n), or NULL (a bad escape, out of memory):
 * only %XX, a '+' stays a '+' (secrets hold them; it is no space here). */
static char *s3_decoded(const char *s, size_t n)
{
	struct sm_buf b = { 0 };
	bool ok = sm_buf_appendz(&b, "") == SM_OK;
	for (size_t i = 0; ok && i < n; i++)
		ok = (s[i] == '+' ? sm_buf_appendz(&b, "%2B") : sm_buf_append(&b, s + i, 1)) ==
		     SM_OK;
	if (!ok || !sm_url_decode(b.p)) {
		sm_buf_release(&b);
		return NULL;
	}
	return b.p;
}

/* Is p..end a host (or [v6]) with an optional ':' and digits? */
static bool s3_authority(const char *p, const char *end)
{
	if (*p == '[') {
		const char *e = memchr(p, ']', (size_t)(end - p));
		if (!e)
			return false;
		p = e + 1;
		if (p == end)
			return true;
		if (*p != ':')
			return false;
	} else {
		p = memchr(p, ':', (size_t)(end - p));
		if (!p)
			return true;
	}
	p++;
	while (p < end && isdigit((unsigned char)*p))
		p++;
	return p == end;
}

/*
 * The '@' ending AK:SK[:TOKEN] in `rest` (the URL after "://"), or NULL. A
 * secret key may hold '/', '+' and '@': the last '@' before the first '/'
 * when a host follows it; failing that, when AK:... stands before the first
 * '/' and is no host[:port], the first later '@' followed by a host (no '@'
 * up to the next '/'). So s3://h:7480/bkt/a@b has no credentials.
 */
static const char *s3_userinfo_at(const char *rest)
{
	const char *end = rest + strcspn(rest, "/");
	const char *at = NULL;
	for (const char *q = rest; q < end; q++)
		if (*q == '@')
			at = q;
	if (at && at + 1 < end)
		return at;
	const char *colon = memchr(rest, ':', (size_t)(end - rest));
	if (!*end || !colon || colon == rest || (!at && s3_authority(rest, end)))
		return at;
	for (const char *q = strchr(end, '@'); q; q = strchr(q + 1, '@')) {
		size_t n = strcspn(q + 1, "/");
		if (n && !memchr(q + 1, '@', n))
			return q;
	}
	return at;
}

/* Credentials not in the URL: the environment, then ~/.aws/credentials. */
static enum sm_err s3_creds(struct sm_s3_loc *l, const char *shown, struct sm_diag *d)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	bool has_ak = ak && *ak, has_sk = sk && *sk;
	if (has_ak != has_sk)
		return sm_diag_set(d, SM_EACCES, 0, "'%s': %s is set but %s is not", shown,
		                   has_ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
		                   has_ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
	if (!has_ak)
		return s3_creds_file(l, shown, d);
	const char *tok = getenv("AWS_SESSION_TOKEN");
	l->access_key = strdup(ak);
	l->secret_key = strdup(sk);
	if (tok && *tok)
		l->token = strdup(tok);
	if (!l->access_key || !l->secret_key || (tok && *tok && !l->token))
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	return SM_OK;
}

enum sm_err sm_s3_loc_parse(const char *url, bool https, struct sm_s3_loc *out, struct sm_diag *d)
{
	struct sm_s3_loc l = { 0 };
	struct sm_buf shown = { 0 }; /* url for messages, the secrets masked */
	enum sm_err err = SM_OK;
	const char *sep = strstr(url, "://");
	if (!sep || !sm_s3_scheme(url))
		return sm_diag_set(d, SM_EINVAL, 0, "not an S3 URL");
	const char *rest = sep + 3;
	/* userinfo: AK:SK[:TOKEN]@ (an access key holds neither ':' nor '/') */
	const char *at = s3_userinfo_at(rest);
	const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
	if (sm_buf_append(&shown, url, (size_t)(rest - url)) ||
	    (at && (sm_buf_append(&shown, rest, (size_t)((colon ? colon : rest) - rest)) ||
	            sm_buf_appendz(&shown, colon ? ":****@" : "****@"))) ||
	    sm_buf_appendz(&shown, at ? at + 1 : rest)) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	l.scheme = sm_strndup(url, (size_t)(sep - url));
	l.https = https;
	if (at) {
		if (!colon || colon == rest) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "'%s': the credentials before '@' must be "
			                  "ACCESS_KEY:SECRET_KEY",
			                  shown.p);
			goto fail;
		}
		const char *c2 = memchr(colon + 1, ':', (size_t)(at - colon - 1));
		l.access_key = s3_decoded(rest, (size_t)(colon - rest));
		l.secret_key = s3_decoded(colon + 1, (size_t)((c2 ? c2 : at) - colon - 1));
		if (c2)
			l.token = s3_decoded(c2 + 1, (size_t)(at - c2 - 1));
		if (!l.access_key || !l.secret_key || (c2 && !l.token)) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "'%s': bad percent-encoding in the credentials", shown.p);
			goto fail;
		}
		if (!*l.secret_key) {
			err = sm_diag_set(d, SM_EINVAL, 0, "'%s': the secret key is empty",
			                  shown.p);
			goto fail;
		}
		rest = at + 1;
	}
	const char *slash = strchr(rest, '/');
	size_t hlen = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *path = slash ? slash + 1 : "";
	if (hlen == 0) {
		err = sm_diag_set(d, SM_EINVAL, 0, "'%s': missing the bucket", shown.p);
		goto fail;
	}
	/* an explicit port: 1-65535 */
	const char *hc = rest;
	if (*rest == '[') {
		const char *e = memchr(rest, ']', hlen);
		if (!e) {
			err = sm_diag_set(d, SM_EINVAL, 0, "'%s': unclosed '[' in the endpoint",
			                  shown.p);
			goto fail;
		}
		hc = e + 1;
	}
	const char *pc = memchr(hc, ':', hlen - (size_t)(hc - rest));
	if (pc || (hc != rest && hc < rest + hlen)) {
		const char *q = pc ? pc + 1 : hc;
		size_t n = hlen - (size_t)(q - rest);
		char num[8] = "";
		int64_t port;
		if (!pc || n == 0 || n >= sizeof(num) || strspn(q, "0123456789") < n ||
		    (memcpy(num, q, n), !sm_parse_i64(num, 1, 65535, &port))) {
			err = sm_diag_set(d, SM_EINVAL, 0, "'%s': bad port '%.*s' (1-65535)",
			                  shown.p, n > 32 ? 32 : (int)n, q);
			goto fail;
		}
	}
	bool port = pc != NULL || rest[0] == '[';
	bool local = (hlen == 9 && strncmp(rest, "localhost", 9) == 0) || s3_is_ipv4(rest, hlen);
	const char *dot = memchr(rest, '.', hlen);
	if (port || local || strcmp(l.scheme, "minio") == 0) {
		l.path_style = true;
		l.endpoint = sm_strndup(rest, hlen);
		const char *bs = strchr(path, '/');
		size_t blen = bs ? (size_t)(bs - path) : strlen(path);
		if (blen == 0) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "'%s': missing the bucket (path style: ENDPOINT/BUCKET)",
			                  shown.p);
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
			err = sm_diag_set(d, SM_EINVAL, 0, "'%s': the endpoint is missing",
			                  shown.p);
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
	if (!l.region) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	if (!l.endpoint) {
		char ep[128];
		if (strcmp(l.region, "us-east-1") == 0)
			snprintf(ep, sizeof(ep), "s3.amazonaws.com");
		else
			snprintf(ep, sizeof(ep), "s3.%s.amazonaws.com", l.region);
		l.endpoint = strdup(ep);
	}
	/* credentials not in the URL: a URL without them never means
	 * unsigned requests (the server would only say AccessDenied) */
	if (!at) {
		err = s3_creds(&l, shown.p, d);
		if (err != SM_OK)
			goto fail;
	}
	/* the printable form: secrets masked, the bucket where the user put it */
	char who[300] = "", where[1024], disp[2048];
	if (at)
		snprintf(who, sizeof(who), "%s:****@", l.access_key);
	if (l.path_style)
		snprintf(where, sizeof(where), "%s/%s", l.endpoint, l.bucket);
	else if (dot)
		snprintf(where, sizeof(where), "%s.%s", l.bucket, l.endpoint);
	else
		snprintf(where, sizeof(where), "%s", l.bucket);
	snprintf(disp, sizeof(disp), "%s://%s%s%s%s", l.scheme, who, where, *l.prefix ? "/" : "",
	         l.prefix);
	if (!(l.display = strdup(disp)) || !l.endpoint) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	sm_buf_release(&shown);
	*out = l;
	return SM_OK;
fail:
	sm_buf_release(&shown);
	sm_s3_loc_release(&l);
	return err;
}
