/*
 * SFTP locations: `[user[:pass]@]host:/path` and `host:rel/path` (relative
 * to the login directory), `[user[:pass]@]host:port:/path`, and
 * `sftp://[user[:pass]@]host[:port]/path`. IPv6 hosts go in brackets.
 * User and password may be percent-encoded; the password never appears in
 * `display` (user:****@host:/path) nor in a parse error, which quotes the
 * location with the password masked.
 *
 * The user part ends at the last '@' before the host: `u:p@ss@host:/x` has
 * the password `p@ss`. A password holding '/' works unencoded when the
 * user:pass before the '/' cannot be read otherwise (`u:pa/ss@host:/x`,
 * `sftp://u:pa/ss@host/x`); an '@' after the first '/' is otherwise part
 * of the path (`host:/a@b`, `srv:dir/a@b`).
 *
 * The path of an sftp:// URL is percent-decoded (%XX; a '+' stays a '+').
 * `~` and `~/dir` (`sftp://host/~/dir`) are the login directory and below
 * it, as scp and rsync read them (path "" and "dir"); `~user/dir` is kept
 * for the server to expand (expand-path@openssh.com).
 *
 * Ports are 1-65535; anything else is an error naming the port. In the scp
 * form only `host:DIGITS:/path` (and `host:DIGITS:~/path`) has a port:
 * `host:2024:notes` is the relative path `2024:notes`, and
 * `host:99999:/p` a bad port.
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
	char *path; /* remote path: "/abs", "rel", "" (the login directory), "~user/rel" */
	char *display;
};

/* True for strings in one of the forms above. */
bool sm_sftp_url(const char *s);
enum sm_err sm_sftp_loc_parse(const char *s, struct sm_sftp_loc *out, struct sm_diag *d);
void sm_sftp_loc_release(struct sm_sftp_loc *l); /* accepts NULL */

#endif
