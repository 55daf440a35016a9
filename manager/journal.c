#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/spill.h"
#include "../common/util.h"
#include "../worker/decide.h"

enum {
	J_SRC = 1u << 0,
	J_DIR = 1u << 1,
	J_BOUND = 1u << 2,
	J_DEBRIS = 1u << 3,
	J_RECOPY = 1u << 4, /* copy the SRC key again after the deletes */
	J_DIRFIX = 1u << 5, /* set the DST directory's attributes from SRC at the end */
	J_MADE = 1u << 6,   /* J_DIRFIX: the run made it */
};

/* DelKey.kind (proto/syncmgr.proto) */
#define JOURNAL_KIND_RECOPY 1
#define JOURNAL_KIND_DIR 2

/* One record in the spool: this header, then `klen` key bytes. */
struct jrec {
	uint64_t attempt;
	uint64_t size;
	int64_t mtime_ns;
	uint32_t klen;
	uint32_t flags;
	uint32_t mode; /* J_DIRFIX: the mode before the run opened it, or 0 */
	uint32_t pad;
};

struct sm_journal {
	pthread_mutex_t mu;
	FILE *spool;
	bool broken;    /* a record could not be written: delete nothing */
	uint8_t *bits;  /* accepted attempts */
	size_t nbits;   /* bytes of `bits` */
	uint64_t n_src; /* SRC records (accepted or not) */
	void (*fail_fn)(void *arg, const char *key, const char *msg);
	void *fail_arg;
	char *unsynced; /* a worker's DST writes may not be durable: why */
};

void sm_journal_set_unsynced(struct sm_journal *j, const char *why)
{
	if (!j || j->unsynced)
		return;
	j->unsynced = strdup(why);
	if (!j->unsynced)
		j->unsynced = strdup("out of memory"); /* still: unsynced */
}

void sm_journal_set_fail_hook(struct sm_journal *j,
                              void (*fn)(void *arg, const char *key, const char *msg), void *arg)
{
	j->fail_fn = fn;
	j->fail_arg = arg;
}

/* A key not deleted: counted, and told to the hook. */
static void journal_failed(struct sm_journal *j, struct sm_stats *acc, const char *key,
                           const char *msg)
{
	__atomic_fetch_add(&acc->failed, 1, __ATOMIC_RELAXED); /* progress reads it */
	if (j->fail_fn)
		j->fail_fn(j->fail_arg, key, msg);
}

enum sm_err sm_journal_new(struct sm_journal **out, struct sm_diag *d)
{
	struct sm_journal *j = calloc(1, sizeof(*j));
	if (!j)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	/* in TMPDIR, unnamed (O_TMPFILE): gone with the process, however it ends */
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		/* a file system without O_TMPFILE: a named one, unlinked at once */
		char path[4096];
		snprintf(path, sizeof(path), "%s/.syncmgr-journal-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd >= 0)
		j->spool = fdopen(fd, "w+");
	if (!j->spool) {
		enum sm_err err =
		        sm_diag_errno(d, errno, "cannot create the delete journal in '%s'", dir);
		if (fd >= 0)
			close(fd);
		free(j);
		return err;
	}
	pthread_mutex_init(&j->mu, NULL);
	*out = j;
	return SM_OK;
}

void sm_journal_free(struct sm_journal *j)
{
	if (!j)
		return;
	fclose(j->spool);
	pthread_mutex_destroy(&j->mu);
	free(j->bits);
	free(j->unsynced);
	free(j);
}

void sm_journal_add(struct sm_journal *j, uint64_t attempt, Syncmgr__DelKey *const *keys, size_t n)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < n && !j->broken; i++) {
		const Syncmgr__DelKey *k = keys[i];
		bool dirfix = k->kind == JOURNAL_KIND_DIR; /* "" = the root */
		if ((!k->key.len && !dirfix) || k->key.len > UINT32_MAX ||
		    (k->key.len && memchr(k->key.data, '\0', k->key.len)) ||
		    k->kind > JOURNAL_KIND_DIR)
			continue; /* no such key can exist */
		struct jrec r = { .attempt = attempt,
			          .size = k->size,
			          .mtime_ns = k->mtime_ns,
			          .klen = (uint32_t)k->key.len,
			          .mode = k->mode & 07777,
			          .flags = (k->src ? J_SRC : 0) | (k->dir ? J_DIR : 0) |
			                   (k->mtime_bound ? J_BOUND : 0) |
			                   (k->debris ? J_DEBRIS : 0) |
			                   (k->kind == JOURNAL_KIND_RECOPY ? J_RECOPY : 0) |
			                   (dirfix ? J_DIRFIX : 0) |
			                   (dirfix && k->created ? J_MADE : 0) };
		if (fwrite(&r, sizeof(r), 1, j->spool) != 1 ||
		    fwrite(k->key.data, 1, k->key.len, j->spool) != k->key.len) {
			sm_log(SM_LOG_ERROR,
			       "cannot write the delete journal: %s: nothing "
			       "will be deleted",
			       strerror(errno));
			j->broken = true;
		}
		if (k->src && !k->kind)
			j->n_src++;
	}
	pthread_mutex_unlock(&j->mu);
}

void sm_journal_accept(struct sm_journal *j, uint64_t attempt)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	size_t byte = attempt / 8;
	if (byte >= j->nbits) {
		size_t n = j->nbits ? j->nbits : 64;
		while (n <= byte)
			n *= 2;
		uint8_t *b = realloc(j->bits, n);
		if (!b) {
			sm_log(SM_LOG_ERROR, "out of memory: nothing will be deleted");
			j->broken = true;
			pthread_mutex_unlock(&j->mu);
			return;
		}
		memset(b + j->nbits, 0, n - j->nbits);
		j->bits = b;
		j->nbits = n;
	}
	j->bits[byte] |= (uint8_t)(1u << (attempt % 8));
	pthread_mutex_unlock(&j->mu);
}

static bool journal_accepted(const struct sm_journal *j, uint64_t attempt)
{
	return attempt / 8 < j->nbits && (j->bits[attempt / 8] >> (attempt % 8)) & 1;
}

/* Read the next accepted record into *r and *key (grown as needed). False
 * at the end or on a read error (*bad set then). */
static bool journal_next(struct sm_journal *j, struct jrec *r, char **key, size_t *cap, bool *bad)
{
	for (;;) {
		if (fread(r, sizeof(*r), 1, j->spool) != 1) {
			*bad = ferror(j->spool) != 0;
			return false;
		}
		if (r->klen >= *cap) {
			char *k = realloc(*key, (size_t)r->klen + 1);
			if (!k) {
				*bad = true;
				return false;
			}
			*key = k;
			*cap = (size_t)r->klen + 1;
		}
		if (fread(*key, 1, r->klen, j->spool) != r->klen) {
			*bad = true;
			return false;
		}
		(*key)[r->klen] = '\0';
		/* a directory to set counts from any attempt: setting it from
		 * SRC is right whoever asked */
		if (journal_accepted(j, r->attempt) || (r->flags & J_DIRFIX))
			return true;
	}
}

/* ---- doing the deletes ---- */

/* The counts go up with atomic adds: the progress display reads them. */
#define JOURNAL_COUNT(acc, field, n) __atomic_fetch_add(&(acc)->field, (n), __ATOMIC_RELAXED)

/* -v: each key deleted, as it happens. */
static void journal_said_deleted(const struct sm_wctx *w, const struct sm_store *st,
                                 const char *key)
{
	sm_log(SM_LOG_INFO, "deleted '%s'%s", key, st == w->src ? " from SRC" : "");
}

struct jdirs;
static void jfix_parent(struct jdirs *fx, const struct sm_wctx *w, const char *key);

struct jbatch {
	struct sm_journal *j;
	struct sm_wctx *w;
	struct sm_store *st;
	struct sm_stats *acc;
	struct jdirs *fx; /* DST: the parents of what was deleted are set again */
	char *keys[SM_DEL_BATCH];
	size_t n;
};

static void jbatch_done(void *arg, size_t i, enum sm_err err, const struct sm_diag *d)
{
	struct jbatch *b = arg;
	struct sm_diag again;
	if (err != SM_OK && sm_err_retryable(err)) {
		err = sm_xfer_delete(b->w, b->st, b->keys[i], &again); /* alone, with retries */
		d = &again;
	}
	/* A directory of the same name replaced the file (a symlink on DST where
	 * SRC has a directory): the DST-only key is gone already. */
	if (err == SM_EISDIR)
		err = SM_OK;
	if (err != SM_OK) {
		sm_log_key_error(b->keys[i], d->msg);
		journal_failed(b->j, b->acc, b->keys[i], d->msg);
		return;
	}
	JOURNAL_COUNT(b->acc, deleted, 1);
	journal_said_deleted(b->w, b->st, b->keys[i]);
	if (b->fx)
		jfix_parent(b->fx, b->w, b->keys[i]);
}

static void jbatch_flush(struct jbatch *b)
{
	if (!b->n)
		return;
	if (sm_store_can_del_many(b->st)) {
		sm_store_del_many(b->st, (const char *const *)b->keys, b->n, jbatch_done, b);
	} else {
		for (size_t i = 0; i < b->n; i++) {
			struct sm_diag d;
			jbatch_done(b, i, sm_xfer_delete(b->w, b->st, b->keys[i], &d), &d);
		}
	}
	for (size_t i = 0; i < b->n; i++)
		free(b->keys[i]);
	b->n = 0;
}

static void jbatch_push(struct jbatch *b, const char *key)
{
	char *k = strdup(key);
	if (!k) {
		sm_log(SM_LOG_ERROR, "out of memory: '%s' not deleted", key);
		journal_failed(b->j, b->acc, key, "out of memory: not deleted");
		return;
	}
	b->keys[b->n++] = k;
	if (b->n == SM_DEL_BATCH)
		jbatch_flush(b);
}

/* Keys gathered for the end in bounded memory (a run may delete or set
 * millions of directories): sorted on disk past the budget. */
#define JOURNAL_DIRS_BUDGET ((size_t)8 << 20)

struct jdirs {
	struct sm_spill *sp; /* NULL until the first key */
	sm_spill_cmp_fn cmp; /* NULL: byte order */
	bool failed;         /* a key could not be kept */
};

static int jdirs_cmp_desc(const void *a, size_t alen, const void *b, size_t blen, void *arg)
{
	(void)arg;
	int c = memcmp(b, a, alen < blen ? alen : blen);
	return c ? c : (blen > alen) - (blen < alen);
}

static bool jdirs_add(struct jdirs *ds, const void *rec, size_t len)
{
	struct sm_diag d;
	if (!ds->sp) {
		/* tests lower the budget to see the sort spill */
		size_t budget = JOURNAL_DIRS_BUDGET;
		const char *tb = getenv("SYNCMGR_TEST_SPILL_BUDGET");
		int64_t v = 0;
		if (tb && sm_parse_i64(tb, 4096, INT64_MAX, &v))
			budget = (size_t)v;
		if (sm_spill_new(budget, ds->cmp, NULL, &ds->sp, &d) != SM_OK) {
			sm_log(SM_LOG_ERROR, "%s", d.msg);
			ds->failed = true;
			return false;
		}
	}
	if (sm_spill_add(ds->sp, rec, len, &d) != SM_OK) {
		sm_log(SM_LOG_ERROR, "%s", d.msg);
		ds->failed = true;
		return false;
	}
	return true;
}

static bool jdirs_push(struct jdirs *ds, const char *key)
{
	return jdirs_add(ds, key, strlen(key));
}

static void jdirs_release(struct jdirs *ds)
{
	sm_spill_free(ds->sp);
}

/* ---- directories set at the end ---- */

/* A directory to set: its key, a NUL, then this trailer. */
struct jfix_tail {
	uint32_t flags; /* J_MADE */
	uint32_t mode;  /* the mode before the run opened it, or 0 */
};

/* Deepest first (a directory after everything in it), the same key's
 * records together. */
static int jfix_cmp(const void *a, size_t alen, const void *b, size_t blen, void *arg)
{
	(void)arg;
	size_t ka = strnlen(a, alen), kb = strnlen(b, blen);
	int c = jdirs_cmp_desc(a, ka, b, kb, NULL);
	return c ? c : memcmp(a, b, alen < blen ? alen : blen);
}

static void jfix_push(struct jdirs *fx, const char *key, bool made, uint32_t mode)
{
	size_t n = strlen(key);
	char rec[PATH_MAX + 1 + sizeof(struct jfix_tail)];
	if (n > PATH_MAX)
		return; /* no file system holds it */
	struct jfix_tail tl = { .flags = made ? J_MADE : 0, .mode = mode };
	memcpy(rec, key, n);
	rec[n] = '\0';
	memcpy(rec + n + 1, &tl, sizeof(tl));
	jdirs_add(fx, rec, n + 1 + sizeof(tl));
}

/* With --dirs, the parent of a key written or deleted at the end: its
 * mtime changed. */
static void jfix_parent(struct jdirs *fx, const struct sm_wctx *w, const char *key)
{
	if (!w->o->dirs)
		return;
	size_t n = strlen(key);
	if (n && key[n - 1] == '/')
		n--;
	while (n && key[n - 1] != '/')
		n--;
	char *parent = sm_strndup(key, n);
	if (parent)
		jfix_push(fx, parent, false, 0);
	free(parent);
}

/* ctl->dirs of the journal's own copies */
static void jfix_note(void *arg, const char *dkey, bool created, uint32_t mode)
{
	jfix_push(arg, dkey, created, mode);
}

/*
 * Set DST directory `key` from SRC's: its mtime with --dirs, its mode where
 * the run made it (SRC's, & ~umask without --perms), with --dirs --perms,
 * or where the run opened it for writing (back to `mode` then), its owner
 * where --perms keeps owners. Only what differs is set: a run that wrote
 * nothing changes nothing.
 */
static void journal_fix_dir(struct sm_journal *j, struct sm_wctx *w, const char *key, bool made,
                            uint32_t mode, struct sm_stats *acc)
{
	const struct sm_opts *o = w->o;
	bool by_rules, prune;
	/* outside the selection: as it is, but for what the run made (a
	 * directory above a key that is selected) */
	if (*key && !made && !sm_select_key(&o->filter, &o->sel, key, &by_rules, &prune))
		return;
	struct sm_entry s = { 0 }, t = { 0 };
	struct sm_diag d;
	enum sm_err err = sm_store_stat(w->src, key, &s, &d);
	bool have_src = err == SM_OK && S_ISDIR(s.mode);
	if (!have_src && !made)
		goto out; /* gone from SRC (deleted at the end, or meanwhile) */
	if (!have_src)
		s = (struct sm_entry){ .mode = S_IFDIR | 0777 }; /* the default */
	err = sm_store_stat(w->dst, key, &t, &d);
	if (err == SM_ENOENT && !*key && o->dirs && have_src && !o->dry) {
		/* an empty SRC: its root is still a directory of the run */
		struct sm_put mp = { .mode = S_IFDIR | 0700, .flags = SM_PUT_MODE };
		if (sm_store_mkdir(w->dst, key, &mp, &d) == SM_OK)
			err = sm_store_stat(w->dst, key, &t, &d);
		made = true;
	}
	if (err != SM_OK || !S_ISDIR(t.mode))
		goto out;
	struct sm_put p = { .uid = s.uid, .gid = s.gid, .mtime_ns = s.mtime_ns };
	int64_t want = -1;
	if (made)
		want = o->perms ? (s.mode & 07777) : (s.mode & 0777 & ~w->umask);
	else if (o->dirs && o->perms)
		want = s.mode & 07777;
	else if (mode)
		want = mode;
	if (want >= 0 && (uint32_t)want != (t.mode & 07777))
		p.flags |= SM_PUT_MODE;
	if (have_src && w->owners && (made || o->dirs) && (s.uid != t.uid || s.gid != t.gid))
		p.flags |= SM_PUT_OWNER | (want >= 0 ? SM_PUT_MODE : 0);
	if (have_src && o->dirs && sm_mtime_differs(s.mtime_ns, &t))
		p.flags |= SM_PUT_MTIME;
	p.mode = want >= 0 ? (uint32_t)want : 0;
	if (!p.flags)
		goto out;
	if (o->dry) {
		if (p.flags & (SM_PUT_MODE | SM_PUT_OWNER))
			sm_log_say("chmod", *key ? key : "./");
		goto out;
	}
	err = sm_xfer_setattr_dir(w, key, &p, &d);
	if (err != SM_OK) {
		sm_log_key_error(*key ? key : "./", d.msg);
		journal_failed(j, acc, *key ? key : "./", d.msg);
	}
out:
	sm_entry_release(&s);
	sm_entry_release(&t);
}

static void journal_fix_dirs(struct sm_journal *j, struct sm_wctx *w, struct jdirs *fx,
                             struct sm_stats *acc)
{
	if (!sm_store_has(w->dst, SM_CAP_DIRS) || !sm_store_has(w->src, SM_CAP_DIRS) || !fx->sp)
		return;
	struct sm_diag d;
	enum sm_err err = sm_spill_sort(fx->sp, &d);
	char *cur = NULL;
	bool made = false;
	uint32_t mode = 0;
	const void *rec;
	size_t len;
	for (;;) {
		if (err == SM_OK)
			err = sm_spill_next(fx->sp, &rec, &len, &d);
		size_t kl = err == SM_OK ? strnlen(rec, len) : 0;
		if (err == SM_OK && len != kl + 1 + sizeof(struct jfix_tail))
			continue; /* cannot be: ours */
		if (cur && (err != SM_OK || strlen(cur) != kl || memcmp(cur, rec, kl) != 0)) {
			journal_fix_dir(j, w, cur, made, mode, acc);
			free(cur);
			cur = NULL;
		}
		if (err != SM_OK)
			break;
		struct jfix_tail tl;
		memcpy(&tl, (const char *)rec + kl + 1, sizeof(tl));
		if (!cur) {
			if (!(cur = sm_strndup(rec, kl))) {
				err = sm_diag_set(&d, SM_ENOMEM, 0, "out of memory");
				break;
			}
			made = false;
			mode = 0;
		}
		made = made || (tl.flags & J_MADE);
		if (!mode)
			mode = tl.mode;
	}
	free(cur);
	if (err != SM_EOF) {
		sm_log(SM_LOG_ERROR, "%s: the attributes of the remaining directories not set",
		       d.msg);
		JOURNAL_COUNT(acc, failed, 1);
	}
}

/* ---- copies after the deletes ---- */

/*
 * A DST directory `key` ("x/") holding directories only (what a run
 * without --dirs leaves of a tree whose files it deleted): removed,
 * deepest first, so that SRC's file "x" can take its place. False (`d`
 * filled) when anything else is in it.
 */
#define JOURNAL_CLEAR_MAX 65536

static bool journal_clear_dirs(struct sm_wctx *w, const char *key, struct sm_diag *d)
{
	struct sm_range r = { .after = key, .last = NULL };
	struct sm_cursor *cur = NULL;
	size_t klen = strlen(key), n = 0;
	char **dirs = NULL;
	bool ok = false;
	if (sm_store_list_begin(w->dst, &r, &cur, d) != SM_OK)
		return false;
	for (;;) {
		const struct sm_entry *e;
		enum sm_err err = sm_store_list_next(cur, &e, d);
		if (err == SM_EOF || (err == SM_OK && strncmp(e->key, key, klen) != 0))
			break;
		if (err != SM_OK)
			goto out;
		if (!S_ISDIR(e->mode)) {
			sm_diag_set(
			        d, SM_EISDIR, 0,
			        "DST: cannot replace directory '%s' by SRC's file: it holds '%s', "
			        "which this run keeps",
			        key, e->key);
			goto out;
		}
		if (n == JOURNAL_CLEAR_MAX) {
			sm_diag_set(
			        d, SM_EISDIR, 0,
			        "DST: cannot replace directory '%s' by SRC's file: more than %d "
			        "directories in it",
			        key, JOURNAL_CLEAR_MAX);
			goto out;
		}
		char **nd = realloc(dirs, (n + 1) * sizeof(*dirs));
		if (!nd || !(nd[n] = strdup(e->key))) {
			dirs = nd ? nd : dirs;
			sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto out;
		}
		dirs = nd;
		n++;
	}
	ok = true;
	/* the listing's order puts a directory before what is in it */
	for (size_t i = n; ok && i-- > 0;)
		ok = sm_xfer_delete(w, w->dst, dirs[i], d) == SM_OK;
	if (ok)
		ok = sm_xfer_delete(w, w->dst, key, d) == SM_OK;
out:
	sm_store_list_end(cur);
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
	return ok;
}

/* Copy SRC `key` again now that the deletes made room for it (a DST key of
 * another type was in its way), counting it copied, failed or lost. */
static void journal_recopy(struct sm_journal *j, struct sm_wctx *w, struct sm_xfer_ctl *ctl,
                           const char *key, struct jdirs *fx, struct sm_stats *acc)
{
	struct sm_entry s = { 0 };
	struct sm_diag d;
	enum sm_err err = sm_store_stat(w->src, key, &s, &d);
	if (err == SM_ENOENT) {
		JOURNAL_COUNT(acc, lost, 1);
		sm_log(SM_LOG_WARN, "'%s' disappeared from SRC before it was copied", key);
		return;
	}
	if (err == SM_OK) {
		s.key = (char *)key;
		err = sm_xfer_copy(w, ctl, &s, key, NULL, &d);
		size_t n = strlen(key);
		if (err == SM_EISDIR && n && key[n - 1] != '/') {
			/* a directory that held only directories stays without --dirs */
			char *dk = sm_strcat2(key, "/");
			struct sm_diag cd;
			if (dk && journal_clear_dirs(w, dk, &cd))
				err = sm_xfer_copy(w, ctl, &s, key, NULL, &d);
			else if (dk)
				d = cd;
			free(dk);
		}
		s.key = NULL;
	}
	if (err != SM_OK) {
		sm_log_key_error(key, d.msg);
		journal_failed(j, acc, key, d.msg);
	} else {
		JOURNAL_COUNT(acc, copied, 1);
		if (S_ISREG(s.mode))
			JOURNAL_COUNT(acc, copied_bytes, s.size);
		sm_log(SM_LOG_INFO, "copied '%s'", key);
		jfix_parent(fx, w, key);
	}
	sm_entry_release(&s);
}

static void journal_recopies(struct sm_journal *j, struct sm_wctx *w, struct jdirs *rc,
                             struct jdirs *fx, struct sm_stats *acc)
{
	if (!rc->sp)
		return;
	struct sm_xfer_ctl ctl;
	memset(&ctl, 0, sizeof(ctl)); /* no lease: the manager's own */
	ctl.dirs = (struct sm_xfer_dirs){ .note = jfix_note, .arg = fx };
	struct sm_diag d;
	enum sm_err err = sm_spill_sort(rc->sp, &d);
	char *prev = NULL;
	const void *rec;
	size_t len;
	while (err == SM_OK && (err = sm_spill_next(rc->sp, &rec, &len, &d)) == SM_OK) {
		if (prev && strlen(prev) == len && memcmp(prev, rec, len) == 0)
			continue; /* asked twice */
		free(prev);
		if (!(prev = sm_strndup(rec, len))) {
			err = sm_diag_set(&d, SM_ENOMEM, 0, "out of memory");
			break;
		}
		if (atomic_load(&w->abort)) {
			journal_failed(j, acc, prev, "not copied: the run stopped");
			continue;
		}
		journal_recopy(j, w, &ctl, prev, fx, acc);
	}
	free(prev);
	if (err != SM_EOF) {
		sm_log(SM_LOG_ERROR, "%s: the remaining keys not copied", d.msg);
		JOURNAL_COUNT(acc, failed, 1);
	}
}

/* ---- directories deleted ---- */

/* Directories, deepest first (reverse key order puts children first). A
 * directory that is not empty (a key in it was kept) stays. */
static void journal_dirs(struct sm_journal *j, struct sm_wctx *w, struct sm_store *st,
                         struct jdirs *ds, struct jdirs *fx, struct sm_stats *acc)
{
	if (!ds->sp)
		return;
	struct sm_diag d;
	enum sm_err err = sm_spill_sort(ds->sp, &d);
	if (sm_spill_runs(ds->sp))
		sm_log(SM_LOG_INFO,
		       "%llu directories to delete sorted on disk (%llu bytes in TMPDIR)",
		       (unsigned long long)sm_spill_count(ds->sp),
		       (unsigned long long)sm_spill_disk_bytes(ds->sp));
	char *prev = NULL, *key = NULL;
	const void *rec;
	size_t len;
	while (err == SM_OK && (err = sm_spill_next(ds->sp, &rec, &len, &d)) == SM_OK) {
		free(key);
		key = sm_strndup(rec, len);
		if (!key) {
			err = sm_diag_set(&d, SM_ENOMEM, 0, "out of memory");
			break;
		}
		if (prev && strcmp(key, prev) == 0)
			continue;
		free(prev);
		prev = key;
		key = NULL;
		if (atomic_load(&w->abort))
			break; /* interrupted while deleting */
		if (w->o->dry) {
			sm_log_say(st == w->dst ? "delete" : "delete-src", prev);
			JOURNAL_COUNT(acc, deleted, 1);
			continue;
		}
		struct sm_diag dd;
		enum sm_err de = sm_xfer_delete(w, st, prev, &dd);
		if (de == SM_ENOTEMPTY) {
			sm_log(SM_LOG_DEBUG, "kept '%s': not empty", prev);
			continue;
		}
		if (de != SM_OK) {
			sm_log_key_error(prev, dd.msg);
			journal_failed(j, acc, prev, dd.msg);
			continue;
		}
		JOURNAL_COUNT(acc, deleted, 1);
		journal_said_deleted(w, st, prev);
		if (fx)
			jfix_parent(fx, w, prev);
	}
	if (err != SM_OK && err != SM_EOF) {
		sm_log(SM_LOG_ERROR, "%s: the remaining directories not deleted", d.msg);
		JOURNAL_COUNT(acc, failed, 1);
	}
	free(prev);
	free(key);
}

/* Is the SRC key still what was copied? Only then may it go. */
static bool journal_src_unchanged(struct sm_journal *j, struct sm_wctx *w, const struct jrec *r,
                                  const char *key, struct sm_stats *acc)
{
	struct sm_entry e = { 0 };
	struct sm_diag d;
	enum sm_err err = sm_store_stat(w->src, key, &e, &d);
	if (err == SM_ENOENT)
		return false; /* gone already */
	if (err != SM_OK) {
		sm_log(SM_LOG_ERROR, "%s: not deleted from SRC", d.msg);
		char msg[SM_DIAG_MAX + 32];
		snprintf(msg, sizeof(msg), "%s: not deleted from SRC", d.msg);
		journal_failed(j, acc, key, msg);
		return false;
	}
	/* A listing's time is the upload time (S3 LastModified): the object is
	 * the one copied only if it still has that upload time (HEAD gives whole
	 * seconds). Otherwise the store reports the mtime it listed. */
	bool same = e.size == r->size &&
	            ((r->flags & J_BOUND)
	                     ? e.upload_ns && e.upload_ns / 1000000000 == r->mtime_ns / 1000000000
	                     : e.mtime_ns == r->mtime_ns);
	sm_entry_release(&e);
	if (!same) {
		sm_log(SM_LOG_WARN, "'%s' changed on SRC after it was copied: not deleted from SRC",
		       key);
		journal_failed(j, acc, key,
		               "changed on SRC after it was copied: not deleted from SRC");
	}
	return same;
}

void sm_journal_apply(struct sm_journal *j, struct sm_wctx *w, bool allowed, const char *why,
                      struct sm_stats *acc)
{
	size_t cap = 4096;
	char *key = malloc(cap);
	struct jdirs ddirs = { .cmp = jdirs_cmp_desc }, sdirs = { .cmp = jdirs_cmp_desc };
	struct jdirs recopy = { 0 }, fix = { .cmp = jfix_cmp };
	struct jbatch *dst = calloc(1, sizeof(*dst)), *src = calloc(1, sizeof(*src));
	bool bad = false;
	if (!key || !dst || !src) {
		sm_log(SM_LOG_ERROR, "out of memory: nothing deleted");
		goto out;
	}
	*dst = (struct jbatch){ .j = j, .w = w, .st = w->dst, .acc = acc, .fx = &fix };
	*src = (struct jbatch){ .j = j, .w = w, .st = w->src, .acc = acc };
	if (fflush(j->spool) != 0 || fseek(j->spool, 0, SEEK_SET) != 0) {
		sm_log(SM_LOG_ERROR, "cannot read the delete journal: %s", strerror(errno));
		j->broken = true;
	}
	/* the root's attributes follow SRC's root with --dirs */
	if (w->o->dirs)
		jfix_push(&fix, "", false, 0);
	struct jrec r;
	if (!allowed || j->broken) {
		uint64_t kept = 0;
		while (journal_next(j, &r, &key, &cap, &bad)) {
			if (r.flags & J_DIRFIX) {
				jfix_push(&fix, key, r.flags & J_MADE, r.mode);
				continue;
			}
			if (r.flags & J_RECOPY) {
				/* the key of another type in its way stays */
				char msg[512];
				snprintf(
				        msg, sizeof(msg),
				        "DST: not copied: a key of another type is in its way, and "
				        "deletes were skipped (%s)",
				        j->broken ? "the delete journal could not be used" : why);
				sm_log_key_error(key, msg);
				journal_failed(j, acc, key, msg);
				continue;
			}
			if (r.flags & J_SRC)
				continue; /* SRC stays */
			kept++;
			JOURNAL_COUNT(acc, extra, 1); /* DST-only keys that stay */
			if (!(r.flags & J_DIR))
				JOURNAL_COUNT(acc, extra_bytes, r.size);
		}
		if (kept || j->n_src)
			sm_log(SM_LOG_WARN,
			       "deletes skipped: %s (%" PRIu64 " DST-only keys kept%s)",
			       j->broken ? "the delete journal could not be used" : why, kept,
			       j->n_src ? ", SRC kept" : "");
		if (!j->broken && !bad)
			journal_fix_dirs(j, w, &fix, acc);
		goto out;
	}
	bool src_ok = true;
	if (j->n_src && !w->o->dry && j->unsynced) {
		/* a worker's copies cannot be made durable */
		sm_log(SM_LOG_ERROR, "%s: nothing deleted from SRC", j->unsynced);
		JOURNAL_COUNT(acc, failed, 1);
		src_ok = false;
	} else if (j->n_src && !w->o->dry) {
		/* The copies must be on disk before their sources go. */
		struct sm_diag d;
		if (sm_store_sync(w->dst, &d) != SM_OK) {
			sm_log(SM_LOG_ERROR, "%s: nothing deleted from SRC", d.msg);
			JOURNAL_COUNT(acc, failed, 1);
			src_ok = false;
		}
	}
	while (journal_next(j, &r, &key, &cap, &bad)) {
		if (r.flags & J_DIRFIX) {
			jfix_push(&fix, key, r.flags & J_MADE, r.mode);
			continue;
		}
		if (atomic_load(&w->abort)) { /* interrupted while deleting */
			sm_log(SM_LOG_WARN, "interrupted: the remaining deletes not done");
			break;
		}
		if (r.flags & J_RECOPY) {
			if (!jdirs_push(&recopy, key))
				journal_failed(j, acc, key, "out of memory: not copied");
			continue;
		}
		bool is_src = r.flags & J_SRC;
		if (is_src && !src_ok)
			continue;
		if (r.flags & J_DIR) {
			if (!jdirs_push(is_src ? &sdirs : &ddirs, key)) {
				sm_log(SM_LOG_ERROR, "out of memory: '%s' not deleted", key);
				journal_failed(j, acc, key, "out of memory: not deleted");
			}
			continue;
		}
		if (r.flags & J_DEBRIS)
			sm_log(SM_LOG_INFO, "removing '%s', left by an interrupted run", key);
		if (w->o->dry) {
			sm_log_say(is_src ? "delete-src" : "delete", key);
			JOURNAL_COUNT(acc, deleted, 1);
			continue;
		}
		if (is_src && !journal_src_unchanged(j, w, &r, key, acc))
			continue;
		jbatch_push(is_src ? src : dst, key);
	}
	if (bad) {
		sm_log(SM_LOG_ERROR, "the delete journal is damaged: the rest not deleted");
		JOURNAL_COUNT(acc, failed, 1);
	}
	jbatch_flush(dst);
	jbatch_flush(src);
	if (!bad) {
		journal_dirs(j, w, w->dst, &ddirs, &fix, acc);
		journal_dirs(j, w, w->src, &sdirs, NULL, acc);
		/* what the deletes made room for */
		journal_recopies(j, w, &recopy, &fix, acc);
		journal_fix_dirs(j, w, &fix, acc);
	}
out:
	jdirs_release(&ddirs);
	jdirs_release(&sdirs);
	jdirs_release(&recopy);
	jdirs_release(&fix);
	free(dst);
	free(src);
	free(key);
}
