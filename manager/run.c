#include "run.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/pool.h"
#include "../common/store/store.h"
#include "../common/url.h"
#include "../common/util.h"
#include "../deploy/ssh.h"
#include "../worker/task.h"
#include "../worker/wire.h"
#include "../worker/xfer.h"
#include "dispatch.h"
#include "journal.h"
#include "metrics.h"
#include "plan.h"
#include "progress.h"
#include "report.h"

#define RUN_LEASE_MS 30000
/* Buffers the transfer pool's parallel pieces (parts, ranges) may hold
 * beyond each transfer's first. */
#define RUN_POOL_BUDGET (64u << 20)
/* Bytes of DST directory listings kept for reuse beyond those in use: half
 * the 64 MiB RSS goal. A listing takes at most ~8 MiB in memory; a huge
 * directory's is sorted on disk and charged its index and an eighth of its
 * disk bytes (common/store/dirtab.c). */
#define RUN_LIST_CACHE ((size_t)32 << 20)

/* What preflight found out about SRC and DST. */
struct run_plan {
	struct sm_url src;
	struct sm_url dst;
	char *single_key;     /* SRC is one file: its name, under src.path's dir */
	char *single_dst_key; /* and its name on DST */
};

static void run_plan_release(struct run_plan *rp)
{
	sm_url_release(&rp->src);
	sm_url_release(&rp->dst);
	free(rp->single_key);
	free(rp->single_dst_key);
}

static bool run_path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);
	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

/* Split "dir/name" into a store root and a key; SRC "file" → ".", "file". */
static int run_split(const char *path, char **dir, char **name)
{
	char a[PATH_MAX], b[PATH_MAX];
	if (sm_strlcpy(a, path, sizeof(a)) >= sizeof(a))
		return -1;
	sm_strlcpy(b, path, sizeof(b));
	*dir = strdup(dirname(a));
	*name = strdup(basename(b));
	return *dir && *name ? 0 : -1;
}

/* DST must be writable: the nearest existing ancestor when it does not exist. */
static int run_check_writable(const struct run_plan *rp, const char *real)
{
	char probe[PATH_MAX];
	sm_strlcpy(probe, real, sizeof(probe));
	while (access(probe, F_OK) != 0 && strcmp(probe, "/") != 0) {
		char *s = strrchr(probe, '/');
		if (s == probe)
			s[1] = '\0';
		else
			*s = '\0';
	}
	if (access(probe, W_OK) != 0) {
		struct sm_diag d;
		sm_diag_errno(&d, errno, "DST '%s'", rp->dst.display);
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		return SM_EXIT_FAIL;
	}
	return -1;
}

/* Checks before anything is written. Returns an exit status, or -1 to go on. */
static int run_preflight(const struct sm_opts *o, struct run_plan *rp)
{
	struct sm_diag d;
	enum sm_err perr = sm_url_parse(o->src, &rp->src, &d);
	if (perr == SM_OK)
		perr = sm_url_parse(o->dst, &rp->dst, &d);
	if (perr != SM_OK) {
		/* a malformed URL is a usage error; missing credentials are not */
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		return perr == SM_EINVAL || perr == SM_ENOTSUP ? SM_EXIT_USAGE : SM_EXIT_FAIL;
	}
	if (rp->src.trailing != rp->dst.trailing) {
		fprintf(stderr, "syncmgr: SRC '%s' and DST '%s' must both end in '/' or both not\n",
		        rp->src.display, rp->dst.display);
		return SM_EXIT_USAGE;
	}
	if (strcmp(rp->src.scheme, "file") != 0 || strcmp(rp->dst.scheme, "file") != 0)
		return -1; /* run_open() checks the stores once they are open */
	/* Local SRC: it must exist; a plain file is a single-object run. */
	struct stat sst;
	if (stat(rp->src.path, &sst) != 0) {
		sm_diag_errno(&d, errno, "SRC '%s'", rp->src.display);
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		return SM_EXIT_FAIL;
	}
	struct stat dstst;
	bool dst_exists = stat(rp->dst.path, &dstst) == 0;
	if (!S_ISDIR(sst.st_mode)) {
		if (rp->src.trailing || !S_ISREG(sst.st_mode)) {
			fprintf(stderr, "syncmgr: SRC '%s': not a directory\n", rp->src.display);
			return SM_EXIT_FAIL;
		}
		char *sdir = NULL, *sname = NULL, *ddir = NULL, *dname = NULL;
		if (run_split(rp->src.path, &sdir, &sname) != 0) {
			free(sdir);
			free(sname);
			fprintf(stderr, "syncmgr: SRC '%s': path too long\n", rp->src.display);
			return SM_EXIT_USAGE;
		}
		if (dst_exists && S_ISDIR(dstst.st_mode)) {
			ddir = strdup(rp->dst.path); /* like cp: into the directory */
			dname = strdup(sname);
		} else if (run_split(rp->dst.path, &ddir, &dname) != 0) {
			free(ddir);
			free(dname);
			ddir = dname = NULL;
		}
		if (!ddir || !dname) {
			free(sdir);
			free(sname);
			free(ddir);
			free(dname);
			fprintf(stderr, "syncmgr: DST '%s': path too long\n", rp->dst.display);
			return SM_EXIT_USAGE;
		}
		free(rp->src.path);
		free(rp->dst.path);
		rp->src.path = sdir;
		rp->dst.path = ddir;
		rp->single_key = sname;
		rp->single_dst_key = dname;
	} else if (dst_exists && !S_ISDIR(dstst.st_mode)) {
		fprintf(stderr, "syncmgr: DST '%s': not a directory\n", rp->dst.display);
		return SM_EXIT_FAIL;
	}
	/* Neither tree may contain the other (unless one file is synced). */
	char *rs = sm_realpath_loose(rp->src.path);
	char *rd = sm_realpath_loose(rp->dst.path);
	int status = -1;
	if (!rs || !rd) {
		fprintf(stderr, "syncmgr: cannot resolve SRC '%s' or DST '%s'\n", rp->src.display,
		        rp->dst.display);
		status = SM_EXIT_FAIL;
	} else if (!rp->single_key && (run_path_within(rd, rs) || sm_path_overlap(rs, rd) == 1)) {
		fprintf(stderr, "syncmgr: DST '%s' is inside SRC '%s'\n", rp->dst.display,
		        rp->src.display);
		status = SM_EXIT_USAGE;
	} else if (!rp->single_key && (run_path_within(rs, rd) || sm_path_overlap(rs, rd) == 2)) {
		fprintf(stderr, "syncmgr: SRC '%s' is inside DST '%s'\n", rp->src.display,
		        rp->dst.display);
		status = SM_EXIT_USAGE;
	} else if (rp->single_key &&
	           (strcmp(rs, rd) == 0 ||
	            (sm_path_overlap(rs, rd) == 1 && sm_path_overlap(rd, rs) == 1)) &&
	           strcmp(rp->single_key, rp->single_dst_key) == 0) {
		fprintf(stderr, "syncmgr: SRC '%s' and DST '%s' are the same file\n",
		        rp->src.display, rp->dst.display);
		status = SM_EXIT_USAGE;
	}
	if (status < 0 && !o->dry && rd)
		status = run_check_writable(rp, rd);
	free(rs);
	free(rd);
	return status;
}

/* A run with a remote store: what run_preflight() checks of local paths,
 * asked of the open stores (SPEC.md §1, one object; neither tree inside the
 * other; DST writable). Returns an exit status, or -1 to go on. */
static int run_check_stores(const struct sm_opts *o, struct run_plan *rp, struct sm_store *src,
                            struct sm_store *dst)
{
	if (src->one) {
		if (!(rp->single_key = strdup(src->one)) ||
		    !(rp->single_dst_key = strdup(dst->one ? dst->one : src->one))) {
			fprintf(stderr, "syncmgr: out of memory\n");
			return SM_EXIT_FAIL;
		}
		if (sm_store_overlap(src, dst) && strcmp(src->where, dst->where) == 0 &&
		    strcmp(rp->single_key, rp->single_dst_key) == 0) {
			fprintf(stderr, "syncmgr: SRC '%s' and DST '%s' are the same object\n",
			        rp->src.display, rp->dst.display);
			return SM_EXIT_USAGE;
		}
	} else {
		int ov = sm_store_overlap(src, dst);
		if (ov) {
			fprintf(stderr, "syncmgr: %s '%s' is inside %s '%s'\n",
			        ov == 1 ? "DST" : "SRC",
			        ov == 1 ? rp->dst.display : rp->src.display,
			        ov == 1 ? "SRC" : "DST",
			        ov == 1 ? rp->src.display : rp->dst.display);
			return SM_EXIT_USAGE;
		}
	}
	struct sm_diag d;
	if (!o->dry && sm_store_writable(dst, &d) != SM_OK) {
		fprintf(stderr, "syncmgr: %s\n", d.msg); /* "DST: ..." */
		return SM_EXIT_FAIL;
	}
	return -1;
}

/*
 * SIGINT and SIGTERM. The first stops the run cleanly: no more work is handed
 * out, transfers stop between chunks and remove what they began (temp files,
 * multipart uploads), nothing is deleted, the summary is printed, exit 1. A
 * second one exits at once. The signals are blocked in every thread and one
 * thread waits for them; SIGUSR2 from the run itself ends that thread.
 */
struct run_signals {
	sigset_t set;
	sigset_t old;
	bool blocked;
	pthread_t th;
	bool started;
	pthread_mutex_t mu; /* dp and w, published once the run has them */
	struct sm_dispatch *dp;
	struct sm_wctx *w;
	atomic_bool hit;
	atomic_bool stopping; /* the run is over: SIGUSR2 ends the thread */
};

static void *run_sig_thread(void *arg)
{
	struct run_signals *rs = arg;
	for (;;) {
		int sig = 0;
		if (sigwait(&rs->set, &sig) != 0)
			continue;
		if (sig == SIGUSR2) {
			if (atomic_load(&rs->stopping))
				return NULL;
			continue;
		}
		if (atomic_exchange(&rs->hit, true)) {
			static const char msg[] = "syncmgr: interrupted again: exiting now\n";
			ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
			(void)n;
			_exit(SM_EXIT_FAIL);
		}
		pthread_mutex_lock(&rs->mu);
		if (!rs->w) {
			/* before the first transfer: nothing to clean up */
			static const char msg[] = "syncmgr: interrupted\n";
			ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
			(void)n;
			_exit(SM_EXIT_FAIL);
		}
		sm_log(SM_LOG_ERROR, "interrupted (%s): stopping; interrupt again to exit at once",
		       sig == SIGINT ? "SIGINT" : "SIGTERM");
		atomic_store(&rs->w->abort, true);
		sm_dispatch_abort(rs->dp);
		pthread_mutex_unlock(&rs->mu);
	}
}

/* Block the signals in this thread and every thread it starts, and start the
 * thread that waits for them (without it, they are not blocked). */
static void run_signals_start(struct run_signals *rs)
{
	pthread_mutex_init(&rs->mu, NULL);
	sigemptyset(&rs->set);
	sigaddset(&rs->set, SIGINT);
	sigaddset(&rs->set, SIGTERM);
	sigaddset(&rs->set, SIGUSR2);
	rs->blocked = pthread_sigmask(SIG_BLOCK, &rs->set, &rs->old) == 0;
	rs->started = rs->blocked && pthread_create(&rs->th, NULL, run_sig_thread, rs) == 0;
	if (rs->blocked && !rs->started) {
		pthread_sigmask(SIG_SETMASK, &rs->old, NULL);
		rs->blocked = false;
	}
}

/* From now on a signal stops the run through `dp` and `w`. */
static void run_signals_attach(struct run_signals *rs, struct sm_dispatch *dp, struct sm_wctx *w)
{
	pthread_mutex_lock(&rs->mu);
	rs->dp = dp;
	rs->w = w;
	pthread_mutex_unlock(&rs->mu);
}

static void run_signals_stop(struct run_signals *rs)
{
	if (rs->started) {
		atomic_store(&rs->stopping, true);
		pthread_kill(rs->th, SIGUSR2);
		pthread_join(rs->th, NULL);
		rs->started = false;
	}
	if (rs->blocked) {
		pthread_sigmask(SIG_SETMASK, &rs->old, NULL);
		rs->blocked = false;
	}
	pthread_mutex_destroy(&rs->mu);
}

/* A key the journal could not delete: among the run's failed keys. */
static void run_delete_failed(void *arg, const char *key, const char *msg)
{
	sm_dispatch_add_failure(arg, key, msg);
}

/* --json: the report on stdout (not for usage errors). A report that cannot
 * be written fails the run. */
static int run_report(const struct sm_opts *o, const struct run_plan *rp, int status,
                      bool interrupted, double t0, const struct sm_stats *total,
                      struct sm_dispatch *dp, struct sm_plan_stats *ps, const struct sm_stats *fin)
{
	if (!o->json || status == SM_EXIT_USAGE)
		return status;
	struct sm_report r = { .src = rp->src.display,
		               .dst = rp->dst.display,
		               .dry = o->dry,
		               .exit_code = status,
		               .interrupted = interrupted,
		               .elapsed_s = sm_now_s() - t0,
		               .total = *total,
		               .dp = dp,
		               .ps = ps,
		               .extra = fin };
	sm_log_lock();
	bool ok = sm_report_print(&r, stdout);
	sm_log_unlock();
	if (!ok) {
		sm_log(SM_LOG_ERROR, "cannot write the JSON report: %s", strerror(errno));
		return SM_EXIT_FAIL;
	}
	return status;
}

/* A duration tests may lower (left out of --help): `name` in ms, else `def`. */
static unsigned run_test_ms(const char *name, unsigned def)
{
	int64_t v = 0;
	const char *env = getenv(name);
	if (env && sm_parse_i64(env, 100, 3600000, &v))
		return (unsigned)v;
	return def;
}

int sm_run(const struct sm_opts *o, struct sm_stats *out)
{
	static atomic_uint run_seq;
	struct run_plan rp = { 0 };
	struct sm_store *src = NULL, *dst = NULL;
	uint8_t *hello = NULL; /* the workers' configuration */
	size_t hello_len = 0;
	struct sm_dispatch *dp = NULL;
	struct sm_journal *journal = NULL;
	struct sm_worker *wk = NULL;
	struct sm_progress *prog = NULL;
	struct sm_plan_stats ps = { 0 };
	struct sm_stats total = { 0 };
	struct sm_stats fin = { 0 }; /* the deletes at the end */
	struct sm_metrics *metrics = NULL;
	double t0 = sm_now_s();
	struct sm_diag d;
	bool failed_run = false;
	struct run_signals sig = { 0 };
	run_signals_start(&sig);
	struct timespec ts0;
	clock_gettime(CLOCK_REALTIME, &ts0);
	int64_t run_t0 = (int64_t)ts0.tv_sec * 1000000000 + ts0.tv_nsec;

	/* a bad --metrics ADDR is a usage error, found before anything else */
	int status = -1;
	char murl[300];
	if (o->metrics_addr && sm_metrics_url(o->metrics_addr, murl, sizeof(murl), &d) != SM_OK) {
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		status = SM_EXIT_USAGE;
		goto out;
	}
	status = run_preflight(o, &rp);
	if (status >= 0)
		goto out;
	if (o->metrics_addr && sm_metrics_start(o->metrics_addr, &metrics, &d) != SM_OK) {
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		status = d.err == SM_EINVAL ? SM_EXIT_USAGE : SM_EXIT_FAIL;
		goto out;
	}

	/* The manager's own stores plan (SRC listing), check, sweep, do the
	 * end's deletes and sync: no transfers, so no transfer pool and no
	 * listing cache. The workers open theirs from the Hello. */
	struct sm_store_cfg scfg = { .label = "SRC",
		                     .follow_links = !o->links,
		                     .read_links = o->links,
		                     .must_exist = true,
		                     .no_https = o->no_https,
		                     .ssh = &sm_ssh_ops };
	struct sm_store_cfg dcfg = { .label = "DST",
		                     .follow_links = false,
		                     .read_links = o->links,
		                     .no_https = o->no_https,
		                     .storage_class = o->storage_class,
		                     .ssh = &sm_ssh_ops };
	/* Opening a remote store connects and asks it once (bucket,
	 * credentials, endpoint, SSH host): one that refuses us fails here,
	 * not in every task. A local-only run was checked by run_preflight(). */
	bool local = !rp.single_key && strcmp(rp.src.scheme, "file") == 0 &&
	             strcmp(rp.dst.scheme, "file") == 0;
	if (!local && !rp.single_key && !rp.src.trailing)
		scfg.one = SM_ONE_SRC;
	if (sm_store_open(&rp.src, &scfg, &src, &d) != SM_OK) {
		fprintf(stderr, "syncmgr: SRC %s\n", d.msg);
		status = SM_EXIT_FAIL;
		goto out;
	}
	if (src->one)
		dcfg.one = SM_ONE_DST;
	if (sm_store_open(&rp.dst, &dcfg, &dst, &d) != SM_OK) {
		fprintf(stderr, "syncmgr: DST %s\n", d.msg);
		status = SM_EXIT_FAIL;
		goto out;
	}
	if (!local && !rp.single_key && (status = run_check_stores(o, &rp, src, dst)) >= 0)
		goto out;
	/* Multipart uploads a killed run left under DST: reported now, aborted
	 * at the end under --delete-dst (like deletes, only after a complete
	 * run). */
	uint64_t stale = 0;
	if (sm_store_sweep(dst, run_t0, false, &stale, &d) != SM_OK)
		sm_log(SM_LOG_WARN, "%s", d.msg);
	else if (stale)
		sm_log(SM_LOG_WARN, "DST: %llu multipart uploads an interrupted run left%s",
		       (unsigned long long)stale,
		       o->delete_dst && !o->dry ? "" : " (--delete-dst aborts them)");
	/* "src=SPEC" or "dst=SPEC" (tests only): on the manager's store and
	 * the workers' of that side */
	const char *fault_src = NULL, *fault_dst = NULL;
	if (o->fault_spec) {
		bool on_src = strncmp(o->fault_spec, "src=", 4) == 0;
		const char *spec =
		        strchr(o->fault_spec, '=') ? strchr(o->fault_spec, '=') + 1 : o->fault_spec;
		if (sm_store_set_fault(on_src ? src : dst, spec, &d) != SM_OK) {
			fprintf(stderr, "syncmgr: %s\n", d.msg);
			status = SM_EXIT_USAGE;
			goto out;
		}
		*(on_src ? &fault_src : &fault_dst) = spec;
	}

	/* The workers of a local run are threads of this process, over
	 * inproc://. Tests drive the same workers over the network with
	 * SYNCMGR_TEST_DISPATCH_URL (e.g. tcp://127.0.0.1:7830). */
	char url[256];
	const char *turl = getenv("SYNCMGR_TEST_DISPATCH_URL");
	if (turl && *turl)
		sm_strlcpy(url, turl, sizeof(url));
	else
		snprintf(url, sizeof(url), "inproc://syncmgr-%d-%u", (int)getpid(),
		         atomic_fetch_add(&run_seq, 1));
	struct sm_dispatch_cfg dcf = {
		.url = url,
		.run_id = sm_rand64() | 1,
		.max_queued = o->threads / 2 + 2, /* each queued task holds up to 1000 keys */
		.lease_ms = run_test_ms("SYNCMGR_TEST_LEASE_MS", RUN_LEASE_MS),
		.max_failure = (uint64_t)o->max_failure
	};
	/* Everything a worker needs, in one message: the workers' stores get
	 * the transfer pool's budget and, on DST, the listing cache (each DST
	 * directory read once per run, however many range tasks cut it) */
	struct sm_store_cfg wscfg = scfg, wdcfg = dcfg;
	wdcfg.list_cache = RUN_LIST_CACHE;
	struct sm_wire_hello hi = { .run_id = dcf.run_id,
		                    .url = url,
		                    .worker = "local",
		                    .threads = (unsigned)o->threads,
		                    .lease_ms = dcf.lease_ms,
		                    .stall_ms = run_test_ms("SYNCMGR_TEST_STALL_MS", 0),
		                    .pool_budget = RUN_POOL_BUDGET,
		                    .o = o,
		                    .src = { &rp.src, &wscfg, fault_src },
		                    .dst = { &rp.dst, &wdcfg, fault_dst } };
	char hash[SM_WIRE_HASH_HEX];
	hello = sm_wire_hello_pack(&hi, &hello_len, hash, &d);
	if (!hello) {
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		status = SM_EXIT_FAIL;
		goto out;
	}
	dcf.config_hash = hash;
	if (sm_journal_new(&journal, &d) != SM_OK) {
		fprintf(stderr, "syncmgr: %s\n", d.msg);
		status = SM_EXIT_FAIL;
		goto out;
	}
	dcf.journal = journal;
	if (sm_dispatch_start(&dcf, &dp, &d) != SM_OK) {
		sm_log(SM_LOG_ERROR, "%s", d.msg);
		status = SM_EXIT_FAIL;
		goto out;
	}
	sm_journal_set_fail_hook(journal, run_delete_failed, dp);
	sm_metrics_attach(metrics, dp, &ps);
	/* the manager's side of the end: the journal's deletes */
	struct sm_wctx w;
	sm_wctx_init(&w, o, src, dst);
	run_signals_attach(&sig, dp, &w);
	if (sm_worker_start(hello, hello_len, &sm_ssh_ops, &wk, &d) != SM_OK) {
		sm_log(SM_LOG_ERROR, "%s", d.msg);
		sm_dispatch_abort(dp);
		status = SM_EXIT_FAIL;
		goto out;
	}
	prog = sm_progress_start(o, dp, &ps);

	struct sm_plan_result pr;
	bool remote = !sm_store_has(src, SM_CAP_LOCAL) || !sm_store_has(dst, SM_CAP_LOCAL);
	enum sm_err perr = sm_plan_run(o, src, dst, dp, remote, rp.single_key, rp.single_dst_key,
	                               &ps, &pr, &d);
	if (perr != SM_OK && !(pr.fatal && d.err == SM_EIO && strcmp(d.msg, "run aborted") == 0)) {
		sm_diag_label(&d, perr, "SRC");
		sm_log(SM_LOG_ERROR, "%s", d.msg);
	}
	if (pr.fatal) {
		failed_run = true;
		sm_dispatch_abort(dp);
	} else {
		sm_dispatch_finish(dp);
	}
	/* Every attempt has ended, known from the workers' messages (Done, or
	 * leases run out): nothing of the transfers writes any more. */
	sm_dispatch_wait(dp);

	struct sm_dispatch_snapshot snap;
	sm_dispatch_snapshot(dp, &snap);
	bool listing_failed = pr.listing_failed || snap.listing_failed;
	/* Deletes only now, and only when every listing was complete. */
	const char *why = atomic_load(&sig.hit) ? "interrupted"
	                  : listing_failed      ? "a listing failed"
	                  : snap.aborted        ? "the run stopped early"
	                  : failed_run          ? "the run failed"
	                                        : NULL;
	sm_progress_phase(prog, "deleting", &fin);
	if (snap.unsynced[0])
		sm_journal_set_unsynced(journal, snap.unsynced);
	sm_journal_apply(journal, &w, why == NULL, why, &fin);
	sm_metrics_add_local(metrics, &fin);
	if (!why && stale && o->delete_dst && !o->dry) {
		if (sm_store_sweep(dst, run_t0, true, &stale, &d) != SM_OK)
			sm_log(SM_LOG_WARN, "%s", d.msg);
		else if (stale)
			sm_log(SM_LOG_INFO,
			       "DST: aborted %llu multipart uploads an interrupted run left",
			       (unsigned long long)stale);
	}
	/* exit 0 means on disk: one syncfs per DST (none where a write is
	 * durable on success, S3) */
	sm_progress_phase(prog, "syncing DST", &fin);
	enum sm_err serr = o->dry ? SM_OK : sm_store_sync(dst, &d);
	if (serr == SM_ENOTSUP) {
		sm_log(SM_LOG_DEBUG, "%s", d.msg); /* SFTP without --fsync: the server's */
	} else if (serr != SM_OK) {
		sm_log(SM_LOG_ERROR, "%s", d.msg);
		failed_run = true;
	}

	sm_progress_stop(prog);
	prog = NULL;
	/* the in-process workers end once told to (their threads joined here
	 * only to free them) */
	if (sm_worker_join(wk, NULL) != SM_OK)
		failed_run = true;
	wk = NULL;
	sm_progress_totals(dp, &ps, &total);
	sm_stats_add(&total, &fin);
	failed_run = failed_run || listing_failed || snap.aborted || atomic_load(&sig.hit);
	status = (total.failed || total.lost || failed_run) ? SM_EXIT_FAIL : SM_EXIT_OK;

	sm_log_repeat_flush(); /* "... and N more like" the errors not shown */
	char line[512], rates[256];
	sm_stats_summary(&total, line, sizeof(line));
	sm_stats_summary_rates(&total, sm_now_s() - t0, o->dry, rates, sizeof(rates));
	sm_log_lock();
	fflush(stdout);
	fprintf(stderr, "%s\n", line);
	if (o->log_level >= SM_LOG_NOTICE) /* -q: the summary line alone */
		fprintf(stderr, "%s\n", rates);
	sm_log_unlock();
out:
	sm_progress_stop(prog);
	if (wk) {
		sm_dispatch_abort(dp);
		sm_worker_join(wk, NULL);
	}
	status = run_report(o, &rp, status, atomic_load(&sig.hit), t0, &total, dp, &ps, &fin);
	/* the metrics are served until the report is out */
	sm_metrics_stop(metrics);
	run_signals_stop(&sig); /* before dp goes: the thread may use it */
	sm_dispatch_stop(dp);
	sm_journal_free(journal);
	sm_store_close(dst);
	sm_store_close(src);
	free(hello);
	run_plan_release(&rp);
	if (out)
		*out = total;
	return status;
}
