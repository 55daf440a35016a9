#include "progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"

#define PROGRESS_TICK_MS 200    /* a TTY frame, and a sample for the rates */
#define PROGRESS_LOG_MS 5000    /* a log line off a TTY */
#define PROGRESS_WINDOW_S 10.0  /* rates are averages over this long */
#define PROGRESS_MIN_SPAN_S 0.5 /* no rate from less than this */
#define PROGRESS_SAMPLES 64     /* more than a window of ticks */
#define PROGRESS_LINE 512
#define PROGRESS_WIDTH 80 /* when the terminal does not say */

/* What the rates are of, at one moment (or, as a rate, per second). */
struct progress_sample {
	double t;
	double copied_bytes; /* the bytes/s shown */
	double done_bytes;   /* copied + skipped: the ETA's */
	double done_keys;    /* copied, skipped, failed, lost, excluded */
};

struct sm_progress {
	struct sm_dispatch *dp;
	struct sm_plan_stats *ps;
	bool tty;
	bool log_lines;
	bool deletes; /* the run may delete: show the count */
	unsigned log_ms;
	bool started;
	atomic_bool stop;
	pthread_t th;
	pthread_mutex_t mu; /* with cv: wakes the thread to stop; guards phase and acc */
	pthread_cond_t cv;
	const char *phase;          /* after the transfers: "deleting", ... or NULL */
	const struct sm_stats *acc; /* counts of that phase (atomic reads), or NULL */
	char line[PROGRESS_LINE];   /* on screen; under the log lock */
	bool shown;
	double t0;
	struct progress_sample ring[PROGRESS_SAMPLES]; /* the display thread's */
	size_t nsamples;
	size_t next;
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

/* Columns of the terminal on stderr. */
static size_t progress_width(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return PROGRESS_WIDTH;
}

/* Cut `s` to `cols` columns (a UTF-8 sequence is one column). */
static void progress_fit(char *s, size_t cols)
{
	size_t c = 0;
	for (char *q = s; *q; q++) {
		if (((unsigned char)*q & 0xc0) == 0x80)
			continue; /* a continuation byte */
		if (c++ == cols) {
			*q = '\0';
			return;
		}
	}
}

static void progress_push(struct sm_progress *p, const struct progress_sample *s)
{
	p->ring[p->next] = *s;
	p->next = (p->next + 1) % PROGRESS_SAMPLES;
	if (p->nsamples < PROGRESS_SAMPLES)
		p->nsamples++;
}

/* Rates per second over the last PROGRESS_WINDOW_S: the newest sample
 * against the oldest one inside the window, so a pause of a tick does not
 * collapse them and the end of a run keeps its rate. False until the
 * samples span PROGRESS_MIN_SPAN_S. */
static bool progress_rates(const struct sm_progress *p, struct progress_sample *rate)
{
	if (p->nsamples < 2)
		return false;
	const struct progress_sample *now =
	        &p->ring[(p->next + PROGRESS_SAMPLES - 1) % PROGRESS_SAMPLES];
	const struct progress_sample *old = NULL;
	for (size_t i = p->nsamples; i > 1; i--) {
		const struct progress_sample *s =
		        &p->ring[(p->next + PROGRESS_SAMPLES - i) % PROGRESS_SAMPLES];
		if (now->t - s->t <= PROGRESS_WINDOW_S) {
			old = s;
			break;
		}
	}
	if (!old || now->t - old->t < PROGRESS_MIN_SPAN_S)
		return false;
	double dt = now->t - old->t;
	/* totals step back when a re-queued task's live counts leave the sum,
	 * or a failed copy takes its bytes back: no negative rates */
#define RATE(f) rate->f = now->f > old->f ? (now->f - old->f) / dt : 0
	RATE(copied_bytes);
	RATE(done_bytes);
	RATE(done_keys);
#undef RATE
	return true;
}

static double progress_sub(uint64_t a, uint64_t b)
{
	return a > b ? (double)(a - b) : 0;
}

/* One progress line: the figures first (what a narrow terminal keeps),
 * the breakdown after " | ". */
static void progress_render(struct sm_progress *p, char *buf, size_t n)
{
	/* listed before the counts: once it is set, they are the totals */
	bool listed = __atomic_load_n(&p->ps->listed, __ATOMIC_ACQUIRE);
	struct sm_stats s;
	sm_progress_totals(p->dp, p->ps, &s);
	double now = sm_now_s();
	uint64_t done_keys = s.copied + s.skipped + s.failed + s.lost + s.excluded;
	uint64_t done_bytes = s.copied_bytes + s.skipped_bytes;
	struct progress_sample smp = { .t = now,
		                       .copied_bytes = (double)s.copied_bytes,
		                       .done_bytes = (double)done_bytes,
		                       .done_keys = (double)done_keys };
	progress_push(p, &smp);
	struct progress_sample rate;
	bool have_rate = progress_rates(p, &rate);

	pthread_mutex_lock(&p->mu);
	const char *phase = p->phase;
	if (p->acc) {
		s.deleted += __atomic_load_n(&p->acc->deleted, __ATOMIC_RELAXED);
		s.failed += __atomic_load_n(&p->acc->failed, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&p->mu);

	char el[32], cb[32], db[32], tb[32], bps[32], kps[32], eta[32];
	sm_fmt_duration(el, sizeof(el), now - p->t0);
	sm_fmt_size(cb, sizeof(cb), s.copied_bytes);
	sm_fmt_size(db, sizeof(db), done_bytes);
	uint64_t work_bytes =
	        s.found_bytes > s.excluded_bytes ? s.found_bytes - s.excluded_bytes : 0;
	sm_fmt_size(tb, sizeof(tb), listed ? work_bytes : s.found_bytes);
	if (have_rate) {
		sm_fmt_size(bps, sizeof(bps), (uint64_t)rate.copied_bytes);
		snprintf(kps, sizeof(kps), rate.done_keys < 9.95 ? "%.1f" : "%.0f", rate.done_keys);
	} else {
		snprintf(bps, sizeof(bps), "--");
		snprintf(kps, sizeof(kps), "--");
	}
	int len;
	if (phase) {
		len = snprintf(buf, n, "%s... elapsed %s", phase, el);
	} else if (!listed) {
		/* the totals are not known yet: no percentage, no ETA */
		len = snprintf(buf, n,
		               "listing... found %" PRIu64 " (%s), done %" PRIu64
		               " keys, %s, %s/s, elapsed %s, %s keys/s",
		               s.found, tb, done_keys, db, bps, el, kps);
	} else {
		double left_bytes = progress_sub(work_bytes, done_bytes);
		double left_keys = progress_sub(s.found, done_keys);
		/* by bytes (by keys when there are none); 100% only when every
		 * key is done */
		double frac = work_bytes ? (double)done_bytes / (double)work_bytes
		              : s.found  ? (double)done_keys / (double)s.found
		                         : 1.0;
		int pct = frac >= 1.0 ? 100 : (int)(frac * 100);
		if (left_keys > 0 && pct > 99)
			pct = 99;
		if (left_keys == 0)
			pct = 100;
		/* The slower of two estimates: by bytes (large files) and by keys
		 * (small ones); a measure that did not move in the window (the
		 * keys while one large file goes) gives none. */
		double eta_s = left_bytes == 0 && left_keys == 0 ? 0 : -1;
		if (have_rate && left_bytes > 0 && rate.done_bytes > 0)
			eta_s = left_bytes / rate.done_bytes;
		if (have_rate && left_keys > 0 && rate.done_keys > 0 &&
		    left_keys / rate.done_keys > eta_s)
			eta_s = left_keys / rate.done_keys;
		sm_fmt_duration(eta, sizeof(eta), eta_s);
		len = snprintf(buf, n,
		               "%d%%, %" PRIu64 "/%" PRIu64
		               " keys, %s/%s, %s/s, ETA %s, elapsed %s, "
		               "%s keys/s",
		               pct, done_keys, s.found, db, tb, bps, eta, el, kps);
	}
	size_t off = len < 0 ? 0 : (size_t)len;
	uint64_t pending = s.found > done_keys ? s.found - done_keys : 0;
	if (off < n)
		off += (size_t)snprintf(buf + off, n - off,
		                        " | copied %" PRIu64 " (%s), skipped %" PRIu64
		                        ", failed %" PRIu64 ", pending %" PRIu64,
		                        s.copied, cb, s.skipped, s.failed, pending);
	if (off < n && (p->deletes || s.deleted))
		off += (size_t)snprintf(buf + off, n - off, ", deleted %" PRIu64, s.deleted);
	if (off < n && s.lost)
		snprintf(buf + off, n - off, ", lost %" PRIu64, s.lost);
}

static void *progress_thread(void *arg)
{
	struct sm_progress *p = arg;
	double last_log = p->t0;
	/* a log period shorter than a tick (tests) shortens the tick too */
	unsigned tick = p->log_ms < PROGRESS_TICK_MS ? p->log_ms : PROGRESS_TICK_MS;
	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop)) {
		sm_cond_wait_ms(&p->cv, &p->mu, tick);
		if (atomic_load(&p->stop))
			break;
		pthread_mutex_unlock(&p->mu);
		char line[PROGRESS_LINE];
		progress_render(p, line, sizeof(line)); /* a sample for the rates too */
		if (p->tty) {
			/* one line that never wraps, so "\r" goes back to its start */
			size_t w = progress_width();
			progress_fit(line, w > 1 ? w - 1 : 1);
			sm_log_lock();
			progress_clear(p);
			sm_strlcpy(p->line, line, sizeof(p->line));
			p->shown = true;
			progress_redraw(p);
			sm_log_unlock();
		} else if (p->log_lines && sm_now_s() - last_log >= p->log_ms / 1000.0) {
			last_log = sm_now_s();
			sm_log(SM_LOG_NOTICE, "progress: %s", line);
		}
		pthread_mutex_lock(&p->mu);
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
	p->deletes = o->delete_dst || o->delete_src || o->delete_src_after;
	p->log_ms = PROGRESS_LOG_MS;
	/* tests shorten the period of the log lines, and of the frames when
	 * shorter than their 200 ms (left out of --help) */
	int64_t ms = 0;
	const char *env = getenv("SYNCMGR_PROGRESS_MS");
	if (env && sm_parse_i64(env, 1, 3600000, &ms))
		p->log_ms = (unsigned)ms;
	p->t0 = sm_now_s();
	atomic_init(&p->stop, false);
	pthread_mutex_init(&p->mu, NULL);
	sm_cond_init_mono(&p->cv);
	if (!p->tty && !p->log_lines)
		return p; /* -q off a TTY: nothing to show */
	if (p->tty) {
		struct sm_log_hook hook = { progress_clear, progress_redraw, p };
		sm_log_set_hook(&hook);
	}
	if (pthread_create(&p->th, NULL, progress_thread, p) != 0) {
		sm_log_set_hook(NULL);
		return p; /* the run goes on without a display */
	}
	p->started = true;
	return p;
}

void sm_progress_phase(struct sm_progress *p, const char *phase, const struct sm_stats *acc)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->phase = phase;
	p->acc = acc;
	pthread_mutex_unlock(&p->mu);
}

void sm_progress_stop(struct sm_progress *p)
{
	if (!p)
		return;
	if (p->started) {
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
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
