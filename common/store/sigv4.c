#include "sigv4.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIGV4_MAX_HEADERS 64
#define SIGV4_MAX_QUERY 64

static const char hexdig[] = "0123456789abcdef";

static void sigv4_hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void sm_sha256_hex(const void *data, size_t n, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, n, md);
	sigv4_hex(md, sizeof(md), out);
}

void sm_sigv4_date(int64_t t, char out[17])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

enum sm_err sm_sigv4_encode(struct sm_buf *out, const char *s, bool keep_slash)
{
	static const char up[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		            c == '~' || (keep_slash && c == '/');
		char enc[3] = { '%', up[c >> 4], up[c & 15] };
		if (sm_buf_append(out, keep ? (const char *)p : enc, keep ? 1 : 3) != SM_OK)
			return SM_ENOMEM;
	}
	return SM_OK;
}

struct sigv4_pair {
	char *name;  /* owned */
	char *value; /* owned */
};

static int sigv4_pair_cmp(const void *a, const void *b)
{
	const struct sigv4_pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

/* Header values: leading/trailing space dropped, inner runs collapsed. */
static char *sigv4_trim(const char *v)
{
	size_t n = strlen(v);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t j = 0;
	bool space = false;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (c == ' ' || c == '\t') {
			space = j > 0;
			continue;
		}
		if (space)
			out[j++] = ' ';
		space = false;
		out[j++] = c;
	}
	out[j] = '\0';
	return out;
}

static void sigv4_pairs_free(struct sigv4_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
}

static void sigv4_hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int len = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

enum sm_err sm_sigv4_sign(const struct sm_sigv4_cred *c, const struct sm_sigv4_req *r,
                          struct sm_buf *auth, char *creq_hash, struct sm_diag *d)
{
	if (r->n_headers > SIGV4_MAX_HEADERS || r->n_query > SIGV4_MAX_QUERY)
		return sm_diag_set(d, SM_EINVAL, 0, "sigv4: too many headers or query parameters");
	if (strlen(r->amz_date) != 16)
		return sm_diag_set(d, SM_EINVAL, 0, "sigv4: bad date '%s'", r->amz_date);
	struct sigv4_pair hs[SIGV4_MAX_HEADERS] = { 0 }, qs[SIGV4_MAX_QUERY] = { 0 };
	struct sm_buf creq = { 0 }, sts = { 0 }, signed_h = { 0 };
	enum sm_err err = SM_ENOMEM;

	/* canonical query: encoded names and values, sorted */
	for (size_t i = 0; i < r->n_query; i++) {
		struct sm_buf n = { 0 }, v = { 0 };
		if (sm_sigv4_encode(&n, r->query[i].name, false) != SM_OK ||
		    sm_buf_append(&n, "", 0) != SM_OK ||
		    sm_sigv4_encode(&v, r->query[i].value ? r->query[i].value : "", false) !=
		            SM_OK ||
		    sm_buf_append(&v, "", 0) != SM_OK) {
			sm_buf_release(&n);
			sm_buf_release(&v);
			goto out;
		}
		qs[i] = (struct sigv4_pair){ n.p, v.p };
	}
	qsort(qs, r->n_query, sizeof(qs[0]), sigv4_pair_cmp);
	/* canonical headers: lower-case names, trimmed values, sorted */
	for (size_t i = 0; i < r->n_headers; i++) {
		char *n = strdup(r->headers[i].name);
		char *v = sigv4_trim(r->headers[i].value);
		if (!n || !v) {
			free(n);
			free(v);
			goto out;
		}
		for (char *p = n; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		hs[i] = (struct sigv4_pair){ n, v };
	}
	qsort(hs, r->n_headers, sizeof(hs[0]), sigv4_pair_cmp);

	if (sm_buf_appendz(&creq, r->method) || sm_buf_append(&creq, "\n", 1) ||
	    sm_buf_appendz(&creq, r->uri) || sm_buf_append(&creq, "\n", 1))
		goto out;
	for (size_t i = 0; i < r->n_query; i++) {
		if ((i && sm_buf_append(&creq, "&", 1)) || sm_buf_appendz(&creq, qs[i].name) ||
		    sm_buf_append(&creq, "=", 1) || sm_buf_appendz(&creq, qs[i].value))
			goto out;
	}
	if (sm_buf_append(&creq, "\n", 1) || sm_buf_append(&signed_h, "", 0))
		goto out;
	for (size_t i = 0; i < r->n_headers; i++) {
		if (sm_buf_appendz(&creq, hs[i].name) || sm_buf_append(&creq, ":", 1) ||
		    sm_buf_appendz(&creq, hs[i].value) || sm_buf_append(&creq, "\n", 1) ||
		    (i && sm_buf_append(&signed_h, ";", 1)) ||
		    sm_buf_appendz(&signed_h, hs[i].name))
			goto out;
	}
	if (sm_buf_append(&creq, "\n", 1) || sm_buf_appendz(&creq, signed_h.p) ||
	    sm_buf_append(&creq, "\n", 1) || sm_buf_appendz(&creq, r->payload_hash))
		goto out;

	char hash[65];
	sm_sha256_hex(creq.p, creq.len, hash);
	if (creq_hash)
		memcpy(creq_hash, hash, 65);
	char day[9];
	memcpy(day, r->amz_date, 8);
	day[8] = '\0';
	char scope[256];
	snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", day, c->region, c->service);
	if (sm_buf_appendz(&sts, "AWS4-HMAC-SHA256\n") || sm_buf_appendz(&sts, r->amz_date) ||
	    sm_buf_append(&sts, "\n", 1) || sm_buf_appendz(&sts, scope) ||
	    sm_buf_append(&sts, "\n", 1) || sm_buf_appendz(&sts, hash))
		goto out;

	/* signing key: HMAC chain over date, region, service, "aws4_request" */
	size_t sklen = strlen(c->secret_key);
	char *k0 = malloc(sklen + 5);
	if (!k0)
		goto out;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, c->secret_key, sklen + 1);
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	sigv4_hmac(k0, sklen + 4, day, k1);
	free(k0);
	sigv4_hmac(k1, 32, c->region, k2);
	sigv4_hmac(k2, 32, c->service, k3);
	sigv4_hmac(k3, 32, "aws4_request", k4);
	sigv4_hmac(k4, 32, sts.p, sig);
	char sighex[65];
	sigv4_hex(sig, 32, sighex);

	auth->len = 0;
	if (sm_buf_appendz(auth, "AWS4-HMAC-SHA256 Credential=") ||
	    sm_buf_appendz(auth, c->access_key) || sm_buf_append(auth, "/", 1) ||
	    sm_buf_appendz(auth, scope) || sm_buf_appendz(auth, ", SignedHeaders=") ||
	    sm_buf_appendz(auth, signed_h.p) || sm_buf_appendz(auth, ", Signature=") ||
	    sm_buf_appendz(auth, sighex))
		goto out;
	err = SM_OK;
out:
	if (err != SM_OK)
		sm_diag_set(d, err, 0, "out of memory while signing");
	sigv4_pairs_free(hs, r->n_headers);
	sigv4_pairs_free(qs, r->n_query);
	sm_buf_release(&creq);
	sm_buf_release(&sts);
	sm_buf_release(&signed_h);
	return err;
}
