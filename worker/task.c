#include "task.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/log.h"
#include "../common/pool.h"
#include "../common/store/sigv4.h"
#include "../common/url.h"
#include "../common/util.h"
#include "decide.h"
#include "wire.h"

#define TASK_REPORT_MS 100 /* under the display's 200 ms: each frame sees new counts */
/* Every exchange with the manager times out well within its lease: a
 * quarter of it, so a worker hears of trouble long before the task is
 * handed to someone else. */
#define TASK_RECV_MIN_MS 200
#define TASK_REDIAL_MIN_MS 50   /* a lost connection is dialed again after this, */
#define TASK_REDIAL_MAX_MS 2000 /* doubling up to this */
#define TASK_STALL_MS 60000     /* a transfer that moves nothing this long is retried */
#define TASK_HEARTBEAT_MS 1000  /* an idle worker says it is there (at most a tenth lease) */

#define LIVE_ADD(live, field, n) __atomic_fetch_add(&(live)->field, (n), __ATOMIC_RELAXED)

/* ---- running one task ---- */

/* The task's deletes on their way to the manager's journal, which does them
 * once the run is over (manager/journal.h): at most SM_DEL_MSG_KEYS per
 * message. */
struct del_out {
	Syncmgr__DelKey k[SM_DEL_MSG_KEYS];
	Syncmgr__DelKey *kp[SM_DEL_MSG_KEYS];
	size_t n;
	size_t bytes; /* of the keys' names (sm_wire_del_batch_full) */
	uint32_t seq; /* batches sent */
};

struct task_run {
	struct sm_wctx *w;
	const Syncmgr__Task *t;
	uint64_t attempt;
	bool allow_delete;
	const struct sm_del_sink *sink;
	struct sm_stats *live;
	struct del_out *out;
	struct sm_task_fails *fails; /* NULL: failed keys are not noted */
	struct sm_xfer_ctl *ctl;     /* NULL: only the run's abort stops it */
	bool revoked;                /* the manager gave the task to another attempt */
	bool listing_failed;
	struct sm_buf dir_noted; /* the directory noted last (task_dir_note) */
	/* --delete-dst: the merge's first pass, which gathers the range's
	 * DST-only files to delete them before its copies (task_merge) */
	bool deleting;
	struct sm_entry *early; /* those files (copies), at most TASK_EARLY_MAX */
	size_t n_early;
};

/* DST-only files of a range deleted before its copies; past that many the
 * rest go at the end (memory stays bounded however many a range has). */
#define TASK_EARLY_MAX 4096

/* Stop here? The run stops, or the task is no longer this attempt's (the
 * manager said so, or its lease could not be renewed): then nothing more
 * is decided, written or sent for deletion. */
static bool task_stopping(struct task_run *tr)
{
	if (tr->sink && tr->sink->tick)
		tr->sink->tick(tr->sink->arg); /* e.g. send the lines so far */
	if (atomic_load(&tr->w->abort))
		return true;
	if (tr->revoked)
		return true;
	if (!sm_xfer_ctl_go(tr->ctl)) {
		tr->revoked = true;
		return true;
	}
	return false;
}

void sm_task_fails_reset(struct sm_task_fails *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->key[i]);
		free(f->msg[i]);
	}
	f->n = 0;
}

/* Keep `key` and `msg` among the task's first failed keys (a copy of each;
 * out of memory: not kept, the count still has it). */
static void task_note_failure(struct task_run *tr, const char *key, const char *msg)
{
	struct sm_task_fails *f = tr->fails;
	if (!f || f->n == SM_TASK_FAILED_KEYS)
		return;
	char *k = strdup(key), *m = strdup(msg);
	if (!k || !m) {
		free(k);
		free(m);
		return;
	}
	f->key[f->n] = k;
	f->msg[f->n] = m;
	f->n++;
}

static void task_failed(struct task_run *tr, const char *key, const struct sm_diag *d)
{
	LIVE_ADD(tr->live, failed, 1);
	task_note_failure(tr, key, d->msg);
	if (atomic_load(&tr->w->abort) || tr->revoked || (tr->ctl && atomic_load(&tr->ctl->stop)) ||
	    sm_wctx_stop_on(tr->w, d))
		return; /* stopping: the cause was reported once already */
	sm_log_key_error(key, d->msg);
	if (d->err == SM_ENOSPC && !atomic_exchange(&tr->w->abort, true)) {
		/* Nothing more will fit: stop instead of failing every key. */
		sm_log(SM_LOG_ERROR, "stopping: DST %s is out of space", tr->w->dst->display);
		return;
	}
	sm_wctx_count_failure(tr->w);
}

/* Send the deletes gathered so far. A manager that cannot be reached stops
 * the run: deletes must never be lost silently. */
static void task_del_send(struct task_run *tr)
{
	struct del_out *o = tr->out;
	if (!o->n)
		return;
	struct sm_diag d;
	bool revoked = false;
	enum sm_err err = SM_OK;
	if (!task_stopping(tr))
		err = tr->sink->emit(tr->sink->arg, tr->t->id, tr->attempt, o->seq++, o->kp, o->n,
		                     &revoked, &d);
	for (size_t i = 0; i < o->n; i++)
		free(o->k[i].key.data);
	o->n = 0;
	o->bytes = 0;
	if (err != SM_OK) {
		LIVE_ADD(tr->live, failed, 1);
		if (!atomic_exchange(&tr->w->abort, true))
			sm_log(SM_LOG_ERROR, "%s: stopping the run", d.msg);
	}
	if (revoked) {
		tr->revoked = true;
		if (tr->ctl) {
			atomic_store(&tr->ctl->stop, true);
			atomic_store(&tr->ctl->cancel, true);
		}
	}
}

/* Hand a delete to the manager: a DST key (--delete-dst, debris) or a SRC
 * key that reached DST (--delete-src, --delete-src-after), with what was
 * copied so the manager can check it again before deleting. */
/* The next record of the journal's batch for `key` (the caller fills the
 * rest, then calls task_out_done), or NULL: stopping, or out of memory (the
 * key failed). */
static Syncmgr__DelKey *task_out_next(struct task_run *tr, const char *key)
{
	struct del_out *o = tr->out;
	if (task_stopping(tr))
		return NULL;
	Syncmgr__DelKey *k = &o->k[o->n];
	syncmgr__del_key__init(k);
	size_t len = strlen(key);
	k->key.data = malloc(len ? len : 1);
	if (!k->key.data) {
		struct sm_diag d;
		sm_diag_set(&d, SM_ENOMEM, 0, "out of memory");
		task_failed(tr, key, &d);
		return NULL;
	}
	memcpy(k->key.data, key, len);
	k->key.len = len;
	return k;
}

static void task_out_done(struct task_run *tr, Syncmgr__DelKey *k)
{
	struct del_out *o = tr->out;
	o->kp[o->n++] = k;
	o->bytes += k->key.len;
	if (sm_wire_del_batch_full(o->n, o->bytes))
		task_del_send(tr);
}

static void task_del_queue(struct task_run *tr, const struct sm_entry *e, bool src, bool debris)
{
	Syncmgr__DelKey *k = task_out_next(tr, e->key);
	if (!k)
		return;
	k->src = src;
	k->dir = S_ISDIR(e->mode);
	k->size = e->size;
	k->mtime_ns = e->mtime_ns;
	k->mtime_bound = e->mtime_bound;
	k->debris = debris;
	task_out_done(tr, k);
}

/* The journal's kinds of work for the end of the run (proto DelKey.kind). */
#define TASK_RECOPY 1
#define TASK_DIR 2

/* DST directory `dkey` gets its attributes from SRC at the end of the run
 * (ctl->dirs of this task's transfers, and the merge's own findings). */
static void task_dir_note(void *arg, const char *dkey, bool created, uint32_t mode)
{
	struct task_run *tr = arg;
	bool plain = !created && !mode;
	if (plain && tr->dir_noted.len && strcmp(tr->dir_noted.p, dkey) == 0)
		return; /* the files of one directory come one after another */
	Syncmgr__DelKey *k = task_out_next(tr, dkey);
	if (!k)
		return;
	k->kind = TASK_DIR;
	k->dir = true;
	k->created = created;
	k->mode = mode;
	task_out_done(tr, k);
	tr->dir_noted.len = 0;
	if (plain)
		sm_buf_appendz(&tr->dir_noted, dkey); /* out of memory: noted again */
}

/* With --dirs, a write into a directory changes its mtime: SRC's is set
 * again at the end. The root is always set then. */
static void task_dir_touched(struct task_run *tr, const char *dkey)
{
	if (!tr->w->o->dirs || !tr->ctl || !tr->ctl->dirs.note)
		return;
	const char *slash = strrchr(dkey, '/');
	if (slash && !slash[1]) { /* a directory key: its parent's */
		const char *p = slash;
		while (p > dkey && p[-1] != '/')
			p--;
		slash = p > dkey ? p - 1 : NULL;
	}
	if (!slash)
		return;
	char *parent = sm_strndup(dkey, (size_t)(slash - dkey) + 1);
	if (!parent)
		return;
	task_dir_note(tr, parent, false, 0);
	free(parent);
}

/* Delete a SRC key after it reached DST (--delete-src, --delete-src-after). */
static void task_delete_src(struct task_run *tr, const struct sm_entry *s)
{
	task_del_queue(tr, s, true, false);
}

/* -v: each key copied, as it happens. */
static void task_said_copied(const struct sm_entry *s, const char *dkey)
{
	if (sm_log_threshold < SM_LOG_INFO)
		return;
	char what[32];
	if (S_ISDIR(s->mode))
		sm_strlcpy(what, "directory", sizeof(what));
	else if (S_ISLNK(s->mode))
		sm_strlcpy(what, "symlink", sizeof(what));
	else
		sm_fmt_size(what, sizeof(what), s->size);
	sm_log(SM_LOG_INFO, "copied '%s' (%s)", dkey, what);
}

static void task_copy(struct task_run *tr, const struct sm_entry *s, const char *dkey)
{
	const struct sm_opts *o = tr->w->o;
	struct sm_diag d;
	if (o->dry) {
		sm_log_say("copy", dkey);
		LIVE_ADD(tr->live, copied, 1);
		LIVE_ADD(tr->live, copied_bytes, s->size);
		if (o->delete_src_after)
			task_delete_src(tr, s);
		return;
	}
	/* Bytes count as they are written, so progress moves during large
	 * files; a key that ends up failing takes its bytes back. */
	uint64_t *live = &tr->live->copied_bytes;
	uint64_t start = __atomic_load_n(live, __ATOMIC_RELAXED);
	atomic_fetch_add(&tr->w->transfers, 1);
	enum sm_err err = sm_xfer_copy(tr->w, tr->ctl, s, dkey, live, &d);
	atomic_fetch_sub(&tr->w->transfers, 1);
	if (err == SM_OK && S_ISREG(s->mode) && (o->check_new || o->check_all)) {
		err = sm_xfer_compare(tr->w, tr->ctl, s->key, dkey, &d);
		if (err == SM_OK) {
			LIVE_ADD(tr->live, checked, 1);
			LIVE_ADD(tr->live, checked_bytes, s->size);
		} else if (err == SM_EDIFFER) {
			/* A copy that failed verification has SRC's size and mtime:
			 * left in place it would look current to every later run. */
			struct sm_diag dd;
			if (sm_xfer_delete(tr->w, tr->w->dst, dkey, &dd) != SM_OK)
				sm_log(SM_LOG_WARN, "%s", dd.msg);
		}
	}
	if (err != SM_OK) {
		uint64_t now = __atomic_load_n(live, __ATOMIC_RELAXED);
		if (now > start)
			__atomic_fetch_sub(live, now - start, __ATOMIC_RELAXED);
	}
	struct sm_entry gone = { 0 };
	struct sm_diag gd;
	if (err == SM_ENOENT && sm_store_stat(tr->w->src, s->key, &gone, &gd) == SM_ENOENT) {
		LIVE_ADD(tr->live, lost, 1);
		sm_log(SM_LOG_WARN, "'%s' disappeared from SRC before it was copied", s->key);
		return;
	}
	sm_entry_release(&gone);
	if ((err == SM_EISDIR || err == SM_ENOTDIR) && !tr->t->single) {
		/* A DST key of another type in the way (a directory where SRC
		 * has a file, a file where it has a directory): with
		 * --delete-dst it goes with the run's deletes, and the journal
		 * copies this key again after them (counting it then). */
		if (o->delete_dst && tr->allow_delete && !tr->listing_failed) {
			Syncmgr__DelKey *k = task_out_next(tr, dkey);
			if (k) {
				sm_log(SM_LOG_DEBUG, "'%s': %s: copied after the deletes", dkey,
				       d.msg);
				k->kind = TASK_RECOPY;
				task_out_done(tr, k);
			}
			return;
		}
		size_t n = strlen(d.msg);
		snprintf(d.msg + n, sizeof(d.msg) - n, "%s",
		         o->delete_dst ? " (kept: deletes are off in this run)"
		                       : " (--delete-dst replaces it)");
	}
	if (err != SM_OK) {
		task_failed(tr, dkey, &d);
		return;
	}
	LIVE_ADD(tr->live, copied, 1);
	task_said_copied(s, dkey);
	task_dir_touched(tr, dkey);
	if (o->delete_src_after)
		task_delete_src(tr, s);
}

/*
 * A DST-only key under --delete-dst. A file is gathered in the merge's
 * first pass and deleted before the range's copies (rsync's
 * --delete-during): a DST short of space gets the room the run needs. That
 * is safe once the range is known: every SRC key of it was listed (a SRC
 * listing error before the task was handed out forbids its deletes) and
 * DST's listing of the whole range worked (else they go to the journal,
 * which then deletes nothing). Directories go at the end, deepest first,
 * with the journal (manager/journal.c).
 */
static void task_delete_dst(struct task_run *tr, const struct sm_entry *t)
{
	if (!tr->deleting || S_ISDIR(t->mode) || tr->n_early == TASK_EARLY_MAX) {
		task_del_queue(tr, t, false, false);
		return;
	}
	if (!tr->early && !(tr->early = calloc(TASK_EARLY_MAX, sizeof(*tr->early)))) {
		task_del_queue(tr, t, false, false);
		return;
	}
	if (sm_entry_copy(&tr->early[tr->n_early], t) == SM_OK)
		tr->n_early++;
	else
		task_del_queue(tr, t, false, false);
}

/* One DST-only file deleted (or not: `err`, `d`), counted and told. */
static void task_deleted(struct task_run *tr, const char *key, enum sm_err err,
                         const struct sm_diag *d)
{
	if (err != SM_OK) {
		task_failed(tr, key, d);
		return;
	}
	LIVE_ADD(tr->live, deleted, 1);
	sm_log(SM_LOG_INFO, "deleted '%s'", key);
	task_dir_touched(tr, key);
}

/* sm_store_del_many()'s verdict on early[base + i] */
struct task_del_batch {
	struct task_run *tr;
	const char *const *keys;
};

static void task_del_batch_done(void *arg, size_t i, enum sm_err err, const struct sm_diag *d)
{
	struct task_del_batch *b = arg;
	struct sm_diag again;
	if (err != SM_OK && sm_err_retryable(err)) {
		err = sm_xfer_delete(b->tr->w, b->tr->w->dst, b->keys[i], &again); /* alone */
		d = &again;
	}
	task_deleted(b->tr, b->keys[i], err, d);
}

/* The files task_delete_dst() gathered: deleted now (in batches where the
 * store takes them: S3's DeleteObjects) when the range's DST listing was
 * complete, else handed to the journal like any delete. */
static void task_delete_early(struct task_run *tr)
{
	struct sm_store *dst = tr->w->dst;
	bool batch = sm_store_can_del_many(dst) && !tr->w->o->dry;
	const char *keys[SM_DEL_BATCH];
	for (size_t k = 0; k < tr->n_early && !tr->listing_failed;) {
		size_t n = 0;
		for (; k < tr->n_early && n < (batch ? SM_DEL_BATCH : 1); k++)
			keys[n++] = tr->early[k].key;
		if (task_stopping(tr))
			break;
		if (tr->w->o->dry) {
			sm_log_say("delete", keys[0]);
			LIVE_ADD(tr->live, deleted, 1);
		} else if (batch) {
			struct task_del_batch b = { .tr = tr, .keys = keys };
			sm_store_del_many(dst, keys, n, task_del_batch_done, &b);
		} else {
			struct sm_diag d;
			task_deleted(tr, keys[0], sm_xfer_delete(tr->w, dst, keys[0], &d), &d);
		}
	}
	for (size_t k = 0; k < tr->n_early; k++) {
		if (tr->listing_failed)
			task_del_queue(tr, &tr->early[k], false, false);
		sm_entry_release(&tr->early[k]);
	}
	tr->n_early = 0;
	free(tr->early);
	tr->early = NULL;
}

/* A temp file an interrupted run left on DST: removed under --delete-dst
 * (through the journal, like any delete), else reported. */
static void task_debris(struct task_run *tr, const struct sm_entry *t)
{
	if (tr->w->o->delete_dst && tr->allow_delete && !tr->listing_failed) {
		task_del_queue(tr, t, false, true);
		return;
	}
	sm_log(SM_LOG_WARN,
	       "DST: '%s' is a temp file an interrupted run left (--delete-dst removes it)",
	       t->key);
	LIVE_ADD(tr->live, extra, 1); /* a DST key that stays */
	LIVE_ADD(tr->live, extra_bytes, t->size);
}

/* --update compares mtimes, but an S3 listing gives only the upload time,
 * while the object keeps its original mtime in x-amz-meta-mtime. Ask the
 * store (a HEAD) for each side the listing gave only that time of; *s and
 * *t then point to sx and tx. False when the key failed. */
static bool task_exact_mtimes(struct task_run *tr, const struct sm_entry **s,
                              const struct sm_entry **t, struct sm_entry *sx, struct sm_entry *tx,
                              const char *dkey)
{
	for (;;) {
		/* A bound decides nothing alone: a client clock ahead of the
		 * server's writes an x-amz-meta-mtime later than the upload
		 * time (issue 21: a file 90 s in the future was uploaded again
		 * on every run). */
		if (!(*s)->mtime_bound && !(*t)->mtime_bound)
			return true;
		bool sb = (*s)->mtime_bound;
		bool src_side = sb;
		const struct sm_entry **slot = src_side ? s : t;
		struct sm_entry *x = src_side ? sx : tx;
		struct sm_entry e = { 0 };
		struct sm_diag d;
		enum sm_err err = sm_store_stat(src_side ? tr->w->src : tr->w->dst,
		                                src_side ? (*s)->key : dkey, &e, &d);
		if (err != SM_OK && err != SM_ENOENT) {
			task_failed(tr, src_side ? (*s)->key : dkey, &d);
			return false;
		}
		if (err == SM_ENOENT && !src_side) {
			*t = NULL; /* gone from DST meanwhile: copy it */
			return true;
		}
		*x = **slot;
		if (err == SM_OK)
			x->mtime_ns = e.mtime_ns; /* gone from SRC meanwhile: the copy will tell */
		x->mtime_bound = false;
		*slot = x;
		sm_entry_release(&e);
	}
}

/* --perms as root between local trees keeps owners (rsync -o -g): an
 * existing DST key of another owner is fixed like one of another mode. */
static bool task_owner_differs(const struct task_run *tr, const struct sm_entry *s,
                               const struct sm_entry *t)
{
	return tr->w->owners && s && t && (s->uid != t->uid || s->gid != t->gid);
}

/* One row of the merge-join: s and/or t (SRC and DST entry of one key). */
static void task_handle(struct task_run *tr, const struct sm_entry *s, const struct sm_entry *t,
                        const char *dkey)
{
	const struct sm_opts *o = tr->w->o;
	if (s && s->excluded)
		return; /* deselected on SRC (--min-size & co.): DST stays as it is */
	struct sm_entry sx, tx;
	/* --update and --delete-src compare mtimes: make S3's bounds exact */
	if (s && t && S_ISREG(s->mode) && S_ISREG(t->mode) && !o->force_update &&
	    !o->ignore_existing &&
	    (o->update || (o->delete_src && !o->check_all && s->size == t->size)) &&
	    !task_exact_mtimes(tr, &s, &t, &sx, &tx, dkey))
		return;
	struct sm_decision dec = sm_decide(s, t, o);
	if (dec.act == SM_ACT_SKIP && dec.same && S_ISDIR(s->mode) &&
	    (dec.fix_dir || task_owner_differs(tr, s, t))) {
		/* a directory's attributes are set once its children are in */
		if (o->dry && (task_owner_differs(tr, s, t) ||
		               (o->perms && (s->mode & 07777) != (t->mode & 07777))))
			sm_log_say("chmod", dkey);
		else if (!o->dry && tr->ctl && tr->ctl->dirs.note)
			task_dir_note(tr, dkey, false, 0);
	} else if (dec.act == SM_ACT_SKIP && dec.same && task_owner_differs(tr, s, t)) {
		dec = (struct sm_decision){ .act = SM_ACT_ATTR,
			                    .why = "owner differs",
			                    .same = true };
	}
	const char *key = s ? dkey : t->key;
	if (o->debug && dec.act != SM_ACT_IGNORE)
		sm_log(SM_LOG_DEBUG, "%s '%s': %s", sm_act_name(dec.act), key, dec.why);
	struct sm_diag d;
	switch (dec.act) {
	case SM_ACT_IGNORE: return;
	case SM_ACT_COPY: task_copy(tr, s, dkey); return;
	case SM_ACT_CHECK: {
		enum sm_err err = sm_xfer_compare(tr->w, tr->ctl, s->key, dkey, &d);
		if (err == SM_EDIFFER) {
			sm_log(SM_LOG_DEBUG, "copy '%s': contents differ", key);
			task_copy(tr, s, dkey);
			return;
		}
		if (err != SM_OK) {
			task_failed(tr, key, &d);
			return;
		}
		LIVE_ADD(tr->live, checked, 1);
		LIVE_ADD(tr->live, checked_bytes, s->size);
		if (o->perms &&
		    ((s->mode & 07777) != (t->mode & 07777) || task_owner_differs(tr, s, t))) {
			if (o->dry) {
				sm_log_say("chmod", dkey);
			} else if (sm_xfer_setattr(tr->w, s, dkey, &d) != SM_OK) {
				task_failed(tr, key, &d);
				return;
			}
		}
		LIVE_ADD(tr->live, skipped, 1);
		LIVE_ADD(tr->live, skipped_bytes, s->size);
		if (o->delete_src)
			task_delete_src(tr, s);
		return;
	}
	case SM_ACT_ATTR:
		if (o->dry)
			sm_log_say("chmod", dkey);
		else if (sm_xfer_setattr(tr->w, s, dkey, &d) != SM_OK) {
			task_failed(tr, key, &d);
			return;
		}
		/* the contents were already there */
		__attribute__((fallthrough));
	case SM_ACT_SKIP:
		LIVE_ADD(tr->live, skipped, 1);
		LIVE_ADD(tr->live, skipped_bytes, s->size);
		if (o->delete_src && dec.same)
			task_delete_src(tr, s);
		return;
	case SM_ACT_DELETE:
		if (tr->allow_delete && !tr->listing_failed) {
			task_delete_dst(tr, t);
			return;
		}
		/* after a listing error nothing is deleted */
		__attribute__((fallthrough));
	case SM_ACT_EXTRA:
		LIVE_ADD(tr->live, extra, 1);
		LIVE_ADD(tr->live, extra_bytes, t->size);
		return;
	}
}

/* The task's SRC entries as NUL-terminated structs, in one allocation. */
static enum sm_err task_entries(const Syncmgr__Task *t, struct sm_entry **out, char **arena,
                                struct sm_diag *d)
{
	size_t bytes = 0;
	for (size_t i = 0; i < t->n_src; i++)
		bytes += t->src[i]->key.len + 1 +
		         (t->src[i]->link.len ? t->src[i]->link.len + 1 : 0);
	struct sm_entry *ents = calloc(t->n_src ? t->n_src : 1, sizeof(*ents));
	char *a = malloc(bytes ? bytes : 1);
	if (!ents || !a) {
		free(ents);
		free(a);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	char *p = a;
	for (size_t i = 0; i < t->n_src; i++) {
		const Syncmgr__Entry *pe = t->src[i];
		if (memchr(pe->key.data, '\0', pe->key.len)) {
			free(ents);
			free(a);
			return sm_diag_set(d, SM_EUNSAFE, 0,
			                   "task %llu: key with a NUL byte refused",
			                   (unsigned long long)t->id);
		}
		memcpy(p, pe->key.data, pe->key.len);
		p[pe->key.len] = '\0';
		ents[i] = (struct sm_entry){ .excluded = pe->excluded,
			                     .mtime_bound = pe->mtime_bound,
			                     .key = p,
			                     .size = pe->size,
			                     .mtime_ns = pe->mtime_ns,
			                     .mode = pe->mode,
			                     .uid = pe->uid,
			                     .gid = pe->gid };
		p += pe->key.len + 1;
		if (pe->link.len) {
			memcpy(p, pe->link.data, pe->link.len);
			p[pe->link.len] = '\0';
			ents[i].link = p;
			p += pe->link.len + 1;
		}
		if (i > 0 && strcmp(ents[i - 1].key, ents[i].key) >= 0) {
			sm_diag_set(d, SM_EORDER, 0, "task %llu: SRC keys out of order at '%s'",
			            (unsigned long long)t->id, ents[i].key);
			free(ents);
			free(a);
			return SM_EORDER;
		}
	}
	*out = ents;
	*arena = a;
	return SM_OK;
}

static void task_single(struct task_run *tr, const struct sm_entry *s, const char *dkey)
{
	struct sm_entry t = { 0 };
	struct sm_diag d;
	if (task_stopping(tr))
		return;
	enum sm_err err = sm_store_stat(tr->w->dst, dkey, &t, &d);
	if (err == SM_OK) {
		t.key = (char *)dkey;
		task_handle(tr, s, &t, dkey);
		t.key = NULL;
		sm_entry_release(&t);
	} else if (err == SM_ENOENT) {
		task_handle(tr, s, NULL, dkey);
	} else {
		task_failed(tr, dkey, &d);
	}
}

/* Whether a DST key is inside the run's selection (rules, --files-from,
 * --start/--end). An excluded directory's subtree is skipped in layer mode;
 * `pruned` remembers it in case the store cannot skip. */
static bool task_dst_selected(struct task_run *tr, struct sm_cursor *cur, const struct sm_entry *te,
                              struct sm_buf *pruned)
{
	const struct sm_opts *o = tr->w->o;
	if (pruned->len && strncmp(te->key, pruned->p, pruned->len) == 0)
		return false;
	pruned->len = 0;
	if (!sm_filter_active(&o->filter) && !o->sel.start && !o->sel.end && !o->sel.files)
		return true;
	bool by_rules, prune;
	if (sm_select_key(&o->filter, &o->sel, te->key, &by_rules, &prune))
		return true;
	if (prune && sm_buf_appendz(pruned, te->key) == SM_OK)
		sm_store_list_skip(cur);
	return false;
}

/* What the first pass of a --delete-dst merge found for one SRC entry. */
struct task_seen {
	struct sm_entry t; /* its DST entry (a copy) when `have` */
	bool have;
	bool unknown; /* the DST listing skipped it: ask DST (task_single) */
	bool failed;  /* counted failed already */
};

/* Merge the sorted SRC entries with the DST listing of the same range.
 * With --delete-dst in two passes: the merge itself deletes the DST-only
 * files, then the SRC entries are handled (see task_delete_dst). */
static enum sm_err task_merge(struct task_run *tr, struct sm_entry *src, size_t n,
                              struct sm_diag *d)
{
	const Syncmgr__Task *t = tr->t;
	struct sm_buf pruned = { 0 };
	struct task_seen *seen = NULL;
	/* Early deletes only where SRC's listing of the range is final when the
	 * task is handed out: a store syncmgr sorts itself (file, SFTP). An
	 * object store that lists out of byte order can show later that a key
	 * of this range was passed over (it then counts as DST-only here): its
	 * deletes wait for the end of the run, which drops them after such an
	 * error. */
	if (tr->w->o->delete_dst && tr->allow_delete && sm_store_has(tr->w->src, SM_CAP_DIRS)) {
		seen = calloc(n ? n : 1, sizeof(*seen));
		if (!seen)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		tr->deleting = true;
	}
	char *after = sm_strndup((const char *)t->after.data, t->after.len);
	char *last = t->open_end ? NULL : sm_strndup((const char *)t->last.data, t->last.len);
	if (!after || (!t->open_end && !last)) {
		free(after);
		free(last);
		free(seen);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	struct sm_range r = { .after = after, .last = last };
	struct sm_cursor *cur = NULL;
	enum sm_err err = sm_store_list_begin(tr->w->dst, &r, &cur, d);
	if (err != SM_OK) {
		if (!sm_wctx_stop_on(tr->w, d))
			sm_log(SM_LOG_ERROR, "%s", d->msg);
		tr->listing_failed = true;
		err = SM_OK;
		/* Without the DST listing nothing in the range can be decided. */
		for (size_t i = 0; i < n; i++) {
			LIVE_ADD(tr->live, failed, 1);
			task_note_failure(tr, src[i].key, d->msg);
		}
		goto out;
	}
	const struct sm_entry *te = NULL;
	bool dst_done = false;
	size_t i = 0;
	for (;;) {
		if (!te && !dst_done) {
			struct sm_diag ld;
			enum sm_err le = sm_store_list_next(cur, &te, &ld);
			if (le == SM_EOF) {
				dst_done = true;
			} else if (le != SM_OK) {
				if (!sm_wctx_stop_on(tr->w, &ld))
					sm_log(SM_LOG_ERROR, "%s", ld.msg);
				LIVE_ADD(tr->live, failed, 1); /* what could not be listed */
				tr->listing_failed = true;
				te = NULL;
				if (le == SM_EORDER || le == SM_ENOMEM || le == SM_EIO ||
				    le == SM_EAGAIN) {
					dst_done = true;
					/* DST unknown for the rest: count it failed, copy nothing */
					for (; i < n; i++) {
						LIVE_ADD(tr->live, failed, 1);
						task_note_failure(tr, src[i].key, ld.msg);
						if (seen)
							seen[i].failed = true;
					}
				}
				continue;
			}
			if (te && !task_dst_selected(tr, cur, te, &pruned)) {
				te = NULL; /* outside the selection: neither extra nor deleted */
				continue;
			}
			if (te && te->debris) {
				task_debris(tr, te);
				te = NULL;
				continue;
			}
		}
		if (task_stopping(tr))
			break;
		if (i == n && !te)
			break;
		int c = !te ? -1 : i == n ? 1 : strcmp(src[i].key, te->key);
		if (c < 0 && tr->listing_failed) {
			/* The DST listing skipped something: "not on DST" is not
			 * known, so ask DST about this key directly. */
			if (seen)
				seen[i].unknown = true;
			else
				task_single(tr, &src[i], src[i].key);
			i++;
		} else if (c < 0) {
			if (!seen)
				task_handle(tr, &src[i], NULL, src[i].key);
			i++;
		} else if (c > 0) {
			task_handle(tr, NULL, te, NULL);
			te = NULL;
		} else if (seen) {
			if (sm_entry_copy(&seen[i].t, te) == SM_OK) {
				seen[i].have = true;
			} else {
				struct sm_diag md;
				sm_diag_set(&md, SM_ENOMEM, 0, "out of memory");
				task_failed(tr, src[i].key, &md);
				seen[i].failed = true;
			}
			i++;
			te = NULL;
		} else {
			task_handle(tr, &src[i], te, src[i].key);
			i++;
			te = NULL;
		}
	}
	/* the range's DST-only files, then the SRC entries merged above */
	tr->deleting = false;
	task_delete_early(tr);
	for (size_t k = 0; seen && k < i && !task_stopping(tr); k++) {
		if (seen[k].failed)
			continue;
		if (seen[k].unknown)
			task_single(tr, &src[k], src[k].key);
		else
			task_handle(tr, &src[k], seen[k].have ? &seen[k].t : NULL, src[k].key);
	}
out:
	for (size_t k = 0; seen && k < n; k++)
		sm_entry_release(&seen[k].t);
	free(seen);
	sm_store_list_end(cur);
	sm_buf_release(&pruned);
	free(after);
	free(last);
	return err;
}

enum sm_err sm_task_run(struct sm_wctx *w, const Syncmgr__Task *t, uint64_t attempt,
                        bool allow_delete, const struct sm_del_sink *sink, struct sm_stats *live,
                        struct sm_xfer_ctl *ctl, struct sm_task_result *res, struct sm_diag *d)
{
	struct task_run tr = { .w = w,
		               .t = t,
		               .attempt = attempt,
		               .allow_delete = allow_delete && sink,
		               .sink = sink,
		               .fails = res->fails,
		               .ctl = ctl,
		               .live = live };
	struct sm_entry *src = NULL;
	char *arena = NULL;
	enum sm_err err = task_entries(t, &src, &arena, d);
	if (err != SM_OK)
		return err;
	tr.out = calloc(1, sizeof(*tr.out));
	if (!tr.out) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	/* directories to set at the end go to the journal with the deletes */
	if (ctl && tr.sink && !t->single && sm_store_has(w->dst, SM_CAP_DIRS) &&
	    sm_store_has(w->src, SM_CAP_DIRS))
		ctl->dirs = (struct sm_xfer_dirs){ .note = task_dir_note, .arg = &tr };
	if (t->single && t->n_src == 1) {
		char *dkey = sm_strndup((const char *)t->dst_key.data, t->dst_key.len);
		if (!dkey) {
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto out;
		}
		task_single(&tr, &src[0], dkey);
		free(dkey);
	} else {
		err = task_merge(&tr, src, t->n_src, d);
	}
	if (tr.sink)
		task_del_send(&tr);
out:
	if (tr.out)
		for (size_t i = 0; i < tr.out->n; i++)
			free(tr.out->k[i].key.data);
	free(tr.out);
	if (ctl)
		ctl->dirs = (struct sm_xfer_dirs){ 0 };
	sm_buf_release(&tr.dir_noted);
	free(src);
	free(arena);
	if (err != SM_OK)
		return err;
#define LIVE_LOAD(f) res->stats.f = __atomic_load_n(&live->f, __ATOMIC_RELAXED);
	SM_STATS_FIELDS(LIVE_LOAD)
#undef LIVE_LOAD
	res->listing_failed = tr.listing_failed;
	res->stopped = tr.revoked || (ctl && atomic_load(&ctl->stop) && !atomic_load(&w->abort));
	return SM_OK;
}

/* ---- the worker: its configuration, its threads ---- */

/* One task thread's place: the task it runs, for the reporter. `mu` makes
 * the change of attempt and the reporter's verdicts on one (stop, renew)
 * one after the other, so a verdict on an attempt never reaches the next. */
struct wslot {
	pthread_mutex_t mu;
	_Atomic uint64_t task_id; /* with attempt: 0 = idle */
	_Atomic uint64_t attempt;
	struct sm_stats live;
	struct sm_xfer_ctl ctl;
	/* the reporter's own: the transfer it watches for a stall */
	unsigned stall_xfers;
	uint64_t stall_moved;
	uint64_t stall_since;
};

struct sm_worker {
	/* from the Hello: all of it the worker's own */
	Syncmgr__Hello *hello;
	char hash[SM_WIRE_HASH_HEX];
	struct sm_opts o;
	bool o_set;
	struct sm_pool *pool;
	struct sm_store *src;
	struct sm_store *dst;
	struct sm_wctx w;
	char *url;
	int n;
	uint64_t run_id;
	uint64_t session;  /* this worker process, random */
	unsigned recv_ms;  /* receive timeout of every exchange */
	uint64_t lease_ns; /* the manager's lease */
	uint64_t fence_ns; /* a task stops once its lease is this old */
	uint64_t stall_ns; /* a transfer that moves nothing this long is retried */
	uint64_t heartbeat_ns;
	pthread_t *th;
	struct wslot *slots;
	int nslots; /* with their mutexes initialised */
	pthread_t reporter;
	bool reporter_started;
	atomic_bool stop;
	atomic_int running;      /* task threads not ended */
	pthread_mutex_t stop_mu; /* with stop_cv: wakes the reporter at once */
	pthread_cond_t stop_cv;
	int started;
	pthread_mutex_t why_mu;
	struct sm_diag why; /* the first reason a thread gave up (why.err) */
};

struct wthread_arg {
	struct sm_worker *wk;
	int idx;
};

/* Open a request socket to the manager. The dial goes on in the background
 * (with backoff) until the manager listens, and again whenever the
 * connection drops: requests wait for it. */
static enum sm_err wk_dial(struct sm_worker *wk, nng_socket *out, struct sm_diag *d)
{
	nng_socket s;
	int rv = nng_req0_open(&s);
	if (rv != 0)
		return sm_diag_set(d, SM_EIO, rv, "cannot open request socket: %s",
		                   nng_strerror(rv));
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, sm_wire_max_msg());
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)wk->recv_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, (nng_duration)wk->recv_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, TASK_REDIAL_MIN_MS);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, TASK_REDIAL_MAX_MS);
	rv = nng_dial(s, wk->url, NULL, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_close(s);
		return sm_diag_set(d, SM_EIO, rv, "cannot reach the manager at %s: %s", wk->url,
		                   nng_strerror(rv));
	}
	*out = s;
	return SM_OK;
}

/*
 * One request/reply exchange of slot `slot` (the reporter: 0) of worker
 * `wk`, which stamps it with its name, run and session. *out is unpacked
 * into `a` (valid until the arena is reset); *sent_ns (may be NULL) gets
 * when the answered try was sent. `patient`: a request that got no answer
 * is sent again (every request is idempotent) until four tries and a lease
 * went by; else one try. An Error reply is a failure, but "say Join first"
 * (the manager forgot this worker) is answered with a Join and the request
 * sent again.
 */
static enum sm_err wk_call(struct sm_worker *wk, nng_socket s, uint32_t slot,
                           const Syncmgr__Request *req, struct sm_wire_arena *a, bool patient,
                           Syncmgr__Reply **out, uint64_t *sent_ns, struct sm_diag *d);

/* Say who this worker is and that it runs the run's configuration. */
static enum sm_err wk_join(struct sm_worker *wk, nng_socket s, uint32_t slot,
                           struct sm_wire_arena *a, struct sm_diag *d)
{
	Syncmgr__Join j = SYNCMGR__JOIN__INIT;
	j.version = SM_WIRE_VERSION;
	j.config_hash.data = (uint8_t *)wk->hash;
	j.config_hash.len = strlen(wk->hash);
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_JOIN;
	req.join = &j;
	Syncmgr__Reply *rep = NULL;
	return wk_call(wk, s, slot, &req, a, true, &rep, NULL, d);
}

static enum sm_err wk_call(struct sm_worker *wk, nng_socket s, uint32_t slot,
                           const Syncmgr__Request *req, struct sm_wire_arena *a, bool patient,
                           Syncmgr__Reply **out, uint64_t *sent_ns, struct sm_diag *d)
{
	Syncmgr__Request named = *req;
	named.worker = (char *)(wk->w.name ? wk->w.name : "");
	named.run_id = wk->run_id;
	named.session = wk->session;
	named.slot = slot;
	size_t len = 0;
	uint8_t *buf = sm_wire_pack_request(&named, &len);
	if (!buf)
		return sm_diag_set(d, SM_ENOMEM, 0, "cannot pack a request (too big?)");
	uint64_t give_up = sm_now_ns() + wk->lease_ns;
	unsigned backoff = TASK_REDIAL_MIN_MS;
	enum sm_err err = SM_OK;
	bool joined = req->body_case == SYNCMGR__REQUEST__BODY_JOIN;
	for (int tries = 1;; tries++) {
		uint64_t t0 = sm_now_ns();
		nng_msg *m = NULL;
		int rv = nng_send(s, buf, len, 0);
		if (rv == 0)
			rv = nng_recvmsg(s, &m, 0);
		if (rv == 0) {
			sm_wire_arena_reset(a);
			Syncmgr__Reply *rep =
			        syncmgr__reply__unpack(&a->alloc, nng_msg_len(m), nng_msg_body(m));
			nng_msg_free(m);
			if (!rep) {
				err = sm_diag_set(d, SM_EIO, 0, "malformed reply from the manager");
			} else if (rep->run_id != wk->run_id) {
				err = sm_diag_set(d, SM_EIO, 0,
				                  "the manager at %s is in another run: this "
				                  "worker's run is over",
				                  wk->url);
				break;
			} else if (rep->body_case == SYNCMGR__REPLY__BODY_ERROR &&
			           rep->error->code == SYNCMGR__ERROR__CODE__NOT_JOINED &&
			           !joined) {
				joined = true;
				err = wk_join(wk, s, slot, a, d);
				if (err != SM_OK)
					break;
				continue;
			} else if (rep->body_case == SYNCMGR__REPLY__BODY_ERROR) {
				err = sm_diag_set(d, SM_EIO, (int)rep->error->code,
				                  "the manager refused a request: %s",
				                  rep->error->message ? rep->error->message : "");
				break;
			} else {
				*out = rep;
				if (sent_ns)
					*sent_ns = t0;
				err = SM_OK;
				break;
			}
		} else {
			err = sm_diag_set(d, SM_EIO, rv, "no answer from the manager at %s: %s",
			                  wk->url, nng_strerror(rv));
		}
		/* After a pause of this process the first try times out at once:
		 * give up only after a few tries. */
		if (!patient || atomic_load(&wk->stop) || (tries >= 4 && sm_now_ns() >= give_up))
			break;
		if (rv != NNG_ETIMEDOUT) {
			sm_sleep_ms(backoff); /* no connection: it comes back by itself */
			backoff =
			        backoff * 2 > TASK_REDIAL_MAX_MS ? TASK_REDIAL_MAX_MS : backoff * 2;
		}
	}
	free(buf);
	return err;
}

/* ---- a task thread's log lines, on their way to the manager ---- */

/* Lines go in small batches (at most this many, or WLOG_MAX_BYTES): the
 * manager takes them as a pipe would, so a blocked output holds a worker
 * back soon, not a thousand lines later. */
#define WLOG_MAX_LINES 100
#define WLOG_MAX_BYTES (8u << 10)
#define WLOG_AGE_MS 100 /* lines wait at most this long between keys */

struct wlog {
	struct sm_worker *wk;
	nng_socket s;
	uint32_t slot;
	uint64_t attempt; /* of the task running now, 0 between tasks */
	uint64_t seq;     /* Log requests sent */
	Syncmgr__LogLine line[WLOG_MAX_LINES];
	Syncmgr__LogLine *linep[WLOG_MAX_LINES];
	size_t n;
	size_t bytes;
	uint64_t first_ns; /* when the oldest line came */
	bool sending;
	struct sm_wire_arena arena;
	struct sm_log_sink sink;
};

/* A line's `say`, when it has one, is malloc'd; else it is protobuf-c's
 * static empty string. */
static void wlog_free_say(char *say)
{
	if (say && *say)
		free(say);
}

static void wlog_free_lines(struct wlog *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->line[i].text.data);
		free(l->line[i].key.data);
		wlog_free_say(l->line[i].say);
	}
	l->n = 0;
	l->bytes = 0;
}

/* Send the lines so far; if the manager cannot take them, print them here
 * (no line is lost silently). */
static void wlog_flush(struct wlog *l)
{
	if (!l->n || l->sending)
		return;
	l->sending = true; /* lines of this exchange wait for the next */
	Syncmgr__Log lg = SYNCMGR__LOG__INIT;
	lg.attempt = l->attempt;
	lg.n_lines = l->n;
	lg.lines = l->linep;
	lg.seq = ++l->seq;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_LOG;
	req.log = &lg;
	Syncmgr__Reply *rep = NULL;
	struct sm_diag d;
	enum sm_err err;
	/* the manager's output is behind (a full pipe): wait with it, as a
	 * write to a full pipe would */
	while ((err = wk_call(l->wk, l->s, l->slot, &req, &l->arena, true, &rep, NULL, &d)) ==
	               SM_OK &&
	       rep->body_case == SYNCMGR__REPLY__BODY_WAIT)
		sm_sleep_ms(rep->wait->ms ? rep->wait->ms : WLOG_AGE_MS);
	if (err != SM_OK) {
		sm_log_set_thread_sink(NULL);
		for (size_t i = 0; i < l->n; i++) {
			const Syncmgr__LogLine *ln = &l->line[i];
			if (*ln->say)
				sm_log_say(ln->say, (const char *)ln->text.data);
			else
				sm_log_write((enum sm_log_level)ln->level, "%s",
				             (const char *)ln->text.data);
		}
		sm_log_set_thread_sink(&l->sink);
	}
	wlog_free_lines(l);
	l->sending = false;
}

static void wlog_line(void *arg, int level, const char *text, const char *key, const char *say)
{
	struct wlog *l = arg;
	if (l->n == WLOG_MAX_LINES)
		wlog_flush(l);
	if (l->n == WLOG_MAX_LINES)
		return; /* still sending: cannot happen but on a line of the send */
	Syncmgr__LogLine *ln = &l->line[l->n];
	syncmgr__log_line__init(ln);
	ln->level = level;
	ln->text.len = strlen(text);
	ln->text.data = (uint8_t *)sm_strndup(text, ln->text.len);
	if (key) {
		ln->key.len = strlen(key);
		ln->key.data = (uint8_t *)sm_strndup(key, ln->key.len);
	}
	if (say && *say && !(ln->say = sm_strdup(say)))
		ln->say = NULL;
	if (!ln->text.data || (key && !ln->key.data) || !ln->say) {
		free(ln->text.data);
		free(ln->key.data);
		wlog_free_say(ln->say);
		return; /* out of memory: the line is lost */
	}
	l->linep[l->n] = ln;
	if (!l->n)
		l->first_ns = sm_now_ns();
	l->n++;
	l->bytes += ln->text.len + ln->key.len + 32;
	if (l->bytes >= WLOG_MAX_BYTES)
		wlog_flush(l);
}

/* Between keys: lines older than WLOG_AGE_MS go now. */
static void wlog_tick(struct wlog *l)
{
	if (l->n && sm_now_ns() - l->first_ns >= (uint64_t)WLOG_AGE_MS * 1000000u)
		wlog_flush(l);
}

/* ---- the task thread ---- */

static enum sm_err wk_send_done(struct sm_worker *wk, nng_socket s, uint32_t slot, uint64_t id,
                                uint64_t attempt, const struct sm_task_result *res,
                                struct sm_diag *d)
{
	Syncmgr__Stats st;
	sm_wire_stats_to_pb(&res->stats, &st);
	Syncmgr__FailedKey fk[SM_TASK_FAILED_KEYS];
	Syncmgr__FailedKey *fkp[SM_TASK_FAILED_KEYS];
	size_t nf = res->fails && !res->stopped ? res->fails->n : 0;
	/* the failed keys within half the message cap: the first ones */
	size_t room = sm_wire_max_msg() / 2, used = 0;
	size_t kept = 0;
	for (size_t i = 0; i < nf; i++) {
		size_t kl = strlen(res->fails->key[i]), ml = strlen(res->fails->msg[i]);
		if (used + kl + ml + 16 > room)
			break;
		used += kl + ml + 16;
		syncmgr__failed_key__init(&fk[kept]);
		fk[kept].key.data = (uint8_t *)res->fails->key[i];
		fk[kept].key.len = kl;
		fk[kept].error.data = (uint8_t *)res->fails->msg[i];
		fk[kept].error.len = ml;
		fkp[kept] = &fk[kept];
		kept++;
	}
	Syncmgr__Done done = SYNCMGR__DONE__INIT;
	done.n_failed_keys = kept;
	done.failed_keys = kept ? fkp : NULL;
	done.task_id = id;
	done.attempt = attempt;
	done.stats = &st;
	done.listing_failed = res->listing_failed;
	done.stopped = res->stopped;
	done.abort = atomic_load(&wk->w.abort); /* e.g. DST out of space: stop the run */
	/* Remote DST: whether what was written can be made durable is this
	 * worker's store's to say (a cheap check there; a local file system
	 * is synced by the manager at the end) */
	struct sm_diag sd;
	if (!wk->o.dry && !sm_store_has(wk->dst, SM_CAP_LOCAL) &&
	    sm_store_sync(wk->dst, &sd) != SM_OK) {
		done.unsynced.data = (uint8_t *)sd.msg;
		done.unsynced.len = strlen(sd.msg);
	}
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DONE;
	req.done = &done;
	Syncmgr__Reply *rep = NULL;
	struct sm_wire_arena arena;
	sm_wire_arena_init(&arena, sm_wire_max_msg());
	enum sm_err err = wk_call(wk, s, slot, &req, &arena, true, &rep, NULL, d);
	if (err == SM_OK && rep->body_case == SYNCMGR__REPLY__BODY_ACK && rep->ack->abort)
		atomic_store(&wk->w.abort, true);
	sm_wire_arena_release(&arena);
	return err;
}

/* The sink of a task thread: its deletes in Deletes requests, its log
 * lines between keys, on the thread's socket. */
struct wk_sink {
	struct sm_worker *wk;
	nng_socket s;
	uint32_t slot;
	struct sm_wire_arena arena; /* replies only: the task lives in another */
	struct wlog *log;
};

static enum sm_err wk_emit_deletes(void *arg, uint64_t task_id, uint64_t attempt, uint32_t seq,
                                   Syncmgr__DelKey **keys, size_t n, bool *revoked,
                                   struct sm_diag *d)
{
	struct wk_sink *ws = arg;
	Syncmgr__Deletes dl = SYNCMGR__DELETES__INIT;
	dl.task_id = task_id;
	dl.attempt = attempt;
	dl.seq = seq;
	dl.n_keys = n;
	dl.keys = keys;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_DELETES;
	req.deletes = &dl;
	Syncmgr__Reply *rep = NULL;
	enum sm_err err = wk_call(ws->wk, ws->s, ws->slot, &req, &ws->arena, true, &rep, NULL, d);
	if (err != SM_OK)
		return err;
	if (rep->body_case == SYNCMGR__REPLY__BODY_ACK) {
		*revoked = rep->ack->revoked;
		if (rep->ack->abort)
			atomic_store(&ws->wk->w.abort, true);
	}
	return SM_OK;
}

static void wk_tick(void *arg)
{
	struct wk_sink *ws = arg;
	wlog_tick(ws->log);
}

/* A task thread lost the manager (or was refused): it ends, and the worker
 * stops taking work. The first reason is kept for sm_worker_join(). */
static void wk_lost(struct sm_worker *wk, const struct sm_diag *d)
{
	pthread_mutex_lock(&wk->why_mu);
	bool first = wk->why.err == SM_OK;
	if (first)
		wk->why = *d;
	pthread_mutex_unlock(&wk->why_mu);
	if (!atomic_exchange(&wk->w.abort, true) && first)
		sm_log(SM_LOG_ERROR, "worker: %s: stopping", d->msg);
}

static void wk_thread_run(struct sm_worker *wk, struct wslot *slot, uint32_t slot_no, nng_socket s)
{
	struct sm_diag d;
	Syncmgr__GetTask get = SYNCMGR__GET_TASK__INIT;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_GET;
	req.get = &get;
	struct sm_wire_arena arena; /* unpacked tasks: 8x the message cap at most */
	sm_wire_arena_init(&arena, 8 * sm_wire_max_msg());
	struct wlog *lg = calloc(1, sizeof(*lg));
	if (!lg) {
		sm_diag_set(&d, SM_ENOMEM, 0, "out of memory");
		wk_lost(wk, &d);
		sm_wire_arena_release(&arena);
		return;
	}
	*lg = (struct wlog){ .wk = wk, .s = s, .slot = slot_no };
	sm_wire_arena_init(&lg->arena, sm_wire_max_msg());
	lg->sink = (struct sm_log_sink){ .line = wlog_line, .arg = lg };
	struct wk_sink ws = { .wk = wk, .s = s, .slot = slot_no, .log = lg };
	sm_wire_arena_init(&ws.arena, sm_wire_max_msg());
	const struct sm_del_sink sink = { .emit = wk_emit_deletes, .tick = wk_tick, .arg = &ws };
	struct sm_task_fails fails = { 0 };
	if (wk_join(wk, s, slot_no, &arena, &d) != SM_OK) {
		wk_lost(wk, &d);
		goto out;
	}
	/* from here every line of this thread goes to the manager */
	sm_log_set_thread_sink(&lg->sink);
	for (;;) {
		Syncmgr__Reply *rep = NULL;
		uint64_t asked = 0;
		wlog_flush(lg);
		if (wk_call(wk, s, slot_no, &req, &arena, true, &rep, &asked, &d) != SM_OK) {
			wk_lost(wk, &d);
			break;
		}
		if (rep->body_case == SYNCMGR__REPLY__BODY_SHUTDOWN) {
			if (rep->shutdown->abort)
				atomic_store(&wk->w.abort, true);
			break;
		}
		if (rep->body_case != SYNCMGR__REPLY__BODY_TASK) {
			if (atomic_load(&wk->w.abort))
				break; /* stopping: do not wait for work */
			continue;      /* Wait: ask again */
		}
		const Syncmgr__Task *t = rep->task;
		uint64_t attempt = rep->attempt;
		/* the lease began no earlier than the request was sent */
		pthread_mutex_lock(&slot->mu);
		memset(&slot->live, 0, sizeof(slot->live));
		sm_xfer_ctl_reset(&slot->ctl, asked, wk->fence_ns,
		                  (unsigned)(wk->stall_ns / 1000000u));
		atomic_store(&slot->task_id, t->id);
		atomic_store(&slot->attempt, attempt);
		pthread_mutex_unlock(&slot->mu);
		lg->attempt = attempt;
		struct sm_task_result res = { .fails = &fails };
		enum sm_err err = sm_task_run(&wk->w, t, attempt, rep->allow_delete, &sink,
		                              &slot->live, &slot->ctl, &res, &d);
		if (err != SM_OK) {
			/* The whole task failed before any key: report its keys failed. */
			sm_log(SM_LOG_ERROR, "%s", d.msg);
			res.stats.failed = t->n_src;
			res.listing_failed = true;
			res.stopped = atomic_load(&slot->ctl.stop) && !atomic_load(&wk->w.abort);
		}
		if (res.stopped)
			sm_log(SM_LOG_DEBUG, "task %llu: attempt %llu stopped",
			       (unsigned long long)t->id, (unsigned long long)attempt);
		wlog_flush(lg); /* its lines before its Done */
		lg->attempt = 0;
		uint64_t id = t->id;
		/* no more reports of it: one sent after its Done would be
		 * answered "not yours" */
		pthread_mutex_lock(&slot->mu);
		atomic_store(&slot->attempt, 0);
		atomic_store(&slot->task_id, 0);
		pthread_mutex_unlock(&slot->mu);
		err = wk_send_done(wk, s, slot_no, id, attempt, &res, &d);
		sm_task_fails_reset(&fails);
		if (err != SM_OK) {
			wk_lost(wk, &d);
			break;
		}
	}
	wlog_flush(lg);
	sm_log_set_thread_sink(NULL);
out:
	wlog_free_lines(lg);
	sm_wire_arena_release(&lg->arena);
	free(lg);
	sm_wire_arena_release(&ws.arena);
	sm_wire_arena_release(&arena);
}

static void *wk_thread(void *arg)
{
	struct wthread_arg *a = arg;
	struct sm_worker *wk = a->wk;
	struct sm_diag d;
	nng_socket s;
	if (wk_dial(wk, &s, &d) != SM_OK) {
		wk_lost(wk, &d);
	} else {
		wk_thread_run(wk, &wk->slots[a->idx], (uint32_t)a->idx + 1, s);
		nng_close(s);
	}
	free(a);
	/* the last one out wakes the reporter: it says Bye and ends */
	if (atomic_fetch_sub(&wk->running, 1) == 1) {
		pthread_mutex_lock(&wk->stop_mu);
		atomic_store(&wk->stop, true);
		pthread_cond_signal(&wk->stop_cv);
		pthread_mutex_unlock(&wk->stop_mu);
	}
	return NULL;
}

/* ---- the reporter ---- */

/* Stop slot `ws`'s task now (revoked, fenced or the run stopping). */
static void wk_stop_slot(struct wslot *ws)
{
	atomic_store(&ws->ctl.stop, true);
	atomic_store(&ws->ctl.cancel, true);
}

/* Watch slot `ws`'s transfer (slot locked): one that moved no byte for the
 * stall timeout is canceled (and retried by its thread). One that does not
 * come back within another stall timeout (stuck where no cancel reaches)
 * gets its task stopped: no longer renewed, the task goes to another
 * worker when its lease ends, instead of being held forever. */
static void wk_watch_stall(struct sm_worker *wk, struct wslot *ws, uint64_t now)
{
	struct sm_xfer_ctl *c = &ws->ctl;
	unsigned xf = atomic_load(&c->xfers);
	uint64_t mv = atomic_load(&c->moved);
	if (!atomic_load(&c->busy) || xf != ws->stall_xfers || mv != ws->stall_moved) {
		ws->stall_xfers = xf;
		ws->stall_moved = mv;
		ws->stall_since = now;
		return;
	}
	if (now - ws->stall_since < wk->stall_ns)
		return;
	ws->stall_since = now;
	if (atomic_load(&c->stalled)) {
		if (!atomic_load(&c->stop))
			sm_log(SM_LOG_WARN,
			       "task %llu: a stalled transfer does not stop: leaving the task to "
			       "another worker",
			       (unsigned long long)atomic_load(&ws->task_id));
		wk_stop_slot(ws);
		return;
	}
	sm_log(SM_LOG_DEBUG, "task %llu: a transfer moved nothing for %.1f s: canceling it",
	       (unsigned long long)atomic_load(&ws->task_id), (double)wk->stall_ns / 1e9);
	atomic_store(&c->stalled, true);
	atomic_store(&c->cancel, true);
}

/* The worker process ends: tell the manager, which then counts it gone. */
static void wk_bye(struct sm_worker *wk, nng_socket s, struct sm_wire_arena *a)
{
	Syncmgr__Bye bye = SYNCMGR__BYE__INIT;
	Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
	req.body_case = SYNCMGR__REQUEST__BODY_BYE;
	req.bye = &bye;
	Syncmgr__Reply *rep = NULL;
	struct sm_diag d;
	if (wk_call(wk, s, 0, &req, a, false, &rep, NULL, &d) != SM_OK)
		sm_log(SM_LOG_DEBUG, "worker: %s", d.msg);
}

/* Every TASK_REPORT_MS: the progress of every task in flight (renewing its
 * lease), or a heartbeat when idle; stops the tasks the manager took back
 * and those whose lease could not be renewed for the fence time; cancels
 * stalled transfers. Says Bye once every task thread ended. */
static void *wk_reporter(void *arg)
{
	struct sm_worker *wk = arg;
	struct sm_diag d;
	nng_socket s;
	if (wk_dial(wk, &s, &d) != SM_OK) {
		wk_lost(wk, &d);
		return NULL;
	}
	Syncmgr__TaskProgress *tp = calloc((size_t)wk->n, sizeof(*tp));
	Syncmgr__TaskProgress **tpp = calloc((size_t)wk->n, sizeof(*tpp));
	Syncmgr__Stats *st = calloc((size_t)wk->n, sizeof(*st));
	int *idx = calloc((size_t)wk->n, sizeof(*idx));
	struct sm_wire_arena arena;
	sm_wire_arena_init(&arena, sm_wire_max_msg());
	uint64_t last_sent = 0;
	if (!tp || !tpp || !st || !idx)
		goto out;
	for (;;) {
		pthread_mutex_lock(&wk->stop_mu);
		if (!atomic_load(&wk->stop))
			sm_cond_wait_ms(&wk->stop_cv, &wk->stop_mu, TASK_REPORT_MS);
		pthread_mutex_unlock(&wk->stop_mu);
		if (atomic_load(&wk->stop))
			break;
		uint64_t now = sm_now_ns();
		bool abort = atomic_load(&wk->w.abort);
		size_t n = 0;
		for (int i = 0; i < wk->n; i++) {
			struct wslot *ws = &wk->slots[i];
			pthread_mutex_lock(&ws->mu);
			uint64_t attempt = atomic_load(&ws->attempt);
			if (attempt && abort)
				wk_stop_slot(ws); /* within a report period, mid-transfer too */
			if (attempt)
				wk_watch_stall(wk, ws, now);
			if (!attempt || atomic_load(&ws->ctl.stop)) {
				pthread_mutex_unlock(&ws->mu);
				continue; /* idle, or no longer renewed */
			}
			struct sm_stats snap;
#define SNAP(f) snap.f = __atomic_load_n(&ws->live.f, __ATOMIC_RELAXED);
			SM_STATS_FIELDS(SNAP)
#undef SNAP
			sm_wire_stats_to_pb(&snap, &st[n]);
			syncmgr__task_progress__init(&tp[n]);
			tp[n].task_id = atomic_load(&ws->task_id);
			tp[n].attempt = attempt;
			tp[n].stats = &st[n];
			tp[n].moved = atomic_load(&ws->ctl.moved);
			tpp[n] = &tp[n];
			idx[n] = i;
			n++;
			pthread_mutex_unlock(&ws->mu);
		}
		if (!n && now - last_sent < wk->heartbeat_ns)
			continue;
		Syncmgr__Progress pr = SYNCMGR__PROGRESS__INIT;
		pr.n_tasks = n;
		pr.tasks = tpp;
		pr.transfers = atomic_load(&wk->w.transfers);
		Syncmgr__Request req = SYNCMGR__REQUEST__INIT;
		req.body_case = SYNCMGR__REQUEST__BODY_PROGRESS;
		req.progress = &pr;
		Syncmgr__Reply *rep = NULL;
		uint64_t sent = 0;
		if (wk_call(wk, s, 0, &req, &arena, false, &rep, &sent, &d) != SM_OK ||
		    rep->body_case != SYNCMGR__REPLY__BODY_ACK) {
			/* Not renewed: a task whose lease may be someone else's by
			 * now stops writing (another worker may run it). */
			now = sm_now_ns();
			for (size_t k = 0; k < n; k++) {
				struct wslot *ws = &wk->slots[idx[k]];
				pthread_mutex_lock(&ws->mu);
				bool lapsed =
				        atomic_load(&ws->attempt) == tp[k].attempt &&
				        now - atomic_load(&ws->ctl.renewed_ns) >= wk->fence_ns;
				if (lapsed)
					wk_stop_slot(ws);
				pthread_mutex_unlock(&ws->mu);
				if (lapsed)
					sm_log(SM_LOG_WARN,
					       "task %llu: its lease could not be renewed for "
					       "%.1f s (%s): stopping it",
					       (unsigned long long)tp[k].task_id,
					       (double)wk->fence_ns / 1e9, d.msg);
			}
			continue;
		}
		last_sent = sent;
		if (rep->ack->abort)
			atomic_store(&wk->w.abort, true);
		for (size_t k = 0; k < n; k++) {
			struct wslot *ws = &wk->slots[idx[k]];
			bool revoked = false;
			for (size_t r = 0; r < rep->ack->n_revoked_attempts; r++)
				revoked = revoked || rep->ack->revoked_attempts[r] == tp[k].attempt;
			pthread_mutex_lock(&ws->mu);
			bool same = atomic_load(&ws->attempt) == tp[k].attempt;
			if (same && revoked)
				wk_stop_slot(ws);
			else if (same)
				atomic_store(&ws->ctl.renewed_ns, sent);
			pthread_mutex_unlock(&ws->mu);
			if (same && revoked)
				sm_log(SM_LOG_WARN,
				       "task %llu: the manager handed it to another worker: "
				       "stopping it",
				       (unsigned long long)tp[k].task_id);
		}
	}
	wk_bye(wk, s, &arena);
out:
	sm_wire_arena_release(&arena);
	free(tp);
	free(tpp);
	free(st);
	free(idx);
	nng_close(s);
	return NULL;
}

/* ---- start and end ---- */

/* Open one store as the Hello says, with the worker's own pool. */
static enum sm_err wk_open_store(struct sm_worker *wk, const Syncmgr__StoreCfg *pb,
                                 const struct sm_ssh_ops *ssh, struct sm_store **out,
                                 struct sm_diag *d)
{
	if (!pb || !*pb->scheme || memchr(pb->path.data, '\0', pb->path.len) ||
	    memchr(pb->display.data, '\0', pb->display.len))
		return sm_diag_set(d, SM_EINVAL, 0, "configuration: bad store");
	struct sm_url u = { .scheme = pb->scheme, .trailing = pb->trailing };
	u.path = sm_strndup((const char *)pb->path.data, pb->path.len);
	u.display = sm_strndup((const char *)pb->display.data, pb->display.len);
	if (!u.path || !u.display) {
		free(u.path);
		free(u.display);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	struct sm_store_cfg cfg = { .label = *pb->label ? pb->label : NULL,
		                    .follow_links = pb->follow_links,
		                    .read_links = pb->read_links,
		                    .must_exist = pb->must_exist,
		                    .no_https = pb->no_https,
		                    .storage_class = *pb->storage_class ? pb->storage_class : NULL,
		                    .list_cache = pb->list_cache,
		                    .one = pb->one,
		                    .pool = wk->pool,
		                    .ssh = ssh };
	struct sm_store *st = NULL;
	enum sm_err err = sm_store_open(&u, &cfg, &st, d);
	free(u.path);
	free(u.display);
	if (err != SM_OK)
		return sm_diag_prefix(d, "%s", pb->label);
	if (*pb->fault && (err = sm_store_set_fault(st, pb->fault, d)) != SM_OK) {
		sm_store_close(st);
		return err;
	}
	*out = st;
	return SM_OK;
}

/* Free what start() built; accepts a half-built worker. */
static void wk_free(struct sm_worker *wk)
{
	for (int i = 0; i < wk->nslots; i++)
		pthread_mutex_destroy(&wk->slots[i].mu);
	pthread_mutex_destroy(&wk->stop_mu);
	pthread_cond_destroy(&wk->stop_cv);
	pthread_mutex_destroy(&wk->why_mu);
	sm_store_close(wk->dst);
	sm_store_close(wk->src);
	sm_pool_free(wk->pool);
	if (wk->o_set)
		sm_opts_release(&wk->o);
	syncmgr__hello__free_unpacked(wk->hello, NULL);
	free(wk->th);
	free(wk->slots);
	free(wk->url);
	free(wk);
}

/* The worker's own configuration from the Hello. */
static enum sm_err wk_configure(struct sm_worker *wk, const void *hello, size_t len,
                                const struct sm_ssh_ops *ssh, struct sm_diag *d)
{
	if (len > SM_WIRE_MAX_HELLO)
		return sm_diag_set(d, SM_EINVAL, 0, "configuration of %zu bytes: at most %u", len,
		                   SM_WIRE_MAX_HELLO);
	const Syncmgr__Hello *h = wk->hello = syncmgr__hello__unpack(NULL, len, hello);
	if (!h)
		return sm_diag_set(d, SM_EINVAL, 0, "malformed configuration");
	if (h->version != SM_WIRE_VERSION)
		return sm_diag_set(d, SM_EINVAL, 0,
		                   "configuration of protocol version %u (this worker speaks %u)",
		                   h->version, SM_WIRE_VERSION);
	if (h->max_msg != sm_wire_max_msg())
		return sm_diag_set(d, SM_EINVAL, 0,
		                   "the manager's message cap is %u bytes, this worker's %zu",
		                   h->max_msg, sm_wire_max_msg());
	sm_sha256_hex(hello, len, wk->hash);
	if (!h->threads || h->threads > 4096 || !h->lease_ms || !h->url.len ||
	    memchr(h->url.data, '\0', h->url.len))
		return sm_diag_set(d, SM_EINVAL, 0, "configuration: bad threads, lease or address");
	enum sm_err err = sm_wire_opts_from_pb(h->options, &wk->o, d);
	if (err != SM_OK)
		return err;
	wk->o_set = true;
	wk->url = sm_strndup((const char *)h->url.data, h->url.len);
	if (!wk->url)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	err = sm_pool_new((int)h->threads, (size_t)h->pool_budget, &wk->pool, d);
	if (err == SM_OK)
		err = wk_open_store(wk, h->src, ssh, &wk->src, d);
	if (err == SM_OK)
		err = wk_open_store(wk, h->dst, ssh, &wk->dst, d);
	if (err != SM_OK)
		return err;
	sm_wctx_init(&wk->w, &wk->o, wk->src, wk->dst);
	wk->w.name = *h->worker ? h->worker : "local";
	wk->n = (int)h->threads;
	wk->run_id = h->run_id;
	wk->lease_ns = (uint64_t)h->lease_ms * 1000000u;
	wk->recv_ms = h->lease_ms / 4;
	if (wk->recv_ms < TASK_RECV_MIN_MS)
		wk->recv_ms = TASK_RECV_MIN_MS;
	/* a task stops writing a quarter lease before its lease can end */
	wk->fence_ns = wk->lease_ns - wk->lease_ns / 4;
	wk->stall_ns = (uint64_t)(h->stall_ms ? h->stall_ms : TASK_STALL_MS) * 1000000u;
	wk->heartbeat_ns = wk->lease_ns / 10 < (uint64_t)TASK_HEARTBEAT_MS * 1000000u
	                           ? wk->lease_ns / 10
	                           : (uint64_t)TASK_HEARTBEAT_MS * 1000000u;
	return SM_OK;
}

enum sm_err sm_worker_start(const void *hello, size_t len, const struct sm_ssh_ops *ssh,
                            struct sm_worker **out, struct sm_diag *d)
{
	struct sm_worker *wk = calloc(1, sizeof(*wk));
	if (!wk)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	wk->session = sm_rand64() | 1;
	atomic_init(&wk->stop, false);
	atomic_init(&wk->running, 0);
	pthread_mutex_init(&wk->stop_mu, NULL);
	pthread_mutex_init(&wk->why_mu, NULL);
	sm_cond_init_mono(&wk->stop_cv);
	enum sm_err err = wk_configure(wk, hello, len, ssh, d);
	if (err != SM_OK) {
		wk_free(wk);
		return err;
	}
	wk->th = calloc((size_t)wk->n, sizeof(*wk->th));
	wk->slots = calloc((size_t)wk->n, sizeof(*wk->slots));
	if (!wk->th || !wk->slots) {
		wk_free(wk);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	for (int i = 0; i < wk->n; i++)
		pthread_mutex_init(&wk->slots[i].mu, NULL);
	wk->nslots = wk->n;
	atomic_store(&wk->running, wk->n);
	for (int i = 0; i < wk->n; i++) {
		struct wthread_arg *a = malloc(sizeof(*a));
		if (!a) {
			sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto fail;
		}
		*a = (struct wthread_arg){ wk, i };
		if (pthread_create(&wk->th[i], NULL, wk_thread, a) != 0) {
			free(a);
			sm_diag_set(d, SM_ENOMEM, 0, "cannot start worker threads");
			goto fail;
		}
		wk->started++;
	}
	if (pthread_create(&wk->reporter, NULL, wk_reporter, wk) != 0) {
		sm_diag_set(d, SM_ENOMEM, 0, "cannot start the reporter thread");
		goto fail;
	}
	wk->reporter_started = true;
	*out = wk;
	return SM_OK;
fail:
	atomic_store(&wk->w.abort, true);
	atomic_fetch_sub(&wk->running, wk->n - wk->started);
	err = d->err;
	sm_worker_join(wk, NULL);
	return err;
}

enum sm_err sm_worker_join(struct sm_worker *wk, struct sm_diag *d)
{
	if (!wk)
		return SM_OK;
	for (int i = 0; i < wk->started; i++)
		pthread_join(wk->th[i], NULL);
	pthread_mutex_lock(&wk->stop_mu);
	atomic_store(&wk->stop, true);
	pthread_cond_signal(&wk->stop_cv);
	pthread_mutex_unlock(&wk->stop_mu);
	if (wk->reporter_started)
		pthread_join(wk->reporter, NULL);
	enum sm_err err = wk->why.err;
	if (err != SM_OK && d)
		*d = wk->why;
	wk_free(wk);
	return err;
}
