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

/* Percent-decoded copy of s[0..n). */
static char *sftp_decode(const char *s, size_t n)
{
	char *v = sm_strndup(s, n);
	if (v && !sm_url_decode(v)) {
		free(v);
		return NULL;
	}
	return v;
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

/*
 * The '@' ending the user part of an scp-style location, or NULL: the last
 * '@' before the first '/' that is followed by "host:". So "srv:a@b/" is
 * host srv, path a@b/ (rsync's reading), and "u:p@host:/x" has a password.
 */
static const char *sftp_scp_at(const char *s)
{
	const char *end = s + strcspn(s, "/");
	for (const char *q = end; q > s; q--)
		if (q[-1] == '@' && sftp_host_colon(q, end))
			return q - 1;
	return NULL;
}

bool sm_sftp_url(const char *s)
{
	if (strncmp(s, "sftp://", 7) == 0)
		return true;
	if (strstr(s, "://"))
		return false;
	/* rsync's rule: a host and ':' before the first '/' */
	const char *at = sftp_scp_at(s);
	const char *p = at ? at + 1 : s;
	return sftp_host_colon(p, s + strcspn(s, "/"));
}

enum sm_err sm_sftp_loc_parse(const char *s, struct sm_sftp_loc *out, struct sm_diag *d)
{
	struct sm_sftp_loc l = { 0 };
	bool url = strncmp(s, "sftp://", 7) == 0;
	const char *p = url ? s + 7 : s;
	/* userinfo: a URL's up to the last '@' of its authority */
	const char *at = NULL;
	if (url) {
		for (const char *q = p; *q && *q != '/'; q++)
			if (*q == '@')
				at = q;
	} else {
		at = sftp_scp_at(p);
	}
	enum sm_err err = SM_EINVAL;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		l.user = sftp_decode(p, (size_t)((colon ? colon : at) - p));
		if (colon)
			l.password = sftp_decode(colon + 1, (size_t)(at - colon - 1));
		if (!l.user || (colon && !l.password) || !*l.user) {
			sm_diag_set(
			        d, SM_EINVAL, 0,
			        "'%s': bad user or password (percent-encode special characters)",
			        url ? "sftp://..." : "user@host:...");
			goto fail;
		}
		p = at + 1;
	}
	const char *shown = p; /* messages quote from here: never the password */
	const char *h = p, *hend;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend) {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': unclosed '[' in the host", shown);
			goto fail;
		}
		h = p + 1;
		p = hend + 1;
	} else {
		hend = p + strcspn(p, url ? ":/" : ":");
		p = hend;
	}
	if (hend == h || memchr(h, '@', (size_t)(hend - h))) {
		sm_diag_set(d, SM_EINVAL, 0, "'%s': no host", shown);
		goto fail;
	}
	if (!(l.host = sm_strndup(h, (size_t)(hend - h))))
		goto nomem;
	/* optional :port (the scp form: host:port:/path) */
	const char *rest = p;
	if (*p == ':') {
		const char *q = p + 1;
		size_t nd = strspn(q, "0123456789");
		/* scp form: only host:port:/path, so host:2024:notes is a path */
		bool has_port = url ? nd > 0 : (nd > 0 && q[nd] == ':' && q[nd + 1] == '/');
		if (url && !has_port && *q != '/' && *q) {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': bad port", shown);
			goto fail;
		}
		if (has_port) {
			int64_t port;
			char num[8] = "";
			if (nd >= sizeof(num) ||
			    (memcpy(num, q, nd), !sm_parse_i64(num, 1, 65535, &port))) {
				sm_diag_set(d, SM_EINVAL, 0, "'%.*s': bad port", (int)nd, q);
				goto fail;
			}
			l.port = (int)port;
			rest = q + nd;
		}
	}
	if (url) {
		if (*rest && *rest != '/') {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': the path must start with '/'", shown);
			goto fail;
		}
		l.path = sm_strdup(*rest ? rest : "/");
	} else {
		if (*rest != ':') {
			sm_diag_set(d, SM_EINVAL, 0, "'%s': want host:/path", shown);
			goto fail;
		}
		l.path = sm_strdup(rest + 1);
	}
	/* the display form: the password masked */
	struct sm_buf b = { 0 };
	if (sm_buf_appendz(&b, url ? "sftp://" : "") ||
	    (l.user && (sm_buf_appendz(&b, l.user) || (l.password && sm_buf_appendz(&b, ":****")) ||
	                sm_buf_appendz(&b, "@"))) ||
	    sm_buf_appendz(&b, strchr(l.host, ':') ? "[" : "") || sm_buf_appendz(&b, l.host) ||
	    sm_buf_appendz(&b, strchr(l.host, ':') ? "]" : "")) {
		sm_buf_release(&b);
		err = SM_ENOMEM;
		goto nomem;
	}
	char tail[32] = "";
	if (l.port)
		snprintf(tail, sizeof(tail), url ? ":%d" : ":%d", l.port);
	if (sm_buf_appendz(&b, tail) || sm_buf_appendz(&b, url ? "" : ":") ||
	    sm_buf_appendz(&b, l.path ? l.path : "")) {
		sm_buf_release(&b);
		err = SM_ENOMEM;
		goto nomem;
	}
	l.display = b.p;
	if (!l.host || !l.path || !l.display)
		goto nomem;
	*out = l;
	return SM_OK;
nomem:
	sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	err = SM_ENOMEM;
fail:
	sm_sftp_loc_release(&l);
	return err;
}
