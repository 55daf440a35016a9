#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3url.h"
#include "store/sftp.h"
#include "util.h"

static const char *const later_schemes[][2] = {
	{ "dav://", "WebDAV" },
	{ "davs://", "WebDAV" },
	{ "jfs://", "JuiceFS" },
	{ "hdfs://", "HDFS" },
};

void sm_url_release(struct sm_url *u)
{
	if (!u)
		return;
	free(u->scheme);
	free(u->path);
	free(u->display);
	memset(u, 0, sizeof(*u));
}

const char *sm_url_mask(const char *s, char *buf, size_t n)
{
	/* userinfo: after "scheme://", or from the start, up to the last '@'
	 * before the first '/' that follows it */
	const char *ui = strstr(s, "://");
	ui = ui ? ui + 3 : s;
	const char *slash = strchr(ui, '/');
	const char *at = NULL;
	for (const char *p = ui; *p && (!slash || p < slash); p++)
		if (*p == '@')
			at = p;
	const char *colon = at ? memchr(ui, ':', (size_t)(at - ui)) : NULL;
	if (!colon) {
		snprintf(buf, n, "%s", s);
		return buf;
	}
	snprintf(buf, n, "%.*s****%s", (int)(colon + 1 - s), s, at);
	return buf;
}

enum sm_err sm_url_parse(const char *s, struct sm_url *out, struct sm_diag *d)
{
	struct sm_url u = { 0 };
	if (!*s)
		return sm_diag_set(d, SM_EINVAL, 0, "empty storage path");
	for (size_t i = 0; i < sizeof(later_schemes) / sizeof(later_schemes[0]); i++) {
		if (strncmp(s, later_schemes[i][0], strlen(later_schemes[i][0])) == 0)
			return sm_diag_set(
			        d, SM_ENOTSUP, 0, "'%.*s...': %s storage not supported yet",
			        (int)strlen(later_schemes[i][0]), s, later_schemes[i][1]);
	}
	/* remote stores parse the rest themselves; here only what every
	 * store has, and the display form with secrets masked */
	char *display = NULL;
	const char *scheme = NULL;
	enum sm_err err = SM_OK;
	if (sm_s3_scheme(s)) {
		struct sm_s3_loc loc;
		scheme = "s3";
		err = sm_s3_loc_parse(s, true, &loc, d);
		if (err == SM_OK) {
			display = sm_strdup(loc.display);
			sm_s3_loc_release(&loc);
		}
	} else if (sm_sftp_url(s)) {
		struct sm_sftp_loc loc;
		scheme = "sftp";
		err = sm_sftp_loc_parse(s, &loc, d);
		if (err == SM_OK) {
			display = sm_strdup(loc.display);
			sm_sftp_loc_release(&loc);
		}
	}
	if (err != SM_OK)
		return err;
	if (scheme) {
		u.scheme = sm_strdup(scheme);
		u.path = sm_strdup(s);
		u.display = display;
		if (!u.scheme || !u.path || !u.display) {
			sm_url_release(&u);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		u.trailing = s[strlen(s) - 1] == '/';
		*out = u;
		return SM_OK;
	}
	const char *path = s;
	char masked[512];
	if (strncmp(s, "file://", 7) == 0) {
		path = s + 7;
		if (*path != '/')
			return sm_diag_set(d, SM_EINVAL, 0, "'%s': file:// needs an absolute path",
			                   sm_url_mask(s, masked, sizeof(masked)));
	} else if (strstr(s, "://")) {
		return sm_diag_set(d, SM_EINVAL, 0, "'%s': unknown storage scheme",
		                   sm_url_mask(s, masked, sizeof(masked)));
	}
	u.scheme = sm_strdup("file");
	u.path = sm_strdup(path);
	u.display = sm_strdup(s);
	if (!u.scheme || !u.path || !u.display) {
		sm_url_release(&u);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	size_t n = strlen(s);
	u.trailing = s[n - 1] == '/';
	*out = u;
	return SM_OK;
}
