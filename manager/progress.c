#include "progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

#define PROGRESS_TTY_MS 200
#define PROGRESS_LOG_MS 5000

struct sm_progress {
	struct sm_dispatch *dp;
	struct sm_plan_stats *ps;
	bool tty;
	bool log_lines;
	atomic_bool stop;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char line[256];
	bool shown;
	double t0;
	double rate_bytes; /* smoothed bytes/s */
	double rate_keys;  /* smoothed keys/s */
	uint64_t prev_bytes;
	uint64_t prev_keys;
	double prev_t;
};

void sm_progress_totals(struct sm_dispatch *dp, struct sm_plan_stats *ps, struct sm_stats *out)
{
	struct sm_dispatch_snapshot snap;
	sm_dispatch_snapshot(dp, &snap);
	*out = snap.stats;
	out->found += __atomic_load_n(&ps->found, __ATOMIC_RELAXED);
	out->found_bytes += __atomic_load_n(&ps->found_bytes, __ATOMIC_RELAXED);
	out->excluded += __atomic_load_n(&ps->excluded, __ATOMIC_RELAXED);
	out->excluded_bytes += __atomic_load_n(&ps->excluded_bytes, __ATOMIC_RELAXED);
	out->failed += __atomic_load_n(&ps->failed, __ATOMIC_RELAXED);
}

static void progress_clear(void *arg)
{
	struct sm_progress *p = arg;
	if (p->shown)
		fputs("\r\033[K", stderr);
}

static void progress_redraw(void *arg)
{
	struct sm_progress *p = arg;
	if (p->shown) {
		fputs(p->line, stderr);
		fflush(stderr);
	}
}

static void progress_render(struct sm_progress *p, char *buf, size_t n)
{
	struct sm_stats s;
	sm_progress_totals(p->dp, p->ps, &s);
	double now = sm_now_s();
	uint64_t done_keys = s.copied + s.skipped + s.failed + s.lost;
	double dt = now - p->prev_t;
	if (dt > 0.05) {
		/* totals can step back when a re-queued task's live counts
		 * leave the sum: no negative rates */
		double rb = s.copied_bytes > p->prev_bytes
		                    ? (double)(s.copied_bytes - p->prev_bytes) / dt
		                    : 0;
		double rk = done_keys > p->prev_keys ? (double)(done_keys - p->prev_keys) / dt : 0;
		double a = p->prev_t == p->t0 ? 1.0 : 0.3;
		p->rate_bytes = a * rb + (1 - a) * p->rate_bytes;
		p->rate_keys = a * rk + (1 - a) * p->rate_keys;
		p->prev_bytes = s.copied_bytes;
		p->prev_keys = done_keys;
		p->prev_t = now;
	}
	uint64_t handled = done_keys + s.excluded;
	uint64_t pending = s.found > handled ? s.found - handled : 0;
	char cb[32], rate[32], eta[32];
	sm_fmt_size(cb, sizeof(cb), s.copied_bytes);
	sm_fmt_size(rate, sizeof(rate), (uint64_t)(p->rate_bytes > 0 ? p->rate_bytes : 0));
	/* The slower of the two estimates: by keys (small files) and by bytes
	 * (large files in flight). */
	uint64_t done_bytes = s.copied_bytes + s.skipped_bytes;
	uint64_t left_bytes = s.found_bytes > done_bytes ? s.found_bytes - done_bytes : 0;
	double eta_s = -1;
	if (p->rate_keys > 0.5)
		eta_s = (double)pending / p->rate_keys;
	if (p->rate_bytes > 1024 && (double)left_bytes / p->rate_bytes > eta_s)
		eta_s = (double)left_bytes / p->rate_bytes;
	if (eta_s >= 0)
		sm_fmt_duration(eta, sizeof(eta), eta_s);
	else
		snprintf(eta, sizeof(eta), "--");
	snprintf(buf, n,
	         "scanned: %" PRIu64 ", pending: %" PRIu64 ", copied: %" PRIu64
	         " (%s), skipped: %" PRIu64 ", failed: %" PRIu64 ", deleted: %" PRIu64
	         ", %s/s, ETA %s",
	         s.found, pending, s.copied, cb, s.skipped, s.failed, s.deleted, rate, eta);
}

static void *progress_thread(void *arg)
{
	struct sm_progress *p = arg;
	unsigned period = p->tty ? PROGRESS_TTY_MS : PROGRESS_LOG_MS;
	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(period % 1000) * 1000000L;
		ts.tv_sec += period / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		if (atomic_load(&p->stop))
			break;
		char line[256];
		progress_render(p, line, sizeof(line));
		if (p->tty) {
			sm_log_lock();
			progress_clear(p);
			sm_strlcpy(p->line, line, sizeof(p->line));
			p->shown = true;
			progress_redraw(p);
			sm_log_unlock();
		} else if (p->log_lines) {
			sm_log(SM_LOG_NOTICE, "progress: %s", line);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct sm_progress *sm_progress_start(const struct sm_opts *o, struct sm_dispatch *dp,
                                      struct sm_plan_stats *ps)
{
	struct sm_progress *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->dp = dp;
	p->ps = ps;
	p->tty = isatty(STDERR_FILENO) && o->log_level == SM_LOG_NOTICE;
	p->log_lines = o->log_level >= SM_LOG_NOTICE;
	p->t0 = p->prev_t = sm_now_s();
	atomic_init(&p->stop, false);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (p->tty) {
		struct sm_log_hook hook = { progress_clear, progress_redraw, p };
		sm_log_set_hook(&hook);
	}
	if (pthread_create(&p->th, NULL, progress_thread, p) != 0) {
		sm_log_set_hook(NULL);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return NULL;
	}
	return p;
}

void sm_progress_stop(struct sm_progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, true);
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->th, NULL);
	sm_log_lock();
	progress_clear(p);
	p->shown = false;
	sm_log_unlock();
	sm_log_set_hook(NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
