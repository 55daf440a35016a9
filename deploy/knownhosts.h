/*
 * known_hosts files as OpenSSH reads them (sshd(8), "SSH_KNOWN_HOSTS FILE
 * FORMAT"): `[@marker] patterns keytype base64-key [comment]`, patterns a
 * comma-separated list of names with `*`, `?` and `!negation`, or one
 * hashed name (`|1|salt|hash`, HMAC-SHA1). A host is looked up by the name
 * ssh uses: "host" on port 22, "[host]:port" otherwise, or HostKeyAlias.
 *
 * Every entry for the host counts, whatever its key type, as in ssh: a
 * server key that none of them holds while another key is known is a
 * changed key, also when the known one is of another type (libssh2's own
 * check calls that "not found", and accept-new would add it). Lines that
 * do not parse are skipped, as ssh skips them.
 */
#ifndef SM_KNOWNHOSTS_H
#define SM_KNOWNHOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/err.h"

enum sm_kh_status {
	SM_KH_UNKNOWN = 0, /* no entry for the host */
	SM_KH_MATCH,       /* a plain entry holds this key */
	SM_KH_CHANGED,     /* entries for the host, none with this key */
	SM_KH_REVOKED,     /* an @revoked entry for the host holds this key */
	SM_KH_CA_ONLY,     /* only @cert-authority entries name the host */
};

#define SM_KH_PATH_MAX 4096

struct sm_kh_verdict {
	enum sm_kh_status status;
	/* CHANGED: the first other key for the host; REVOKED: the @revoked
	 * line; CA_ONLY: the @cert-authority line; else empty / 0 */
	char file[SM_KH_PATH_MAX];
	int line;
	char keytype[64]; /* that line's key type ("ssh-rsa") */
};

/*
 * Look up `name` with the server's key `blob` (SSH wire format, `n`
 * bytes) in the files (missing or unreadable ones are skipped; later
 * files count as much as earlier ones). *v is always written.
 */
void sm_kh_check(const char *const *files, size_t nfiles, const char *name,
                 const unsigned char *blob, size_t n, struct sm_kh_verdict *v);

/* The key types the plain entries for `name` hold, in file order without
 * repeats, comma-separated into out (NUL-terminated, cut to n); a key that
 * is also @revoked does not count (ssh asks for the others first). */
void sm_kh_types(const char *const *files, size_t nfiles, const char *name, char *out, size_t n);

/* Does the pattern list of a known_hosts line (comma-separated, `!`
 * negations, wildcards, or one `|1|salt|hash`) match `name`? */
bool sm_kh_host_match(const char *patterns, size_t len, const char *name);

/* The name a host is looked up by: "host", or "[host]:port" off port 22. */
void sm_kh_name(const char *host, int port, char *out, size_t n);

/*
 * The line that records `name` with the key `blob` (keytype from the
 * blob, base64), hashed as HashKnownHosts does when `hash`, ending in
 * '\n', into out. SM_EINVAL when the blob is malformed or out is too small.
 */
enum sm_err sm_kh_line(const char *name, const unsigned char *blob, size_t n, bool hash, char *out,
                       size_t cap, struct sm_diag *d);

#endif
