/*
 * SFTP locations (sftp.h): the scp forms, the port form and sftp:// URLs,
 * parsed into user, password, host, port and path, with a display form
 * that masks the password.
 */
#include "sftp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "xml.h" /* sm_url_decode */

void sm_sftp_loc_release(struct sm_sftp_loc *l)
{
	if (!l)
		return;
	free(l->user);
	free(l->password);
	free(l->host);
	free(l->path);
	free(l->display);
	memset(l, 0, sizeof(*l));
}

/* Percent-decoded copy of s[0..n), or NULL (a bad escape, out of memory):
 * only %XX, a '+' stays a '+' (secrets hold them; it is no space here). */
static char *sftp_decode(const char *s, size_t n)
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

/* Does `p` (up to `end`) start with a host followed by ':' ("[v6]:" too)? */
static bool sftp_host_colon(const char *p, const char *end)
{
	if (*p == '[') {
		const char *e = memchr(p, ']', (size_t)(end - p));
		return e && e + 1 < end && e[1] == ':';
	}
	const char *colon = memchr(p, ':', (size_t)(end - p));
	return colon && colon != p;
}

/* Is q..end (no '@' in it) a host and a ':' ("[v6]:" too)? */
static bool sftp_at_host_colon(const char *q, const char *end)
{
	const char *colon = memchr(q, ':', (size_t)(end - q));
	return sftp_host_colon(q, end) && colon && !memchr(q, '@', (size_t)(colon - q));
}

/*
 * The '@' ending the user part of an scp-style location, or NULL: the last
 * '@' before the first '/' that a ':' follows. So "srv:a@b/" is host srv,
 * path a@b/ (rsync's reading), "u:p@ss@host:/x" has the password p@ss, and
 * "u:p@ss@:/x" has no host (an error, not a path "p@ss@:/x"). Failing that,
 * a password holding '/' ("u:pa/ss@host:/x"): user and password start
 * before the first '/' (both non-empty), and the first later '@' followed
 * by "host:" ends them.
 */
static const char *sftp_scp_at(const char *s)
{
	const char *end = s + strcspn(s, "/");
	for (const char *q = end; q > s; q--)
		if (q[-1] == '@' && memchr(q, ':', (size_t)(end - q)))
			return q - 1;
	const char *colon = memchr(s, ':', (size_t)(end - s));
	if (!*end || !colon || colon == s || colon + 1 == end || *s == '[' ||
	    memchr(s, '@', (size_t)(colon - s)))
		return NULL;
	for (const char *q = strchr(end, '@'); q; q = strchr(q + 1, '@'))
		if (sftp_at_host_colon(q + 1, q + 1 + strcspn(q + 1, "/")))
			return q;
	return NULL;
}

/* Is p..end a URL authority without user part: host or [v6], then an
 * optional ':' and digits? */
static bool sftp_authority(const char *p, const char *end)
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
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p == end;
}

/*
 * The '@' ending the userinfo of an sftp:// URL (p after "sftp://"), or
 * NULL: the last '@' before the first '/', when a host follows it. Failing
 * that, when what stands before the first '/' is no host[:port] but
 * user:pass, a password holding '/' ("sftp://u:pa/ss@host/x"): the first
 * later '@' followed by a host (no '@' up to the next '/').
 */
static const char *sftp_url_at(const char *p)
{
	const char *end = p + strcspn(p, "/");
	const char *at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at && at + 1 < end)
		return at;
	const char *colon = memchr(p, ':', (size_t)(end - p));
	if (!*end || !colon || colon == p || (!at && sftp_authority(p, end)))
		return at;
	for (const char *q = strchr(end, '@'); q; q = strchr(q + 1, '@')) {
		size_t n = strcspn(q + 1, "/");
		if (n && !memchr(q + 1, '@', n))
			return q;
	}
	return at;
}

bool sm_sftp_url(const char *s)
{
	if (strncmp(s, "sftp://", 7) == 0)
		return true;
	if (strstr(s, "://"))
		return false;
	/* rsync's rule: a host and ':' before the first '/' */
	/* rsync's rule: a host and ':' before the first '/'; or a user part
	 * (then a bad host is an error, not a local path showing a password) */
	return sftp_scp_at(s) || sftp_host_colon(s, s + strcspn(s, "/"));
}

/* A port of n characters at q: digits, 1-65535. */
static bool sftp_port(const char *q, size_t n, int *out)
{
	char num[8];
	int64_t v;
	if (n == 0 || n >= sizeof(num) || strspn(q, "0123456789") < n)
		return false;
	memcpy(num, q, n);
	num[n] = '\0';
	if (!sm_parse_i64(num, 1, 65535, &v))
		return false;
	*out = (int)v;
	return true;
}

enum sm_err sm_sftp_loc_parse(const char *s, struct sm_sftp_loc *out, struct sm_diag *d)
{
	struct sm_sftp_loc l = { 0 };
	struct sm_buf shown = { 0 }; /* s for messages, the password masked */
	bool url = strncmp(s, "sftp://", 7) == 0;
	const char *p = url ? s + 7 : s;
	const char *at = url ? sftp_url_at(p) : sftp_scp_at(p);
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	enum sm_err err = SM_EINVAL;
	if (sm_buf_appendz(&shown, url ? "sftp://" : "") ||
	    (at && (sm_buf_append(&shown, p, (size_t)((colon ? colon : at) - p)) ||
	            sm_buf_appendz(&shown, colon ? ":****@" : "@"))) ||
	    sm_buf_appendz(&shown, at ? at + 1 : p))
		goto nomem;
	if (at) {
		l.user = sftp_decode(p, (size_t)((colon ? colon : at) - p));
		if (colon)
			l.password = sftp_decode(colon + 1, (size_t)(at - colon - 1));
		if (!l.user || (colon && !l.password) || !*l.user) {
			sm_diag_set(
			        d, SM_EINVAL, 0,
			        "'%s': bad user or password (percent-encode special characters)",
			        shown.p);
			goto fail;
		}
		p = at + 1;
	}
	const char *h = p, *hend;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend) {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': unclosed '[' in the host", shown.p);
			goto fail;
		}
		h = p + 1;
		p = hend + 1;
	} else {
		hend = p + strcspn(p, url ? ":/" : ":");
		p = hend;
	}
	if (hend == h || memchr(h, '@', (size_t)(hend - h))) {
		sm_diag_set(d, SM_EINVAL, 0, "'%s': no host", shown.p);
		goto fail;
	}
	if (!(l.host = sm_strndup(h, (size_t)(hend - h))))
		goto nomem;
	/* the port: sftp://host:port/path, or the scp form host:port:/path
	 * (digits, then ":/": so host:2024:notes is a relative path) */
	const char *rest = p;
	if (*p == ':') {
		const char *q = p + 1;
		size_t n = url ? strcspn(q, "/") : strspn(q, "0123456789");
		/* host:DIGITS:/path, host:DIGITS:~/path, host:DIGITS:~ */
		const char *a = q + n + 1;
		bool has_port = url ? n > 0
		                    : (n > 0 && q[n] == ':' &&
		                       (a[0] == '/' || (a[0] == '~' && (a[1] == '/' || !a[1]))));
		if (has_port && !sftp_port(q, n, &l.port)) {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': bad port '%.*s' (1-65535)", shown.p,
			            n > 32 ? 32 : (int)n, q);
			goto fail;
		}
		if (has_port || url)
			rest = q + n;
	}
	const char *shown_path; /* as typed, for the display form */
	if (url) {
		if (*rest && *rest != '/') {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': the path must start with '/'", shown.p);
			goto fail;
		}
		shown_path = *rest ? rest : "/";
		/* decoded like the user part; "/~/dir" is below the login directory
		 * (draft-ietf-secsh-scp-sftp-ssh-uri) */
		l.path = sftp_decode(shown_path, strlen(shown_path));
		if (!l.path) {
			sm_diag_set(d, SM_EINVAL, 0,
			            "'%s': bad percent-encoding in the path (%%XX, never %%00)",
			            shown.p);
			goto fail;
		}
		if (l.path[1] == '~')
			memmove(l.path, l.path + 1, strlen(l.path)); /* "~..." as in the scp form */
	} else {
		if (*rest != ':') {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': want host:/path", shown.p);
			goto fail;
		}
		shown_path = rest + 1;
		l.path = sm_strdup(rest + 1);
	}
	/* "~" and "~/dir" name the login directory, as scp and rsync read them:
	 * relative paths; "~user/dir" stays for the server to expand */
	if (l.path && l.path[0] == '~' && (l.path[1] == '/' || l.path[1] == '\0'))
		memmove(l.path, l.path + 1 + (l.path[1] == '/'),
		        strlen(l.path + 1 + (l.path[1] == '/')) + 1);
	/* the display form: the password masked */
	struct sm_buf b = { 0 };
	bool v6 = strchr(l.host, ':') != NULL;
	char port[16] = "";
	if (l.port)
		snprintf(port, sizeof(port), ":%d", l.port);
	if (sm_buf_appendz(&b, url ? "sftp://" : "") ||
	    (l.user && (sm_buf_appendz(&b, l.user) || (l.password && sm_buf_appendz(&b, ":****")) ||
	                sm_buf_appendz(&b, "@"))) ||
	    sm_buf_appendz(&b, v6 ? "[" : "") || sm_buf_appendz(&b, l.host) ||
	    sm_buf_appendz(&b, v6 ? "]" : "") || sm_buf_appendz(&b, port) ||
	    sm_buf_appendz(&b, url ? "" : ":") || sm_buf_appendz(&b, shown_path)) {
		sm_buf_release(&b);
		goto nomem;
	}
	l.display = b.p;
	if (!l.host || !l.path || !l.display)
		goto nomem;
	sm_buf_release(&shown);
	*out = l;
	return SM_OK;
nomem:
	sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	err = SM_ENOMEM;
fail:
	sm_buf_release(&shown);
	sm_sftp_loc_release(&l);
	return err;
}
