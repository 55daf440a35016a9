/*
 * SFTP locations: `[user[:pass]@]host:/path` and `host:rel/path` (relative
 * to the login directory), `[user[:pass]@]host:port:/path`, and
 * `sftp://[user[:pass]@]host[:port]/path`. IPv6 hosts go in brackets.
 * User and password may be percent-encoded; the password never appears in
 * `display` (user:****@host:/path).
 */
#ifndef SM_SFTP_H
#define SM_SFTP_H

#include <stdbool.h>

#include "../err.h"

struct sm_sftp_loc {
	char *user;     /* NULL when the URL has none */
	char *password; /* NULL when the URL has none */
	char *host;
	int port;   /* 0 when the URL has none */
	char *path; /* remote path as given: "/abs", "rel", or "" (the login directory) */
	char *display;
};

/* True for strings in one of the forms above. */
bool sm_sftp_url(const char *s);
enum sm_err sm_sftp_loc_parse(const char *s, struct sm_sftp_loc *out, struct sm_diag *d);
void sm_sftp_loc_release(struct sm_sftp_loc *l); /* accepts NULL */

#endif
