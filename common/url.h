/* Storage URLs: which backend, and where. */
#ifndef SM_URL_H
#define SM_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct sm_url {
	char *scheme;  /* "file", "s3", "sftp", "dav", "davs" ... */
	char *path;    /* file: the local path as given (file:// stripped) */
	bool trailing; /* the original ends in '/' */
	char *display; /* printable form, secrets masked */
};

/* Parse `s`. Unknown or not yet built schemes are refused with a message
 * naming the URL. */
enum sm_err sm_url_parse(const char *s, struct sm_url *out, struct sm_diag *d);
void sm_url_release(struct sm_url *u);
/* `s` for a message about a string that may not parse as a URL: a password
 * in it ("scheme://user:PASS@host...", "user:PASS@host:path") replaced by
 * "****". Written to buf (n bytes, truncated); returns buf. */
const char *sm_url_mask(const char *s, char *buf, size_t n);

#endif
