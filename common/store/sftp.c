/*
 * SFTP backend (libssh2), over the SSH connections of the run's SSH layer
 * (cfg->ssh: deploy/ssh.c).
 *
 * The store keeps its connections open for the run: an operation takes an
 * idle one (or opens one more) and gives it back; a connection that fails
 * below SFTP (reset, timeout, the server's session process gone) is dropped
 * and the operation retried once on a new one. Listing walks the remote tree
 * depth-first, each directory's names sorted with '/' appended to
 * subdirectory names (the global key order), seeking into a range with
 * binary searches like the file backend. Reads and writes move up to
 * SFTP_IO bytes per call, which libssh2 pipelines as many requests in
 * flight. A put writes a temporary name in the target directory and renames
 * it into place; SFTP version 3 refuses to rename over an existing file and
 * libssh2 1.10 cannot send posix-rename@openssh.com, so an existing target
 * is renamed aside first and removed after (a reader may briefly miss the
 * key, but never sees half of it, and a failed rename puts the old one
 * back).
 */
#include "sftp.h"

#include <errno.h>
#include <inttypes.h>
#include <libssh2_sftp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../log.h"
#include "../util.h"
#include "sshlink.h"
#include "store.h"
#include "xml.h" /* sm_url_decode */

#define SFTP_IO (1u << 20) /* bytes per read/write call: pipelined by libssh2 */
#define SFTP_NAME_MAX 4096
#define SFTP_IDLE_MAX 64

/* ---- locations ---- */

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

/* ---- connections ---- */

struct sftp_conn {
	struct sm_ssh_conn *ssh;
	LIBSSH2_SESSION *s;
	LIBSSH2_SFTP *sftp;
	bool broken; /* failed below SFTP: close instead of keeping */
};

struct sftp_store {
	struct sm_sftp_loc loc;
	const struct sm_ssh_ops *ssh;
	char *root; /* remote root without a trailing '/' ("" = login dir, "/" = /) */
	bool follow;
	bool read_links;
	pthread_mutex_t mu;
	struct sftp_conn *idle[SFTP_IDLE_MAX];
	int n_idle;
	bool mu_init;
};

static struct sftp_store *sftp_priv(struct sm_store *st)
{
	return st->priv;
}

static void sftp_conn_close(struct sftp_store *fs, struct sftp_conn *c)
{
	if (!c)
		return;
	if (c->sftp)
		libssh2_sftp_shutdown(c->sftp);
	fs->ssh->close(c->ssh);
	free(c);
}

static enum sm_err sftp_get(struct sftp_store *fs, struct sftp_conn **out, struct sm_diag *d)
{
	struct sftp_conn *c = NULL;
	pthread_mutex_lock(&fs->mu);
	if (fs->n_idle)
		c = fs->idle[--fs->n_idle];
	pthread_mutex_unlock(&fs->mu);
	if (c) {
		int next = 0;
		if (libssh2_keepalive_send(c->s, &next) != 0) {
			/* gone while idle: a new one instead */
			c->broken = true;
			sftp_conn_close(fs, c);
			return sftp_get(fs, out, d);
		}
		*out = c;
		return SM_OK;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	struct sm_ssh_target t = { .host = fs->loc.host,
		                   .user = fs->loc.user,
		                   .password = fs->loc.password,
		                   .port = fs->loc.port };
	enum sm_err err = fs->ssh->connect(&t, &c->ssh, d);
	if (err != SM_OK) {
		free(c);
		return err;
	}
	c->s = fs->ssh->session(c->ssh);
	c->sftp = libssh2_sftp_init(c->s);
	if (!c->sftp) {
		char *msg = NULL;
		libssh2_session_last_error(c->s, &msg, NULL, 0);
		err = sm_diag_set(d, SM_EIO, 0, "sftp: %s: cannot start the SFTP subsystem: %s",
		                  fs->ssh->name(c->ssh), msg ? msg : "?");
		sftp_conn_close(fs, c);
		return err;
	}
	*out = c;
	return SM_OK;
}

static void sftp_put_conn(struct sftp_store *fs, struct sftp_conn *c)
{
	if (!c)
		return;
	if (!c->broken) {
		pthread_mutex_lock(&fs->mu);
		if (fs->n_idle < SFTP_IDLE_MAX) {
			fs->idle[fs->n_idle++] = c;
			c = NULL;
		}
		pthread_mutex_unlock(&fs->mu);
	}
	sftp_conn_close(fs, c);
}

/*
 * The failure of the last libssh2 call on c as an sm_err (the one place
 * libssh2's and SFTP's codes are mapped). Transport failures mark the
 * connection broken and are retryable.
 */
static enum sm_err sftp_err(struct sftp_conn *c, const char *what, const char *path,
                            struct sm_diag *d)
{
	int e = libssh2_session_last_errno(c->s);
	if (e == LIBSSH2_ERROR_SFTP_PROTOCOL) {
		unsigned long fx = libssh2_sftp_last_error(c->sftp);
		enum sm_err kind = SM_EIO;
		const char *why = "failure";
		switch (fx) {
		case LIBSSH2_FX_NO_SUCH_FILE:
		case LIBSSH2_FX_NO_SUCH_PATH: kind = SM_ENOENT, why = "no such file"; break;
		case LIBSSH2_FX_PERMISSION_DENIED:
		case LIBSSH2_FX_WRITE_PROTECT: kind = SM_EACCES, why = "permission denied"; break;
		case LIBSSH2_FX_FILE_ALREADY_EXISTS: kind = SM_EEXIST, why = "file exists"; break;
		case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
		case LIBSSH2_FX_QUOTA_EXCEEDED: kind = SM_ENOSPC, why = "no space left"; break;
		case LIBSSH2_FX_NOT_A_DIRECTORY: kind = SM_ENOTDIR, why = "not a directory"; break;
		case LIBSSH2_FX_DIR_NOT_EMPTY:
			kind = SM_ENOTEMPTY, why = "directory not empty";
			break;
		case LIBSSH2_FX_INVALID_FILENAME:
			kind = SM_EINVAL, why = "invalid file name";
			break;
		case LIBSSH2_FX_EOF: kind = SM_EIO, why = "unexpected end of file"; break;
		}
		return sm_diag_set(d, kind, (int)fx, "sftp: %s '%s': %s", what, path, why);
	}
	char *msg = NULL;
	libssh2_session_last_error(c->s, &msg, NULL, 0);
	c->broken = true;
	/* what is still said on it (closing handles, the channel) must not wait
	 * the whole I/O timeout on a link that went silent */
	libssh2_session_set_timeout(c->s, 2000);
	return sm_diag_set(d, SM_EAGAIN, e, "sftp: %s '%s': connection failed: %s", what, path,
	                   msg && *msg ? msg : "unknown error");
}

/* ---- paths and attributes ---- */

/* The remote path of a key (a directory key without its '/'). */
static char *sftp_path(const struct sftp_store *fs, const char *key)
{
	size_t kn = strlen(key);
	if (kn && key[kn - 1] == '/')
		kn--;
	struct sm_buf b = { 0 };
	bool sep = *fs->root && fs->root[strlen(fs->root) - 1] != '/' && kn;
	if (sm_buf_appendz(&b, fs->root) || (sep && sm_buf_appendz(&b, "/")) ||
	    sm_buf_append(&b, key, kn) || sm_buf_append(&b, "", 0)) {
		sm_buf_release(&b);
		return NULL;
	}
	if (!b.len) { /* the login directory itself */
		sm_buf_release(&b);
		return strdup(".");
	}
	b.p[b.len] = '\0';
	return b.p;
}

static void sftp_fill(struct sm_entry *e, const LIBSSH2_SFTP_ATTRIBUTES *a)
{
	uint32_t mode = (a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ? (uint32_t)a->permissions
	                                                           : (S_IFREG | 0644);
	if (!(mode & S_IFMT))
		mode |= S_IFREG;
	e->mode = mode;
	e->size = S_ISDIR(mode) ? 0 : (a->flags & LIBSSH2_SFTP_ATTR_SIZE) ? a->filesize : 0;
	e->mtime_ns = (a->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) ? (int64_t)a->mtime * 1000000000 : 0;
	if (a->flags & LIBSSH2_SFTP_ATTR_UIDGID) {
		e->uid = (uint32_t)a->uid;
		e->gid = (uint32_t)a->gid;
	}
}

static enum sm_err sftp_stat_path(struct sftp_conn *c, const char *path, bool follow,
                                  LIBSSH2_SFTP_ATTRIBUTES *a, struct sm_diag *d)
{
	if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
	                         follow ? LIBSSH2_SFTP_STAT : LIBSSH2_SFTP_LSTAT, a) != 0)
		return sftp_err(c, "stat", path, d);
	return SM_OK;
}

/* A symlink's target (LIBSSH2_SFTP_READLINK) or a real path
 * (LIBSSH2_SFTP_REALPATH), malloc'd into *out. */
static enum sm_err sftp_resolve(struct sftp_conn *c, const char *path, int how, char **out,
                                struct sm_diag *d)
{
	char tb[SFTP_NAME_MAX];
	int n = libssh2_sftp_symlink_ex(c->sftp, path, (unsigned)strlen(path), tb, sizeof(tb) - 1,
	                                how);
	if (n < 0)
		return sftp_err(c, how == LIBSSH2_SFTP_READLINK ? "readlink" : "resolve", path, d);
	if (!(*out = sm_strndup(tb, (size_t)n)))
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	return SM_OK;
}

static enum sm_err sftp_readlink(struct sftp_conn *c, const char *path, char **out,
                                 struct sm_diag *d)
{
	return sftp_resolve(c, path, LIBSSH2_SFTP_READLINK, out, d);
}

static enum sm_err sftp_realpath(struct sftp_conn *c, const char *path, char **out,
                                 struct sm_diag *d)
{
	return sftp_resolve(c, path, LIBSSH2_SFTP_REALPATH, out, d);
}

/* ---- open / close ---- */

static enum sm_err sftp_open(struct sm_store *st, const struct sm_url *u,
                             const struct sm_store_cfg *cfg, struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	if (!cfg->ssh)
		return sm_diag_set(d, SM_ENOTSUP, 0, "'%s': no SSH layer for SFTP", u->display);
	enum sm_err err = sm_sftp_loc_parse(u->path, &fs->loc, d);
	if (err != SM_OK)
		return err;
	pthread_mutex_init(&fs->mu, NULL);
	fs->mu_init = true;
	fs->ssh = cfg->ssh;
	fs->follow = cfg->follow_links;
	fs->read_links = cfg->read_links;
	size_t n = strlen(fs->loc.path);
	while (n > 1 && fs->loc.path[n - 1] == '/')
		n--;
	if (!(fs->root = sm_strndup(fs->loc.path, n)))
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	/* connect now: a refused key or host fails the run once, here */
	struct sftp_conn *c = NULL;
	err = sftp_get(fs, &c, d);
	if (err != SM_OK)
		return err;
	LIBSSH2_SFTP_ATTRIBUTES a;
	const char *root = *fs->root ? fs->root : ".";
	err = sftp_stat_path(c, root, true, &a, d);
	if (err == SM_OK && !S_ISDIR(a.permissions))
		err = sm_diag_set(d, SM_ENOTDIR, 0, "'%s' is not a directory", u->display);
	else if (err == SM_ENOENT && !cfg->must_exist)
		err = SM_OK; /* created on first write */
	else if (err == SM_ENOENT)
		err = sm_diag_set(d, err, 0, "'%s': no such directory", u->display);
	/* other failures: the message names the remote path already */
	if (err == SM_OK && !fs->loc.password)
		fs->loc.password = sm_strdup(fs->ssh->typed_password(c->ssh));
	sftp_put_conn(fs, c);
	return err;
}

static void sftp_close(struct sm_store *st)
{
	struct sftp_store *fs = sftp_priv(st);
	if (!fs)
		return;
	for (int i = 0; i < fs->n_idle; i++)
		sftp_conn_close(fs, fs->idle[i]);
	fs->n_idle = 0;
	if (fs->mu_init)
		pthread_mutex_destroy(&fs->mu);
	free(fs->root);
	sm_sftp_loc_release(&fs->loc);
}

/* mkdir -p of a remote directory path. */
static enum sm_err sftp_mkdir_p(struct sftp_conn *c, const char *path, long mode, struct sm_diag *d)
{
	LIBSSH2_SFTP_ATTRIBUTES a;
	if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT, &a) == 0)
		return S_ISDIR(a.permissions) ? SM_OK
		                              : sm_diag_set(d, SM_ENOTDIR, 0,
		                                            "sftp: '%s' is not a directory", path);
	enum sm_err err = sftp_err(c, "stat", path, d);
	if (err != SM_ENOENT)
		return err;
	char *parent = strdup(path);
	if (!parent)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		err = sftp_mkdir_p(c, parent, 0755, d);
	} else {
		err = SM_OK;
	}
	free(parent);
	if (err != SM_OK)
		return err;
	if (libssh2_sftp_mkdir_ex(c->sftp, path, (unsigned)strlen(path), mode) != 0) {
		err = sftp_err(c, "mkdir", path, d);
		/* made meanwhile by another thread: fine */
		if (err != SM_EAGAIN &&
		    libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT,
		                         &a) == 0 &&
		    S_ISDIR(a.permissions))
			return SM_OK;
		return err;
	}
	return SM_OK;
}

/* ---- listing ---- */

struct sftp_name {
	char *name;
	bool dir;
	LIBSSH2_SFTP_ATTRIBUTES a;
	char *link; /* with read_links */
};

struct sftp_frame {
	struct sftp_name *v;
	size_t n;
	size_t pos;
	size_t prefix_len; /* bytes of the cursor's key naming this directory */
	char *real;        /* its real path, once a followed link needed it */
};

struct sftp_cursor {
	struct sftp_store *fs;
	struct sftp_conn *c; /* only while a directory is read */
	struct sftp_frame *stack;
	int depth;
	int cap;
	struct sm_buf key;
	struct sm_entry ent;
	char *last;
	bool done;
	bool pushed;
};

static int sftp_name_cmp(const void *pa, const void *pb)
{
	const struct sftp_name *a = pa, *b = pb;
	size_t la = strlen(a->name), lb = strlen(b->name);
	size_t n = la < lb ? la : lb;
	int c = memcmp(a->name, b->name, n);
	if (c)
		return c;
	int ca = la > n ? (unsigned char)a->name[n] : a->dir ? '/' : -1;
	int cb = lb > n ? (unsigned char)b->name[n] : b->dir ? '/' : -1;
	return ca - cb;
}

/* name (with '/' when dir) against s[0..slen) */
static int sftp_name_cmp_str(const struct sftp_name *a, const char *s, size_t slen)
{
	size_t len = strlen(a->name), alen = len + a->dir;
	size_t n = alen < slen ? alen : slen, common = n < len ? n : len;
	int c = memcmp(a->name, s, common);
	if (c)
		return c;
	if (common < n)
		return (int)(unsigned char)'/' - (int)(unsigned char)s[common];
	return (alen > slen) - (alen < slen);
}

static void sftp_frame_release(struct sftp_frame *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].name);
		free(f->v[i].link);
	}
	free(f->v);
	free(f->real);
	memset(f, 0, sizeof(*f));
}

/*
 * Following symlinks can loop: refuse a link to a directory that is being
 * listed already (the one being read, `path`, or one above it), as the file
 * backend does. Real paths are asked for only when such a link turns up.
 */
static enum sm_err sftp_check_loop(struct sftp_cursor *cur, struct sftp_conn *c,
                                   struct sftp_frame *f, const char *path, const char *link,
                                   const char *name, struct sm_diag *d)
{
	char *target = NULL;
	enum sm_err err = sftp_realpath(c, link, &target, d);
	if (err == SM_OK && !f->real)
		err = sftp_realpath(c, path, &f->real, d);
	bool loop = err == SM_OK && strcmp(target, f->real) == 0;
	for (int i = 0; err == SM_OK && !loop && i < cur->depth; i++) {
		struct sftp_frame *up = &cur->stack[i];
		if (!up->real) {
			char *k = sm_strndup(cur->key.p, up->prefix_len);
			char *p = k ? sftp_path(cur->fs, k) : NULL;
			err = p ? sftp_realpath(c, p, &up->real, d)
			        : sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			free(p);
			free(k);
		}
		loop = err == SM_OK && strcmp(target, up->real) == 0;
	}
	free(target);
	if (err == SM_OK && loop)
		err = sm_diag_set(d, SM_EINVAL, ELOOP,
		                  "symlink loop at '%s%s/': directory already being listed",
		                  cur->key.p, name);
	return err;
}

/* Read and sort the directory at `path` into f. */
static enum sm_err sftp_frame_load(struct sftp_cursor *cur, struct sftp_frame *f, const char *path,
                                   struct sm_diag *d)
{
	struct sftp_conn *c = cur->c;
	memset(f, 0, sizeof(*f));
	LIBSSH2_SFTP_HANDLE *h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), 0, 0,
	                                              LIBSSH2_SFTP_OPENDIR);
	if (!h)
		return sftp_err(c, "list", path, d);
	char name[SFTP_NAME_MAX];
	size_t cap = 0;
	enum sm_err err = SM_OK;
	for (;;) {
		LIBSSH2_SFTP_ATTRIBUTES a;
		int n = libssh2_sftp_readdir_ex(h, name, sizeof(name) - 1, NULL, 0, &a);
		if (n == 0)
			break;
		if (n < 0) {
			err = sftp_err(c, "list", path, d);
			break;
		}
		name[n] = '\0';
		if (!strcmp(name, ".") || !strcmp(name, "..") ||
		    sm_store_is_tmp_name(name, (size_t)n))
			continue;
		if (memchr(name, '/', (size_t)n))
			continue; /* not a name a directory can hold */
		bool link = (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && S_ISLNK(a.permissions);
		char *target = NULL;
		char full[SFTP_NAME_MAX * 2];
		snprintf(full, sizeof(full), "%s/%s", path, name);
		if (link && cur->fs->follow) {
			LIBSSH2_SFTP_ATTRIBUTES t;
			if (sftp_stat_path(c, full, true, &t, d) != SM_OK) {
				if (d->err == SM_ENOENT)
					continue; /* broken link: nothing to follow */
				err = d->err;
				break;
			}
			a = t;
			if ((t.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && S_ISDIR(t.permissions)) {
				err = sftp_check_loop(cur, c, f, path, full, name, d);
				if (err != SM_OK)
					break;
			}
		} else if (link && cur->fs->read_links) {
			err = sftp_readlink(c, full, &target, d);
			if (err != SM_OK)
				break;
		}
		if (f->n == cap) {
			cap = cap ? cap * 2 : 64;
			struct sftp_name *nv = realloc(f->v, cap * sizeof(*nv));
			if (!nv) {
				free(target);
				err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
				break;
			}
			f->v = nv;
		}
		struct sftp_name *e = &f->v[f->n];
		*e = (struct sftp_name){ .name = strdup(name), .a = a, .link = target };
		e->dir = (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && S_ISDIR(a.permissions);
		if (!e->name) {
			free(target);
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			break;
		}
		f->n++;
	}
	libssh2_sftp_close_handle(h);
	if (err != SM_OK) {
		sftp_frame_release(f);
		return err;
	}
	if (f->n)
		qsort(f->v, f->n, sizeof(*f->v), sftp_name_cmp);
	return SM_OK;
}

static enum sm_err sftp_push(struct sftp_cursor *cur, struct sm_diag *d)
{
	if (cur->depth == cur->cap) {
		int ncap = cur->cap ? cur->cap * 2 : 16;
		struct sftp_frame *ns = realloc(cur->stack, (size_t)ncap * sizeof(*ns));
		if (!ns)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		cur->stack = ns;
		cur->cap = ncap;
	}
	char *path = sftp_path(cur->fs, cur->key.p);
	if (!path)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	struct sftp_frame *f = &cur->stack[cur->depth];
	/* A connection only while a directory is read: the frames live in
	 * memory, so a walk does not hold one beside the thread's transfers,
	 * and a dropped one is replaced at the directory being read. */
	enum sm_err err = SM_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		err = sftp_get(cur->fs, &cur->c, d);
		if (err == SM_OK)
			err = sftp_frame_load(cur, f, path, d);
		sftp_put_conn(cur->fs, cur->c);
		cur->c = NULL;
		if (err != SM_EAGAIN)
			break;
	}
	free(path);
	if (err != SM_OK)
		return err;
	f->prefix_len = cur->key.len;
	cur->depth++;
	return SM_OK;
}

static enum sm_err sftp_key_set(struct sftp_cursor *cur, size_t prefix_len, const char *name,
                                bool dir)
{
	cur->key.len = prefix_len;
	if (sm_buf_appendz(&cur->key, name) || (dir && sm_buf_appendz(&cur->key, "/")))
		return SM_ENOMEM;
	return SM_OK;
}

/* Position the cursor at the first key after `after`. */
static enum sm_err sftp_seek(struct sftp_cursor *cur, const char *after, struct sm_diag *d)
{
	const char *rest = after;
	while (cur->depth > 0) {
		struct sftp_frame *f = &cur->stack[cur->depth - 1];
		const char *slash = strchr(rest, '/');
		size_t clen = slash ? (size_t)(slash - rest) + 1 : strlen(rest);
		size_t lo = 0, hi = f->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (sftp_name_cmp_str(&f->v[mid], rest, clen) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < f->n && sftp_name_cmp_str(&f->v[lo], rest, clen) == 0) {
			f->pos = lo + 1; /* the key itself is not in the range */
			if (!slash || !f->v[lo].dir)
				return SM_OK;
			if (sftp_key_set(cur, f->prefix_len, f->v[lo].name, true) != SM_OK)
				return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			rest = slash + 1;
			enum sm_err err = sftp_push(cur, d);
			if (err == SM_ENOENT || err == SM_ENOTDIR)
				return SM_OK; /* gone since: go on after it */
			if (err != SM_OK || !*rest)
				return err;
			continue;
		}
		f->pos = lo;
		return SM_OK;
	}
	return SM_OK;
}

static void sftp_list_end(void *p)
{
	struct sftp_cursor *cur = p;
	if (!cur)
		return;
	for (int i = 0; i < cur->depth; i++)
		sftp_frame_release(&cur->stack[i]);
	free(cur->stack);
	free(cur->last);
	sm_buf_release(&cur->key);
	sftp_put_conn(cur->fs, cur->c);
	free(cur);
}

static enum sm_err sftp_list_begin(struct sm_store *st, const struct sm_range *r, void **out,
                                   struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	struct sftp_cursor *cur = calloc(1, sizeof(*cur));
	if (!cur)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	cur->fs = fs;
	if ((r->last && !(cur->last = strdup(r->last))) || sm_buf_append(&cur->key, "", 0)) {
		sftp_list_end(cur);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	enum sm_err err = sftp_push(cur, d);
	if (err == SM_ENOENT) {
		cur->done = true; /* a DST root not made yet lists empty */
		*out = cur;
		return SM_OK;
	}
	if (err == SM_OK && r->after && *r->after)
		err = sftp_seek(cur, r->after, d);
	if (err != SM_OK) {
		sftp_list_end(cur);
		return err;
	}
	*out = cur;
	return SM_OK;
}

static enum sm_err sftp_list_next(void *p, const struct sm_entry **out, struct sm_diag *d)
{
	struct sftp_cursor *cur = p;
	cur->pushed = false;
	while (!cur->done && cur->depth > 0) {
		struct sftp_frame *f = &cur->stack[cur->depth - 1];
		if (f->pos == f->n) {
			sftp_frame_release(f);
			cur->depth--;
			continue;
		}
		struct sftp_name *nm = &f->v[f->pos++];
		if (sftp_key_set(cur, f->prefix_len, nm->name, nm->dir) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		if (cur->last && strcmp(cur->key.p, cur->last) > 0) {
			cur->done = true;
			break;
		}
		cur->ent = (struct sm_entry){ .key = cur->key.p, .link = nm->link };
		sftp_fill(&cur->ent, &nm->a);
		if (nm->dir) {
			enum sm_err err = sftp_push(cur, d);
			if (err == SM_ENOENT)
				continue; /* removed since it was listed */
			if (err != SM_OK)
				return err;
			cur->pushed = true;
		}
		*out = &cur->ent;
		return SM_OK;
	}
	cur->done = true;
	return SM_EOF;
}

static void sftp_list_skip(void *p)
{
	struct sftp_cursor *cur = p;
	if (!cur->pushed)
		return;
	sftp_frame_release(&cur->stack[--cur->depth]);
	cur->pushed = false;
}

/* ---- reading ---- */

struct sftp_reader {
	struct sm_reader base;
	struct sftp_store *fs;
	struct sftp_conn *c;
	LIBSSH2_SFTP_HANDLE *h;
	char *path;
	char *buf;
	size_t cap, len, pos;
	bool eof;
};

static enum sm_err sftpr_read(struct sm_reader *rd, void *out, size_t cap, size_t *got,
                              struct sm_diag *d)
{
	struct sftp_reader *r = (struct sftp_reader *)rd;
	if (r->pos == r->len && !r->eof) {
		/* refill with large requests: libssh2 keeps them all in flight */
		r->len = r->pos = 0;
		while (r->len < r->cap) {
			ssize_t n = libssh2_sftp_read(r->h, r->buf + r->len, r->cap - r->len);
			if (n < 0)
				return sftp_err(r->c, "read", r->path, d);
			if (n == 0) {
				r->eof = true;
				break;
			}
			r->len += (size_t)n;
		}
	}
	size_t n = r->len - r->pos;
	if (n > cap)
		n = cap;
	memcpy(out, r->buf + r->pos, n);
	r->pos += n;
	*got = n;
	return SM_OK;
}

static void sftpr_close(struct sm_reader *rd)
{
	struct sftp_reader *r = (struct sftp_reader *)rd;
	if (r->h)
		libssh2_sftp_close_handle(r->h);
	sftp_put_conn(r->fs, r->c);
	free(r->buf);
	free(r->path);
	free(r);
}

static const struct sm_reader_ops sftp_reader_ops = { .read = sftpr_read, .close = sftpr_close };

static enum sm_err sftp_open_read(struct sm_store *st, const char *key, uint64_t off,
                                  uint64_t size_hint, struct sm_reader **out, struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	enum sm_err err = SM_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct sftp_reader *r = calloc(1, sizeof(*r));
		if (!r || !(r->path = sftp_path(fs, key))) {
			free(r);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		r->base.ops = &sftp_reader_ops;
		r->fs = fs;
		/* a small file needs no 1 MiB buffer */
		r->cap = size_hint != UINT64_MAX && size_hint - off + 1 < SFTP_IO
		                 ? (size_t)(size_hint - off + 1)
		                 : SFTP_IO;
		r->buf = malloc(r->cap);
		if (!r->buf) {
			sftpr_close(&r->base);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		err = sftp_get(fs, &r->c, d);
		LIBSSH2_SFTP_ATTRIBUTES a;
		if (err == SM_OK) {
			r->h = libssh2_sftp_open_ex(r->c->sftp, r->path, (unsigned)strlen(r->path),
			                            LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE);
			if (!r->h)
				err = sftp_err(r->c, "read", r->path, d);
		}
		if (err == SM_OK && libssh2_sftp_fstat_ex(r->h, &a, 0) != 0)
			err = sftp_err(r->c, "stat", r->path, d);
		if (err == SM_OK && (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
		    S_ISDIR(a.permissions))
			err = sm_diag_set(d, SM_EISDIR, 0, "sftp: '%s' is a directory", r->path);
		if (err == SM_OK) {
			uint64_t size =
			        (a.flags & LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : UINT64_MAX;
			r->base.size = size == UINT64_MAX ? UINT64_MAX
			               : size > off       ? size - off
			                                  : 0;
			if (off)
				libssh2_sftp_seek64(r->h, off);
			*out = &r->base;
			return SM_OK;
		}
		sftpr_close(&r->base);
		if (err != SM_EAGAIN)
			break;
	}
	return err;
}

/* ---- writing ---- */

static void sftp_put_attrs(const struct sm_put *p, LIBSSH2_SFTP_ATTRIBUTES *a)
{
	memset(a, 0, sizeof(*a));
	if (p->flags & SM_PUT_MTIME) {
		a->flags |= LIBSSH2_SFTP_ATTR_ACMODTIME;
		int64_t s = p->mtime_ns / 1000000000;
		if (p->mtime_ns < 0 && p->mtime_ns % 1000000000)
			s--;
		/* SFTP v3 times are unsigned 32-bit seconds */
		s = s < 0 ? 0 : s > (int64_t)UINT32_MAX ? (int64_t)UINT32_MAX : s;
		a->mtime = a->atime = (unsigned long)s;
	}
	if (p->flags & SM_PUT_MODE) {
		a->flags |= LIBSSH2_SFTP_ATTR_PERMISSIONS;
		a->permissions = p->mode & 07777;
	}
	if (p->flags & SM_PUT_OWNER) {
		a->flags |= LIBSSH2_SFTP_ATTR_UIDGID;
		a->uid = p->uid;
		a->gid = p->gid;
	}
}

/* The parent directory of a path, and its last component. */
static void sftp_split(const char *path, char *dir, size_t n, const char **base)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		snprintf(dir, n, ".");
		*base = path;
	} else if (slash == path) {
		snprintf(dir, n, "/");
		*base = slash + 1;
	} else {
		snprintf(dir, n, "%.*s", (int)(slash - path), path);
		*base = slash + 1;
	}
}

/* Open `path` for writing, making its parents when they are missing. */
static LIBSSH2_SFTP_HANDLE *sftp_create(struct sftp_conn *c, const char *path, const char *dir,
                                        unsigned long flags, long mode, enum sm_err *err,
                                        struct sm_diag *d)
{
	LIBSSH2_SFTP_HANDLE *h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), flags,
	                                              mode, LIBSSH2_SFTP_OPENFILE);
	if (h)
		return h;
	*err = sftp_err(c, "write", path, d);
	if (*err != SM_ENOENT)
		return NULL;
	*err = sftp_mkdir_p(c, dir, 0755, d);
	if (*err != SM_OK)
		return NULL;
	h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), flags, mode,
	                         LIBSSH2_SFTP_OPENFILE);
	if (!h)
		*err = sftp_err(c, "write", path, d);
	return h;
}

/* Rename tmp over path (see the top of the file for why not atomically):
 * an existing target is renamed aside, replaced, then removed. */
static enum sm_err sftp_rename_over(struct sftp_conn *c, const char *tmp, const char *path,
                                    struct sm_diag *d)
{
	long fl = LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
	          LIBSSH2_SFTP_RENAME_NATIVE;
	if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp), path,
	                           (unsigned)strlen(path), fl) == 0)
		return SM_OK;
	enum sm_err err = sftp_err(c, "rename", path, d);
	if (err == SM_EAGAIN)
		return err;
	LIBSSH2_SFTP_ATTRIBUTES a;
	if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_LSTAT, &a) !=
	    0)
		return err; /* not in the way: the rename failed for its own reason */
	if (S_ISDIR(a.permissions))
		return sm_diag_set(d, SM_EISDIR, 0, "sftp: '%s' is a directory", path);
	/* move the old one aside first, so a failure can put it back */
	char dir[SFTP_NAME_MAX], aname[300], aside[SFTP_NAME_MAX * 2];
	const char *base;
	sftp_split(path, dir, sizeof(dir), &base);
	sm_store_tmp_name(base, aname, sizeof(aname));
	snprintf(aside, sizeof(aside), "%s/%s", dir, aname);
	if (libssh2_sftp_rename_ex(c->sftp, path, (unsigned)strlen(path), aside,
	                           (unsigned)strlen(aside), fl) != 0)
		return sftp_err(c, "replace", path, d);
	if (libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp), path,
	                           (unsigned)strlen(path), fl) != 0) {
		err = sftp_err(c, "rename", path, d);
		if (!c->broken)
			libssh2_sftp_rename_ex(c->sftp, aside, (unsigned)strlen(aside), path,
			                       (unsigned)strlen(path), fl);
		return err;
	}
	if (libssh2_sftp_unlink_ex(c->sftp, aside, (unsigned)strlen(aside)) != 0)
		sm_log(SM_LOG_INFO, "sftp: could not remove '%s' (listings skip it)", aside);
	return SM_OK;
}

/*
 * OpenSSH's server reports a full disk as a plain failure: ask the file
 * system (statvfs@openssh.com) so a full DST stops the run with one message
 * instead of failing every key. Returns err unless the disk is full.
 */
static enum sm_err sftp_full(struct sftp_conn *c, const char *dir, const char *path,
                             enum sm_err err, struct sm_diag *d)
{
	LIBSSH2_SFTP_STATVFS st;
	if (c->broken || libssh2_sftp_statvfs(c->sftp, dir, strlen(dir), &st) != 0)
		return err;
	if (st.f_bavail * st.f_frsize >= (1u << 20) && st.f_favail > 0)
		return err;
	return sm_diag_set(d, SM_ENOSPC, 0, "sftp: write '%s': no space left on the server", path);
}

static enum sm_err sftp_write_all(struct sftp_conn *c, LIBSSH2_SFTP_HANDLE *h, const char *buf,
                                  size_t n, const char *path, struct sm_diag *d)
{
	while (n) {
		ssize_t w = libssh2_sftp_write(h, buf, n);
		if (w < 0)
			return sftp_err(c, "write", path, d);
		buf += w;
		n -= (size_t)w;
	}
	return SM_OK;
}

static enum sm_err sftp_put_once(struct sftp_conn *c, const char *path, char *tmp, size_t tmpn,
                                 struct sm_reader *r, const struct sm_put *p, char *buf, size_t cap,
                                 struct sm_diag *d)
{
	char dir[SFTP_NAME_MAX], tname[300];
	const char *base;
	sftp_split(path, dir, sizeof(dir), &base);
	bool inplace = p->flags & SM_PUT_INPLACE;
	if (inplace) {
		snprintf(tmp, tmpn, "%s", path);
	} else {
		sm_store_tmp_name(base, tname, sizeof(tname));
		snprintf(tmp, tmpn, "%s/%s", dir, tname);
	}
	long mode = (p->flags & SM_PUT_MODE) ? (long)(p->mode & 07777) : (long)(p->mode & 0755);
	if (!mode)
		mode = 0644;
	unsigned long flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC |
	                      (inplace ? 0 : LIBSSH2_FXF_EXCL);
	enum sm_err err = SM_OK;
	LIBSSH2_SFTP_HANDLE *h = sftp_create(c, tmp, dir, flags, mode, &err, d);
	if (!h)
		return err;
	uint64_t total = 0;
	for (;;) {
		size_t got = 0;
		err = sm_reader_read_full(r, buf, cap, &got, d);
		if (err != SM_OK || !got)
			break;
		err = sftp_write_all(c, h, buf, got, path, d);
		if (err != SM_OK)
			break;
		total += got;
		if (got < cap)
			break;
	}
	if (err == SM_OK && r->size != UINT64_MAX && total != r->size)
		err = sm_diag_set(d, SM_ECHANGED, 0,
		                  "'%s' has %" PRIu64 " bytes, %" PRIu64 " were listed", path,
		                  total, r->size);
	LIBSSH2_SFTP_ATTRIBUTES a;
	sftp_put_attrs(p, &a);
	if (err == SM_OK && a.flags && libssh2_sftp_fstat_ex(h, &a, 1) != 0)
		err = sftp_err(c, "set attributes of", path, d);
	if (libssh2_sftp_close_handle(h) != 0 && err == SM_OK)
		err = sftp_err(c, "write", path, d); /* a late error from the server */
	if (err == SM_EIO)
		err = sftp_full(c, dir, path, err, d);
	if (err == SM_OK && (p->flags & SM_PUT_CHECK))
		err = sm_reader_finish(r, d);
	if (err == SM_OK && !inplace)
		err = sftp_rename_over(c, tmp, path, d);
	if (err != SM_OK && !inplace && !c->broken)
		libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp));
	return err;
}

static enum sm_err sftp_put(struct sm_store *st, const char *key, struct sm_reader *r,
                            const struct sm_put *p, struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	char *path = sftp_path(fs, key);
	size_t cap = r->size != UINT64_MAX && r->size < SFTP_IO ? (size_t)r->size + 1 : SFTP_IO;
	char *buf = malloc(cap);
	struct sftp_conn *c = NULL;
	enum sm_err err = SM_ENOMEM;
	if (!path || !buf) {
		sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	char tmp[SFTP_NAME_MAX * 2] = "";
	err = sftp_get(fs, &c, d);
	if (err == SM_OK)
		err = sftp_put_once(c, path, tmp, sizeof(tmp), r, p, buf, cap, d);
	if (err != SM_OK && c && c->broken && tmp[0] && !(p->flags & SM_PUT_INPLACE)) {
		/* the link dropped mid-write: remove the temp file over another
		 * (an idle one may have dropped too) */
		for (int attempt = 0; attempt < 3 && c && c->broken; attempt++) {
			sftp_put_conn(fs, c);
			c = NULL;
			struct sm_diag ud;
			if (sftp_get(fs, &c, &ud) == SM_OK &&
			    libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp)) != 0)
				sftp_err(c, "remove", tmp, &ud);
		}
	}
	/* a failed attempt is retried by the caller, which opens the source again */
	sftp_put_conn(fs, c);
out:
	free(buf);
	free(path);
	return err;
}

/*
 * Make the symlink tmp -> target. OpenSSH's server takes the two paths in
 * the opposite order to the draft, and libssh2 sends them the way OpenSSH
 * wants; but libssh2 1.10 reports a failure even when the server made the
 * link, so a reported failure is checked against what is there.
 */
static enum sm_err sftp_symlink_tmp(struct sftp_conn *c, const char *target, const char *tmp,
                                    struct sm_diag *d)
{
	if (libssh2_sftp_symlink_ex(c->sftp, target, (unsigned)strlen(target), (char *)tmp,
	                            (unsigned)strlen(tmp), LIBSSH2_SFTP_SYMLINK) == 0)
		return SM_OK;
	enum sm_err err = sftp_err(c, "symlink", tmp, d);
	if (err == SM_EAGAIN)
		return err;
	char *made = NULL;
	enum sm_err rl = sftp_readlink(c, tmp, &made, d);
	bool same = rl == SM_OK && strcmp(made, target) == 0;
	free(made);
	if (same)
		return SM_OK;
	if (rl == SM_EAGAIN)
		return SM_EAGAIN;
	/* nothing there: the parent is missing, or the refusal was real */
	LIBSSH2_SFTP_ATTRIBUTES a;
	char parent[SFTP_NAME_MAX];
	const char *base;
	sftp_split(tmp, parent, sizeof(parent), &base);
	if (libssh2_sftp_stat_ex(c->sftp, parent, (unsigned)strlen(parent), LIBSSH2_SFTP_STAT,
	                         &a) != 0)
		return sftp_err(c, "symlink", tmp, d);
	return sm_diag_set(d, err == SM_ENOENT ? SM_EIO : err, 0, "sftp: symlink '%s': refused",
	                   tmp);
}

/* Path operations (stat, delete, mkdir, symlink, setattr), each retried
 * once on a fresh connection after a drop. */
enum sftp_op { SFTP_STAT, SFTP_DEL, SFTP_MKDIR, SFTP_SYMLINK, SFTP_SETATTR };

static enum sm_err sftp_op_once(struct sftp_store *fs, struct sftp_conn *c, enum sftp_op op,
                                const char *key, const char *path, const char *target,
                                const struct sm_put *p, struct sm_entry *out, struct sm_diag *d)
{
	LIBSSH2_SFTP_ATTRIBUTES a;
	enum sm_err err;
	switch (op) {
	case SFTP_STAT: {
		err = sftp_stat_path(c, path, fs->follow, &a, d);
		struct sm_entry e = { 0 };
		if (err == SM_OK) {
			sftp_fill(&e, &a);
			if (S_ISLNK(e.mode) && fs->read_links)
				err = sftp_readlink(c, path, &e.link, d);
		}
		if (err == SM_OK)
			*out = e;
		return err;
	}
	case SFTP_DEL:
		if (sm_key_is_dir(key)) {
			if (libssh2_sftp_rmdir_ex(c->sftp, path, (unsigned)strlen(path)) == 0)
				return SM_OK;
			err = sftp_err(c, "delete", path, d);
			if (err == SM_EIO &&
			    libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
			                         LIBSSH2_SFTP_LSTAT, &a) == 0)
				/* OpenSSH says "failure" for a directory that is not empty */
				return sm_diag_set(d, SM_ENOTEMPTY, 0,
				                   "sftp: delete '%s': directory "
				                   "not empty",
				                   path);
		} else {
			if (libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path)) == 0)
				return SM_OK;
			err = sftp_err(c, "delete", path, d);
		}
		return err == SM_ENOENT ? SM_OK : err; /* absent = deleted */
	case SFTP_MKDIR: {
		long mode = (p->flags & SM_PUT_MODE) ? (long)(p->mode & 07777) : 0755;
		err = sftp_mkdir_p(c, path, mode, d);
		sftp_put_attrs(p, &a);
		a.flags &= ~(unsigned long)LIBSSH2_SFTP_ATTR_ACMODTIME; /* contents change it */
		if (err == SM_OK && a.flags &&
		    libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
		                         LIBSSH2_SFTP_SETSTAT, &a) != 0)
			err = sftp_err(c, "set attributes of", path, d);
		return err;
	}
	case SFTP_SYMLINK: {
		char dir[SFTP_NAME_MAX], tname[300], tmp[SFTP_NAME_MAX * 2];
		const char *base;
		sftp_split(path, dir, sizeof(dir), &base);
		sm_store_tmp_name(base, tname, sizeof(tname));
		snprintf(tmp, sizeof(tmp), "%s/%s", dir, tname);
		err = sftp_symlink_tmp(c, target, tmp, d);
		if (err == SM_ENOENT) {
			err = sftp_mkdir_p(c, dir, 0755, d);
			if (err == SM_OK)
				err = sftp_symlink_tmp(c, target, tmp, d);
		}
		if (err != SM_OK)
			return err;
		err = sftp_rename_over(c, tmp, path, d);
		if (err != SM_OK && !c->broken)
			libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp));
		return err;
	}
	case SFTP_SETATTR:
		sftp_put_attrs(p, &a);
		if (!a.flags)
			return SM_OK;
		if (libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
		                         LIBSSH2_SFTP_SETSTAT, &a) != 0)
			return sftp_err(c, "set attributes of", path, d);
		return SM_OK;
	}
	return SM_OK;
}

static enum sm_err sftp_op(struct sm_store *st, enum sftp_op op, const char *key,
                           const char *target, const struct sm_put *p, struct sm_entry *out,
                           struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	char *path = sftp_path(fs, key);
	if (!path)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err = SM_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct sftp_conn *c = NULL;
		err = sftp_get(fs, &c, d);
		if (err != SM_OK)
			break;
		err = sftp_op_once(fs, c, op, key, path, target, p, out, d);
		sftp_put_conn(fs, c);
		if (err != SM_EAGAIN)
			break;
	}
	free(path);
	return err;
}

static enum sm_err sftp_stat(struct sm_store *st, const char *key, struct sm_entry *out,
                             struct sm_diag *d)
{
	return sftp_op(st, SFTP_STAT, key, NULL, NULL, out, d);
}

static enum sm_err sftp_del(struct sm_store *st, const char *key, struct sm_diag *d)
{
	return sftp_op(st, SFTP_DEL, key, NULL, NULL, NULL, d);
}

static enum sm_err sftp_mkdir(struct sm_store *st, const char *key, const struct sm_put *p,
                              struct sm_diag *d)
{
	return sftp_op(st, SFTP_MKDIR, key, NULL, p, NULL, d);
}

static enum sm_err sftp_symlink(struct sm_store *st, const char *key, const char *target,
                                const struct sm_put *p, struct sm_diag *d)
{
	return sftp_op(st, SFTP_SYMLINK, key, target, p, NULL, d);
}

static enum sm_err sftp_setattr(struct sm_store *st, const char *key, const struct sm_put *p,
                                struct sm_diag *d)
{
	return sftp_op(st, SFTP_SETATTR, key, NULL, p, NULL, d);
}

const struct sm_store_ops sm_sftp_ops = {
	.scheme = "sftp",
	.caps = SM_CAP_DIRS | SM_CAP_LINKS | SM_CAP_MODE,
	.priv_size = sizeof(struct sftp_store),
	.open = sftp_open,
	.close = sftp_close,
	.list_begin = sftp_list_begin,
	.list_next = sftp_list_next,
	.list_end = sftp_list_end,
	.list_skip = sftp_list_skip,
	.stat = sftp_stat,
	.open_read = sftp_open_read,
	.put = sftp_put,
	.del = sftp_del,
	.mkdir = sftp_mkdir,
	.symlink = sftp_symlink,
	.setattr = sftp_setattr,
};
