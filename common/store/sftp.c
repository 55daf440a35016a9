/*
 * SFTP backend, over the SSH connections of the run's SSH layer
 * (cfg->ssh: deploy/ssh.c) and the pipelining client engine (sftpc.c).
 *
 * The store keeps its connections open for the run; each carries one SFTP
 * channel that several transfer slots share, their requests in flight
 * together. An operation takes the least busy connection (opening another
 * while all have SFTP_SLOTS users) and gives it back; a connection that
 * fails below SFTP (reset, timeout, the server's session process gone) is
 * dropped and the operation retried once on a new one. Listing walks the
 * remote tree depth-first, each directory's names sorted with '/' appended
 * to subdirectory names (the global key order; dirtab.c, spilled to TMPDIR
 * when huge), seeking into a range with binary searches like the file
 * backend. Reads and writes keep at least
 * 1 MiB of requests in flight per file; a small file's OPEN, then its
 * WRITE, FSETSTAT and CLOSE together, then its rename are three round
 * trips. A put writes a temporary name in the target directory and renames
 * it into place (posix-rename@openssh.com where offered: atomic).
 */
#include "sftp.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../log.h"
#include "../spill.h"
#include "../util.h"
#include "dircache.h"
#include "dirtab.h"
#include "sftpc.h"
#include "sshlink.h"
#include "store.h"

#define SFTP_IO (1u << 20) /* bytes in flight per file, and per put buffer */
#define SFTP_NAME_MAX 4096
#define SFTP_SMALL (256u << 10) /* a put this small is read into memory first */

/* ---- connections ---- */

/*
 * A connection serves several transfer slots at once (its requests are
 * pipelined by the engine); a new one is opened when every open one has
 * SFTP_SLOTS users, up to SFTP_CONNS_MAX.
 */
#define SFTP_CONNS_MAX 8
#define SFTP_SLOTS 10

struct sftp_slot {
	struct sm_sftpc *c;
	int users;
};

/* DST directories found to be real directories lately (sftp_parents) */
#define SFTP_DIRS 64
#define SFTP_DIR_TTL_NS 1000000000ull /* looked at again after a second */
struct sftp_dir {
	char *key;      /* a directory key without its '/' */
	bool busy;      /* a thread is looking at (and making) it now */
	uint64_t seq;   /* dirs_seq when it was found good (0: not) */
	uint64_t at_ns; /* and when (sm_now_ns) */
};

struct sftp_store {
	struct sm_sftp_loc loc;
	const struct sm_ssh_ops *ssh;
	char *root; /* remote root without a trailing '/' ("" = login dir, "/" = /) */
	bool follow;
	bool read_links;
	atomic_bool unsynced; /* a file was written without fsync@openssh.com */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a connect finished */
	bool mu_init;
	struct sftp_slot conn[SFTP_CONNS_MAX];
	int nconn;
	int connecting;
	/* the remote login's ids (what a new file gets), from the probe of
	 * writable(); unknown: owners are always sent */
	bool login_known;
	uint32_t login_uid, login_gid;
	atomic_bool owner_warned; /* a refused chown was shown (the others: -v) */
	bool ever;                /* a connection worked: a refused one now is an outage */
	uint64_t down_since_ns;   /* the outage began (sm_now_ns), 0: none */
	struct sm_diag fatal;     /* SM_EFATAL once a connect met one: every later call fails */
	/* directories writes found good lately (sftp_parents) */
	pthread_mutex_t dirs_mu;
	pthread_cond_t dirs_cv; /* a look finished */
	struct sftp_dir dirs[SFTP_DIRS];
	int dirs_pos;
	atomic_uint_fast64_t dirs_seq;
	/* listings kept for the run (cfg.list_cache), or NULL; never where
	 * symlinks are followed: a listing then holds per-cursor results
	 * (loop checks against the cursor's own ancestors) */
	struct sm_dircache *dcache;
};

static void sftp_listing_free(void *p);

static struct sftp_store *sftp_priv(struct sm_store *st)
{
	return st->priv;
}

/* Take broken connections nobody uses out of the table (fs->mu held);
 * the caller stops them after unlocking. */
static int sftp_reap_locked(struct sftp_store *fs, struct sm_sftpc **dead)
{
	int n = 0;
	for (int i = 0; i < fs->nconn;) {
		if (fs->conn[i].users == 0 && sm_sftpc_broken(fs->conn[i].c)) {
			dead[n++] = fs->conn[i].c;
			fs->conn[i] = fs->conn[--fs->nconn];
		} else {
			i++;
		}
	}
	return n;
}

static void sftp_stop_all(struct sm_sftpc **dead, int n)
{
	for (int i = 0; i < n; i++)
		sm_sftpc_stop(dead[i]);
}

static enum sm_err sftp_connect(struct sftp_store *fs, struct sm_sftpc **out, struct sm_diag *d)
{
	struct sm_ssh_target t = { .host = fs->loc.host,
		                   .user = fs->loc.user,
		                   .password = fs->loc.password,
		                   .port = fs->loc.port };
	struct sm_ssh_conn *ssh = NULL;
	enum sm_err err = fs->ssh->connect(&t, &ssh, d);
	if (err != SM_OK)
		return err;
	return sm_sftpc_start(fs->ssh, ssh, out, d);
}

/*
 * Connect, riding out an outage: once a connection has worked in this run,
 * a connect that is refused, reset or cut (SM_EAGAIN: a server restarting,
 * a link coming back) is tried again with backoff until SFTP_OUTAGE_MS
 * after the outage began, the outage logged once. The caller holds
 * fs->connecting, so the other threads wait for this one instead of each
 * knocking. Past the bound every call tries once (a dead server fails
 * keys quickly). Call without fs->mu.
 */
#define SFTP_OUTAGE_MS 60000u
#define SFTP_OUTAGE_BACKOFF_MS 250u
#define SFTP_OUTAGE_BACKOFF_MAX_MS 4000u

static enum sm_err sftp_connect_ride(struct sftp_store *fs, struct sm_sftpc **out,
                                     struct sm_diag *d)
{
	unsigned wait_ms = SFTP_OUTAGE_BACKOFF_MS;
	for (;;) {
		enum sm_err err = sftp_connect(fs, out, d);
		pthread_mutex_lock(&fs->mu);
		uint64_t now = sm_now_ns(), since = fs->down_since_ns;
		bool first = false;
		if (err == SM_OK) {
			fs->ever = true;
			fs->down_since_ns = 0;
		} else if (err == SM_EAGAIN && fs->ever && !since) {
			fs->down_since_ns = since = now;
			first = true;
		}
		bool ever = fs->ever;
		pthread_mutex_unlock(&fs->mu);
		if (err == SM_OK) {
			if (since)
				sm_log(SM_LOG_INFO, "ssh: %s answers again after %.1f s",
				       sm_sftpc_name(*out), (double)(now - since) / 1e9);
			return SM_OK;
		}
		if (err != SM_EAGAIN || !ever || now - since >= (uint64_t)SFTP_OUTAGE_MS * 1000000u)
			return err;
		if (first)
			sm_log(SM_LOG_WARN, "%s; trying again for up to %u s", d ? d->msg : "ssh",
			       SFTP_OUTAGE_MS / 1000);
		sm_sleep_ms(wait_ms + (unsigned)(sm_rand64() % (wait_ms / 2 + 1)));
		if (wait_ms < SFTP_OUTAGE_BACKOFF_MAX_MS)
			wait_ms *= 2;
	}
}

/* A connection for one operation (give it back with sftp_put_conn and
 * the same weight): 1 for small ones; a large transfer counts as
 * SFTP_SLOTS, so that two of them get a connection each (its engine thread
 * does their encryption). */
static enum sm_err sftp_get_w(struct sftp_store *fs, int weight, struct sm_sftpc **out,
                              struct sm_diag *d)
{
	struct sm_sftpc *dead[SFTP_CONNS_MAX];
	struct sm_diag cd = { 0 };
	enum sm_err cerr = SM_OK; /* a connect of ours failed: share or give up */
	pthread_mutex_lock(&fs->mu);
	for (;;) {
		if (fs->fatal.err != SM_OK) { /* reported once, where it happened */
			if (d)
				*d = fs->fatal;
			pthread_mutex_unlock(&fs->mu);
			return SM_EFATAL;
		}
		int nd = sftp_reap_locked(fs, dead);
		if (nd) {
			pthread_mutex_unlock(&fs->mu);
			sftp_stop_all(dead, nd);
			pthread_mutex_lock(&fs->mu);
			continue;
		}
		int best = -1;
		for (int i = 0; i < fs->nconn; i++)
			if (!sm_sftpc_broken(fs->conn[i].c) &&
			    (best < 0 || fs->conn[i].users < fs->conn[best].users))
				best = i;
		/* one connect at a time: meanwhile the others share */
		bool busy = fs->nconn + fs->connecting >= SFTP_CONNS_MAX || fs->connecting ||
		            cerr != SM_OK;
		if (best >= 0 && (fs->conn[best].users + weight <= SFTP_SLOTS || busy)) {
			fs->conn[best].users += weight;
			*out = fs->conn[best].c;
			pthread_mutex_unlock(&fs->mu);
			return SM_OK;
		}
		if (cerr != SM_OK) { /* and none left to share */
			pthread_mutex_unlock(&fs->mu);
			if (d)
				*d = cd;
			return cerr;
		}
		if (busy) { /* being connected, or all held broken: wait */
			pthread_cond_wait(&fs->cv, &fs->mu);
			continue;
		}
		fs->connecting++;
		pthread_mutex_unlock(&fs->mu);
		struct sm_sftpc *c = NULL;
		enum sm_err err = sftp_connect_ride(fs, &c, &cd);
		pthread_mutex_lock(&fs->mu);
		fs->connecting--;
		pthread_cond_broadcast(&fs->cv);
		if (err == SM_EFATAL && fs->fatal.err == SM_OK)
			fs->fatal = cd; /* no more handshakes: the next one would fail alike */
		if (err == SM_OK) {
			fs->conn[fs->nconn++] = (struct sftp_slot){ .c = c, .users = weight };
			*out = c;
			pthread_mutex_unlock(&fs->mu);
			return SM_OK;
		}
		/* choose again: the table may have changed meanwhile; one more
		 * refused (MaxStartups, MaxSessions) means sharing the others */
		sm_log(SM_LOG_DEBUG, "sftp: a connection failed: %s", cd.msg);
		cerr = err;
	}
}

static void sftp_put_conn_w(struct sftp_store *fs, int weight, struct sm_sftpc *c)
{
	if (!c)
		return;
	struct sm_sftpc *dead[SFTP_CONNS_MAX];
	pthread_mutex_lock(&fs->mu);
	for (int i = 0; i < fs->nconn; i++)
		if (fs->conn[i].c == c)
			fs->conn[i].users -= weight;
	int nd = sftp_reap_locked(fs, dead);
	pthread_cond_broadcast(&fs->cv); /* room, or a broken one gone */
	pthread_mutex_unlock(&fs->mu);
	sftp_stop_all(dead, nd);
}

static enum sm_err sftp_get(struct sftp_store *fs, struct sm_sftpc **out, struct sm_diag *d)
{
	return sftp_get_w(fs, 1, out, d);
}

static void sftp_put_conn(struct sftp_store *fs, struct sm_sftpc *c)
{
	sftp_put_conn_w(fs, 1, c);
}

/*
 * The failure `rc` of a request as an sm_err (the one place SFTP's codes
 * are mapped). Link failures are retryable.
 */
static enum sm_err sftp_err(struct sm_sftpc *c, int rc, const char *what, const char *path,
                            struct sm_diag *d)
{
	if (rc == SM_SFTPC_LINK)
		return sm_diag_set(d, SM_EAGAIN, 0, "sftp: %s '%s': connection failed: %s", what,
		                   path, sm_sftpc_why(c));
	enum sm_err kind = SM_EIO;
	const char *why = "failure";
	switch (rc) {
	case 2: /* NO_SUCH_FILE */
	case 10: /* NO_SUCH_PATH */ kind = SM_ENOENT, why = "no such file"; break;
	case 3: /* PERMISSION_DENIED */
	case 12: /* WRITE_PROTECT */ kind = SM_EACCES, why = "permission denied"; break;
	case 11: /* FILE_ALREADY_EXISTS */ kind = SM_EEXIST, why = "file exists"; break;
	case 14: /* NO_SPACE_ON_FILESYSTEM */
	case 15: /* QUOTA_EXCEEDED */ kind = SM_ENOSPC, why = "no space left"; break;
	case 19: /* NOT_A_DIRECTORY */ kind = SM_ENOTDIR, why = "not a directory"; break;
	case 18: /* DIR_NOT_EMPTY */ kind = SM_ENOTEMPTY, why = "directory not empty"; break;
	case 20: /* INVALID_FILENAME */ kind = SM_EINVAL, why = "invalid file name"; break;
	case 1: /* EOF */ why = "unexpected end of file"; break;
	case 8: /* OP_UNSUPPORTED */ kind = SM_ENOTSUP, why = "not supported by the server"; break;
	}
	return sm_diag_set(d, kind, rc, "sftp: %s '%s': %s", what, path, why);
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

static uint32_t sftp_attr_mode(const struct sm_sftpc_attrs *a)
{
	uint32_t mode = (a->flags & SM_SFTPC_A_PERM) ? a->perm : (S_IFREG | 0644);
	return (mode & S_IFMT) ? mode : mode | S_IFREG;
}

static void sftp_fill(struct sm_entry *e, const struct sm_sftpc_attrs *a)
{
	uint32_t mode = sftp_attr_mode(a);
	e->mode = mode;
	e->size = S_ISDIR(mode) ? 0 : (a->flags & SM_SFTPC_A_SIZE) ? a->size : 0;
	e->mtime_ns = (a->flags & SM_SFTPC_A_TIME) ? (int64_t)a->mtime * 1000000000 : 0;
	/* SFTP's times end in 2106 (sftp_attrset keeps a later one there) */
	e->mtime_clamp = (a->flags & SM_SFTPC_A_TIME) && a->mtime == UINT32_MAX ? 1 : 0;
	if (a->flags & SM_SFTPC_A_UIDGID) {
		e->uid = a->uid;
		e->gid = a->gid;
	}
}

/* One request naming a path: `type` `path` [`a`], waited for. */
static int sftp_call_path(struct sm_sftpc *c, struct sm_sftpc_req *q, uint8_t type,
                          const char *path, const struct sm_sftpc_attrs *a)
{
	sm_sftpc_begin(q, type);
	sm_sftpc_cstr(q, path);
	if (a)
		sm_sftpc_attrs(q, a);
	return sm_sftpc_call(c, q);
}

/* The same with a throwaway request: 0 or the failure. */
static int sftp_simple(struct sm_sftpc *c, uint8_t type, const char *path,
                       const struct sm_sftpc_attrs *a)
{
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	int rc = sftp_call_path(c, &q, type, path, a);
	sm_sftpc_req_release(&q);
	return rc;
}

/* STAT or LSTAT of path into *a: 0 or the failure. */
static int sftp_stat_rc(struct sm_sftpc *c, const char *path, bool follow, struct sm_sftpc_attrs *a)
{
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	int rc = sftp_call_path(c, &q, follow ? SM_SFTPC_STAT : SM_SFTPC_LSTAT, path, NULL);
	if (rc == 0) {
		struct sm_sftpc_rd r;
		sm_sftpc_rd_init(&r, &q);
		sm_sftpc_get_attrs(&r, a);
		if (r.bad) {
			sm_sftpc_fail(c, "malformed attributes from the server");
			rc = SM_SFTPC_LINK;
		}
	}
	sm_sftpc_req_release(&q);
	return rc;
}

static enum sm_err sftp_stat_path(struct sm_sftpc *c, const char *path, bool follow,
                                  struct sm_sftpc_attrs *a, struct sm_diag *d)
{
	int rc = sftp_stat_rc(c, path, follow, a);
	return rc ? sftp_err(c, rc, "stat", path, d) : SM_OK;
}

/* The first name of a NAME reply (READLINK, REALPATH), malloc'd. */
static enum sm_err sftp_name1(struct sm_sftpc *c, uint8_t type, const char *path, char **out,
                              struct sm_diag *d)
{
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	int rc = sftp_call_path(c, &q, type, path, NULL);
	enum sm_err err = SM_OK;
	if (rc) {
		err = sftp_err(c, rc, type == SM_SFTPC_READLINK ? "readlink" : "resolve", path, d);
		goto out;
	}
	struct sm_sftpc_rd r;
	sm_sftpc_rd_init(&r, &q);
	uint32_t count = sm_sftpc_get_u32(&r);
	size_t n;
	const char *s = sm_sftpc_get_str(&r, &n);
	if (r.bad || count < 1 || n >= SFTP_NAME_MAX || memchr(s, '\0', n)) {
		sm_sftpc_fail(c, "malformed name from the server");
		err = sftp_err(c, SM_SFTPC_LINK, "resolve", path, d);
		goto out;
	}
	if (!(*out = sm_strndup(s, n)))
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
out:
	sm_sftpc_req_release(&q);
	return err;
}

static enum sm_err sftp_readlink(struct sm_sftpc *c, const char *path, char **out,
                                 struct sm_diag *d)
{
	return sftp_name1(c, SM_SFTPC_READLINK, path, out, d);
}

static enum sm_err sftp_realpath(struct sm_sftpc *c, const char *path, char **out,
                                 struct sm_diag *d)
{
	return sftp_name1(c, SM_SFTPC_REALPATH, path, out, d);
}

/* Close a handle without waiting for the reply. */
static void sftp_close_handle(struct sm_sftpc *c, const struct sm_sftpc_handle *h)
{
	struct sm_sftpc_req *q = malloc(sizeof(*q));
	if (!q)
		return; /* the server closes it with the channel */
	sm_sftpc_req_init(q);
	sm_sftpc_begin(q, SM_SFTPC_CLOSE);
	sm_sftpc_handle(q, h);
	sm_sftpc_submit_detached(c, q);
}

/* ---- open / close ---- */

static enum sm_err sftp_reroot(struct sm_store *st, struct sftp_store *fs, struct sm_diag *d);
static enum sm_err sftp_expand_home(struct sm_sftpc *c, char **path, struct sm_diag *d);
static enum sm_err sftp_where(struct sm_store *st, struct sftp_store *fs, struct sm_sftpc *c,
                              struct sm_diag *d);

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
	pthread_cond_init(&fs->cv, NULL);
	pthread_mutex_init(&fs->dirs_mu, NULL);
	pthread_cond_init(&fs->dirs_cv, NULL);
	atomic_init(&fs->dirs_seq, 1); /* sftp_dirs_now() is never 0 */
	fs->mu_init = true;
	fs->ssh = cfg->ssh;
	fs->follow = cfg->follow_links;
	fs->read_links = cfg->read_links;
	if (cfg->list_cache && !cfg->follow_links &&
	    sm_dircache_new(cfg->list_cache, sftp_listing_free, &fs->dcache) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	size_t n = strlen(fs->loc.path);
	while (n > 1 && fs->loc.path[n - 1] == '/')
		n--;
	if (!(fs->root = sm_strndup(fs->loc.path, n)))
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	/* connect now: a refused key or host fails the run once, here */
	struct sm_sftpc *c = NULL;
	err = sftp_get(fs, &c, d);
	if (err != SM_OK)
		return err;
	if (fs->root[0] == '~') { /* "~user/dir": the server knows the homes */
		err = sftp_expand_home(c, &fs->root, d);
		if (err != SM_OK) {
			sftp_put_conn(fs, c);
			return err;
		}
	}
	struct sm_sftpc_attrs a;
	const char *root = *fs->root ? fs->root : ".";
	err = sftp_stat_path(c, root, true, &a, d);
	bool isdir = err == SM_OK && S_ISDIR(sftp_attr_mode(&a));
	if (cfg->one == SM_ONE_SRC && err == SM_OK && S_ISREG(sftp_attr_mode(&a)))
		err = sftp_reroot(st, fs, d);
	else if (cfg->one == SM_ONE_DST && (err == SM_ENOENT || (err == SM_OK && !isdir)))
		err = sftp_reroot(st, fs, d);
	else if (err == SM_OK && !isdir)
		err = sm_diag_set(d, SM_ENOTDIR, 0, "'%s' is not a directory", u->display);
	else if (err == SM_ENOENT && !cfg->must_exist)
		err = SM_OK; /* created on first write */
	else if (err == SM_ENOENT)
		err = sm_diag_set(d, err, 0, "'%s': no such %s", u->display,
		                  cfg->one == SM_ONE_SRC ? "file or directory" : "directory");
	/* other failures: the message names the remote path already */
	if (err == SM_OK)
		err = sftp_where(st, fs, c, d);
	if (err == SM_OK && !fs->loc.password && sm_sftpc_typed_password(c))
		fs->loc.password = sm_strdup(sm_sftpc_typed_password(c));
	sftp_put_conn(fs, c);
	return err;
}

/* "~user[/dir]" in *path replaced by what the server makes of it
 * (expand-path@openssh.com, as scp does); an error when it cannot. */
static enum sm_err sftp_expand_home(struct sm_sftpc *c, char **path, struct sm_diag *d)
{
	size_t ul = strcspn(*path, "/");
	if (!sm_sftpc_has_ext(c, "expand-path@openssh.com"))
		return sm_diag_set(d, SM_ENOTSUP, 0,
		                   "sftp: %s cannot expand '%.*s' (the server lacks "
		                   "expand-path@openssh.com): give the path from '/'",
		                   sm_sftpc_name(c), (int)ul, *path);
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin_ext(&q, "expand-path@openssh.com", SM_SFTPC_R_NAME);
	sm_sftpc_cstr(&q, *path);
	int rc = sm_sftpc_call(c, &q);
	enum sm_err err = SM_OK;
	if (rc == SM_SFTPC_LINK) {
		err = sftp_err(c, rc, "expand", *path, d);
	} else if (rc) {
		err = sm_diag_set(d, SM_ENOENT, rc, "sftp: %s cannot expand '%.*s' (no such user?)",
		                  sm_sftpc_name(c), (int)ul, *path);
	} else {
		struct sm_sftpc_rd r;
		sm_sftpc_rd_init(&r, &q);
		uint32_t count = sm_sftpc_get_u32(&r);
		size_t n;
		const char *sname = sm_sftpc_get_str(&r, &n);
		char *e = NULL;
		if (r.bad || count < 1 || !n || n >= SFTP_NAME_MAX || memchr(sname, '\0', n))
			err = sm_diag_set(d, SM_EIO, 0, "sftp: %s: malformed answer to expand '%s'",
			                  sm_sftpc_name(c), *path);
		else if (!(e = sm_strndup(sname, n)))
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		if (e) {
			/* the root has no trailing '/' (sftp_open) */
			for (size_t l = strlen(e); l > 1 && e[l - 1] == '/'; l--)
				e[l - 1] = '\0';
			free(*path);
			*path = e;
		}
	}
	sm_sftpc_req_release(&q);
	return err;
}

/* cfg.one (store.h): the root names one object: its parent becomes the root. */
static enum sm_err sftp_reroot(struct sm_store *st, struct sftp_store *fs, struct sm_diag *d)
{
	char *parent = NULL, *name = NULL;
	enum sm_err err = sm_store_split_last(fs->root, &parent, &name, d);
	if (err != SM_OK)
		return err;
	free(fs->root);
	fs->root = parent; /* "" is the login directory */
	st->one = name;
	return SM_OK;
}

/* The server's absolute path of `path`, or of its nearest existing ancestor
 * plus the rest (a root not made yet). */
static enum sm_err sftp_resolve_loose(struct sm_sftpc *c, const char *path, char **out,
                                      struct sm_diag *d)
{
	char *real = NULL;
	struct sm_diag ld;
	enum sm_err err = sftp_realpath(c, *path ? path : ".", &real, &ld);
	if (err == SM_OK) {
		*out = real;
		return SM_OK;
	}
	if (err != SM_ENOENT && err != SM_EIO) {
		*d = ld;
		return err;
	}
	char *parent = NULL, *name = NULL;
	if (!*path || sm_store_split_last(path, &parent, &name, &ld) != SM_OK) {
		*d = ld;
		return err;
	}
	char *pr = NULL;
	err = sftp_resolve_loose(c, parent, &pr, d);
	if (err == SM_OK) {
		char *dir = strcmp(pr, "/") ? sm_strcat2(pr, "/") : sm_strdup(pr);
		*out = dir ? sm_strcat2(dir, name) : NULL;
		free(dir);
		if (!*out)
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	free(pr);
	free(parent);
	free(name);
	return err;
}

/* sm_store_set_where(): one space per account on a server. */
static enum sm_err sftp_where(struct sm_store *st, struct sftp_store *fs, struct sm_sftpc *c,
                              struct sm_diag *d)
{
	char *real = NULL;
	enum sm_err err = sftp_resolve_loose(c, fs->root, &real, d);
	if (err != SM_OK)
		return err;
	char *space = sm_strcat2("sftp://", sm_sftpc_name(c));
	err = space ? sm_store_set_where(st, space, real, d)
	            : sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	free(space);
	free(real);
	return err;
}

static void sftp_close(struct sm_store *st)
{
	struct sftp_store *fs = sftp_priv(st);
	if (!fs)
		return;
	for (int i = 0; i < fs->nconn; i++)
		sm_sftpc_stop(fs->conn[i].c);
	fs->nconn = 0;
	if (fs->mu_init) {
		pthread_cond_destroy(&fs->cv);
		pthread_mutex_destroy(&fs->mu);
		pthread_mutex_destroy(&fs->dirs_mu);
		pthread_cond_destroy(&fs->dirs_cv);
	}
	for (int i = 0; i < SFTP_DIRS; i++)
		free(fs->dirs[i].key);
	sm_dircache_free(fs->dcache);
	free(fs->root);
	sm_sftp_loc_release(&fs->loc);
}

/* ---- DST directories ---- */

/* mkdir -p of the root (a path the user gave: a symlink in it is theirs,
 * so it is followed): MKDIR first (usually the parent is there), the
 * parents only when it says there is none. */
static enum sm_err sftp_mkdir_p(struct sm_sftpc *c, const char *path, struct sm_diag *d)
{
	struct sm_sftpc_attrs ma = { .flags = SM_SFTPC_A_PERM, .perm = 0755 };
	int rc = sftp_simple(c, SM_SFTPC_MKDIR, path, &ma);
	if (rc == 0)
		return SM_OK;
	enum sm_err err = SM_OK;
	char *slash = strrchr(path, '/');
	if (rc == SM_SFTPC_FX_NO_SUCH_FILE && slash && slash != path) {
		char *parent = sm_strndup(path, (size_t)(slash - path));
		if (!parent)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		err = sftp_mkdir_p(c, parent, d);
		free(parent);
		if (err != SM_OK)
			return err;
		rc = sftp_simple(c, SM_SFTPC_MKDIR, path, &ma);
		if (rc == 0)
			return SM_OK;
	}
	if (rc == SM_SFTPC_LINK)
		return sftp_err(c, rc, "mkdir", path, d);
	/* there already (OpenSSH says "failure" for EEXIST), made meanwhile
	 * by another thread, or refused: what is there? */
	struct sm_sftpc_attrs a;
	int src = sftp_stat_rc(c, path, true, &a);
	if (src == 0)
		return S_ISDIR(sftp_attr_mode(&a))
		               ? SM_OK
		               : sm_diag_set(d, SM_ENOTDIR, 0, "sftp: '%s' is not a directory",
		                             path);
	return sftp_err(c, src == SM_SFTPC_LINK ? src : rc, "mkdir", path, d);
}

static enum sm_err sftp_root_make(struct sftp_store *fs, struct sm_sftpc *c, struct sm_diag *d)
{
	return sftp_mkdir_p(c, *fs->root ? fs->root : ".", d);
}

/*
 * Make the directory `path` (of key `dkey`, below the root). One that is
 * there already (OpenSSH says "failure" for EEXIST), made meanwhile by
 * another thread, is fine when LSTAT finds a directory; a symlink there is
 * replaced by a directory (as rsync does, and the file backend), unless
 * the store follows links (a SRC); a file there is an error. A missing
 * root is made first.
 */
static enum sm_err sftp_dir_make(struct sftp_store *fs, struct sm_sftpc *c, const char *dkey,
                                 const char *path, uint32_t mode, struct sm_diag *d)
{
	struct sm_sftpc_attrs ma = { .flags = SM_SFTPC_A_PERM, .perm = mode };
	bool top = !strchr(dkey, '/');
	int rc = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		rc = sftp_simple(c, SM_SFTPC_MKDIR, path, &ma);
		if (rc == 0)
			return SM_OK;
		if (rc == SM_SFTPC_LINK)
			break;
		if (rc == SM_SFTPC_FX_NO_SUCH_FILE && top && attempt == 0) {
			enum sm_err err = sftp_root_make(fs, c, d);
			if (err != SM_OK)
				return err;
			continue;
		}
		struct sm_sftpc_attrs a;
		int lrc = sftp_stat_rc(c, path, fs->follow, &a);
		if (lrc) {
			rc = lrc == SM_SFTPC_LINK ? lrc : rc; /* else MKDIR's own failure */
			break;
		}
		uint32_t m = sftp_attr_mode(&a);
		if (S_ISDIR(m))
			return SM_OK;
		if (!S_ISLNK(m) || attempt == 2)
			return sm_diag_set(d, SM_ENOTDIR, 0, "sftp: '%s' on DST is not a directory",
			                   path);
		sm_log(SM_LOG_INFO, "replacing symlink '%s' on DST by a directory", dkey);
		rc = sftp_simple(c, SM_SFTPC_REMOVE, path, NULL);
		if (rc && rc != SM_SFTPC_FX_NO_SUCH_FILE)
			break;
	}
	return sftp_err(c, rc, "mkdir", path, d);
}

#define SFTP_LOOK 16 /* LSTATs of one look in flight at once */

/*
 * Look at the directories of `dkey` (a directory key without its '/'), top
 * down, SFTP_LOOK LSTATs in flight. Each must be a real directory. With
 * `create` a missing one is made and a symlink replaced by a directory
 * (the LSTATs below one that was not a directory looked through it or at
 * nothing: what is below is made); without, either is SM_ENOENT (the key
 * cannot be there). A file in the way is SM_ENOTDIR.
 */
static enum sm_err sftp_dirs_walk(struct sftp_store *fs, struct sm_sftpc *c, const char *dkey,
                                  bool create, struct sm_diag *d)
{
	struct sm_sftpc_req q[SFTP_LOOK];
	char *path[SFTP_LOOK] = { 0 };
	char *k[SFTP_LOOK] = { 0 };
	for (int i = 0; i < SFTP_LOOK; i++)
		sm_sftpc_req_init(&q[i]);
	size_t len = strlen(dkey), pos = 0;
	bool made = false; /* one above was made: the rest is missing */
	enum sm_err err = SM_OK;
	while (pos < len && err == SM_OK) {
		int n = 0;
		for (; n < SFTP_LOOK && pos < len; n++) {
			const char *slash = memchr(dkey + pos, '/', len - pos);
			size_t end = slash ? (size_t)(slash - dkey) : len;
			k[n] = sm_strndup(dkey, end);
			path[n] = k[n] ? sftp_path(fs, k[n]) : NULL;
			pos = end + 1;
			if (!path[n]) {
				err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
				n++;
				break;
			}
		}
		int sent = 0;
		for (; err == SM_OK && !made && sent < n; sent++) {
			sm_sftpc_begin(&q[sent], fs->follow ? SM_SFTPC_STAT : SM_SFTPC_LSTAT);
			sm_sftpc_cstr(&q[sent], path[sent]);
			sm_sftpc_submit(c, &q[sent]);
		}
		for (int i = 0; i < n; i++) {
			int rc = i < sent ? sm_sftpc_wait(c, &q[i]) : 0;
			if (err != SM_OK)
				continue; /* only collecting the replies */
			if (made || i >= sent) {
				err = sftp_dir_make(fs, c, k[i], path[i], 0755, d);
				continue;
			}
			struct sm_sftpc_attrs a = { 0 };
			if (rc == 0) {
				struct sm_sftpc_rd r;
				sm_sftpc_rd_init(&r, &q[i]);
				sm_sftpc_get_attrs(&r, &a);
				if (r.bad) {
					sm_sftpc_fail(c, "malformed attributes from the server");
					rc = SM_SFTPC_LINK;
				}
			}
			uint32_t m = sftp_attr_mode(&a);
			if (rc == 0 && S_ISDIR(m))
				continue;
			if (rc == 0 && !S_ISLNK(m))
				err = sm_diag_set(d, SM_ENOTDIR, 0,
				                  "sftp: '%s' on DST is not a directory", path[i]);
			else if (rc && rc != SM_SFTPC_FX_NO_SUCH_FILE)
				err = sftp_err(c, rc, "stat", path[i], d);
			else if (!create)
				err = sm_diag_set(d, SM_ENOENT, 0, "sftp: '%s' on DST is %s",
				                  path[i],
				                  rc ? "missing" : "a symlink, not a directory");
			else
				err = sftp_dir_make(fs, c, k[i], path[i], 0755, d);
			made = true;
		}
		for (int i = 0; i < n; i++) {
			free(path[i]);
			free(k[i]);
			path[i] = k[i] = NULL;
		}
	}
	for (int i = 0; i < SFTP_LOOK; i++)
		sm_sftpc_req_release(&q[i]);
	return err;
}

static uint64_t sftp_dirs_now(struct sftp_store *fs)
{
	return atomic_load(&fs->dirs_seq);
}

/*
 * A write never goes through a symlink on DST, as in the file backend:
 * before a put, symlink or mkdir makes `key` (`create`), and before a
 * delete or setattr touches it, every directory above it below the root is
 * a real directory (sftp_dirs_walk: missing ones made, symlinks replaced;
 * without `create`, SM_ENOENT when one is missing or a symlink).
 * SFTP version 3 has no O_NOFOLLOW: a symlink planted between this look and
 * the request is still followed; the look keeps that window to a request
 * or two. A directory found good is taken as good for SFTP_DIR_TTL_NS, so
 * the files of one directory cost one look, not one each; the threads that
 * write into a new directory take turns: the first looks (and makes it)
 * while the others wait for it, not over the network, and then find it
 * good. `after`: 0 before the write, or sftp_dirs_now() (never 0) read
 * before a request that found the parent missing: then a look from before
 * it does not count, and a key in the root has its missing root made.
 */
static enum sm_err sftp_parents(struct sftp_store *fs, struct sm_sftpc *c, const char *key,
                                bool create, uint64_t after, struct sm_diag *d)
{
	if (fs->follow && !create)
		return SM_OK; /* a SRC, which follows its links anyway */
	size_t kn = strlen(key);
	if (kn && key[kn - 1] == '/')
		kn--;
	const char *slash = memrchr(key, '/', kn);
	if (!slash) /* in the root: only a missing root to make */
		return create && after ? sftp_root_make(fs, c, d) : SM_OK;
	char *dkey = sm_strndup(key, (size_t)(slash - key));
	if (!dkey)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	pthread_mutex_lock(&fs->dirs_mu);
	struct sftp_dir *m;
	for (;;) {
		bool busy = false, good = false;
		uint64_t now = sm_now_ns();
		m = NULL;
		for (int i = 0; i < SFTP_DIRS; i++) {
			struct sftp_dir *x = &fs->dirs[i];
			if (!x->key || strcmp(x->key, dkey))
				continue;
			if (x->busy)
				busy = true;
			else if (x->seq > after && now - x->at_ns < SFTP_DIR_TTL_NS)
				good = true;
			else
				m = x;
		}
		if (good) {
			pthread_mutex_unlock(&fs->dirs_mu);
			free(dkey);
			return SM_OK;
		}
		if (!busy)
			break;
		pthread_cond_wait(&fs->dirs_cv, &fs->dirs_mu);
	}
	/* ours to look at: its old slot, or one nobody is using (none free:
	 * looked at without a note) */
	for (int n = 0; n < SFTP_DIRS && !m; n++) {
		struct sftp_dir *x = &fs->dirs[(fs->dirs_pos + n) % SFTP_DIRS];
		if (!x->busy) {
			m = x;
			fs->dirs_pos = (int)((x - fs->dirs) + 1) % SFTP_DIRS;
		}
	}
	if (m) {
		free(m->key);
		m->key = dkey;
		m->busy = true;
		m->seq = 0;
		dkey = NULL;
	}
	pthread_mutex_unlock(&fs->dirs_mu);
	/* a busy slot is left alone by the others: its key is ours to read */
	enum sm_err err = sftp_dirs_walk(fs, c, m ? m->key : dkey, create, d);
	pthread_mutex_lock(&fs->dirs_mu);
	if (m) {
		m->busy = false;
		m->seq = err == SM_OK ? atomic_fetch_add(&fs->dirs_seq, 1) + 1 : 0;
		m->at_ns = sm_now_ns();
		pthread_cond_broadcast(&fs->dirs_cv);
	}
	pthread_mutex_unlock(&fs->dirs_mu);
	free(dkey);
	return err;
}

/* A time as "YYYY-MM-DD HH:MM:SS UTC", for messages. */
static void sftp_fmt_time(int64_t s, char *out, size_t n)
{
	time_t t = (time_t)s;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, n, "%" PRId64 " s", s);
}

/*
 * The attributes a put, mkdir or setattr sets, in the order the server
 * applies them (one request each, pipelined): size, permissions and times;
 * then owner and group on their own, so that a refused chown fails nothing
 * else; then the permissions once more when they hold setuid or setgid
 * bits, which a chown clears (OpenSSH's server applies a mixed request's
 * chown after its chmod). A flags of 0: that request is not sent.
 */
struct sftp_attrset {
	struct sm_sftpc_attrs main;
	struct sm_sftpc_attrs owner;
	struct sm_sftpc_attrs remode;
};

/*
 * From p: `cur` holds the file's present owner (an existing one's LSTAT),
 * or is NULL for a file this put creates (then owned by the login). Owners
 * are sent only where they change something or the login is root (what a
 * refusal would cost otherwise is a warning per key). `key` names the key
 * in the warning about a time SFTP cannot hold (NULL: no warning).
 */
static void sftp_attrset(struct sftp_store *fs, const struct sm_put *p, const char *key,
                         const struct sm_sftpc_attrs *cur, struct sftp_attrset *a)
{
	memset(a, 0, sizeof(*a));
	if (p->flags & SM_PUT_MTIME) {
		a->main.flags |= SM_SFTPC_A_TIME;
		int64_t s = p->mtime_ns / 1000000000;
		if (p->mtime_ns < 0 && p->mtime_ns % 1000000000)
			s--;
		/* SFTP v3 times are unsigned 32-bit seconds: 1970 to 2106 */
		int64_t kept = s < 0 ? 0 : s > (int64_t)UINT32_MAX ? (int64_t)UINT32_MAX : s;
		if (kept != s && key) {
			char was[64], now[64];
			sftp_fmt_time(s, was, sizeof(was));
			sftp_fmt_time(kept, now, sizeof(now));
			sm_log(SM_LOG_WARN,
			       "'%s': mtime %s is outside what SFTP can keep (1970 to 2106): DST "
			       "keeps %s",
			       key, was, now);
		}
		a->main.mtime = a->main.atime = (uint32_t)kept;
	}
	if (p->flags & SM_PUT_MODE) {
		a->main.flags |= SM_SFTPC_A_PERM;
		a->main.perm = p->mode & 07777;
	}
	if (!(p->flags & SM_PUT_OWNER))
		return;
	bool send;
	if (cur && (cur->flags & SM_SFTPC_A_UIDGID))
		send = cur->uid != p->uid || cur->gid != p->gid;
	else if (!cur && fs->login_known)
		send = fs->login_uid == 0 || fs->login_uid != p->uid || fs->login_gid != p->gid;
	else
		send = true;
	if (!send)
		return;
	a->owner =
	        (struct sm_sftpc_attrs){ .flags = SM_SFTPC_A_UIDGID, .uid = p->uid, .gid = p->gid };
	if ((a->main.flags & SM_SFTPC_A_PERM) && (a->main.perm & 06000))
		a->remode =
		        (struct sm_sftpc_attrs){ .flags = SM_SFTPC_A_PERM, .perm = a->main.perm };
}

/* Whether the failure `rc` of an owner request is the server refusing it
 * (a warning, not a failed key). */
static bool sftp_owner_refused(int rc)
{
	return rc == SM_SFTPC_FX_PERMISSION_DENIED || rc == SM_SFTPC_FX_FAILURE;
}

/* The warning for a refused owner: the first in full, the rest with -v. */
static void sftp_owner_warn(struct sftp_store *fs, const char *path, const struct sm_sftpc_attrs *o)
{
	bool first = !atomic_exchange(&fs->owner_warned, true);
	sm_log(first ? SM_LOG_WARN : SM_LOG_INFO,
	       "sftp: the server refused to give '%s' owner %u and group %u (the login is not "
	       "root?): owners stay as they are%s",
	       path, o->uid, o->gid, first ? "; more such refusals are shown with -v" : "");
}

/*
 * Set the attributes p asks for (sftp_attrset) on `path` without following
 * a symlink there: with lsetstat@openssh.com (the server's fchmodat,
 * utimensat and fchownat with AT_SYMLINK_NOFOLLOW) where offered, else
 * SETSTAT after an LSTAT found no symlink (SFTP version 3 has nothing
 * better: a swap between the two is still followed). A symlink's mode is
 * not set (it means nothing); without lsetstat nothing of a symlink is
 * set. `no_time`: leave the times (a directory's change with its
 * contents). A refused owner is a warning.
 */
static enum sm_err sftp_setstat_nofollow(struct sftp_store *fs, struct sm_sftpc *c,
                                         const char *path, const struct sm_put *p, bool no_time,
                                         struct sm_diag *d)
{
	struct sm_sftpc_attrs now;
	int rc = sftp_stat_rc(c, path, false, &now);
	if (rc)
		return sftp_err(c, rc, "set attributes of", path, d);
	struct sm_put want = *p;
	if (no_time)
		want.flags &= ~(unsigned)SM_PUT_MTIME;
	struct sftp_attrset as;
	sftp_attrset(fs, &want, NULL, &now, &as);
	bool lset = sm_sftpc_has_ext(c, "lsetstat@openssh.com");
	if (S_ISLNK(sftp_attr_mode(&now))) {
		as.main.flags &= ~(uint32_t)SM_SFTPC_A_PERM;
		as.remode.flags = 0;
		if (!lset)
			return SM_OK;
	}
	const struct sm_sftpc_attrs *sets[3] = { &as.main, &as.owner, &as.remode };
	struct sm_sftpc_req q[3];
	for (int i = 0; i < 3; i++) {
		sm_sftpc_req_init(&q[i]);
		if (!sets[i]->flags)
			continue;
		if (lset)
			sm_sftpc_begin_ext(&q[i], "lsetstat@openssh.com", SM_SFTPC_R_STATUS);
		else
			sm_sftpc_begin(&q[i], SM_SFTPC_SETSTAT);
		sm_sftpc_cstr(&q[i], path);
		sm_sftpc_attrs(&q[i], sets[i]);
		sm_sftpc_submit(c, &q[i]);
	}
	int rcs[3] = { 0 };
	for (int i = 0; i < 3; i++) {
		if (sets[i]->flags)
			rcs[i] = sm_sftpc_wait(c, &q[i]);
		sm_sftpc_req_release(&q[i]);
	}
	if (rcs[1] && sftp_owner_refused(rcs[1])) {
		sftp_owner_warn(fs, path, &as.owner);
		rcs[1] = 0;
	}
	rc = rcs[0] ? rcs[0] : rcs[1] ? rcs[1] : rcs[2];
	return rc ? sftp_err(c, rc, "set attributes of", path, d) : SM_OK;
}

/* ---- listing ---- */

/*
 * A directory's sorted names live in a table (dirtab.c: in memory, or
 * spilled to TMPDIR when huge), each name with this payload: its
 * attributes, the error it is reported as instead of an entry (SM_OK:
 * none; where the file backend's walk fails on it too: a broken or
 * looping symlink being followed) and that error's message, and its link
 * target (with read_links).
 *   [u32 flags][u64 size][u32 uid][u32 gid][u32 perm][u32 atime][u32 mtime]
 *   [i32 err][u8 has link][link NUL][msg NUL]
 */
struct sftp_meta {
	struct sm_sftpc_attrs a;
	enum sm_err err;
	const char *link; /* NULL: none */
	const char *msg;
};

#define SFTP_META_FIXED 37

static size_t sftp_meta_put(char *p, const struct sm_sftpc_attrs *a, enum sm_err err,
                            const char *link, const char *msg)
{
	uint32_t u[8] = {
		a->flags, (uint32_t)a->size, (uint32_t)(a->size >> 32), a->uid, a->gid, a->perm,
		a->atime, a->mtime
	};
	int32_t e = (int32_t)err;
	memcpy(p, u, sizeof(u));
	memcpy(p + sizeof(u), &e, sizeof(e));
	p[36] = link != NULL;
	size_t n = SFTP_META_FIXED;
	size_t ll = link ? strlen(link) + 1 : 1, ml = strlen(msg) + 1;
	memcpy(p + n, link ? link : "", ll);
	memcpy(p + n + ll, msg, ml);
	return n + ll + ml;
}

static enum sm_err sftp_meta_get(const struct sm_dirtab_rec *r, struct sftp_meta *m,
                                 struct sm_diag *d)
{
	const char *p = r->data;
	const char *link = p + SFTP_META_FIXED, *end = p + r->dlen;
	const char *lend =
	        r->dlen > SFTP_META_FIXED ? memchr(link, '\0', (size_t)(end - link)) : NULL;
	const char *mend = lend ? memchr(lend + 1, '\0', (size_t)(end - lend - 1)) : NULL;
	if (!mend)
		return sm_diag_set(d, SM_EIO, 0, "a sort file in '%s' is damaged",
		                   sm_spill_tmpdir());
	uint32_t u[8];
	int32_t e;
	memcpy(u, p, sizeof(u));
	memcpy(&e, p + sizeof(u), sizeof(e));
	m->a = (struct sm_sftpc_attrs){ .flags = u[0],
		                        .size = u[1] | (uint64_t)u[2] << 32,
		                        .uid = u[3],
		                        .gid = u[4],
		                        .perm = u[5],
		                        .atime = u[6],
		                        .mtime = u[7] };
	m->err = (enum sm_err)e;
	m->link = p[36] ? link : NULL;
	m->msg = lend + 1;
	return SM_OK;
}

struct sftp_frame {
	struct sm_dirtab *tab;       /* the frame's own, or the listing of `ent` */
	struct sm_dircache_ent *ent; /* the listing's cache entry, or NULL */
	struct sm_dirtab_it it;      /* the next name to list */
	size_t prefix_len;           /* bytes of the cursor's key naming this directory */
	char *real;                  /* its real path, once a followed link needed it */
};

struct sftp_cursor {
	struct sftp_store *fs;
	struct sftp_frame *stack;
	int depth;
	int cap;
	struct sm_buf key;
	struct sm_entry ent;
	char *last;
	bool done;
	/* next() returned a directory (cur->key): the next call reads it
	 * first, unless list_skip() came between. Read only then, a directory
	 * a caller skips (parallel listing hands it to another cursor) is never
	 * read twice, and one that cannot be read fails the call that goes
	 * into it, once: the call after that goes on after it. */
	bool descend;
	/* While seeking: the next directory read for this cursor alone keeps
	 * only the names that do not sort below this bound (a component of
	 * `after`), as file.c does. */
	const char *seek_lo;
	size_t seek_lolen;
};

/* The names a directory read for one cursor keeps: none below lo, none
 * above hi (NULL: no bound). */
struct sftp_bounds {
	const char *lo, *hi;
	size_t lolen, hilen;
};

static void sftp_listing_free(void *p)
{
	sm_dirtab_free(p);
}

static void sftp_frame_release(struct sftp_store *fs, struct sftp_frame *f)
{
	sm_dirtab_it_release(&f->it);
	if (f->ent)
		sm_dircache_release(fs->dcache, f->ent);
	else
		sm_dirtab_free(f->tab);
	free(f->real);
	memset(f, 0, sizeof(*f));
}

/*
 * Following symlinks can loop: refuse a link to a directory that is being
 * listed already (the one being read, `path`, or one above it), as the file
 * backend does. Real paths are asked for only when such a link turns up.
 */
static enum sm_err sftp_check_loop(struct sftp_cursor *cur, struct sm_sftpc *c,
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

/* One name of a READDIR reply into f's table (skipped when it is no key). */
static enum sm_err sftp_frame_add(struct sftp_cursor *cur, struct sm_sftpc *c, struct sftp_frame *f,
                                  const struct sftp_bounds *bd, const char *path, const char *name,
                                  size_t n, struct sm_sftpc_attrs a, struct sm_diag *d)
{
	/* this run's temp files are hidden; an interrupted run's are listed and
	 * marked debris by the store layer */
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.') ||
	    (sm_store_is_tmp_name(name, n) && !sm_store_is_debris_name(name, n)))
		return SM_OK;
	if (!n || memchr(name, '/', n) || memchr(name, '\0', n) || n >= SFTP_NAME_MAX)
		return SM_OK; /* not a name a directory can hold */
	bool link = (a.flags & SM_SFTPC_A_PERM) && S_ISLNK(a.perm);
	char *target = NULL;
	char *full = NULL;
	enum sm_err err = SM_OK;
	if (link && (cur->fs->follow || cur->fs->read_links)) {
		struct sm_buf b = { 0 };
		if (sm_buf_appendz(&b, path) || sm_buf_appendz(&b, "/") ||
		    sm_buf_append(&b, name, n) || sm_buf_append(&b, "", 0)) {
			sm_buf_release(&b);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		full = b.p;
	}
	char nm[SFTP_NAME_MAX];
	memcpy(nm, name, n);
	nm[n] = '\0';
	/* a name that fails on its own: reported in its place, as the file
	 * backend does, not dropped (a SRC key silently missing lets
	 * --delete-dst delete DST's copy) */
	enum sm_err bad = SM_OK;
	struct sm_diag bdiag = { 0 };
	if (link && cur->fs->follow) {
		struct sm_sftpc_attrs t;
		int rc = sftp_stat_rc(c, full, true, &t);
		if (rc == SM_SFTPC_LINK) {
			err = sftp_err(c, rc, "stat", full, d); /* the directory again */
			goto out;
		}
		if (rc == SM_SFTPC_FX_NO_SUCH_FILE) {
			/* OpenSSH also says so for ELOOP (a link to itself) */
			bad = sm_diag_set(&bdiag, SM_ENOENT, ENOENT,
			                  "broken symlink '%s%s' (its target does not exist)",
			                  cur->key.p, nm);
		} else if (rc) {
			bad = sftp_err(c, rc, "stat", full, &bdiag);
		} else {
			a = t;
			if ((t.flags & SM_SFTPC_A_PERM) && S_ISDIR(t.perm))
				bad = sftp_check_loop(cur, c, f, path, full, nm, &bdiag);
			if (bad == SM_EAGAIN || bad == SM_ENOMEM) {
				err = bad;
				if (d)
					*d = bdiag;
				goto out;
			}
		}
	} else if (link && cur->fs->read_links) {
		err = sftp_readlink(c, full, &target, d);
		if (err != SM_OK)
			goto out;
	}
	/* target and message are below SFTP_NAME_MAX and SM_DIAG_MAX bytes */
	char meta[SFTP_META_FIXED + SFTP_NAME_MAX + SM_DIAG_MAX + 2];
	size_t mlen = sftp_meta_put(meta, &a, bad, target, bad != SM_OK ? bdiag.msg : "");
	bool dir = (a.flags & SM_SFTPC_A_PERM) && S_ISDIR(a.perm);
	if ((bd->lo && sm_dirtab_name_cmp(name, n, dir, bd->lo, bd->lolen) < 0) ||
	    (bd->hi && sm_dirtab_name_cmp(name, n, dir, bd->hi, bd->hilen) > 0))
		goto out; /* before the seek position or after the range's end */
	err = sm_dirtab_add(f->tab, name, n, dir, meta, mlen, d);
out:
	free(target);
	free(full);
	return err;
}

#define SFTP_READDIR_AHEAD 2 /* READDIRs in flight: the last one's EOF costs no round trip */

/* Read and sort the directory at `path` into f: every name when the table
 * is to be `shared` (the listing cache's, which serves any range), else
 * only those this cursor can list (see file_dir_load() in file.c). */
static enum sm_err sftp_frame_load(struct sftp_cursor *cur, struct sm_sftpc *c,
                                   struct sftp_frame *f, const char *path, bool shared,
                                   struct sm_diag *d)
{
	memset(f, 0, sizeof(*f));
	struct sftp_bounds bd = { 0 };
	if (!shared) {
		bd.lo = cur->seek_lo;
		bd.lolen = cur->seek_lolen;
		if (cur->last && strncmp(cur->last, cur->key.p, cur->key.len) == 0) {
			bd.hi = cur->last + cur->key.len;
			const char *slash = strchr(bd.hi, '/');
			bd.hilen = slash ? (size_t)(slash - bd.hi) + 1 : strlen(bd.hi);
		}
	}
	struct sm_sftpc_req q[SFTP_READDIR_AHEAD];
	for (int i = 0; i < SFTP_READDIR_AHEAD; i++)
		sm_sftpc_req_init(&q[i]);
	struct sm_sftpc_handle h;
	enum sm_err err = sm_dirtab_new(&f->tab, d);
	if (err != SM_OK)
		goto out;
	int rc = sftp_call_path(c, &q[0], SM_SFTPC_OPENDIR, path, NULL);
	if (rc) {
		err = sftp_err(c, rc, "list", path, d);
		goto out;
	}
	if (!sm_sftpc_get_handle(&q[0], &h)) {
		sm_sftpc_fail(c, "malformed handle from the server");
		err = sftp_err(c, SM_SFTPC_LINK, "list", path, d);
		goto out;
	}
	for (int i = 0; i < SFTP_READDIR_AHEAD; i++) {
		sm_sftpc_begin(&q[i], SM_SFTPC_READDIR);
		sm_sftpc_handle(&q[i], &h);
		sm_sftpc_submit(c, &q[i]);
	}
	int inflight = SFTP_READDIR_AHEAD;
	bool eof = false;
	for (int i = 0; inflight; i = (i + 1) % SFTP_READDIR_AHEAD) {
		rc = sm_sftpc_wait(c, &q[i]);
		inflight--;
		if (rc == SM_SFTPC_FX_EOF) {
			eof = true;
			continue;
		}
		if (rc) {
			if (err == SM_OK)
				err = sftp_err(c, rc, "list", path, d);
			continue;
		}
		struct sm_sftpc_rd r;
		sm_sftpc_rd_init(&r, &q[i]);
		uint32_t count = sm_sftpc_get_u32(&r);
		for (uint32_t k = 0; k < count && !r.bad && err == SM_OK; k++) {
			size_t nl;
			const char *name;
			struct sm_sftpc_attrs a;
			if (sm_sftpc_get_name(&r, &name, &nl, &a))
				err = sftp_frame_add(cur, c, f, &bd, path, name, nl, a, d);
		}
		if (r.bad && err == SM_OK) {
			sm_sftpc_fail(c, "malformed directory listing from the server");
			err = sftp_err(c, SM_SFTPC_LINK, "list", path, d);
		}
		if (err == SM_OK && !eof) {
			/* keep READDIR_AHEAD in flight until the end shows */
			sm_sftpc_begin(&q[i], SM_SFTPC_READDIR);
			sm_sftpc_handle(&q[i], &h);
			sm_sftpc_submit(c, &q[i]);
			inflight++;
		}
	}
	sftp_close_handle(c, &h);
	if (err == SM_OK)
		err = sm_dirtab_finish(f->tab, shared, d);
	if (err == SM_OK && sm_dirtab_disk_bytes(f->tab)) {
		size_t pl = strlen(path);
		char where[SFTP_NAME_MAX + 2];
		snprintf(where, sizeof(where), "%s%s", path, pl && path[pl - 1] == '/' ? "" : "/");
		/* -v: once per directory, but for the ancestors a cursor starting
		 * deep reads in part */
		sm_dirtab_log(f->tab, bd.lo || bd.hi ? SM_LOG_DEBUG : SM_LOG_INFO, where);
	}
out:
	for (int i = 0; i < SFTP_READDIR_AHEAD; i++)
		sm_sftpc_req_release(&q[i]);
	if (err != SM_OK) {
		sftp_frame_release(cur->fs, f);
		return err;
	}
	sm_dirtab_it_init(&f->it, f->tab);
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
	struct sm_dircache_ent *e = NULL;
	if (cur->fs->dcache) {
		bool load = false;
		e = sm_dircache_get(cur->fs->dcache, cur->key.len ? cur->key.p : "", cur->key.len,
		                    &load);
		if (!e) {
			free(path);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		if (!load) {
			*f = (struct sftp_frame){ .tab = sm_dircache_val(e), .ent = e };
			sm_dirtab_it_init(&f->it, f->tab);
			free(path);
			f->prefix_len = cur->key.len;
			cur->depth++;
			return SM_OK;
		}
	}
	/* A connection only while a directory is read: the frames live in
	 * memory, and a dropped one is replaced at the directory being read. */
	enum sm_err err = SM_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct sm_sftpc *c = NULL;
		err = sftp_get(cur->fs, &c, d);
		if (err == SM_OK)
			err = sftp_frame_load(cur, c, f, path, e != NULL, d);
		sftp_put_conn(cur->fs, c);
		if (err != SM_EAGAIN)
			break;
	}
	free(path);
	if (err != SM_OK) {
		if (e)
			sm_dircache_abandon(cur->fs->dcache, e); /* an error is never cached */
		return err;
	}
	if (e) {
		/* Shared from now on. Why a listing read earlier in the run is
		 * exact for a run's DST: see file_frame_dir() in file.c; unlike
		 * there, the attributes come from the listing too, and they are
		 * as exact, for the same reason (a key of a range is written only
		 * by its task). */
		sm_dircache_fill(cur->fs->dcache, e, f->tab, sm_dirtab_cache_bytes(f->tab));
		f->ent = e;
	}
	f->prefix_len = cur->key.len;
	cur->depth++;
	return SM_OK;
}

static enum sm_err sftp_key_set(struct sftp_cursor *cur, size_t prefix_len,
                                const struct sm_dirtab_rec *nm)
{
	cur->key.len = prefix_len;
	if (sm_buf_append(&cur->key, nm->key, nm->klen))
		return SM_ENOMEM;
	return SM_OK;
}

/* Set the load bound to the first component of `rest` ('/' included). */
static void sftp_seek_bound(struct sftp_cursor *cur, const char *rest)
{
	const char *slash = strchr(rest, '/');
	cur->seek_lo = *rest ? rest : NULL;
	cur->seek_lolen = slash ? (size_t)(slash - rest) + 1 : strlen(rest);
}

/* Position the cursor at the first key after `after`. */
static enum sm_err sftp_seek(struct sftp_cursor *cur, const char *after, struct sm_diag *d)
{
	const char *rest = after;
	while (cur->depth > 0) {
		struct sftp_frame *f = &cur->stack[cur->depth - 1];
		const char *slash = strchr(rest, '/');
		size_t clen = slash ? (size_t)(slash - rest) + 1 : strlen(rest);
		struct sm_dirtab_rec nm;
		enum sm_err err = sm_dirtab_it_seek(&f->it, rest, clen, d);
		if (err == SM_OK)
			err = sm_dirtab_it_peek(&f->it, &nm, d);
		if (err == SM_EOF)
			return SM_OK;
		if (err != SM_OK)
			return err;
		if (nm.klen != clen || memcmp(nm.key, rest, clen) != 0)
			return SM_OK;         /* the first name after `after` is next */
		sm_dirtab_it_advance(&f->it); /* the key itself is not in the range */
		if (!slash)
			return SM_OK;
		/* a directory on the way to `after` (clen counts its '/') */
		if (sftp_key_set(cur, f->prefix_len, &nm) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		rest = slash + 1;
		sftp_seek_bound(cur, rest);
		err = sftp_push(cur, d);
		cur->seek_lo = NULL;
		if (err == SM_ENOENT || err == SM_ENOTDIR)
			return SM_OK; /* gone since: go on after it */
		if (err != SM_OK || !*rest)
			return err;
	}
	return SM_OK;
}

static void sftp_list_end(void *p)
{
	struct sftp_cursor *cur = p;
	if (!cur)
		return;
	for (int i = 0; i < cur->depth; i++)
		sftp_frame_release(cur->fs, &cur->stack[i]);
	free(cur->stack);
	free(cur->last);
	sm_buf_release(&cur->key);
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
	if (r->after && *r->after)
		sftp_seek_bound(cur, r->after);
	enum sm_err err = sftp_push(cur, d);
	cur->seek_lo = NULL;
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
	if (cur->descend) {
		cur->descend = false; /* whatever comes of it: never twice */
		enum sm_err err = sftp_push(cur, d);
		if (err != SM_OK && err != SM_ENOENT) /* ENOENT: removed since it was listed */
			return err;
	}
	while (!cur->done && cur->depth > 0) {
		struct sftp_frame *f = &cur->stack[cur->depth - 1];
		struct sm_dirtab_rec nm;
		struct sftp_meta m = { 0 };
		enum sm_err err = sm_dirtab_it_peek(&f->it, &nm, d);
		if (err == SM_EOF) {
			sftp_frame_release(cur->fs, f);
			cur->depth--;
			continue;
		}
		if (err == SM_OK)
			err = sftp_meta_get(&nm, &m, d);
		if (err != SM_OK) {
			cur->done = true; /* a sort file that fails would fail again */
			return err;
		}
		sm_dirtab_it_advance(&f->it);
		if (sftp_key_set(cur, f->prefix_len, &nm) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		if (cur->last && strcmp(cur->key.p, cur->last) > 0) {
			cur->done = true;
			break;
		}
		if (m.err != SM_OK)
			return sm_diag_set(d, m.err, 0, "%s", m.msg);
		/* the link target is the table's, borrowed until the next call */
		cur->ent = (struct sm_entry){ .key = cur->key.p, .link = (char *)m.link };
		sftp_fill(&cur->ent, &m.a);
		/* nothing below a directory at the range's end is in the range */
		cur->descend = nm.dir && !(cur->last && strcmp(cur->key.p, cur->last) >= 0);
		*out = &cur->ent;
		return SM_OK;
	}
	cur->done = true;
	return SM_EOF;
}

static void sftp_list_skip(void *p)
{
	struct sftp_cursor *cur = p;
	cur->descend = false;
}

/* ---- reading ---- */

#define SFTP_READ_AHEAD 32 /* READs in flight per file at most (1 MiB of max_read) */

struct sftp_reader {
	struct sm_reader base;
	struct sftp_store *fs;
	struct sm_sftpc *c;
	int weight; /* of c (sftp_get_w) */
	struct sm_sftpc_handle h;
	bool open;
	char *path;
	struct sm_sftpc_req q[SFTP_READ_AHEAD];
	uint64_t q_off[SFTP_READ_AHEAD];
	char *slab; /* SFTP_READ_AHEAD buffers of `chunk` bytes, one per request */
	size_t chunk;
	int ahead; /* requests to keep in flight: the ring's size */
	int head;  /* the oldest request in flight */
	int inflight;
	uint64_t next_off; /* where the next request reads */
	bool eof_seen;     /* a reply said EOF: ask for nothing more */
	/* the chunk being handed out */
	const char *cur;
	size_t cur_len;
	/* a short reply: the data goes on at resume, unless the next says EOF */
	bool short_seen;
	size_t short_len;
	size_t last_short; /* the length of the short reply before */
	uint64_t resume;
	/* for finish(): */
	uint64_t pos;                 /* the offset of the next byte handed out */
	struct sm_sftpc_attrs opened; /* FSTAT just after OPEN */
};

static void sftpr_submit(struct sftp_reader *r)
{
	int i = (r->head + r->inflight) % r->ahead;
	struct sm_sftpc_req *q = &r->q[i];
	sm_sftpc_begin(q, SM_SFTPC_READ);
	sm_sftpc_handle(q, &r->h);
	sm_sftpc_u64(q, r->next_off);
	sm_sftpc_u32(q, (uint32_t)r->chunk);
	q->dst = r->slab + (size_t)i * r->chunk;
	q->dst_cap = r->chunk;
	r->q_off[i] = r->next_off;
	r->next_off += r->chunk;
	sm_sftpc_submit(r->c, q);
	r->inflight++;
}

/* Wait for every request in flight and forget their replies. */
static void sftpr_drain(struct sftp_reader *r)
{
	while (r->inflight) {
		sm_sftpc_wait(r->c, &r->q[r->head]);
		r->head = (r->head + 1) % r->ahead;
		r->inflight--;
	}
}

static void sftpr_fill(struct sftp_reader *r)
{
	/* after a short reply, wait to see whether the next says EOF */
	while (!r->eof_seen && !r->short_seen && r->inflight < r->ahead)
		sftpr_submit(r);
}

static enum sm_err sftpr_read(struct sm_reader *rd, void *out, size_t cap, size_t *got,
                              struct sm_diag *d)
{
	struct sftp_reader *r = (struct sftp_reader *)rd;
	while (!r->cur_len && r->inflight) {
		int i = r->head;
		struct sm_sftpc_req *q = &r->q[i];
		int rc = sm_sftpc_wait(r->c, q);
		r->head = (r->head + 1) % r->ahead;
		r->inflight--;
		if (rc == SM_SFTPC_FX_EOF) {
			r->eof_seen = true;
			r->short_seen = false;
			sftpr_drain(r);
			break;
		}
		if (rc) {
			sftpr_drain(r);
			return sftp_err(r->c, rc, "read", r->path, d);
		}
		if (r->short_seen) {
			/* data after a short reply: the server cut a read short in
			 * the middle; ask again from where it stopped, for no more
			 * than it gives at once */
			sftpr_drain(r);
			r->short_seen = false;
			if (r->short_len >= 512 && r->short_len < r->chunk &&
			    r->short_len == r->last_short)
				r->chunk = r->short_len; /* twice the same: its limit */
			r->last_short = r->short_len;
			r->next_off = r->resume;
			sftpr_fill(r);
			continue;
		}
		r->cur = q->dst;
		r->cur_len = q->dst_len;
		if (q->dst_len < r->chunk) {
			r->short_seen = true;
			r->short_len = q->dst_len;
			r->resume = r->q_off[i] + q->dst_len;
		}
		if (!q->dst_len)
			continue;
		/* the caller copies out of this buffer before it is reused: the
		 * next request goes out on the next call */
		break;
	}
	if (!r->cur_len) { /* end of file: no buffer to copy from */
		*got = 0;
		return SM_OK;
	}
	size_t n = r->cur_len < cap ? r->cur_len : cap;
	memcpy(out, r->cur, n);
	r->cur += n;
	r->cur_len -= n;
	r->pos += n;
	if (!r->cur_len)
		sftpr_fill(r);
	*got = n;
	return SM_OK;
}

static void sftpr_close(struct sm_reader *rd)
{
	struct sftp_reader *r = (struct sftp_reader *)rd;
	if (r->c) {
		sftpr_drain(r);
		if (r->open)
			sftp_close_handle(r->c, &r->h);
		sftp_put_conn_w(r->fs, r->weight, r->c);
	}
	for (int i = 0; i < SFTP_READ_AHEAD; i++)
		sm_sftpc_req_release(&r->q[i]);
	free(r->slab);
	free(r->path);
	free(r);
}

/*
 * After the last byte, before the destination commits (--check-change):
 * FSTAT the handle again. The file changed when its size or mtime is not
 * what the FSTAT after OPEN saw, or when the bytes read are not its size (a
 * file changed between listing and OPEN is copied as it was at OPEN, under
 * its mtime of then).
 * SFTP version 3 has whole seconds: a rewrite in place within the second
 * of the last change that keeps the size goes unseen.
 */
static enum sm_err sftpr_finish(struct sm_reader *rd, struct sm_diag *d)
{
	struct sftp_reader *r = (struct sftp_reader *)rd;
	sftpr_drain(r);
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin(&q, SM_SFTPC_FSTAT);
	sm_sftpc_handle(&q, &r->h);
	enum sm_err err = SM_OK;
	int rc = sm_sftpc_call(r->c, &q);
	if (rc) {
		err = sftp_err(r->c, rc, "stat", r->path, d);
		goto out;
	}
	struct sm_sftpc_rd rr;
	struct sm_sftpc_attrs a;
	sm_sftpc_rd_init(&rr, &q);
	sm_sftpc_get_attrs(&rr, &a);
	if (rr.bad) {
		sm_sftpc_fail(r->c, "malformed attributes from the server");
		err = sftp_err(r->c, SM_SFTPC_LINK, "stat", r->path, d);
		goto out;
	}
	const struct sm_sftpc_attrs *o = &r->opened;
	if (((a.flags & o->flags & SM_SFTPC_A_SIZE) && a.size != o->size) ||
	    ((a.flags & o->flags & SM_SFTPC_A_TIME) && a.mtime != o->mtime) ||
	    ((a.flags & SM_SFTPC_A_SIZE) && r->pos != a.size))
		err = sm_diag_set(d, SM_ECHANGED, 0, "sftp: '%s' changed while it was copied",
		                  r->path);
out:
	sm_sftpc_req_release(&q);
	return err;
}

static const struct sm_reader_ops sftp_reader_ops = {
	.read = sftpr_read,
	.finish = sftpr_finish,
	.close = sftpr_close,
};

/* OPEN, then FSTAT and the first READs together. */
static enum sm_err sftp_open_read_once(struct sftp_reader *r, uint64_t off, uint64_t size_hint,
                                       struct sm_diag *d)
{
	struct sm_sftpc_req st;
	sm_sftpc_req_init(&st);
	sm_sftpc_begin(&st, SM_SFTPC_OPEN);
	sm_sftpc_cstr(&st, r->path);
	sm_sftpc_u32(&st, SM_SFTPC_FXF_READ);
	sm_sftpc_u32(&st, 0); /* no attributes */
	enum sm_err err = SM_OK;
	int rc = sm_sftpc_call(r->c, &st);
	if (rc) {
		err = sftp_err(r->c, rc, "read", r->path, d);
		goto out;
	}
	if (!sm_sftpc_get_handle(&st, &r->h)) {
		sm_sftpc_fail(r->c, "malformed handle from the server");
		err = sftp_err(r->c, SM_SFTPC_LINK, "read", r->path, d);
		goto out;
	}
	r->open = true;
	sm_sftpc_begin(&st, SM_SFTPC_FSTAT);
	sm_sftpc_handle(&st, &r->h);
	sm_sftpc_submit(r->c, &st);
	size_t max = sm_sftpc_max_read(r->c);
	r->chunk = max;
	r->ahead = (int)((SFTP_IO + max - 1) / max);
	if (r->ahead > SFTP_READ_AHEAD)
		r->ahead = SFTP_READ_AHEAD;
	if (size_hint != UINT64_MAX && size_hint >= off) {
		/* a small file: one READ for its bytes, one more to see the end */
		uint64_t want = (size_hint - off) / max + 2;
		if (want < (uint64_t)r->ahead)
			r->ahead = (int)want;
	}
	r->slab = malloc((size_t)r->ahead * r->chunk);
	r->next_off = off;
	if (r->slab)
		sftpr_fill(r);
	rc = sm_sftpc_wait(r->c, &st);
	if (!r->slab) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	if (rc) {
		err = sftp_err(r->c, rc, "stat", r->path, d);
		goto out;
	}
	struct sm_sftpc_rd rd;
	struct sm_sftpc_attrs a;
	sm_sftpc_rd_init(&rd, &st);
	sm_sftpc_get_attrs(&rd, &a);
	if (rd.bad) {
		sm_sftpc_fail(r->c, "malformed attributes from the server");
		err = sftp_err(r->c, SM_SFTPC_LINK, "stat", r->path, d);
		goto out;
	}
	if ((a.flags & SM_SFTPC_A_PERM) && S_ISDIR(a.perm)) {
		err = sm_diag_set(d, SM_EISDIR, 0, "sftp: '%s' is a directory", r->path);
		goto out;
	}
	uint64_t size = (a.flags & SM_SFTPC_A_SIZE) ? a.size : UINT64_MAX;
	r->base.size = size == UINT64_MAX ? UINT64_MAX : size > off ? size - off : 0;
	r->opened = a;
	r->pos = off;
	/* a file changed since it was listed is copied as it was at OPEN, with
	 * the mtime it had then, as local files are */
	if (a.flags & SM_SFTPC_A_TIME) {
		r->base.mtime_ns = (int64_t)a.mtime * 1000000000;
		r->base.has_mtime = true;
	}
out:
	sm_sftpc_req_release(&st);
	return err;
}

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
		for (int i = 0; i < SFTP_READ_AHEAD; i++)
			sm_sftpc_req_init(&r->q[i]);
		r->weight = size_hint < SFTP_IO ? 1 : SFTP_SLOTS;
		err = sftp_get_w(fs, r->weight, &r->c, d);
		if (err == SM_OK)
			err = sftp_open_read_once(r, off, size_hint, d);
		if (err == SM_OK) {
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

#define SFTP_PATH_MAX 4095 /* bytes of a path the server's open() takes (PATH_MAX, its NUL) */
#define SFTP_TMP_MIN SM_STORE_TMP_MIN /* a temp name without its copy of the name */

/*
 * A temporary name beside `path` (same directory) into tmp; its directory
 * into dir. Near PATH_MAX, where that would be longer than the server
 * takes while `path` itself fits: a temp name cut to the name's length,
 * or, when the name is shorter than a temp name can be, one in the
 * nearest directory above that holds it, never above `root` (renamed
 * across: the same file system).
 */
static void sftp_tmp_beside(const char *root, const char *path, char *dir, size_t dirn, char *tmp,
                            size_t tmpn)
{
	char tname[300];
	const char *base;
	sftp_split(path, dir, dirn, &base);
	sm_store_tmp_name(base, tname, sizeof(tname));
	snprintf(tmp, tmpn, "%s/%s", dir, tname);
	size_t len = strlen(tmp), tl = strlen(tname);
	if (len <= SFTP_PATH_MAX || strlen(path) > SFTP_PATH_MAX)
		return; /* fits, or the key itself does not */
	if (tl - (len - SFTP_PATH_MAX) >= SFTP_TMP_MIN) {
		tname[tl - (len - SFTP_PATH_MAX)] = '\0';
		snprintf(tmp, tmpn, "%s/%s", dir, tname);
		return;
	}
	tname[SFTP_TMP_MIN] = '\0';
	size_t rl = strlen(root);
	char cand[SFTP_NAME_MAX];
	snprintf(cand, sizeof(cand), "%s", dir);
	while (strlen(cand) > rl && strcmp(cand, ".") != 0 && strcmp(cand, "/") != 0) {
		char up[SFTP_NAME_MAX];
		const char *b;
		sftp_split(cand, up, sizeof(up), &b);
		if (strlen(up) < rl && !(rl == 0 && strcmp(up, ".") == 0))
			break; /* above the root */
		snprintf(cand, sizeof(cand), "%s", up);
		if (strlen(cand) + 1 + SFTP_TMP_MIN <= SFTP_PATH_MAX) {
			snprintf(dir, dirn, "%s", cand);
			snprintf(tmp, tmpn, "%s%s%s", cand, strcmp(cand, "/") ? "/" : "", tname);
			return;
		}
	}
	/* nowhere: the long one, which the server refuses as too long */
}

/* Where and how a put writes `path`: a temp name beside it (or path
 * itself with SM_PUT_INPLACE) into tmp, the mode of the new file, and the
 * OPEN flags (SM_PUT_INPLACE: see sftp_inplace_flags). */
struct sftp_dest {
	char dir[SFTP_NAME_MAX];
	bool inplace;
	uint32_t mode;
	uint32_t flags;
};

static void sftp_dest_init(struct sftp_dest *t, const char *root, const char *path,
                           const struct sm_put *p, char *tmp, size_t tmpn)
{
	t->inplace = p->flags & SM_PUT_INPLACE;
	sftp_tmp_beside(root, path, t->dir, sizeof(t->dir), tmp, tmpn);
	if (t->inplace)
		snprintf(tmp, tmpn, "%s", path);
	t->mode = (p->flags & SM_PUT_MODE) ? (p->mode & 07777) : (p->mode & 0755);
	if (!t->mode)
		t->mode = 0644;
	t->flags = SM_SFTPC_FXF_WRITE | SM_SFTPC_FXF_CREAT | SM_SFTPC_FXF_TRUNC | SM_SFTPC_FXF_EXCL;
}

static enum sm_err sftp_not_regular(const char *path, uint32_t mode, struct sm_diag *d)
{
	const char *what = S_ISLNK(mode)    ? "a symlink"
	                   : S_ISDIR(mode)  ? "a directory"
	                   : S_ISFIFO(mode) ? "a FIFO"
	                   : S_ISSOCK(mode) ? "a socket"
	                   : S_ISCHR(mode)  ? "a character device"
	                   : S_ISBLK(mode)  ? "a block device"
	                                    : "an unknown kind of file";
	return sm_diag_set(d, S_ISDIR(mode) ? SM_EISDIR : SM_EINVAL, 0,
	                   "sftp: cannot write '%s' in place: %s on DST is not a regular file",
	                   path, what);
}

/*
 * --inplace writes `path` itself, so only a regular file or a new one: a
 * symlink would be written through (OPEN follows it), a FIFO blocks the
 * server's SFTP process in open(), a device takes the data. LSTAT first:
 * anything else is refused before it is opened. An existing file is opened
 * without TRUNC (cut at the end, after the last byte: sftp_put_once), a new
 * one with CREAT | EXCL, which refuses any name made meanwhile, a dangling
 * symlink included. *was gets the LSTAT (for sftp_inplace_same).
 */
static enum sm_err sftp_inplace_flags(struct sm_sftpc *c, const char *path, struct sftp_dest *t,
                                      struct sm_sftpc_attrs *was, struct sm_diag *d)
{
	int rc = sftp_stat_rc(c, path, false, was);
	if (rc == SM_SFTPC_FX_NO_SUCH_FILE) {
		t->flags = SM_SFTPC_FXF_WRITE | SM_SFTPC_FXF_CREAT | SM_SFTPC_FXF_EXCL;
		return SM_OK;
	}
	if (rc)
		return sftp_err(c, rc, "stat", path, d);
	uint32_t mode = sftp_attr_mode(was);
	if (!S_ISREG(mode))
		return sftp_not_regular(path, mode, d);
	t->flags = SM_SFTPC_FXF_WRITE;
	return SM_OK;
}

/*
 * The file OPEN gave us is the one LSTAT saw (SFTP version 3 cannot open
 * without following a symlink, nor tell inodes apart: a swap between the
 * two shows as another type, size or mtime). SM_EAGAIN otherwise: a later
 * attempt looks again.
 */
static enum sm_err sftp_inplace_same(struct sm_sftpc *c, const struct sm_sftpc_handle *h,
                                     const char *path, const struct sm_sftpc_attrs *was,
                                     struct sm_diag *d)
{
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin(&q, SM_SFTPC_FSTAT);
	sm_sftpc_handle(&q, h);
	enum sm_err err = SM_OK;
	struct sm_sftpc_attrs a = { 0 };
	int rc = sm_sftpc_call(c, &q);
	if (rc == 0) {
		struct sm_sftpc_rd r;
		sm_sftpc_rd_init(&r, &q);
		sm_sftpc_get_attrs(&r, &a);
		if (r.bad) {
			sm_sftpc_fail(c, "malformed attributes from the server");
			rc = SM_SFTPC_LINK;
		}
	}
	if (rc)
		err = sftp_err(c, rc, "stat", path, d);
	else if (!S_ISREG(sftp_attr_mode(&a)) || a.size != was->size || a.mtime != was->mtime ||
	         a.perm != was->perm)
		err = sm_diag_set(d, SM_EAGAIN, 0, "sftp: '%s' changed on DST while it was opened",
		                  path);
	sm_sftpc_req_release(&q);
	return err;
}

static int sftp_rename_rc(struct sm_sftpc *c, const char *from, const char *to, bool posix)
{
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	if (posix)
		sm_sftpc_begin_ext(&q, "posix-rename@openssh.com", SM_SFTPC_R_STATUS);
	else
		sm_sftpc_begin(&q, SM_SFTPC_RENAME);
	sm_sftpc_cstr(&q, from);
	sm_sftpc_cstr(&q, to);
	int rc = sm_sftpc_call(c, &q);
	sm_sftpc_req_release(&q);
	return rc;
}

/*
 * Rename tmp over path. With posix-rename@openssh.com (OpenSSH) that is
 * one atomic rename(2). SFTP version 3's RENAME refuses to replace a file,
 * so without it an existing target is renamed aside, replaced, then
 * removed (a reader may briefly miss the key, but never sees half of it,
 * and a failed rename puts the old one back).
 */
static enum sm_err sftp_rename_over(struct sftp_store *fs, struct sm_sftpc *c, const char *tmp,
                                    const char *path, struct sm_diag *d)
{
	bool posix = sm_sftpc_has_ext(c, "posix-rename@openssh.com");
	int rc = sftp_rename_rc(c, tmp, path, posix);
	if (rc == 0)
		return SM_OK;
	enum sm_err err = sftp_err(c, rc, "rename", path, d);
	if (err == SM_EAGAIN)
		return err;
	struct sm_sftpc_attrs a;
	if (sftp_stat_rc(c, path, false, &a) != 0)
		return err; /* not in the way: the rename failed for its own reason */
	if (S_ISDIR(sftp_attr_mode(&a)))
		return sm_diag_set(d, SM_EISDIR, 0, "sftp: '%s' is a directory", path);
	if (posix)
		return err;
	/* move the old one aside first, so a failure can put it back */
	char dir[SFTP_NAME_MAX], aside[SFTP_NAME_MAX * 2];
	sftp_tmp_beside(fs->root, path, dir, sizeof(dir), aside, sizeof(aside));
	rc = sftp_rename_rc(c, path, aside, false);
	if (rc)
		return sftp_err(c, rc, "replace", path, d);
	rc = sftp_rename_rc(c, tmp, path, false);
	if (rc) {
		err = sftp_err(c, rc, "rename", path, d);
		if (rc != SM_SFTPC_LINK)
			sftp_rename_rc(c, aside, path, false);
		return err;
	}
	if (sftp_simple(c, SM_SFTPC_REMOVE, aside, NULL) != 0)
		sm_log(SM_LOG_INFO, "sftp: could not remove '%s' (listings skip it)", aside);
	return SM_OK;
}

/*
 * OpenSSH's server reports a full disk as a plain failure: ask the file
 * system (statvfs@openssh.com) so a full DST stops the run with one message
 * instead of failing every key. Returns err unless the disk is full.
 */
static enum sm_err sftp_full(struct sm_sftpc *c, const char *dir, const char *path, enum sm_err err,
                             struct sm_diag *d)
{
	if (sm_sftpc_broken(c) || !sm_sftpc_has_ext(c, "statvfs@openssh.com"))
		return err;
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin_ext(&q, "statvfs@openssh.com", SM_SFTPC_R_EXTENDED);
	sm_sftpc_cstr(&q, dir);
	bool full = false;
	if (sm_sftpc_call(c, &q) == 0) {
		struct sm_sftpc_rd r;
		sm_sftpc_rd_init(&r, &q);
		sm_sftpc_get_u64(&r); /* f_bsize */
		uint64_t frsize = sm_sftpc_get_u64(&r);
		sm_sftpc_get_u64(&r); /* f_blocks */
		sm_sftpc_get_u64(&r); /* f_bfree */
		uint64_t bavail = sm_sftpc_get_u64(&r);
		sm_sftpc_get_u64(&r); /* f_files */
		sm_sftpc_get_u64(&r); /* f_ffree */
		uint64_t favail = sm_sftpc_get_u64(&r);
		full = !r.bad && (bavail * frsize < (1u << 20) || favail == 0);
	}
	sm_sftpc_req_release(&q);
	if (!full)
		return err;
	return sm_diag_set(d, SM_ENOSPC, 0, "sftp: write '%s': no space left on the server", path);
}

#define SFTP_WRITE_AHEAD 32 /* WRITEs in flight per file (x max_write: >= 1 MiB) */

/* The WRITEs of one put, in a ring. */
struct sftp_wring {
	struct sm_sftpc *c;
	struct sm_sftpc_req q[SFTP_WRITE_AHEAD];
	int ahead, head, inflight;
	int rc; /* the first failure */
};

static void sftp_wring_reap(struct sftp_wring *w)
{
	int rc = sm_sftpc_wait(w->c, &w->q[w->head]);
	if (rc && !w->rc)
		w->rc = rc;
	w->head = (w->head + 1) % SFTP_WRITE_AHEAD;
	w->inflight--;
}

/* A free request of the ring (waiting for the oldest when all are out). */
static struct sm_sftpc_req *sftp_wring_next(struct sftp_wring *w)
{
	if (w->inflight == w->ahead)
		sftp_wring_reap(w);
	struct sm_sftpc_req *q = &w->q[(w->head + w->inflight) % SFTP_WRITE_AHEAD];
	w->inflight++;
	return q;
}

static void sftp_wring_drain(struct sftp_wring *w)
{
	while (w->inflight)
		sftp_wring_reap(w);
}

/* The source gave `total` bytes (`over`: and more) where r->size were
 * listed: a SRC that changed, reported as SRC's: its own check (finish:
 * it names the source and why), else under the source's name. */
static enum sm_err sftp_src_size(struct sm_reader *r, const char *path, uint64_t total, bool over,
                                 struct sm_diag *d)
{
	enum sm_err err = sm_reader_finish(r, d);
	if (err != SM_OK)
		return err;
	err = sm_diag_set(d, SM_ECHANGED, 0,
	                  "'%s' changed while it was copied: %s%" PRIu64 " bytes, %" PRIu64
	                  " were listed",
	                  r->name ? r->name : path, over ? "over " : "", total, r->size);
	return sm_diag_label(d, err, r->label);
}

/* OPEN path (a name in the directory of `key`, whose parents were looked
 * at) for writing; when it says the directory is missing, make it. */
static enum sm_err sftp_create(struct sftp_store *fs, struct sm_sftpc *c, struct sm_sftpc_req *q,
                               const char *key, const char *path, uint32_t flags, uint32_t mode,
                               struct sm_sftpc_handle *h, struct sm_diag *d)
{
	struct sm_sftpc_attrs a = { .flags = SM_SFTPC_A_PERM, .perm = mode };
	int rc = 0;
	uint64_t seq = sftp_dirs_now(fs);
	for (int attempt = 0; attempt < 2; attempt++) {
		sm_sftpc_begin(q, SM_SFTPC_OPEN);
		sm_sftpc_cstr(q, path);
		sm_sftpc_u32(q, flags);
		sm_sftpc_attrs(q, &a);
		rc = sm_sftpc_call(c, q);
		if (rc != SM_SFTPC_FX_NO_SUCH_FILE || attempt)
			break;
		enum sm_err err = sftp_parents(fs, c, key, true, seq, d);
		if (err != SM_OK)
			return err;
	}
	if (rc)
		return sftp_err(c, rc, "write", path, d);
	if (!sm_sftpc_get_handle(q, h)) {
		sm_sftpc_fail(c, "malformed handle from the server");
		return sftp_err(c, SM_SFTPC_LINK, "write", path, d);
	}
	return SM_OK;
}

/*
 * One attempt of a put: OPEN the temp file; the WRITEs (up to
 * SFTP_WRITE_AHEAD in flight), FSETSTAT and CLOSE pipelined, so a small
 * file's bytes, attributes and close take one round trip; then the rename.
 */
/* --fsync on a server that offers fsync@openssh.com (OpenSSH): each file is
 * fsynced on the server before it is closed and renamed into place. */
static bool sftp_wants_fsync(struct sm_sftpc *c, const struct sm_put *p)
{
	return (p->flags & SM_PUT_FSYNC) && sm_sftpc_has_ext(c, "fsync@openssh.com");
}

static enum sm_err sftp_put_once(struct sftp_store *fs, struct sm_sftpc *c, const char *key,
                                 const char *path, char *tmp, size_t tmpn, struct sm_reader *r,
                                 const struct sm_put *p, char *buf, size_t cap, struct sm_diag *d)
{
	struct sftp_dest t;
	sftp_dest_init(&t, fs->root, path, p, tmp, tmpn);
	struct sftp_wring w = { .c = c };
	for (int i = 0; i < SFTP_WRITE_AHEAD; i++)
		sm_sftpc_req_init(&w.q[i]);
	/* FSETSTAT, CLOSE, fsync@openssh.com, FSETSTAT of the owner, of the mode again */
	struct sm_sftpc_req fin[5];
	for (int i = 0; i < 5; i++)
		sm_sftpc_req_init(&fin[i]);
	struct sm_sftpc_handle h;
	struct sm_sftpc_attrs was = { 0 };
	enum sm_err err = sftp_parents(fs, c, key, true, 0, d);
	if (err == SM_OK && t.inplace)
		err = sftp_inplace_flags(c, path, &t, &was, d);
	if (err == SM_OK)
		err = sftp_create(fs, c, &fin[1], key, tmp, t.flags, t.mode, &h, d);
	if (err != SM_OK)
		goto out;
	if (t.inplace && (t.flags & SM_SFTPC_FXF_CREAT) == 0) {
		err = sftp_inplace_same(c, &h, path, &was, d);
		if (err != SM_OK) {
			sftp_close_handle(c, &h);
			goto out;
		}
	}
	size_t max = sm_sftpc_max_write(c);
	w.ahead = (int)((SFTP_IO + max - 1) / max);
	if (w.ahead > SFTP_WRITE_AHEAD)
		w.ahead = SFTP_WRITE_AHEAD;
	uint64_t total = 0;
	for (;;) {
		size_t got = 0;
		err = sm_reader_read_full(r, buf, cap, &got, d);
		if (err != SM_OK || !got)
			break;
		for (size_t o = 0; o < got && !w.rc; o += max) {
			size_t n = got - o < max ? got - o : max;
			struct sm_sftpc_req *q = sftp_wring_next(&w);
			sm_sftpc_begin(q, SM_SFTPC_WRITE);
			sm_sftpc_handle(q, &h);
			sm_sftpc_u64(q, total + o);
			sm_sftpc_str(q, buf + o, n);
			sm_sftpc_submit(c, q);
		}
		total += got;
		if (w.rc || got < cap)
			break;
	}
	/* in place, every WRITE is answered before the size is set */
	if (t.inplace)
		sftp_wring_drain(&w);
	bool server_err = err == SM_OK && w.rc; /* else the source's, or none */
	if (server_err)
		err = sftp_err(c, w.rc, "write", path, d);
	if (err == SM_OK && r->size != UINT64_MAX && total != r->size)
		err = sftp_src_size(r, path, total, false, d);
	struct sftp_attrset as;
	sftp_attrset(fs, p, err == SM_OK ? key : NULL,
	             t.inplace && (was.flags & SM_SFTPC_A_UIDGID) ? &was : NULL, &as);
	if (t.inplace) {
		/* the end of the new data: cut after the last byte was written
		 * (never at OPEN: a transfer failing there would leave DST cut) */
		as.main.flags |= SM_SFTPC_A_SIZE;
		as.main.size = total;
	}
	const struct sm_sftpc_attrs *sets[3] = { &as.main, &as.owner, &as.remode };
	struct sm_sftpc_req *setq[3] = { &fin[0], &fin[3], &fin[4] };
	for (int i = 0; i < 3 && err == SM_OK; i++) {
		if (!sets[i]->flags)
			continue;
		sm_sftpc_begin(setq[i], SM_SFTPC_FSETSTAT);
		sm_sftpc_handle(setq[i], &h);
		sm_sftpc_attrs(setq[i], sets[i]);
		sm_sftpc_submit(c, setq[i]);
	}
	/* --fsync: the server fsyncs the file before it is closed and renamed */
	bool fsync = err == SM_OK && sftp_wants_fsync(c, p);
	if (!fsync)
		atomic_store(&fs->unsynced, true);
	if (fsync) {
		sm_sftpc_begin_ext(&fin[2], "fsync@openssh.com", SM_SFTPC_R_STATUS);
		sm_sftpc_handle(&fin[2], &h);
		sm_sftpc_submit(c, &fin[2]);
	}
	sm_sftpc_begin(&fin[1], SM_SFTPC_CLOSE);
	sm_sftpc_handle(&fin[1], &h);
	sm_sftpc_submit(c, &fin[1]);
	sftp_wring_drain(&w);
	bool setattr = err == SM_OK;
	int src = setattr && as.main.flags ? sm_sftpc_wait(c, &fin[0]) : 0;
	int orc = setattr && as.owner.flags ? sm_sftpc_wait(c, &fin[3]) : 0;
	int mrc = setattr && as.remode.flags ? sm_sftpc_wait(c, &fin[4]) : 0;
	if (!src)
		src = mrc;
	if (orc && sftp_owner_refused(orc))
		sftp_owner_warn(fs, path, &as.owner);
	else if (!src)
		src = orc;
	int frc = fsync ? sm_sftpc_wait(c, &fin[2]) : 0;
	int crc = sm_sftpc_wait(c, &fin[1]);
	if (!crc)
		crc = frc;
	if (err == SM_OK && (w.rc || src || crc))
		server_err = true;
	if (err == SM_OK && w.rc) /* one of the last WRITEs */
		err = sftp_err(c, w.rc, "write", path, d);
	if (err == SM_OK && src)
		err = sftp_err(c, src, "set attributes of", path, d);
	if (err == SM_OK && crc)
		err = sftp_err(c, crc, "write", path, d); /* a late error from the server */
	if (err == SM_EIO && server_err)
		err = sftp_full(c, t.dir, path, err, d);
	if (err == SM_OK && (p->flags & SM_PUT_CHECK))
		err = sm_reader_finish(r, d);
	if (err == SM_OK && !t.inplace)
		err = sftp_rename_over(fs, c, tmp, path, d);
	if (err != SM_OK && !t.inplace && !sm_sftpc_broken(c))
		sftp_simple(c, SM_SFTPC_REMOVE, tmp, NULL);
out:
	for (int i = 0; i < SFTP_WRITE_AHEAD; i++)
		sm_sftpc_req_release(&w.q[i]);
	for (int i = 0; i < 5; i++)
		sm_sftpc_req_release(&fin[i]);
	return err;
}

/*
 * A small file's put, run by callbacks on the engine's thread so that its
 * thread sleeps once per file: OPEN; on its handle WRITE(s), FSETSTAT and
 * CLOSE together; when all three stages answered, the rename. The thread
 * waits on `fin`, posted when nothing of the job is in flight any more.
 */
#define SFTP_JOB_WRITES 8
enum {
	SFTP_JQ_OPEN = 0,
	SFTP_JQ_SETSTAT = SFTP_JOB_WRITES + 1,
	SFTP_JQ_OWNER,  /* FSETSTAT of owner and group (a refusal: a warning) */
	SFTP_JQ_REMODE, /* FSETSTAT of the mode again (setuid/setgid after a chown) */
	SFTP_JQ_FSYNC,
	SFTP_JQ_CLOSE,
	SFTP_JQ_N
};
enum sftp_stage { SFTP_ST_OPEN, SFTP_ST_WRITE, SFTP_ST_SETSTAT, SFTP_ST_CLOSE, SFTP_ST_RENAME };

struct sftp_job {
	struct sm_sftpc_req q[SFTP_JQ_N]; /* [OPEN] is the RENAME later */
	struct sm_sftpc_req fin;
	struct sm_sftpc_handle h;
	const char *data;
	size_t len;
	size_t max_write;
	const char *tmp, *path;
	struct sftp_attrset attrs; /* for the FSETSTATs (flags 0: none) */
	atomic_int owner_rc;       /* the owner's FSETSTAT refused with this */
	bool rename;
	bool posix;
	bool fsync;         /* fsync@openssh.com before CLOSE (--fsync) */
	atomic_int pending; /* replies of the WRITE/FSETSTAT/CLOSE stage to come */
	atomic_int rc;      /* the first failure */
	enum sftp_stage stage;
};

static void sftp_job_fail(struct sftp_job *j, int rc, enum sftp_stage st)
{
	int zero = 0;
	if (atomic_compare_exchange_strong(&j->rc, &zero, rc))
		j->stage = st;
}

static void sftp_job_renamed(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	struct sftp_job *j = q->arg;
	if (q->rc)
		sftp_job_fail(j, q->rc, SFTP_ST_RENAME);
	sm_sftpc_post(c, &j->fin, atomic_load(&j->rc));
}

static void sftp_job_stage2(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	struct sftp_job *j = q->arg;
	if (q->rc && q == &j->q[SFTP_JQ_OWNER] && sftp_owner_refused(q->rc)) {
		atomic_store(&j->owner_rc, q->rc); /* a warning, later */
	} else if (q->rc) {
		enum sftp_stage st = q == &j->q[SFTP_JQ_CLOSE] ? SFTP_ST_CLOSE
		                     : q == &j->q[SFTP_JQ_SETSTAT] || q == &j->q[SFTP_JQ_OWNER] ||
		                                     q == &j->q[SFTP_JQ_REMODE]
		                             ? SFTP_ST_SETSTAT
		                             : SFTP_ST_WRITE;
		sftp_job_fail(j, q->rc, st);
	}
	if (atomic_fetch_sub(&j->pending, 1) != 1)
		return;
	if (atomic_load(&j->rc) || !j->rename) {
		sm_sftpc_post(c, &j->fin, atomic_load(&j->rc));
		return;
	}
	struct sm_sftpc_req *r = &j->q[SFTP_JQ_OPEN];
	if (j->posix)
		sm_sftpc_begin_ext(r, "posix-rename@openssh.com", SM_SFTPC_R_STATUS);
	else
		sm_sftpc_begin(r, SM_SFTPC_RENAME);
	sm_sftpc_cstr(r, j->tmp);
	sm_sftpc_cstr(r, j->path);
	r->cb = sftp_job_renamed;
	sm_sftpc_submit(c, r);
}

static void sftp_job_opened(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	struct sftp_job *j = q->arg;
	if (q->rc || !sm_sftpc_get_handle(q, &j->h)) {
		if (!q->rc)
			sm_sftpc_fail(c, "malformed handle from the server");
		sftp_job_fail(j, q->rc ? q->rc : SM_SFTPC_LINK, SFTP_ST_OPEN);
		sm_sftpc_post(c, &j->fin, atomic_load(&j->rc));
		return;
	}
	int nw = (int)((j->len + j->max_write - 1) / j->max_write);
	atomic_store(&j->pending, nw + (j->attrs.main.flags ? 1 : 0) +
	                                  (j->attrs.owner.flags ? 1 : 0) +
	                                  (j->attrs.remode.flags ? 1 : 0) + (j->fsync ? 1 : 0) + 1);
	for (int i = 0; i < nw; i++) {
		struct sm_sftpc_req *w = &j->q[1 + i];
		size_t off = (size_t)i * j->max_write;
		size_t n = j->len - off < j->max_write ? j->len - off : j->max_write;
		sm_sftpc_begin(w, SM_SFTPC_WRITE);
		sm_sftpc_handle(w, &j->h);
		sm_sftpc_u64(w, off);
		sm_sftpc_str(w, j->data + off, n);
		w->cb = sftp_job_stage2;
		sm_sftpc_submit(c, w);
	}
	const struct sm_sftpc_attrs *sets[3] = { &j->attrs.main, &j->attrs.owner,
		                                 &j->attrs.remode };
	const int slot[3] = { SFTP_JQ_SETSTAT, SFTP_JQ_OWNER, SFTP_JQ_REMODE };
	for (int i = 0; i < 3; i++) {
		if (!sets[i]->flags)
			continue;
		struct sm_sftpc_req *s = &j->q[slot[i]];
		sm_sftpc_begin(s, SM_SFTPC_FSETSTAT);
		sm_sftpc_handle(s, &j->h);
		sm_sftpc_attrs(s, sets[i]);
		s->cb = sftp_job_stage2;
		sm_sftpc_submit(c, s);
	}
	if (j->fsync) {
		struct sm_sftpc_req *f = &j->q[SFTP_JQ_FSYNC];
		sm_sftpc_begin_ext(f, "fsync@openssh.com", SM_SFTPC_R_STATUS);
		sm_sftpc_handle(f, &j->h);
		f->cb = sftp_job_stage2;
		sm_sftpc_submit(c, f);
	}
	struct sm_sftpc_req *cl = &j->q[SFTP_JQ_CLOSE];
	sm_sftpc_begin(cl, SM_SFTPC_CLOSE);
	sm_sftpc_handle(cl, &j->h);
	cl->cb = sftp_job_stage2;
	sm_sftpc_submit(c, cl);
}

/* Run the job once: 0 or the failure, its stage in j->stage. */
static int sftp_job_run(struct sm_sftpc *c, struct sftp_job *j, uint32_t flags, uint32_t mode)
{
	atomic_store(&j->rc, 0);
	atomic_store(&j->owner_rc, 0);
	struct sm_sftpc_attrs ma = { .flags = SM_SFTPC_A_PERM, .perm = mode };
	struct sm_sftpc_req *q = &j->q[SFTP_JQ_OPEN];
	sm_sftpc_begin(q, SM_SFTPC_OPEN);
	sm_sftpc_cstr(q, j->tmp);
	sm_sftpc_u32(q, flags);
	sm_sftpc_attrs(q, &ma);
	for (int i = 0; i < SFTP_JQ_N; i++) {
		j->q[i].cb = NULL;
		j->q[i].arg = j;
	}
	q->cb = sftp_job_opened;
	sm_sftpc_prepare(&j->fin);
	sm_sftpc_submit(c, q);
	return sm_sftpc_wait(c, &j->fin);
}

/* A put of `len` bytes at `data`, all in memory (see sftp_job); never
 * SM_PUT_INPLACE (sftp_put_once does those). */
static enum sm_err sftp_put_small(struct sftp_store *fs, struct sm_sftpc *c, const char *key,
                                  const char *path, char *tmp, size_t tmpn, const char *data,
                                  size_t len, const struct sm_put *p, struct sm_diag *d)
{
	struct sftp_dest t;
	sftp_dest_init(&t, fs->root, path, p, tmp, tmpn);
	struct sftp_job *j = calloc(1, sizeof(*j));
	if (!j)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	for (int i = 0; i < SFTP_JQ_N; i++)
		sm_sftpc_req_init(&j->q[i]);
	sm_sftpc_req_init(&j->fin);
	j->data = data;
	j->len = len;
	j->max_write = sm_sftpc_max_write(c);
	j->tmp = tmp;
	j->path = path;
	j->rename = !t.inplace;
	j->posix = sm_sftpc_has_ext(c, "posix-rename@openssh.com");
	j->fsync = sftp_wants_fsync(c, p);
	if (!j->fsync)
		atomic_store(&fs->unsynced, true);
	sftp_attrset(fs, p, key, NULL, &j->attrs);
	enum sm_err err = sftp_parents(fs, c, key, true, 0, d);
	if (err != SM_OK)
		goto out;
	uint64_t seq = sftp_dirs_now(fs);
	int rc = sftp_job_run(c, j, t.flags, t.mode);
	if (rc == SM_SFTPC_FX_NO_SUCH_FILE && j->stage == SFTP_ST_OPEN) {
		err = sftp_parents(fs, c, key, true, seq, d);
		if (err != SM_OK)
			goto out;
		rc = sftp_job_run(c, j, t.flags, t.mode);
	}
	if (atomic_load(&j->owner_rc))
		sftp_owner_warn(fs, path, &j->attrs.owner);
	if (rc == 0)
		goto out;
	switch (j->stage) {
	case SFTP_ST_OPEN: err = sftp_err(c, rc, "write", path, d); goto out; /* nothing was made */
	case SFTP_ST_WRITE:
	case SFTP_ST_CLOSE: err = sftp_err(c, rc, "write", path, d); break;
	case SFTP_ST_SETSTAT: err = sftp_err(c, rc, "set attributes of", path, d); break;
	case SFTP_ST_RENAME:
		/* in the way, or no posix-rename: the careful way */
		err = rc == SM_SFTPC_LINK ? sftp_err(c, rc, "rename", path, d)
		                          : sftp_rename_over(fs, c, tmp, path, d);
		break;
	}
	if (err == SM_EIO)
		err = sftp_full(c, t.dir, path, err, d);
	if (err != SM_OK && !t.inplace && !sm_sftpc_broken(c))
		sftp_simple(c, SM_SFTPC_REMOVE, tmp, NULL);
out:
	for (int i = 0; i < SFTP_JQ_N; i++)
		sm_sftpc_req_release(&j->q[i]);
	sm_sftpc_req_release(&j->fin);
	free(j);
	return err;
}

static enum sm_err sftp_put(struct sm_store *st, const char *key, struct sm_reader *r,
                            const struct sm_put *p, struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	char *path = sftp_path(fs, key);
	size_t cap = r->size != UINT64_MAX && r->size < SFTP_IO ? (size_t)r->size + 1 : SFTP_IO;
	char *buf = malloc(cap);
	struct sm_sftpc *c = NULL;
	enum sm_err err = SM_ENOMEM;
	if (!path || !buf) {
		sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	char tmp[SFTP_NAME_MAX * 2] = "";
	int weight = r->size < SFTP_SMALL ? 1 : SFTP_SLOTS;
	err = sftp_get_w(fs, weight, &c, d);
	if (err == SM_OK && !(p->flags & SM_PUT_INPLACE) && r->size < SFTP_SMALL &&
	    r->size <= SFTP_JOB_WRITES * sm_sftpc_max_write(c)) {
		/* all of it in memory first, then one pipelined job */
		size_t got = 0;
		err = sm_reader_read_full(r, buf, cap, &got, d);
		if (err == SM_OK && got != r->size)
			err = sftp_src_size(r, path, got == cap ? got - 1 : got, got == cap, d);
		if (err == SM_OK && (p->flags & SM_PUT_CHECK))
			err = sm_reader_finish(r, d); /* every byte is read already */
		if (err == SM_OK)
			err = sftp_put_small(fs, c, key, path, tmp, sizeof(tmp), buf, got, p, d);
	} else if (err == SM_OK) {
		err = sftp_put_once(fs, c, key, path, tmp, sizeof(tmp), r, p, buf, cap, d);
	}
	if (err != SM_OK && c && sm_sftpc_broken(c) && tmp[0] && !(p->flags & SM_PUT_INPLACE)) {
		/* the link dropped mid-write: remove the temp file over another
		 * (an idle one may have dropped too) */
		for (int attempt = 0; attempt < 3 && c && sm_sftpc_broken(c); attempt++) {
			sftp_put_conn_w(fs, weight, c);
			c = NULL;
			weight = 1;
			struct sm_diag ud;
			if (sftp_get(fs, &c, &ud) == SM_OK)
				sftp_simple(c, SM_SFTPC_REMOVE, tmp, NULL);
		}
	}
	/* a failed attempt is retried by the caller, which opens the source again */
	sftp_put_conn_w(fs, weight, c);
out:
	free(buf);
	free(path);
	return err;
}

/*
 * Make the symlink tmp -> target. OpenSSH's server takes the two paths in
 * the opposite order to the draft (target first, then the link), and is
 * the server this speaks to.
 */
static int sftp_symlink_rc(struct sm_sftpc *c, const char *target, const char *tmp)
{
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin(&q, SM_SFTPC_SYMLINK);
	sm_sftpc_cstr(&q, target);
	sm_sftpc_cstr(&q, tmp);
	int rc = sm_sftpc_call(c, &q);
	sm_sftpc_req_release(&q);
	return rc;
}

/* Path operations (stat, delete, mkdir, symlink, setattr), each retried
 * once on a fresh connection after a drop. */
enum sftp_op { SFTP_STAT, SFTP_DEL, SFTP_MKDIR, SFTP_SYMLINK, SFTP_SETATTR };

static enum sm_err sftp_op_once(struct sftp_store *fs, struct sm_sftpc *c, enum sftp_op op,
                                const char *key, const char *path, const char *target,
                                const struct sm_put *p, struct sm_entry *out, char *tmpout,
                                size_t tmpn, struct sm_diag *d)
{
	struct sm_sftpc_attrs a;
	enum sm_err err;
	int rc;
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
		err = sftp_parents(fs, c, key, false, 0, d);
		if (err == SM_ENOENT)
			return SM_OK; /* a parent is missing or a symlink: the key is not there */
		if (err != SM_OK)
			return err;
		if (sm_key_is_dir(key)) {
			rc = sftp_simple(c, SM_SFTPC_RMDIR, path, NULL);
			if (rc == 0)
				return SM_OK;
			err = sftp_err(c, rc, "delete", path, d);
			if (err == SM_EIO && sftp_stat_rc(c, path, false, &a) == 0)
				/* OpenSSH says "failure" for a directory that is not empty */
				return sm_diag_set(d, SM_ENOTEMPTY, 0,
				                   "sftp: delete '%s': directory not empty", path);
		} else {
			rc = sftp_simple(c, SM_SFTPC_REMOVE, path, NULL);
			if (rc == 0)
				return SM_OK;
			err = sftp_err(c, rc, "delete", path, d);
		}
		return err == SM_ENOENT ? SM_OK : err; /* absent = deleted */
	case SFTP_MKDIR: {
		uint32_t mode = (p->flags & SM_PUT_MODE) ? (p->mode & 07777) : 0755;
		size_t kn = strlen(key);
		char *dkey = sm_strndup(key, kn && key[kn - 1] == '/' ? kn - 1 : kn);
		if (!dkey)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		err = sftp_parents(fs, c, key, true, 0, d);
		if (err == SM_OK)
			err = sftp_dir_make(fs, c, dkey, path, mode, d);
		free(dkey);
		/* not the time: contents change it */
		if (err == SM_OK && (p->flags & (SM_PUT_MODE | SM_PUT_OWNER)))
			err = sftp_setstat_nofollow(fs, c, path, p, true, d);
		return err;
	}
	case SFTP_SYMLINK: {
		char dir[SFTP_NAME_MAX], tmp[SFTP_NAME_MAX * 2];
		sftp_tmp_beside(fs->root, path, dir, sizeof(dir), tmp, sizeof(tmp));
		err = sftp_parents(fs, c, key, true, 0, d);
		if (err != SM_OK)
			return err;
		snprintf(tmpout, tmpn, "%s", tmp); /* to remove when the link drops */
		uint64_t seq = sftp_dirs_now(fs);
		rc = sftp_symlink_rc(c, target, tmp);
		if (rc == SM_SFTPC_FX_NO_SUCH_FILE) {
			err = sftp_parents(fs, c, key, true, seq, d);
			if (err != SM_OK)
				return err;
			rc = sftp_symlink_rc(c, target, tmp);
		}
		if (rc)
			return sftp_err(c, rc, "symlink", tmp, d);
		/* the link's own time and owner, before it takes its name */
		err = SM_OK;
		if ((p->flags & (SM_PUT_MTIME | SM_PUT_OWNER)) &&
		    sm_sftpc_has_ext(c, "lsetstat@openssh.com"))
			err = sftp_setstat_nofollow(fs, c, tmp, p, false, d);
		if (err == SM_OK)
			err = sftp_rename_over(fs, c, tmp, path, d);
		if (err != SM_OK && !sm_sftpc_broken(c))
			sftp_simple(c, SM_SFTPC_REMOVE, tmp, NULL);
		return err;
	}
	case SFTP_SETATTR:
		if (!(p->flags & (SM_PUT_MODE | SM_PUT_OWNER | SM_PUT_MTIME)))
			return SM_OK;
		err = sftp_parents(fs, c, key, false, 0, d);
		return err == SM_OK ? sftp_setstat_nofollow(fs, c, path, p, false, d) : err;
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
	char tmp[SFTP_NAME_MAX * 2] = ""; /* a symlink's temp name, after a drop */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (attempt == 2 && !tmp[0])
			break; /* the third round only removes a temp link */
		struct sm_sftpc *c = NULL;
		struct sm_diag ud;
		enum sm_err gerr = sftp_get(fs, &c, attempt < 2 ? d : &ud);
		if (gerr != SM_OK) {
			if (attempt < 2)
				err = gerr;
			break;
		}
		if (tmp[0]) /* the link dropped after the temp link may have been made */
			sftp_simple(c, SM_SFTPC_REMOVE, tmp, NULL);
		tmp[0] = '\0';
		if (attempt < 2)
			err = sftp_op_once(fs, c, op, key, path, target, p, out, tmp, sizeof(tmp),
			                   d);
		sftp_put_conn(fs, c);
		if (attempt < 2 && err != SM_EAGAIN)
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

/* Durable so far only if every file written was fsynced on the server
 * (--fsync, or forced before SRC deletes, on a server with
 * fsync@openssh.com): SFTP has no syncfs. */
static enum sm_err sftp_sync(struct sm_store *st, struct sm_diag *d)
{
	if (atomic_load(&sftp_priv(st)->unsynced))
		return sm_diag_set(d, SM_ENOTSUP, 0,
		                   "%s: files were written without fsync@openssh.com (the "
		                   "server lacks it, or no --fsync): they cannot be synced",
		                   st->display);
	return SM_OK;
}

/* The root made (mkdir -p) and a temp file created in it and removed: a
 * refused DST fails the run once, here, not once per key. */
static enum sm_err sftp_writable(struct sm_store *st, struct sm_diag *d)
{
	struct sftp_store *fs = sftp_priv(st);
	struct sm_sftpc *c = NULL;
	enum sm_err err = sftp_get(fs, &c, d);
	if (err != SM_OK)
		return err;
	char tname[64], *path = NULL;
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	struct sm_diag ld;
	err = sftp_root_make(fs, c, &ld);
	if (err != SM_OK)
		goto out;
	sm_store_tmp_name("probe", tname, sizeof(tname));
	path = *fs->root ? sm_strcat2(fs->root, "/") : sm_strdup("");
	char *full = path ? sm_strcat2(path, tname) : NULL;
	free(path);
	path = full;
	if (!path) {
		err = sm_diag_set(&ld, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	struct sm_sftpc_attrs a = { .flags = SM_SFTPC_A_PERM, .perm = 0600 };
	sm_sftpc_begin(&q, SM_SFTPC_OPEN);
	sm_sftpc_cstr(&q, path);
	sm_sftpc_u32(&q, SM_SFTPC_FXF_WRITE | SM_SFTPC_FXF_CREAT | SM_SFTPC_FXF_EXCL);
	sm_sftpc_attrs(&q, &a);
	int rc = sm_sftpc_call(c, &q);
	struct sm_sftpc_handle h;
	if (rc) {
		err = sftp_err(c, rc, "create a file in", *fs->root ? fs->root : ".", &ld);
		goto out;
	}
	if (sm_sftpc_get_handle(&q, &h)) {
		/* who a new file belongs to: the login (sftp_attrset) */
		sm_sftpc_begin(&q, SM_SFTPC_FSTAT);
		sm_sftpc_handle(&q, &h);
		if (sm_sftpc_call(c, &q) == 0) {
			struct sm_sftpc_rd r;
			struct sm_sftpc_attrs pa;
			sm_sftpc_rd_init(&r, &q);
			sm_sftpc_get_attrs(&r, &pa);
			if (!r.bad && (pa.flags & SM_SFTPC_A_UIDGID)) {
				fs->login_uid = pa.uid;
				fs->login_gid = pa.gid;
				fs->login_known = true;
			}
		}
		sftp_close_handle(c, &h);
	}
	sftp_simple(c, SM_SFTPC_REMOVE, path, NULL);
out:
	if (err != SM_OK)
		sm_diag_set(d, err, ld.native, "'%s' is not writable: %s", st->display, ld.msg);
	sm_sftpc_req_release(&q);
	free(path);
	sftp_put_conn(fs, c);
	return err;
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
	.sync = sftp_sync,
	.writable = sftp_writable,
};
