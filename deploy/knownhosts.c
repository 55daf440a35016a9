/*
 * known_hosts lookups (knownhosts.h): one pass over each file, every entry
 * whose patterns name the host weighed, the verdict taken at the end
 * (revoked over matching over changed over CA-only over unknown), as
 * OpenSSH's check_key_in_hostkeys() does.
 */
#include "knownhosts.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sshconfig.h"

#define KH_LINE_MAX (64u << 10) /* longer lines are skipped (a 16k-bit RSA key is ~3 KiB) */
#define KH_BLOB_MAX (16u << 10)
#define KH_NAME_MAX 1100 /* a host name, in brackets, with a port */

void sm_kh_name(const char *host, int port, char *out, size_t n)
{
	if (port == 22 || port <= 0)
		snprintf(out, n, "%s", host);
	else
		snprintf(out, n, "[%s]:%d", host, port);
}

/* Decode base64 s[0..len) (padding allowed at the end only) into out;
 * returns the byte count, or -1 when it is not base64 or does not fit. */
static long kh_b64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t got = 0;
	unsigned acc = 0;
	int bits = 0;
	size_t i = 0;
	for (; i < len && s[i] != '='; i++) {
		const char *v = s[i] ? strchr(tbl, s[i]) : NULL;
		if (!v)
			return -1;
		acc = (acc << 6) | (unsigned)(v - tbl);
		bits += 6;
		if (bits >= 8) {
			if (got == cap)
				return -1;
			bits -= 8;
			out[got++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	for (; i < len; i++)
		if (s[i] != '=')
			return -1;
	return (long)got;
}

/* A hashed name "|1|salt|hash": HMAC-SHA1 of name keyed by salt equals hash. */
static bool kh_hashed_match(const char *p, size_t len, const char *name)
{
	const char *salt = p + 3, *end = p + len;
	const char *bar = memchr(salt, '|', (size_t)(end - salt));
	if (!bar)
		return false;
	unsigned char sb[64], hb[64], mac[EVP_MAX_MD_SIZE];
	long sn = kh_b64_decode(salt, (size_t)(bar - salt), sb, sizeof(sb));
	long hn = kh_b64_decode(bar + 1, (size_t)(end - bar - 1), hb, sizeof(hb));
	if (sn <= 0 || hn != 20)
		return false;
	unsigned mlen = 0;
	if (!HMAC(EVP_sha1(), sb, (int)sn, (const unsigned char *)name, strlen(name), mac, &mlen) ||
	    mlen != 20)
		return false;
	return memcmp(mac, hb, 20) == 0;
}

bool sm_kh_host_match(const char *patterns, size_t len, const char *name)
{
	if (len >= 3 && memcmp(patterns, "|1|", 3) == 0)
		return kh_hashed_match(patterns, len, name);
	char lname[KH_NAME_MAX];
	size_t nl = strlen(name);
	if (nl >= sizeof(lname))
		return false;
	for (size_t i = 0; i <= nl; i++)
		lname[i] = (char)tolower((unsigned char)name[i]);
	bool pos = false;
	const char *p = patterns, *end = patterns + len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		bool neg = *p == '!';
		const char *q = neg ? p + 1 : p;
		char pat[KH_NAME_MAX];
		if (e > q && (size_t)(e - q) < sizeof(pat)) {
			for (size_t i = 0; i < (size_t)(e - q); i++)
				pat[i] = (char)tolower((unsigned char)q[i]);
			pat[e - q] = '\0';
			if (sm_ssh_pattern_match(pat, lname)) {
				if (neg)
					return false; /* a negated match rules the line out */
				pos = true;
			}
		}
		p = e + 1;
	}
	return pos;
}

enum kh_marker { KH_PLAIN, KH_REVOKED, KH_CA, KH_OTHER };

/* One parsed line, its fields borrowed from the line. */
struct kh_entry {
	enum kh_marker marker;
	const char *hosts;
	size_t hosts_len;
	const char *type;
	size_t type_len;
	const char *key;
	size_t key_len;
};

static const char *kh_skip_blank(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static const char *kh_word(const char *p, size_t *len)
{
	size_t n = strcspn(p, " \t\r\n");
	*len = n;
	return p + n;
}

/* Split a line; false for comments, blank and malformed lines. */
static bool kh_parse(const char *line, struct kh_entry *e)
{
	const char *p = kh_skip_blank(line);
	if (*p == '\0' || *p == '#' || *p == '\r' || *p == '\n')
		return false;
	e->marker = KH_PLAIN;
	size_t n;
	if (*p == '@') {
		const char *end = kh_word(p, &n);
		if (n == 8 && memcmp(p, "@revoked", 8) == 0)
			e->marker = KH_REVOKED;
		else if (n == 15 && memcmp(p, "@cert-authority", 15) == 0)
			e->marker = KH_CA;
		else
			e->marker = KH_OTHER;
		p = kh_skip_blank(end);
	}
	e->hosts = p;
	p = kh_word(p, &e->hosts_len);
	e->type = p = kh_skip_blank(p);
	p = kh_word(p, &e->type_len);
	e->key = p = kh_skip_blank(p);
	kh_word(p, &e->key_len);
	return e->hosts_len && e->type_len && e->key_len && e->marker != KH_OTHER;
}

/* The key type named at the start of a blob (an SSH string). */
static bool kh_blob_type(const unsigned char *blob, size_t n, const char **type, size_t *len)
{
	if (n < 4)
		return false;
	uint32_t l = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 |
	             blob[3];
	if (l == 0 || l > n - 4 || l > 63)
		return false;
	*type = (const char *)blob + 4;
	*len = l;
	return true;
}

/* Call fn for each parsed entry of the files that names `name`; fn returns
 * false to stop. */
typedef bool (*kh_visit)(void *arg, const char *file, int line, const struct kh_entry *e);

static void kh_each(const char *const *files, size_t nfiles, const char *name, kh_visit fn,
                    void *arg)
{
	char *buf = NULL;
	size_t cap = 0;
	for (size_t f = 0; f < nfiles; f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp)
			continue;
		int lineno = 0;
		bool go = true;
		ssize_t r;
		while (go && (r = getline(&buf, &cap, fp)) >= 0) {
			lineno++;
			if ((size_t)r > KH_LINE_MAX || memchr(buf, '\0', (size_t)r))
				continue;
			struct kh_entry e;
			if (!kh_parse(buf, &e) || !sm_kh_host_match(e.hosts, e.hosts_len, name))
				continue;
			go = fn(arg, files[f], lineno, &e);
		}
		fclose(fp);
		if (!go)
			break;
	}
	free(buf);
}

struct kh_check {
	const unsigned char *blob;
	size_t n;
	struct sm_kh_verdict *v;
	bool match, revoked;
	bool changed, ca;
	unsigned char *tmp; /* KH_BLOB_MAX bytes */
};

static void kh_note(struct sm_kh_verdict *v, const char *file, int line, const struct kh_entry *e)
{
	snprintf(v->file, sizeof(v->file), "%s", file);
	v->line = line;
	snprintf(v->keytype, sizeof(v->keytype), "%.*s", (int)(e->type_len < 63 ? e->type_len : 63),
	         e->type);
}

static bool kh_check_one(void *arg, const char *file, int line, const struct kh_entry *e)
{
	struct kh_check *c = arg;
	long kn = kh_b64_decode(e->key, e->key_len, c->tmp, KH_BLOB_MAX);
	if (kn <= 0)
		return true; /* not a key ssh would read either */
	bool same = (size_t)kn == c->n && memcmp(c->tmp, c->blob, c->n) == 0;
	switch (e->marker) {
	case KH_REVOKED:
		if (same) {
			c->revoked = true;
			kh_note(c->v, file, line, e);
			return false; /* nothing overrides it */
		}
		break;
	case KH_CA:
		if (!c->ca && !c->changed)
			kh_note(c->v, file, line, e);
		c->ca = true;
		break;
	case KH_PLAIN:
		if (same) {
			c->match = true;
		} else if (!c->changed) {
			c->changed = true;
			kh_note(c->v, file, line, e); /* the first other key is named */
		}
		break;
	case KH_OTHER: break;
	}
	return true;
}

void sm_kh_check(const char *const *files, size_t nfiles, const char *name,
                 const unsigned char *blob, size_t n, struct sm_kh_verdict *v)
{
	memset(v, 0, sizeof(*v));
	struct kh_check c = { .blob = blob, .n = n, .v = v, .tmp = malloc(KH_BLOB_MAX) };
	if (!c.tmp) {
		v->status = SM_KH_UNKNOWN; /* and unknown hosts are refused, unless accept-new */
		return;
	}
	kh_each(files, nfiles, name, kh_check_one, &c);
	free(c.tmp);
	if (c.revoked)
		v->status = SM_KH_REVOKED;
	else if (c.match)
		v->status = SM_KH_MATCH;
	else if (c.changed)
		v->status = SM_KH_CHANGED;
	else if (c.ca)
		v->status = SM_KH_CA_ONLY;
	else
		v->status = SM_KH_UNKNOWN;
	if (v->status == SM_KH_MATCH || v->status == SM_KH_UNKNOWN) {
		v->file[0] = v->keytype[0] = '\0';
		v->line = 0;
	}
}

/* The revoked keys for a host (decoded), for sm_kh_types. */
#define KH_REVOKED_MAX 16
struct kh_types {
	char *out;
	size_t n;
	unsigned char *revoked[KH_REVOKED_MAX];
	size_t revoked_len[KH_REVOKED_MAX];
	int nrevoked;
};

static bool kh_revoked_one(void *arg, const char *file, int line, const struct kh_entry *e)
{
	(void)file;
	(void)line;
	struct kh_types *t = arg;
	if (e->marker != KH_REVOKED || t->nrevoked == KH_REVOKED_MAX)
		return true;
	unsigned char *b = malloc(KH_BLOB_MAX);
	long kn = b ? kh_b64_decode(e->key, e->key_len, b, KH_BLOB_MAX) : -1;
	if (kn <= 0) {
		free(b);
		return true;
	}
	t->revoked[t->nrevoked] = b;
	t->revoked_len[t->nrevoked++] = (size_t)kn;
	return true;
}

static bool kh_types_one(void *arg, const char *file, int line, const struct kh_entry *e)
{
	(void)file;
	(void)line;
	struct kh_types *t = arg;
	if (e->marker != KH_PLAIN || e->type_len > 63)
		return true;
	if (t->nrevoked) { /* a revoked key is not one to ask for */
		unsigned char *b = malloc(KH_BLOB_MAX);
		long kn = b ? kh_b64_decode(e->key, e->key_len, b, KH_BLOB_MAX) : -1;
		bool revoked = false;
		for (int i = 0; kn > 0 && i < t->nrevoked && !revoked; i++)
			revoked = t->revoked_len[i] == (size_t)kn &&
			          memcmp(t->revoked[i], b, (size_t)kn) == 0;
		free(b);
		if (revoked)
			return true;
	}
	char type[64];
	snprintf(type, sizeof(type), "%.*s", (int)e->type_len, e->type);
	/* already listed? */
	size_t tl = strlen(type);
	for (const char *p = t->out; *p;) {
		size_t l = strcspn(p, ",");
		if (l == tl && memcmp(p, type, tl) == 0)
			return true;
		p += l + (p[l] == ',');
	}
	size_t len = strlen(t->out);
	if (len + tl + 2 <= t->n)
		snprintf(t->out + len, t->n - len, "%s%s", len ? "," : "", type);
	return true;
}

void sm_kh_types(const char *const *files, size_t nfiles, const char *name, char *out, size_t n)
{
	if (!n)
		return;
	out[0] = '\0';
	struct kh_types t = { .out = out, .n = n };
	kh_each(files, nfiles, name, kh_revoked_one, &t);
	kh_each(files, nfiles, name, kh_types_one, &t);
	for (int i = 0; i < t.nrevoked; i++)
		free(t.revoked[i]);
}

enum sm_err sm_kh_line(const char *name, const unsigned char *blob, size_t n, bool hash, char *out,
                       size_t cap, struct sm_diag *d)
{
	const char *type;
	size_t tlen;
	if (!kh_blob_type(blob, n, &type, &tlen) || n > KH_BLOB_MAX)
		return sm_diag_set(d, SM_EINVAL, 0, "malformed host key");
	char host[160];
	const char *shown = name;
	if (hash) {
		unsigned char salt[20], mac[EVP_MAX_MD_SIZE];
		unsigned mlen = 0;
		char s64[64], h64[64];
		if (RAND_bytes(salt, sizeof(salt)) != 1 ||
		    !HMAC(EVP_sha1(), salt, sizeof(salt), (const unsigned char *)name, strlen(name),
		          mac, &mlen) ||
		    mlen != 20)
			return sm_diag_set(d, SM_EIO, 0, "cannot hash the host name");
		EVP_EncodeBlock((unsigned char *)s64, salt, sizeof(salt));
		EVP_EncodeBlock((unsigned char *)h64, mac, 20);
		snprintf(host, sizeof(host), "|1|%s|%s", s64, h64);
		shown = host;
	}
	size_t b64n = 4 * ((n + 2) / 3) + 1;
	char *b64 = malloc(b64n);
	if (!b64)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	EVP_EncodeBlock((unsigned char *)b64, blob, (int)n);
	int w = snprintf(out, cap, "%s %.*s %s\n", shown, (int)tlen, type, b64);
	free(b64);
	if (w < 0 || (size_t)w >= cap)
		return sm_diag_set(d, SM_EINVAL, 0, "host key line too long");
	return SM_OK;
}
