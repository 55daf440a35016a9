#include "xfer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

#define XFER_CMP_BUF (256u << 10)
#define XFER_RETRY_BUDGET_MS 15000u

void sm_wctx_init(struct sm_wctx *w, const struct sm_opts *o, struct sm_store *src,
                  struct sm_store *dst)
{
	w->o = o;
	w->src = src;
	w->dst = dst;
	w->owners = o->perms && geteuid() == 0 && src && dst && sm_store_has(src, SM_CAP_LOCAL) &&
	            sm_store_has(dst, SM_CAP_LOCAL);
	atomic_init(&w->abort, false);
	atomic_init(&w->failed, 0);
	w->max_attempts = 4;
	w->backoff_ms = 50;
	sm_retry_health_init(&w->health);
	w->name = "local";
	w->umask = sm_umask();
	atomic_init(&w->transfers, 0);
}

void sm_xfer_ctl_reset(struct sm_xfer_ctl *c, uint64_t now_ns, uint64_t fence_ns, unsigned stall_ms)
{
	atomic_store(&c->stop, false);
	atomic_store(&c->cancel, false);
	atomic_store(&c->stalled, false);
	atomic_store(&c->busy, false);
	atomic_store(&c->moved, 0);
	atomic_store(&c->renewed_ns, now_ns);
	c->fence_ns = fence_ns;
	c->dirs = (struct sm_xfer_dirs){ 0 };
	c->stall_ms = stall_ms;
}

#define XFER_FENCE_POLL_MS 5

bool sm_xfer_ctl_go(struct sm_xfer_ctl *c)
{
	if (!c)
		return true;
	uint64_t waited = 0;
	for (;;) {
		if (atomic_load(&c->stop))
			return false;
		if (!c->fence_ns)
			return true;
		uint64_t now = sm_now_ns();
		uint64_t renewed = atomic_load(&c->renewed_ns);
		if (now < renewed + c->fence_ns)
			return true;
		/* The lease may be someone else's by now (this process was
		 * stopped, or the manager did not answer): no write until the
		 * reporter hears from the manager. It stops the task if the
		 * manager took it back or cannot be reached. */
		if (waited >= c->fence_ns) {
			atomic_store(&c->stop, true);
			atomic_store(&c->cancel, true);
			return false;
		}
		sm_sleep_ms(XFER_FENCE_POLL_MS);
		waited += XFER_FENCE_POLL_MS * 1000000u;
	}
}

/* Where a transfer hears that it must stop. */
static const atomic_bool *xfer_stop_flag(struct sm_wctx *w, struct sm_xfer_ctl *ctl)
{
	return ctl ? &ctl->cancel : &w->abort;
}

static bool xfer_stopping(struct sm_wctx *w, struct sm_xfer_ctl *ctl)
{
	return atomic_load(&w->abort) || (ctl && atomic_load(&ctl->stop));
}

/* A transfer came back canceled because it stalled (and the task goes on):
 * a retryable failure. */
static enum sm_err xfer_unstall(struct sm_xfer_ctl *ctl, enum sm_err err, const char *key,
                                struct sm_diag *d)
{
	if (err != SM_ECANCELED || !ctl || !atomic_load(&ctl->stalled) || atomic_load(&ctl->stop))
		return err;
	atomic_store(&ctl->stalled, false);
	atomic_store(&ctl->cancel, false);
	return sm_diag_set(d, SM_EAGAIN, 0, "'%s': no byte moved for %u s: stalled", key,
	                   (ctl->stall_ms + 999) / 1000);
}

void sm_wctx_count_failure(struct sm_wctx *w)
{
	uint64_t n = atomic_fetch_add(&w->failed, 1) + 1;
	if (w->o->max_failure > 0 && n >= (uint64_t)w->o->max_failure &&
	    !atomic_exchange(&w->abort, true))
		sm_log(SM_LOG_ERROR, "%llu keys failed (--max-failure %lld): stopping",
		       (unsigned long long)n, (long long)w->o->max_failure);
}

bool sm_wctx_stop_on(struct sm_wctx *w, const struct sm_diag *d)
{
	if (d->err != SM_EFATAL)
		return false;
	if (!atomic_exchange(&w->abort, true))
		sm_log(SM_LOG_ERROR, "%s", d->msg);
	return true;
}

/* Another attempt of an operation on `key` (common/retry.h): at least
 * max_attempts, and while the run's transfers succeeded lately, for up to
 * XFER_RETRY_BUDGET_MS, so a short outage of a store costs no key. */
static bool xfer_again(struct sm_wctx *w, struct sm_xfer_ctl *ctl, enum sm_err err, int attempt,
                       uint64_t t0, const char *key, const struct sm_diag *d)
{
	if (err == SM_OK) {
		sm_retry_ok(&w->health);
		return false;
	}
	struct sm_retry pol = { .min_attempts = (unsigned)w->max_attempts,
		                .budget_ms = XFER_RETRY_BUDGET_MS,
		                .base_ms = w->backoff_ms,
		                .cap_ms = 2000,
		                .health = &w->health };
	if (xfer_stopping(w, ctl) || !sm_retry_should(&pol, err, attempt, t0))
		return false;
	sm_log(SM_LOG_INFO, "retrying '%s' (attempt %d): %s", key, attempt + 1, d->msg);
	sm_retry_backoff(&pol, attempt);
	return true;
}

/* A transfer of the task under `ctl` begins or ends: the reporter watches
 * its bytes for a stall. */
static void xfer_busy(struct sm_xfer_ctl *ctl, bool on)
{
	if (!ctl)
		return;
	if (on)
		atomic_fetch_add(&ctl->xfers, 1);
	atomic_store(&ctl->busy, on);
}

/* A reader that forwards to another and counts bytes for progress. */
struct count_reader {
	struct sm_reader base;
	struct sm_reader *in;
	const char *key;
	uint64_t *live;
	uint64_t n;
	struct sm_wctx *w;
	struct sm_xfer_ctl *ctl; /* may be NULL */
};

static void cr_count(struct count_reader *cr, uint64_t n)
{
	cr->n += n;
	if (cr->live)
		__atomic_fetch_add(cr->live, n, __ATOMIC_RELAXED);
	if (cr->ctl)
		atomic_fetch_add(&cr->ctl->moved, n);
}

static enum sm_err cr_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                           struct sm_diag *d)
{
	struct count_reader *cr = (struct count_reader *)r;
	/* between chunks: the run stopping, the task revoked or stalled, or
	 * its lease not known to be its own (the last read, which ends the
	 * data, comes before the destination commits) */
	enum sm_err err = sm_reader_check_stop(r, cr->key, d);
	if (err == SM_OK && (atomic_load(&cr->w->abort) || !sm_xfer_ctl_go(cr->ctl)))
		err = sm_diag_set(d, SM_ECANCELED, 0, "'%s': stopped midway", cr->key);
	if (err != SM_OK)
		return err;
	err = sm_reader_read(cr->in, buf, cap, got, d);
	if (err == SM_OK)
		cr_count(cr, *got);
	return err;
}

static int cr_fd(struct sm_reader *r, uint64_t *off)
{
	return sm_reader_fd(((struct count_reader *)r)->in, off);
}

static void cr_consumed(struct sm_reader *r, uint64_t n)
{
	struct count_reader *cr = (struct count_reader *)r;
	sm_reader_consumed(cr->in, n);
	cr_count(cr, n);
}

static enum sm_err cr_finish(struct sm_reader *r, struct sm_diag *d)
{
	return sm_reader_finish(((struct count_reader *)r)->in, d);
}

static void cr_close(struct sm_reader *r)
{
	(void)r; /* the inner reader belongs to the caller */
}

static const struct sm_reader_ops count_reader_ops = {
	.read = cr_read,
	.fd = cr_fd,
	.consumed = cr_consumed,
	.finish = cr_finish,
	.close = cr_close,
};

static struct sm_put xfer_attrs(const struct sm_wctx *w, const struct sm_entry *src)
{
	struct sm_put p = { .mode = src->mode,
		            .uid = src->uid,
		            .gid = src->gid,
		            .mtime_ns = src->mtime_ns,
		            .flags = SM_PUT_MTIME };
	if (w->o->perms)
		p.flags |= SM_PUT_MODE | (geteuid() == 0 ? SM_PUT_OWNER : 0);
	if (w->o->inplace)
		p.flags |= SM_PUT_INPLACE;
	/* Every copy checks at the end that SRC did not change while it was
	 * read: a mixed or stale copy is never committed with SRC's mtime. */
	p.flags |= SM_PUT_CHECK;
	/* SRC keys go only once their copies are durable: a remote DST without
	 * syncfs (SFTP) fsyncs each file then */
	if (w->o->fsync ||
	    ((w->o->delete_src || w->o->delete_src_after) && !sm_store_has(w->dst, SM_CAP_LOCAL)))
		p.flags |= SM_PUT_FSYNC;
	return p;
}

/* p->made of a copy: a directory it made, for the task's notes. */
static void xfer_made(void *arg, const char *dkey)
{
	const struct sm_xfer_dirs *dirs = arg;
	dirs->note(dirs->arg, dkey, true, 0);
}

static enum sm_err xfer_copy_once(struct sm_wctx *w, struct sm_xfer_ctl *ctl,
                                  const struct sm_entry *src, const char *dst_key, uint64_t *live,
                                  uint64_t *counted, struct sm_diag *d)
{
	struct sm_put p = xfer_attrs(w, src);
	if (ctl && ctl->dirs.note) {
		p.made = xfer_made;
		p.made_arg = &ctl->dirs;
	}
	/* refuse a key that would escape DST before reading anything */
	enum sm_err kerr = sm_store_key_check(w->dst, dst_key, d);
	if (kerr != SM_OK)
		return sm_diag_label(d, kerr, w->dst->cfg.label);
	if (S_ISDIR(src->mode)) {
		p.flags &= ~(unsigned)SM_PUT_MTIME; /* once its children are in */
		return sm_store_mkdir(w->dst, dst_key, &p, d);
	}
	if (S_ISLNK(src->mode)) {
		if (!src->link)
			return sm_diag_set(d, SM_EINVAL, 0, "symlink '%s' has no target", src->key);
		return sm_store_symlink(w->dst, dst_key, src->link, &p, d);
	}
	/* same backend, same service: let the server copy (S3 CopyObject);
	 * one that goes in parts counts them as they are done, the rest counts
	 * at the end. `live` is this task's: only this thread adds to it. */
	uint64_t mark = live ? __atomic_load_n(live, __ATOMIC_RELAXED) : 0;
	p.progress = live;
	p.stop = xfer_stop_flag(w, ctl);
	enum sm_err err = sm_store_copy(w->dst, dst_key, w->src, src->key, src, &p, d);
	p.progress = NULL;
	p.stop = NULL;
	uint64_t parts = live ? __atomic_load_n(live, __ATOMIC_RELAXED) - mark : 0;
	*counted += parts;
	if (err == SM_OK && parts < src->size) {
		if (live)
			__atomic_fetch_add(live, src->size - parts, __ATOMIC_RELAXED);
		*counted += src->size - parts;
	}
	if (err != SM_ENOTSUP)
		return err;
	struct sm_reader *r = NULL;
	err = sm_store_open_entry(w->src, src, &r, d);
	if (err != SM_OK)
		return err;
	if (r->has_mtime)
		p.mtime_ns = r->mtime_ns; /* e.g. S3's x-amz-meta-mtime: the original's */
	/* the transfer stops between chunks when the run or the task does */
	struct count_reader cr = { .base = { .ops = &count_reader_ops,
		                             .size = r->size,
		                             .stop = xfer_stop_flag(w, ctl),
		                             .pool_held = r->pool_held,
		                             .meta = r->meta,
		                             .label = r->label,
		                             .name = src->key },
		                   .in = r,
		                   .key = src->key,
		                   .live = live,
		                   .w = w,
		                   .ctl = ctl };
	xfer_busy(ctl, true);
	err = sm_store_put(w->dst, dst_key, &cr.base, &p, d);
	xfer_busy(ctl, false);
	*counted += cr.n;
	sm_reader_close(r);
	return err;
}

/*
 * A non-root run refused a write below a DST directory without write or
 * search permission for its owner: a read-only SRC directory an earlier run
 * copied. Open each such directory above `key` that this user owns for the
 * owner, noting its mode for the end of the run, where it is SRC's too
 * (or its mode follows SRC's: --dirs --perms), as rsync does; a DST
 * directory the user made read-only itself stays so. True when one was
 * opened (the write is worth another try).
 */
static bool xfer_src_dir_closed(struct sm_wctx *w, const char *dk)
{
	struct sm_entry e = { 0 };
	struct sm_diag sd;
	bool closed = sm_store_stat(w->src, dk, &e, &sd) == SM_OK && S_ISDIR(e.mode) &&
	              ((e.mode & 0300) != 0300 || (w->o->dirs && w->o->perms));
	sm_entry_release(&e);
	return closed;
}

static bool xfer_open_dirs(struct sm_wctx *w, struct sm_xfer_ctl *ctl, const char *key)
{
	if (geteuid() == 0 || !ctl || !ctl->dirs.note || !sm_store_has(w->dst, SM_CAP_DIRS))
		return false;
	size_t n = strlen(key);
	char *dk = malloc(n + 1);
	if (!dk)
		return false;
	memcpy(dk, key, n + 1);
	bool opened = false;
	for (;;) {
		/* the parent of dk[0..n): "a/b/" of "a/b/c" or "a/b/c/", "" at last */
		while (n && dk[n - 1] == '/')
			n--;
		while (n && dk[n - 1] != '/')
			n--;
		dk[n] = '\0';
		struct sm_entry e = { 0 };
		struct sm_diag sd;
		if (sm_store_stat(w->dst, dk, &e, &sd) == SM_OK && S_ISDIR(e.mode) &&
		    e.uid == geteuid() && (e.mode & 0300) != 0300 && xfer_src_dir_closed(w, dk)) {
			struct sm_put p = { .mode = e.mode | 0700, .flags = SM_PUT_MODE };
			if (sm_store_setattr(w->dst, dk, &p, &sd) == SM_OK) {
				sm_log(SM_LOG_DEBUG, "opened DST directory '%s' for writing", dk);
				ctl->dirs.note(ctl->dirs.arg, dk, false, e.mode & 07777);
				opened = true;
			}
		}
		sm_entry_release(&e);
		if (!n)
			break;
	}
	free(dk);
	return opened;
}

enum sm_err sm_xfer_copy(struct sm_wctx *w, struct sm_xfer_ctl *ctl, const struct sm_entry *src,
                         const char *dst_key, uint64_t *live, struct sm_diag *d)
{
	enum sm_err err;
	uint64_t t0 = sm_now_ns();
	bool opened = false;
	for (int attempt = 1;; attempt++) {
		uint64_t counted = 0;
		err = xfer_copy_once(w, ctl, src, dst_key, live, &counted, d);
		err = xfer_unstall(ctl, err, src->key, d);
		if (err != SM_OK && live && counted)
			__atomic_fetch_sub(live, counted, __ATOMIC_RELAXED);
		if (err == SM_EACCES && !opened) {
			opened = true;
			if (xfer_open_dirs(w, ctl, dst_key)) {
				attempt--;
				continue;
			}
		}
		/* Changed while it was read: nothing was committed. --check-change
		 * fails the key; otherwise read it again, a few times. */
		if (err == SM_ECHANGED && !w->o->check_change && attempt < w->max_attempts &&
		    !xfer_stopping(w, ctl)) {
			sm_log(SM_LOG_INFO, "'%s' changed while it was copied: copying it again",
			       src->key);
			continue;
		}
		if (!xfer_again(w, ctl, err, attempt, t0, src->key, d))
			break;
	}
	return err;
}

static enum sm_err xfer_compare_once(struct sm_wctx *w, struct sm_xfer_ctl *ctl, const char *key,
                                     const char *dst_key, struct sm_diag *d)
{
	struct sm_reader *a = NULL, *b = NULL;
	char *ba = NULL, *bb = NULL;
	enum sm_err err = sm_store_open_read(w->src, key, 0, &a, d);
	if (err != SM_OK)
		return err;
	err = sm_store_open_read(w->dst, dst_key, 0, &b, d);
	if (err != SM_OK)
		goto out;
	ba = malloc(XFER_CMP_BUF);
	bb = malloc(XFER_CMP_BUF);
	if (!ba || !bb) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	xfer_busy(ctl, true);
	for (;;) {
		size_t na = 0, nb = 0;
		/* between chunks, like a copy: stop, stall, lease */
		if (atomic_load(xfer_stop_flag(w, ctl)) || atomic_load(&w->abort) ||
		    !sm_xfer_ctl_go(ctl)) {
			err = sm_diag_set(d, SM_ECANCELED, 0, "'%s': stopped midway", key);
			goto out;
		}
		err = sm_reader_read_full(a, ba, XFER_CMP_BUF, &na, d);
		if (err == SM_OK)
			err = sm_reader_read_full(b, bb, XFER_CMP_BUF, &nb, d);
		if (err != SM_OK)
			goto out;
		if (ctl)
			atomic_fetch_add(&ctl->moved, na + nb);
		if (na != nb || memcmp(ba, bb, na) != 0) {
			err = sm_diag_set(d, SM_EDIFFER, 0, "'%s' differs between SRC and DST",
			                  key);
			goto out;
		}
		if (na < XFER_CMP_BUF)
			break;
	}
out:
	xfer_busy(ctl, false);
	free(ba);
	free(bb);
	sm_reader_close(b);
	sm_reader_close(a);
	return err;
}

enum sm_err sm_xfer_compare(struct sm_wctx *w, struct sm_xfer_ctl *ctl, const char *key,
                            const char *dst_key, struct sm_diag *d)
{
	enum sm_err err;
	uint64_t t0 = sm_now_ns();
	for (int attempt = 1;; attempt++) {
		err = xfer_compare_once(w, ctl, key, dst_key, d);
		err = xfer_unstall(ctl, err, key, d);
		if (!xfer_again(w, ctl, err, attempt, t0, key, d))
			break;
	}
	return err;
}

enum sm_err sm_xfer_setattr(struct sm_wctx *w, const struct sm_entry *src, const char *dst_key,
                            struct sm_diag *d)
{
	struct sm_put p = xfer_attrs(w, src);
	p.flags &= ~(unsigned)(SM_PUT_MTIME | SM_PUT_INPLACE | SM_PUT_CHECK);
	enum sm_err err;
	uint64_t t0 = sm_now_ns();
	for (int attempt = 1;; attempt++) {
		err = sm_store_setattr(w->dst, dst_key, &p, d);
		if (!xfer_again(w, NULL, err, attempt, t0, dst_key, d))
			break;
	}
	return err;
}

enum sm_err sm_xfer_setattr_dir(struct sm_wctx *w, const char *dkey, const struct sm_put *p,
                                struct sm_diag *d)
{
	enum sm_err err;
	uint64_t t0 = sm_now_ns();
	for (int attempt = 1;; attempt++) {
		err = sm_store_setattr(w->dst, dkey, p, d);
		if (!xfer_again(w, NULL, err, attempt, t0, dkey, d))
			break;
	}
	return err;
}

enum sm_err sm_xfer_delete(struct sm_wctx *w, struct sm_store *st, const char *key,
                           struct sm_diag *d)
{
	enum sm_err err;
	uint64_t t0 = sm_now_ns();
	for (int attempt = 1;; attempt++) {
		err = sm_store_del(st, key, d);
		if (!xfer_again(w, NULL, err, attempt, t0, key, d))
			break;
	}
	return err;
}
